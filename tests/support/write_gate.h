// WriteGate and GatedIo: a MemberIo wrapper that holds batches with a write at the gate, so
// that a test can catch the write path in its member I/O (a seal under way, a write's whole
// stripes) and look at what goes on meanwhile.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <span>

#include "raid/member_io.h"

namespace raidfs::testing {

// Holds member writes while armed (and not yet opened): the writer's sealer stops at its seal,
// or (arm_first) one write caught in its member I/O.
class WriteGate {
 public:
  void arm() { armed_ = true; }
  // Holds the first batch with a write from now on; the others pass.
  void arm_first() {
    first_only_ = true;
    armed_ = true;
  }
  void pass() {
    if (!armed_) return;
    std::unique_lock lock(mu_);
    if (first_only_ && waiting_ > 0) return;
    ++waiting_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
  }
  bool wait_for_writer() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return waiting_ > 0; });
  }
  void open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::atomic<bool> armed_{false};
  std::atomic<bool> first_only_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  int waiting_ = 0;
  bool open_ = false;
};

class GatedIo final : public MemberIo {
 public:
  GatedIo(std::unique_ptr<MemberIo> inner, WriteGate& gate) : inner_(std::move(inner)), gate_(gate) {}
  void execute(std::span<IoRequest> batch) override {
    if (std::any_of(batch.begin(), batch.end(), [](const IoRequest& r) { return r.op == IoOp::kWrite; }))
      gate_.pass();
    inner_->execute(batch);
  }
  Result<void> register_buffers(std::span<const std::span<uint8_t>> ranges) override {
    return inner_->register_buffers(ranges);
  }

 private:
  std::unique_ptr<MemberIo> inner_;
  WriteGate& gate_;
};

}  // namespace raidfs::testing
