// Rebuilder: brings a member back up to date online (raidfs rebuild).
//
// The member — failed or missing, its device present — becomes kRebuilding (Array): from that
// moment every write includes it, and it is read only where it is known good. Starting is one
// step with no write in flight (StripeWriter::seal_after): the member joins the writes, the next
// stripe generation is noted (from_generation), and the open stripe is sealed. Every stripe
// allocated afterwards has a generation ≥ from_generation and is written full width, so it is
// skipped; every committed stripe below it is rebuilt, in stripe-id (member-offset) order: its
// data read through the filesystem's read path (verified, the member's blocks reconstructed —
// for an open stripe through its metadata parity) and the member's chunk written — its data
// chunk, or for a sealed stripe the parity chunk it holds, recomputed. Every `checkpoint_stripes`
// stripes (64 by default) the member is flushed, then the cursor advanced (the Array reads the member below it)
// and checkpointed in the metadata (meta::RebuildState): an unmount or a crash resumes from it
// at the next mount, never trusting a stripe it has not flushed. At the end the member is active
// again, recorded in the superblocks.
//
// A self-contained array's metadata region comes first: every region block in use is copied onto
// the member from a good copy (meta::RegionFs::scrub), and only then may the member's copies be
// read (Array::set_meta_restored); the region's writes include the member from the start.
//
// Which stripes: those committed below from_generation — and of those, for a member that was
// missing and is back, only the ones of a generation ≥ the write floor when it left
// (Array::member_since): the older ones were on it then and no live stripe is ever rewritten in
// place, so they are skipped and counted. A failed member, or a new device (replace), gets every
// one.
//
// Replace: start_replace puts the new device under the member's index (Array::replace_member)
// in that same no-write step, with the stripe-reuse lock held exclusively so that no read of the
// member's old chunks is in flight, and the rebuild then runs as above onto the new device. While
// the old device still reads (it was active), a data chunk is copied from it when every block
// matches its checksum — one chunk read instead of k — and rebuilt from the others otherwise;
// parity chunks, which have no checksum, are always recomputed from the verified data.
//
// It works one stripe at a time under the stripe-reuse lock held shared (as a reader), and yields
// between stripes; `rate_bytes_per_s` caps it when set. A member that fails meanwhile stops it.
//
// Threads: start/progress from any thread; one rebuild at a time.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <shared_mutex>
#include <thread>

#include "base/result.h"
#include "fs/io_context.h"
#include "fs/pacer.h"
#include "meta/fs_meta.h"
#include "base/aligned_buffer.h"
#include "raid/array.h"

namespace raidfs::fs {

struct RebuildProgress {
  meta::RebuildState state;
  double rate_bytes_per_s = 0;  // written to the member, over the last ~10 s
  double eta_s = -1;
};

class Rebuilder {
 public:
  static constexpr uint64_t kCheckpointStripesDefault = 64;
  // The verified data of a stripe's filled blocks, into `dest` (4 KiB-aligned, k * C bytes).
  using ReadStripe = std::function<Result<void>(IoContext&, const meta::Stripe&, uint8_t* dest)>;
  // Runs its argument with no write in flight, then seals the open stripe.
  using SealAfter = std::function<Result<void>(IoContext&, const std::function<Result<void>()>&)>;

  Rebuilder(Array& array, meta::FsMeta& meta, std::shared_mutex& stripe_reuse,
            std::function<Result<std::unique_ptr<IoContext>>()> make_context, ReadStripe read,
            SealAfter seal_after, uint64_t checkpoint_stripes = kCheckpointStripesDefault);
  ~Rebuilder();  // stops (the record stays running: the next mount resumes) and joins
  Rebuilder(const Rebuilder&) = delete;
  Rebuilder& operator=(const Rebuilder&) = delete;

  // Starts rebuilding `member` (see above). EBUSY a rebuild runs; Array::begin_rebuild's errors.
  Result<void> start(IoContext& ctx, uint32_t member, uint64_t rate_bytes_per_s = 0);
  // Replaces `member`'s device by the one at `path` (Array::replace_member's checks and errors)
  // and rebuilds every committed stripe onto it. EBUSY a rebuild runs.
  Result<void> start_replace(IoContext& ctx, uint32_t member, const std::string& path, bool force,
                             uint64_t rate_bytes_per_s = 0);
  // A rebuild the last mount left running goes on; nothing if there is none.
  Result<void> resume_if_interrupted();
  bool running() const { return running_.load(); }
  RebuildProgress progress() const;

 private:
  Result<void> launch(meta::RebuildState state, uint64_t rate_bytes_per_s);
  void run();
  // Rebuilds the member's chunk of one stripe; returns the bytes written (0: skipped).
  Result<uint64_t> rebuild_one(IoContext& ctx, uint64_t id, const meta::RebuildState& bounds);
  Result<void> checkpoint(IoContext& ctx, bool final);
  Result<void> restore_metadata_region(IoContext& ctx, uint32_t member);
  bool copy_from_source(IoContext& ctx, const meta::Stripe& stripe, uint32_t slot, uint32_t bytes,
                        uint8_t* chunk);

  Array& array_;
  meta::FsMeta& meta_;
  std::shared_mutex& stripe_reuse_;
  const std::function<Result<std::unique_ptr<IoContext>>()> make_context_;
  const ReadStripe read_;
  const SealAfter seal_after_;
  const uint64_t checkpoint_stripes_;

  mutable std::mutex mu_;  // guards state_, pacer_, stop_ (a leaf)
  std::condition_variable cv_;
  meta::RebuildState state_;
  Pacer pacer_;  // bytes written to the member
  bool stop_ = false;
  std::atomic<bool> running_{false};
  AlignedBuffer chunks_;  // one stripe, the rebuild thread's
  // The rebuild thread's: a replace (its old device may be a source), chunks copied from it.
  bool state_replace_ = false;
  uint64_t copied_from_source_ = 0;
  std::thread thread_;
};

}  // namespace raidfs::fs
