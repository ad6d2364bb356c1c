// MemberFile: one member device opened for I/O — a block device or a regular (image) file.
//
// Opened read-write with O_DIRECT so member I/O bypasses the page cache (where the filesystem
// under an image file refuses O_DIRECT, it is opened buffered and `direct` says so). A block
// device is opened O_EXCL, which fails while it is mounted or used by another holder; an image
// file takes an exclusive flock, so two raidfs processes never drive the same member.
// Owns the descriptor; move-only.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "base/result.h"

namespace raidfs {

class MemberFile {
 public:
  // Errors: the open errno (ENOENT, EACCES, ...), EBUSY "in use" (mounted, or locked by another
  // process), EINVAL neither a block device nor a regular file. Messages name the path.
  static Result<MemberFile> open(const std::string& path);

  // Identity of the device at `path` without opening it, to catch a member listed twice (under
  // two names, too) before locking it: (st_dev, st_ino) of a file, (st_rdev, 0) of a block device.
  // Errors: the stat errno, naming the path.
  static Result<std::pair<uint64_t, uint64_t>> identity(const std::string& path);

  // The size in bytes of the device or image at `path`, without opening it for I/O. Errors: the
  // open errno, EINVAL neither a block device nor a regular file; messages name the path.
  static Result<uint64_t> size_of(const std::string& path);

  MemberFile(MemberFile&& o) noexcept;
  MemberFile& operator=(MemberFile&& o) noexcept;
  ~MemberFile();

  int fd() const { return fd_; }
  int release();  // gives up ownership of the descriptor
  uint64_t size_bytes() const { return size_bytes_; }
  bool direct() const { return direct_; }
  // Whether acknowledged writes can sit in a volatile cache and need a flush to be durable: true
  // for files (page cache, or the filesystem's own metadata) and for block devices whose queue
  // reports "write back"; false for a device that says "write through".
  bool volatile_cache() const { return volatile_cache_; }

 private:
  MemberFile() = default;
  int fd_ = -1;
  uint64_t size_bytes_ = 0;
  bool direct_ = true;
  bool volatile_cache_ = true;
};

}  // namespace raidfs
