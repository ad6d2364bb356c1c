// ClassicTransport: serves a mounted raidfs over the classic /dev/fuse read/write loop.
//
// `threads` workers each read one whole request at a time from the FUSE device, hand it to the
// RequestDispatcher, and write the reply with one writev (header, fixed struct, data). Each
// worker owns, for its whole life, an IoContext (its own io_uring for member I/O, made on the
// worker's thread because the ring is single-issuer), a request buffer of max_write + 4 KiB and a
// reply buffer of max_write rounded up to 4 KiB + 4 KiB, both 4 KiB-aligned: READ data is read
// from the members straight into the reply buffer, WRITE data goes to the Filesystem straight
// from the request buffer; nothing is allocated per request.
//
// Lifetime: run() returns when every worker has exited, which happens when the FUSE connection
// ends (the filesystem was unmounted, or the connection aborted: reads fail with ENODEV). stop()
// asks workers to exit after their current request; one waiting in read() wakes only at the next
// request or at the end of the connection, so a caller that wants run() to return promptly
// unmounts (FuseMount::unmount), which ends the connection.
//
// Threads: run() once, from one thread; stop() from any thread, any time. The fd, Filesystem and
// dispatcher must outlive run().
#pragma once

#include <atomic>
#include <cstdint>

#include "base/result.h"
#include "fs/filesystem.h"
#include "fs/fuse_dispatcher.h"

namespace raidfs::fs {

class ClassicTransport {
 public:
  static constexpr unsigned kThreadsDefault = 4;
  static constexpr unsigned kThreadsMax = 64;

  // `threads` is clamped to 1 .. kThreadsMax.
  ClassicTransport(Filesystem& fs, RequestDispatcher& dispatcher, int fuse_fd,
                   unsigned threads = kThreadsDefault);
  ClassicTransport(const ClassicTransport&) = delete;
  ClassicTransport& operator=(const ClassicTransport&) = delete;

  // Serves until the connection ends. An error only when no worker could start (no IoContext
  // could be made: the message says why); workers that start serve even if others could not.
  Result<void> run();
  void stop() { stopping_.store(true, std::memory_order_relaxed); }

  // Requests served since construction (all workers).
  uint64_t requests() const { return requests_.load(std::memory_order_relaxed); }

 private:
  struct Worker;
  void serve(Worker& worker);

  Filesystem& fs_;
  RequestDispatcher& dispatcher_;
  int fd_;
  unsigned threads_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> requests_{0};
};

}  // namespace raidfs::fs
