// Cleaner: gives back the space that copy-on-write leaves dead in sealed stripes.
//
// raidfs never rewrites a live stripe, so an overwrite kills the old blocks in place and a
// stripe's space comes back only once all its blocks are dead (FsMeta frees it in that commit).
// The cleaner makes that happen: it picks victim stripes, reads their live blocks (verified, and
// rebuilt from parity where a member is missing, as any read) into a stripe of its own, and has
// the StripeWriter write each such stripe whole (StripeWriter::relocate_stripe), which keeps only
// what the files still map there — a concurrent overwrite, punch or truncate wins. Moved data is
// cold: kept apart from fresh writes, it does not die again soon, so the stripes it fills rarely
// need cleaning again (hot/cold separation, as F2FS and bcachefs copygc keep GC'd data apart).
// Its stripes are filled to the last block (an extent that does not fit is cut at a block); the
// tail of a pass, less than a stripe, goes through the open stripe (StripeWriter::relocate):
// a part-empty stripe would be the next pass's victim again. When those writes commit, the victim's live count
// reaches 0 and it is freed in the same batch; FsMeta hands it out only once that commit is
// durable, and only under the stripe-reuse lock, which readers of its old contents hold shared.
// Nothing new happens on the members: the relocated data is ordinary data in new stripes, so the
// commit protocol (and its write-hole argument) covers it unchanged.
//
// Victims (Sprite LFS's cost-benefit, as F2FS's background GC): a sealed stripe with utilisation
// u = live blocks / blocks per stripe scores (1 - u) * age / (1 + u), age = how many stripes were
// allocated since it was (its generation); when space is urgent, greedy: the lowest u first.
// The background takes only stripes at most kBackgroundUtilisationMax full. A victim's extents
// come from the metadata's index of extents by stripe.
//
// When: a thread of its own wakes every kPollMs; below `low_water` free stripes it cleans until
// `high_water` are free, resting between passes while space is not urgent; a writer refused for
// space (make_room) gets an urgent pass and waits for it. The last `reserve` free stripes are
// the cleaner's: it needs room to move live data before it can free anything, so the owner keeps
// writers out of them (StripeWriter::set_reserved_stripes), with the cleaner off too — an array
// filled to the last stripe could never be cleaned.
//
// Threads: make_room, clean_all, progress from any thread; the passes run on the cleaner's
// thread (clean_all and make_room wait for it) with its own IoContext.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <utility>
#include <vector>

#include "base/result.h"
#include "fs/io_context.h"
#include "fs/stripe_writer.h"
#include "meta/block_owners.h"
#include "meta/fs_meta.h"
#include "base/aligned_buffer.h"

namespace raidfs::fs {

struct CleanerOptions {
  uint64_t low_water = 0;   // free stripes below which the cleaner runs in the background
  uint64_t high_water = 0;  // ... until this many are free
  uint64_t reserve = 0;     // free stripes only the cleaner may fill
  // Defaults for an array of `stripe_count` stripes: reserve 1/64 (2..64), low water 1/32 (at
  // least twice the reserve), high water low water + 1/64. Low: every free stripe kept clean is
  // dead space the victims no longer have, so cleaning early raises the write amplification.
  static CleanerOptions for_stripes(uint64_t stripe_count);
};

struct CleanerProgress {
  uint64_t passes = 0;
  uint64_t stripes_cleaned = 0;  // victims freed
  uint64_t bytes_moved = 0;      // live file bytes written again
  uint64_t reclaimable_bytes = 0;  // dead space in sealed stripes, as of now (an estimate)
  bool running = false;          // a pass is under way
  std::string last_error;        // the last pass that failed, empty if none
};

class Cleaner {
 public:
  static constexpr unsigned kPollMs = 200;
  static constexpr unsigned kRetryMs = 5000;  // after a background pass that failed
  static constexpr size_t kVictimsPerPass = 32;
  // The background leaves alone stripes fuller than this; an urgent pass takes any.
  static constexpr double kBackgroundUtilisationMax = 0.8;

  // Reads whole 4 KiB blocks [offset, offset + length) of a committed stripe, verified.
  using ReadBlocks = std::function<Result<void>(IoContext&, const meta::Stripe&, uint64_t offset,
                                                uint32_t length, uint8_t* dest)>;
  Cleaner(meta::FsMeta& meta, StripeWriter& writer, std::shared_mutex& stripe_reuse,
          uint64_t stripe_count, uint32_t stripe_data_bytes, ReadBlocks read_blocks,
          std::function<Result<std::unique_ptr<IoContext>>()> make_context,
          CleanerOptions options);
  ~Cleaner();  // ends the pass under way after its current victim (its moves commit) and joins
  Cleaner(const Cleaner&) = delete;
  Cleaner& operator=(const Cleaner&) = delete;

  // A writer was refused for space: runs an urgent pass (or waits for the one under way) and
  // returns whether it freed any stripe, i.e. whether trying again can succeed.
  bool make_room();
  // Cleans every sealed stripe holding dead space, passes until one frees nothing (the admin's
  // `raidfs clean`). Returns the stripes freed, or the error of a failed pass.
  Result<uint64_t> clean_all();
  // The dead space in sealed stripes, from the live-block count (FsMeta::live_block_count): a
  // lower bound, as the open stripes' live blocks are counted against it too.
  uint64_t reclaimable_bytes() const;
  CleanerProgress progress() const;
  const CleanerOptions& options() const { return options_; }

 private:
  enum class Mode { kBackground, kUrgent };
  struct Victim {
    meta::Stripe stripe;
    double score = 0;
    std::vector<meta::OwnedExtent> extents;  // its file ranges
  };
  void run();
  // One pass: victims chosen, their live extents moved, the moves committed. Returns the
  // stripes freed.
  Result<uint64_t> pass(IoContext& ctx, Mode mode);
  // The `count` best victims for `mode`, best first.
  Result<std::vector<Victim>> pick(Mode mode, size_t count);
  // The victims of one pass, best first, with their extents: as many as the free room can take.
  Result<std::vector<Victim>> next_victims(Mode mode);
  // Reads the blocks of `v` its extents cover into victim_, in one request (the members read in
  // parallel): under uniform overwrites the live pieces are single blocks, and a read each would
  // be a round trip each. False when the victim changed (nothing of it to move).
  Result<bool> read_victim(IoContext& ctx, const Victim& v);
  // Stages one extent of a victim into the cleaner's stripe — from victim_ when `from_victim`,
  // else read on its own (nothing if the victim changed) — writing the stripe out first when the
  // extent does not fit.
  Result<void> stage_extent(IoContext& ctx, const meta::Stripe& victim, const meta::OwnedExtent& e,
                            bool from_victim);
  // Writes the staged extents out: as a stripe of their own (`whole`: the stripe is full), else
  // through the open stripe.
  Result<void> write_staged(IoContext& ctx, bool whole);

  meta::FsMeta& meta_;
  StripeWriter& writer_;
  std::shared_mutex& stripe_reuse_;
  const uint64_t stripe_count_;
  const uint32_t stripe_data_bytes_;
  ReadBlocks read_blocks_;
  std::function<Result<std::unique_ptr<IoContext>>()> make_context_;
  const CleanerOptions options_;
  AlignedBuffer buffer_;  // the cleaner's stripe: staged live blocks of victims
  uint32_t staged_bytes_ = 0;  // of buffer_ in use
  std::vector<StripeWriter::Move> staged_;
  AlignedBuffer victim_;  // the data of the victim being moved, at its offsets in the stripe

  // Victims a pass could not free (an extent it could not move), by id → (generation, live
  // blocks): left alone until they change.
  std::map<uint64_t, std::pair<uint64_t, uint32_t>> stuck_;

  std::atomic<bool> stopping_{false};  // the destructor runs: end the pass early

  mutable std::mutex mu_;  // guards what follows
  std::condition_variable wake_;   // the thread: a request or the end
  std::condition_variable done_;   // requesters: a pass ended
  bool stop_ = false;
  uint64_t urgent_requests_ = 0;   // passes asked for (make_room, clean_all)
  uint64_t passes_done_ = 0;
  uint64_t last_freed_ = 0;        // by the last urgent pass
  Result<void> last_outcome_;      // of the last urgent pass
  uint64_t freed_total_ = 0;       // by every pass
  CleanerProgress progress_;
  std::thread thread_;             // last: started once everything above stands
};

}  // namespace raidfs::fs
