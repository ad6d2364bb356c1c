// SyncMemberIo: MemberIo with plain system calls (pread, pwrite, fdatasync) on the calling thread,
// over a MemberFds table — the metadata region's I/O (raid/meta_region.h).
//
// The region's writes are small and frequent (RocksDB's log block at every commit), and its
// descriptors are buffered ones (Array::make_region_io): a write is a copy into the page cache,
// made on the calling thread in about a microsecond, where handing it to an io_uring worker
// (what the ring does for a buffered or tmpfs file) costs two thread switches. fdatasync makes it
// durable. Flushes run one after another while they are quick (tmpfs, a write-through device:
// a microsecond each, less than a hand-off to another thread); while they take longer on average
// than kSlowFlushNs (a disk's cache flush), batches of several go to an io_uring of its own, whose
// workers run them in parallel. Reads and writes run one after another, in order. One thread at
// a time, the one that made it (the ring's rule).
#pragma once

#include <memory>

#include "raid/member_fds.h"
#include "raid/member_io.h"

namespace raidfs {

class SyncMemberIo final : public MemberIo {
 public:
  // `fds` must outlive this object.
  explicit SyncMemberIo(const MemberFds& fds);
  ~SyncMemberIo() override;
  void execute(std::span<IoRequest> batch) override;
  // Nothing to register: the copy into the page cache is the transfer.
  Result<void> register_buffers(std::span<const std::span<uint8_t>>) override { return {}; }

  static constexpr int64_t kSlowFlushNs = 50'000;

 private:
  // Keeps the moving average of a flush's time (a batch's, over its flushes).
  void flushed(int64_t ns, int64_t count);
  void run(IoRequest& r);
  const MemberFds& fds_;
  std::unique_ptr<MemberIo> flush_ring_;  // made at the first batch of several flushes
  bool no_ring_ = false;                  // the kernel would not give one: flush one by one
  int64_t flush_ns_ = 0;                  // moving average of one flush
};

}  // namespace raidfs
