// SyncMemberIo: the region's member I/O as plain system calls. See sync_member_io.h.
#include "raid/sync_member_io.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "raid/uring_member_io.h"

namespace raidfs {
namespace {

int64_t now_ns() {
  timespec t{};
  ::clock_gettime(CLOCK_MONOTONIC, &t);
  return int64_t{t.tv_sec} * 1000000000 + t.tv_nsec;
}

}  // namespace

SyncMemberIo::SyncMemberIo(const MemberFds& fds) : fds_(fds) {}
SyncMemberIo::~SyncMemberIo() = default;

void SyncMemberIo::execute(std::span<IoRequest> batch) {
  const auto flushes = std::count_if(batch.begin(), batch.end(),
                                     [](const IoRequest& r) { return r.op == IoOp::kFlush; });
  if (flushes > 1 && flushes == static_cast<long>(batch.size()) && flush_ns_ > kSlowFlushNs &&
      !no_ring_) {
    if (!flush_ring_) {
      if (auto ring = UringMemberIo::create(fds_, 16)) flush_ring_ = std::move(*ring);
      else no_ring_ = true;
    }
    if (flush_ring_) {
      const int64_t start = now_ns();
      flush_ring_->execute(batch);
      flushed(now_ns() - start, flushes);
      return;
    }
  }
  for (IoRequest& r : batch) run(r);
}

void SyncMemberIo::flushed(int64_t ns, int64_t count) {
  flush_ns_ += (ns / count - flush_ns_) / 8;
}

void SyncMemberIo::run(IoRequest& r) {
  const int fd = fds_[r.member];
  if (fd < 0) {
    r.result = -ENXIO;
    return;
  }
  if (r.op == IoOp::kFlush) {
    const int64_t start = now_ns();
    r.result = ::fdatasync(fd) == 0 ? 0 : -errno;
    flushed(now_ns() - start, 1);
    return;
  }
  {
    uint32_t done = 0;
    while (done < r.length) {
      const ssize_t n = r.op == IoOp::kRead
                            ? ::pread(fd, r.buffer + done, r.length - done, static_cast<off_t>(r.offset + done))
                            : ::pwrite(fd, r.buffer + done, r.length - done, static_cast<off_t>(r.offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += static_cast<uint32_t>(n);
    }
    r.result = done == r.length ? static_cast<int32_t>(done) : (errno && done == 0 ? -errno : -EIO);
  }
}

}  // namespace raidfs
