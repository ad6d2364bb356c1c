// repair: brings a metadata store back in line with the rules of fs_meta.h — what check() reports
// — for raidfs-fsck -y and -p.
//
// repair() works in passes; each pass reads the store as the passes before it left it and writes
// its fixes in one atomic batch, so a crash in the middle leaves a store that a second run picks
// up. The passes, in order:
//   1. records:    a key or value that does not decode is removed (its content is lost either way)
//   2. root:       a missing root directory is made again
//   3. dirents:    entries in a missing or non-directory parent, or naming a missing inode, are
//                  removed; a directory named twice keeps one name; a wrong type is corrected;
//                  cookies are made unique and in range; the cookie index is rebuilt from the
//                  entries
//   4. links:      a directory's parent is set to the directory naming it; a directory cycle cut
//                  off from the root is broken; inodes with no name that are not orphans, and
//                  the directories of a broken cycle, are linked into /lost+found as "#INO";
//                  orphan entries of missing or named inodes are removed
//   5. nlink:      recomputed (directories 2 + subdirectories, others the names they have)
//   6. extents:    extents of missing or non-regular inodes, or on free, unknown or too-short
//                  stripes, are removed (or cut to the stripe's filled bytes); overlaps are cut
//                  from the later extent; a file shorter than its extents is grown to cover them
//   7. stripes:    live counts and files' block counts recomputed from the extents; a sealed
//                  stripe with no live block is freed; records beyond the stripe count removed;
//                  parity rows of a stripe that is not open removed; the extents_by_stripe
//                  index rebuilt from the extents
//   8. the rest:   xattrs of missing inodes removed; next_inode and generation_limit raised past
//                  every inode number and generation in use
//
// Every fix is one RepairAction. Under RepairPolicy::kSafe (fsck -p) only fixes that lose nothing
// a user could see are made — derived data (nlink, live counts, the two indexes, parents, free
// stripes, counters), lost+found links, orphan entries, xattrs of missing inodes; the fixes that
// remove names, extents or records, grow files or rebuild the root are listed with
// applied = false and left for kAll (fsck -y).
//
// Run it on a store nobody else uses (offline). Afterwards check() finds nothing, unless a fix was
// left out by the policy. Errors: EIO when the store cannot be read or written.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "meta/records.h"
#include "meta/store.h"

namespace raidfs::meta {

enum class RepairPolicy { kSafe, kAll };

struct RepairAction {
  std::string text;      // what was wrong and what the fix is, one line
  bool applied = false;  // false: left alone (needs RepairPolicy::kAll)
};

inline constexpr std::string_view kLostFoundName = "lost+found";

Result<std::vector<RepairAction>> repair(Store& store, RepairPolicy policy);

// Stores a stripe record as given, its parity rows exactly those it carries (fsck's fix of an
// open stripe's parity rows, which only the data on the members can prove). EIO on a write
// failure.
Result<void> put_stripe_record(Store& store, const Stripe& stripe);

}  // namespace raidfs::meta
