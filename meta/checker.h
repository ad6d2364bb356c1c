// checker: the consistency check of a metadata store, for raidfs-fsck and the crash tests.
//
// check() reads every record of every family (one scan each) and reports what breaks the rules of
// fs_meta.h: corrupt records, dangling or mis-indexed directory entries, wrong nlink, orphan list
// mismatches, overlapping extents, extents missing from the extents_by_stripe index (or entries
// of it in a free stripe), extents pointing at free or unknown stripes or past a stripe's filled bytes or the
// file's size, stripe live counts that differ from the blocks the extents
// reference, sealed stripes with no live block, xattrs of missing inodes, counters behind use
// (next_inode, generation_limit), two dirents of one directory sharing a cookie, and directories
// whose parent chain does not reach the root (a detached cycle).
// It changes nothing. It holds the inodes, dirent counts and per-stripe references in memory
// (about 100 bytes per inode), which bounds it to metadata of tens of millions of inodes.
// Run it on a store no one is writing (a scan per family is a snapshot, the families are not one).
//
// Returns the findings (empty = consistent); an Error only when reading fails (EIO).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "meta/store.h"

namespace raidfs::meta {

struct Finding {
  enum class Kind {
    kCorruptRecord,       // a key or value does not decode
    kMissingRoot,         // no root directory inode
    kDanglingDirent,      // a dirent names an inode that does not exist
    kDirentInNonDir,      // a dirent's parent is not a directory
    kCookieIndex,         // dirent ↔ (parent, cookie) index disagree, cookie ≥ next_cookie, or
                          // two dirents of one directory share a cookie
    kWrongNlink,          // nlink differs from the count the rules give
    kDirLinks,            // a directory named other than exactly once, a wrong parent link, or
                          // not reachable from the root through its parent links
    kUnreferencedInode,   // nlink 0 / no name, and not an orphan
    kOrphanList,          // an orphan entry for a missing or still-linked inode
    kExtentOverlap,       // two extents of one file overlap
    kExtentNoInode,       // an extent of a missing or non-regular inode
    kExtentBadStripe,     // an extent on a free or unknown stripe, or past its filled bytes
    kExtentIndex,         // extents ↔ extents_by_stripe index disagree
    kExtentBeyondEof,     // an extent ends after the file size
    kLiveCount,           // a stripe's live_blocks differs from its referenced blocks
    kBlockCount,          // a regular file's block count differs from its extents' blocks
    kLeakedStripe,        // a sealed stripe with no live block (should be free)
    kXattrNoInode,        // an xattr of a missing inode
    kCounter,             // next_inode not above every inode number, or a stripe generation not
                          // below generation_limit
    kParityRow,           // a parity row of a stripe that is not open, or not parity_count
                          // blocks long
  };
  Kind kind;
  std::string detail;
};

std::string_view finding_kind_name(Finding::Kind kind);
Result<std::vector<Finding>> check(const Store& store);

}  // namespace raidfs::meta
