// fsck: the offline check and repair of a whole raidfs array — the library behind raidfs-fsck.
//
// run_fsck() opens the array named by a SPEC (fs/array_spec.h: the metadata directory or the
// member list) — refusing it with EBUSY while a daemon has it mounted — and checks, in passes:
//   1. superblocks: both copies on every active member equal the array's newest superblock, and
//      the metadata database belongs to this array and this geometry;
//   2. metadata:    meta::check() — namespace, nlink, orphans, cookies, extents, live counts,
//                   free map, counters (meta/checker.h);
//   3. stripes:     every filled block of every open and sealed stripe against its versioned
//                   checksum (live or dead: parity covers both); every sealed stripe's parity on
//                   the members and every open stripe's parity rows in the metadata against the
//                   data (raid/array_scrub.h); the stripe records' own sanity.
// A block that cannot be rebuilt is reported with the files and byte ranges it holds.
//
// Modes, as e2fsck's: kCheck (-n) changes nothing in the filesystem (opening RocksDB may still
// tidy its own files, and Array::open records a member it finds missing, as a mount would);
// kRepair (-y) repairs everything it can; kPreen (-p) repairs only what loses nothing and leaves
// the rest (meta/repair.h says which is which; every data repair qualifies).
// Repairs: superblock copies rewritten; metadata fixed by meta::repair() (lost+found for
// unreachable inodes); rebuilt blocks written back; parity rewritten from verified data; open
// stripes' parity rows recomputed. Never repaired: blocks with more damage in their row than
// parity covers, and missing or failed members (that is `raidfs replace`).
//
// Exit codes (FsckSummary::exit_code), e2fsck's bits: 0 clean, 1 problems fixed, 4 problems left;
// the caller adds 8 (operational error: run_fsck returned an Error) and 16 (usage).
//
// Not thread-safe; one run at a time per array (the members' locks enforce it).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "base/result.h"

namespace raidfs::fs {

enum class FsckMode { kCheck, kPreen, kRepair };

struct FsckOptions {
  FsckMode mode = FsckMode::kCheck;
  bool verbose = false;  // also per-pass statistics and every repaired block
  // Output, one line at a time without the newline: problems, fixes, warnings, pass headers.
  std::function<void(const std::string& line)> output;
  // Progress of the long pass (stripes): called often, with done ≤ total.
  std::function<void(uint64_t done, uint64_t total)> progress;
};

struct FsckSummary {
  uint64_t problems_found = 0;
  uint64_t problems_fixed = 0;  // fixes made (one problem may take several, and vice versa)
  uint64_t problems_left = 0;   // still wrong after the run (in kCheck: everything found)
  uint32_t members_unavailable = 0;
  uint64_t stripes_sealed = 0, stripes_open = 0, stripes_free = 0;
  uint64_t blocks_verified = 0;      // data blocks read and matching their checksum
  uint64_t blocks_rebuilt = 0;       // failed their checksum (or unreadable), rebuilt
  uint64_t blocks_lost = 0;          // could not be rebuilt
  uint64_t parity_rows_checked = 0;  // (4 KiB row, parity chunk) pairs compared
  uint64_t parity_rows_bad = 0;
  uint64_t bytes_read = 0;  // member bytes read by the stripe pass

  int exit_code() const { return (problems_fixed > 0 ? 1 : 0) | (problems_left > 0 ? 4 : 0); }
};

// Runs the passes above on the array named by `spec`. Errors (operational; exit code 8): EBUSY
// "SPEC is in use (mounted?): unmount it first"; the errors of member_paths, Array::open and
// Store::open; EINVAL when the metadata belongs to another array or geometry; EIO when reading
// or writing fails beyond what parity covers.
Result<FsckSummary> run_fsck(const std::string& spec, const FsckOptions& options);

}  // namespace raidfs::fs
