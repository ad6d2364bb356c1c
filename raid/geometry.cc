#include "raid/geometry.h"

#include <bit>
#include <cassert>
#include <string>

namespace raidfs {

Result<Geometry> Geometry::create(uint32_t n, uint32_t m, uint32_t chunk_bytes,
                                  uint64_t data_offset, uint64_t stripe_count) {
  if (m < 1 || m > kParityMax)
    return fail(EINVAL, "parity count " + std::to_string(m) + " is not 1, 2 or 3");
  if (n < m + 2)
    return fail(EINVAL, std::to_string(n) + " members are too few for " + std::to_string(m) +
                            " parity: need at least " + std::to_string(m + 2));
  if (n > kMembersMax)
    return fail(EINVAL, std::to_string(n) + " members exceed the maximum of " +
                            std::to_string(kMembersMax));
  if (!std::has_single_bit(chunk_bytes) || chunk_bytes < kChunkBytesMin ||
      chunk_bytes > kChunkBytesMax)
    return fail(EINVAL, "chunk size " + std::to_string(chunk_bytes) +
                            " is not a power of two between 4 KiB and 1 MiB");
  if (data_offset % kBlockBytes != 0)
    return fail(EINVAL, "data offset " + std::to_string(data_offset) +
                            " is not a multiple of 4 KiB");
  return Geometry(n, m, chunk_bytes, data_offset, stripe_count);
}

uint32_t Geometry::member_of(uint64_t stripe, uint32_t slot) const {
  assert(slot < n_);
  // Data slot i sits m places after the first parity member; parity slot k + j sits j after it.
  uint32_t k = data_count();
  uint32_t step = slot < k ? m_ + slot : slot - k;
  return (first_parity_member(stripe) + step) % n_;
}

uint32_t Geometry::slot_of(uint64_t stripe, uint32_t member) const {
  assert(member < n_);
  uint32_t step = (member + n_ - first_parity_member(stripe)) % n_;
  uint32_t k = data_count();
  return step < m_ ? k + step : step - m_;
}

MemberAddress Geometry::locate(uint64_t stripe, uint32_t data_index, uint32_t chunk_offset) const {
  assert(data_index < data_count() && chunk_offset < chunk_bytes_ && stripe < stripe_count_);
  return {member_of(stripe, data_index), row_offset(stripe) + chunk_offset};
}

MemberAddress Geometry::locate_parity(uint64_t stripe, uint32_t parity_index,
                                      uint32_t chunk_offset) const {
  assert(parity_index < m_ && chunk_offset < chunk_bytes_ && stripe < stripe_count_);
  return {member_of(stripe, data_count() + parity_index), row_offset(stripe) + chunk_offset};
}

Result<ChunkAddress> Geometry::resolve(MemberAddress a) const {
  if (a.member >= n_)
    return fail(EINVAL, "member " + std::to_string(a.member) + " is not in this array");
  if (a.offset < data_offset_ || a.offset - data_offset_ >= uint64_t{chunk_bytes_} * stripe_count_)
    return fail(EINVAL, "offset " + std::to_string(a.offset) + " is outside the data area");
  uint64_t rel = a.offset - data_offset_;
  uint64_t stripe = rel / chunk_bytes_;
  return ChunkAddress{stripe, slot_of(stripe, a.member), static_cast<uint32_t>(rel % chunk_bytes_)};
}

}  // namespace raidfs
