// FaultInjectingIo: a MemberIo that passes requests to another one, except where told to fail.
//
// For tests of failure handling: a member can be made to fail every request with an errno (a dead
// drive), and writes can be dropped silently after a number of them have gone through (a power
// cut: what the drive acknowledged but never stored). Single-threaded, like every MemberIo.
#pragma once

#include <cstdint>
#include <vector>

#include "raid/member_io.h"

namespace raidfs {

class FaultInjectingIo final : public MemberIo {
 public:
  explicit FaultInjectingIo(MemberIo& inner) : inner_(inner) {}

  // Every later request to `member` completes with -error (0 restores the member).
  void fail_member(uint32_t member, int error);
  // Writes to `member` that start in [begin, end) complete with -error once `after` more of
  // them have gone through; reads, flushes and writes elsewhere pass (a medium that refuses
  // writes: ENOSPC under an image file, a read-only device; with a range, the superblock area
  // alone). error 0 restores the member. One rule per member: a later call replaces it.
  void fail_writes(uint32_t member, int error, uint64_t after = 0, uint64_t begin = 0,
                   uint64_t end = UINT64_MAX);
  // After `count` more writes reach the members, further writes report success but are dropped.
  void drop_writes_after(uint64_t count) { writes_left_ = count; dropping_ = true; }

  uint64_t dropped_write_count() const { return dropped_; }

  void execute(std::span<IoRequest> batch) override;
  Result<void> register_buffers(std::span<const std::span<uint8_t>> ranges) override {
    return inner_.register_buffers(ranges);
  }

 private:
  MemberIo& inner_;
  std::vector<int> member_error_;
  struct WriteFault {
    int error = 0;
    uint64_t after = 0;  // writes still let through
    uint64_t begin = 0, end = UINT64_MAX;
  };
  std::vector<WriteFault> write_faults_;  // by member
  bool dropping_ = false;
  uint64_t writes_left_ = 0;
  uint64_t dropped_ = 0;
  std::vector<IoRequest> passed_;
  std::vector<size_t> origin_;
};

}  // namespace raidfs
