// Geometry: where each chunk of each stripe lives on the members of an array.
//
// An array has n members, m parity chunks per stripe (1 = RAID5, 2 = RAID6, 3 = triple parity),
// k = n - m data chunks, and a chunk size C (a power of two, 4 KiB .. 1 MiB). Stripe s occupies
// row s on every member, at byte `data_offset + s * C`. Parity rotates left-symmetrically, as md's
// default layout does, so no member is a parity hot spot:
//
//   first parity member   pd(s) = (n - 1) - (s mod n)
//   parity j (P, Q, R)    on member (pd + j) mod n,        j in [0, m)
//   data chunk i          on member (pd + m + i) mod n,    i in [0, k)
//
// e.g. n = 4, m = 1 (P marked):   member: 0  1  2  3
//                                 s = 0   D0 D1 D2 P
//                                 s = 1   D1 D2 P  D0
//                                 s = 2   D2 P  D0 D1
//
// A chunk is identified by its *slot* in the stripe: slots [0, k) are data chunks D0..Dk-1,
// slots [k, n) are parity chunks P, Q, R. Slot order is the order the parity codec uses.
//
// Geometry is an immutable value; all functions are pure and thread-safe.
#pragma once

#include <cstdint>

#include "base/result.h"
#include "base/units.h"

namespace raidfs {

inline constexpr uint32_t kChunkBytesMin = 4096;
inline constexpr uint32_t kChunkBytesMax = 1u << 20;
inline constexpr uint32_t kChunkBytesDefault = 64u << 10;
inline constexpr uint32_t kMembersMax = 64;
inline constexpr uint32_t kParityMax = 3;

// A byte position on one member.
struct MemberAddress {
  uint32_t member;
  uint64_t offset;  // bytes from the start of the member device
  bool operator==(const MemberAddress&) const = default;
};

// What a member byte inside the data area holds: which stripe, which slot, which byte of the chunk.
struct ChunkAddress {
  uint64_t stripe;
  uint32_t slot;          // < k: data chunk index; >= k: parity index k + j
  uint32_t chunk_offset;  // bytes into the chunk
  bool operator==(const ChunkAddress&) const = default;
};

class Geometry {
 public:
  // Validates and builds a geometry. Errors (EINVAL, message names the rule broken):
  // m outside [1, 3]; n < m + 2 (fewer than two data chunks); n > kMembersMax;
  // chunk_bytes not a power of two or outside [4 KiB, 1 MiB]; data_offset not a multiple of 4 KiB.
  static Result<Geometry> create(uint32_t member_count, uint32_t parity_count, uint32_t chunk_bytes,
                                 uint64_t data_offset, uint64_t stripe_count);

  uint32_t member_count() const { return n_; }
  uint32_t parity_count() const { return m_; }
  uint32_t data_count() const { return n_ - m_; }
  uint32_t chunk_bytes() const { return chunk_bytes_; }
  uint32_t blocks_per_chunk() const { return chunk_bytes_ / kBlockBytes; }
  uint64_t data_offset() const { return data_offset_; }
  uint64_t stripe_count() const { return stripe_count_; }
  uint64_t stripe_data_bytes() const { return uint64_t{chunk_bytes_} * data_count(); }
  uint64_t capacity_bytes() const { return stripe_data_bytes() * stripe_count_; }

  // Member holding slot `slot` (data index, or k + parity index) of stripe `stripe`.
  uint32_t member_of(uint64_t stripe, uint32_t slot) const;
  // Inverse of member_of: the slot that member `member` holds in stripe `stripe`.
  uint32_t slot_of(uint64_t stripe, uint32_t member) const;

  // (stripe, data index, byte in chunk) -> member byte. Requires data_index < k,
  // chunk_offset < C, stripe < stripe_count.
  MemberAddress locate(uint64_t stripe, uint32_t data_index, uint32_t chunk_offset) const;
  // (stripe, parity index j in [0, m), byte in chunk) -> member byte.
  MemberAddress locate_parity(uint64_t stripe, uint32_t parity_index, uint32_t chunk_offset) const;
  // member byte -> (stripe, slot, byte in chunk). Errors: EINVAL when the address lies outside
  // the data area (superblocks, reserved space, past the last stripe, member index too large).
  Result<ChunkAddress> resolve(MemberAddress address) const;

  // Byte offset of stripe `stripe`'s row on every member.
  uint64_t row_offset(uint64_t stripe) const { return data_offset_ + stripe * chunk_bytes_; }

 private:
  Geometry(uint32_t n, uint32_t m, uint32_t chunk_bytes, uint64_t data_offset, uint64_t stripes)
      : n_(n), m_(m), chunk_bytes_(chunk_bytes), data_offset_(data_offset), stripe_count_(stripes) {}

  uint32_t first_parity_member(uint64_t stripe) const {
    return static_cast<uint32_t>((n_ - 1) - stripe % n_);
  }

  uint32_t n_;
  uint32_t m_;
  uint32_t chunk_bytes_;
  uint64_t data_offset_;
  uint64_t stripe_count_;
};

}  // namespace raidfs
