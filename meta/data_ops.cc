// FsMeta data operations: committing written extents and stripe records, truncation, and the
// live-block accounting of stripes.
#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "meta/fs_meta.h"
#include "meta/parity_rows.h"
#include "meta/txn.h"

namespace raidfs::meta {
namespace {

uint32_t extent_blocks(const Extent& e) { return blocks_touched(e.stripe_offset, e.length); }

// Removes file bytes [a, b) from `map` (file_offset → extent), splitting extents that cross a or b.
void carve(std::map<uint64_t, Extent>& map, uint64_t a, uint64_t b) {
  auto it = map.lower_bound(a);
  if (it != map.begin()) {
    auto prev = std::prev(it);
    Extent e = prev->second;
    if (e.file_end() > a) {
      prev->second.length = static_cast<uint32_t>(a - e.file_offset);
      if (e.file_end() > b) {
        const uint64_t cut = b - e.file_offset;
        map[b] = Extent{b, e.stripe_id, static_cast<uint32_t>(e.stripe_offset + cut),
                        static_cast<uint32_t>(e.length - cut)};
      }
    }
  }
  it = map.lower_bound(a);
  while (it != map.end() && it->first < b) {
    Extent e = it->second;
    it = map.erase(it);
    if (e.file_end() > b) {
      const uint64_t cut = b - e.file_offset;
      map[b] = Extent{b, e.stripe_id, static_cast<uint32_t>(e.stripe_offset + cut),
                      static_cast<uint32_t>(e.length - cut)};
      break;
    }
  }
}

Result<void> check_stripe_record(const Stripe& s, const Super& super) {
  const std::string id = "stripe " + std::to_string(s.id);
  if (s.id >= super.stripe_count) return fail(EINVAL, id + " is beyond the stripe count");
  if (s.state == StripeState::kFree) return fail(EINVAL, id + ": cannot commit a free stripe");
  if (s.filled_bytes > super.stripe_data_bytes) return fail(EINVAL, id + ": filled beyond size");
  if (s.block_crcs.size() != (s.filled_bytes + kBlockBytes - 1) / kBlockBytes)
    return fail(EINVAL, id + ": one crc per 4 KiB filled block expected");
  if (s.parity_count > kParityCountMax || (!s.parity_rows.empty() && s.parity_count == 0))
    return fail(EINVAL, id + ": bad parity count");
  for (const ParityRow& row : s.parity_rows)
    if (row.bytes.size() != size_t{s.parity_count} * kBlockBytes)
      return fail(EINVAL, id + ": parity row of the wrong size");
  return {};
}

// Whether `s` may replace the stripe's stored record `old` (nullopt: none) for a stripe that
// allocate_stripe() handed out with `allocated_generation` (nullopt: not handed out). A stripe's
// data only grows from offset 0, and a sealed stripe's data never changes, so a committed record
// may only keep its generation, keep or grow its filled bytes with the checksums of the blocks
// already filled unchanged, and go from open to sealed, never back. A free stripe takes a record
// only from the incarnation allocate_stripe() handed out.
Result<void> check_stripe_transition(const Stripe& s, const std::optional<Stripe>& old,
                                     std::optional<uint64_t> allocated_generation) {
  const std::string id = "stripe " + std::to_string(s.id);
  if (!old || old->state == StripeState::kFree) {
    if (!allocated_generation)
      return fail(ESTALE, id + " is free and not allocated: a stale record (generation " +
                              std::to_string(s.generation) + ")");
    if (s.generation != *allocated_generation)
      return fail(ESTALE, id + " was allocated as generation " +
                              std::to_string(*allocated_generation) + ", not " +
                              std::to_string(s.generation));
    return {};
  }
  if (s.generation != old->generation)
    return fail(ESTALE, id + " is generation " + std::to_string(old->generation) + ", not " +
                            std::to_string(s.generation));
  if (old->state == StripeState::kSealed && s.state != StripeState::kSealed)
    return fail(EINVAL, id + ": a sealed stripe cannot be reopened");
  if (s.filled_bytes < old->filled_bytes)
    return fail(EINVAL, id + ": filled bytes cannot shrink (" + std::to_string(old->filled_bytes) +
                            " to " + std::to_string(s.filled_bytes) + ")");
  if (old->state == StripeState::kSealed && s.filled_bytes != old->filled_bytes)
    return fail(EINVAL, id + ": a sealed stripe cannot be filled further");
  // Blocks filled before keep their checksums; a partly filled last block may change only if
  // it is filled further.
  const size_t same = s.filled_bytes == old->filled_bytes ? old->block_crcs.size()
                                                           : old->filled_bytes / kBlockBytes;
  if (!std::equal(old->block_crcs.begin(), old->block_crcs.begin() + same, s.block_crcs.begin()))
    return fail(EINVAL, id + ": checksums of already filled blocks changed");
  return {};
}

}  // namespace

Result<int64_t> remove_extents_from(Txn& txn, uint64_t ino, uint64_t from) {
  const Store& store = txn.store();
  int64_t blocks = 0;
  RAIDFS_TRY(auto before, store.floor(Family::kExtents, extent_key(ino, from), extent_key(ino, 0)));
  if (before) {
    RAIDFS_TRY(auto k, parse_u64_pair_key(before->first));
    RAIDFS_TRY(Extent e, decode_extent(k.second, before->second));
    if (e.file_offset < from && e.file_end() > from) {
      Extent clipped = e;
      clipped.length = static_cast<uint32_t>(from - e.file_offset);
      blocks += int64_t{extent_blocks(clipped)} - extent_blocks(e);
      txn.add_live(e.stripe_id, int64_t{extent_blocks(clipped)} - extent_blocks(e));
      txn.put_extent(ino, clipped, &e);
    }
  }
  RAIDFS_CHECK(store.scan(Family::kExtents, extent_key(ino, from), inode_range_end(ino),
                          [&](std::string_view key, std::string_view value) -> Result<bool> {
                            RAIDFS_TRY(auto k, parse_u64_pair_key(key));
                            RAIDFS_TRY(Extent e, decode_extent(k.second, value));
                            blocks -= extent_blocks(e);
                            txn.add_live(e.stripe_id, -int64_t{extent_blocks(e)});
                            txn.del_extent(ino, e);
                            return true;
                          }));
  return blocks;
}

Result<void> apply_live_deltas(Txn& txn, std::span<const uint64_t> also) {
  std::map<uint64_t, int64_t> deltas = txn.live_deltas();
  txn.live_deltas().clear();
  for (uint64_t id : also) deltas.try_emplace(id, 0);
  for (const auto& [id, delta] : deltas) {
    RAIDFS_TRY(auto found, txn.find_stripe(id));
    if (!found || found->state == StripeState::kFree)
      return fail(EIO, "corrupt record: an extent references stripe " + std::to_string(id) +
                           ", which is free");
    Stripe s = std::move(*found);
    const int64_t live = int64_t{s.live_blocks} + delta;
    if (live < 0 || live > UINT32_MAX)
      return fail(EIO, "corrupt record: stripe " + std::to_string(id) + " live count " +
                           std::to_string(s.live_blocks) + " cannot change by " +
                           std::to_string(delta));
    s.live_blocks = static_cast<uint32_t>(live);
    txn.note_live_applied(delta);
    if (delta == 0 && s.state != StripeState::kSealed) continue;
    if (s.live_blocks == 0 && s.state == StripeState::kSealed) {
      s.state = StripeState::kFree;  // every block dead: the stripe is free after this commit
      txn.del_stripe_index(id);
      s.filled_bytes = 0;
      s.block_crcs.clear();
      s.parity_count = 0;
      s.parity_rows.clear();
    } else if (delta == 0) {
      continue;
    }
    txn.put_stripe(s);
  }
  return {};
}

Result<void> destroy_inode(Txn& txn, const Inode& inode) {
  txn.del(Family::kInodes, inode_key(inode.ino));
  txn.del(Family::kOrphans, orphan_key(inode.ino));
  RAIDFS_CHECK(txn.store().scan(Family::kXattrs, u64_key(inode.ino), inode_range_end(inode.ino),
                                [&](std::string_view key, std::string_view) -> Result<bool> {
                                  txn.del(Family::kXattrs, std::string(key));
                                  return true;
                                }));
  if (is_reg(inode)) {
    RAIDFS_CHECK(remove_extents_from(txn, inode.ino, 0));
    RAIDFS_CHECK(apply_live_deltas(txn));
  }
  return {};
}

// Overlays `extents` (sorted, inside [lo, hi)) on the map of `ino`, each replacing what mapped
// its own bytes; with no extents, unmaps all of [lo, hi) (a hole). Loads the old extents touching
// each new extent (runs of adjacent ones read together — a random-write batch must not scan the
// whole file between its lowest and highest offset), writes the diff and records the live-count
// changes. Scans committed state: once per inode per Txn.
Result<int64_t> replace_extents(Txn& txn, uint64_t ino, uint64_t lo, uint64_t hi,
                                std::span<const Extent> extents) {
  const Store& store = txn.store();
  std::map<uint64_t, Extent> before;
  auto load = [&](uint64_t a, uint64_t b) -> Result<void> {
    RAIDFS_TRY(auto prev, store.floor(Family::kExtents, extent_key(ino, a), extent_key(ino, 0)));
    if (prev) {
      RAIDFS_TRY(auto k, parse_u64_pair_key(prev->first));
      RAIDFS_TRY(Extent e, decode_extent(k.second, prev->second));
      if (e.file_end() > a) before[e.file_offset] = e;
    }
    return store.scan(Family::kExtents, extent_key(ino, a), extent_key(ino, b),
                      [&](std::string_view key, std::string_view value) -> Result<bool> {
                        RAIDFS_TRY(auto k, parse_u64_pair_key(key));
                        RAIDFS_TRY(Extent e, decode_extent(k.second, value));
                        before[e.file_offset] = e;
                        return true;
                      });
  };
  if (extents.empty()) {
    RAIDFS_CHECK(load(lo, hi));
  } else {
    for (size_t i = 0; i < extents.size();) {
      size_t j = i + 1;
      while (j < extents.size() && extents[j].file_offset == extents[j - 1].file_end()) ++j;
      RAIDFS_CHECK(load(extents[i].file_offset, extents[j - 1].file_end()));
      i = j;
    }
  }
  std::map<uint64_t, Extent> after = before;
  if (extents.empty()) carve(after, lo, hi);
  for (const Extent& e : extents) {
    carve(after, e.file_offset, e.file_end());
    after[e.file_offset] = e;
  }
  int64_t blocks = 0;  // the file's change
  for (const auto& [off, e] : before) {
    blocks -= extent_blocks(e);
    txn.add_live(e.stripe_id, -int64_t{extent_blocks(e)});
    if (!after.contains(off)) txn.del_extent(ino, e);
  }
  for (const auto& [off, e] : after) {
    blocks += extent_blocks(e);
    txn.add_live(e.stripe_id, int64_t{extent_blocks(e)});
    auto old = before.find(off);
    if (old == before.end() || !(old->second == e))
      txn.put_extent(ino, e, old == before.end() ? nullptr : &old->second);
  }
  return blocks;
}

void add_blocks(Inode& inode, int64_t delta) {
  // A format-1 inode stays uncounted until the upgrade at open counts it; a count going
  // negative is corruption the checker reports, not a reason to fail a write.
  if (inode.blocks == kBlocksUnknown) return;
  inode.blocks = delta < 0 && uint64_t(-delta) > inode.blocks ? 0 : inode.blocks + delta;
}

Result<void> FsMeta::commit_write(uint64_t ino, std::span<const Extent> extents,
                                  std::span<const Stripe> stripes, Durability durability) {
  if (ino == 0 && !extents.empty()) return fail(EINVAL, "extents without an inode");
  std::vector<FileExtents> files;
  if (ino != 0) files.push_back(FileExtents{ino, {extents.begin(), extents.end()}, false, now_ns()});
  return commit_files(files, stripes, durability);
}

Result<void> FsMeta::commit_files(std::span<const FileExtents> files,
                                  std::span<const Stripe> stripes, Durability durability) {
  std::unique_lock lock(mu_);
  Txn txn(*store_);
  const Super& super = store_->super();

  // The new stripe records, with the live counts they already have.
  std::map<uint64_t, Stripe> supplied;
  std::vector<uint64_t> supplied_ids;
  for (const Stripe& s : stripes) {
    RAIDFS_CHECK(check_stripe_record(s, super));
    if (supplied.contains(s.id))
      return fail(EINVAL, "stripe " + std::to_string(s.id) + " supplied twice");
    RAIDFS_TRY(auto old, txn.find_stripe(s.id));
    auto allocated = allocated_.find(s.id);
    RAIDFS_CHECK(check_stripe_transition(
        s, old, allocated == allocated_.end() ? std::nullopt : std::optional(allocated->second)));
    Stripe record = s;
    record.live_blocks = old && old->state != StripeState::kFree ? old->live_blocks : 0;
    supplied[s.id] = record;
    supplied_ids.push_back(s.id);
  }
  for (const auto& [id, record] : supplied) txn.put_stripe(record);

  std::set<uint64_t> seen;
  for (const FileExtents& file : files) {
    if (file.ino == 0) return fail(EINVAL, "extents without an inode");
    // Scans see committed state only, so one batch may touch a file's extents once.
    if (!seen.insert(file.ino).second)
      return fail(EINVAL, "inode " + std::to_string(file.ino) + " supplied twice");
    RAIDFS_TRY(auto found, txn.find_inode(file.ino));
    if (!found) {
      if (file.skip_if_missing) continue;  // removed meanwhile: its data is dead already
      return fail(ENOENT, "inode " + std::to_string(file.ino) + " does not exist");
    }
    RAIDFS_CHECK(apply_file_extents(txn, *found, file, supplied));
  }
  RAIDFS_CHECK(apply_live_deltas(txn, supplied_ids));
  RAIDFS_TRY(uint64_t seq, write_locked(txn, durability, Room::kAcknowledged));
  lock.unlock();
  return finish(seq, durability);
}

Result<void> FsMeta::apply_file_extents(Txn& txn, Inode inode, const FileExtents& file,
                                        const std::map<uint64_t, Stripe>& supplied) {
  const uint64_t ino = inode.ino;
  std::span<const Extent> extents = file.extents;
  if (is_dir(inode)) return fail(EISDIR, "inode " + std::to_string(ino) + " is a directory");
  if (!is_reg(inode)) return fail(EINVAL, "inode " + std::to_string(ino) + " is not a file");

  // Validate the new extents against each other and their stripes.
  for (size_t n = 0; n < extents.size(); ++n) {
    const Extent& e = extents[n];
    if (e.length == 0 || e.file_end() < e.file_offset)
      return fail(EINVAL, "extent of zero length or overflowing");
    if (n > 0 && extents[n - 1].file_end() > e.file_offset)
      return fail(EINVAL, "extents unsorted or overlapping");
    const Stripe* s = nullptr;
    std::optional<Stripe> stored;
    if (auto it = supplied.find(e.stripe_id); it != supplied.end()) {
      s = &it->second;
    } else {
      RAIDFS_TRY(stored, txn.find_stripe(e.stripe_id));
      if (stored) s = &*stored;
    }
    if (!s || s->state == StripeState::kFree)
      return fail(EINVAL, "extent points at stripe " + std::to_string(e.stripe_id) +
                              ", which is free");
    if (uint64_t{e.stripe_offset} + e.length > s->filled_bytes)
      return fail(EINVAL, "extent beyond the filled bytes of stripe " +
                              std::to_string(e.stripe_id));
  }

  if (!extents.empty()) {
    const uint64_t lo = extents.front().file_offset, hi = extents.back().file_end();
    RAIDFS_TRY(const int64_t blocks, replace_extents(txn, ino, lo, hi, extents));
    add_blocks(inode, blocks);
    inode.size = std::max(inode.size, hi);
  }
  if (file.mtime_ns) inode.mtime_ns = inode.ctime_ns = *file.mtime_ns;
  txn.put_inode(inode);
  return {};
}

Result<void> FsMeta::punch_hole(uint64_t ino, uint64_t offset, uint64_t length,
                                uint64_t min_size, Durability durability) {
  if (length == 0 && min_size == 0) return {};
  if (offset + length < offset) return fail(EINVAL, "hole range overflows");
  std::unique_lock lock(mu_);
  Txn txn(*store_);
  RAIDFS_TRY(Inode inode, txn.load_inode(ino));
  if (is_dir(inode)) return fail(EISDIR, "inode " + std::to_string(ino) + " is a directory");
  if (!is_reg(inode)) return fail(EINVAL, "inode " + std::to_string(ino) + " is not a file");
  RAIDFS_TRY(const int64_t blocks, replace_extents(txn, ino, offset, offset + length, {}));
  add_blocks(inode, blocks);
  RAIDFS_CHECK(apply_live_deltas(txn));
  inode.mtime_ns = inode.ctime_ns = now_ns();
  inode.size = std::max(inode.size, min_size);
  txn.put_inode(inode);
  RAIDFS_TRY(uint64_t seq, write_locked(txn, durability, Room::kFreeing));
  lock.unlock();
  return finish(seq, durability);
}

Result<std::optional<ScrubState>> FsMeta::scrub_state() const {
  RAIDFS_TRY(auto v, store_->get(Family::kSuper, kScrubKey));
  if (!v) return std::optional<ScrubState>();
  RAIDFS_TRY(ScrubState s, decode_scrub(*v));
  return std::optional<ScrubState>(s);
}

Result<void> FsMeta::put_scrub_state(const ScrubState& state, Durability durability) {
  WriteSet set;
  set.put(Family::kSuper, std::string(kScrubKey), encode_scrub(state));
  RAIDFS_TRY(const uint64_t seq, store_->write(set, durability));
  (void)seq;
  return {};
}

Result<std::optional<RebuildState>> FsMeta::rebuild_state() const {
  RAIDFS_TRY(auto v, store_->get(Family::kSuper, kRebuildKey));
  if (!v) return std::optional<RebuildState>();
  RAIDFS_TRY(RebuildState s, decode_rebuild(*v));
  return std::optional<RebuildState>(s);
}

Result<void> FsMeta::put_rebuild_state(const RebuildState& state, Durability durability) {
  WriteSet set;
  set.put(Family::kSuper, std::string(kRebuildKey), encode_rebuild(state));
  RAIDFS_TRY(const uint64_t seq, store_->write(set, durability));
  (void)seq;
  return {};
}

Result<std::vector<Stripe>> FsMeta::stripes_from(uint64_t from, size_t max) const {
  std::vector<Stripe> out;
  RAIDFS_CHECK(store_->scan(Family::kStripes, stripe_key(from), "",
                            [&](std::string_view k, std::string_view v) -> Result<bool> {
                              RAIDFS_TRY(const uint64_t id, parse_u64_key(k));
                              RAIDFS_TRY(Stripe s, decode_stripe(id, v));
                              s.id = id;
                              if (s.state == StripeState::kOpen)
                                RAIDFS_CHECK(load_parity_rows(*store_, s));
                              if (s.state != StripeState::kFree) out.push_back(std::move(s));
                              return out.size() < max;
                            }));
  return out;
}

uint64_t FsMeta::committed_stripe_count(bool sealed_only) const {
  uint64_t count = 0;
  (void)store_->scan(Family::kStripes, "", "",
                     [&](std::string_view k, std::string_view v) -> Result<bool> {
                       auto id = parse_u64_key(k);
                       if (!id) return true;
                       auto s = decode_stripe(*id, v);
                       if (s && s->state != StripeState::kFree &&
                           (!sealed_only || s->state == StripeState::kSealed))
                         ++count;
                       return true;
                     });
  return count;
}

uint64_t FsMeta::next_generation() const {
  std::unique_lock lock(mu_);
  return next_generation_;
}

}  // namespace raidfs::meta
