// fuse_encode: the byte-level pieces of the FUSE wire format that the dispatcher needs —
// request structs and names read from untrusted bytes, attributes and directory entries written
// in the kernel's layout.
//
// Grammar (all little-endian host order, as the kernel writes it; fuse_abi.h pins the sizes):
//   request  = fuse_in_header op-struct? payload
//   payload  = name NUL                       LOOKUP, UNLINK, RMDIR, MKNOD, MKDIR, CREATE, LINK,
//                                              REMOVEXATTR, GETXATTR
//            | name NUL name NUL               RENAME, RENAME2, SYMLINK (name, then target)
//            | name NUL value[size]            SETXATTR
//            | data[size]                      WRITE
//   readdir  = { fuse_dirent name pad }*       each record padded to 8 bytes (FUSE_DIRENT_ALIGN)
//   readdir+ = { fuse_entry_out fuse_dirent name pad }*
//
// Decoders treat the bytes as hostile: every read is bounds-checked and fails with EINVAL.
// Thread-safety: plain functions and per-request objects; nothing shared.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <type_traits>

#include "base/result.h"
#include "fs/fuse_abi.h"
#include "meta/records.h"

namespace raidfs::fs::fuse {

// A cache timeout in the kernel's (seconds, nanoseconds) form. Negative or NaN → 0.
struct Timeout {
  uint64_t sec = 0;
  uint32_t nsec = 0;
};
Timeout split_timeout(double seconds);

// A time in nanoseconds since the epoch as (seconds, nanoseconds 0..999999999); negative times
// round toward minus infinity so the nanoseconds stay positive.
struct WireTime {
  int64_t sec = 0;
  uint32_t nsec = 0;
};
WireTime split_time(int64_t ns);
// The reverse, for SETATTR. EINVAL when nsec ≥ 10^9 or the time does not fit in 64-bit ns.
Result<int64_t> join_time(uint64_t wire_sec, uint32_t nsec);

// fuse_attr from an inode: blksize 4096, blocks = ceil(size / 512) (raidfs does not track
// allocation per file; holes count as allocated), rdev truncated to the kernel's 32 bits.
void fill_attr(const meta::Inode& inode, fuse_attr& out);
// The reply of LOOKUP, MKNOD, MKDIR, SYMLINK, LINK and CREATE: nodeid = ino, generation 1
// (inode numbers are never reused, so one generation suffices).
fuse_entry_out entry_out(const meta::Inode& inode, Timeout entry_valid, Timeout attr_valid);
// A negative entry: nodeid 0 tells the kernel to cache "no such name" for entry_valid.
fuse_entry_out negative_entry_out(Timeout entry_valid);

// A fixed-size struct from the front of `bytes`. EINVAL when there are fewer bytes than it needs.
template <class T>
Result<T> read_struct(std::span<const uint8_t> bytes) {
  static_assert(std::is_trivially_copyable_v<T>);
  if (bytes.size() < sizeof(T)) return fail(EINVAL, "request shorter than its struct");
  T out;
  std::memcpy(&out, bytes.data(), sizeof(T));
  return out;
}

// Consumes a request payload front to back; never reads past its end.
class PayloadReader {
 public:
  explicit PayloadReader(std::span<const uint8_t> bytes) : bytes_(bytes) {}
  // The next NUL-terminated string, without its NUL. EINVAL when empty or when no NUL follows.
  Result<std::string_view> name();
  // The next `n` bytes. EINVAL when fewer remain.
  Result<std::span<const uint8_t>> take(size_t n);
  size_t remaining() const { return bytes_.size() - pos_; }

 private:
  std::span<const uint8_t> bytes_;
  size_t pos_ = 0;
};

// Packs directory entries into a READDIR or READDIRPLUS reply buffer, as many as fit.
class DirentPacker {
 public:
  DirentPacker(std::span<uint8_t> buffer, bool plus) : buffer_(buffer), plus_(plus) {}
  // The bytes one entry takes, padding included.
  static size_t entry_bytes(size_t name_bytes, bool plus);
  // Appends an entry: `next_offset` is the offset a READDIR resumes from after it; `entry` is its
  // lookup reply (READDIRPLUS only; null → zeroed, which tells the kernel to skip it and look the
  // name up itself). false, writing nothing, when it does not fit.
  bool add(std::string_view name, uint64_t ino, uint32_t type, uint64_t next_offset,
           const fuse_entry_out* entry = nullptr);
  size_t bytes() const { return used_; }
  size_t count() const { return count_; }
  size_t room() const { return buffer_.size() - used_; }

 private:
  std::span<uint8_t> buffer_;
  bool plus_;
  size_t used_ = 0;
  size_t count_ = 0;
};

}  // namespace raidfs::fs::fuse
