// StripeWriter: see stripe_writer.h for the states and the commit protocol.
#include "fs/stripe_writer.h"

#include <algorithm>
#include <cstring>
#include <ctime>

#include "base/file_clock.h"
#include "base/log.h"
#include "base/thread_name.h"
#include "fs/io_context.h"
#include "raid/checksum.h"

namespace raidfs::fs {
namespace {

constexpr uint32_t kBlock = kBlockBytes;

uint64_t round_up(uint64_t v) { return (v + kBlock - 1) / kBlock * kBlock; }

// Whole stripes a direct write commits together: as many as 1 MiB of parity holds (8 of RAID6's
// 64 KiB chunks, so a 1 MiB write of a 4+2 array is one batch), 1 to 16. One flush of the members
// and one metadata commit then serve them all instead of one each.
uint32_t direct_batch(const Geometry& g) {
  const uint64_t parity_bytes = uint64_t{g.parity_count()} * g.chunk_bytes();
  return static_cast<uint32_t>(std::clamp<uint64_t>((uint64_t{1} << 20) / parity_bytes, 1, 16));
}

// to[i] ^= from[i]: parity is linear, so the parity of two disjoint sets of data is the XOR of
// their parities.
void xor_into(uint8_t* to, const uint8_t* from, size_t len) {
  for (size_t i = 0; i < len; i += sizeof(uint64_t)) {
    uint64_t a, b;
    std::memcpy(&a, to + i, sizeof a);
    std::memcpy(&b, from + i, sizeof b);
    a ^= b;
    std::memcpy(to + i, &a, sizeof a);
  }
}

// File ranges [begin, end) sorted, with those that overlap or touch joined, in place.
void merge_in_place(std::vector<std::pair<uint64_t, uint64_t>>& ranges) {
  std::sort(ranges.begin(), ranges.end());
  size_t kept = 0;
  for (size_t i = 0; i < ranges.size(); ++i) {
    if (kept > 0 && ranges[kept - 1].second >= ranges[i].first) {
      ranges[kept - 1].second = std::max(ranges[kept - 1].second, ranges[i].second);
    } else {
      ranges[kept++] = ranges[i];
    }
  }
  ranges.resize(kept);
}

}  // namespace

StripeWriter::StripeWriter(Array& array, meta::FsMeta& meta, std::shared_mutex& stripe_reuse)
    : array_(array),
      meta_(meta),
      stripe_reuse_(stripe_reuse),
      chunk_bytes_(array.geometry().chunk_bytes()),
      data_bytes_(static_cast<uint32_t>(array.geometry().stripe_data_bytes())),
      slots_{Slot(size_t{array.geometry().member_count()} * array.geometry().chunk_bytes(),
                  size_t{array.geometry().parity_count()} * array.geometry().chunk_bytes()),
             Slot(size_t{array.geometry().member_count()} * array.geometry().chunk_bytes(),
                  size_t{array.geometry().parity_count()} * array.geometry().chunk_bytes())},
      direct_batch_(direct_batch(array.geometry())) {}

StripeWriter::~StripeWriter() {
  {
    Lock lock(mu_);
    sealer_stop_ = true;
  }
  sealer_cv_.notify_all();
  if (sealer_.joinable()) sealer_.join();
}

void StripeWriter::start_sealer(std::function<Result<std::unique_ptr<IoContext>>()> make_context) {
  Lock lock(mu_);
  if (sealer_.joinable()) return;
  sealer_running_ = true;
  sealer_ = std::thread([this, make = std::move(make_context)] { run_sealer(make); });
}

void StripeWriter::run_sealer(
    const std::function<Result<std::unique_ptr<IoContext>>()>& make_context) {
  name_this_thread("raidfs-sealer");
  auto ctx = make_context();
  Lock lock(mu_);
  if (!ctx) {
    // Writes seal what they fill, as without a sealer; a slot already handed over is sealed by
    // the next settle.
    RAIDFS_LOG(kError, "stripe sealer: %s; full stripes are sealed by the writes",
               ctx.error().message.c_str());
    sealer_running_ = false;
    sealer_owed_ = false;
    return;
  }
  for (;;) {
    sealer_cv_.wait(lock, [&] { return sealer_stop_ || sealer_owed_; });
    if (sealer_stop_) break;
    sealer_owed_ = false;
    // A failure is logged by seal_behind and leaves the slot full for the next settle.
    const bool sealed = seal_behind(**ctx, lock, true).has_value();
    // Writers wait to move the open slot behind (it is full): moved here and sealed next, rather
    // than a wake-up of one of them and its hand-off back to this thread.
    if (sealed && rotation_waiters_ > 0 && behind_ == Behind::kEmpty && open_slot().stripe) {
      move_open_behind();
      sealer_owed_ = true;
      behind_cv_.notify_all();
    }
  }
  sealer_running_ = false;
  sealer_owed_ = false;
  lock.unlock();
  ctx->reset();  // its ring, on the thread that made it
}

Result<void> StripeWriter::after_fill(IoContext& ctx, Lock& lock) {
  if (!sealer_running_) return seal_behind(ctx, lock, true);
  sealer_owed_ = true;
  sealer_cv_.notify_one();
  return {};
}

void StripeWriter::carve(PendingMap& map, uint64_t begin, uint64_t end) {
  auto it = map.lower_bound(begin);
  if (it != map.begin()) {
    auto prev = std::prev(it);
    const uint64_t prev_end = prev->first + prev->second.length;
    if (prev_end > begin) {
      const Pending p = prev->second;
      prev->second.length = static_cast<uint32_t>(begin - prev->first);
      if (prev_end > end) {
        const uint64_t cut = end - prev->first;
        map[end] = Pending{static_cast<uint32_t>(p.length - cut),
                           static_cast<uint32_t>(p.stripe_offset + cut), p.on_member};
      }
    }
  }
  it = map.lower_bound(begin);
  while (it != map.end() && it->first < end) {
    const uint64_t off = it->first;
    const Pending p = it->second;
    it = map.erase(it);
    if (off + p.length > end) {
      const uint64_t cut = end - off;
      map[end] = Pending{static_cast<uint32_t>(p.length - cut),
                         static_cast<uint32_t>(p.stripe_offset + cut), p.on_member};
      break;
    }
  }
}

Result<void> StripeWriter::allocate_locked() {
  meta::StripeRef ref;
  {
    // No reader may still be reading a stripe that this allocation could hand out again.
    std::unique_lock reuse(stripe_reuse_);
    RAIDFS_TRY(ref, meta_.allocate_stripe());
  }
  Slot& slot = open_slot();
  std::memset(slot.buffer.data(), 0, slot.buffer.size());
  if (slot.member_parity_dirty) std::memset(slot.member_parity.data(), 0, slot.member_parity.size());
  slot.member_parity_dirty = false;
  slot.stripe = OpenStripe{};
  slot.stripe->id = ref.id;
  slot.stripe->generation = ref.generation;
  slot.stripe->on_member.assign(data_bytes_ / kBlock, false);
  slot.stripe->on_member_crcs.assign(data_bytes_ / kBlock, 0);
  open_free_bytes_ = data_bytes_;
  // Stripes below the oldest one taking data are done (Array::set_write_floor): the one behind,
  // while it is not sealed.
  const Slot& behind = behind_slot();
  raise_write_floor(behind_ != Behind::kEmpty && behind.stripe ? behind.stripe->generation
                                                               : ref.generation);
  return {};
}

void StripeWriter::raise_write_floor(uint64_t generation) {
  // A batch of whole stripes being written with the lock released takes data below it too.
  if (!unlocked_batches_.empty()) generation = std::min(generation, *unlocked_batches_.begin());
  array_.set_write_floor(generation);
}

Result<size_t> StripeWriter::write(IoContext& ctx, uint64_t ino, uint64_t offset,
                                   std::span<const uint8_t> data, bool set_times) {
  Lock lock(mu_);
  bool filled = false;
  Result<size_t> placed =
      write_locked(ctx, lock, ino, offset, data, set_times, reserved_stripes_.load(), &filled);
  // The stripe this write filled is sealed with the lock released — by the sealer, or here —
  // while the next writes fill the open slot.
  Result<void> sealed = filled ? after_fill(ctx, lock) : Result<void>{};
  if (placed && !sealed) return std::unexpected(sealed.error());
  return placed;
}

Result<size_t> StripeWriter::write_locked(IoContext& ctx, Lock& lock, uint64_t ino,
                                          uint64_t offset, std::span<const uint8_t> data,
                                          bool set_times, uint64_t kept_free, bool* filled) {
  // Refuse up front what cannot fit, so that a failed write changes nothing (a short count
  // would also make the kernel's async direct I/O report EIO instead of ENOSPC). Each stripe the
  // data spans may lose up to a block to alignment. Only writers allocate, and only this one
  // while the lock is held; a write that waits for a seal (rotate) lets others in, so under
  // concurrent writers an array filling up may refuse a later part of a write.
  const uint64_t free_stripes = meta_.free_stripe_count();
  const uint64_t usable = free_stripes > kept_free ? free_stripes - kept_free : 0;
  const uint64_t room = open_free_bytes_ + usable * uint64_t{data_bytes_};
  const uint64_t need = data.size() + kBlock * (data.size() / data_bytes_ + 2);
  if (need > room) return fail(ENOSPC, "the array is full");
  const int64_t now = set_times ? file_time_now_ns() : 0;
  size_t accepted = 0;
  while (accepted < data.size()) {
    const uint64_t file_offset = offset + accepted;
    const uint8_t* src = data.data() + accepted;
    // The direct path commits at once, so that a file's writes reach the metadata in the order
    // they were made it is taken only when the file has nothing pending in the open slot, and
    // data pending in the stripe behind commits first: in the batch's own commit when that
    // stripe waits for its seal, else by the seal under way, which this write waits for. Data in
    // the open stripe is followed by this write's own bytes until that stripe is full and moves
    // behind. So a long write that finds its file's data pending (the kernel's writeback sends a
    // short write now and then) copies at most a stripe before it goes straight again.
    const bool whole_stripe = data.size() - accepted >= data_bytes_ && file_offset % kBlock == 0 &&
                              reinterpret_cast<uintptr_t>(src) % kBlock == 0;
    if (whole_stripe && !has_pending(ino)) {
      const auto count = static_cast<uint32_t>(
          std::min<uint64_t>((data.size() - accepted) / data_bytes_, direct_batch_));
      RAIDFS_CHECK(logged(write_full_stripes_locked(ctx, &lock, ino, file_offset, src, count, now,
                                                    nullptr)));
      accepted += uint64_t{count} * data_bytes_;
      continue;
    }
    if (whole_stripe && behind_ == Behind::kFull && !pending_in(open_slot(), ino)) {
      // Typically the stripe this very write filled: sealed with the batch, in its flush and
      // its commit, which keeps the file's data in order at the cost of neither.
      const auto count = static_cast<uint32_t>(
          std::min<uint64_t>((data.size() - accepted) / data_bytes_, direct_batch_));
      RAIDFS_CHECK(logged(write_full_stripes_locked(ctx, nullptr, ino, file_offset, src, count,
                                                    now, &behind_slot())));
      accepted += uint64_t{count} * data_bytes_;
      continue;
    }
    if (whole_stripe && behind_ != Behind::kEmpty && !pending_in(open_slot(), ino)) {
      RAIDFS_CHECK(settle_behind(ctx, lock));
      if (!has_pending(ino)) continue;  // else another write of the file came in meanwhile
    }
    if (!open_slot().stripe) RAIDFS_CHECK(allocate_locked());
    Slot& slot = open_slot();
    OpenStripe& s = *slot.stripe;
    uint64_t pos;
    if (s.last_ino == ino && s.last_file_end == file_offset && s.last_stripe_end >= s.written &&
        s.last_stripe_end > 0) {
      pos = s.last_stripe_end;  // continues this file's last write, in a block not yet written
    } else {
      pos = round_up(s.filled) + file_offset % kBlock;
    }
    if (pos >= data_bytes_) {  // no room for this write's alignment: the next stripe
      RAIDFS_TRY(const bool moved, rotate(ctx, lock));
      *filled |= moved;
      continue;
    }
    size_t n = std::min<uint64_t>(data.size() - accepted, data_bytes_ - pos);
    // A piece of copy_below_ or more from a block-aligned buffer: its whole blocks go to the
    // members from that buffer (no copy), the partial block after them is the next piece. Else
    // the piece is copied into the stripe's buffer.
    const bool on_member = pos % kBlock == 0 && file_offset % kBlock == 0 &&
                           reinterpret_cast<uintptr_t>(src) % kBlock == 0 && n >= copy_below_;
    if (on_member) {
      n = n / kBlock * kBlock;
      RAIDFS_CHECK(logged(place_on_members(ctx, slot, static_cast<uint32_t>(pos), src,
                                           static_cast<uint32_t>(n))));
    } else {
      std::memcpy(slot.buffer.data() + pos, src, n);
    }
    {
      std::lock_guard pending_lock(pending_mu_);
      PendingFile& file = slot.pending[ino];
      if (set_times) file.mtime_ns = now;
      PendingMap& map = file.extents;
      carve(map, file_offset, file_offset + n);
      auto prev = map.lower_bound(file_offset);
      if (prev != map.begin() && std::prev(prev)->first + std::prev(prev)->second.length == file_offset &&
          std::prev(prev)->second.stripe_offset + std::prev(prev)->second.length == pos &&
          std::prev(prev)->second.on_member == on_member) {
        std::prev(prev)->second.length += static_cast<uint32_t>(n);  // one extent, not many
      } else {
        map[file_offset] = Pending{static_cast<uint32_t>(n), static_cast<uint32_t>(pos), on_member};
      }
      (on_member ? stats_.bytes_direct : stats_.bytes_copied) += n;
    }
    s.filled = static_cast<uint32_t>(pos + n);
    open_free_bytes_ = data_bytes_ - round_up(s.filled);
    s.last_ino = ino;
    s.last_file_end = file_offset + n;
    s.last_stripe_end = s.filled;
    accepted += n;
    if (s.filled == data_bytes_) {
      RAIDFS_TRY(const bool moved, rotate(ctx, lock));
      *filled |= moved;
    }
  }
  return accepted;
}

Result<std::vector<std::pair<uint64_t, uint64_t>>> StripeWriter::still_mapped_locked(
    uint64_t ino, const meta::Extent& from, uint64_t generation) {
  using Ranges = std::vector<std::pair<uint64_t, uint64_t>>;
  // Under mu_, with the slot behind settled, no extent of any file changes (every commit,
  // truncate and punch takes mu_ or is that slot's seal), and the stripe cannot be handed out
  // again (only this writer allocates): what is checked here holds until the caller places the
  // bytes.
  auto stripe = meta_.get_stripe(from.stripe_id);
  if (!stripe) return stripe.error().code == ENOENT ? Result<Ranges>(Ranges{}) : std::unexpected(stripe.error());
  if (stripe->generation != generation || stripe->state != meta::StripeState::kSealed) return Ranges{};
  RAIDFS_TRY(auto maps, meta_.map_extents(ino, from.file_offset, from.file_end()));
  // The parts of `from` the file still maps to the same place: the rest was overwritten,
  // punched or truncated since the cleaner read it, and the newer state wins.
  Ranges out;
  const auto pending = pending_ranges(ino, from.file_offset);  // newer still
  for (const meta::Mapping& m : maps) {
    if (m.hole || m.stripe_id != from.stripe_id ||
        uint64_t{m.stripe_offset} != from.stripe_offset + (m.file_offset - from.file_offset))
      continue;
    uint64_t a = m.file_offset;
    const uint64_t b = m.file_offset + m.length;
    for (const auto& [pa, pb] : pending) {
      if (pb <= a || pa >= b) continue;
      if (pa > a) out.emplace_back(a, pa);
      a = std::max(a, pb);
      if (a >= b) break;
    }
    if (a < b) out.emplace_back(a, b);
  }
  return out;
}

Result<uint64_t> StripeWriter::relocate(IoContext& ctx, uint64_t ino, const meta::Extent& from,
                                        uint64_t generation, const uint8_t* data) {
  Lock lock(mu_);
  // A write's whole stripes under way decided before this move that the file had nothing
  // pending; they commit after the check below, and the moved (older) bytes, pending here,
  // would commit after them, over them. So none may be under way, and the whole stripes of
  // the move keep the lock: a write committed in between would be overwritten by them.
  const BatchPause no_batches(*this, lock);
  RAIDFS_CHECK(settle_behind(ctx, lock));
  RAIDFS_TRY(auto keep, still_mapped_locked(ino, from, generation));
  uint64_t moved = 0;
  bool filled = false;
  for (auto [a, b] : keep) {
    // No waiting in here: the slot behind is settled and no one else moves one while the lock
    // is held, so nothing can slip in between the check above and the placement.
    RAIDFS_CHECK(write_locked(ctx, lock, ino, a, {data + (a - from.file_offset), b - a}, false, 0,
                              &filled));
    moved += b - a;
  }
  {
    std::lock_guard pending_lock(pending_mu_);
    stats_.bytes_relocated += moved;
  }
  if (filled) RAIDFS_CHECK(after_fill(ctx, lock));
  return moved;
}

Result<uint64_t> StripeWriter::relocate_stripe(IoContext& ctx, std::span<const Move> moves,
                                               uint8_t* data, uint32_t used) {
  Lock lock(mu_);
  RAIDFS_CHECK(settle_behind(ctx, lock));
  std::map<uint64_t, std::vector<meta::Extent>> kept;  // by inode, in file order
  uint64_t moved = 0;
  for (const Move& mv : moves) {
    RAIDFS_TRY(auto keep, still_mapped_locked(mv.ino, mv.from, mv.generation));
    for (auto [a, b] : keep) {
      kept[mv.ino].push_back(meta::Extent{a, 0, static_cast<uint32_t>(mv.at + (a - mv.from.file_offset)),
                                          static_cast<uint32_t>(b - a)});
      moved += b - a;
    }
  }
  if (moved == 0) return uint64_t{0};

  std::memset(data + used, 0, data_bytes_ - used);
  std::vector<meta::FileExtents> files;
  for (auto& [ino, extents] : kept) {
    std::sort(extents.begin(), extents.end(),
              [](const meta::Extent& a, const meta::Extent& b) { return a.file_offset < b.file_offset; });
    files.push_back(meta::FileExtents{ino, std::move(extents), true, std::nullopt});
  }
  RAIDFS_CHECK(commit_whole_stripes_locked(ctx, nullptr, data, 1, std::move(files), nullptr));
  std::lock_guard pending_lock(pending_mu_);
  ++stats_.stripes_sealed;
  stats_.bytes_direct += moved;  // written from the cleaner's buffer, not the open stripe
  stats_.bytes_relocated += moved;
  return moved;
}

Result<void> StripeWriter::commit_whole_stripes_locked(IoContext& ctx, Lock* lock,
                                                       const uint8_t* data, uint32_t count,
                                                       std::vector<meta::FileExtents> files,
                                                       Slot* behind) {
  if (count == 0 || count > direct_batch_) return fail(EINVAL, "whole stripes: bad batch size");
  for (const meta::FileExtents& f : files)
    for (const meta::Extent& e : f.extents)
      if (e.stripe_id >= count) return fail(EINVAL, "whole stripes: an extent past the batch");
  std::vector<meta::StripeRef> refs;
  auto release = [&] {
    for (const meta::StripeRef& ref : refs) meta_.release_stripe(ref.id);
  };
  {
    // Readers wait for the whole batch's allocations (memory only, but for a store sync when
    // freed stripes must become durable first): one wait, not one per stripe.
    std::unique_lock reuse(stripe_reuse_);
    while (refs.size() < count) {
      auto ref = meta_.allocate_stripe();
      if (!ref) {
        release();
        return std::unexpected(ref.error());
      }
      refs.push_back(*ref);
    }
  }
  for (meta::FileExtents& f : files)
    for (meta::Extent& e : f.extents) e.stripe_id = refs[e.stripe_id].id;

  // The parity, checksums and member I/O of stripes nobody else knows of need no lock: without
  // the slot behind to seal, they are done with the writer's lock released, so that concurrent
  // writes of whole stripes (the kernel's writeback of one file, several queues) compute and
  // write side by side. The batch holds the write floor below its stripes meanwhile, and the
  // commit takes the lock again: every metadata commit of file data stays under it (the
  // cleaner's still_mapped_locked and its commit see none in between).
  const bool unlocked = lock != nullptr && behind == nullptr && batch_pauses_ == 0;
  const uint64_t floor = refs.front().generation;
  if (unlocked) {
    unlocked_batches_.insert(floor);
    lock->unlock();
  }
  const Geometry& g = array_.geometry();
  const size_t parity_bytes = size_t{g.parity_count()} * chunk_bytes_;
  uint8_t* parity_buffer = ctx.parity_buffer(size_t{count} * parity_bytes);
  std::vector<StripeWrite> writes;
  std::vector<meta::Stripe> records;
  for (uint32_t i = 0; i < count; ++i) {
    const uint8_t* stripe_data = data + size_t{i} * data_bytes_;
    uint8_t* stripe_parity = parity_buffer + i * parity_bytes;
    const uint8_t* chunks[kMembersMax];
    uint8_t* parity[kParityMax];
    for (uint32_t d = 0; d < g.data_count(); ++d) chunks[d] = stripe_data + size_t{d} * chunk_bytes_;
    for (uint32_t p = 0; p < g.parity_count(); ++p) parity[p] = stripe_parity + size_t{p} * chunk_bytes_;
    array_.codec().encode(chunks, parity, chunk_bytes_);
    std::vector<uint32_t> crcs;
    crcs.reserve(data_bytes_ / kBlock);
    for (uint32_t b = 0; b < data_bytes_ / kBlock; ++b)
      crcs.push_back(block_checksum(BlockVersion{refs[i].id, refs[i].generation, b},
                                    {stripe_data + size_t{b} * kBlock, kBlock}));
    records.push_back(sealed_record(refs[i].id, refs[i].generation, data_bytes_, std::move(crcs)));
    writes.push_back(StripeWrite{refs[i].id, stripe_data, stripe_parity});
  }
  if (behind == nullptr) {
    Result<void> written = array_.write_stripes(ctx.channel(), writes);
    if (written) written = array_.flush(ctx.channel());
    if (unlocked) {
      lock->lock();
      unlocked_batches_.erase(unlocked_batches_.find(floor));
      if (unlocked_batches_.empty()) batches_cv_.notify_all();
    }
    if (written) written = meta_.commit_files(files, records);
    if (!written) release();  // never committed: free again
    return written;
  }
  // The stripe behind sealed in the same flush and commit: its remaining blocks and its parity
  // written before the batch's stripes, one flush for all, and its files' extents in the
  // commit, the batch's over them (newer). (sealer_owed_ is left as it is: a sealer that wakes
  // for this slot finds it sealed, or, if this fails, tries it again on its own.)
  auto written = [&]() -> Result<void> {
    RAIDFS_TRY(meta::Stripe sealed, write_sealing(ctx, *behind));
    RAIDFS_CHECK(array_.write_stripes(ctx.channel(), writes));
    RAIDFS_CHECK(array_.flush(ctx.channel()));
    records.push_back(std::move(sealed));
    RAIDFS_CHECK(commit_slot(*behind, records, std::move(files)));
    std::lock_guard pending_lock(pending_mu_);
    ++stats_.stripes_sealed;
    return {};
  }();
  if (!written) {
    release();  // the batch never committed; the slot behind stays full, its data pending
    return written;
  }
  behind_emptied();
  return {};
}

Result<void> StripeWriter::write_full_stripes_locked(IoContext& ctx, Lock* lock, uint64_t ino,
                                                    uint64_t file_offset, const uint8_t* src,
                                                    uint32_t count, int64_t mtime_ns,
                                                    Slot* behind) {
  meta::FileExtents file{ino, {}, true, std::nullopt};
  for (uint32_t i = 0; i < count; ++i)
    file.extents.push_back(meta::Extent{file_offset + uint64_t{i} * data_bytes_, i, 0, data_bytes_});
  if (mtime_ns) file.mtime_ns = mtime_ns;
  std::vector<meta::FileExtents> files;
  files.push_back(std::move(file));
  RAIDFS_CHECK(commit_whole_stripes_locked(ctx, lock, src, count, std::move(files), behind));
  // The file has nothing pending over this range that could commit later over it: the path is
  // taken only when it has nothing in the open slot, and what it had behind committed first.
  std::lock_guard pending_lock(pending_mu_);
  stats_.stripes_sealed += count;
  stats_.bytes_direct += uint64_t{count} * data_bytes_;
  return {};
}

Result<void> StripeWriter::place_on_members(IoContext& ctx, Slot& slot, uint32_t pos,
                                            const uint8_t* src, uint32_t n) {
  OpenStripe& s = *slot.stripe;
  RAIDFS_CHECK(array_.write_data(ctx.channel(), s.id, pos, n, src));
  s.any_on_member = slot.member_parity_dirty = true;
  const uint32_t rows_per_chunk = chunk_bytes_ / kBlock, m = array_.geometry().parity_count();
  uint8_t* parity[kParityMax];
  for (uint32_t b = pos / kBlock; b < (pos + n) / kBlock; ++b) {
    const uint8_t* block = src + (size_t{b} * kBlock - pos);
    s.on_member[b] = true;
    s.on_member_crcs[b] = block_checksum(BlockVersion{s.id, s.generation, b}, {block, kBlock});
    const size_t row_at = size_t{b % rows_per_chunk} * kBlock;
    for (uint32_t p = 0; p < m; ++p)
      parity[p] = slot.member_parity.data() + size_t{p} * chunk_bytes_ + row_at;
    array_.codec().update(b / rows_per_chunk, block, parity, kBlock);
  }
  return {};
}

Result<void> StripeWriter::write_new_blocks(IoContext& ctx, Slot& slot) {
  OpenStripe& s = *slot.stripe;
  const uint32_t end = static_cast<uint32_t>(round_up(s.filled));
  if (end > s.written) {
    // The runs of blocks that are only in the buffer.
    const uint32_t last = end / kBlock;
    for (uint32_t b = s.written / kBlock; b < last;) {
      if (s.on_member[b]) {
        ++b;
        continue;
      }
      uint32_t run_end = b;
      while (run_end < last && !s.on_member[run_end]) ++run_end;
      RAIDFS_CHECK(array_.write_data(ctx.channel(), s.id, b * kBlock, (run_end - b) * kBlock,
                                     slot.buffer.data() + size_t{b} * kBlock));
      b = run_end;
    }
    s.crcs.resize(s.written / kBlock);  // drops those of an earlier attempt that did not commit
    for (uint32_t b = s.written / kBlock; b < last; ++b)
      s.crcs.push_back(s.on_member[b]
                           ? s.on_member_crcs[b]
                           : block_checksum(BlockVersion{s.id, s.generation, b},
                                            {slot.buffer.data() + size_t{b} * kBlock, kBlock}));
  }
  return {};
}

void StripeWriter::parity_rows(Slot& slot, uint32_t first_row, uint32_t row_count) {
  const Geometry& g = array_.geometry();
  const uint32_t k = g.data_count(), m = g.parity_count();
  const uint8_t* data[kMembersMax];
  uint8_t* parity[kParityMax];
  for (uint32_t row = first_row; row < first_row + row_count; ++row) {
    const size_t at = size_t{row} * kBlock;
    for (uint32_t d = 0; d < k; ++d) data[d] = slot.buffer.data() + size_t{d} * chunk_bytes_ + at;
    for (uint32_t p = 0; p < m; ++p)
      parity[p] = slot.buffer.data() + size_t{k + p} * chunk_bytes_ + at;
    array_.codec().encode(data, parity, kBlock);
    if (slot.stripe->any_on_member)
      for (uint32_t p = 0; p < m; ++p)
        xor_into(parity[p], slot.member_parity.data() + size_t{p} * chunk_bytes_ + at, kBlock);
  }
}

std::vector<meta::FileExtents> StripeWriter::slot_files(const Slot& slot) const {
  std::vector<meta::FileExtents> files;
  std::lock_guard pending_lock(pending_mu_);
  for (const auto& [ino, pf] : slot.pending) {
    if (pf.extents.empty()) continue;
    meta::FileExtents file{ino, {}, true, std::nullopt};
    if (pf.mtime_ns) file.mtime_ns = pf.mtime_ns;
    for (const auto& [off, p] : pf.extents)
      file.extents.push_back(meta::Extent{off, slot.stripe->id, p.stripe_offset, p.length});
    files.push_back(std::move(file));
  }
  return files;
}

void StripeWriter::overlay(std::vector<meta::FileExtents>& files, meta::FileExtents newer) {
  auto same = std::find_if(files.begin(), files.end(),
                           [&](const meta::FileExtents& f) { return f.ino == newer.ino; });
  if (same == files.end()) {
    files.push_back(std::move(newer));
    return;
  }
  std::vector<meta::Extent> out;
  for (const meta::Extent& e : same->extents) {
    // The parts of e outside every newer extent (both lists sorted and non-overlapping).
    uint64_t a = e.file_offset;
    for (const meta::Extent& n : newer.extents) {
      if (n.file_end() <= a || n.file_offset >= e.file_end()) continue;
      if (n.file_offset > a)
        out.push_back(meta::Extent{a, e.stripe_id, static_cast<uint32_t>(e.stripe_offset + (a - e.file_offset)),
                                   static_cast<uint32_t>(n.file_offset - a)});
      a = n.file_end();
    }
    if (a < e.file_end())
      out.push_back(meta::Extent{a, e.stripe_id, static_cast<uint32_t>(e.stripe_offset + (a - e.file_offset)),
                                 static_cast<uint32_t>(e.file_end() - a)});
  }
  out.insert(out.end(), newer.extents.begin(), newer.extents.end());
  std::sort(out.begin(), out.end(), [](const meta::Extent& x, const meta::Extent& y) {
    return x.file_offset < y.file_offset;
  });
  same->extents = std::move(out);
  if (newer.mtime_ns) same->mtime_ns = newer.mtime_ns;
}

Result<void> StripeWriter::commit_slot(Slot& slot, std::span<const meta::Stripe> records,
                                       std::vector<meta::FileExtents> newer) {
  std::vector<meta::FileExtents> files = slot_files(slot);
  for (meta::FileExtents& f : newer) overlay(files, std::move(f));
  // Committed, readers find these extents in the metadata; only then are they dropped here, so
  // that a reader always finds the data in one place or the other (and one that combines both
  // sees the epoch move).
  PendingChange change(pending_epoch_);
  RAIDFS_CHECK(meta_.commit_files(files, records));
  std::lock_guard pending_lock(pending_mu_);
  slot.pending.clear();
  return {};
}

Result<void> StripeWriter::flush_partial_locked(IoContext& ctx) {
  Slot& slot = open_slot();
  OpenStripe& s = *slot.stripe;
  const uint32_t old_written = s.written;
  RAIDFS_CHECK(write_new_blocks(ctx, slot));
  const uint32_t end = static_cast<uint32_t>(round_up(s.filled));
  // Parity of the rows the new blocks touch; rows with data are a prefix since the chunks fill
  // one after another.
  const uint32_t rows_per_chunk = chunk_bytes_ / kBlock;
  const uint32_t first_block = old_written / kBlock, end_block = end / kBlock;
  // The rows whose parity changes: every row once a chunk's worth of blocks is new, else the
  // rows of the new blocks (which may wrap from the end of one chunk to the start of the next).
  const bool every_row = end_block - first_block >= rows_per_chunk;
  std::vector<bool> changed(rows_per_chunk, every_row);
  if (every_row) {
    parity_rows(slot, 0, rows_per_chunk);
  } else {
    for (uint32_t b = first_block; b < end_block; ++b) {
      changed[b % rows_per_chunk] = true;
      parity_rows(slot, b % rows_per_chunk, 1);
    }
  }
  RAIDFS_CHECK(array_.flush(ctx.channel()));

  // The record carries the changed rows only: the metadata keeps the others from earlier
  // flushes (meta/parity_rows.h), and their parity did not change.
  const uint32_t m = array_.geometry().parity_count(), k = array_.geometry().data_count();
  meta::Stripe record;
  record.id = s.id;
  record.generation = s.generation;
  record.state = meta::StripeState::kOpen;
  record.filled_bytes = end;
  record.block_crcs = s.crcs;
  record.parity_count = static_cast<uint8_t>(m);
  for (uint32_t row = 0; row < rows_per_chunk; ++row) {
    if (!changed[row]) continue;
    meta::ParityRow pr{row, std::string(size_t{m} * kBlock, '\0')};
    for (uint32_t p = 0; p < m; ++p)
      std::memcpy(pr.bytes.data() + size_t{p} * kBlock,
                  slot.buffer.data() + size_t{k + p} * chunk_bytes_ + size_t{row} * kBlock, kBlock);
    record.parity_rows.push_back(std::move(pr));
  }
  RAIDFS_CHECK(commit_slot(slot, std::span(&record, 1)));
  s.written = s.filled = end;
  s.committed = true;
  open_free_bytes_ = data_bytes_ - end;
  std::lock_guard pending_lock(pending_mu_);
  ++stats_.partial_flushes;
  return {};
}

Result<void> StripeWriter::seal_slot(IoContext& ctx, Slot& slot) {
  OpenStripe& s = *slot.stripe;
  bool any_pending;
  {
    std::lock_guard pending_lock(pending_mu_);
    any_pending = std::any_of(slot.pending.begin(), slot.pending.end(),
                              [](const auto& e) { return !e.second.extents.empty(); });
  }
  if (!s.committed && !any_pending) {  // nothing of it ever reached the metadata
    meta_.release_stripe(s.id);
    std::lock_guard pending_lock(pending_mu_);
    slot.pending.clear();
    return {};
  }
  RAIDFS_TRY(const meta::Stripe sealed, write_sealing(ctx, slot));
  RAIDFS_CHECK(array_.flush(ctx.channel()));
  RAIDFS_CHECK(commit_slot(slot, std::span(&sealed, 1)));
  std::lock_guard pending_lock(pending_mu_);
  ++stats_.stripes_sealed;
  return {};
}

Result<meta::Stripe> StripeWriter::write_sealing(IoContext& ctx, Slot& slot) {
  OpenStripe& s = *slot.stripe;
  RAIDFS_CHECK(write_new_blocks(ctx, slot));
  RAIDFS_CHECK(write_parity(array_, ctx.channel(), s.id, slot.buffer.data(),
                            s.any_on_member ? slot.member_parity.data() : nullptr));
  return sealed_record(s.id, s.generation, static_cast<uint32_t>(round_up(s.filled)), s.crcs);
}

Result<void> StripeWriter::settle_behind(IoContext& ctx, Lock& lock) {
  if (behind_ == Behind::kSealing) ++seal_waits_;
  for (;;) {
    switch (behind_) {
      case Behind::kEmpty:
        return {};
      case Behind::kSealing:
        behind_cv_.wait(lock);
        break;
      case Behind::kFull:  // its seal failed (or its writer is this thread): sealed here
        RAIDFS_CHECK(seal_behind(ctx, lock, false));
        break;
    }
  }
}

Result<bool> StripeWriter::rotate(IoContext& ctx, Lock& lock) {
  const uint64_t seen = rotations_;
  // Settles the slot behind, unless the open one is moved meanwhile: the sealer does that for
  // the writers waiting here as soon as its seal is done (run_sealer).
  ++rotation_waiters_;
  Result<void> settled;
  if (behind_ == Behind::kSealing) ++seal_waits_;
  while (settled && rotations_ == seen && behind_ != Behind::kEmpty) {
    if (behind_ == Behind::kSealing) {
      behind_cv_.wait(lock);
    } else {
      settled = seal_behind(ctx, lock, false);
    }
  }
  --rotation_waiters_;
  RAIDFS_CHECK(settled);
  if (rotations_ != seen || !open_slot().stripe) return false;
  move_open_behind();
  return true;
}

void StripeWriter::move_open_behind() {
  {
    std::lock_guard pending_lock(pending_mu_);
    open_slot_ = 1 - open_slot_;
  }
  behind_ = Behind::kFull;
  ++rotations_;
  open_free_bytes_ = 0;
}

Result<void> StripeWriter::seal_behind(IoContext& ctx, Lock& lock, bool release) {
  if (behind_ != Behind::kFull) return {};
  Slot& slot = behind_slot();
  behind_ = Behind::kSealing;
  sealer_owed_ = false;  // whoever seals it, the sealer has no more to do for this slot
  if (release) lock.unlock();
  Result<void> sealed = seal_slot(ctx, slot);
  if (release) lock.lock();
  if (sealed) {
    behind_emptied();
  } else {
    behind_ = Behind::kFull;  // its data stays pending there; the next settle tries again
    behind_cv_.notify_all();
  }
  return logged(std::move(sealed));
}

void StripeWriter::behind_emptied() {
  behind_slot().stripe.reset();
  behind_ = Behind::kEmpty;
  const Slot& open = open_slot();
  raise_write_floor(open.stripe ? open.stripe->generation : meta_.next_generation());
  behind_cv_.notify_all();
}

Result<void> StripeWriter::seal_open(IoContext& ctx, Lock& lock) {
  RAIDFS_CHECK(rotate(ctx, lock));
  return settle_behind(ctx, lock);  // the sealer may have moved it behind and be sealing it
}

Result<void> StripeWriter::write_parity_and_flush(Array& array, IoChannel& channel,
                                                  uint64_t stripe, uint8_t* chunks,
                                                  const uint8_t* extra_parity) {
  RAIDFS_CHECK(write_parity(array, channel, stripe, chunks, extra_parity));
  return array.flush(channel);
}

Result<void> StripeWriter::write_parity(Array& array, IoChannel& channel, uint64_t stripe,
                                        uint8_t* chunks, const uint8_t* extra_parity) {
  const Geometry& g = array.geometry();
  const uint32_t k = g.data_count(), m = g.parity_count(), c = g.chunk_bytes();
  const uint8_t* data[kMembersMax] = {};
  uint8_t* parity[kParityMax] = {};
  for (uint32_t d = 0; d < k; ++d) data[d] = chunks + size_t{d} * c;
  for (uint32_t p = 0; p < m; ++p) parity[p] = chunks + size_t{k + p} * c;
  array.codec().encode(data, parity, c);
  if (extra_parity != nullptr)
    for (uint32_t p = 0; p < m; ++p) xor_into(parity[p], extra_parity + size_t{p} * c, c);
  return array.write_parity(channel, stripe, parity[0]);
}

meta::Stripe StripeWriter::sealed_record(uint64_t stripe, uint64_t generation,
                                         uint32_t filled_bytes, std::vector<uint32_t> block_crcs) {
  meta::Stripe record;
  record.id = stripe;
  record.generation = generation;
  record.state = meta::StripeState::kSealed;
  record.filled_bytes = filled_bytes;
  record.block_crcs = std::move(block_crcs);
  return record;
}

Result<void> StripeWriter::flush(IoContext& ctx, uint64_t ino) {
  Lock lock(mu_);
  if (!has_pending(ino)) return {};
  // Data of the file may be behind, in a stripe being sealed: that commit comes first.
  RAIDFS_CHECK(settle_behind(ctx, lock));
  if (!open_slot().stripe || !has_pending(ino)) return {};
  return logged(flush_partial_locked(ctx));
}

Result<void> StripeWriter::seal(IoContext& ctx) {
  Lock lock(mu_);
  return seal_open(ctx, lock);
}

Result<void> StripeWriter::seal_after(IoContext& ctx, const std::function<Result<void>()>& first) {
  Lock lock(mu_);
  const BatchPause no_batches(*this, lock);  // no write in progress
  RAIDFS_CHECK(settle_behind(ctx, lock));
  RAIDFS_CHECK(first());
  return seal_open(ctx, lock);
}

StripeWriter::BatchPause::BatchPause(StripeWriter& writer, Lock& lock) : writer_(writer) {
  ++writer_.batch_pauses_;
  writer_.batches_cv_.wait(lock, [&] { return writer_.unlocked_batches_.empty(); });
}

Result<void> StripeWriter::logged(Result<void> outcome) {
  if (!outcome && failure_log_.allow())
    RAIDFS_LOG(kError, "file data not stored: %s",
               outcome.error().message.c_str());
  return outcome;
}

bool StripeWriter::pending_in(const Slot& slot, uint64_t ino) const {
  std::lock_guard pending_lock(pending_mu_);
  auto it = slot.pending.find(ino);
  return it != slot.pending.end() && !it->second.extents.empty();
}

bool StripeWriter::has_pending(uint64_t ino) const {
  std::lock_guard pending_lock(pending_mu_);
  for (const Slot& slot : slots_) {
    if (ino == 0) {
      for (const auto& [file, pf] : slot.pending)
        if (!pf.extents.empty()) return true;
      continue;
    }
    auto it = slot.pending.find(ino);
    if (it != slot.pending.end() && !it->second.extents.empty()) return true;
  }
  return false;
}

StripeWriter::PendingSummary StripeWriter::pending_summary(uint64_t ino) const {
  std::lock_guard pending_lock(pending_mu_);
  PendingSummary out;
  // Behind first: the open slot's time is the newer.
  for (const unsigned i : {1 - open_slot_, open_slot_}) {
    const auto& pending = slots_[i].pending;
    auto it = pending.find(ino);
    if (it == pending.end()) continue;
    if (it->second.mtime_ns != 0) out.mtime_ns = it->second.mtime_ns;
    for (const auto& [off, p] : it->second.extents) {
      out.end = std::max(out.end, off + p.length);
      out.blocks += meta::blocks_touched(p.stripe_offset, p.length);
    }
  }
  return out;
}

uint64_t StripeWriter::pending_end(uint64_t ino) const {
  std::lock_guard pending_lock(pending_mu_);
  uint64_t end = 0;
  for (const Slot& slot : slots_) {
    auto it = slot.pending.find(ino);
    if (it == slot.pending.end() || it->second.extents.empty()) continue;
    const auto& [last, p] = *it->second.extents.rbegin();  // extents never overlap
    end = std::max(end, last + p.length);
  }
  return end;
}

void StripeWriter::clear_pending_mtime(uint64_t ino) {
  // A commit that took the file's pending time before this (a seal under way) is waited for,
  // or it would store that time over the caller's; any later one finds none.
  Lock lock(mu_);
  wait_behind(lock);
  std::lock_guard pending_lock(pending_mu_);
  for (Slot& slot : slots_)
    if (auto it = slot.pending.find(ino); it != slot.pending.end()) it->second.mtime_ns = 0;
}

void StripeWriter::read_pending(uint64_t ino, uint64_t offset, uint64_t length, uint8_t* dest,
                                bool* on_member,
                                std::vector<std::pair<uint64_t, uint64_t>>* covered) const {
  covered->clear();
  const uint64_t end = offset + length;
  *on_member = false;
  std::lock_guard pending_lock(pending_mu_);
  // Behind first, then the open slot's newer data over it.
  for (const unsigned i : {1 - open_slot_, open_slot_}) {
    const Slot& slot = slots_[i];
    auto found = slot.pending.find(ino);
    if (found == slot.pending.end()) continue;
    const PendingMap& map = found->second.extents;
    auto it = map.upper_bound(offset);
    if (it != map.begin()) --it;
    for (; it != map.end() && it->first < end; ++it) {
      const uint64_t a = std::max(offset, it->first);
      const uint64_t b = std::min(end, it->first + it->second.length);
      if (a >= b) continue;
      if (it->second.on_member) {
        *on_member = true;
        covered->clear();
        return;
      }
      std::memcpy(dest + (a - offset),
                  slot.buffer.data() + it->second.stripe_offset + (a - it->first), b - a);
      covered->emplace_back(a, b);
    }
  }
  merge_in_place(*covered);  // the caller reads the gaps from the members
}

std::vector<std::pair<uint64_t, uint64_t>> StripeWriter::pending_ranges(uint64_t ino,
                                                                        uint64_t offset) const {
  std::vector<std::pair<uint64_t, uint64_t>> all;
  {
    std::lock_guard pending_lock(pending_mu_);
    for (const Slot& slot : slots_) {
      auto found = slot.pending.find(ino);
      if (found == slot.pending.end()) continue;
      for (const auto& [off, p] : found->second.extents)
        if (off + p.length > offset) all.emplace_back(off, off + p.length);
    }
  }
  merge_in_place(all);
  return all;
}

void StripeWriter::wait_behind(Lock& lock) {
  if (behind_ == Behind::kSealing) ++seal_waits_;
  behind_cv_.wait(lock, [&] { return behind_ != Behind::kSealing; });
}

Result<meta::Inode> StripeWriter::set_size(uint64_t ino, const meta::SetAttr& attr) {
  Lock lock(mu_);
  // A slot behind that is not being sealed may still hold data (its seal failed): it is cut
  // too, so that its later seal does not bring back what the truncate dropped.
  wait_behind(lock);
  PendingChange change(pending_epoch_);
  if (attr.size) {
    std::lock_guard pending_lock(pending_mu_);
    for (Slot& slot : slots_)
      if (auto it = slot.pending.find(ino); it != slot.pending.end())
        carve(it->second.extents, *attr.size, UINT64_MAX);
  }
  return meta_.setattr(ino, attr);
}

Result<void> StripeWriter::punch_hole(uint64_t ino, uint64_t offset, uint64_t length) {
  Lock lock(mu_);
  wait_behind(lock);  // as set_size
  PendingChange change(pending_epoch_);
  // Pending data may be all that gives the file its size (it is not committed yet): the punch
  // keeps that size, or punching the tail of a fresh file would shrink it.
  uint64_t pending_size = 0;
  {
    std::lock_guard pending_lock(pending_mu_);
    for (Slot& slot : slots_) {
      auto it = slot.pending.find(ino);
      if (it == slot.pending.end() || it->second.extents.empty()) continue;
      const auto& [last, p] = *it->second.extents.rbegin();
      pending_size = std::max(pending_size, last + p.length);
      carve(it->second.extents, offset, offset + length);
    }
  }
  return meta_.punch_hole(ino, offset, length, pending_size);
}

void StripeWriter::forget(uint64_t ino) {
  std::lock_guard pending_lock(pending_mu_);
  for (Slot& slot : slots_) slot.pending.erase(ino);
}

uint64_t StripeWriter::open_free_bytes() const { return open_free_bytes_.load(); }

WriterStats StripeWriter::stats() const {
  std::lock_guard pending_lock(pending_mu_);
  WriterStats out = stats_;
  out.seal_waits = seal_waits_.load();
  return out;
}

}  // namespace raidfs::fs
