// Array scrub: verifying a whole stripe (data checksums, parity) and the superblocks of the
// members, and repairing what can be proven right — for raidfs-fsck and, later, `raidfs scrub`.
//
//   array.scrub_stripe(channel, request, chunks)   one stripe: read, verify, compare, repair
//   array.check_superblocks(repair)                both copies on every present member
//
// Scrubbing a stripe:
//   1. Its data (all k chunks) is read through Array::read: every filled block is checked against
//      its versioned checksum; a block that is unreadable or fails is rebuilt from parity and
//      checked again (a bad parity chunk is left out in turn). Blocks at or past filled_blocks
//      are zeros, whatever the members hold there (rule 5 of docs/commit-protocol.md).
//   2. The parity of that data is computed, and compared, per 4 KiB row, with the parity the
//      stripe is read through: its m parity chunks on the members (a sealed stripe,
//      ref.parity == nullptr) or ref.parity (an open stripe, whose parity lives in the metadata).
//      Rows holding a block that could not be rebuilt are not compared (their parity is unknown),
//      and neither are parity chunks on unavailable members.
//   3. With `repair`: rebuilt data blocks are written back (their verified content: what parity
//      covers does not change), and wrong parity rows on the members are rewritten from the
//      verified data; then the members are flushed. Wrong parity of an open stripe is the
//      metadata's to fix: the computed parity is handed back for that.
//
// What the array cannot know: which blocks are live, or which file they belong to. A scrub reads
// and verifies every filled block, live or dead — parity covers them all, so a dead block that is
// wrong still spoils the rebuild of its live neighbours.
//
// Threads: as Array::read — any thread, with its own IoChannel.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "raid/array.h"

namespace raidfs {

struct ScrubRequest {
  // The stripe as the metadata knows it. block_crcs must hold all k * C / 4 KiB entries (those
  // past filled_blocks are ignored); filled_blocks ≤ that count. parity: see step 2 above.
  StripeRef ref;
  bool repair = false;
};

struct ParityMismatch {
  uint32_t parity_index = 0;  // 0 = P, 1 = Q, 2 = R
  uint32_t row = 0;           // 4 KiB row of the chunks
  bool operator==(const ParityMismatch&) const = default;
};

struct ScrubReport {
  std::vector<uint32_t> rebuilt_blocks;  // failed their checksum (or unreadable); rebuilt, verified
  std::vector<uint32_t> lost_blocks;     // could not be rebuilt (more damage than parity covers)
  std::vector<ParityMismatch> parity_mismatches;  // parity differing from the verified data
  uint32_t degraded_blocks = 0;        // rebuilt because their member is unavailable (no fault)
  uint32_t parity_rows_checked = 0;    // (row, parity index) pairs compared
  uint32_t healed_blocks = 0;          // rebuilt blocks written back (repair)
  uint32_t parity_rows_rewritten = 0;  // member parity rows rewritten (repair, sealed stripes)
};

// One finding of check_superblocks.
struct SuperblockIssue {
  uint32_t member = 0;
  std::string what;       // one line, names the member's path
  bool repaired = false;  // both copies rewritten from the array's newest superblock
};

}  // namespace raidfs
