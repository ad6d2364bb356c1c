// The format of a block in the metadata region (region_fs.h): each 4 KiB block says whose it
// is, so that a torn, stale, misplaced or lost copy is recognised and another copy read instead.
//
//   offset  bytes  field (little-endian)
//        0      4  crc32c (standard) of bytes [4, 4096), seeded with the array's salt
//        4      4  magic "RFSB"
//        8      8  owner: the file's id (0: a journal block)
//       16      8  allocation: the sequence number of the extent the block was written into
//                  (journal: the journal's epoch)
//       24      4  index: the block's number within its file (journal: within the epoch)
//       28      4  used: payload bytes that hold data; bit 31 on a journal block ends a batch
//       32   4064  payload
//
// A file's data is append-only, so two good copies of one block differ only in how much of it
// is used: a copy is good for a read that needs `n` bytes of it when its checksum holds, its
// owner, allocation and index are the ones expected there, and it uses at least `n` bytes. The
// allocation number changes every time blocks are handed out, so a block left by an earlier
// owner of the same place — even the same file before a truncation — never passes as current.
// The checksum's seed (the salt) comes from the array's UUID: blocks left on a member by another
// array, even one made by the same mkfs run's predecessor, never pass either.
#pragma once

#include <isa-l/crc.h>

#include <cstdint>
#include <cstring>

namespace raidfs::meta::region {

inline constexpr uint32_t kBlockBytes = 4096;
inline constexpr uint32_t kHeaderBytes = 32;
inline constexpr uint32_t kPayloadBytes = kBlockBytes - kHeaderBytes;
inline constexpr uint32_t kMagic = 0x42534652;  // "RFSB"
inline constexpr uint32_t kBatchEnd = 1u << 31;
inline constexpr uint64_t kJournalOwner = 0;

struct BlockHeader {
  uint64_t owner = 0;
  uint64_t allocation = 0;
  uint32_t index = 0;
  uint32_t used = 0;  // with kBatchEnd for a journal block that ends a batch
};

inline uint32_t load32(const uint8_t* p) { uint32_t v; std::memcpy(&v, p, 4); return v; }
inline uint64_t load64(const uint8_t* p) { uint64_t v; std::memcpy(&v, p, 8); return v; }
inline void store32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
inline void store64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }

inline uint32_t block_crc(const uint8_t* block, uint32_t salt) {
  return ~crc32_iscsi(const_cast<uint8_t*>(block) + 4, kBlockBytes - 4, ~salt);
}

// Writes the header (and the checksum over header and payload) into `block`, whose payload is
// filled already; the unused tail of the payload should be zeros.
inline void seal_block(uint8_t* block, const BlockHeader& h, uint32_t salt) {
  store32(block + 4, kMagic);
  store64(block + 8, h.owner);
  store64(block + 16, h.allocation);
  store32(block + 24, h.index);
  store32(block + 28, h.used);
  store32(block, block_crc(block, salt));
}

// The header of an intact block (magic and checksum hold), or false.
inline bool open_block(const uint8_t* block, uint32_t salt, BlockHeader* h) {
  if (load32(block + 4) != kMagic || load32(block) != block_crc(block, salt)) return false;
  h->owner = load64(block + 8);
  h->allocation = load64(block + 16);
  h->index = load32(block + 24);
  h->used = load32(block + 28);
  return (h->used & ~kBatchEnd) <= kPayloadBytes;
}

inline uint32_t stored_crc(const uint8_t* block) { return load32(block); }

}  // namespace raidfs::meta::region
