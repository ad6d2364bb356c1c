// QueuePlacement: where a FUSE-over-io_uring queue's thread should run — pinned to the queue's
// CPU, or spread over every CPU the daemon may use — judged from what the queue has been doing.
//
// The kernel gives a request to the queue of the CPU its caller runs on, so a queue's requests
// come from the applications on that CPU. Which placement serves them best depends on whether
// the caller waits for each one:
//   - a caller that blocks (read(2), iodepth 1) leaves its CPU idle while the queue works:
//     serving there is a wake-up without an inter-processor interrupt, and nothing competes.
//     Pinned: 4 KiB reads at iodepth 1 run at ~68k IOPS here, spread ~30k.
//   - a caller that keeps many reads in flight (libaio, io_uring, several threads) keeps its CPU
//     busy: a pinned queue thread then takes turns with it on one CPU while the others idle.
//     Spread: 4 KiB reads at iodepth 32 run at ~125k IOPS here, pinned ~90k.
// Deep WRITE streams stay pinned: they serialise on the file's stripe writer, and spread they
// measured 13k IOPS against 23k pinned (4 KiB, iodepth 16).
//
// The signal: requests served per sleep of the queue's thread. A blocking caller gives one
// request per sleep; a deep one gives several, because each commit brings the next request
// with it. Every kWindow requests the window is judged, with a margin each way so a workload at
// the boundary does not make the thread move back and forth:
//   spread  when at least 90% were READs and requests >= 2 x sleeps;
//   pinned  when fewer than 90% were READs or requests < 1.5 x sleeps.
//
// Pure logic, no system calls: the queue's thread feeds it and moves itself (fs/fuse_ring.h).
// Not thread-safe: one queue thread.
#pragma once

#include <cstdint>
#include <optional>

namespace raidfs::fs {

class QueuePlacement {
 public:
  enum class Where : uint8_t { kPinned, kSpread };
  static constexpr unsigned kWindow = 256;

  // A request was served (`read`: it was a FUSE READ). At the end of a window whose verdict
  // differs from the current placement, returns the new one (which becomes current).
  std::optional<Where> on_request(bool read);
  // The queue's thread is about to sleep: it has no request to serve.
  void on_sleep() { ++sleeps_; }

  Where where() const { return where_; }
  uint64_t moves() const { return moves_; }

 private:
  Where where_ = Where::kPinned;
  unsigned requests_ = 0;
  unsigned reads_ = 0;
  unsigned sleeps_ = 0;
  uint64_t moves_ = 0;
};

}  // namespace raidfs::fs
