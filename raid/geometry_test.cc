// Goal: the chunk map is a bijection and parity rotates over every member.
// Method: walk every (stripe, slot, offset) of small arrays of every shape and map there and back.
#include "raid/geometry.h"

#include <gtest/gtest.h>

#include <set>

namespace raidfs {
namespace {

TEST(Geometry, RejectsImpossibleShapes) {
  EXPECT_EQ(Geometry::create(2, 1, 65536, 1 << 20, 8).error().code, EINVAL);  // n < m + 2
  EXPECT_EQ(Geometry::create(3, 2, 65536, 1 << 20, 8).error().code, EINVAL);
  EXPECT_EQ(Geometry::create(4, 3, 65536, 1 << 20, 8).error().code, EINVAL);
  EXPECT_EQ(Geometry::create(6, 0, 65536, 1 << 20, 8).error().code, EINVAL);  // m = 0
  EXPECT_EQ(Geometry::create(6, 4, 65536, 1 << 20, 8).error().code, EINVAL);  // m = 4
  EXPECT_EQ(Geometry::create(6, 2, 65536 + 4096, 1 << 20, 8).error().code, EINVAL);
  EXPECT_EQ(Geometry::create(6, 2, 2048, 1 << 20, 8).error().code, EINVAL);
  EXPECT_EQ(Geometry::create(6, 2, 2u << 20, 1 << 20, 8).error().code, EINVAL);
  EXPECT_EQ(Geometry::create(6, 2, 65536, 1000, 8).error().code, EINVAL);
  EXPECT_EQ(Geometry::create(65, 2, 65536, 1 << 20, 8).error().code, EINVAL);
  auto e = Geometry::create(3, 2, 65536, 1 << 20, 8);
  EXPECT_NE(e.error().message.find("at least 4"), std::string::npos) << e.error().message;
  EXPECT_TRUE(Geometry::create(3, 1, 4096, 4096, 8));
  EXPECT_TRUE(Geometry::create(5, 3, 1 << 20, 1 << 20, 8));
}

TEST(Geometry, MatchesMdLeftSymmetricRaid5) {
  // md's left-symmetric layout for 4 disks: parity walks from the last disk to the first and the
  // data of each stripe starts just after the parity.
  auto g = Geometry::create(4, 1, 4096, 4096, 8).value();
  EXPECT_EQ(g.member_of(0, 3), 3u);  // P of stripe 0 on member 3
  EXPECT_EQ(g.member_of(0, 0), 0u);
  EXPECT_EQ(g.member_of(1, 3), 2u);
  EXPECT_EQ(g.member_of(1, 0), 3u);
  EXPECT_EQ(g.member_of(1, 1), 0u);
  EXPECT_EQ(g.member_of(3, 3), 0u);
  EXPECT_EQ(g.member_of(4, 3), 3u);  // period n
}

TEST(Geometry, MappingIsABijectionOverWholeArrays) {
  for (uint32_t m = 1; m <= 3; ++m) {
    for (uint32_t n = m + 2; n <= 9; ++n) {
      const uint32_t chunk = 4096 * 2;
      const uint64_t stripes = 3 * n + 1;
      auto g = Geometry::create(n, m, chunk, 8192, stripes).value();
      std::set<std::pair<uint32_t, uint64_t>> seen;
      for (uint64_t s = 0; s < stripes; ++s) {
        for (uint32_t slot = 0; slot < n; ++slot) {
          for (uint32_t off = 0; off < chunk; off += 512) {
            MemberAddress a = slot < g.data_count() ? g.locate(s, slot, off)
                                                    : g.locate_parity(s, slot - g.data_count(), off);
            ASSERT_TRUE(seen.insert({a.member, a.offset}).second) << "two chunks share a byte";
            auto back = g.resolve(a);
            ASSERT_TRUE(back) << back.error().message;
            EXPECT_EQ(*back, (ChunkAddress{s, slot, off}));
          }
        }
      }
      // Every member byte of the data area was hit exactly once.
      EXPECT_EQ(seen.size(), uint64_t{n} * stripes * (chunk / 512));
    }
  }
}

TEST(Geometry, ParityRotationCoversEveryMemberEvenly) {
  for (uint32_t m = 1; m <= 3; ++m) {
    for (uint32_t n = m + 2; n <= 12; ++n) {
      auto g = Geometry::create(n, m, 65536, 1 << 20, 1000).value();
      std::vector<uint32_t> parity_hits(n, 0);
      for (uint64_t s = 0; s < n; ++s) {
        std::set<uint32_t> members;
        for (uint32_t j = 0; j < m; ++j) ++parity_hits[g.member_of(s, g.data_count() + j)];
        for (uint32_t slot = 0; slot < n; ++slot) members.insert(g.member_of(s, slot));
        EXPECT_EQ(members.size(), n) << "a stripe uses each member once";
      }
      for (uint32_t member = 0; member < n; ++member)
        EXPECT_EQ(parity_hits[member], m) << "n=" << n << " m=" << m << " member " << member;
    }
  }
}

TEST(Geometry, ResolveRejectsAddressesOutsideTheDataArea) {
  auto g = Geometry::create(5, 2, 65536, 1 << 20, 10).value();
  EXPECT_FALSE(g.resolve({0, 0}));                                  // superblock
  EXPECT_FALSE(g.resolve({0, (1 << 20) + 10 * 65536}));             // past the last stripe
  EXPECT_FALSE(g.resolve({5, 1 << 20}));                            // no such member
  EXPECT_TRUE(g.resolve({4, (1 << 20) + 10 * 65536 - 1}));
  EXPECT_EQ(g.capacity_bytes(), 10u * 3 * 65536);
}

}  // namespace
}  // namespace raidfs
