// block_owners: from stripe blocks back to the files that hold them, and from inodes to paths —
// so that raidfs-fsck can say which file and which bytes a block it cannot repair belongs to, and
// the cleaner which extents it must move out of a stripe.
//
// block_owners and inode_paths are one scan of a family (extents; dirents) and hold only what
// they are asked about plus, for paths, the names of the directories; they change nothing. Thread-safe as Store reads are.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"
#include "meta/records.h"
#include "meta/store.h"

namespace raidfs::meta {

struct BlockOwner {
  uint64_t stripe_id = 0;
  uint32_t block = 0;  // 4 KiB block index in the stripe's data
  uint64_t ino = 0;
  uint64_t file_offset = 0;  // the file bytes [file_offset, file_offset + length) the block holds
  uint32_t length = 0;
};

// Every (file, byte range) held by the given (stripe, block) pairs. A block no extent references
// (dead data) has no owner. EIO when the store cannot be read.
Result<std::vector<BlockOwner>> block_owners(const Store& store,
                                             std::span<const std::pair<uint64_t, uint32_t>> blocks);

// One file's extent, for stripe_extents.
struct OwnedExtent {
  uint64_t ino = 0;
  Extent extent;
};

// Every extent pointing into one of `stripes`, in (inode, file offset) order: from the
// extents_by_stripe index, a short scan and a lookup per extent (store format 3 and later), so
// not one snapshot: under concurrent writers, an extent changed meanwhile may be left out. EIO
// when the store cannot be read.
Result<std::vector<OwnedExtent>> stripe_extents(const Store& store,
                                                std::span<const uint64_t> stripes);

// A path from the root for each inode ("/a/b"; one of the names of a hard-linked file), or
// "<inode N>" when no chain of names leads to it. EIO when the store cannot be read.
Result<std::map<uint64_t, std::string>> inode_paths(const Store& store,
                                                    std::span<const uint64_t> inos);

}  // namespace raidfs::meta
