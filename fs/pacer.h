// Pacer: the pace of a background job (the scrub, a rebuild) — its rate over the last seconds,
// for status, and an optional ceiling it sleeps to keep.
//
// Not thread-safe: the job's own mutex guards it (throttle() waits on that mutex's condition
// variable, so a stop request wakes it at once).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <utility>

namespace raidfs::fs {

class Pacer {
 public:
  using Clock = std::chrono::steady_clock;

  // Starts over at `bytes` done so far, at most `ceiling_bytes_per_s` from now (0: no ceiling).
  void reset(uint64_t bytes, uint64_t ceiling_bytes_per_s) {
    ceiling_ = ceiling_bytes_per_s;
    start_ = Clock::now();
    since_start_ = 0;
    window_.clear();
    window_.emplace_back(start_, bytes);
  }
  // The job has done `total` bytes in all (a sample), `delta` of them just now.
  void add(uint64_t total, uint64_t delta) {
    since_start_ += delta;
    window_.emplace_back(Clock::now(), total);
    while (window_.size() > 2 && window_.back().first - window_.front().first > kWindow)
      window_.pop_front();
  }
  // Bytes a second over the window (0 until two samples).
  double rate() const {
    if (window_.size() < 2) return 0;
    const double s = std::chrono::duration<double>(window_.back().first - window_.front().first).count();
    return s > 0 ? (window_.back().second - window_.front().second) / s : 0;
  }
  // Sleeps, with `lock` (of the job's mutex) released, until the ceiling allows what was added,
  // or until `stop()` is true.
  template <class Stop>
  void throttle(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, Stop stop) {
    if (ceiling_ == 0) return;
    const auto due = start_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                                  static_cast<double>(since_start_) / ceiling_));
    cv.wait_until(lock, due, stop);
  }

 private:
  static constexpr auto kWindow = std::chrono::seconds(10);
  uint64_t ceiling_ = 0;
  Clock::time_point start_{};
  uint64_t since_start_ = 0;
  std::deque<std::pair<Clock::time_point, uint64_t>> window_;
};

}  // namespace raidfs::fs
