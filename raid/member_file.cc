#include "raid/member_file.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <utility>

namespace raidfs {
namespace {

// /sys/dev/block/MAJ:MIN/queue/write_cache holds "write back" or "write through" (partitions
// have no queue/ of their own; theirs is the parent's, one level up).
bool reports_write_through(dev_t rdev) {
  const std::string base = "/sys/dev/block/" + std::to_string(major(rdev)) + ":" + std::to_string(minor(rdev));
  for (const char* rel : {"/queue/write_cache", "/../queue/write_cache"}) {
    std::ifstream in(base + rel);
    std::string mode;
    if (std::getline(in, mode)) return mode == "write through";
  }
  return false;
}

}  // namespace

Result<MemberFile> MemberFile::open(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    return fail(errno, path + ": " + std::strerror(errno));
  const bool block = S_ISBLK(st.st_mode);
  if (!block && !S_ISREG(st.st_mode))
    return fail(EINVAL, path + ": not a block device or a regular file");

  MemberFile f;
  const int flags = O_RDWR | O_CLOEXEC | (block ? O_EXCL : 0);
  f.fd_ = ::open(path.c_str(), flags | O_DIRECT);
  if (f.fd_ < 0 && errno == EINVAL) {  // the filesystem under an image file has no O_DIRECT
    f.direct_ = false;
    f.fd_ = ::open(path.c_str(), flags);
  }
  if (f.fd_ < 0) {
    if (errno == EBUSY) return fail(EBUSY, path + ": in use (mounted, or held by another program)");
    return fail(errno, path + ": " + std::strerror(errno));
  }
  if (block) {
    uint64_t bytes = 0;
    if (::ioctl(f.fd_, BLKGETSIZE64, &bytes) != 0) return fail(errno, path + ": cannot get size");
    f.size_bytes_ = bytes;
    f.volatile_cache_ = !reports_write_through(st.st_rdev);
  } else {
    if (::flock(f.fd_, LOCK_EX | LOCK_NB) != 0)
      return fail(EBUSY, path + ": in use by another raidfs process");
    f.size_bytes_ = static_cast<uint64_t>(st.st_size);
  }
  return f;
}

MemberFile::MemberFile(MemberFile&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)),
      size_bytes_(o.size_bytes_),
      direct_(o.direct_),
      volatile_cache_(o.volatile_cache_) {}

MemberFile& MemberFile::operator=(MemberFile&& o) noexcept {
  std::swap(fd_, o.fd_);
  size_bytes_ = o.size_bytes_;
  direct_ = o.direct_;
  volatile_cache_ = o.volatile_cache_;
  return *this;
}

MemberFile::~MemberFile() {
  if (fd_ < 0) return;
  ::flock(fd_, LOCK_UN);
  ::close(fd_);
}

Result<std::pair<uint64_t, uint64_t>> MemberFile::identity(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return fail(errno, path + ": " + std::strerror(errno));
  if (S_ISBLK(st.st_mode)) return std::pair<uint64_t, uint64_t>{st.st_rdev, 0};
  return std::pair<uint64_t, uint64_t>{st.st_dev, st.st_ino};
}

Result<uint64_t> MemberFile::size_of(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(errno, path + ": " + std::strerror(errno));
  struct stat st;
  uint64_t bytes = 0;
  int error = 0;
  if (::fstat(fd, &st) != 0) error = errno;
  else if (S_ISREG(st.st_mode)) bytes = static_cast<uint64_t>(st.st_size);
  else if (!S_ISBLK(st.st_mode)) error = EINVAL;
  else if (::ioctl(fd, BLKGETSIZE64, &bytes) != 0) error = errno;
  ::close(fd);
  if (error == EINVAL) return fail(EINVAL, path + ": neither a block device nor a regular file");
  if (error) return fail(error, path + ": cannot get its size: " + std::strerror(error));
  return bytes;
}

int MemberFile::release() { return std::exchange(fd_, -1); }

}  // namespace raidfs
