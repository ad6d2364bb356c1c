// Goal: every record type round-trips, a few are pinned byte for byte, every truncation and
// malformed field decodes to EIO, and keys sort the way the filesystem iterates them.
// Method: hand-built and seeded-random records (fixed seed, a few thousand), compared both ways.
#include "meta/records.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <functional>
#include <random>
#include <tuple>

#include "meta/keys.h"

namespace raidfs::meta {
namespace {

Inode sample_inode() {
  Inode i;
  i.ino = 42;
  i.mode = S_IFLNK | 0777;
  i.uid = 1000;
  i.gid = 100;
  i.size = 11;
  i.nlink = 1;
  i.atime_ns = 1'700'000'000'123'456'789;
  i.mtime_ns = -5;
  i.ctime_ns = 7;
  i.rdev = 0x0803;
  i.flags = 3;
  i.symlink_target = "target/path";
  i.blocks = 5;
  return i;
}

Stripe sample_stripe() {
  Stripe s;
  s.id = 9;
  s.generation = 77;
  s.state = StripeState::kOpen;
  s.filled_bytes = 3 * kBlockBytes + 100;
  s.live_blocks = 4;
  s.block_crcs = {1, 2, 3, 0xdeadbeef};
  s.parity_count = 2;
  s.parity_rows.push_back(ParityRow{0, std::string(2 * kBlockBytes, 'p')});
  s.parity_rows.push_back(ParityRow{3, std::string(2 * kBlockBytes, 'q')});
  return s;
}

// Every strict prefix of `bytes`, and bytes + one trailing byte, must fail with EIO.
void expect_hostile_input_rejected(const std::string& bytes,
                                   const std::function<bool(std::string_view)>& decodes) {
  ASSERT_TRUE(decodes(bytes));
  for (size_t n = 0; n < bytes.size(); ++n)
    EXPECT_FALSE(decodes(std::string_view(bytes).substr(0, n))) << "prefix of " << n << " bytes";
  EXPECT_FALSE(decodes(bytes + "x")) << "trailing byte";
  std::string bad_format = bytes;
  bad_format[0] = static_cast<char>(0xee);
  EXPECT_FALSE(decodes(bad_format)) << "unknown format byte";
}

TEST(Records, InodeRoundTripAndTruncation) {
  Inode i = sample_inode();
  std::string v = encode_inode(i);
  EXPECT_EQ(decode_inode(42, v).value(), i);
  expect_hostile_input_rejected(v, [](std::string_view b) { return decode_inode(42, b).has_value(); });
  auto r = decode_inode(42, v.substr(0, 10));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, EIO);
  EXPECT_NE(r.error().message.find("corrupt record: inode"), std::string::npos);

  Inode bad = i;
  bad.mode = 0777;  // no file type
  EXPECT_FALSE(decode_inode(42, encode_inode(bad)).has_value());
}

TEST(Records, AFormatOneInodeDecodesWithItsBlocksUnknown) {
  Inode i = sample_inode();
  std::string v1 = encode_inode(i);
  ASSERT_EQ(v1[0], 2);
  v1.resize(v1.size() - 8);  // format 1 had no block count at the end
  v1[0] = 1;
  auto decoded = decode_inode(42, v1);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(decoded->blocks, kBlocksUnknown);
  decoded->blocks = i.blocks;
  EXPECT_EQ(*decoded, i);
  // The value that means "unknown" is never stored.
  i.blocks = kBlocksUnknown;
  EXPECT_FALSE(decode_inode(42, encode_inode(i)).has_value());
}

TEST(Records, DirentGoldenBytes) {
  Dirent d{0x0102030405060708ull, FileType::kDirectory, 3};
  std::string v = encode_dirent(d);
  EXPECT_EQ(v, std::string("\x01\x01\x02\x03\x04\x05\x06\x07\x08\x04"
                           "\x00\x00\x00\x00\x00\x00\x00\x03",
                           18));
  EXPECT_EQ(decode_dirent(v).value(), d);
  expect_hostile_input_rejected(v, [](std::string_view b) { return decode_dirent(b).has_value(); });
  std::string bad_type = v;
  bad_type[9] = 3;  // not a d_type value
  EXPECT_FALSE(decode_dirent(bad_type).has_value());
}

TEST(Records, ExtentGoldenBytes) {
  Extent e{4096, 5, 8192, 12288};
  std::string v = encode_extent(e);
  EXPECT_EQ(v, std::string("\x01\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x20\x00\x00\x00\x30\x00",
                           17));
  EXPECT_EQ(decode_extent(4096, v).value(), e);
  expect_hostile_input_rejected(v, [](std::string_view b) { return decode_extent(0, b).has_value(); });
  Extent zero{0, 1, 0, 0};
  EXPECT_FALSE(decode_extent(0, encode_extent(zero)).has_value());
}

TEST(Records, ScrubStateGoldenBytesAndHostileInput) {
  ScrubState st;
  st.phase = ScrubPhase::kRunning;
  st.cursor = 7;
  st.started_ns = -1;
  st.finished_ns = 0;
  st.stripes_total = 9;
  st.stripes_checked = 3;
  st.bytes_read = 0x0102;
  st.blocks_rebuilt = 1;
  st.parity_rows_rewritten = 2;
  st.blocks_lost = 0;
  st.stripes_skipped = 5;
  st.rate_limit = 1 << 20;
  const std::string v = encode_scrub(st);
  ASSERT_EQ(v.size(), 2u + 8 * 11);
  EXPECT_EQ(v.substr(v.size() - 8), std::string("\x00\x00\x00\x00\x00\x10\x00\x00", 8));
  EXPECT_EQ(v.substr(0, 10), std::string("\x01\x01\x00\x00\x00\x00\x00\x00\x00\x07", 10));
  EXPECT_EQ(v.substr(10, 8), std::string(8, '\xff'));  // started_ns -1, two's complement
  EXPECT_EQ(decode_scrub(v).value(), st);
  expect_hostile_input_rejected(v, [](std::string_view b) { return decode_scrub(b).has_value(); });
  std::string bad_phase = v;
  bad_phase[1] = 9;
  EXPECT_FALSE(decode_scrub(bad_phase).has_value());
}

TEST(Records, RebuildStateGoldenBytesAndHostileInput) {
  RebuildState st;
  st.phase = RebuildPhase::kRunning;
  st.member = 3;
  st.from_generation = 0x10;
  st.cursor = 2;
  st.started_ns = 5;
  st.stripes_total = 9;
  st.stripes_rebuilt = 4;
  st.stripes_skipped = 1;
  st.bytes_written = 65536;
  st.since_generation = 7;
  st.replace = true;
  const std::string v = encode_rebuild(st);
  RebuildState limited = st;
  limited.rate_limit = 2;
  const std::string v2 = encode_rebuild(limited);
  ASSERT_EQ(v.size(), 2u + 4 + 8 * 10 + 1);
  EXPECT_EQ(v.substr(v.size() - 17, 9), std::string("\x00\x00\x00\x00\x00\x00\x00\x07\x01", 9));
  EXPECT_EQ(v2.substr(v2.size() - 8), std::string("\x00\x00\x00\x00\x00\x00\x00\x02", 8));
  EXPECT_EQ(decode_rebuild(v2).value(), limited);
  EXPECT_EQ(v.substr(0, 14), std::string("\x01\x01\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00\x10", 14));
  EXPECT_EQ(decode_rebuild(v).value(), st);
  expect_hostile_input_rejected(v, [](std::string_view b) { return decode_rebuild(b).has_value(); });
  std::string bad_member = v;
  bad_member[5] = 64;
  EXPECT_FALSE(decode_rebuild(bad_member).has_value());
}

TEST(Records, StripeRoundTripAndHostileCounts) {
  Stripe s = sample_stripe();
  // Format 5 keeps the parity rows out of the record (ParityRow records of their own).
  Stripe bare = s;
  bare.parity_rows.clear();
  EXPECT_EQ(decode_stripe(9, encode_stripe(s)).value(), bare);
  // A format-4 record, rows embedded, still decodes.
  std::string v = encode_stripe(s, /*embed_parity_rows=*/true);
  EXPECT_EQ(decode_stripe(9, v).value(), s);
  expect_hostile_input_rejected(v, [](std::string_view b) { return decode_stripe(9, b).has_value(); });

  Stripe wrong_crcs = s;
  wrong_crcs.block_crcs.pop_back();  // 3 crcs for 4 blocks
  EXPECT_FALSE(decode_stripe(9, encode_stripe(wrong_crcs)).has_value());
  Stripe bad_row = s;
  bad_row.parity_rows[1].bytes.pop_back();
  EXPECT_FALSE(decode_stripe(9, encode_stripe(bad_row, true)).has_value());
  std::string bad_state = v;
  bad_state[9] = 7;
  EXPECT_FALSE(decode_stripe(9, bad_state).has_value());

  Stripe sealed;
  sealed.id = 1;
  sealed.state = StripeState::kSealed;
  EXPECT_EQ(decode_stripe(1, encode_stripe(sealed)).value(), sealed);
}

// A super record is trusted to size the in-memory free map: out-of-range geometry is corrupt.
TEST(Records, SuperRejectsOutOfRangeStripeGeometry) {
  Super sup;
  sup.stripe_count = 1000;
  sup.stripe_data_bytes = 65536;
  ASSERT_TRUE(decode_super(encode_super(sup)).has_value());
  for (uint64_t count : {uint64_t{0}, kStripeCountMax + 1, uint64_t{1} << 62, UINT64_MAX}) {
    Super bad = sup;
    bad.stripe_count = count;
    auto r = decode_super(encode_super(bad));
    ASSERT_FALSE(r.has_value()) << count;
    EXPECT_EQ(r.error().code, EIO);
    EXPECT_NE(r.error().message.find("corrupt record: super"), std::string::npos);
  }
  Super max = sup;
  max.stripe_count = kStripeCountMax;
  max.stripe_data_bytes = kStripeDataBytesMax;
  EXPECT_TRUE(decode_super(encode_super(max)).has_value());
  for (uint32_t bytes : {0u, 4097u, 6144u, kStripeDataBytesMax + 4096, UINT32_MAX}) {
    Super bad = sup;
    bad.stripe_data_bytes = bytes;
    auto r = decode_super(encode_super(bad));
    ASSERT_FALSE(r.has_value()) << bytes;
    EXPECT_EQ(r.error().code, EIO);
  }
}

TEST(Records, SmallRecordsRoundTrip) {
  Super sup;
  sup.array_uuid[0] = 0xaa;
  sup.array_uuid[15] = 0x55;
  sup.stripe_count = 1000;
  sup.stripe_data_bytes = 4 * 65536;
  sup.geometry = "opaque";
  std::string v = encode_super(sup);
  EXPECT_EQ(decode_super(v).value(), sup);
  expect_hostile_input_rejected(v, [](std::string_view b) { return decode_super(b).has_value(); });

  v = encode_counter(123456789);
  EXPECT_EQ(decode_counter(v).value(), 123456789u);
  expect_hostile_input_rejected(v, [](std::string_view b) { return decode_counter(b).has_value(); });

  v = encode_cookie("name");
  EXPECT_EQ(decode_cookie(v).value(), "name");
  expect_hostile_input_rejected(v, [](std::string_view b) { return decode_cookie(b).has_value(); });
  EXPECT_FALSE(decode_cookie(encode_cookie("")).has_value());

  v = encode_xattr(std::string("\0bin\xff", 5));
  EXPECT_EQ(decode_xattr(v).value(), std::string("\0bin\xff", 5));
  expect_hostile_input_rejected(v, [](std::string_view b) { return decode_xattr(b).has_value(); });

  v = encode_orphan();
  EXPECT_TRUE(decode_orphan(v).has_value());
  EXPECT_FALSE(decode_orphan("").has_value());
  EXPECT_FALSE(decode_orphan(v + "x").has_value());
}

TEST(Records, BlocksTouched) {
  EXPECT_EQ(blocks_touched(0, 0), 0u);
  EXPECT_EQ(blocks_touched(0, 1), 1u);
  EXPECT_EQ(blocks_touched(0, 4096), 1u);
  EXPECT_EQ(blocks_touched(0, 4097), 2u);
  EXPECT_EQ(blocks_touched(4095, 2), 2u);
  EXPECT_EQ(blocks_touched(8192, 8192), 2u);
}

TEST(Records, RandomRecordsRoundTrip) {
  std::mt19937_64 rng(12345);
  for (int n = 0; n < 2000; ++n) {
    Inode i;
    i.ino = rng();
    i.mode = (n % 2 ? S_IFREG : S_IFDIR) | (rng() & 07777);
    i.uid = static_cast<uint32_t>(rng());
    i.size = rng();
    i.nlink = static_cast<uint32_t>(rng());
    i.atime_ns = static_cast<int64_t>(rng());
    i.parent = rng();
    i.next_cookie = rng();
    i.symlink_target = std::string(rng() % 64, static_cast<char>(rng()));
    ASSERT_EQ(decode_inode(i.ino, encode_inode(i)).value(), i);

    Stripe s;
    s.id = rng();
    s.generation = rng();
    s.state = static_cast<StripeState>(rng() % 3);
    s.filled_bytes = static_cast<uint32_t>(rng() % (64 * kBlockBytes));
    s.block_crcs.resize((s.filled_bytes + kBlockBytes - 1) / kBlockBytes);
    for (auto& c : s.block_crcs) c = static_cast<uint32_t>(rng());
    s.live_blocks = static_cast<uint32_t>(rng());
    if (rng() % 2) {
      s.parity_count = static_cast<uint8_t>(1 + rng() % 3);
      s.parity_rows.push_back(ParityRow{static_cast<uint32_t>(rng() % 16),
                                        std::string(s.parity_count * kBlockBytes, 'z')});
    }
    ASSERT_EQ(decode_stripe(s.id, encode_stripe(s, /*embed_parity_rows=*/true)).value(), s);
  }
}

TEST(Records, ParityRowRoundTripAndHostileSizes) {
  const ParityRow row{5, std::string(2 * kBlockBytes, 'r')};
  const std::string v = encode_parity_row(row);
  EXPECT_EQ(v.size(), 1 + 2 * kBlockBytes);
  EXPECT_EQ(decode_parity_row(5, v).value(), row);
  for (size_t bytes : {size_t{0}, size_t{kBlockBytes} - 1, size_t{kBlockBytes} + 1, size_t{4} * kBlockBytes}) {
    auto bad = decode_parity_row(5, "\x01" + std::string(bytes, 'r'));
    ASSERT_FALSE(bad.has_value()) << bytes << " bytes";
    EXPECT_EQ(bad.error().code, EIO);
  }
  EXPECT_FALSE(decode_parity_row(5, "\x02" + std::string(kBlockBytes, 'r')).has_value());
}

// Key order must be the filesystem's iteration order: (ino, offset) numerically for extents and
// cookies, (parent numerically, then name bytewise) for dirents and xattrs.
TEST(Keys, ByteOrderMatchesNumericOrder) {
  std::mt19937_64 rng(777);
  auto pick = [&rng]() -> uint64_t {  // mix of small, boundary and large values
    switch (rng() % 4) {
      case 0: return rng() % 300;
      case 1: return (uint64_t{1} << (rng() % 64)) - rng() % 2;
      default: return rng();
    }
  };
  std::vector<std::pair<uint64_t, uint64_t>> pairs;
  for (int n = 0; n < 4000; ++n) pairs.emplace_back(pick(), pick());
  std::vector<std::pair<std::string, std::pair<uint64_t, uint64_t>>> keyed;
  for (auto& p : pairs) keyed.emplace_back(extent_key(p.first, p.second), p);
  std::sort(keyed.begin(), keyed.end());
  for (size_t n = 1; n < keyed.size(); ++n) ASSERT_LE(keyed[n - 1].second, keyed[n].second);
  for (auto& [k, p] : keyed) ASSERT_EQ(parse_u64_pair_key(k).value(), p);

  std::vector<std::tuple<std::string, uint64_t, std::string>> named;
  for (int n = 0; n < 4000; ++n) {
    uint64_t parent = pick();
    std::string name(1 + rng() % 12, ' ');
    for (char& c : name) c = static_cast<char>(1 + rng() % 255);
    named.emplace_back(dirent_key(parent, name), parent, name);
  }
  std::sort(named.begin(), named.end());
  auto unsigned_less = [](const std::string& a, const std::string& b) {
    return std::lexicographical_compare(
        a.begin(), a.end(), b.begin(), b.end(),
        [](char x, char y) { return static_cast<uint8_t>(x) < static_cast<uint8_t>(y); });
  };
  for (size_t n = 1; n < named.size(); ++n) {
    auto& [ka, pa, na] = named[n - 1];
    auto& [kb, pb, nb] = named[n];
    ASSERT_TRUE(pa < pb || (pa == pb && !unsigned_less(nb, na))) << n;
    auto parsed = parse_u64_name_key(kb).value();
    ASSERT_EQ(parsed.first, pb);
    ASSERT_EQ(parsed.second, nb);
  }
  // A directory's entries are one contiguous range: all keys of parent p sort below u64_key(p+1).
  EXPECT_LT(dirent_key(5, std::string(255, '\xff')), u64_key(6));
  EXPECT_LT(cookie_key(5, UINT64_MAX), u64_key(6));
}

TEST(Keys, HostileKeysRejected) {
  EXPECT_EQ(parse_u64_key("1234567").error().code, EIO);
  EXPECT_FALSE(parse_u64_key("123456789").has_value());
  EXPECT_FALSE(parse_u64_pair_key("123456781234567").has_value());
  EXPECT_FALSE(parse_u64_name_key("12345678").has_value());
  EXPECT_EQ(parse_u64_key(inode_key(99)).value(), 99u);
}

}  // namespace
}  // namespace raidfs::meta
