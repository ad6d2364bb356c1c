#include "raid/uring_member_io.h"

#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cstring>
#include <string>

namespace raidfs {

namespace {

// True when `fd` cannot do non-blocking reads, so io_uring would punt each of its requests to a
// worker thread. The kernel answers RWF_NOWAIT with EOPNOTSUPP for files without FMODE_NOWAIT,
// before looking at the buffer or the offset; any other answer means the ring can issue inline.
bool file_lacks_nowait(int fd) {
  alignas(4096) static thread_local uint8_t probe[4096];
  iovec iov{probe, sizeof probe};
  return ::preadv2(fd, &iov, 1, 0, RWF_NOWAIT) < 0 && errno == EOPNOTSUPP;
}

}  // namespace

Result<std::unique_ptr<UringMemberIo>> UringMemberIo::create(std::span<const int> fds,
                                                             unsigned queue_depth) {
  auto owned = std::make_unique<MemberFds>();
  owned->count = static_cast<uint32_t>(std::min<size_t>(fds.size(), kMembersMax));
  for (uint32_t i = 0; i < owned->count; ++i) owned->fd[i] = fds[i];
  RAIDFS_TRY(auto io, create(*owned, queue_depth));
  io->owned_ = std::move(owned);
  return io;
}

Result<std::unique_ptr<UringMemberIo>> UringMemberIo::create(const MemberFds& table,
                                                             unsigned queue_depth) {
  std::unique_ptr<UringMemberIo> io(new UringMemberIo());
  io->depth_ = queue_depth;
  io->table_ = &table;
  io->load_table();

  io_uring_params params{};
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  int rc = io_uring_queue_init_params(queue_depth, &io->ring_, &params);
  if (rc == -EINVAL) {  // kernels before 6.1 lack these flags
    params = {};
    rc = io_uring_queue_init_params(queue_depth, &io->ring_, &params);
  }
  if (rc < 0)
    return fail(-rc, std::string("cannot set up io_uring: ") + std::strerror(-rc) +
                         (rc == -ENOMEM ? " (raise RLIMIT_MEMLOCK)" : ""));
  io->ring_ready_ = true;

  rc = io_uring_register_files(&io->ring_, io->fds_.data(), static_cast<unsigned>(io->fds_.size()));
  if (rc < 0)
    return fail(-rc, std::string("cannot register member files with io_uring: ") + std::strerror(-rc));
  return io;
}

void UringMemberIo::load_table() {
  seen_version_ = table_->version.load();
  fds_.assign(table_->slots(), -1);
  sync_.assign(table_->slots(), false);
  for (uint32_t i = 0; i < table_->slots(); ++i) {
    fds_[i] = (*table_)[i];
    sync_[i] = fds_[i] >= 0 && file_lacks_nowait(fds_[i]);
  }
}

void UringMemberIo::follow_table() {
  if (table_->version.load() == seen_version_) return;
  load_table();
  // The ring holds the files it registered, not the numbers: register the table again (the
  // old device is let go once no request of this ring uses it).
  const int rc = io_uring_register_files_update(&ring_, 0, fds_.data(), static_cast<unsigned>(fds_.size()));
  if (rc < 0) broken_ = -rc;  // every later request fails with the error rather than reach the old device
}

UringMemberIo::~UringMemberIo() {
  if (ring_ready_) io_uring_queue_exit(&ring_);
}

Result<void> UringMemberIo::register_buffers(std::span<const std::span<uint8_t>> ranges) {
  if (!ranges_.empty()) {
    io_uring_unregister_buffers(&ring_);
    ranges_.clear();
  }
  if (ranges.empty()) return {};
  std::vector<iovec> iov;
  for (auto r : ranges) iov.push_back({r.data(), r.size()});
  int rc = io_uring_register_buffers(&ring_, iov.data(), static_cast<unsigned>(iov.size()));
  if (rc < 0)
    return fail(-rc, std::string("cannot register I/O buffers: ") + std::strerror(-rc));
  for (size_t i = 0; i < ranges.size(); ++i)
    ranges_.push_back({ranges[i].data(), ranges[i].data() + ranges[i].size(), static_cast<int>(i)});
  std::sort(ranges_.begin(), ranges_.end(), [](auto& a, auto& b) { return a.begin < b.begin; });
  return {};
}

int UringMemberIo::fixed_index(const uint8_t* p, uint32_t len) const {
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), p,
                             [](const uint8_t* q, const Range& r) { return q < r.begin; });
  if (it == ranges_.begin()) return -1;
  --it;
  return p + len <= it->end ? it->index : -1;
}

void UringMemberIo::prepare(io_uring_sqe* sqe, const IoRequest& r, uint32_t done, uint64_t tag) {
  const int file = static_cast<int>(r.member);  // index into the registered files
  uint8_t* buf = r.buffer + done;
  const uint32_t len = r.length - done;
  const uint64_t off = r.offset + done;
  switch (r.op) {
    case IoOp::kRead:
    case IoOp::kWrite: {
      int index = fixed_index(buf, len);
      if (index >= 0) {
        ++fixed_request_count_;
        if (r.op == IoOp::kRead)
          io_uring_prep_read_fixed(sqe, file, buf, len, off, index);
        else
          io_uring_prep_write_fixed(sqe, file, buf, len, off, index);
      } else if (r.op == IoOp::kRead) {
        io_uring_prep_read(sqe, file, buf, len, off);
      } else {
        io_uring_prep_write(sqe, file, buf, len, off);
      }
      break;
    }
    case IoOp::kFlush:
      io_uring_prep_fsync(sqe, file, IORING_FSYNC_DATASYNC);
      break;
  }
  sqe->flags |= IOSQE_FIXED_FILE;
  io_uring_sqe_set_data64(sqe, tag);
}

void UringMemberIo::run_synchronously(IoRequest& r) {
  ++sync_request_count_;
  const int fd = fds_[r.member];
  if (r.op == IoOp::kFlush) {
    r.result = ::fdatasync(fd) == 0 ? 0 : -errno;
    return;
  }
  uint32_t done = 0;
  while (done < r.length) {
    const ssize_t n = r.op == IoOp::kRead
                          ? ::pread(fd, r.buffer + done, r.length - done, r.offset + done)
                          : ::pwrite(fd, r.buffer + done, r.length - done, r.offset + done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      r.result = -errno;
      return;
    }
    if (n == 0) {
      r.result = -EIO;  // end of the member before the transfer finished
      return;
    }
    done += static_cast<uint32_t>(n);
  }
  r.result = static_cast<int32_t>(r.length);
}

void UringMemberIo::execute(std::span<IoRequest> batch) {
  if (broken_ != 0) {  // the ring failed earlier: nothing can be submitted safely any more
    for (IoRequest& r : batch) r.result = -broken_;
    return;
  }
  follow_table();
  if (broken_ != 0) {
    for (IoRequest& r : batch) r.result = -broken_;
    return;
  }
  // Every request on a member whose file io_uring would hand to a worker: the calling thread
  // does them itself (see the header comment).
  if (std::all_of(batch.begin(), batch.end(), [&](const IoRequest& r) {
        return r.member < fds_.size() && sync_[r.member];
      })) {
    for (IoRequest& r : batch) run_synchronously(r);
    return;
  }
  done_.assign(batch.size(), 0);
  queue_.clear();
  for (uint32_t i = 0; i < batch.size(); ++i) {
    IoRequest& r = batch[i];
    if (r.member >= fds_.size() || fds_[r.member] < 0)
      r.result = -ENODEV;
    else {
      r.result = -EINPROGRESS;
      queue_.push_back(i);
    }
  }
  // Requests go in queue order; a short transfer re-enters the queue for its remainder.
  size_t next = 0;
  unsigned in_flight = 0;
  while (next < queue_.size() || in_flight > 0) {
    while (next < queue_.size() && in_flight < depth_) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
      if (sqe == nullptr) break;
      uint32_t i = queue_[next++];
      prepare(sqe, batch[i], done_[i], i);
      ++in_flight;
    }
    int rc = io_uring_submit_and_wait(&ring_, 1);
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
      // The ring itself failed (e.g. EEXIST: used from a thread other than its creator). SQEs may
      // be left in it and completions may still arrive, so it is never used again: this batch and
      // every later one fail with the ring's error, which is not a member's fault.
      broken_ = -rc;
      for (IoRequest& r : batch)
        if (r.result == -EINPROGRESS) r.result = rc;
      return;
    }
    io_uring_cqe* cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      ++seen;
      --in_flight;
      uint32_t i = static_cast<uint32_t>(io_uring_cqe_get_data64(cqe));
      IoRequest& r = batch[i];
      int res = cqe->res;
      if (res == -EAGAIN || res == -EINTR) {
        queue_.push_back(i);
      } else if (res < 0) {
        r.result = res;
      } else if (r.op == IoOp::kFlush) {
        r.result = 0;
      } else if (res == 0) {
        r.result = -EIO;  // end of device before the transfer finished
      } else {
        done_[i] += static_cast<uint32_t>(res);
        if (done_[i] < r.length)
          queue_.push_back(i);
        else
          r.result = static_cast<int32_t>(r.length);
      }
    }
    io_uring_cq_advance(&ring_, seen);
  }
}

}  // namespace raidfs
