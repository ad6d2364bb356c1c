// Cleaner: see cleaner.h for what it moves, when, and why it keeps the write hole closed.
#include "fs/cleaner.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "base/log.h"
#include "base/thread_name.h"
#include "fs/stripe_writer.h"
#include "meta/block_owners.h"

namespace raidfs::fs {
namespace {

constexpr uint64_t kBlock = kBlockBytes;

uint64_t round_up(uint64_t v) { return (v + kBlock - 1) / kBlock * kBlock; }

}  // namespace

CleanerOptions CleanerOptions::for_stripes(uint64_t stripe_count) {
  CleanerOptions o;
  o.reserve = std::clamp<uint64_t>(stripe_count / 64, 2, 64);
  o.low_water = std::max(stripe_count / 32, 2 * o.reserve);
  o.high_water = o.low_water + std::max<uint64_t>(stripe_count / 64, 1);
  return o;
}

Cleaner::Cleaner(meta::FsMeta& meta, StripeWriter& writer, std::shared_mutex& stripe_reuse,
                 uint64_t stripe_count, uint32_t stripe_data_bytes, ReadBlocks read_blocks,
                 std::function<Result<std::unique_ptr<IoContext>>()> make_context,
                 CleanerOptions options)
    : meta_(meta),
      writer_(writer),
      stripe_reuse_(stripe_reuse),
      stripe_count_(stripe_count),
      stripe_data_bytes_(stripe_data_bytes),
      read_blocks_(std::move(read_blocks)),
      make_context_(std::move(make_context)),
      options_(options),
      buffer_(stripe_data_bytes),
      victim_(stripe_data_bytes) {
  thread_ = std::thread([this] { run(); });
}

Cleaner::~Cleaner() {
  stopping_ = true;  // the pass under way ends after its current victim
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

bool Cleaner::make_room() {
  std::unique_lock lock(mu_);
  if (stop_) return false;
  // Whatever pass frees the stripes (a background one may, while this waits) makes room.
  const uint64_t freed_before = freed_total_;
  const uint64_t ticket = ++urgent_requests_;
  wake_.notify_all();
  done_.wait(lock, [&] { return stop_ || passes_done_ >= ticket; });
  return !stop_ && freed_total_ > freed_before;
}

Result<uint64_t> Cleaner::clean_all() {
  uint64_t freed = 0;
  for (;;) {
    std::unique_lock lock(mu_);
    if (stop_) return fail(ECANCELED, "the cleaner is stopping");
    const uint64_t ticket = ++urgent_requests_;
    wake_.notify_all();
    done_.wait(lock, [&] { return stop_ || passes_done_ >= ticket; });
    if (!last_outcome_) return std::unexpected(last_outcome_.error());
    if (last_freed_ == 0) return freed;
    freed += last_freed_;
  }
}

uint64_t Cleaner::reclaimable_bytes() const {
  const uint64_t blocks_per_stripe = stripe_data_bytes_ / kBlock;
  const uint64_t sealed = meta_.committed_stripe_count(/*sealed_only=*/true);
  const uint64_t live = meta_.live_block_count();
  const uint64_t held = sealed * blocks_per_stripe;
  return held > live ? (held - live) * kBlock : 0;
}

CleanerProgress Cleaner::progress() const {
  std::lock_guard lock(mu_);
  CleanerProgress p = progress_;
  p.reclaimable_bytes = reclaimable_bytes();
  return p;
}

void Cleaner::run() {
  name_this_thread("raidfs-cleaner");
  auto made = make_context_();
  if (!made) {
    RAIDFS_LOG(kError, "cleaner: no I/O context: %s; copy-on-write space will not come back",
               made.error().message.c_str());
    std::unique_lock lock(mu_);
    last_outcome_ = std::unexpected(made.error());
    progress_.last_error = made.error().message;
    // Answer every request (nothing can be freed) until the end.
    for (;;) {
      passes_done_ = urgent_requests_;
      done_.notify_all();
      if (stop_) return;
      wake_.wait(lock);
    }
  }
  IoContext& ctx = **made;
  bool cleaning = false;  // in the background, between the low and the high water mark
  std::unique_lock lock(mu_);
  while (!stop_) {
    const uint64_t free = meta_.free_stripe_count();
    if (free < options_.low_water) cleaning = true;
    if (free >= options_.high_water) cleaning = false;
    const bool urgent = urgent_requests_ > passes_done_;
    if (!urgent && !cleaning) {
      wake_.wait_for(lock, std::chrono::milliseconds(kPollMs));
      continue;
    }
    const uint64_t ticket = urgent_requests_;
    // Urgent also when the background has eaten into the reserve: the writers are waiting.
    const Mode mode = urgent || free <= options_.reserve ? Mode::kUrgent : Mode::kBackground;
    progress_.running = true;
    lock.unlock();
    Result<uint64_t> freed = pass(ctx, mode);
    lock.lock();
    progress_.running = false;
    ++progress_.passes;
    if (freed) {
      progress_.stripes_cleaned += *freed;
      freed_total_ += *freed;
    } else {
      progress_.last_error = freed.error().message;
      RAIDFS_LOG(kWarning, "cleaner: %s", freed.error().message.c_str());
    }
    if (urgent) {  // what the requesters waited for; a background pass does not answer them
      passes_done_ = ticket;
      last_freed_ = freed ? *freed : 0;
      last_outcome_ = freed ? Result<void>{} : Result<void>(std::unexpected(freed.error()));
    }
    done_.notify_all();
    // Nothing more to free in the background: wait for the next poll; a pass that failed (a
    // member or the metadata refusing writes) is not retried in a loop. Else rest a little, so
    // that foreground requests get the members between background passes. A request ends the
    // wait at once.
    if (!urgent) {
      if (!freed || *freed == 0) cleaning = false;
      const unsigned rest_ms = !freed ? kRetryMs : *freed == 0 ? kPollMs : kPollMs / 8;
      wake_.wait_for(lock, std::chrono::milliseconds(rest_ms));
    }
  }
}

Result<std::vector<Cleaner::Victim>> Cleaner::pick(Mode mode, size_t count) {
  const double blocks_per_stripe = stripe_data_bytes_ / kBlock;
  const uint64_t now = meta_.next_generation();
  std::vector<Victim> all;
  for (uint64_t from = 0; from < stripe_count_;) {
    RAIDFS_TRY(auto page, meta_.stripes_from(from, 256));
    if (page.empty()) break;
    from = page.back().id + 1;
    for (meta::Stripe& s : page) {
      if (s.state != meta::StripeState::kSealed) continue;
      const double u = s.live_blocks / blocks_per_stripe;
      // Moving a nearly full stripe frees little: in the background it is not worth the I/O
      // (at u = 0.8, four blocks moved for each one freed).
      if (u >= (mode == Mode::kUrgent ? 1.0 : kBackgroundUtilisationMax)) continue;
      if (auto it = stuck_.find(s.id); it != stuck_.end()) {
        if (it->second == std::pair(s.generation, s.live_blocks)) continue;
        stuck_.erase(it);
      }
      const double age = static_cast<double>(now > s.generation ? now - s.generation : 1);
      const double score = mode == Mode::kUrgent ? 1.0 - u : (1.0 - u) * age / (1.0 + u);
      s.block_crcs.clear();  // not needed to choose; read again before the move
      all.push_back(Victim{std::move(s), score, {}});
    }
  }
  std::sort(all.begin(), all.end(), [](const Victim& a, const Victim& b) { return a.score > b.score; });
  if (all.size() > count) all.resize(count);
  return all;
}

Result<std::vector<Cleaner::Victim>> Cleaner::next_victims(Mode mode) {
  // Chosen afresh each pass: the stripe records are cached, and under skewed overwrites the
  // scores change within seconds.
  RAIDFS_TRY(std::vector<Victim> chosen, pick(mode, kVictimsPerPass));
  // As many as the free space can take: moving a victim needs room for its live blocks (each
  // extent may waste up to a block to alignment) before it frees anything.
  const uint64_t room =
      meta_.free_stripe_count() * uint64_t{stripe_data_bytes_} + writer_.open_free_bytes();
  std::vector<Victim> out;
  uint64_t need = 0;
  for (Victim& v : chosen) {
    const uint64_t bytes = uint64_t{v.stripe.live_blocks} * kBlock * 5 / 4 + 2 * kBlock;
    if (need + bytes > room) break;
    need += bytes;
    out.push_back(std::move(v));
  }
  // Their extents as they are now, from the index of extents by stripe.
  std::vector<uint64_t> ids;
  for (const Victim& v : out) ids.push_back(v.stripe.id);
  RAIDFS_TRY(std::vector<meta::OwnedExtent> extents, meta::stripe_extents(meta_.store(), ids));
  std::map<uint64_t, Victim*> by_id;
  for (Victim& v : out) by_id[v.stripe.id] = &v;
  for (meta::OwnedExtent& e : extents) by_id[e.extent.stripe_id]->extents.push_back(std::move(e));
  return out;
}

Result<bool> Cleaner::read_victim(IoContext& ctx, const Victim& v) {
  uint64_t first = UINT64_MAX, end = 0;
  for (const meta::OwnedExtent& e : v.extents) {
    first = std::min<uint64_t>(first, e.extent.stripe_offset / kBlock * kBlock);
    end = std::max(end, round_up(uint64_t{e.extent.stripe_offset} + e.extent.length));
  }
  if (first >= end) return false;
  // As a reader: the stripe cannot be handed out again while its blocks are read.
  std::shared_lock reuse(stripe_reuse_);
  RAIDFS_TRY(meta::Stripe now, meta_.get_stripe(v.stripe.id));
  if (now.generation != v.stripe.generation || now.state != meta::StripeState::kSealed) return false;
  RAIDFS_CHECK(read_blocks_(ctx, now, first, static_cast<uint32_t>(end - first), victim_.data() + first));
  return true;
}

Result<void> Cleaner::stage_extent(IoContext& ctx, const meta::Stripe& victim,
                                   const meta::OwnedExtent& e, bool from_victim) {
  // The extent's blocks in the victim, staged whole: at the same place within a block as there
  // (and so as in the file). One that does not fit is cut at a block boundary, the stripe written
  // out, and the rest staged in the next: the cleaner's stripes leave no room unused.
  meta::Extent rest = e.extent;
  while (rest.length > 0) {
    const uint64_t first = rest.stripe_offset / kBlock * kBlock;
    const uint64_t end = round_up(uint64_t{rest.stripe_offset} + rest.length);
    if (staged_bytes_ == stripe_data_bytes_) RAIDFS_CHECK(write_staged(ctx, true));
    const uint64_t room = stripe_data_bytes_ - staged_bytes_;
    meta::Extent part = rest;
    if (end - first > room) part.length = static_cast<uint32_t>(first + room - rest.stripe_offset);
    const uint64_t part_end = round_up(uint64_t{part.stripe_offset} + part.length);
    if (from_victim) {
      std::memcpy(buffer_.data() + staged_bytes_, victim_.data() + first, part_end - first);
    } else {
      // As a reader: the stripe cannot be handed out again while its blocks are read.
      std::shared_lock reuse(stripe_reuse_);
      RAIDFS_TRY(meta::Stripe now, meta_.get_stripe(victim.id));
      if (now.generation != victim.generation || now.state != meta::StripeState::kSealed) return {};
      RAIDFS_CHECK(read_blocks_(ctx, now, first, static_cast<uint32_t>(part_end - first),
                                buffer_.data() + staged_bytes_));
    }
    staged_.push_back(StripeWriter::Move{e.ino, part, victim.generation,
                                         static_cast<uint32_t>(staged_bytes_ + (part.stripe_offset - first))});
    staged_bytes_ += static_cast<uint32_t>(part_end - first);
    rest.file_offset += part.length;
    rest.stripe_offset += part.length;
    rest.length -= part.length;
  }
  return {};
}

Result<void> Cleaner::write_staged(IoContext& ctx, bool whole) {
  uint64_t moved = 0;
  if (whole) {
    auto written = writer_.relocate_stripe(ctx, staged_, buffer_.data(), staged_bytes_);
    staged_.clear();
    staged_bytes_ = 0;
    RAIDFS_TRY(moved, written);
  } else {
    for (const StripeWriter::Move& mv : staged_) {
      RAIDFS_TRY(uint64_t n, writer_.relocate(ctx, mv.ino, mv.from, mv.generation, buffer_.data() + mv.at));
      moved += n;
    }
    staged_.clear();
    staged_bytes_ = 0;
  }
  std::lock_guard lock(mu_);
  progress_.bytes_moved += moved;
  return {};
}

Result<uint64_t> Cleaner::pass(IoContext& ctx, Mode mode) {
  RAIDFS_TRY(std::vector<Victim> victims, next_victims(mode));
  if (victims.empty()) return uint64_t{0};
  size_t extent_count = 0;
  for (const Victim& v : victims) extent_count += v.extents.size();

  // Victim by victim, best first: a victim frees only once all of it moved, so a pass cut short
  // (out of room) leaves at most one half moved.
  std::map<uint64_t, std::string> failed;  // victim → why an extent of it could not move
  bool out_of_room = false;
  for (const Victim& v : victims) {
    if (stopping_) break;
    // One read of the victim; if it fails (a dead block past repair fails it as well as a live
    // one), each extent is read on its own, so that only a live loss stops the victim.
    auto whole = read_victim(ctx, v);
    if (whole && !*whole) continue;  // freed or reused meanwhile
    for (const meta::OwnedExtent& e : v.extents) {
      Result<void> moved = stage_extent(ctx, v.stripe, e, whole.has_value());
      if (moved) continue;
      if (moved.error().code == ENOSPC) {
        out_of_room = true;  // commit what moved; the next pass goes on
      } else {
        failed[v.stripe.id] = moved.error().message;  // e.g. a block lost beyond parity
      }
      break;
    }
    if (out_of_room) break;
  }
  // The rest of the staged moves (less than a stripe) go through the open stripe, where they
  // pack with what comes next instead of leaving a stripe part empty — which the next pass
  // would take for a victim again. The victims whose last live block went are freed in the
  // batches that commit them.
  if (!staged_.empty()) {
    if (auto tail = write_staged(ctx, false); !tail) {
      staged_.clear();
      staged_bytes_ = 0;
      if (tail.error().code != ENOSPC) return std::unexpected(tail.error());
      out_of_room = true;
    }
  }
  RAIDFS_CHECK(writer_.flush(ctx, 0));

  uint64_t freed = 0;
  for (const Victim& v : victims) {
    auto now = meta_.get_stripe(v.stripe.id);
    if (!now) {
      if (now.error().code != ENOENT) return std::unexpected(now.error());
      ++freed;
      continue;
    }
    if (now->generation != v.stripe.generation || now->state == meta::StripeState::kFree) {
      ++freed;
      continue;
    }
    if (out_of_room) continue;
    // Still live: an extent it could not move, or one the writer holds pending over. Left
    // alone until its live count changes.
    stuck_[v.stripe.id] = {now->generation, now->live_blocks};
    if (auto it = failed.find(v.stripe.id); it != failed.end())
      RAIDFS_LOG(kWarning, "cleaner: stripe %llu left as it is: %s",
                 static_cast<unsigned long long>(v.stripe.id), it->second.c_str());
  }
  RAIDFS_LOG(kDebug, "cleaner: %s pass, %zu victims, %zu extents, %llu freed, %llu free%s",
             mode == Mode::kUrgent ? "urgent" : "background", victims.size(), extent_count,
             static_cast<unsigned long long>(freed),
             static_cast<unsigned long long>(meta_.free_stripe_count()),
             out_of_room ? ", out of room" : "");
  return freed;
}

}  // namespace raidfs::fs
