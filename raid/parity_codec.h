// ParityCodec: computes and inverts the parity of one stripe (k data chunks, m parity chunks).
//
// The math, once.
//
// Bytes are elements of GF(2^8) with the polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11d), the field
// of Linux RAID6 and of ISA-L. Addition is XOR; multiplication is the field's. For data chunks
// D_0..D_{k-1} (taken byte by byte, every byte position independently) the parities are
//
//   P = D_0 + D_1 + ... + D_{k-1}                   (plain XOR: RAID5)
//   Q = 1*D_0 + 2*D_1 + 4*D_2 + ... + 2^j * D_j     (RAID6's Q)
//   R = 1*D_0 + 4*D_1 + 16*D_2 + ... + 4^j * D_j    (triple parity)
//
// i.e. parity row p has coefficients (2^p)^j. Stacked under the k x k identity this is the n x k
// encoding matrix E that ISA-L's gf_gen_rs_matrix(E, n, k) builds: slot s of a stripe holds
// E[s] . D. Because P's row is all ones and Q's row is 2^j, ISA-L's SIMD xor_gen (P) and pq_gen
// (P, Q) produce the very bytes ec_encode_data does with E; the codec uses them when it can.
//
// Recovery. Any k surviving slots S give k equations E[S] . D = chunks[S]. ISA-L documents that
// the k x k submatrix E[S] is invertible for every choice of S when m <= 3 (the "m - k <= 3"
// case of gf_gen_rs_matrix), so D = E[S]^-1 . chunks[S]: a lost data chunk d is row d of the
// inverse applied to the survivors, and a lost parity chunk p is E[k+p] . E[S]^-1 applied to the
// survivors. Every pattern of up to m lost chunks, data or parity, is recovered this way; a lost
// single data chunk (or P itself) with P alive is the XOR of the other k, the fast path.
//
// Incremental update. Parity is linear, so adding data chunk j (counted as zeros before) adds
// E[k+p][j] * D_j to each parity p: ec_encode_data_update. A partially filled stripe's parity is
// built this way one chunk (or 4 KiB row) at a time.
//
// Buffers: ISA-L's xor_gen/pq_gen use aligned vector moves; the codec takes them only when every
// pointer is 64-byte aligned and the length a multiple of 64, and otherwise uses the matrix path,
// which has no alignment rule. Lengths are in bytes, any positive multiple of 64 for best speed.
//
// A ParityCodec is immutable after create() and safe to share between threads. No member of it
// allocates after create().
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "base/result.h"

namespace raidfs {

class ParityCodec {
 public:
  // Errors: EINVAL if m is not 1..3, k < 2, or k + m > 64.
  static Result<ParityCodec> create(uint32_t data_count, uint32_t parity_count);

  uint32_t data_count() const { return k_; }
  uint32_t parity_count() const { return m_; }

  // parity[p] = E[k+p] . data, for p in [0, m). `data` has k pointers, `parity` m.
  void encode(const uint8_t* const* data, uint8_t* const* parity, size_t len) const;

  // The same through ec_encode_data only (never the xor_gen/pq_gen fast paths); for tests and
  // for the benchmark that compares them.
  void encode_with_matrix(const uint8_t* const* data, uint8_t* const* parity, size_t len) const;

  // Rebuilds in place the chunks of the slots in `erased` from the others. `chunks` has n = k + m
  // pointers in slot order (data 0..k-1, then P, Q, R); the erased ones are overwritten, the
  // rest only read. Errors: EINVAL if more than m slots are erased, a slot is out of range or
  // repeated. No error otherwise: with <= m erasures the inversion always exists.
  Result<void> reconstruct(uint8_t* const* chunks, std::span<const uint32_t> erased,
                           size_t len) const;

  // Adds data chunk `data_index`'s contribution to each of the m parity buffers:
  // parity[p] ^= E[k+p][data_index] * data. Applied to parity of zeros for every data chunk in
  // turn, it yields encode(); applied with (old XOR new) it replaces old data by new.
  void update(uint32_t data_index, const uint8_t* data, uint8_t* const* parity, size_t len) const;

 private:
  ParityCodec(uint32_t k, uint32_t m);

  uint32_t k_;
  uint32_t m_;
  std::vector<uint8_t> matrix_;        // n x k encoding matrix E (gf_gen_rs_matrix)
  std::vector<uint8_t> encode_tables_; // ec_init_tables of E's m parity rows: 32 * k * m bytes
};

}  // namespace raidfs
