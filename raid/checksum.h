// Versioned block checksums: crc32c of a 4 KiB data block, seeded with where and when it was
// written, so a block that is intact but stale or misplaced fails verification.
//
// The seed is the crc32c of a 20-byte little-endian tag (stripe id u64, generation u64, block
// index in the stripe's data u32). A block left over from an earlier generation of the same stripe
// (a lost write), a block written for another stripe (a misdirected write) or for another position
// in the same stripe all produce a different checksum than the one the metadata holds.
// The block index is an addition to DESIGN.md's (stripe, generation) seed: it also catches a
// write that landed on the right stripe but the wrong member or row.
//
// Standard CRC-32C (ISA-L's crc32_iscsi with ~ in and out), so any CRC-32C tool can check a
// golden value. Pure functions, thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace raidfs {

struct BlockVersion {
  uint64_t stripe_id;
  uint64_t generation;
  uint32_t block_index;  // 4 KiB block number within the stripe's data, 0 .. k * C / 4 KiB - 1
};

// Standard CRC-32C of `bytes` continuing from `crc` (start with 0).
uint32_t crc32c(std::span<const uint8_t> bytes, uint32_t crc = 0);

// The versioned checksum of one block of data.
uint32_t block_checksum(const BlockVersion& version, std::span<const uint8_t> block);

inline bool block_matches(const BlockVersion& version, std::span<const uint8_t> block,
                          uint32_t expected) {
  return block_checksum(version, block) == expected;
}

}  // namespace raidfs
