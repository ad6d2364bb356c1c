// Scrubber: the online scrub of a mounted array.
//
// A self-contained array's metadata region first (meta::RegionFs::scrub with repair: every copy
// of every block in use checked, a bad copy rewritten from a good one), then every sealed stripe
// once, in stripe-id order (which is member-offset order: sequential reads on
// every member), through Array::scrub_stripe with repair: each filled block against its versioned
// checksum, each parity row against the data; a block that fails is rebuilt from parity and
// rewritten, a wrong parity row recomputed and rewritten — both leave what the metadata says
// intact (the content is the verified one), so the write hole stays closed. A row beyond repair
// is counted and reported with the files that own its blocks (meta/block_owners.h). Open stripes
// are skipped: their parity lives in the metadata and the writer is changing them (fsck checks
// them offline).
//
// It runs on a thread of its own, one stripe at a time, holding the stripe-reuse lock shared
// around each (as a reader does: the stripe cannot be freed and handed out again under it), at
// most `rate_bytes_per_s` when set. Progress (meta::ScrubState) is checkpointed in the metadata
// every kCheckpointStripes stripes and when it stops; a scrub that an unmount or a crash
// interrupted resumes from its cursor when the filesystem opens (resume_if_interrupted).
//
// Threads: start/stop/progress from any thread; one scrub at a time.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"
#include "fs/io_context.h"
#include "fs/pacer.h"
#include "meta/fs_meta.h"
#include "meta/region_fs.h"
#include "base/aligned_buffer.h"
#include "raid/array.h"

namespace raidfs::fs {

struct ScrubProgress {
  meta::ScrubState state;
  double rate_bytes_per_s = 0;  // over the last ~10 s of the running scrub
  double eta_s = -1;            // -1: unknown
  std::vector<std::string> lost;  // the last few rows beyond repair, with their files
  // A self-contained array's metadata region, as this mount's last scrub found it (every copy of
  // every block in use; bad copies repaired). `region_scrubbed` false: none yet.
  bool region_scrubbed = false;
  meta::RegionFs::ScrubReport region;
};

class Scrubber {
 public:
  static constexpr uint64_t kCheckpointStripes = 64;
  static constexpr size_t kLostReportsMax = 16;

  // `make_context` gives the scrub thread its own member I/O.
  Scrubber(Array& array, meta::FsMeta& meta, std::shared_mutex& stripe_reuse,
           std::function<Result<std::unique_ptr<IoContext>>()> make_context);
  ~Scrubber();  // stops (checkpointed) and joins
  Scrubber(const Scrubber&) = delete;
  Scrubber& operator=(const Scrubber&) = delete;

  // Starts a scrub — a new one, or the stopped one from where it stopped. EBUSY one is running;
  // the metadata's errors otherwise.
  Result<void> start(uint64_t rate_bytes_per_s = 0);
  // Stops a running scrub (its progress kept: start() resumes it). ENOENT none is running.
  Result<void> stop();
  // A scrub the last mount left running (unmount, crash) goes on. Nothing if there is none.
  Result<void> resume_if_interrupted();
  bool running() const { return running_.load(); }
  ScrubProgress progress() const;

 private:
  void run();
  // Scrubs one sealed stripe (re-read under the reuse lock: it may have changed since listed).
  Result<void> scrub_one(IoContext& ctx, uint64_t id);
  void report_lost(uint64_t stripe, const std::vector<uint32_t>& blocks);
  Result<void> launch(meta::ScrubState state, uint64_t rate_bytes_per_s);

  Array& array_;
  meta::FsMeta& meta_;
  std::shared_mutex& stripe_reuse_;
  const std::function<Result<std::unique_ptr<IoContext>>()> make_context_;

  mutable std::mutex mu_;  // guards state_, lost_, pacer_, stop_requested_ (a leaf)
  std::condition_variable cv_;
  meta::ScrubState state_;
  std::deque<std::string> lost_;
  bool region_scrubbed_ = false;
  meta::RegionFs::ScrubReport region_;
  Pacer pacer_;  // bytes read
  bool stop_requested_ = false;
  std::atomic<bool> running_{false};
  AlignedBuffer chunks_;  // one stripe, the scrub thread's
  std::thread thread_;
};

}  // namespace raidfs::fs
