// ClassicTransport: serves a mounted raidfs over the classic /dev/fuse read/write loop.
//
// `threads` workers each read one whole request at a time from the FUSE device, hand it to the
// RequestDispatcher, and write the reply with one writev (header, fixed struct, data). Each
// worker owns, for its whole life, an IoContext (its own io_uring for member I/O, made on the
// worker's thread because the ring is single-issuer), a request buffer of max_write + 4 KiB and a
// reply buffer of max_write rounded up to 4 KiB + 4 KiB, both 4 KiB-aligned: READ data is read
// from the members straight into the reply buffer, WRITE data goes to the Filesystem straight
// from the request buffer — read into it at an offset that puts WRITE data on a page boundary,
// so whole stripes of it go to the members uncopied; nothing is allocated per request.
//
// The worker's request and reply buffers (and its bounce buffer) are registered as io_uring
// fixed buffers of its member ring, so member reads into the reply buffer go as READ_FIXED.
//
// Alongside the io_uring transport (fs/uring_transport.h) this transport carries INIT, then
// FORGET, INTERRUPT and notifications: it starts with one worker, calls the after-INIT hook once
// the INIT reply is written (the rings may register only then), and grows to its full worker
// count with grow() if the kernel keeps sending everything over /dev/fuse.
//
// Lifetime: run() returns when every worker has exited, which happens when the FUSE connection
// ends (the filesystem was unmounted, or the connection aborted: reads fail with ENODEV). stop()
// asks workers to exit after their current request; one waiting in read() wakes only at the next
// request or at the end of the connection, so a caller that wants run() to return promptly
// unmounts (FuseMount::unmount), which ends the connection.
//
// Threads: run() once, from one thread; stop() and grow() from any thread, any time; the hook
// is set before run(). The fd, Filesystem and dispatcher must outlive run().
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <thread>
#include <vector>

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
  ~ClassicTransport();
  ClassicTransport(const ClassicTransport&) = delete;
  ClassicTransport& operator=(const ClassicTransport&) = delete;

  // Serves until the connection ends. An error only when no worker could start (no IoContext
  // could be made: the message says why); workers that start serve even if others could not.
  Result<void> run();
  void stop() { stopping_.store(true, std::memory_order_relaxed); }
  // Raises the number of workers to `threads` (clamped to kThreadsMax); never lowers it. Before
  // run() it sets the starting count; after run() returned it does nothing.
  void grow(unsigned threads);
  // Called once, on the worker that answered it, right after the reply to a successful INIT was
  // written (the kernel has then taken the negotiated parameters).
  void set_after_init(std::function<void()> hook) { after_init_ = std::move(hook); }

  // Requests served since construction (all workers).
  uint64_t requests() const { return requests_.load(std::memory_order_relaxed); }
  unsigned threads() const;

 private:
  struct Worker;
  void serve(Worker& worker);
  void spawn_locked();  // one more worker; mu_ held

  Filesystem& fs_;
  RequestDispatcher& dispatcher_;
  int fd_;
  std::function<void()> after_init_;
  std::atomic<bool> init_hook_done_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> requests_{0};
  size_t request_bytes_ = 0;
  size_t reply_bytes_ = 0;

  mutable std::mutex mu_;  // guards the fields below
  unsigned threads_;       // workers wanted
  bool running_ = false;   // run() has started the workers and not yet returned
  bool finished_ = false;  // run() returned: no more workers
  std::list<Worker> workers_;  // stable addresses: each thread holds its Worker
  std::vector<std::thread> unjoined_;
};

}  // namespace raidfs::fs
