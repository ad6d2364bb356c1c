// Goal: scrub_stripe finds every damaged data block and parity row of a stripe, repairs exactly
// what it can prove, ignores what lies past the filled blocks, compares an open stripe against the
// parity it is given; check_superblocks finds and rewrites damaged copies.
// Method: stripes written through the array on image files, damaged behind its back, scrubbed.
#include "raid/array_scrub.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <random>

#include "raid/checksum.h"
#include "tests/support/temp_dir.h"

namespace raidfs {
namespace {

constexpr uint32_t kChunk = 16384;
constexpr uint32_t kPerChunk = kChunk / kBlockBytes;

class ArrayScrubTest : public ::testing::Test {
 protected:
  void make(uint32_t n, uint32_t m) {
    for (uint32_t i = 0; i < n; ++i)
      paths_.push_back(dir_.image("m" + std::to_string(i) + ".img", 8 << 20));
    FormatOptions o;
    o.parity_count = m;
    o.chunk_bytes = kChunk;
    ASSERT_TRUE(Array::format(paths_, o));
    auto a = Array::open(paths_);
    ASSERT_TRUE(a) << a.error().message;
    array_ = std::move(*a);
    auto io = array_->make_member_io();
    ASSERT_TRUE(io);
    io_ = std::move(*io);
    channel_ = std::make_unique<IoChannel>(*array_, *io_);
    const Geometry& g = array_->geometry();
    chunks_ = AlignedBuffer(size_t{g.member_count()} * kChunk);
  }

  // Writes stripe `s` with random data in its first `filled` blocks (zeros after, as the parity
  // counts them) and remembers the checksums.
  void write(uint64_t s, uint32_t filled) {
    const Geometry& g = array_->geometry();
    AlignedBuffer buf(size_t{g.member_count()} * kChunk);
    std::mt19937 rng(static_cast<uint32_t>(s + 1));
    for (size_t i = 0; i < size_t{filled} * kBlockBytes; ++i)
      buf.data()[i] = static_cast<uint8_t>(rng());
    crcs_.assign(g.data_count() * kPerChunk, 0);
    for (uint32_t b = 0; b < filled; ++b)
      crcs_[b] = block_checksum({s, 7, b}, {buf.data() + size_t{b} * kBlockBytes, kBlockBytes});
    ASSERT_TRUE(array_->write_stripe(*channel_, s, buf.data(), true));
    filled_ = filled;
  }
  ScrubReport scrub(uint64_t s, bool repair, const uint8_t* parity = nullptr) {
    ScrubRequest req;
    req.ref = StripeRef{s, 7, crcs_, filled_, parity};
    req.repair = repair;
    auto r = array_->scrub_stripe(*channel_, req, chunks_.data());
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : ScrubReport{};
  }
  void flip(const MemberAddress& a) {
    const int fd = ::open(paths_[a.member].c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    uint8_t v = 0;
    ASSERT_EQ(::pread(fd, &v, 1, static_cast<off_t>(a.offset + 99)), 1);
    v ^= 1;
    ASSERT_EQ(::pwrite(fd, &v, 1, static_cast<off_t>(a.offset + 99)), 1);
    ::close(fd);
  }
  MemberAddress data(uint64_t s, uint32_t b) {
    return array_->geometry().locate(s, b / kPerChunk, (b % kPerChunk) * kBlockBytes);
  }
  MemberAddress parity(uint64_t s, uint32_t j, uint32_t row) {
    return array_->geometry().locate_parity(s, j, row * kBlockBytes);
  }

  testing::TempDir dir_;
  std::vector<std::string> paths_;
  std::unique_ptr<Array> array_;
  std::unique_ptr<MemberIo> io_;
  std::unique_ptr<IoChannel> channel_;
  AlignedBuffer chunks_;
  std::vector<uint32_t> crcs_;
  uint32_t filled_ = 0;
};

TEST_F(ArrayScrubTest, ACleanStripeIsCleanAndEveryParityRowIsCompared) {
  make(5, 2);
  write(3, 3 * kPerChunk);
  const ScrubReport r = scrub(3, false);
  EXPECT_TRUE(r.rebuilt_blocks.empty());
  EXPECT_TRUE(r.lost_blocks.empty());
  EXPECT_TRUE(r.parity_mismatches.empty());
  EXPECT_EQ(r.parity_rows_checked, 2 * kPerChunk);
}

TEST_F(ArrayScrubTest, DataAndParityFaultsAreFoundThenRepaired) {
  make(5, 2);
  write(1, 3 * kPerChunk);
  flip(data(1, 5));
  flip(parity(1, 1, 2));
  ScrubReport r = scrub(1, false);
  EXPECT_EQ(r.rebuilt_blocks, std::vector<uint32_t>{5});
  EXPECT_EQ(r.parity_mismatches, (std::vector<ParityMismatch>{{1, 2}}));
  EXPECT_EQ(r.healed_blocks, 0u);
  r = scrub(1, false);
  EXPECT_EQ(r.rebuilt_blocks.size(), 1u) << "-n changed nothing";
  r = scrub(1, true);
  EXPECT_EQ(r.healed_blocks, 1u);
  EXPECT_EQ(r.parity_rows_rewritten, 1u);
  r = scrub(1, false);
  EXPECT_TRUE(r.rebuilt_blocks.empty());
  EXPECT_TRUE(r.parity_mismatches.empty());
}

TEST_F(ArrayScrubTest, TwoFaultsInARaid5RowLoseTheBlockAndLeaveTheRestAlone) {
  make(4, 1);
  write(2, 3 * kPerChunk);
  flip(data(2, 6));  // chunk 1, row 2
  flip(parity(2, 0, 6 % kPerChunk));
  flip(data(2, 9));  // chunk 2, row 1: repairable
  ScrubReport r = scrub(2, true);
  EXPECT_EQ(r.lost_blocks, std::vector<uint32_t>{6});
  EXPECT_EQ(r.rebuilt_blocks, std::vector<uint32_t>{9});
  EXPECT_EQ(r.healed_blocks, 1u);
  EXPECT_TRUE(r.parity_mismatches.empty()) << "the lost block's row is not compared";
  EXPECT_EQ(r.parity_rows_checked, kPerChunk - 1);
  r = scrub(2, false);
  EXPECT_EQ(r.lost_blocks, std::vector<uint32_t>{6});
  EXPECT_TRUE(r.rebuilt_blocks.empty());
}

TEST_F(ArrayScrubTest, BlocksPastFilledAreZerosWhateverTheMembersHold) {
  make(4, 1);
  write(0, 5);  // blocks 0-4 filled; the parity counts the rest as zeros
  flip(data(0, 6));
  flip(data(0, 11));
  const ScrubReport r = scrub(0, false);
  EXPECT_TRUE(r.rebuilt_blocks.empty());
  EXPECT_TRUE(r.parity_mismatches.empty());
  EXPECT_EQ(std::count(chunks_.data() + 5 * kBlockBytes, chunks_.data() + 3 * kChunk, 0),
            3 * kChunk - 5 * kBlockBytes);
}

TEST_F(ArrayScrubTest, AnOpenStripeIsComparedWithTheParityItIsGiven) {
  make(4, 1);
  write(4, 6);
  ASSERT_TRUE(scrub(4, false).parity_mismatches.empty());
  AlignedBuffer given(kChunk);
  std::memcpy(given.data(), chunks_.data() + 3 * kChunk, kChunk);  // the right parity
  EXPECT_TRUE(scrub(4, false, given.data()).parity_mismatches.empty());
  given.data()[kBlockBytes + 3] ^= 4;
  flip(parity(4, 0, 0));  // member parity is not what an open stripe is read through
  const ScrubReport r = scrub(4, true, given.data());
  EXPECT_EQ(r.parity_mismatches, (std::vector<ParityMismatch>{{0, 1}}));
  EXPECT_EQ(r.parity_rows_rewritten, 0u) << "an open stripe's parity is the metadata's to fix";
}

TEST_F(ArrayScrubTest, DamagedSuperblockCopiesAreFoundAndRewritten) {
  make(4, 1);
  EXPECT_TRUE(array_->check_superblocks(false).empty());
  const int fd = ::open(paths_[2].c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  const std::vector<uint8_t> junk(4096, 0x5a);
  ASSERT_EQ(
      ::pwrite(fd, junk.data(), junk.size(), static_cast<off_t>(backup_superblock_offset(8 << 20))),
      4096);
  ::close(fd);
  auto issues = array_->check_superblocks(false);
  ASSERT_EQ(issues.size(), 1u);
  EXPECT_EQ(issues[0].member, 2u);
  EXPECT_NE(issues[0].what.find("backup superblock"), std::string::npos) << issues[0].what;
  issues = array_->check_superblocks(true);
  ASSERT_EQ(issues.size(), 1u);
  EXPECT_TRUE(issues[0].repaired);
  EXPECT_TRUE(array_->check_superblocks(false).empty());
}

}  // namespace
}  // namespace raidfs
