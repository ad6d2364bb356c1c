// Goal: checksums are standard CRC-32C and versioned: the same bytes written for another stripe,
// generation or position fail verification. Method: golden values and single-field changes.
#include "raid/checksum.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace raidfs {
namespace {

TEST(Checksum, IsStandardCrc32c) {
  const char* check = "123456789";  // the CRC catalogue's check input
  EXPECT_EQ(crc32c({reinterpret_cast<const uint8_t*>(check), 9}), 0xE3069283u);
  // Chaining: crc(a + b) == crc(b, crc(a)).
  EXPECT_EQ(crc32c({reinterpret_cast<const uint8_t*>(check) + 4, 5},
                   crc32c({reinterpret_cast<const uint8_t*>(check), 4})),
            0xE3069283u);
  std::vector<uint8_t> zeros(32, 0);
  EXPECT_EQ(crc32c(zeros), 0x8A9136AAu);  // RFC 3720 B.4: 32 bytes of zeros
}

TEST(Checksum, RejectsBlocksFromAnotherStripeGenerationOrPosition) {
  std::vector<uint8_t> block(4096);
  for (size_t i = 0; i < block.size(); ++i) block[i] = static_cast<uint8_t>(i * 7);
  const BlockVersion v{42, 7, 3};
  const uint32_t sum = block_checksum(v, block);
  EXPECT_TRUE(block_matches(v, block, sum));
  EXPECT_FALSE(block_matches({43, 7, 3}, block, sum)) << "misdirected to another stripe";
  EXPECT_FALSE(block_matches({42, 6, 3}, block, sum)) << "stale: older generation";
  EXPECT_FALSE(block_matches({42, 8, 3}, block, sum)) << "newer generation";
  EXPECT_FALSE(block_matches({42, 7, 4}, block, sum)) << "another block of the stripe";
  block[100] ^= 1;
  EXPECT_FALSE(block_matches(v, block, sum)) << "bit flip";
}

TEST(Checksum, GoldenValueIsPinned) {
  // Pins the on-metadata format: changing the seed layout breaks every existing array.
  std::vector<uint8_t> block(4096, 0xAB);
  EXPECT_EQ(block_checksum({1, 1, 0}, block), block_checksum({1, 1, 0}, block));
  const uint32_t golden = block_checksum({0x0102030405060708ull, 9, 10}, block);
  uint8_t tag[20] = {8, 7, 6, 5, 4, 3, 2, 1, 9, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0};
  EXPECT_EQ(golden, crc32c(block, crc32c({tag, 20})));
}

}  // namespace
}  // namespace raidfs
