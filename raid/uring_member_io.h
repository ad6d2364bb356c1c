// UringMemberIo: MemberIo on one io_uring, for the thread that creates it.
//
// The members' file descriptors are registered with the ring (fixed files) and the memory the
// caller registers becomes fixed buffers, so a request inside a registered range is issued as
// READ_FIXED / WRITE_FIXED: the kernel does not map and pin the pages per I/O, and with O_DIRECT
// members the data moves between the device and that memory with no copy. A batch goes to the
// kernel in as few io_uring_enter calls as the ring's depth allows (one when it fits).
//
// A member whose file cannot do non-blocking I/O (a regular file on tmpfs, for one: preadv2 with
// RWF_NOWAIT says EOPNOTSUPP) has each of its requests handed by io_uring to an io-wq worker
// thread, which does it with the same blocking call: two thread switches per I/O, more than a
// 4 KiB read from memory costs. A batch whose every request is on such members is therefore run
// here with plain system calls on the calling thread, one after the other; a batch that also
// has requests for members that can go non-blocking goes through the ring. The same bytes move
// from and to the same memory, and nothing is copied in user space either way. What is given up
// is the workers running a batch's copies in parallel: measured on 2 CPUs with tmpfs members,
// the hand-offs cost more (docs/decisions.md).
//
// The descriptors come from the array's MemberFds table; a batch begins by registering them
// again if the table changed (a member replaced).
//
// The ring is set up SINGLE_ISSUER + DEFER_TASKRUN where the kernel has them: only the creating
// thread may call execute() and register_buffers(). If the ring itself fails (io_uring_enter
// returns an error, e.g. EEXIST from another thread) the object is spent: every request of that
// and every later batch completes with that error.
#pragma once

#include <liburing.h>

#include <memory>
#include <span>
#include <vector>

#include "raid/member_fds.h"
#include "raid/member_io.h"

namespace raidfs {

class UringMemberIo final : public MemberIo {
 public:
  static constexpr unsigned kQueueDepthDefault = 128;

  // `table` gives member i's descriptor, or -1 for a member that is not present. The table and
  // its descriptors stay owned by the caller and must outlive this object. Errors: the ring could
  // not be set up (e.g. ENOMEM from a low RLIMIT_MEMLOCK, ENOSYS without io_uring), message says
  // which.
  static Result<std::unique_ptr<UringMemberIo>> create(const MemberFds& table,
                                                       unsigned queue_depth = kQueueDepthDefault);
  // The same over a fixed list of descriptors (tests, tools).
  static Result<std::unique_ptr<UringMemberIo>> create(std::span<const int> fds,
                                                       unsigned queue_depth = kQueueDepthDefault);
  ~UringMemberIo() override;

  void execute(std::span<IoRequest> batch) override;
  Result<void> register_buffers(std::span<const std::span<uint8_t>> ranges) override;

  // Number of requests issued through fixed buffers so far (the rest went unregistered).
  uint64_t fixed_request_count() const { return fixed_request_count_; }
  // Number of requests issued with plain system calls (batches wholly on members that cannot do
  // non-blocking I/O).
  uint64_t sync_request_count() const { return sync_request_count_; }
  // Whether member i cannot do non-blocking I/O (see the header comment).
  bool lacks_nowait(uint32_t member) const { return member < sync_.size() && sync_[member]; }

 private:
  UringMemberIo() = default;
  // Index of the registered range holding [p, p + len), or -1.
  int fixed_index(const uint8_t* p, uint32_t len) const;
  void prepare(io_uring_sqe* sqe, const IoRequest& r, uint32_t done, uint64_t tag);
  // Takes the table's descriptors (and which lack non-blocking I/O).
  void load_table();
  // Registers the table again if it changed since load_table().
  void follow_table();
  // Runs request r to completion with system calls on this thread.
  void run_synchronously(IoRequest& r);

  io_uring ring_{};
  bool ring_ready_ = false;
  unsigned depth_ = 0;
  const MemberFds* table_ = nullptr;
  std::unique_ptr<MemberFds> owned_;  // the table when made from a list
  uint64_t seen_version_ = 0;
  std::vector<int> fds_;              // the table as last registered
  std::vector<bool> sync_;      // per member: cannot do non-blocking I/O
  struct Range {
    const uint8_t* begin;
    const uint8_t* end;
    int index;
  };
  std::vector<Range> ranges_;   // sorted by begin
  std::vector<uint32_t> done_;  // per-request bytes completed, reused between batches
  std::vector<uint32_t> queue_; // requests waiting for a submission slot
  uint64_t fixed_request_count_ = 0;
  uint64_t sync_request_count_ = 0;
  int broken_ = 0;  // errno of a ring-level failure; once set, every request fails with it
};

}  // namespace raidfs
