#include "raid/parity_codec.h"

#include <isa-l/erasure_code.h>
#include <isa-l/raid.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cstring>
#include <string>

#include "raid/geometry.h"

namespace raidfs {
namespace {

constexpr size_t kSimdAlign = 64;

bool simd_ready(const void* const* ptrs, size_t count, size_t len) {
  if (len % kSimdAlign != 0) return false;
  for (size_t i = 0; i < count; ++i)
    if (reinterpret_cast<uintptr_t>(ptrs[i]) % kSimdAlign != 0) return false;
  return true;
}

// ISA-L takes non-const pointer arrays even for inputs; it does not write through them.
uint8_t** unconst(const uint8_t* const* p) { return const_cast<uint8_t**>(p); }

}  // namespace

Result<ParityCodec> ParityCodec::create(uint32_t k, uint32_t m) {
  if (m < 1 || m > kParityMax) return fail(EINVAL, "parity count must be 1, 2 or 3");
  if (k < 2 || k + m > kMembersMax)
    return fail(EINVAL, "data chunk count " + std::to_string(k) + " is out of range");
  return ParityCodec(k, m);
}

ParityCodec::ParityCodec(uint32_t k, uint32_t m)
    : k_(k), m_(m), matrix_((k + m) * k), encode_tables_(32 * k * m) {
  gf_gen_rs_matrix(matrix_.data(), static_cast<int>(k + m), static_cast<int>(k));
  ec_init_tables(static_cast<int>(k), static_cast<int>(m), &matrix_[k * k], encode_tables_.data());
}

void ParityCodec::encode(const uint8_t* const* data, uint8_t* const* parity, size_t len) const {
  std::array<void*, kMembersMax> vects;
  for (uint32_t i = 0; i < k_; ++i) vects[i] = const_cast<uint8_t*>(data[i]);
  for (uint32_t p = 0; p < m_; ++p) vects[k_ + p] = parity[p];
  const int n = static_cast<int>(k_ + m_);
  if (m_ <= 2 && simd_ready(vects.data(), k_ + m_, len)) {
    int rc = m_ == 1 ? xor_gen(n, static_cast<int>(len), vects.data())
                     : pq_gen(n, static_cast<int>(len), vects.data());
    if (rc == 0) return;
  }
  encode_with_matrix(data, parity, len);
}

void ParityCodec::encode_with_matrix(const uint8_t* const* data, uint8_t* const* parity,
                                     size_t len) const {
  ec_encode_data(static_cast<int>(len), static_cast<int>(k_), static_cast<int>(m_),
                 const_cast<uint8_t*>(encode_tables_.data()), unconst(data),
                 const_cast<uint8_t**>(parity));
}

void ParityCodec::update(uint32_t data_index, const uint8_t* data, uint8_t* const* parity,
                         size_t len) const {
  assert(data_index < k_);
  ec_encode_data_update(static_cast<int>(len), static_cast<int>(k_), static_cast<int>(m_),
                        static_cast<int>(data_index), const_cast<uint8_t*>(encode_tables_.data()),
                        const_cast<uint8_t*>(data), const_cast<uint8_t**>(parity));
}

Result<void> ParityCodec::reconstruct(uint8_t* const* chunks, std::span<const uint32_t> erased,
                                      size_t len) const {
  const uint32_t n = k_ + m_;
  if (erased.size() > m_)
    return fail(EINVAL, std::to_string(erased.size()) + " chunks lost, parity covers only " +
                            std::to_string(m_));
  uint64_t lost = 0;
  for (uint32_t slot : erased) {
    if (slot >= n || (lost >> slot & 1)) return fail(EINVAL, "bad erasure list");
    lost |= uint64_t{1} << slot;
  }
  if (erased.empty()) return {};

  // Fast path: one lost chunk among D_0..D_{k-1}, P, with P's equation intact: XOR the other k.
  if (erased.size() == 1 && erased[0] <= k_) {
    std::array<void*, kMembersMax + 1> vects;
    uint32_t count = 0;
    for (uint32_t s = 0; s <= k_; ++s)
      if (s != erased[0]) vects[count++] = chunks[s];
    vects[count++] = chunks[erased[0]];
    if (simd_ready(vects.data(), count, len) &&
        xor_gen(static_cast<int>(count), static_cast<int>(len), vects.data()) == 0)
      return {};
  }

  // General case: invert the rows of the first k survivors (see the header for the math).
  std::array<uint8_t, kMembersMax * kMembersMax> survivor_rows;
  std::array<uint8_t, kMembersMax * kMembersMax> inverse;
  std::array<uint8_t*, kMembersMax> sources;
  uint32_t found = 0;
  for (uint32_t s = 0; s < n && found < k_; ++s) {
    if (lost >> s & 1) continue;
    std::memcpy(&survivor_rows[found * k_], &matrix_[s * k_], k_);
    sources[found++] = chunks[s];
  }
  assert(found == k_);
  if (gf_invert_matrix(survivor_rows.data(), inverse.data(), static_cast<int>(k_)) != 0)
    return fail(EIO, "parity matrix not invertible for this erasure pattern");

  std::array<uint8_t, kParityMax * kMembersMax> decode_rows;
  std::array<uint8_t*, kParityMax> outputs;
  const uint32_t rows = static_cast<uint32_t>(erased.size());
  for (uint32_t r = 0; r < rows; ++r) {
    uint32_t slot = erased[r];
    uint8_t* row = &decode_rows[r * k_];
    if (slot < k_) {
      std::memcpy(row, &inverse[slot * k_], k_);
    } else {
      // Parity row times the inverse: coefficients of the parity in terms of the survivors.
      for (uint32_t i = 0; i < k_; ++i) {
        uint8_t acc = 0;
        for (uint32_t j = 0; j < k_; ++j) acc ^= gf_mul(matrix_[slot * k_ + j], inverse[j * k_ + i]);
        row[i] = acc;
      }
    }
    outputs[r] = chunks[slot];
  }
  std::array<uint8_t, 32 * kMembersMax * kParityMax> tables;
  ec_init_tables(static_cast<int>(k_), static_cast<int>(rows), decode_rows.data(), tables.data());
  ec_encode_data(static_cast<int>(len), static_cast<int>(k_), static_cast<int>(rows),
                 tables.data(), sources.data(), outputs.data());
  return {};
}

}  // namespace raidfs
