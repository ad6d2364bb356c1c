// Goal: an Array on real image files stores stripes and gives them back byte for byte — healthy,
// with members deleted, with blocks corrupted, with members failing mid-I/O — and refuses bad
// member lists with an error naming the culprit. Method: format sparse images in a temp dir,
// write random stripes through io_uring, damage the images behind the array's back, read.
#include "raid/array.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <thread>

#include "raid/checksum.h"
#include "raid/fault_injecting_io.h"
#include "raid/member_file.h"
#include "tests/support/temp_dir.h"

namespace raidfs {
namespace {

constexpr uint64_t kMemberBytes = 8 << 20;

struct StripeData {
  AlignedBuffer buffer;         // n chunks, slot-major, as write_stripe wants
  std::vector<uint32_t> crcs;   // per data block, versioned
  uint64_t generation;
};

class ArrayTest : public ::testing::Test {
 protected:
  void make(uint32_t n, uint32_t m, uint32_t chunk = 16384, uint64_t bytes = kMemberBytes) {
    paths_.clear();
    const std::string array = arrays_++ ? "a" + std::to_string(arrays_) + "-" : "";
    for (uint32_t i = 0; i < n; ++i) paths_.push_back(dir_.image(array + "m" + std::to_string(i) + ".img", bytes));
    FormatOptions o;
    o.parity_count = m;
    o.chunk_bytes = chunk;
    auto sb = Array::format(paths_, o);
    ASSERT_TRUE(sb) << sb.error().message;
  }

  std::unique_ptr<Array> open(const std::vector<std::string>& paths, OpenOptions o = {}) {
    auto a = Array::open(paths, o);
    EXPECT_TRUE(a) << a.error().message;
    return a ? std::move(*a) : nullptr;
  }

  StripeData random_stripe(const Array& a, uint64_t stripe, uint64_t generation) {
    const Geometry& g = a.geometry();
    StripeData d{AlignedBuffer(uint64_t{g.member_count()} * g.chunk_bytes()), {}, generation};
    for (uint64_t i = 0; i < g.stripe_data_bytes(); ++i) d.buffer.data()[i] = static_cast<uint8_t>(rng_());
    for (uint32_t b = 0; b < g.stripe_data_bytes() / kBlockBytes; ++b)
      d.crcs.push_back(block_checksum({stripe, generation, b}, {d.buffer.data() + uint64_t{b} * kBlockBytes, kBlockBytes}));
    return d;
  }

  // Writes stripes 0 .. count-1 of a freshly opened array (closed again after) with random data
  // of `generation`, flushed; returns what was written.
  std::vector<StripeData> write_random_stripes(uint64_t count, uint64_t generation) {
    std::vector<StripeData> stripes;
    auto a = open(paths_);
    auto io = a->make_member_io().value();
    IoChannel ch(*a, *io);
    for (uint64_t s = 0; s < count; ++s) {
      stripes.push_back(random_stripe(*a, s, generation));
      EXPECT_TRUE(a->write_stripe(ch, s, stripes.back().buffer.data(), s + 1 == count));
    }
    return stripes;
  }

  // Makes `d` a partly filled stripe: zeros past `filled` blocks, and returns its m parity
  // chunks (parity j at j * C), as the metadata holds an open stripe's parity.
  AlignedBuffer open_stripe_parity(const Array& a, StripeData& d, uint32_t filled) {
    const Geometry& g = a.geometry();
    memset(d.buffer.data() + uint64_t{filled} * kBlockBytes, 0,
           g.stripe_data_bytes() - uint64_t{filled} * kBlockBytes);
    AlignedBuffer parity(uint64_t{g.parity_count()} * g.chunk_bytes());
    std::vector<const uint8_t*> data;
    std::vector<uint8_t*> out;
    for (uint32_t i = 0; i < g.data_count(); ++i) data.push_back(d.buffer.data() + uint64_t{i} * g.chunk_bytes());
    for (uint32_t j = 0; j < g.parity_count(); ++j) out.push_back(parity.data() + uint64_t{j} * g.chunk_bytes());
    a.codec().encode(data.data(), out.data(), g.chunk_bytes());
    return parity;
  }

  // Reads the stripe's whole data and checks it equals what was written.
  void expect_stripe(Array& a, IoChannel& ch, uint64_t stripe, const StripeData& d, ReadReport* out = nullptr) {
    const uint64_t bytes = a.geometry().stripe_data_bytes();
    AlignedBuffer got(bytes);
    ReadRequest r{{stripe, d.generation, d.crcs}, 0, static_cast<uint32_t>(bytes), got.data()};
    auto report = a.read(ch, r);
    ASSERT_TRUE(report) << report.error().message;
    EXPECT_EQ(0, memcmp(got.data(), d.buffer.data(), bytes)) << "stripe " << stripe;
    if (out) *out = *report;
  }

  // Overwrites 4 KiB on a member image behind the array's back.
  void scribble(uint32_t member, uint64_t offset) {
    int fd = ::open(paths_[member].c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    std::vector<uint8_t> junk(kBlockBytes, 0xEE);
    ASSERT_EQ(::pwrite(fd, junk.data(), junk.size(), static_cast<off_t>(offset)), 4096);
    ::close(fd);
  }

  // Flips one byte on a member image.
  void flip(uint32_t member, uint64_t offset) {
    int fd = ::open(paths_[member].c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    uint8_t byte = 0;
    ASSERT_EQ(::pread(fd, &byte, 1, static_cast<off_t>(offset)), 1);
    byte ^= 0x10;
    ASSERT_EQ(::pwrite(fd, &byte, 1, static_cast<off_t>(offset)), 1);
    ::close(fd);
  }

  testing::TempDir dir_;
  std::vector<std::string> paths_;
  std::mt19937_64 rng_{7};
  int arrays_ = 0;
};

TEST_F(ArrayTest, StripesRoundTripForEveryParityLevel) {
  for (uint32_t m = 1; m <= 3; ++m) {
    make(m + 3, m);
    auto a = open(paths_);
    ASSERT_TRUE(a);
    auto io = a->make_member_io().value();
    IoChannel ch(*a, *io);
    std::vector<StripeData> stripes;
    for (uint64_t s = 0; s < 8; ++s) {
      stripes.push_back(random_stripe(*a, s, 1));
      ASSERT_TRUE(a->write_stripe(ch, s, stripes.back().buffer.data(), s == 7));
    }
    for (uint64_t s = 0; s < 8; ++s) expect_stripe(*a, ch, s, stripes[s]);

    // A sub-range crossing a chunk boundary.
    AlignedBuffer part(3 * kBlockBytes);
    ReadRequest r{{5, 1, stripes[5].crcs}, 16384 - 4096, 3 * 4096, part.data()};
    ASSERT_TRUE(a->read(ch, r));
    EXPECT_EQ(0, memcmp(part.data(), stripes[5].buffer.data() + 16384 - 4096, 3 * 4096));
  }
}

TEST_F(ArrayTest, ReadsBackWithUpToParityCountMembersDeleted) {
  for (uint32_t m = 1; m <= 3; ++m) {
    make(m + 4, m);
    const std::vector<StripeData> stripes = write_random_stripes(10, 3);
    std::vector<std::string> remaining = paths_;
    for (uint32_t lost = 1; lost <= m; ++lost) {
      ASSERT_EQ(::unlink(remaining[lost * 2 - 1].c_str()), 0);  // members 1, 3, 5
      auto a = open(remaining);
      ASSERT_TRUE(a);
      EXPECT_EQ(a->unavailable_count(), lost);
      EXPECT_FALSE(a->warnings().empty());
      auto io = a->make_member_io().value();
      IoChannel ch(*a, *io);
      uint32_t rebuilt = 0;
      for (uint64_t s = 0; s < 10; ++s) {
        ReadReport report;
        expect_stripe(*a, ch, s, stripes[s], &report);
        rebuilt += report.reconstructed_blocks;
      }
      EXPECT_GT(rebuilt, 0u);
    }
    // One more than parity covers: refused, naming the members.
    ASSERT_EQ(::unlink(paths_[0].c_str()), 0);
    auto a = Array::open(paths_);
    ASSERT_FALSE(a);
    EXPECT_EQ(a.error().code, ENXIO);
    EXPECT_NE(a.error().message.find("member 0"), std::string::npos) << a.error().message;
    for (auto& p : paths_) ::unlink(p.c_str());
  }
}

TEST_F(ArrayTest, CorruptBlocksAreDetectedAndRebuilt) {
  make(6, 2);
  auto a = open(paths_);
  auto io = a->make_member_io().value();
  IoChannel ch(*a, *io);
  const Geometry& g = a->geometry();
  StripeData d = random_stripe(*a, 4, 9);
  ASSERT_TRUE(a->write_stripe(ch, 4, d.buffer.data(), true));

  // One bad block: rebuilt, and reported for healing.
  scribble(g.locate(4, 1, 0).member, g.locate(4, 1, 0).offset);
  ReadReport report;
  expect_stripe(*a, ch, 4, d, &report);
  ASSERT_EQ(report.corrupt_blocks.size(), 1u);
  EXPECT_EQ(report.corrupt_blocks[0], g.blocks_per_chunk() * 1);

  // Two bad blocks in the same row (RAID6 covers two).
  scribble(g.locate(4, 3, 0).member, g.locate(4, 3, 0).offset);
  expect_stripe(*a, ch, 4, d, &report);
  EXPECT_EQ(report.corrupt_blocks.size(), 2u);
  EXPECT_TRUE(report.corrupt_neighbours.empty());
  // A read of one of them alone: it comes back right; the other is rebuilt on the way (the row
  // needs both erasures) but lies outside the request, so it is reported apart.
  {
    const uint32_t b1 = g.blocks_per_chunk() * 1, b3 = g.blocks_per_chunk() * 3;
    AlignedBuffer one(kBlockBytes);
    auto r1 = a->read(ch, {{4, 9, d.crcs}, uint64_t{b1} * kBlockBytes, kBlockBytes, one.data()});
    ASSERT_TRUE(r1) << r1.error().message;
    EXPECT_EQ(0, memcmp(one.data(), d.buffer.data() + uint64_t{b1} * kBlockBytes, kBlockBytes));
    EXPECT_EQ(r1->corrupt_blocks, std::vector<uint32_t>{b1});
    EXPECT_EQ(r1->corrupt_neighbours, std::vector<uint32_t>{b3});
  }

  // A bad data block and a bad P in another row: rebuilding from P fails the checksum, the
  // array retries without P (from Q) and gets it right.
  scribble(g.locate(4, 0, 8192).member, g.locate(4, 0, 8192).offset);
  scribble(g.locate_parity(4, 0, 8192).member, g.locate_parity(4, 0, 8192).offset);
  expect_stripe(*a, ch, 4, d, &report);

  // Three bad blocks in one row: more than RAID6 can rebuild: EIO, not wrong data.
  scribble(g.locate(4, 2, 0).member, g.locate(4, 2, 0).offset);
  AlignedBuffer got(g.stripe_data_bytes());
  auto r = a->read(ch, {{4, 9, d.crcs}, 0, static_cast<uint32_t>(g.stripe_data_bytes()), got.data()});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, EIO);
  EXPECT_EQ(a->unavailable_count(), 0u) << "corruption is not a member failure";
}

// Reads of several stripes in one call: their member reads go out together, and each is still
// verified and rebuilt on its own — a missing member and a corrupt block in different stripes,
// reported against the request that met them.
TEST_F(ArrayTest, ReadsOfSeveralStripesInOneBatchAreEachVerifiedAndRebuilt) {
  make(6, 2);
  const std::vector<StripeData> stripes = write_random_stripes(6, 5);
  std::vector<std::string> remaining = paths_;
  ASSERT_EQ(::unlink(remaining[2].c_str()), 0);
  auto a = open(remaining);
  ASSERT_TRUE(a);
  auto io = a->make_member_io().value();
  IoChannel ch(*a, *io);
  const Geometry& g = a->geometry();
  const uint32_t sb = static_cast<uint32_t>(g.stripe_data_bytes());
  // Stripe 3's second data chunk is scribbled on (unless it is on the missing member: then chunk 0).
  const uint32_t bad_chunk = g.locate(3, 1, 0).member == 2 ? 0 : 1;
  scribble(g.locate(3, bad_chunk, 4096).member, g.locate(3, bad_chunk, 4096).offset);

  // Stripes 1..4 whole, plus a part of stripe 0 crossing a chunk boundary.
  AlignedBuffer got(uint64_t{5} * sb);
  std::vector<ReadRequest> reqs;
  for (uint64_t s = 1; s <= 4; ++s)
    reqs.push_back({{s, 5, stripes[s].crcs}, 0, sb, got.data() + (s - 1) * sb});
  reqs.push_back({{0, 5, stripes[0].crcs}, g.chunk_bytes() - 4096, 2 * 4096, got.data() + 4 * uint64_t{sb}});
  std::vector<ReadReport> reports(reqs.size());
  auto r = a->read(ch, reqs, reports);
  ASSERT_TRUE(r) << r.error().message;
  for (uint64_t s = 1; s <= 4; ++s) {
    EXPECT_EQ(0, memcmp(got.data() + (s - 1) * sb, stripes[s].buffer.data(), sb)) << "stripe " << s;
    bool lost_data = false;  // member 2 held one of its data chunks (3 also has a corrupt one)
    for (uint32_t d = 0; d < g.data_count(); ++d) lost_data |= g.member_of(s, d) == 2;
    EXPECT_EQ(reports[s - 1].reconstructed_blocks > 0, lost_data || s == 3) << "stripe " << s;
  }
  EXPECT_EQ(0, memcmp(got.data() + 4 * uint64_t{sb}, stripes[0].buffer.data() + g.chunk_bytes() - 4096, 2 * 4096));
  const uint32_t bad_block = bad_chunk * g.blocks_per_chunk() + 1;
  EXPECT_EQ(reports[2].corrupt_blocks, std::vector<uint32_t>{bad_block});
  for (size_t i : {0, 1, 3, 4}) EXPECT_TRUE(reports[i].corrupt_blocks.empty()) << "request " << i;

  // One request beyond repair (a second chunk of stripe 3's row lost with the missing member's
  // and the scribbled one): the call fails with EIO naming that stripe.
  const uint32_t other = g.locate(3, 2, 0).member == 2 || bad_chunk == 2 ? 3 : 2;
  scribble(g.locate(3, other, 4096).member, g.locate(3, other, 4096).offset);
  r = a->read(ch, reqs, reports);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, EIO);
  EXPECT_NE(r.error().message.find("stripe 3"), std::string::npos) << r.error().message;
  // Request lists and report lists of different lengths are refused.
  EXPECT_EQ(a->read(ch, reqs, std::span(reports).first(2)).error().code, EINVAL);
}

TEST_F(ArrayTest, StaleBlocksOfAnOlderGenerationAreRejected) {
  make(5, 1);
  auto a = open(paths_);
  auto io = a->make_member_io().value();
  const Geometry& g = a->geometry();
  StripeData old_data = random_stripe(*a, 2, 1);
  {
    IoChannel ch(*a, *io);
    ASSERT_TRUE(a->write_stripe(ch, 2, old_data.buffer.data(), true));
  }
  // Generation 2 of the same stripe; the member holding data chunk 2 loses its write: write the
  // whole stripe, then put the old chunk back on that member, as if the write never happened.
  StripeData fresh = random_stripe(*a, 2, 2);
  const uint32_t victim = g.member_of(2, 2);
  {
    IoChannel ch(*a, *io);
    ASSERT_TRUE(a->write_stripe(ch, 2, fresh.buffer.data(), true));
  }
  int fd = ::open(paths_[victim].c_str(), O_RDWR);
  ASSERT_EQ(::pwrite(fd, old_data.buffer.data() + 2 * g.chunk_bytes(), g.chunk_bytes(),
                     static_cast<off_t>(g.row_offset(2))), static_cast<ssize_t>(g.chunk_bytes()));
  ::close(fd);

  IoChannel ch(*a, *io);
  ReadReport report;
  expect_stripe(*a, ch, 2, fresh, &report);
  EXPECT_EQ(report.corrupt_blocks.size(), g.blocks_per_chunk()) << "every stale block caught";
}

// A write that skipped a failed member is acknowledged only once that failure is recorded on
// enough superblocks (m+1) that no later open trusts the member: with the superblock writes of
// three of the five others refused, the write fails with EIO (nothing acknowledged); once they
// are taken again the next write records it and succeeds, and a reopen leaves the member out. A
// superblock write that fails with a device error fails that member too.
TEST_F(ArrayTest, AWriteSkippingAFailedMemberWaitsUntilTheFailureIsRecorded) {
  make(6, 2);
  StripeData d;
  {
    auto a = open(paths_);
    auto io = a->make_member_io().value();
    FaultInjectingIo faulty(*io);
    IoChannel ch(*a, faulty);
    d = random_stripe(*a, 1, 1);
    for (uint32_t i : {0u, 1u, 2u}) faulty.fail_writes(i, ENOSPC, 0, 0, kDataOffsetBytes);
    faulty.fail_member(3, EIO);
    auto w = a->write_stripe(ch, 1, d.buffer.data(), true);
    ASSERT_FALSE(w) << "acknowledged with member 3's failure recorded on 2 superblocks only";
    EXPECT_EQ(w.error().code, EIO);
    EXPECT_NE(w.error().message.find("not recorded"), std::string::npos) << w.error().message;
    EXPECT_FALSE(a->states_recorded());
    for (uint32_t i : {0u, 1u, 2u}) faulty.fail_writes(i, 0);
    ASSERT_TRUE(a->write_stripe(ch, 1, d.buffer.data(), true));
    EXPECT_TRUE(a->states_recorded());
  }
  {
    auto reopened = Array::open(paths_);
    ASSERT_TRUE(reopened) << reopened.error().message;
    EXPECT_EQ((*reopened)->member_state(3), MemberState::kFailed);
  }
  // A device error on a superblock write: that member fails as well; the rest record both.
  make(6, 2);
  {
    auto a = open(paths_);
    auto io = a->make_member_io().value();
    FaultInjectingIo faulty(*io);
    IoChannel ch(*a, faulty);
    faulty.fail_writes(5, EIO, 0, 0, kDataOffsetBytes);
    faulty.fail_member(4, EIO);
    ASSERT_TRUE(a->write_stripe(ch, 2, d.buffer.data(), true)) << "members 0-3 hold the record";
    EXPECT_EQ(a->member_state(5), MemberState::kFailed);
  }
  auto reopened = Array::open(paths_);
  ASSERT_TRUE(reopened) << reopened.error().message;
  EXPECT_EQ((*reopened)->member_state(4), MemberState::kFailed);
  EXPECT_EQ((*reopened)->member_state(5), MemberState::kFailed) << "unwritable, and recorded so";
}

// A member being rebuilt takes every write but is read only for what is on it: stripes below the
// cursor and stripes written since the rebuild began; the rest is reconstructed. Its state is in
// the superblocks at each step.
TEST_F(ArrayTest, ARebuildingMemberIsWrittenButReadOnlyWhereRebuilt) {
  make(6, 2);
  std::vector<StripeData> old;
  {
    auto a = open(paths_);
    auto io = a->make_member_io().value();
    IoChannel ch(*a, *io);
    for (uint64_t s = 0; s < 3; ++s) {
      old.push_back(random_stripe(*a, s, 1));
      ASSERT_TRUE(a->write_stripe(ch, s, old[s].buffer.data(), true));
    }
    a->mark_failed(2, "test");
    EXPECT_EQ(a->begin_rebuild(3, 5, 0).error().code, EINVAL) << "member 3 is active";
    ASSERT_TRUE(a->begin_rebuild(2, /*from_generation=*/5, /*cursor=*/0));
    EXPECT_EQ(a->member_state(2), MemberState::kRebuilding);
    EXPECT_EQ(a->begin_rebuild(0, 5, 0).error().code, EBUSY) << "one rebuild at a time";
  }
  // Persisted: a reopen finds it rebuilding (not trusted until the rebuild is resumed).
  auto a = open(paths_);
  ASSERT_EQ(a->member_state(2), MemberState::kRebuilding);
  auto io = a->make_member_io().value();
  IoChannel ch(*a, *io);
  ReadReport report;
  expect_stripe(*a, ch, 1, old[1], &report);
  EXPECT_GT(report.reconstructed_blocks, 0u) << "rebuilding, no bounds yet: read for nothing";
  ASSERT_TRUE(a->begin_rebuild(2, 5, 0));
  expect_stripe(*a, ch, 0, old[0], &report);
  EXPECT_GT(report.reconstructed_blocks, 0u) << "not rebuilt yet: its chunk is reconstructed";
  // A stripe written since the rebuild began (generation 5) went to member 2 too.
  StripeData fresh = random_stripe(*a, 4, 5);
  ASSERT_TRUE(a->write_stripe(ch, 4, fresh.buffer.data(), true));
  expect_stripe(*a, ch, 4, fresh, &report);
  EXPECT_EQ(report.reconstructed_blocks, 0u) << "written full width: read from member 2";
  // Stripe 0 rebuilt (here: written again whole) and the cursor past it.
  ASSERT_TRUE(a->write_stripe(ch, 0, old[0].buffer.data(), true));
  a->advance_rebuild(2, 1);
  expect_stripe(*a, ch, 0, old[0], &report);
  EXPECT_EQ(report.reconstructed_blocks, 0u);
  expect_stripe(*a, ch, 1, old[1], &report);
  EXPECT_GT(report.reconstructed_blocks, 0u) << "stripe 1 is past the cursor";
  ASSERT_TRUE(a->finish_rebuild(2));
  EXPECT_EQ(a->member_state(2), MemberState::kActive);
  EXPECT_EQ(a->finish_rebuild(2).error().code, EINVAL);
  a.reset();
  EXPECT_EQ(open(paths_)->member_state(2), MemberState::kActive) << "recorded in the superblocks";
}

TEST_F(ArrayTest, MemberIoErrorsMarkTheMemberFailedAndPersist) {
  make(6, 2);
  StripeData d;
  {
    auto a = open(paths_);
    auto io = a->make_member_io().value();
    FaultInjectingIo faulty(*io);
    IoChannel ch(*a, faulty);
    d = random_stripe(*a, 1, 1);
    ASSERT_TRUE(a->write_stripe(ch, 1, d.buffer.data(), true));
    faulty.fail_member(3, EIO);
    expect_stripe(*a, ch, 1, d);
    EXPECT_EQ(a->member_state(3), MemberState::kFailed);
    EXPECT_EQ(a->unavailable_count(), 1u);
    // Writes go on degraded.
    ASSERT_TRUE(a->write_stripe(ch, 1, d.buffer.data(), true));
    // A second and third failure: RAID6 survives two, not three.
    faulty.fail_member(0, EIO);
    expect_stripe(*a, ch, 1, d);
    faulty.fail_member(5, EIO);
    AlignedBuffer got(a->geometry().stripe_data_bytes());
    auto r = a->read(ch, {{1, 1, d.crcs}, 0, static_cast<uint32_t>(a->geometry().stripe_data_bytes()), got.data()});
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("more members unavailable"), std::string::npos) << r.error().message;
    auto w = a->write_stripe(ch, 2, d.buffer.data(), true);
    ASSERT_FALSE(w);
    EXPECT_EQ(w.error().code, EIO);
  }
  // The first two failures were recorded in the superblocks of the members that stayed healthy;
  // the third, which stopped the array, was not (as md does), so once its cause is gone the array
  // opens again as it last served: members 3 and 0 out, member 5 back.
  auto reopened = Array::open(paths_);
  ASSERT_TRUE(reopened) << reopened.error().message;
  EXPECT_EQ((*reopened)->member_state(3), MemberState::kFailed);
  EXPECT_EQ((*reopened)->member_state(0), MemberState::kFailed);
  EXPECT_EQ((*reopened)->member_state(5), MemberState::kActive);
  auto io = (*reopened)->make_member_io().value();
  IoChannel ch(**reopened, *io);
  expect_stripe(**reopened, ch, 1, d);
}

TEST_F(ArrayTest, SplitBrainIsRefused) {
  // RAID6 on 4 members: each half alone has quorum. Used apart, each half records the other
  // missing; brought together, neither side may silently win.
  make(4, 2);
  ASSERT_TRUE(open({paths_[0], paths_[1]}));
  ASSERT_TRUE(open({paths_[2], paths_[3]}));
  for (auto order : {std::vector<std::string>{paths_[0], paths_[1], paths_[2], paths_[3]},
                     std::vector<std::string>{paths_[2], paths_[3], paths_[0], paths_[1]}}) {
    auto a = Array::open(order);
    ASSERT_FALSE(a);
    EXPECT_NE(a.error().message.find("split brain"), std::string::npos) << a.error().message;
  }
  // One side alone still opens.
  EXPECT_TRUE(open({paths_[0], paths_[1]}));
}

// A read-only open (ro mount, fsck -n) leaves a member it misses out of that open only; a
// read-write one records it, so it stays out when it comes back.
TEST_F(ArrayTest, OnlyAReadWriteOpenRecordsAMissingMember) {
  make(4, 1);
  const std::vector<std::string> without_3{paths_[0], paths_[1], paths_[2]};
  OpenOptions read_only;
  read_only.record_states = false;
  {
    auto a = open(without_3, read_only);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->member_state(3), MemberState::kMissing);
  }
  {
    auto a = open(paths_);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->member_state(3), MemberState::kActive) << "a read-only open wrote its view";
  }
  ASSERT_TRUE(open(without_3));
  auto a = open(paths_);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->member_state(3), MemberState::kMissing);
}

TEST_F(ArrayTest, HostAndRequestErrorsDoNotFailMembers) {
  make(5, 1);
  auto a = open(paths_);
  auto io = a->make_member_io().value();
  FaultInjectingIo faulty(*io);
  IoChannel ch(*a, faulty);
  StripeData d = random_stripe(*a, 0, 1);
  faulty.fail_member(2, ENOSPC);  // e.g. the filesystem under an image file is full
  auto w = a->write_stripe(ch, 0, d.buffer.data(), true);
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code, ENOSPC);
  EXPECT_NE(w.error().message.find("member 2"), std::string::npos) << w.error().message;
  EXPECT_EQ(a->unavailable_count(), 0u) << "ENOSPC is not the member's fault";
  faulty.fail_member(2, 0);
  ASSERT_TRUE(a->write_stripe(ch, 0, d.buffer.data(), true));
  expect_stripe(*a, ch, 0, d);
}

TEST_F(ArrayTest, ASpentRingFailsRequestsButNoMember) {
  // Members on disk: tmpfs files would be written on the calling thread, not through the ring.
  testing::TempDir disk("/var/tmp");
  paths_.clear();
  for (int i = 0; i < 5; ++i) paths_.push_back(disk.image("m" + std::to_string(i) + ".img", kMemberBytes));
  FormatOptions o;
  o.parity_count = 1;
  o.chunk_bytes = 16384;
  ASSERT_TRUE(Array::format(paths_, o));
  auto a = open(paths_);
  auto io = a->make_member_io().value();  // made on this thread: SINGLE_ISSUER
  StripeData d = random_stripe(*a, 0, 1);
  Result<void> from_other_thread;
  std::thread([&] {
    IoChannel ch(*a, *io);
    from_other_thread = a->write_stripe(ch, 0, d.buffer.data(), true);
  }).join();
  // Kernels that allow it make the write succeed; where the ring refuses the other thread, the
  // write fails with the ring's error and no member is blamed.
  if (!from_other_thread) {
    EXPECT_NE(from_other_thread.error().code, EIO) << from_other_thread.error().message;
    std::printf("other thread's write refused: %s\n", from_other_thread.error().message.c_str());
    IoChannel ch(*a, *io);
    EXPECT_FALSE(a->write_stripe(ch, 0, d.buffer.data(), true)) << "a spent ring stays spent";
  }
  EXPECT_EQ(a->unavailable_count(), 0u);
}

TEST_F(ArrayTest, ChannelsDropTheirBufferRegistration) {
  // A second channel on the same MemberIo may get its scratch at the address of the first's: the
  // first registration must not outlive its channel, or reads would land in stale pinned pages.
  make(5, 1);
  auto a = open(paths_);
  auto io = a->make_member_io().value();
  StripeData d = random_stripe(*a, 1, 1);
  for (int round = 0; round < 3; ++round) {
    IoChannel ch(*a, *io);
    ASSERT_TRUE(ch.register_buffers({}));
    if (round == 0) {
      ASSERT_TRUE(a->write_stripe(ch, 1, d.buffer.data(), true));
    }
    AlignedBuffer got(a->geometry().stripe_data_bytes());
    auto r = a->read(ch, {{1, 1, {}}, 0, static_cast<uint32_t>(a->geometry().stripe_data_bytes()), got.data(), true});
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(0, memcmp(got.data(), d.buffer.data(), a->geometry().stripe_data_bytes())) << "round " << round;
  }
}

TEST_F(ArrayTest, FailedStatePersistsAcrossReopen) {
  make(5, 1);
  StripeData d;
  {
    auto a = open(paths_);
    auto io = a->make_member_io().value();
    FaultInjectingIo faulty(*io);
    IoChannel ch(*a, faulty);
    d = random_stripe(*a, 0, 1);
    ASSERT_TRUE(a->write_stripe(ch, 0, d.buffer.data(), true));
    faulty.fail_member(2, EIO);
    expect_stripe(*a, ch, 0, d);
  }
  auto a = open(paths_);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->member_state(2), MemberState::kFailed);
  auto io = a->make_member_io().value();
  IoChannel ch(*a, *io);
  expect_stripe(*a, ch, 0, d);
}

TEST_F(ArrayTest, PartialStripeWithParityFromTheCallerRebuildsDegraded) {
  make(5, 2);
  auto a = open(paths_);
  auto io = a->make_member_io().value();
  IoChannel ch(*a, *io);
  const Geometry& g = a->geometry();
  // Fill 5 of the stripe's 12 blocks (chunk 16 KiB, 3 data chunks); keep parity "in metadata".
  StripeData d = random_stripe(*a, 6, 4);
  const uint32_t filled = 5;
  AlignedBuffer parity = open_stripe_parity(*a, d, filled);
  ASSERT_TRUE(a->write_data(ch, 6, 0, filled * kBlockBytes, d.buffer.data()));

  // The members' parity area of this stripe holds garbage: the array must use the caller's.
  scribble(g.locate_parity(6, 0, 0).member, g.locate_parity(6, 0, 0).offset);
  scribble(g.locate_parity(6, 1, 0).member, g.locate_parity(6, 1, 0).offset);

  // Lose the member holding data chunk 0, then read the filled part back.
  FaultInjectingIo faulty(*io);
  IoChannel degraded(*a, faulty);
  faulty.fail_member(g.member_of(6, 0), EIO);
  AlignedBuffer got(g.stripe_data_bytes());
  StripeRef ref{6, 4, d.crcs, filled, parity.data()};
  auto r = a->read(degraded, {ref, 0, static_cast<uint32_t>(g.stripe_data_bytes()), got.data()});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(0, memcmp(got.data(), d.buffer.data(), g.stripe_data_bytes())) << "data, then zeros";
  EXPECT_EQ(r->reconstructed_blocks, 4u);
}

// The same parity given as the metadata keeps it — row by row, only the rows holding data —
// is copied only by the read that must rebuild; a row missing from the list reads as zero
// parity, so a rebuild through it fails its checksums (EIO) rather than returning wrong data.
TEST_F(ArrayTest, AnOpenStripesParityFromItsRowsRebuildsTwoLostChunks) {
  make(5, 2);
  auto a = open(paths_);
  auto io = a->make_member_io().value();
  IoChannel ch(*a, *io);
  const Geometry& g = a->geometry();
  const uint32_t per_chunk = g.blocks_per_chunk();  // 4: chunk 16 KiB
  StripeData d = random_stripe(*a, 3, 8);
  const uint32_t filled = per_chunk + 2;  // chunk 0 whole, rows 0 and 1 of chunk 1
  AlignedBuffer parity = open_stripe_parity(*a, d, filled);
  ASSERT_TRUE(a->write_data(ch, 3, 0, filled * kBlockBytes, d.buffer.data()));
  scribble(g.locate_parity(3, 0, 0).member, g.locate_parity(3, 0, 0).offset);
  // Rows as the metadata stores them: both parities of a row together.
  std::vector<std::vector<uint8_t>> row_bytes;
  std::vector<ParityRowRef> rows;
  for (uint32_t row = 0; row < per_chunk; ++row) {
    row_bytes.emplace_back(2 * kBlockBytes);
    for (uint32_t j = 0; j < 2; ++j)
      memcpy(row_bytes.back().data() + j * kBlockBytes,
             parity.data() + uint64_t{j} * g.chunk_bytes() + row * kBlockBytes, kBlockBytes);
  }
  for (uint32_t row = 0; row < per_chunk; ++row) rows.push_back({row, row_bytes[row].data()});

  // Checksums of the filled blocks only (the metadata's list) are enough; fewer are refused.
  AlignedBuffer got(g.stripe_data_bytes());
  auto whole = a->read(ch, {{3, 8, std::span(d.crcs).first(filled), filled}, 0,
                            static_cast<uint32_t>(g.stripe_data_bytes()), got.data()});
  ASSERT_TRUE(whole) << whole.error().message;
  EXPECT_EQ(0, memcmp(got.data(), d.buffer.data(), g.stripe_data_bytes()));
  auto few = a->read(ch, {{3, 8, std::span(d.crcs).first(filled - 1), filled}, 0, kBlockBytes, got.data()});
  ASSERT_FALSE(few);
  EXPECT_EQ(few.error().code, EINVAL);

  FaultInjectingIo faulty(*io);
  IoChannel degraded(*a, faulty);
  faulty.fail_member(g.member_of(3, 0), EIO);
  faulty.fail_member(g.member_of(3, 1), EIO);
  StripeRef ref{3, 8, d.crcs, filled};
  ref.parity_rows = rows;
  ref.parity_in_rows = true;
  auto r = a->read(degraded, {ref, 0, static_cast<uint32_t>(g.stripe_data_bytes()), got.data()});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(0, memcmp(got.data(), d.buffer.data(), g.stripe_data_bytes())) << "data, then zeros";
  EXPECT_EQ(r->reconstructed_blocks, filled);

  // Row 1 left out of the list: its blocks cannot be rebuilt right, and the read says so.
  rows.erase(rows.begin() + 1);
  ref.parity_rows = rows;
  r = a->read(degraded, {ref, 0, static_cast<uint32_t>(g.stripe_data_bytes()), got.data()});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, EIO) << r.error().message;
}

TEST_F(ArrayTest, ForcedReconstructionMatchesDirectReads) {
  make(7, 3, 65536, 16 << 20);
  auto a = open(paths_);
  auto io = a->make_member_io().value();
  IoChannel ch(*a, *io);
  StripeData d = random_stripe(*a, 3, 1);
  ASSERT_TRUE(a->write_stripe(ch, 3, d.buffer.data(), false));
  AlignedBuffer got(a->geometry().stripe_data_bytes());
  auto r = a->read(ch, {{3, 1, d.crcs}, 0, static_cast<uint32_t>(a->geometry().stripe_data_bytes()), got.data(), true});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(0, memcmp(got.data(), d.buffer.data(), a->geometry().stripe_data_bytes()));
  EXPECT_EQ(r->reconstructed_blocks, a->geometry().stripe_data_bytes() / kBlockBytes);
}

TEST_F(ArrayTest, BadMemberListsAreRefusedWithTheirName) {
  make(4, 1);
  // Listed twice.
  auto twice = Array::open(std::vector<std::string>{paths_[0], paths_[1], paths_[0], paths_[3]});
  ASSERT_FALSE(twice);
  EXPECT_NE(twice.error().message.find("listed twice"), std::string::npos) << twice.error().message;

  // Wrong position when the order is fixed.
  OpenOptions as_given;
  as_given.order = OpenOptions::Order::kAsGiven;
  auto swapped = Array::open(std::vector<std::string>{paths_[1], paths_[0], paths_[2], paths_[3]}, as_given);
  ASSERT_FALSE(swapped);
  EXPECT_NE(swapped.error().message.find("listed as member 0"), std::string::npos) << swapped.error().message;
  // Any order is fine otherwise.
  EXPECT_TRUE(Array::open(std::vector<std::string>{paths_[3], paths_[1], paths_[0], paths_[2]}));

  // A member of another array.
  std::vector<std::string> other{dir_.image("o0", kMemberBytes), dir_.image("o1", kMemberBytes),
                                 dir_.image("o2", kMemberBytes)};
  ASSERT_TRUE(Array::format(other, FormatOptions{1, 16384, "", "", std::nullopt, false}));
  auto mixed = Array::open(std::vector<std::string>{paths_[0], paths_[1], paths_[2], other[0]});
  ASSERT_FALSE(mixed);
  EXPECT_NE(mixed.error().message.find(other[0] + ": belongs to another raidfs array"), std::string::npos)
      << mixed.error().message;

  // Not a member at all.
  auto blank = Array::open(std::vector<std::string>{paths_[0], paths_[1], paths_[2], dir_.image("blank", kMemberBytes)});
  ASSERT_FALSE(blank);
  EXPECT_NE(blank.error().message.find("blank: no raidfs superblock"), std::string::npos) << blank.error().message;

  // Reformatting a member needs force.
  auto again = Array::format(paths_, FormatOptions{1, 16384, "", "", std::nullopt, false});
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, EEXIST);
  EXPECT_TRUE(Array::format(paths_, FormatOptions{1, 16384, "", "", std::nullopt, true}));
}

TEST_F(ArrayTest, CorruptAndTooSmallMembersAreNamed) {
  make(4, 1);
  // Primary superblock torn: the backup carries on, with a warning.
  flip(2, 100);
  {
    auto a = open(paths_);
    ASSERT_TRUE(a);
    bool warned = false;
    for (auto& w : a->warnings()) warned |= w.find("m2.img: primary superblock") != std::string::npos;
    EXPECT_TRUE(warned);
  }
  // Both copies damaged (a flipped byte in each): the member is left out, named in a warning, and
  // the array runs degraded; a second such member in RAID5 is one too many, and the error names it.
  flip(2, 0 + 200);
  flip(2, backup_superblock_offset(kMemberBytes) + 200);
  {
    auto a = open(paths_);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->unavailable_count(), 1u);
    bool warned = false;
    for (auto& w : a->warnings()) warned |= w.find("m2.img: superblock checksum mismatch") != std::string::npos;
    EXPECT_TRUE(warned);
  }
  flip(3, 300);
  flip(3, backup_superblock_offset(kMemberBytes) + 300);
  auto a = Array::open(paths_);
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, ENXIO);
  EXPECT_NE(a.error().message.find("m3.img: superblock checksum mismatch"), std::string::npos) << a.error().message;

  // A member truncated after formatting is left out, named.
  make(4, 1);
  ASSERT_EQ(::truncate(paths_[1].c_str(), kMemberBytes / 2), 0);
  auto shrunk = open(paths_);
  ASSERT_TRUE(shrunk);
  EXPECT_EQ(shrunk->member_state(1), MemberState::kMissing);
  bool named = false;
  for (auto& w : shrunk->warnings()) named |= w.find("m1.img: is 4.0 MiB but was 8.0 MiB") != std::string::npos;
  EXPECT_TRUE(named);

  // Too small to format.
  std::vector<std::string> tiny{dir_.image("t0", 1 << 20), dir_.image("t1", 64 << 20), dir_.image("t2", 64 << 20)};
  auto f = Array::format(tiny, FormatOptions{1, 65536, "", "", std::nullopt, false});
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().code, ENOSPC);
  EXPECT_NE(f.error().message.find("t0: too small"), std::string::npos) << f.error().message;
}

TEST_F(ArrayTest, FormatRefusesDevicesHoldingOtherDataUnlessForced) {
  struct Case { const char* what; uint64_t offset; std::string magic; };
  const Case cases[] = {{"ext2/3/4", 0x438, "\x53\xef"}, {"btrfs", 0x10040, "_BHRfS_M"},
                        {"xfs", 0, "XFSB"}, {"GPT partition table", 0x200, "EFI PART"}};
  int case_index = 0;
  for (const Case& c : cases) {
    const std::string tag = std::to_string(case_index++);
    std::vector<std::string> paths{dir_.image("f0-" + tag, kMemberBytes), dir_.image("f1-" + tag, kMemberBytes),
                                   dir_.image("f2-" + tag, kMemberBytes)};
    int fd = ::open(paths[1].c_str(), O_RDWR);
    ASSERT_EQ(::pwrite(fd, c.magic.data(), c.magic.size(), static_cast<off_t>(c.offset)),
              static_cast<ssize_t>(c.magic.size()));
    ::close(fd);
    auto f = Array::format(paths, FormatOptions{1, 16384, "", "", std::nullopt, false});
    ASSERT_FALSE(f) << c.what;
    EXPECT_EQ(f.error().code, EEXIST);
    EXPECT_NE(f.error().message.find(std::string(": holds ") + c.what), std::string::npos) << f.error().message;
    EXPECT_NE(f.error().message.find(paths[1]), std::string::npos);
    // Nothing was written to the other members.
    auto untouched = Array::open(std::vector<std::string>{paths[0]});
    ASSERT_FALSE(untouched);
    EXPECT_NE(untouched.error().message.find("no raidfs superblock"), std::string::npos);
    EXPECT_TRUE(Array::format(paths, FormatOptions{1, 16384, "", "", std::nullopt, true}));
  }
}

}  // namespace
// --- what a member holds after it left: stale copies, member_since, replace ----------------------

// Copies a member image (as an admin's backup, or a disk swapped back in from a shelf would).
void copy_file(const std::string& from, const std::string& to) {
  std::ifstream in(from, std::ios::binary);
  std::ofstream out(to, std::ios::binary | std::ios::trunc);
  out << in.rdbuf();
}

TEST_F(ArrayTest, AStaleCopyOfAMemberIsFoundAndLeftOutUntilRebuilt) {
  make(4, 1);
  {
    auto a = open(paths_);
    a->set_write_floor(10);
    a->record_clean_unmount();
  }
  copy_file(paths_[2], dir_.path() + "/old-m2.img");  // member 2 as of write floor 10
  {
    auto a = open(paths_);
    EXPECT_EQ(a->member_state(2), MemberState::kActive) << "a clean unmount's copies are current";
    auto io = a->make_member_io().value();
    IoChannel ch(*a, *io);
    StripeData d = random_stripe(*a, 3, 40);  // new data member 2's copy lacks
    ASSERT_TRUE(a->write_stripe(ch, 3, d.buffer.data(), true));
    a->set_write_floor(41);
    a->set_write_floor(20);  // never lowered
    a->record_clean_unmount();
  }
  copy_file(dir_.path() + "/old-m2.img", paths_[2]);
  auto a = open(paths_);
  EXPECT_EQ(a->member_state(2), MemberState::kMissing) << "an old copy is not trusted";
  EXPECT_EQ(a->member_since(2), 10u) << "it holds the stripes below its own write floor";
  bool said = false;
  for (const std::string& w : a->warnings()) said |= w.find("stale") != std::string::npos;
  EXPECT_TRUE(said);
  a.reset();
  // Recorded: it stays out at the next open too, with what it holds.
  a = open(paths_);
  EXPECT_EQ(a->member_state(2), MemberState::kMissing);
  EXPECT_EQ(a->member_since(2), 10u);
}

TEST_F(ArrayTest, AMemberOneUpdateBehindIsNotStale) {
  // An update torn by a crash reaches some members and not others: one behind is not proof of a
  // stale copy. Here the newest superblock (sequence S+1, settled S) is on three members; the
  // fourth holds S.
  make(4, 1);
  {
    auto a = open(paths_);
    a->record_clean_unmount();
  }
  auto a = open(paths_);
  Superblock sb = a->superblock();
  a.reset();
  sb.settled_sequence = sb.sequence;
  sb.sequence++;
  for (uint32_t i : {0u, 1u, 3u}) {
    MemberFile f = MemberFile::open(paths_[i]).value();
    Superblock own = sb;
    own.member_index = i;
    own.member_bytes = f.size_bytes();
    ASSERT_TRUE(write_superblock(f.fd(), own));
  }
  a = open(paths_);
  EXPECT_EQ(a->member_state(2), MemberState::kActive);
  EXPECT_EQ(a->unavailable_count(), 0u);
}

TEST_F(ArrayTest, AMemberMissingAtOpenHoldsWhatWasBelowTheWriteFloor) {
  make(4, 1);
  {
    auto a = open(paths_);
    a->set_write_floor(33);
    a->record_clean_unmount();
  }
  const std::string away = dir_.path() + "/away.img";
  ASSERT_EQ(::rename(paths_[1].c_str(), away.c_str()), 0);
  {
    auto a = open(paths_);
    EXPECT_EQ(a->member_state(1), MemberState::kMissing);
    EXPECT_EQ(a->member_since(1), 33u);
    EXPECT_EQ(a->member_since(0), 0u) << "an active member has nothing to skip";
  }
  ASSERT_EQ(::rename(away.c_str(), paths_[1].c_str()), 0);
  auto a = open(paths_);
  EXPECT_EQ(a->member_state(1), MemberState::kMissing) << "back, but out of date";
  EXPECT_EQ(a->member_since(1), 33u);
}

TEST_F(ArrayTest, ReplaceMovesTheIndexToANewDeviceAndTheOldOneIsLeftOut) {
  make(4, 1);
  std::vector<StripeData> old;
  {
    auto a = open(paths_);
    auto io = a->make_member_io().value();
    IoChannel ch(*a, *io);
    for (uint64_t s = 0; s < 3; ++s) {
      old.push_back(random_stripe(*a, s, s + 1));
      ASSERT_TRUE(a->write_stripe(ch, s, old.back().buffer.data(), true));
    }
    // Refused: too small, one of the array's own devices, a raidfs member without force.
    const std::string tiny = dir_.image("tiny.img", 2 << 20);
    EXPECT_EQ(a->replace_member(1, tiny, false).error().code, ENOSPC);
    EXPECT_EQ(a->replace_member(1, paths_[3], false).error().code, EBUSY) << "in use: one of the array's";
    EXPECT_EQ(a->replace_member(9, tiny, false).error().code, EINVAL);
    EXPECT_EQ(a->member_state(1), MemberState::kActive) << "nothing changed on a refusal";

    const std::string fresh = dir_.image("new.img", kMemberBytes + (1 << 20));
    ASSERT_TRUE(a->replace_member(1, fresh, false));
    EXPECT_EQ(a->member_state(1), MemberState::kRebuilding);
    EXPECT_EQ(a->member_path(1), fresh);
    EXPECT_EQ(a->replace_member(2, dir_.image("new2.img", kMemberBytes), false).error().code, EBUSY)
        << "one at a time";
    // The MemberIo made before the replace follows it: reads reconstruct member 1's chunks
    // (not readable yet); a stripe written now goes to the new device.
    ReadReport report;
    expect_stripe(*a, ch, 0, old[0], &report);
    EXPECT_GT(report.reconstructed_blocks, 0u);
    ASSERT_TRUE(a->begin_rebuild(1, 10, 0));
    StripeData d = random_stripe(*a, 5, 10);
    ASSERT_TRUE(a->write_stripe(ch, 5, d.buffer.data(), true));
    expect_stripe(*a, ch, 5, d, &report);
    EXPECT_EQ(report.reconstructed_blocks, 0u) << "read back from the new device";
    // The new device holds member 1's chunk of stripe 5, written through the old MemberIo.
    const int nf = ::open(fresh.c_str(), O_RDONLY);  // the array holds its lock: not a MemberFile
    ASSERT_GE(nf, 0);
    const Geometry& g = a->geometry();
    const uint32_t slot = g.slot_of(5, 1);
    AlignedBuffer chunk(g.chunk_bytes());
    ASSERT_EQ(::pread(nf, chunk.data(), g.chunk_bytes(), static_cast<off_t>(g.row_offset(5))),
              static_cast<ssize_t>(g.chunk_bytes()));
    ::close(nf);
    EXPECT_EQ(0, memcmp(chunk.data(), d.buffer.data() + uint64_t{slot} * g.chunk_bytes(), g.chunk_bytes()));
  }
  // The old device still claims index 1 in its superblock, but the array moved on.
  auto a = open(paths_);
  EXPECT_EQ(a->member_state(1), MemberState::kMissing) << "the old device is not member 1 any more";
  bool said = false;
  for (const std::string& w : a->warnings()) said |= w.find("another device took its place") != std::string::npos;
  EXPECT_TRUE(said);
  a.reset();
  std::vector<std::string> with_new = paths_;
  with_new[1] = dir_.path() + "/new.img";
  a = open(with_new);
  EXPECT_EQ(a->member_state(1), MemberState::kRebuilding) << "the new device, still to be rebuilt";
  EXPECT_EQ(a->member_path(1), with_new[1]);
}

}  // namespace raidfs

namespace raidfs {
namespace {

// The metadata region of a self-contained array: blocks go to m+1 members, each copy reads back
// on its own, a member lost leaves the others readable, a failed member's copy is refused
// (ENXIO) rather than read, and a replacing member's copies are read only once restored.
TEST_F(ArrayTest, MetaRegionBlocksAreMirroredOnMPlusOneMembers) {
  paths_.clear();
  for (uint32_t i = 0; i < 5; ++i) paths_.push_back(dir_.image("r" + std::to_string(i), kMemberBytes));
  FormatOptions o;
  o.parity_count = 2;
  o.chunk_bytes = 16384;
  o.meta_region_bytes = 2 << 20;
  auto sb = Array::format(paths_, o);
  ASSERT_TRUE(sb) << sb.error().message;
  EXPECT_TRUE(sb->self_contained());
  EXPECT_EQ(sb->data_offset, kDataOffsetBytes + (2 << 20));
  auto a = open(paths_);
  ASSERT_TRUE(a && a->meta_region());
  const MetaRegion& region = *a->meta_region();
  EXPECT_EQ(region.copies(), 3u);
  EXPECT_EQ(region.row_count(), 2u * 5 / 3);
  auto io = a->make_member_io().value();
  IoChannel ch(*a, *io);

  AlignedBuffer blocks(8 * 4096), got(8 * 4096);
  for (size_t i = 0; i < blocks.size(); ++i) blocks.data()[i] = static_cast<uint8_t>(rng_());
  const uint64_t first = MetaRegion::kRowBlocks + 3;  // in the second row
  ASSERT_TRUE(a->write_meta(ch, first, 8, blocks.data()));
  for (uint32_t c = 0; c < 3; ++c) {
    std::memset(got.data(), 0, got.size());
    ASSERT_TRUE(a->read_meta(ch, first, 8, c, got.data()));
    EXPECT_EQ(0, std::memcmp(got.data(), blocks.data(), got.size())) << "copy " << c;
    // Each copy really is on its own member, where the layout says.
    const MetaRegion::Place at = region.place(first, c);
    int fd = ::open(paths_[at.member].c_str(), O_RDONLY);
    std::vector<uint8_t> raw(4096);
    ASSERT_EQ(::pread(fd, raw.data(), raw.size(), static_cast<off_t>(at.offset)), 4096);
    ::close(fd);
    EXPECT_EQ(0, std::memcmp(raw.data(), blocks.data(), 4096));
  }
  // A run across a row's end is refused: one I/O per copy covers one row.
  EXPECT_EQ(a->write_meta(ch, MetaRegion::kRowBlocks - 1, 2, blocks.data()).error().code, EINVAL);
  EXPECT_EQ(a->read_meta(ch, first, 1, 3, got.data()).error().code, EINVAL);

  // A failed member's copy is not read; the array goes on writing the others.
  const uint32_t lost = region.place(first, 1).member;
  a->mark_failed(lost, "test");
  EXPECT_FALSE(a->meta_copy_readable(first, 1));
  EXPECT_EQ(a->read_meta(ch, first, 8, 1, got.data()).error().code, ENXIO);
  ASSERT_TRUE(a->write_meta(ch, first, 8, blocks.data() + 4096 * 0));
  ASSERT_TRUE(a->read_meta(ch, first, 8, 2, got.data()));

  // Replaced: the new device's copy is written but not read until the metadata restored it.
  const std::string fresh = dir_.image("r-new", kMemberBytes);
  ASSERT_TRUE(a->replace_member(lost, fresh, false));
  EXPECT_FALSE(a->meta_copy_readable(first, 1));
  ASSERT_TRUE(a->write_meta_copy(ch, first, 8, 1, blocks.data()));
  a->set_meta_restored(lost);
  ASSERT_TRUE(a->meta_copy_readable(first, 1));
  ASSERT_TRUE(a->read_meta(ch, first, 8, 1, got.data()));
  EXPECT_EQ(0, std::memcmp(got.data(), blocks.data(), got.size()));

  // The region survives a reopen; an array with both a region and a directory is refused.
  a.reset();
  auto again = open(std::vector<std::string>{paths_[0], paths_[1], paths_[2], paths_[3], paths_[4]});
  ASSERT_TRUE(again && again->meta_region());
  EXPECT_EQ(again->meta_region()->offset(), kDataOffsetBytes);
  o.metadata_dir = "/somewhere";
  o.force = true;
  EXPECT_EQ(Array::format(paths_, o).error().code, EINVAL);
}

// Whole stripes with the parity their writer computed, several in one submission: each stripe's
// chunks land in its own row, data and parity where the layout puts them — every stripe reads
// back whole, also with m members gone. A stripe past the end is refused before anything is
// written.
TEST_F(ArrayTest, WriteStripesPutsEveryStripesDataAndParityInPlace) {
  make(6, 2);
  const std::vector<uint64_t> ids{3, 4, 9};
  std::vector<StripeData> stripes;
  {
    auto a = open(paths_);
    auto io = a->make_member_io().value();
    IoChannel ch(*a, *io);
    const Geometry& g = a->geometry();
    const auto blocks = static_cast<uint32_t>(g.stripe_data_bytes() / kBlockBytes);
    std::vector<AlignedBuffer> parities;
    std::vector<StripeWrite> writes;
    for (uint64_t id : ids) {
      stripes.push_back(random_stripe(*a, id, 2));
      parities.push_back(open_stripe_parity(*a, stripes.back(), blocks));
    }
    for (size_t i = 0; i < ids.size(); ++i)
      writes.push_back(StripeWrite{ids[i], stripes[i].buffer.data(), parities[i].data()});
    // A batch with one stripe past the end: refused whole, its good stripe not written either.
    const std::vector<StripeWrite> bad{
        writes[0], StripeWrite{g.stripe_count(), stripes[1].buffer.data(), parities[1].data()}};
    auto refused = a->write_stripes(ch, bad);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, EINVAL);
    AlignedBuffer chunk(g.chunk_bytes());
    const MemberAddress first = g.locate(ids[0], 0, 0);
    const int fd = ::open(paths_[first.member].c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    const ssize_t got = ::pread(fd, chunk.data(), g.chunk_bytes(), static_cast<off_t>(first.offset));
    ::close(fd);
    ASSERT_EQ(got, static_cast<ssize_t>(g.chunk_bytes()));
    EXPECT_TRUE(std::all_of(chunk.data(), chunk.data() + g.chunk_bytes(),
                            [](uint8_t b) { return b == 0; }))
        << "a stripe of a refused batch was written";
    ASSERT_TRUE(a->write_stripes(ch, writes));
    ASSERT_TRUE(a->flush(ch));
    for (size_t i = 0; i < ids.size(); ++i) expect_stripe(*a, ch, ids[i], stripes[i]);
  }
  const std::vector<std::string> without_1_and_4{paths_[0], paths_[2], paths_[3], paths_[5]};
  OpenOptions read_only;
  read_only.record_states = false;
  auto a = open(without_1_and_4, read_only);
  ASSERT_TRUE(a);
  auto io = a->make_member_io().value();
  IoChannel ch(*a, *io);
  for (size_t i = 0; i < ids.size(); ++i) {
    ReadReport report;
    expect_stripe(*a, ch, ids[i], stripes[i], &report);
    EXPECT_GT(report.reconstructed_blocks, 0u) << "stripe " << ids[i];
  }
}

}  // namespace
}  // namespace raidfs
