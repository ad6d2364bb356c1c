// ProgressBar: a one-line progress bar on stderr for long work (mkfs, fsck, scrub, the demo),
// drawn only when stderr is a terminal, so logs and pipes get no control characters.
// Single-threaded; update() is cheap enough to call per item (it redraws at most 10 times/s).
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace raidfs {

class ProgressBar {
 public:
  ProgressBar(std::string label, uint64_t total)
      : label_(std::move(label)), total_(total ? total : 1), enabled_(::isatty(STDERR_FILENO)) {}
  ~ProgressBar() { finish(); }

  void update(uint64_t done) {
    if (!enabled_) return;
    auto now = std::chrono::steady_clock::now();
    if (done < total_ && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const int width = 40;
    const int filled = static_cast<int>(width * std::min(done, total_) / total_);
    std::fprintf(stderr, "\r%s [%s%s] %3d%%", label_.c_str(), std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(), static_cast<int>(100 * std::min(done, total_) / total_));
    std::fflush(stderr);
    drawn_ = true;
  }

  void finish() {
    if (enabled_ && drawn_) std::fputc('\n', stderr);
    drawn_ = false;
  }

 private:
  std::string label_;
  uint64_t total_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace raidfs
