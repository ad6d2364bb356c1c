// repair: the driver, the shared loaders, and the passes that touch every family (1: records that
// do not decode; 8: xattrs and counters). See repair.h.
#include "meta/repair.h"

#include <algorithm>

#include "meta/keys.h"
#include "meta/parity_rows.h"
#include "meta/repair_internal.h"

namespace raidfs::meta {
namespace repair_detail {

Result<std::map<uint64_t, Inode>> load_inodes(const Store& store) {
  std::map<uint64_t, Inode> inodes;
  RAIDFS_CHECK(store.scan(Family::kInodes, "", "",
                          [&](std::string_view k, std::string_view v) -> Result<bool> {
                            auto ino = parse_u64_key(k);
                            if (!ino) return true;
                            if (auto inode = decode_inode(*ino, v)) inodes.emplace(*ino, *inode);
                            return true;
                          }));
  return inodes;
}

Result<std::vector<DirentRecord>> load_dirents(const Store& store) {
  std::vector<DirentRecord> out;
  RAIDFS_CHECK(store.scan(Family::kDirents, "", "",
                          [&](std::string_view k, std::string_view v) -> Result<bool> {
                            auto key = parse_u64_name_key(k);
                            auto d = decode_dirent(v);
                            if (key && d) out.push_back({key->first, std::string(key->second), *d});
                            return true;
                          }));
  return out;
}

namespace {

// Whether a record of family `f` decodes: its key and its value.
Result<void> decodes(Family f, std::string_view k, std::string_view v) {
  switch (f) {
    case Family::kSuper:
      return {};  // the super record was decoded by Store::open; counters: pass 8
    case Family::kInodes: {
      RAIDFS_TRY(uint64_t ino, parse_u64_key(k));
      RAIDFS_CHECK(decode_inode(ino, v));
      return {};
    }
    case Family::kDirents: {
      RAIDFS_CHECK(parse_u64_name_key(k));
      RAIDFS_CHECK(decode_dirent(v));
      return {};
    }
    case Family::kCookies: {
      RAIDFS_CHECK(parse_u64_pair_key(k));
      RAIDFS_CHECK(decode_cookie(v));
      return {};
    }
    case Family::kExtents: {
      RAIDFS_TRY(auto key, parse_u64_pair_key(k));
      RAIDFS_CHECK(decode_extent(key.second, v));
      return {};
    }
    case Family::kStripes: {
      RAIDFS_TRY(uint64_t id, parse_u64_key(k));
      RAIDFS_CHECK(decode_stripe(id, v));
      return {};
    }
    case Family::kXattrs: {
      RAIDFS_CHECK(parse_u64_name_key(k));
      RAIDFS_CHECK(decode_xattr(v));
      return {};
    }
    case Family::kOrphans: {
      RAIDFS_CHECK(parse_u64_key(k));
      RAIDFS_CHECK(decode_orphan(v));
      return {};
    }
    case Family::kExtentsByStripe: {
      RAIDFS_CHECK(parse_extent_by_stripe_key(k));
      if (!v.empty()) return corrupt("extents_by_stripe value of " + std::to_string(v.size()) + " bytes, want 0");
      return {};
    }
    case Family::kParityRows: {
      RAIDFS_TRY(auto key, parse_u64_pair_key(k));
      if (key.second > UINT32_MAX) return corrupt("parity row index too large");
      RAIDFS_CHECK(decode_parity_row(static_cast<uint32_t>(key.second), v));
      return {};
    }
  }
  return {};
}

std::string hex_key(std::string_view k) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < k.size() && i < 24; ++i) {
    out += kHex[static_cast<uint8_t>(k[i]) >> 4];
    out += kHex[static_cast<uint8_t>(k[i]) & 15];
  }
  return out + (k.size() > 24 ? "..." : "");
}

// Reads a counter; nullopt when it is missing or does not decode.
Result<std::optional<uint64_t>> read_counter(const Store& store, std::string_view key) {
  RAIDFS_TRY(auto v, store.get(Family::kSuper, key));
  if (!v) return std::optional<uint64_t>();
  auto value = decode_counter(*v);
  return value ? std::optional<uint64_t>(*value) : std::optional<uint64_t>();
}

}  // namespace

Result<void> remove_corrupt_records(Repairer& r) {
  Txn txn(r.store());
  for (Family f : {Family::kInodes, Family::kDirents, Family::kCookies, Family::kExtents,
                   Family::kStripes, Family::kXattrs, Family::kOrphans, Family::kExtentsByStripe,
                   Family::kParityRows}) {
    RAIDFS_CHECK(
        r.store().scan(f, "", "", [&](std::string_view k, std::string_view v) -> Result<bool> {
          auto ok = decodes(f, k, v);
          if (ok) return true;
          if (ok.error().code != EIO) return std::unexpected(ok.error());
          // The indexes are derived (passes 3 and 7 rebuild them): nothing is lost.
          const bool safe = f == Family::kCookies || f == Family::kExtentsByStripe;
          if (r.propose(safe, std::string(family_name(f)) + " record " + hex_key(k) + ": " +
                                  ok.error().message + ": removed"))
            txn.del(f, std::string(k));
          return true;
        }));
  }
  return r.commit(txn);
}

Result<void> repair_rest(Repairer& r) {
  Txn txn(r.store());
  RAIDFS_TRY(auto inodes, load_inodes(r.store()));
  RAIDFS_CHECK(r.store().scan(
      Family::kXattrs, "", "", [&](std::string_view k, std::string_view) -> Result<bool> {
        auto key = parse_u64_name_key(k);
        if (!key || inodes.contains(key->first)) return true;
        if (r.propose(true, "xattr \"" + std::string(key->second) + "\" of missing inode " +
                                std::to_string(key->first) + ": removed"))
          txn.del(Family::kXattrs, std::string(k));
        return true;
      }));

  const uint64_t max_ino = inodes.empty() ? kRootIno : inodes.rbegin()->first;
  RAIDFS_TRY(auto next_inode, read_counter(r.store(), kNextInodeKey));
  if (!next_inode || *next_inode <= max_ino) {
    const uint64_t want = std::max(max_ino, kRootIno) + 1;
    if (r.propose(
            true,
            "next_inode counter " +
                (next_inode ? std::to_string(*next_inode) : std::string("missing or corrupt")) +
                ", inode " + std::to_string(max_ino) + " in use: set to " + std::to_string(want)))
      txn.put(Family::kSuper, std::string(kNextInodeKey), encode_counter(want));
  }

  uint64_t generation_end = 1;  // generations below it are in use (or were)
  RAIDFS_CHECK(r.store().scan(Family::kStripes, "", "",
                              [&](std::string_view k, std::string_view v) -> Result<bool> {
                                auto id = parse_u64_key(k);
                                if (!id) return true;
                                if (auto s = decode_stripe(*id, v))
                                  generation_end = std::max(generation_end, s->generation + 1);
                                return true;
                              }));
  RAIDFS_TRY(auto limit, read_counter(r.store(), kGenerationLimitKey));
  if (!limit || *limit < generation_end) {
    if (r.propose(true, "generation_limit counter " +
                            (limit ? std::to_string(*limit) : std::string("missing or corrupt")) +
                            ", generation " + std::to_string(generation_end - 1) +
                            " in use: set to " + std::to_string(generation_end)))
      txn.put(Family::kSuper, std::string(kGenerationLimitKey), encode_counter(generation_end));
  }
  return r.commit(txn);
}

}  // namespace repair_detail

Result<std::vector<RepairAction>> repair(Store& store, RepairPolicy policy) {
  using namespace repair_detail;
  Repairer r(store, policy);
  RAIDFS_CHECK(remove_corrupt_records(r));
  RAIDFS_CHECK(repair_root(r));
  RAIDFS_CHECK(repair_dirents(r));
  RAIDFS_CHECK(repair_links(r));
  RAIDFS_CHECK(repair_nlink(r));
  RAIDFS_CHECK(repair_extents(r));
  RAIDFS_CHECK(repair_stripes(r));
  RAIDFS_CHECK(repair_extents_by_stripe(r));
  RAIDFS_CHECK(repair_rest(r));
  RAIDFS_CHECK(store.sync(store.latest_sequence()));
  return r.take_actions();
}

Result<void> put_stripe_record(Store& store, const Stripe& stripe) {
  WriteSet set;
  set.put(Family::kStripes, stripe_key(stripe.id), encode_stripe(stripe));
  replace_parity_rows(set, stripe);
  RAIDFS_TRY(uint64_t seq, store.write(set, Durability::kNone));
  return store.sync(seq);
}

}  // namespace raidfs::meta
