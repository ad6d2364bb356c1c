// CommitTimer: makes what nobody fsyncs durable by time.
//
// A FUSE daemon never hears sync(1) (the kernel sends SYNCFS to virtiofs-like servers only), so
// time is its only cue, as for ext4's commit= and ZFS's txg timeout. A CommitTimer calls its
// `commit` function every `interval` on a thread of its own — the Filesystem's commits the open
// stripe's pending data (a partial flush) and syncs the metadata log — so data written and closed
// is durable at most an interval (plus the commit's own time) later.
//
// Threads: `commit` runs on the timer's thread only, never concurrently with itself; the
// destructor stops the timer and waits for a commit in progress.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace raidfs::fs {

class CommitTimer {
 public:
  CommitTimer(std::chrono::milliseconds interval, std::function<void()> commit);
  ~CommitTimer();
  CommitTimer(const CommitTimer&) = delete;
  CommitTimer& operator=(const CommitTimer&) = delete;

 private:
  void run();

  const std::chrono::milliseconds interval_;
  const std::function<void()> commit_;
  std::mutex mu_;  // guards stop_
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;  // last: starts once the rest is built
};

}  // namespace raidfs::fs
