// Rebuilder: see rebuilder.h.
#include "fs/rebuilder.h"

#include "meta/region_fs.h"

#include <algorithm>
#include <cstring>
#include <ctime>

#include "base/log.h"
#include "base/thread_name.h"
#include "raid/checksum.h"

namespace raidfs::fs {
namespace {

constexpr size_t kListBatch = 256;

int64_t now_ns() {
  timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

}  // namespace

Rebuilder::Rebuilder(Array& array, meta::FsMeta& meta, std::shared_mutex& stripe_reuse,
                     std::function<Result<std::unique_ptr<IoContext>>()> make_context,
                     ReadStripe read, SealAfter seal_after, uint64_t checkpoint_stripes)
    : array_(array),
      meta_(meta),
      stripe_reuse_(stripe_reuse),
      make_context_(std::move(make_context)),
      read_(std::move(read)),
      seal_after_(std::move(seal_after)),
      checkpoint_stripes_(std::max<uint64_t>(1, checkpoint_stripes)) {}

Rebuilder::~Rebuilder() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Result<void> Rebuilder::start(IoContext& ctx, uint32_t member, uint64_t rate_bytes_per_s) {
  if (running_) return fail(EBUSY, "a rebuild is running already");
  if (thread_.joinable()) thread_.join();
  meta::RebuildState state;
  state.member = member;
  state.started_ns = now_ns();
  // The member joins the writes with none in flight; stripes from the generation noted then on
  // are written full width. Until the bounds are set it is read for nothing.
  RAIDFS_CHECK(seal_after_(ctx, [&]() -> Result<void> {
    state.since_generation = array_.member_since(member);  // before it stops being missing
    RAIDFS_CHECK(array_.begin_rebuild(member, UINT64_MAX, 0));
    state.from_generation = meta_.next_generation();
    return array_.begin_rebuild(member, state.from_generation, 0);
  }));
  state.stripes_total = meta_.committed_stripe_count();
  return launch(state, rate_bytes_per_s);
}

Result<void> Rebuilder::start_replace(IoContext& ctx, uint32_t member, const std::string& path, bool force,
                                      uint64_t rate_bytes_per_s) {
  if (running_) return fail(EBUSY, "a rebuild is running already");
  if (thread_.joinable()) thread_.join();
  meta::RebuildState state;
  state.member = member;
  state.started_ns = now_ns();
  state.replace = true;
  RAIDFS_CHECK(seal_after_(ctx, [&]() -> Result<void> {
    // No reader may be reading the member's old chunks when its device changes under them.
    std::unique_lock reuse(stripe_reuse_);
    RAIDFS_CHECK(array_.replace_member(member, path, force));
    state.from_generation = meta_.next_generation();
    return array_.begin_rebuild(member, state.from_generation, 0);
  }));
  state.stripes_total = meta_.committed_stripe_count();
  return launch(state, rate_bytes_per_s);
}

Result<void> Rebuilder::resume_if_interrupted() {
  RAIDFS_TRY(auto saved, meta_.rebuild_state());
  if (saved) {
    std::lock_guard lock(mu_);
    state_ = *saved;  // the last rebuild's result, for status
  }
  if (!saved || saved->phase != meta::RebuildPhase::kRunning) {
    // A member left being rebuilt with no rebuild on record: a crash came between its state
    // change (the superblocks) and the record (the metadata). Nothing says how far it got, so
    // it is rebuilt whole. At open no write is in flight: the next stripe is of a generation
    // from next_generation() on, and written full width.
    for (uint32_t m = 0; m < array_.geometry().member_count(); ++m) {
      if (array_.member_state(m) != MemberState::kRebuilding) continue;
      meta::RebuildState state;
      state.member = m;
      state.started_ns = now_ns();
      state.from_generation = meta_.next_generation();
      RAIDFS_CHECK(array_.begin_rebuild(m, state.from_generation, 0));
      state.stripes_total = meta_.committed_stripe_count();
      RAIDFS_LOG(kWarning, "member %u was left being rebuilt with no record of it (a crash as its "
                 "rebuild began): rebuilding it whole", m);
      return launch(state, 0);
    }
    return {};
  }
  if (saved->member >= array_.geometry().member_count() ||
      array_.member_state(saved->member) != MemberState::kRebuilding) {
    // Active: it finished, and a crash came before the record said so (the superblocks come
    // first). Anything else: the member failed or was replaced meanwhile.
    const bool done = saved->member < array_.geometry().member_count() &&
                      array_.member_state(saved->member) == MemberState::kActive;
    saved->phase = done ? meta::RebuildPhase::kFinished : meta::RebuildPhase::kFailed;
    saved->finished_ns = now_ns();
    {
      std::lock_guard lock(mu_);
      state_ = *saved;
    }
    return meta_.put_rebuild_state(*saved, meta::Durability::kGroupSync);
  }
  RAIDFS_CHECK(array_.begin_rebuild(saved->member, saved->from_generation, saved->cursor));
  RAIDFS_LOG(kInfo, "resuming the rebuild of member %u at stripe %llu", saved->member,
             static_cast<unsigned long long>(saved->cursor));
  return launch(*saved, saved->rate_limit);
}

Result<void> Rebuilder::launch(meta::RebuildState state, uint64_t rate_bytes_per_s) {
  state.rate_limit = rate_bytes_per_s;
  state.phase = meta::RebuildPhase::kRunning;
  state.finished_ns = 0;
  RAIDFS_CHECK(meta_.put_rebuild_state(state, meta::Durability::kGroupSync));
  {
    std::lock_guard lock(mu_);
    state_ = state;
    stop_ = false;
    pacer_.reset(state.bytes_written, rate_bytes_per_s);
  }
  running_ = true;
  thread_ = std::thread([this] { run(); });
  return {};
}

RebuildProgress Rebuilder::progress() const {
  std::lock_guard lock(mu_);
  RebuildProgress p;
  p.state = state_;
  if (running_) {
    p.rate_bytes_per_s = pacer_.rate();
    const uint64_t done = state_.stripes_rebuilt + state_.stripes_skipped;
    if (p.rate_bytes_per_s > 0 && state_.stripes_rebuilt > 0 && state_.stripes_total > done) {
      const double per_stripe = static_cast<double>(state_.bytes_written) / state_.stripes_rebuilt;
      p.eta_s = (state_.stripes_total - done) * per_stripe / p.rate_bytes_per_s;
    }
  }
  return p;
}

void Rebuilder::run() {
  name_this_thread("raidfs-rebuild");
  auto made = make_context_();
  if (!made) {
    RAIDFS_LOG(kError, "rebuild: %s", made.error().message.c_str());
    running_ = false;
    return;
  }
  IoContext& ctx = **made;
  meta::RebuildState bounds;
  {
    std::lock_guard lock(mu_);
    bounds = state_;
  }
  const uint32_t member = bounds.member;
  state_replace_ = bounds.replace;
  copied_from_source_ = 0;
  // kPaused: stopped by an error that is not the member's nor lost data (the host under an image
  // full, a power cut in the tests): the record keeps its last checkpoint and the next mount
  // resumes from it.
  enum class End { kStopped, kFinished, kFailed, kPaused } end = End::kStopped;
  int error = 0;
  if (auto restored = restore_metadata_region(ctx, member); !restored) {
    RAIDFS_LOG(kError, "rebuild of member %u: %s", member, restored.error().message.c_str());
    error = restored.error().code;
    end = End::kFailed;
  }
  while (end == End::kStopped) {
    uint64_t cursor;
    {
      std::lock_guard lock(mu_);
      if (stop_) break;
      cursor = state_.cursor;
    }
    auto batch = meta_.stripes_from(cursor, kListBatch);
    if (!batch) {
      RAIDFS_LOG(kError, "rebuild: listing stripes: %s", batch.error().message.c_str());
      end = End::kFailed;
      break;
    }
    if (batch->empty()) {
      end = End::kFinished;
      break;
    }
    bool failed = false;
    for (const meta::Stripe& listed : *batch) {
      {
        std::lock_guard lock(mu_);
        if (stop_) break;
      }
      auto written = rebuild_one(ctx, listed.id, bounds);
      if (!written) {
        RAIDFS_LOG(kError, "rebuild of member %u: stripe %llu: %s", member,
                   static_cast<unsigned long long>(listed.id), written.error().message.c_str());
        error = written.error().code;
        failed = true;
        break;
      }
      uint64_t done;
      {
        std::lock_guard lock(mu_);
        state_.cursor = listed.id + 1;
        if (*written > 0) {
          ++state_.stripes_rebuilt;
          state_.bytes_written += *written;
        } else {
          ++state_.stripes_skipped;
        }
        done = state_.stripes_rebuilt + state_.stripes_skipped;
        pacer_.add(state_.bytes_written, *written);
      }
      if (done % checkpoint_stripes_ == 0) {
        if (auto saved = checkpoint(ctx, false); !saved) {
          RAIDFS_LOG(kError, "rebuild of member %u: %s", member, saved.error().message.c_str());
          error = saved.error().code;
          failed = true;
          break;
        }
      }
      {
        std::unique_lock lock(mu_);
        pacer_.throttle(lock, cv_, [this] { return stop_; });
      }
      std::this_thread::yield();  // foreground requests first
    }
    if (failed || array_.member_state(member) != MemberState::kRebuilding) {
      end = End::kFailed;
      break;
    }
  }
  if (end == End::kFinished) {
    if (auto done = checkpoint(ctx, true); !done) {
      RAIDFS_LOG(kError, "rebuild of member %u: %s", member, done.error().message.c_str());
      error = done.error().code;
      end = End::kFailed;
    }
  }
  if (end == End::kFailed && array_.member_state(member) == MemberState::kRebuilding && error != 0 &&
      error != EIO && !is_device_error(error)) {
    end = End::kPaused;
    RAIDFS_LOG(kError, "the rebuild of member %u stopped (%s); it resumes at the next mount, or with "
               "`raidfs rebuild`", member, std::strerror(error));
  }
  std::lock_guard lock(mu_);
  if (end == End::kFinished) {
    state_.phase = meta::RebuildPhase::kFinished;
    state_.finished_ns = now_ns();
    RAIDFS_LOG(kInfo, "member %u rebuilt: %llu stripes rebuilt (%llu chunks copied from the replaced "
               "device), %llu skipped (still on it, written since it began, or nothing to copy)",
               member, static_cast<unsigned long long>(state_.stripes_rebuilt),
               static_cast<unsigned long long>(copied_from_source_),
               static_cast<unsigned long long>(state_.stripes_skipped));
  } else if (end == End::kFailed || end == End::kPaused) {
    state_.phase = meta::RebuildPhase::kFailed;  // as status shows it; a paused record stays running
    state_.finished_ns = now_ns();
  }
  // Stopped by an unmount, or paused: the record stays kRunning with the last checkpoint's cursor.
  if (end == End::kFinished || end == End::kFailed)
    if (auto saved = meta_.put_rebuild_state(state_, meta::Durability::kGroupSync); !saved)
      RAIDFS_LOG(kError, "rebuild: recording its end: %s", saved.error().message.c_str());
  running_ = false;
}

Result<uint64_t> Rebuilder::rebuild_one(IoContext& ctx, uint64_t id, const meta::RebuildState& bounds) {
  const Geometry& g = array_.geometry();
  const uint32_t k = g.data_count(), m = g.parity_count(), c = g.chunk_bytes();
  const uint32_t member = bounds.member;
  std::shared_lock reuse(stripe_reuse_);  // the stripe cannot be freed and reused meanwhile
  auto stripe = meta_.get_stripe(id);
  if (!stripe) return stripe.error().code == ENOENT ? Result<uint64_t>(0) : std::unexpected(stripe.error());
  // Free now; written full width since the rebuild began; or on the member, unchanged, since
  // before it left.
  if (stripe->state == meta::StripeState::kFree || stripe->generation >= bounds.from_generation ||
      stripe->generation < bounds.since_generation)
    return uint64_t{0};
  if (chunks_.size() == 0) chunks_ = AlignedBuffer(size_t{g.member_count()} * c);
  const uint64_t filled = (uint64_t{stripe->filled_bytes} + kBlockBytes - 1) / kBlockBytes * kBlockBytes;
  const uint32_t slot = g.slot_of(id, member);
  if (slot < k) {
    const uint64_t begin = uint64_t{slot} * c;
    if (filled <= begin) return uint64_t{0};  // nothing was ever written there: nothing to copy
    const uint32_t bytes = static_cast<uint32_t>(std::min<uint64_t>(c, filled - begin));
    uint8_t* chunk = chunks_.data() + begin;
    if (!copy_from_source(ctx, *stripe, slot, bytes, chunk))  // else rebuilt from the others
      RAIDFS_CHECK(read_(ctx, *stripe, chunks_.data()));
    RAIDFS_CHECK(array_.write_data(ctx.channel(), id, begin, bytes, chunk));
    return uint64_t{bytes};
  }
  if (stripe->state != meta::StripeState::kSealed) return uint64_t{0};  // parity in the metadata
  // The parity of the data as it is, zeros past the filled part.
  std::memset(chunks_.data() + filled, 0, size_t{k} * c - filled);
  if (filled > 0) RAIDFS_CHECK(read_(ctx, *stripe, chunks_.data()));
  const uint8_t* data[kMembersMax];
  uint8_t* parity[kParityMax];
  for (uint32_t d = 0; d < k; ++d) data[d] = chunks_.data() + size_t{d} * c;
  for (uint32_t p = 0; p < m; ++p) parity[p] = chunks_.data() + size_t{k + p} * c;
  array_.codec().encode(data, parity, c);
  RAIDFS_CHECK(array_.write_parity_chunk(ctx.channel(), id, slot - k, parity[slot - k]));
  return uint64_t{c};
}

// A replace whose old device still reads: the member's data chunk copied from it, if every block
// in it matches its checksum (a block that does not — the old device's own damage — is rebuilt
// from the others with the rest). False: not copied.
bool Rebuilder::copy_from_source(IoContext& ctx, const meta::Stripe& stripe, uint32_t slot, uint32_t bytes,
                                 uint8_t* chunk) {
  if (!array_.has_replace_source() || !state_replace_) return false;
  if (!array_.read_replace_source(ctx.channel(), stripe.id, chunk)) return false;
  const uint32_t per_chunk = array_.geometry().chunk_bytes() / kBlockBytes;
  for (uint32_t b = 0; b < bytes / kBlockBytes; ++b) {
    const uint32_t block = slot * per_chunk + b;
    if (block >= stripe.block_crcs.size() ||
        !block_matches({stripe.id, stripe.generation, block}, {chunk + size_t{b} * kBlockBytes, kBlockBytes},
                       stripe.block_crcs[block]))
      return false;
  }
  ++copied_from_source_;
  return true;
}

// A self-contained array's metadata region first: every block in use gets its copy on the
// member (RegionFs::scrub with repair writes the copies it cannot read but can write, and mends
// bad ones on the way); once that is flushed, the member's copies may be read.
Result<void> Rebuilder::restore_metadata_region(IoContext& ctx, uint32_t member) {
  const std::shared_ptr<meta::RegionFs>& region = meta_.store().region();
  if (!region) return {};
  RAIDFS_TRY(const meta::RegionFs::ScrubReport report, region->scrub(/*repair=*/true));
  RAIDFS_CHECK(array_.flush_meta(ctx.channel()));  // its copies went through the page cache
  array_.set_meta_restored(member);
  RAIDFS_LOG(kInfo, "rebuild of member %u: metadata region restored (%llu blocks, %llu copies "
             "written to it, %llu bad copies repaired)", member,
             static_cast<unsigned long long>(report.blocks),
             static_cast<unsigned long long>(report.restored),
             static_cast<unsigned long long>(report.repaired));
  if (report.lost_blocks > 0)
    RAIDFS_LOG(kError, "the metadata region has %llu blocks with no good copy: %s",
               static_cast<unsigned long long>(report.lost_blocks), report.problems.front().c_str());
  return {};
}

// Flushes the member, then moves the cursor past what is on it and records it; `final` also
// makes the member active again.
Result<void> Rebuilder::checkpoint(IoContext& ctx, bool final) {
  RAIDFS_CHECK(array_.flush(ctx.channel()));
  meta::RebuildState state;
  {
    std::lock_guard lock(mu_);
    state = state_;
  }
  array_.advance_rebuild(state.member, final ? UINT64_MAX : state.cursor);
  if (final) RAIDFS_CHECK(array_.finish_rebuild(state.member));
  return meta_.put_rebuild_state(state);
}

}  // namespace raidfs::fs
