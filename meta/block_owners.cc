// block_owners: see block_owners.h.
#include "meta/block_owners.h"

#include <algorithm>
#include <set>
#include <unordered_map>

#include "meta/fs_meta.h"
#include "meta/keys.h"

namespace raidfs::meta {

Result<std::vector<BlockOwner>> block_owners(
    const Store& store, std::span<const std::pair<uint64_t, uint32_t>> blocks) {
  const std::set<std::pair<uint64_t, uint32_t>> wanted(blocks.begin(), blocks.end());
  std::set<uint64_t> stripes;
  for (const auto& [stripe, block] : wanted) stripes.insert(stripe);
  std::vector<BlockOwner> out;
  RAIDFS_CHECK(store.scan(
      Family::kExtents, "", "", [&](std::string_view k, std::string_view v) -> Result<bool> {
        auto key = parse_u64_pair_key(k);
        if (!key) return true;
        auto e = decode_extent(key->second, v);
        if (!e || !stripes.contains(e->stripe_id)) return true;
        const uint64_t first = e->stripe_offset / kBlockBytes;
        const uint64_t last = (uint64_t{e->stripe_offset} + e->length - 1) / kBlockBytes;
        for (auto it = wanted.lower_bound({e->stripe_id, static_cast<uint32_t>(first)});
             it != wanted.end() && it->first == e->stripe_id && it->second <= last; ++it) {
          // The part of the extent inside this block.
          const uint64_t a =
              std::max<uint64_t>(e->stripe_offset, uint64_t{it->second} * kBlockBytes);
          const uint64_t b = std::min<uint64_t>(uint64_t{e->stripe_offset} + e->length,
                                                uint64_t{it->second + 1} * kBlockBytes);
          out.push_back(BlockOwner{e->stripe_id, it->second, key->first,
                                   e->file_offset + (a - e->stripe_offset),
                                   static_cast<uint32_t>(b - a)});
        }
        return true;
      }));
  return out;
}

Result<std::vector<OwnedExtent>> stripe_extents(const Store& store,
                                                std::span<const uint64_t> stripes) {
  const std::set<uint64_t> wanted(stripes.begin(), stripes.end());
  std::vector<OwnedExtent> out;
  for (uint64_t id : wanted) {
    std::vector<std::pair<uint64_t, uint64_t>> refs;  // (inode, file offset)
    RAIDFS_CHECK(store.scan(Family::kExtentsByStripe, u64_key(id),
                            id == UINT64_MAX ? std::string() : u64_key(id + 1),
                            [&](std::string_view k, std::string_view) -> Result<bool> {
                              RAIDFS_TRY(ExtentByStripeKey key, parse_extent_by_stripe_key(k));
                              refs.emplace_back(key.ino, key.file_offset);
                              return true;
                            }));
    for (const auto& [ino, offset] : refs) {
      RAIDFS_TRY(auto v, store.get(Family::kExtents, extent_key(ino, offset)));
      // Gone or moved since the index was read (a writer got there between the two reads; the
      // index and the extents change in one batch): no longer in this stripe.
      if (!v) continue;
      RAIDFS_TRY(Extent e, decode_extent(offset, *v));
      if (e.stripe_id != id) continue;
      out.push_back(OwnedExtent{ino, e});
    }
  }
  std::sort(out.begin(), out.end(), [](const OwnedExtent& a, const OwnedExtent& b) {
    return std::pair(a.ino, a.extent.file_offset) < std::pair(b.ino, b.extent.file_offset);
  });
  return out;
}

Result<std::map<uint64_t, std::string>> inode_paths(const Store& store,
                                                    std::span<const uint64_t> inos) {
  const std::set<uint64_t> wanted(inos.begin(), inos.end());
  // child → (parent, name): the wanted inodes' names, and every directory's.
  std::unordered_map<uint64_t, std::pair<uint64_t, std::string>> name_of;
  RAIDFS_CHECK(store.scan(Family::kDirents, "", "",
                          [&](std::string_view k, std::string_view v) -> Result<bool> {
                            auto key = parse_u64_name_key(k);
                            auto d = decode_dirent(v);
                            if (!key || !d) return true;
                            if (wanted.contains(d->child) || d->type == FileType::kDirectory)
                              name_of.try_emplace(d->child, key->first, std::string(key->second));
                            return true;
                          }));
  std::map<uint64_t, std::string> out;
  for (uint64_t ino : wanted) {
    std::string path;
    uint64_t at = ino;
    size_t depth = 0;
    while (at != kRootIno) {
      auto it = name_of.find(at);
      if (it == name_of.end() || ++depth > 4096) {  // no name, or a cycle
        path.clear();
        break;
      }
      path = "/" + it->second.second + path;
      at = it->second.first;
    }
    if (ino == kRootIno) path = "/";
    out[ino] = path.empty() ? "<inode " + std::to_string(ino) + ">" : path;
  }
  return out;
}

}  // namespace raidfs::meta
