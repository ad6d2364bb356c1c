// Goal: the superblock format is pinned, every copy is validated, and a damaged copy is named or
// survived. Method: encode/decode with golden offsets, then flip bytes in image files.
#include "raid/superblock.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "base/aligned_buffer.h"
#include "raid/checksum.h"
#include "raid/endian.h"
#include "tests/support/temp_dir.h"

namespace raidfs {
namespace {

Superblock sample() {
  Superblock sb;
  sb.array_uuid = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  sb.member_index = 2;
  sb.member_count = 6;
  sb.parity_count = 2;
  sb.chunk_bytes = 65536;
  sb.data_offset = 1 << 20;
  sb.member_bytes = 64 << 20;
  sb.stripe_count = 100;
  sb.sequence = 7;
  sb.created_ns = 123456789;
  for (uint32_t i = 0; i < 6; ++i) sb.member_states[i] = MemberState::kActive;
  sb.member_states[4] = MemberState::kFailed;
  sb.label = "tank";
  sb.metadata_dir = "/var/lib/raidfs/tank";
  sb.settled_sequence = 5;
  sb.write_floor = 4242;
  sb.member_since[4] = 77;
  sb.member_uuids[2] = {0xaa, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0xbb};
  return sb;
}

void reseal(uint8_t* bytes) { store_le32(bytes + 4092, crc32c({bytes, 4092})); }

TEST(Superblock, RoundTripsAndPinsTheLayout) {
  AlignedBuffer buf(4096);
  Superblock sb = sample();
  sb.encode(buf.data());
  EXPECT_EQ(0, memcmp(buf.data(), "RAIDFSMB", 8));
  EXPECT_EQ(load_le32(buf.data() + 8), 1u);
  EXPECT_EQ(load_le32(buf.data() + 12), 4096u);
  EXPECT_EQ(buf.data()[16], 1);
  EXPECT_EQ(load_le32(buf.data() + 32), 2u);
  EXPECT_EQ(load_le32(buf.data() + 44), 65536u);
  EXPECT_EQ(load_le64(buf.data() + 72), 7u);
  EXPECT_EQ(buf.data()[88 + 4], static_cast<uint8_t>(MemberState::kFailed));
  EXPECT_EQ(std::string(reinterpret_cast<char*>(buf.data() + 152)), "tank");
  EXPECT_EQ(load_le64(buf.data() + 1240), 5u);
  EXPECT_EQ(load_le64(buf.data() + 1248), 4242u);
  EXPECT_EQ(load_le64(buf.data() + 1256 + 8 * 4), 77u);
  EXPECT_EQ(buf.data()[1768 + 16 * 2], 0xaa);
  EXPECT_EQ(buf.data()[1768 + 16 * 2 + 15], 0xbb);
  EXPECT_EQ(load_le32(buf.data() + 4092), crc32c({buf.data(), 4092}));

  auto back = Superblock::decode(buf.data());
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->array_uuid, sb.array_uuid);
  EXPECT_EQ(back->member_index, 2u);
  EXPECT_EQ(back->stripe_count, 100u);
  EXPECT_EQ(back->member_states[4], MemberState::kFailed);
  EXPECT_EQ(back->own_state(), MemberState::kActive);
  EXPECT_EQ(back->label, "tank");
  EXPECT_EQ(back->metadata_dir, "/var/lib/raidfs/tank");
  EXPECT_EQ(back->geometry().data_count(), 4u);
  EXPECT_EQ(back->settled_sequence, 5u);
  EXPECT_EQ(back->write_floor, 4242u);
  EXPECT_EQ(back->member_since[4], 77u);
  EXPECT_EQ(back->own_uuid(), sb.member_uuids[2]);
}

TEST(Superblock, DecodeNamesEachKindOfDamage) {
  AlignedBuffer buf(4096);
  sample().encode(buf.data());

  buf.data()[100] ^= 0x40;  // a flipped bit
  auto r = Superblock::decode(buf.data());
  EXPECT_EQ(r.error().code, EIO);
  EXPECT_NE(r.error().message.find("checksum"), std::string::npos);
  buf.data()[100] ^= 0x40;

  buf.data()[0] = 'X';
  EXPECT_NE(Superblock::decode(buf.data()).error().message.find("no raidfs superblock"), std::string::npos);
  buf.data()[0] = 'R';

  store_le32(buf.data() + 8, 9);
  reseal(buf.data());
  EXPECT_EQ(Superblock::decode(buf.data()).error().code, EPROTONOSUPPORT);
  store_le32(buf.data() + 8, 1);

  store_le32(buf.data() + 32, 6);  // index == member count
  reseal(buf.data());
  EXPECT_NE(Superblock::decode(buf.data()).error().message.find("member index"), std::string::npos);
  store_le32(buf.data() + 32, 2);

  store_le64(buf.data() + 64, 1000000);  // more stripes than the member holds
  reseal(buf.data());
  EXPECT_NE(Superblock::decode(buf.data()).error().message.find("overrun"), std::string::npos);

  // Hostile counts that would overflow a multiplication into a pass.
  store_le32(buf.data() + 44, 4096);
  store_le64(buf.data() + 64, uint64_t{1} << 52);
  reseal(buf.data());
  EXPECT_NE(Superblock::decode(buf.data()).error().message.find("overrun"), std::string::npos);
  store_le32(buf.data() + 44, 65536);
  store_le64(buf.data() + 64, 100);

  store_le64(buf.data() + 48, 0);  // stripe 0 on top of the superblock
  reseal(buf.data());
  EXPECT_NE(Superblock::decode(buf.data()).error().message.find("overlaps the superblock"), std::string::npos);
  store_le64(buf.data() + 48, 1 << 20);

  store_le64(buf.data() + 64, 100);
  store_le32(buf.data() + 44, 3000);  // chunk size not a power of two
  reseal(buf.data());
  EXPECT_NE(Superblock::decode(buf.data()).error().message.find("inconsistent"), std::string::npos);
}

TEST(Superblock, BackupCopySurvivesATornPrimary) {
  testing::TempDir dir;
  Superblock sb = sample();
  std::string path = dir.image("m0", sb.member_bytes);
  int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(write_superblock(fd, sb));

  auto both = read_superblock(fd, sb.member_bytes);
  ASSERT_TRUE(both) << both.error().message;
  EXPECT_TRUE(both->primary_valid && both->backup_valid);

  // Tear the primary: half of it overwritten.
  std::vector<uint8_t> junk(2048, 0x5A);
  ASSERT_EQ(::pwrite(fd, junk.data(), junk.size(), 1024), 2048);
  auto one = read_superblock(fd, sb.member_bytes);
  ASSERT_TRUE(one) << one.error().message;
  EXPECT_FALSE(one->primary_valid);
  EXPECT_TRUE(one->backup_valid);
  EXPECT_EQ(one->newest.sequence, 7u);

  // A newer primary with an older backup (an update torn between the copies): the newer wins.
  Superblock newer = sb;
  newer.sequence = 8;
  AlignedBuffer buf(4096);
  newer.encode(buf.data());
  ASSERT_EQ(::pwrite(fd, buf.data(), 4096, 0), 4096);
  EXPECT_EQ(read_superblock(fd, sb.member_bytes)->newest.sequence, 8u);

  // Both copies gone: an error that says so.
  ASSERT_EQ(::pwrite(fd, junk.data(), junk.size(), 0), 2048);
  ASSERT_EQ(::pwrite(fd, junk.data(), junk.size(), backup_superblock_offset(sb.member_bytes)), 2048);
  auto none = read_superblock(fd, sb.member_bytes);
  ASSERT_FALSE(none);
  ::close(fd);
}

}  // namespace
}  // namespace raidfs
