// CommitTimer: see commit_timer.h.
#include "fs/commit_timer.h"

#include "base/thread_name.h"

namespace raidfs::fs {

CommitTimer::CommitTimer(std::chrono::milliseconds interval, std::function<void()> commit)
    : interval_(interval), commit_(std::move(commit)), thread_([this] { run(); }) {}

CommitTimer::~CommitTimer() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void CommitTimer::run() {
  name_this_thread("raidfs-commit");
  std::unique_lock lock(mu_);
  for (;;) {
    if (cv_.wait_for(lock, interval_, [this] { return stop_; })) return;
    lock.unlock();
    commit_();
    lock.lock();
  }
}

}  // namespace raidfs::fs
