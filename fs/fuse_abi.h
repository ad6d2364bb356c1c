// fuse_abi: the FUSE kernel ABI as raidfs speaks it — <linux/fuse.h> plus what later protocol
// minors added, for systems whose header is older than the kernel.
//
// Debian 12 ships the 7.38 header; the kernels raidfs targets (6.14 and later) speak 7.42 or
// newer, and the io_uring transport needs the 7.42 additions. Each block below adds exactly what
// one minor added (facts from the kernel's include/uapi/linux/fuse.h changelog), only when the
// system header predates it, so a newer header is used as is. Only the transport files include
// this header (STYLE.md: only the transport files include FUSE headers).
//
// raidfs speaks kProtocolMinor: at INIT it answers min(kernel minor, kProtocolMinor). Every struct
// it reads or writes has the same layout in 7.28 .. 7.42 (later minors only rename padding), so
// kernels from kMinKernelMinor on are served with the full-size structs.
#pragma once

#include <linux/fuse.h>

#include <cstddef>
#include <cstdint>

// --- 7.39: FUSE_DIRECT_IO_ALLOW_MMAP, FUSE_STATX ------------------------------------------------
#if FUSE_KERNEL_MINOR_VERSION < 39
#define FUSE_DIRECT_IO_ALLOW_MMAP (1ULL << 36)
#endif

// --- 7.40: passthrough, FUSE_NO_EXPORT_SUPPORT, resend ------------------------------------------
#if FUSE_KERNEL_MINOR_VERSION < 40
#define FUSE_PASSTHROUGH (1ULL << 37)
#define FUSE_NO_EXPORT_SUPPORT (1ULL << 38)
#define FUSE_HAS_RESEND (1ULL << 39)
#define FOPEN_PASSTHROUGH (1 << 7)
// A resent request (after FUSE_NOTIFY_RESEND, which raidfs never sends) has this bit in `unique`.
#define FUSE_UNIQUE_RESEND (1ULL << 63)
#endif

// --- 7.41: idmapped mounts ---------------------------------------------------------------------
#if FUSE_KERNEL_MINOR_VERSION < 41
#define FUSE_ALLOW_IDMAP (1ULL << 40)
#define FUSE_INVALID_UIDGID ((uint32_t)(-1))
#endif

// --- 7.42: FUSE-over-io_uring ------------------------------------------------------------------
#if FUSE_KERNEL_MINOR_VERSION < 42
// INIT flag (bit 41 of the 64-bit flags, i.e. bit 9 of flags2): the server will register rings.
#define FUSE_OVER_IO_URING (1ULL << 41)

// The two header areas of a ring entry's 288-byte request header.
#define FUSE_URING_IN_OUT_HEADER_SZ 128
#define FUSE_URING_OP_IN_OUT_SZ 128

// Part of fuse_uring_req_header: written by the kernel with a request, by the server with a reply.
struct fuse_uring_ent_in_out {
  uint64_t flags;
  // The commit ID to give back (in fuse_uring_cmd_req) when committing this entry's reply.
  uint64_t commit_id;
  // Bytes of the payload buffer in use: the request's payload, or (reply) the reply's.
  uint32_t payload_sz;
  uint32_t padding;
  uint64_t reserved;
};

// The request header buffer of a ring entry (iovec 0 at REGISTER).
struct fuse_uring_req_header {
  char in_out[FUSE_URING_IN_OUT_HEADER_SZ];  // fuse_in_header (request) / fuse_out_header (reply)
  char op_in[FUSE_URING_OP_IN_OUT_SZ];       // the per-op struct (fuse_write_in ...), if any
  struct fuse_uring_ent_in_out ring_ent_in_out;
};

// Commands of IORING_OP_URING_CMD SQEs on the /dev/fuse fd (sqe->cmd_op).
enum fuse_uring_cmd {
  FUSE_IO_URING_CMD_INVALID = 0,
  FUSE_IO_URING_CMD_REGISTER = 1,          // register an entry's buffers and fetch a request
  FUSE_IO_URING_CMD_COMMIT_AND_FETCH = 2,  // commit the entry's reply and fetch the next request
};

// The command area (sqe->cmd, needs IORING_SETUP_SQE128) of a FUSE io_uring command.
struct fuse_uring_cmd_req {
  uint64_t flags;
  uint64_t commit_id;  // COMMIT_AND_FETCH: the entry's fuse_uring_ent_in_out.commit_id
  uint16_t qid;        // the queue (CPU) the entry belongs to
  uint8_t padding[6];
};
#endif

namespace raidfs::fs::fuse {

// The protocol minor raidfs implements (see the top of this file).
inline constexpr uint32_t kProtocolMinor = 42;
// The oldest kernel protocol served: 7.28 (Linux 4.20) brought max_pages, which 1 MiB requests
// need; the compat struct sizes of older minors are not implemented.
inline constexpr uint32_t kMinKernelMinor = 28;

// Opcodes newer than the 7.38 header's enum (an enum cannot be extended, so they are constants).
inline constexpr uint32_t kOpStatx = 52;  // 7.39; answered ENOSYS, the kernel then stops asking

// An io_uring entry's request header is 288 bytes; REGISTER checks it.
static_assert(sizeof(fuse_uring_ent_in_out) == 32);
static_assert(sizeof(fuse_uring_req_header) == 288);
static_assert(sizeof(fuse_uring_cmd_req) == 24);

// The wire sizes this code relies on (fixed since 7.28; a changed header would be a new ABI).
static_assert(sizeof(fuse_in_header) == 40);
static_assert(sizeof(fuse_out_header) == 16);
static_assert(sizeof(fuse_attr) == 88);
static_assert(sizeof(fuse_entry_out) == 128);
static_assert(sizeof(fuse_attr_out) == 104);
static_assert(sizeof(fuse_open_out) == 16);
static_assert(sizeof(fuse_init_in) == 64);
static_assert(sizeof(fuse_init_out) == 64);
static_assert(sizeof(fuse_read_in) == 40);
static_assert(sizeof(fuse_write_in) == 40);
static_assert(sizeof(fuse_setattr_in) == 88);
static_assert(sizeof(fuse_dirent) == 24);
static_assert(sizeof(fuse_direntplus) == 152);
static_assert(sizeof(fuse_kstatfs) == 80);
static_assert(FUSE_COMPAT_SETXATTR_IN_SIZE == 8);

}  // namespace raidfs::fs::fuse
