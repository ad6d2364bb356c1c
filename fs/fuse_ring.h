// FuseRingQueue: one queue of the FUSE-over-io_uring transport — its ring, its ring entries, and
// the loop that serves the requests the kernel puts in them, all on one thread.
//
// The kernel keeps one queue per possible CPU and gives a request to the queue of the CPU its
// caller runs on (fs/fuse/dev_uring.c). One queue here is:
//   - an io_uring with 128-byte SQEs (a FUSE command carries struct fuse_uring_cmd_req in the
//     SQE's command area), the /dev/fuse descriptor registered with it as a fixed file;
//   - `entries` ring entries, each a 288-byte request header (fuse_uring_req_header: in/out
//     header, per-op struct, entry info) and a 4 KiB-aligned payload buffer of payload_bytes
//     (at least the kernel's max(8 KiB, max_write, max_pages × 4 KiB), or REGISTER is refused);
//   - an IoContext for member I/O whose fixed buffers are the payload buffers (one range): a
//     READ's member data lands in the payload — which is the reply — through READ_FIXED, and a
//     WRITE's data goes from the payload to the members through WRITE_FIXED. No user-space copy.
//
// Each entry moves through EntryState; advance() is the one place that changes it and checks
// that the move is legal:
//
//   kIdle ──REGISTER──> kFetching ──CQE 0 (a request is in the buffers)──> kServing
//   kServing ──reply written, COMMIT_AND_FETCH──> kFetching
//   kFetching ──CQE -EAGAIN/-EINTR──> kFetching                  (the same command again)
//   kFetching ──CQE ENOTCONN/ENODEV/ECONNABORTED/ECANCELED──> kEnded   (the connection ended)
//   kFetching ──REGISTER refused──> kEnded     (the kernel then turns io_uring off: /dev/fuse)
//   kFetching ──COMMIT_AND_FETCH refused──> kFetching by a fresh REGISTER of the same buffers
//                                             (the request was gone; the entry must not be lost)
//
// A request is served to completion on the queue's thread — decoded, run against the Filesystem
// with member I/O on this thread's own ring, answered — before the next completion is looked at:
// a hand-off between threads costs more than the request itself on small machines (DESIGN.md 7).
// (Handing READs of a deep batch to helper threads was tried: the futex wake-up per request ate
// the gain.) What moves instead is the thread: with FuseRingConfig::move set, a QueuePlacement
// watches the requests and the thread spreads off its CPU while its callers keep many reads in
// flight, and comes back when they wait for each request (fs/queue_placement.h).
//
// Threads: create() and run() on the queue's own thread (both rings are single-issuer); stop()
// and the counters from any thread. The Filesystem and the dispatcher outlive the queue.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "base/result.h"
#include "fs/filesystem.h"
#include "fs/fuse_dispatcher.h"
#include "fs/queue_placement.h"

namespace raidfs::fs {

struct FuseRingConfig {
  uint16_t qid = 0;
  unsigned entries = 8;
  size_t payload_bytes = 1u << 20;  // a multiple of 4 KiB
  // Called (on the queue's thread, at most once per queue) when the kernel refuses a REGISTER;
  // it has then switched the connection back to /dev/fuse.
  std::function<void(const Error&)> on_refused;
  // Moves the calling (queue) thread to its CPU or over all; none: the thread stays where it is.
  std::function<void(QueuePlacement::Where)> move;
};

class FuseRingQueue {
 public:
  // On the calling thread, which must be the one that calls run(): the ring (ENOSYS/EINVAL: the
  // kernel lacks io_uring or 128-byte SQEs; ENOMEM), the buffers, an eventfd for stop(), and an
  // IoContext with the payload buffers registered as fixed buffers (when that fails — a low
  // RLIMIT_MEMLOCK — member I/O still works, unregistered, and a warning is logged).
  static Result<std::unique_ptr<FuseRingQueue>> create(Filesystem& fs,
                                                       RequestDispatcher& dispatcher,
                                                       FuseRingConfig config);
  ~FuseRingQueue();
  FuseRingQueue(const FuseRingQueue&) = delete;
  FuseRingQueue& operator=(const FuseRingQueue&) = delete;

  // Registers every entry on `fuse_fd` (INIT must have been answered, granting io_uring), calls
  // `registered` once the kernel has them (it takes REGISTER as it is submitted), and serves
  // until every entry has ended — the connection ended, or the kernel refused them — or stop()
  // was called. Errors: the ring itself failed (the message says how).
  Result<void> run(int fuse_fd, const std::function<void()>& registered = {});
  // Makes run() return soon (any thread, idempotent). While the connection lives and the kernel
  // routes requests to the rings, a stopped queue strands its CPU's requests: for teardown only.
  void stop();

  uint16_t qid() const { return config_.qid; }
  uint64_t requests() const { return requests_.load(std::memory_order_relaxed); }
  // Member I/Os issued from registered (fixed) buffers on this queue's IoContext.
  uint64_t fixed_member_ios() const { return fixed_ios_.load(std::memory_order_relaxed); }
  bool buffers_registered() const { return buffers_registered_; }
  // Whether the thread is spread off its CPU now, and how often it moved.
  bool spread() const { return spread_.load(std::memory_order_relaxed); }
  uint64_t placement_moves() const { return moves_.load(std::memory_order_relaxed); }

 private:
  enum class EntryState : uint8_t { kIdle, kFetching, kServing, kEnded };
  enum class Event : uint8_t { kSubmitted, kRequest, kCommitted, kRetry, kEnd };
  struct Entry;
  struct Ring;  // the io_uring (liburing stays out of this header)

  FuseRingQueue(RequestDispatcher& dispatcher, FuseRingConfig config);
  void advance(Entry& e, Event event);
  // Queues the entry's command (REGISTER or COMMIT_AND_FETCH) in the SQ; false: no SQE free.
  bool queue_command(Entry& e, uint32_t cmd_op);
  void on_completion(uint64_t tag, int32_t res);
  void serve(Entry& e);
  void end_entry(Entry& e, int error);

  RequestDispatcher& dispatcher_;
  FuseRingConfig config_;
  // Destroyed in reverse: the ring first (the kernel lets go of the buffers), then the member
  // I/O context (its fixed-buffer registration), then the buffers.
  AlignedBuffer headers_;   // entries × 288 bytes
  AlignedBuffer payloads_;  // entries × payload_bytes, one fixed-buffer range
  std::unique_ptr<Entry[]> entries_;
  std::unique_ptr<IoContext> ctx_;
  std::unique_ptr<Ring> ring_;
  int stop_fd_ = -1;
  int fuse_fd_ = -1;
  bool fixed_file_ = false;
  bool buffers_registered_ = false;
  bool refused_reported_ = false;
  bool stopping_ = false;  // the stop poll fired (queue thread only)
  unsigned live_entries_ = 0;
  unsigned reregisters_ = 0;
  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> fixed_ios_{0};
  QueuePlacement placement_;  // queue thread only; mirrored below for the counters
  std::optional<QueuePlacement::Where> move_to_;  // decided, to do once the reply is submitted
  std::atomic<bool> spread_{false};
  std::atomic<uint64_t> moves_{0};
};

}  // namespace raidfs::fs
