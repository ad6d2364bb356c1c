// UringTransport: serves a mounted raidfs over FUSE-over-io_uring (Linux 6.14 and later). The
// kernel has one queue per possible CPU and gives a request to the queue of its caller's CPU;
// each queue here is served by `threads_per_queue` threads (default 2), each with its own ring
// (FuseRingQueue, fs/fuse_ring.h) whose entries register on that queue, all pinned to the
// queue's CPU, so that requests of the applications running there are served with no cross-CPU
// wake-up, each to completion (member I/O on the thread's own member ring):
//   - the first registers its entries last, so the kernel (which gives a request to the entry
//     most recently made available) hands it the first request, and at iodepth 1 every
//     following one: the entry it commits is the one that fetches the next. While the
//     applications there keep many reads in flight, it leaves the CPU to them and runs on the
//     other CPUs (fs/queue_placement.h), and comes back when they wait for each request;
//   - the others (helpers, -o uring_threads=N) stay: when requests come faster than the first
//     thread serves them, they land on the helpers' entries and are served on the callers' CPU
//     in the time the callers leave. One CPU's 32 reads in flight so use two CPUs, as the
//     classic transport's workers do (docs/decisions.md has numbers).
//
// The sequence, as mount.raidfs drives it:
//   1. enable_fuse_over_io_uring(): the module parameter must be Y when the kernel sends INIT.
//   2. prepare(), before the mount: the threads, their rings, buffers and IoContexts. When it
//      fails, the daemon does not ask for FUSE_OVER_IO_URING and /dev/fuse carries everything.
//   3. The mount; the classic transport answers INIT (asking for FUSE_OVER_IO_URING).
//   4. start(fd) right after the INIT reply was written, if the kernel granted io_uring: every
//      queue REGISTERs its entries, and once every queue has one the kernel moves requests from
//      /dev/fuse to the rings (FORGET, INTERRUPT and notifications stay on /dev/fuse). Until
//      then the kernel holds new requests back, so nothing between INIT and start() may block.
//      abandon() instead if it did not grant it: the threads end, nothing was registered.
//      If the kernel refuses a REGISTER, it turns io_uring off for the connection (requests go
//      to /dev/fuse again) and the `on_refused` callback says so, once.
//   5. At unmount the kernel completes every ring command with ENOTCONN: the queues end by
//      themselves. join() waits for that (bounded; then it stops them and closes the rings).
//
// Threads: prepare(), start(), abandon(), join() from the daemon's threads (start() typically
// from the classic worker that answered INIT); stop(), the counters and status_lines() from any
// thread. The Filesystem and dispatcher outlive the transport; the destructor stops and joins.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/result.h"
#include "fs/filesystem.h"
#include "fs/fuse_dispatcher.h"
#include "fs/fuse_ring.h"

namespace raidfs::fs {

// The switch of FUSE-over-io_uring in the fuse module.
inline constexpr const char* kEnableUringPath = "/sys/module/fuse/parameters/enable_uring";

// Returns once `path` reads Y, writing Y first when it reads N (allowed for root). Errors:
// ENOENT the kernel has no FUSE-over-io_uring (older than 6.14 or built without
// CONFIG_FUSE_IO_URING); EACCES/EPERM it is off and this process may not turn it on; the errno
// of the read or write otherwise. Each message says what to do.
Result<void> enable_fuse_over_io_uring(const char* path = kEnableUringPath);

// How many queues the kernel makes: the number of possible CPUs, counted in a CPU list as in
// /sys/devices/system/cpu/possible ("0-3", "0,2-5", "0"). EINVAL for anything else.
Result<unsigned> count_cpu_list(std::string_view list);
Result<unsigned> possible_cpu_count();

struct UringOptions {
  unsigned threads_per_queue = 2;  // the first thread and its helpers (see kThreadsPerQueueDefault)
  unsigned entries_per_ring = 0;   // ring entries of each thread (requests it holds at once);
                                   // 0: UringTransport::default_entries()
  uint32_t max_write = 1u << 20;   // the dispatcher's max_write: sizes the payload buffers
};

class UringTransport {
 public:
  static constexpr unsigned kEntriesDefault = 8;
  static constexpr unsigned kEntriesMin = 2;
  static constexpr unsigned kEntriesMax = 128;
  static constexpr size_t kPayloadBudgetBytes = size_t{256} << 20;
  static constexpr unsigned kThreadsPerQueueDefault = 2;
  static constexpr unsigned kThreadsPerQueueMax = 8;
  // How long a queue's pinned thread waits for its helpers' entries before registering its own.
  static constexpr auto kHelperRegisterWait = std::chrono::seconds(2);
  static constexpr auto kPrepareTimeout = std::chrono::seconds(10);

  UringTransport(Filesystem& fs, RequestDispatcher& dispatcher, UringOptions options);
  ~UringTransport();
  UringTransport(const UringTransport&) = delete;
  UringTransport& operator=(const UringTransport&) = delete;

  // Set before prepare(). Called once, on a queue thread, when the kernel refuses a REGISTER.
  void set_on_refused(std::function<void(const Error&)> callback) {
    on_refused_ = std::move(callback);
  }

  // Starts the queue threads and returns once each has its ring, buffers and IoContext (or
  // kPrepareTimeout passed). Errors: the first queue's failure (the others are ended).
  Result<void> prepare();
  // The kernel granted io_uring at INIT: the queues register on `fuse_fd` and serve.
  void start(int fuse_fd);
  // The kernel did not grant it: the queues end without registering.
  void abandon();
  // Ends the queues whatever they are doing (idempotent). For teardown: a queue the kernel still
  // routes requests to would strand them.
  void stop();
  // Waits until every queue thread has ended; after `timeout`, stops them and waits as long
  // again. Returns whether all ended (the ones that did not are detached and logged).
  bool join(std::chrono::milliseconds timeout);

  unsigned queue_count() const { return queue_count_; }
  unsigned threads_per_queue() const { return threads_per_queue_; }
  // The ring entries a thread gets unless told: kEntriesDefault, fewer where there are many
  // CPUs, so that all payload buffers (queues × threads × entries × payload_bytes of pinned
  // memory: 32 MiB on 2 CPUs) stay within kPayloadBudgetBytes — but never below kEntriesMin.
  static unsigned default_entries(unsigned queues, unsigned threads_per_queue,
                                  size_t payload_bytes);
  unsigned entries_per_ring() const { return entries_; }
  size_t payload_bytes() const { return payload_bytes_; }
  bool started() const;
  bool refused() const;
  // Requests served by each queue (index = qid).
  std::vector<uint64_t> requests_per_queue() const;
  // Status lines (each ending in \n): the queues, and the request and fixed-I/O counters.
  std::string status_lines() const;

 private:
  enum class Phase : uint8_t { kIdle, kPreparing, kStarted, kAbandoned };
  enum class ServerState : uint8_t { kStarting, kReady, kFailed, kRunning, kDone };
  // One thread and its ring: servers_[qid * threads_per_queue + i], i = 0 the pinned one.
  struct Server {
    std::thread thread;
    ServerState state = ServerState::kStarting;
    FuseRingQueue* ring = nullptr;  // while the thread has one
    Error error;
    uint64_t requests = 0;  // the counters once the ring is gone
    uint64_t fixed_ios = 0;
    uint64_t moves = 0;
    bool pinned = false;
    bool registered = false;  // its entries are in the kernel's queue
    bool registered_buffers = false;
  };

  void server_main(unsigned index);
  void refused(const Error& error);
  // Whether every helper of queue `qid` has registered its entries or never will (mu_ held).
  bool helpers_settled(unsigned qid) const;
  uint64_t requests_locked(const Server& s) const {
    return s.ring != nullptr ? s.ring->requests() : s.requests;
  }

  Filesystem& fs_;
  RequestDispatcher& dispatcher_;
  unsigned threads_per_queue_;
  unsigned entries_;
  size_t payload_bytes_;
  unsigned queue_count_ = 0;  // set by prepare()
  std::function<void(const Error&)> on_refused_;
  std::atomic<bool> refused_once_{false};

  mutable std::mutex mu_;  // guards everything below, and each Server but its `thread`
  std::condition_variable cv_;
  Phase phase_ = Phase::kIdle;
  int fuse_fd_ = -1;
  std::string refusal_;
  std::vector<Server> servers_;  // sized by prepare(), never resized after
};

}  // namespace raidfs::fs
