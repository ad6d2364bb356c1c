// MetaRegion: every block's copies sit on distinct members, inside each member's region, no two
// (block, copy) pairs share a place, and every member carries the same share.
#include "raid/meta_region.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

namespace raidfs {
namespace {

TEST(MetaRegion, CopiesAreOnDistinctMembersAndNeverOverlap) {
  for (uint32_t n : {3u, 4u, 5u, 6u, 8u, 11u}) {
    for (uint32_t copies = 1; copies <= std::min(n, 4u); ++copies) {
      const uint64_t per_member = 7 * MetaRegion::kRowBytes;
      auto region = MetaRegion::create(n, copies, MetaRegion::kRowBytes, per_member);
      ASSERT_TRUE(region) << region.error().message;
      EXPECT_EQ(region->row_count(), 7 * n / copies);
      std::set<std::pair<uint32_t, uint64_t>> used;
      std::map<uint32_t, uint64_t> per_member_blocks;
      for (uint64_t b = 0; b < region->block_count(); ++b) {
        std::set<uint32_t> members;
        for (uint32_t c = 0; c < copies; ++c) {
          const MetaRegion::Place p = region->place(b, c);
          ASSERT_LT(p.member, n);
          ASSERT_GE(p.offset, MetaRegion::kRowBytes);
          ASSERT_LT(p.offset, MetaRegion::kRowBytes + per_member);
          EXPECT_EQ(p.offset % MetaRegion::kBlockBytes, 0u);
          members.insert(p.member);
          EXPECT_TRUE(used.emplace(p.member, p.offset).second) << "block " << b << " copy " << c;
          ASSERT_EQ(region->copy_on(b, p.member), c);
          ++per_member_blocks[p.member];
        }
        EXPECT_EQ(members.size(), copies) << "block " << b;
        for (uint32_t m = 0; m < n; ++m) {
          if (!members.count(m)) {
            EXPECT_FALSE(region->copy_on(b, m).has_value());
          }
        }
      }
      // Every member carries the same share, to within one row.
      uint64_t least = UINT64_MAX, most = 0;
      for (uint32_t m = 0; m < n; ++m) {
        least = std::min(least, per_member_blocks[m]);
        most = std::max(most, per_member_blocks[m]);
      }
      EXPECT_LE(most - least, MetaRegion::kRowBlocks) << n << " members, " << copies << " copies";
    }
  }
}

TEST(MetaRegion, ARowIsContiguousOnEveryCopy) {
  auto region = MetaRegion::create(6, 3, MetaRegion::kRowBytes, 4 * MetaRegion::kRowBytes).value();
  for (uint64_t b = 0; b + 1 < region.block_count(); ++b) {
    if (region.run_end(b) == b + 1) continue;  // the next block starts another row
    for (uint32_t c = 0; c < 3; ++c) {
      EXPECT_EQ(region.place(b + 1, c).member, region.place(b, c).member);
      EXPECT_EQ(region.place(b + 1, c).offset, region.place(b, c).offset + MetaRegion::kBlockBytes);
    }
  }
}

TEST(MetaRegion, SizingAndRefusals) {
  // 64 MiB of mirrored blocks, 3 copies on 6 members: 32 MiB on each.
  EXPECT_EQ(MetaRegion::member_bytes_for(64 << 20, 6, 3), uint64_t{32} << 20);
  auto region = MetaRegion::create(6, 3, MetaRegion::kRowBytes, uint64_t{32} << 20).value();
  EXPECT_EQ(region.logical_bytes(), uint64_t{64} << 20);
  EXPECT_FALSE(MetaRegion::create(4, 5, MetaRegion::kRowBytes, MetaRegion::kRowBytes));
  EXPECT_FALSE(MetaRegion::create(4, 0, MetaRegion::kRowBytes, MetaRegion::kRowBytes));
  EXPECT_FALSE(MetaRegion::create(4, 2, 4096, MetaRegion::kRowBytes));
  EXPECT_FALSE(MetaRegion::create(4, 2, MetaRegion::kRowBytes, 4096));
  EXPECT_FALSE(MetaRegion::create(4, 3, MetaRegion::kRowBytes, 0));
}

}  // namespace
}  // namespace raidfs
