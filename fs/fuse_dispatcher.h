// RequestDispatcher: the one place that turns a FUSE request into Filesystem calls and a reply.
//
// Transports (classic_transport: whole requests read from /dev/fuse; later io_uring: a 288-byte
// header buffer and a separate payload buffer per ring entry) build a RequestView, call
// dispatch(), and send the Reply it returns. The dispatcher knows the wire format; the
// transports know only how bytes move.
//
//   RequestView   header: a copy of the fuse_in_header (opcode, unique, nodeid, uid, gid).
//                 op: the per-op struct (fuse_read_in, fuse_write_in ...), at least its size —
//                     classic: the bytes after the header; io_uring: the 128-byte op_in area.
//                 payload: what follows it (names, WRITE data, BATCH_FORGET entries) —
//                     classic: the rest of the request; io_uring: the payload buffer's first
//                     payload_sz bytes. INIT's struct, whose size grew over the minors, is `op`.
//                 An io_uring reply is committed as: out header in the in_out area, and the body
//                 (fixed or data) at payload offset 0 with payload_sz = body_bytes().
//                 split_classic() and split_uring() build it from each transport's buffers.
//   Reply         the fuse_out_header fields, then EITHER `fixed` (a small struct built in the
//                 Reply: entry_out, attr_out, open_out ...) OR `data` (READ data, directory
//                 entries, a link target, an xattr value) — never both. `data` always points to
//                 the start of the reply buffer the transport passed in, so an io_uring transport
//                 that passes its payload buffer finds READ data at payload offset 0 with no copy.
//
// Replies to errors carry no body (the kernel rejects an error reply longer than the header).
// FORGET, BATCH_FORGET, INTERRUPT and NOTIFY_REPLY get no reply (Reply::send == false).
// Unknown opcodes get ENOSYS, as the kernel expects for operations it may probe (it then falls
// back, e.g. STATX → GETATTR); malformed requests (short structs, names without NUL, lengths
// that disagree) get EINVAL. Nothing a request contains can make the dispatcher read outside
// the view it was given.
//
// The reply buffer may be the very buffer the request's payload lies in (the io_uring transport
// answers in the payload buffer the request came in): every handler reads all of its payload
// before it writes the reply buffer.
//
// Threads: dispatch() may be called from any number of threads at once, each with its own
// IoContext and reply buffer. INIT is the kernel's first request and is answered before any
// other arrives; the negotiated parameters are published once and read without locks after.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <string>

#include "base/log.h"
#include "base/result.h"
#include "fs/filesystem.h"
#include "fs/fuse_abi.h"

namespace raidfs::fs {

struct DispatcherOptions {
  bool writeback_cache = true;    // the kernel caches writes and sends them in large batches
  double attr_timeout = 1.0;      // seconds the kernel may cache attributes
  double entry_timeout = 1.0;     // seconds the kernel may cache names (and that a name is absent)
  uint32_t max_write = 1u << 20;  // bytes per WRITE (4 KiB .. 1 MiB); READs are as large
  bool over_io_uring = false;     // ask for FUSE_OVER_IO_URING at INIT (the io_uring transport)
  // Ask for FUSE_ASYNC_DIO: asynchronous O_DIRECT (libaio, io_uring) stays in flight, many at a
  // time, instead of running one by one in the submitter — but the kernel then leaves pages a
  // buffered reader fetched during such a write stale after it (docs/decisions.md). Off by
  // default; for files that only ever see O_DIRECT.
  bool async_dio = false;
  // Ask for FUSE_POSIX_ACL (the kernel enforces ACLs stored as system.posix_acl_* xattrs, and
  // leaves the umask to raidfs: FUSE_DONT_MASK). -o noacl turns it off.
  bool posix_acl = true;
};

// What INIT settled. Valid once initialized().
struct FuseConnection {
  uint32_t minor = 0;          // protocol minor in use: min(kernel, fuse::kProtocolMinor)
  uint64_t flags = 0;          // the INIT flags granted (kernel's offer ∩ ours), 64-bit
  uint32_t max_write = 0;      // bytes
  uint32_t max_pages = 0;      // pages per request (READ size = max_pages × 4 KiB at most)
  uint32_t max_readahead = 0;  // bytes
  bool over_io_uring() const { return (flags & FUSE_OVER_IO_URING) != 0; }
};

struct RequestView {
  fuse_in_header header{};  // a copy: request bytes are never reinterpreted in place
  std::span<const uint8_t> op;
  std::span<const uint8_t> payload;
};

struct Reply {
  // The largest fixed part: CREATE's fuse_entry_out + fuse_open_out.
  static constexpr size_t kFixedBytesMax = sizeof(fuse_entry_out) + sizeof(fuse_open_out);

  bool send = true;  // false: the request takes no reply
  uint64_t unique = 0;
  int32_t error = 0;  // 0 or a negative errno (the kernel accepts -1 .. -511)
  uint32_t fixed_bytes = 0;
  alignas(8) uint8_t fixed[kFixedBytesMax];
  const uint8_t* data = nullptr;  // the start of the transport's reply buffer, or null
  size_t data_bytes = 0;

  // The out-args after the fuse_out_header: fixed_bytes or data_bytes (0 for an error).
  size_t body_bytes() const { return error != 0 ? 0 : fixed_bytes + data_bytes; }
  fuse_out_header out_header() const {
    return fuse_out_header{static_cast<uint32_t>(sizeof(fuse_out_header) + body_bytes()), error,
                           unique};
  }
};

class RequestDispatcher {
 public:
  RequestDispatcher(Filesystem& fs, const DispatcherOptions& options);

  // The per-op struct size of `opcode` as the kernel sends it (0: none, the payload follows the
  // header). INIT's struct grew over time: it takes the whole rest of the request.
  static size_t op_struct_bytes(uint32_t opcode);

  // Splits a request read whole from /dev/fuse. EINVAL when `bytes` is shorter than a header,
  // or the header's len disagrees with what was read (then reply_to_unreadable() answers it).
  static Result<RequestView> split_classic(std::span<const uint8_t> bytes);
  // The EINVAL reply for a request split_classic() refused; send == false when even the header
  // is incomplete (there is no unique to answer).
  static Reply reply_to_unreadable(std::span<const uint8_t> bytes);
  // Builds the view of a request delivered in an io_uring ring entry: the header from `entry`'s
  // in_out area, the per-op struct from its op_in area (op_struct_bytes of the opcode), and the
  // payload's first ring_ent_in_out.payload_sz bytes. The view points into `entry` and `payload`.
  // EINVAL when payload_sz exceeds the payload buffer or the extensions exceed the payload
  // (reply_to_unreadable() on the in_out bytes then answers it).
  static Result<RequestView> split_uring(const fuse_uring_req_header& entry,
                                         std::span<const uint8_t> payload);

  // Runs one request. `reply_buffer` (4 KiB-aligned, at least max_write rounded up to 4 KiB, and
  // at least 4 KiB) receives the reply's data; `ctx` is the calling thread's. READ and READDIR
  // sizes are clamped to the buffer.
  Reply dispatch(IoContext& ctx, const RequestView& request, std::span<uint8_t> reply_buffer);

  // The transport could not deliver `reply` (the request was interrupted: the kernel never saw
  // it). Undoes what the kernel would otherwise have undone later: the open handle of a
  // successful OPEN or CREATE, whose RELEASE will now never come.
  void reply_not_delivered(const RequestView& request, const Reply& reply);

  // Whether INIT asks for FUSE_OVER_IO_URING; only before the mount (INIT reads it unlocked).
  void set_over_io_uring(bool on) { options_.over_io_uring = on; }
  // Lines the transports add to the raidfs.status xattr of the root (which transport serves,
  // its request counters): `source` is called for every such GETXATTR, from any worker thread,
  // and must be thread-safe. Set it before the mount serves requests; it is not synchronised.
  void set_transport_status(std::function<std::string()> source) {
    transport_status_ = std::move(source);
  }

  // How to send the kernel a notification (a message with unique 0, FUSE_NOTIFY_* in its error
  // field): a write to the connection's /dev/fuse descriptor, from any worker thread. Unset
  // (tests), none is sent. Set it before the mount serves requests; it is not synchronised.
  void set_notifier(std::function<Result<void>(std::span<const uint8_t>)> send) {
    notifier_ = std::move(send);
  }

  bool initialized() const { return initialized_.load(std::memory_order_acquire); }
  // The negotiated connection; meaningful only once initialized().
  const FuseConnection& connection() const { return connection_; }
  const DispatcherOptions& options() const { return options_; }

 private:
  Filesystem& fs_;
  DispatcherOptions options_;
  // Written once by INIT (under init_mu_), then published by initialized_ (release/acquire).
  std::mutex init_mu_;
  FuseConnection connection_;
  std::atomic<bool> initialized_{false};
  // Rate limit for logging EIO-class errors (a failing member can fail every request).
  LogRateLimit error_log_{20};  // a failing member can fail every request
  std::function<std::string()> transport_status_;  // set before serving, read-only after
  std::function<Result<void>(std::span<const uint8_t>)> notifier_;  // the same
  // Tells the kernel that the inode's cached attributes are stale (FUSE_NOTIFY_INVAL_INODE,
  // attributes only); a failure is logged, not returned: the cache times out anyway.
  void invalidate_attributes(uint64_t ino);

  struct Call;  // one request being handled (fuse_dispatcher.cc)
};

}  // namespace raidfs::fs
