// Goal: ParityCodec's parity equals the textbook definition, and every erasure pattern of up to m
// chunks is rebuilt byte for byte. Method: a slow scalar GF(2^8) reference written here, random
// data, and an exhaustive sweep of n = m+2..12, m = 1..3, all erasure subsets.
#include "raid/parity_codec.h"

#include <gtest/gtest.h>

#include <random>

#include "base/aligned_buffer.h"

namespace raidfs {
namespace {

// Obviously-correct GF(2^8) multiply, polynomial 0x11d: shift-and-add ("Russian peasant").
uint8_t gf_mul_ref(uint8_t a, uint8_t b) {
  uint8_t product = 0;
  while (b) {
    if (b & 1) product ^= a;
    a = static_cast<uint8_t>((a << 1) ^ ((a & 0x80) ? 0x1d : 0));
    b >>= 1;
  }
  return product;
}

uint8_t gf_pow_ref(uint8_t base, uint32_t e) {
  uint8_t r = 1;
  while (e--) r = gf_mul_ref(r, base);
  return r;
}

// Parity p = sum over j of (2^p)^j * D_j, byte by byte.
void encode_ref(const std::vector<std::vector<uint8_t>>& data, uint32_t m,
                std::vector<std::vector<uint8_t>>& parity) {
  const size_t len = data[0].size();
  parity.assign(m, std::vector<uint8_t>(len, 0));
  for (uint32_t p = 0; p < m; ++p) {
    const uint8_t base = gf_pow_ref(2, p);
    for (size_t j = 0; j < data.size(); ++j) {
      const uint8_t coef = gf_pow_ref(base, static_cast<uint32_t>(j));
      for (size_t b = 0; b < len; ++b) parity[p][b] ^= gf_mul_ref(coef, data[j][b]);
    }
  }
}

struct Stripe {
  Stripe(uint32_t n, size_t len) : buffer(n * len), len(len) {
    for (uint32_t s = 0; s < n; ++s) ptrs.push_back(buffer.data() + s * len);
  }
  AlignedBuffer buffer;
  size_t len;
  std::vector<uint8_t*> ptrs;
};

void fill_random(Stripe& st, uint32_t k, std::mt19937& rng) {
  for (uint32_t j = 0; j < k; ++j)
    for (size_t b = 0; b < st.len; ++b) st.ptrs[j][b] = static_cast<uint8_t>(rng());
}

TEST(ParityCodec, EncodeMatchesReferenceForEveryShape) {
  std::mt19937 rng(1);
  const size_t len = 1024;
  for (uint32_t m = 1; m <= 3; ++m) {
    for (uint32_t n = m + 2; n <= 12; ++n) {
      const uint32_t k = n - m;
      auto codec = ParityCodec::create(k, m).value();
      Stripe st(n, len);
      fill_random(st, k, rng);
      std::vector<std::vector<uint8_t>> data(k), parity;
      for (uint32_t j = 0; j < k; ++j) data[j].assign(st.ptrs[j], st.ptrs[j] + len);
      encode_ref(data, m, parity);

      codec.encode(st.ptrs.data(), st.ptrs.data() + k, len);
      for (uint32_t p = 0; p < m; ++p)
        ASSERT_EQ(0, memcmp(st.ptrs[k + p], parity[p].data(), len)) << "n=" << n << " p=" << p;

      // The matrix path (ec_encode_data) gives the same bytes as xor_gen / pq_gen.
      Stripe again(n, len);
      for (uint32_t j = 0; j < k; ++j) memcpy(again.ptrs[j], st.ptrs[j], len);
      codec.encode_with_matrix(again.ptrs.data(), again.ptrs.data() + k, len);
      ASSERT_EQ(0, memcmp(again.buffer.data(), st.buffer.data(), n * len));
    }
  }
}

TEST(ParityCodec, EveryErasurePatternIsRebuiltExactly) {
  std::mt19937 rng(2);
  const size_t len = 512;
  uint64_t patterns = 0, expected_patterns = 0;
  for (uint32_t m = 1; m <= 3; ++m) {
    for (uint32_t n = m + 2; n <= 12; ++n) {
      const uint32_t k = n - m;
      auto codec = ParityCodec::create(k, m).value();
      for (uint64_t j = 1, c = 1; j <= m; ++j) expected_patterns += (c = c * (n - j + 1) / j);
      Stripe original(n, len);
      fill_random(original, k, rng);
      codec.encode(original.ptrs.data(), original.ptrs.data() + k, len);

      // Every subset of slots of size 1..m, as a bitmask.
      for (uint32_t mask = 1; mask < (1u << n); ++mask) {
        const uint32_t lost = static_cast<uint32_t>(__builtin_popcount(mask));
        if (lost > m) continue;
        Stripe st(n, len);
        memcpy(st.buffer.data(), original.buffer.data(), n * len);
        std::vector<uint32_t> erased;
        for (uint32_t s = 0; s < n; ++s) {
          if (!(mask >> s & 1)) continue;
          erased.push_back(s);
          memset(st.ptrs[s], 0xA5, len);  // garbage where the lost chunk was
        }
        auto r = codec.reconstruct(st.ptrs.data(), erased, len);
        ASSERT_TRUE(r) << r.error().message;
        ASSERT_EQ(0, memcmp(st.buffer.data(), original.buffer.data(), n * len))
            << "n=" << n << " m=" << m << " mask=" << mask;
        ++patterns;
      }
    }
  }
  EXPECT_EQ(patterns, expected_patterns);  // sum over shapes of C(n,1) + ... + C(n,m)
}

TEST(ParityCodec, UnalignedBuffersTakeTheMatrixPathAndAgree) {
  const uint32_t k = 4, m = 2, n = 6;
  const size_t len = 4096 + 96;  // not a multiple of 64 either
  auto codec = ParityCodec::create(k, m).value();
  AlignedBuffer aligned(n * len), skewed(n * len + 8);
  std::mt19937 rng(3);
  std::vector<uint8_t*> a, s;
  for (uint32_t i = 0; i < n; ++i) {
    a.push_back(aligned.data() + i * len);
    s.push_back(skewed.data() + 8 + i * len);
  }
  for (uint32_t j = 0; j < k; ++j)
    for (size_t b = 0; b < len; ++b) a[j][b] = s[j][b] = static_cast<uint8_t>(rng());
  codec.encode(a.data(), a.data() + k, len);
  codec.encode(s.data(), s.data() + k, len);
  for (uint32_t p = 0; p < m; ++p) EXPECT_EQ(0, memcmp(a[k + p], s[k + p], len));
  std::vector<uint32_t> erased{1};
  memset(s[1], 0, len);
  ASSERT_TRUE(codec.reconstruct(s.data(), erased, len));
  EXPECT_EQ(0, memcmp(a[1], s[1], len));
}

TEST(ParityCodec, IncrementalUpdateEqualsFullEncode) {
  std::mt19937 rng(4);
  const size_t len = 4096;
  for (uint32_t m = 1; m <= 3; ++m) {
    const uint32_t k = 6, n = k + m;
    auto codec = ParityCodec::create(k, m).value();
    Stripe full(n, len), incremental(n, len);
    fill_random(full, k, rng);
    codec.encode(full.ptrs.data(), full.ptrs.data() + k, len);

    // Parity starts as that of an all-zero stripe (zeros); data arrives one chunk at a time,
    // in an order other than slot order.
    for (uint32_t j : {3u, 0u, 5u, 1u, 4u, 2u}) {
      memcpy(incremental.ptrs[j], full.ptrs[j], len);
      codec.update(j, incremental.ptrs[j], incremental.ptrs.data() + k, len);
    }
    EXPECT_EQ(0, memcmp(full.buffer.data(), incremental.buffer.data(), n * len)) << "m=" << m;

    // Replacing chunk 2 by new bytes: update with old XOR new.
    std::vector<uint8_t> delta(len);
    for (size_t b = 0; b < len; ++b) {
      uint8_t fresh = static_cast<uint8_t>(rng());
      delta[b] = full.ptrs[2][b] ^ fresh;
      full.ptrs[2][b] = fresh;
    }
    codec.update(2, delta.data(), incremental.ptrs.data() + k, len);
    codec.encode(full.ptrs.data(), full.ptrs.data() + k, len);
    for (uint32_t p = 0; p < m; ++p) EXPECT_EQ(0, memcmp(full.ptrs[k + p], incremental.ptrs[k + p], len));
  }
}

TEST(ParityCodec, RejectsTooManyErasuresAndBadShapes) {
  auto codec = ParityCodec::create(4, 1).value();
  Stripe st(5, 64);
  std::vector<uint32_t> two{0, 1}, repeated{2, 2}, outside{5};
  EXPECT_EQ(codec.reconstruct(st.ptrs.data(), two, 64).error().code, EINVAL);
  EXPECT_EQ(codec.reconstruct(st.ptrs.data(), outside, 64).error().code, EINVAL);
  auto c2 = ParityCodec::create(4, 2).value();
  Stripe st2(6, 64);
  EXPECT_EQ(c2.reconstruct(st2.ptrs.data(), repeated, 64).error().code, EINVAL);
  EXPECT_FALSE(ParityCodec::create(1, 1));
  EXPECT_FALSE(ParityCodec::create(4, 4));
}

}  // namespace
}  // namespace raidfs
