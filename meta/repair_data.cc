// repair: the data passes — 6 extents, 7 stripe records (live counts, leaked stripes). See
// repair.h.
#include <algorithm>
#include <set>
#include <tuple>
#include <unordered_map>

#include "meta/keys.h"
#include "meta/repair_internal.h"

namespace raidfs::meta::repair_detail {
namespace {

struct ExtentRecord {
  uint64_t ino = 0;
  Extent extent;
};

Result<std::map<uint64_t, Stripe>> load_stripes(const Store& store) {
  std::map<uint64_t, Stripe> stripes;
  RAIDFS_CHECK(store.scan(Family::kStripes, "", "",
                          [&](std::string_view k, std::string_view v) -> Result<bool> {
                            auto id = parse_u64_key(k);
                            if (!id) return true;
                            if (auto s = decode_stripe(*id, v)) stripes.emplace(*id, std::move(*s));
                            return true;
                          }));
  return stripes;
}

std::string extent_name(uint64_t ino, const Extent& e) {
  return "inode " + std::to_string(ino) + " extent at " + std::to_string(e.file_offset) + " (" +
         std::to_string(e.length) + " bytes in stripe " + std::to_string(e.stripe_id) + ")";
}

// Fixes one file's extents (all of them, in file order) and returns the ones it keeps.
std::vector<Extent> clean_file_extents(Repairer& r, uint64_t ino, const std::vector<Extent>& old,
                                       const std::map<uint64_t, Inode>& inodes,
                                       const std::map<uint64_t, Stripe>& stripes,
                                       uint64_t stripe_count) {
  std::vector<Extent> kept;
  auto inode = inodes.find(ino);
  const bool regular = inode != inodes.end() && is_reg(inode->second);
  uint64_t end = 0;
  for (const Extent& original : old) {
    Extent e = original;
    const std::string what = extent_name(ino, e);
    if (!regular) {
      if (r.propose(false, what + ": the inode is missing or not a regular file: removed"))
        continue;
      kept.push_back(e);
      continue;
    }
    auto s = stripes.find(e.stripe_id);
    if (e.stripe_id >= stripe_count || s == stripes.end() ||
        s->second.state == StripeState::kFree) {
      if (r.propose(false,
                    what + ": the stripe is free or unknown: removed (the range reads as a hole)"))
        continue;
    } else if (uint64_t{e.stripe_offset} + e.length > s->second.filled_bytes) {
      const uint32_t filled = s->second.filled_bytes;
      const std::string fix = e.stripe_offset >= filled
                                  ? std::string("removed")
                                  : "cut to " + std::to_string(filled - e.stripe_offset) + " bytes";
      if (r.propose(false, what + ": past the stripe's " + std::to_string(filled) +
                               " filled bytes: " + fix)) {
        if (e.stripe_offset >= filled) continue;
        e.length = filled - e.stripe_offset;
      }
    }
    if (e.file_offset < end) {  // overlaps the extent before: the earlier one wins
      const uint64_t cut = std::min<uint64_t>(end - e.file_offset, e.length);
      if (r.propose(false, what + ": overlaps the extent before it by " + std::to_string(cut) +
                               " bytes: " + (cut == e.length ? "removed" : "cut"))) {
        if (cut == e.length) continue;
        e.file_offset += cut;
        e.stripe_offset += static_cast<uint32_t>(cut);
        e.length -= static_cast<uint32_t>(cut);
      }
    }
    end = std::max(end, e.file_end());
    kept.push_back(e);
  }
  return kept;
}

}  // namespace

Result<void> repair_extents(Repairer& r) {
  Txn txn(r.store());
  RAIDFS_TRY(auto inodes, load_inodes(r.store()));
  RAIDFS_TRY(auto stripes, load_stripes(r.store()));
  const uint64_t stripe_count = r.store().super().stripe_count;
  // One file at a time: extents of one inode are adjacent in key order.
  uint64_t current = 0;
  std::vector<Extent> file;
  auto finish_file = [&]() -> Result<void> {
    if (file.empty()) return {};
    std::vector<Extent> kept = clean_file_extents(r, current, file, inodes, stripes, stripe_count);
    if (kept != file) {
      for (const Extent& e : file) txn.del_extent(current, e);
      for (const Extent& e : kept) txn.put_extent(current, e, nullptr);
    }
    auto inode = inodes.find(current);
    if (!kept.empty() && inode != inodes.end() && is_reg(inode->second)) {
      uint64_t end = 0;
      for (const Extent& e : kept) end = std::max(end, e.file_end());
      if (end > inode->second.size &&
          r.propose(false, "inode " + std::to_string(current) + ": size " +
                               std::to_string(inode->second.size) + ", its extents reach " +
                               std::to_string(end) + ": size set to " + std::to_string(end))) {
        inode->second.size = end;
        txn.put_inode(inode->second);
      }
    }
    file.clear();
    return {};
  };
  RAIDFS_CHECK(r.store().scan(Family::kExtents, "", "",
                              [&](std::string_view k, std::string_view v) -> Result<bool> {
                                auto key = parse_u64_pair_key(k);
                                if (!key) return true;
                                auto e = decode_extent(key->second, v);
                                if (!e) return true;
                                if (key->first != current) {
                                  RAIDFS_CHECK(finish_file());
                                  current = key->first;
                                }
                                file.push_back(*e);
                                return true;
                              }));
  RAIDFS_CHECK(finish_file());
  return r.commit(txn);
}

Result<void> repair_stripes(Repairer& r) {
  Txn txn(r.store());
  std::unordered_map<uint64_t, uint64_t> refs, file_blocks;
  RAIDFS_CHECK(r.store().scan(Family::kExtents, "", "",
                              [&](std::string_view k, std::string_view v) -> Result<bool> {
                                auto key = parse_u64_pair_key(k);
                                if (!key) return true;
                                if (auto e = decode_extent(key->second, v)) {
                                  const uint32_t n = blocks_touched(e->stripe_offset, e->length);
                                  refs[e->stripe_id] += n;
                                  file_blocks[key->first] += n;
                                }
                                return true;
                              }));
  RAIDFS_TRY(auto inodes, load_inodes(r.store()));
  for (auto& [ino, inode] : inodes) {
    if (!is_reg(inode) || inode.blocks == kBlocksUnknown) continue;
    const uint64_t referenced = file_blocks.contains(ino) ? file_blocks[ino] : 0;
    if (inode.blocks != referenced &&
        r.propose(true, "inode " + std::to_string(ino) + ": " + std::to_string(inode.blocks) +
                            " blocks recorded, its extents reference " +
                            std::to_string(referenced) + ": fixed")) {
      inode.blocks = referenced;
      txn.put_inode(inode);
    }
  }
  RAIDFS_TRY(auto stripes, load_stripes(r.store()));
  const uint64_t stripe_count = r.store().super().stripe_count;
  for (auto& [id, s] : stripes) {
    const std::string what = "stripe " + std::to_string(id);
    if (id >= stripe_count) {
      if (r.propose(false, what + " is beyond the array's " + std::to_string(stripe_count) +
                               " stripes: record removed"))
        txn.del(Family::kStripes, stripe_key(id));
      continue;
    }
    if (s.state == StripeState::kFree) continue;
    Stripe fixed = s;
    const uint64_t referenced = refs.contains(id) ? refs[id] : 0;
    if (s.live_blocks != referenced &&
        r.propose(true, what + ": live count " + std::to_string(s.live_blocks) +
                            ", extents reference " + std::to_string(referenced) + " blocks: fixed"))
      fixed.live_blocks = static_cast<uint32_t>(std::min<uint64_t>(referenced, UINT32_MAX));
    if (s.state == StripeState::kSealed && referenced == 0 &&
        r.propose(true, what + " is sealed with no live block: freed")) {
      fixed.state = StripeState::kFree;  // as apply_live_deltas frees one
      fixed.live_blocks = 0;
      fixed.filled_bytes = 0;
      fixed.block_crcs.clear();
      fixed.parity_count = 0;
      fixed.parity_rows.clear();
      txn.del_parity_rows(id);
    }
    if (!(fixed == s)) txn.put_stripe(fixed);
  }
  // Parity rows of a stripe that is not open: unused (a sealed stripe's parity is on the members).
  std::set<uint64_t> stale_rows;
  RAIDFS_CHECK(r.store().scan(Family::kParityRows, "", "",
                              [&](std::string_view k, std::string_view) -> Result<bool> {
                                auto key = parse_u64_pair_key(k);
                                if (!key) return true;  // pass 1 removes it
                                auto s = stripes.find(key->first);
                                if (s == stripes.end() || s->second.state != StripeState::kOpen)
                                  stale_rows.insert(key->first);
                                return true;
                              }));
  for (uint64_t id : stale_rows)
    if (r.propose(true, "stripe " + std::to_string(id) +
                            " is not open but keeps parity rows in the metadata: dropped"))
      txn.del_parity_rows(id);
  return r.commit(txn);
}

Result<void> repair_extents_by_stripe(Repairer& r) {
  // A store older than format 3 gets the whole index at its upgrade (FsMeta::open).
  if (r.store().super().store_format < 3) return {};
  Txn txn(r.store());
  std::set<std::tuple<uint64_t, uint64_t, uint64_t>> want;  // (stripe, inode, offset)
  RAIDFS_CHECK(r.store().scan(Family::kExtents, "", "",
                              [&](std::string_view k, std::string_view v) -> Result<bool> {
                                auto key = parse_u64_pair_key(k);
                                if (!key) return true;
                                if (auto e = decode_extent(key->second, v))
                                  want.emplace(e->stripe_id, key->first, key->second);
                                return true;
                              }));
  // Derived from the extents: made to match them exactly, nothing lost.
  RAIDFS_CHECK(r.store().scan(
      Family::kExtentsByStripe, "", "", [&](std::string_view k, std::string_view) -> Result<bool> {
        auto key = parse_extent_by_stripe_key(k);
        if (!key) return true;  // pass 1 removed what does not decode
        if (want.erase({key->stripe_id, key->ino, key->file_offset}) > 0) return true;
        if (r.propose(true, "extents_by_stripe entry " + std::to_string(key->stripe_id) + ":" +
                                std::to_string(key->ino) + "@" + std::to_string(key->file_offset) +
                                " has no extent: removed"))
          txn.del(Family::kExtentsByStripe, std::string(k));
        return true;
      }));
  for (const auto& [stripe, ino, offset] : want)
    if (r.propose(true, "extent " + std::to_string(ino) + "@" + std::to_string(offset) +
                            " missing from the extents_by_stripe index of stripe " +
                            std::to_string(stripe) + ": added"))
      txn.put(Family::kExtentsByStripe, extent_by_stripe_key(stripe, ino, offset), {});
  return r.commit(txn);
}

}  // namespace raidfs::meta::repair_detail
