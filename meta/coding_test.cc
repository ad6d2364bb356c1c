// Goal: pin the exact bytes of every primitive encoding and prove that decoding hostile input
// (short, oversized lengths, trailing bytes) yields EIO "corrupt record", never a crash.
#include "meta/coding.h"

#include <gtest/gtest.h>

namespace raidfs::meta {
namespace {

TEST(Coding, GoldenBytes) {
  std::string s;
  put_u8(s, 0xab);
  put_u16(s, 0x0102);
  put_u32(s, 0x03040506);
  put_u64(s, 0x0708090a0b0c0d0eull);
  put_i64(s, -2);
  put_bytes(s, "hi");
  const std::string want("\xab\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e"
                         "\xff\xff\xff\xff\xff\xff\xff\xfe\x00\x00\x00\x02hi",
                         29);
  EXPECT_EQ(s, want);

  ByteReader r(s, "golden");
  EXPECT_EQ(r.u8().value(), 0xab);
  EXPECT_EQ(r.u16().value(), 0x0102);
  EXPECT_EQ(r.u32().value(), 0x03040506u);
  EXPECT_EQ(r.u64().value(), 0x0708090a0b0c0d0eull);
  EXPECT_EQ(r.i64().value(), -2);
  EXPECT_EQ(r.bytes(10).value(), "hi");
  EXPECT_TRUE(r.expect_end().has_value());
}

TEST(Coding, BigEndianOrderIsNumericOrder) {
  std::string a, b;
  put_u64(a, 255);
  put_u64(b, 256);
  EXPECT_LT(a, b);  // little-endian would put 256 first
  EXPECT_EQ(load_u64(b.data()), 256u);
  EXPECT_EQ(load_u32("\x80\x00\x00\x01"), 0x80000001u);
}

TEST(Coding, EveryTruncationIsCorruption) {
  std::string s;
  put_u32(s, 7);
  put_u64(s, 9);
  put_bytes(s, "abc");
  for (size_t n = 0; n < s.size(); ++n) {
    ByteReader r(std::string_view(s).substr(0, n), "t");
    auto a = r.u32();
    auto b = a ? r.u64() : Result<uint64_t>(std::unexpected(a.error()));
    auto c = b ? r.bytes(100) : Result<std::string_view>(std::unexpected(b.error()));
    ASSERT_FALSE(c.has_value()) << "prefix " << n;
    EXPECT_EQ(c.error().code, EIO);
    EXPECT_NE(c.error().message.find("corrupt record: t:"), std::string::npos);
  }
}

TEST(Coding, HostileLengthsAndTrailingBytes) {
  std::string s;
  put_u32(s, 0xffffffff);  // claims 4 GiB follow
  ByteReader r(s, "t");
  auto b = r.bytes(1u << 20);
  ASSERT_FALSE(b.has_value());
  EXPECT_EQ(b.error().code, EIO);

  std::string s2;
  put_u32(s2, 3);
  s2 += "ab";  // one byte short
  ByteReader r2(s2, "t");
  EXPECT_FALSE(r2.bytes(100).has_value());

  ByteReader r3("xy", "t");
  ASSERT_TRUE(r3.u8().has_value());
  EXPECT_FALSE(r3.expect_end().has_value());
}

}  // namespace
}  // namespace raidfs::meta
