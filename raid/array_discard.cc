// Array::discard: telling the members that free stripes hold nothing (see array.h).
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "raid/array.h"

namespace raidfs {
namespace {

// One member's byte range: BLKDISCARD on a block device, a punched hole (size kept) in a file.
int discard_range(int fd, uint64_t offset, uint64_t length) {
  struct stat st;
  if (fstat(fd, &st) != 0) return errno;
  if (S_ISBLK(st.st_mode)) {
    uint64_t range[2] = {offset, length};
    return ioctl(fd, BLKDISCARD, &range) == 0 ? 0 : errno;
  }
  return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                   static_cast<off_t>(length)) == 0
             ? 0
             : errno;
}

}  // namespace

Result<uint64_t> Array::discard(uint64_t first_stripe, uint64_t count) {
  if (count == 0) return uint64_t{0};
  if (first_stripe >= geometry_.stripe_count() || count > geometry_.stripe_count() - first_stripe)
    return fail(EINVAL, "discard past the last stripe");
  const uint64_t offset = geometry_.row_offset(first_stripe);
  const uint64_t length = count * geometry_.chunk_bytes();
  uint64_t discarded = 0;
  int refused = 0;
  std::string refused_by;
  for (uint32_t i = 0; i < geometry_.member_count(); ++i) {
    const int fd = fds_[i];
    if (fd < 0 || !writable(i)) continue;
    // Advisory: a member that cannot discard is not failed for it, and nothing it stores changes.
    if (const int err = discard_range(fd, offset, length); err != 0) {
      if (refused == 0) {
        refused = err;
        refused_by = member_path(i);
      }
      continue;
    }
    discarded += length;
  }
  if (refused != 0)
    return fail(refused == ENOTTY || refused == EOPNOTSUPP ? EOPNOTSUPP : refused,
                "cannot discard on " + refused_by + ": " + std::strerror(refused));
  return discarded;
}

}  // namespace raidfs
