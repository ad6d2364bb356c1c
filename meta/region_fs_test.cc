// Goal: RegionFs keeps RocksDB's files in the metadata region as a filesystem must — every byte
// written reads back, across reopens; a synced byte survives a power cut, whatever the volatile
// caches lose; what a crash leaves of a file is a prefix of what was written to it; a bad or
// missing copy is read around and healed; space given back is never handed out again before its
// freeing is durable. Method: RegionFs over a MemoryRegionDevice (in-memory copies whose
// unflushed writes can be lost block by block), checked against a model of each file.
#include "meta/region_fs.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "meta/region_block.h"
#include "meta/region_test_device.h"

namespace raidfs::meta {
namespace {

using testing::MemoryRegionDevice;
constexpr uint32_t kSalt = 0x5eed;

std::vector<uint8_t> random_bytes(std::mt19937& rng, size_t n) {
  std::vector<uint8_t> out(n);
  for (auto& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

class RegionFsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    device_ = std::make_shared<MemoryRegionDevice>(8192, 3);  // 32 MiB, 3 copies
    ASSERT_TRUE(RegionFs::format(*device_, kSalt));
    reopen();
  }
  void reopen(bool read_only = false) {
    fs_.reset();
    auto fs = RegionFs::open(device_, kSalt, read_only);
    ASSERT_TRUE(fs) << fs.error().message;
    fs_ = std::move(*fs);
  }
  std::vector<uint8_t> read_all(const std::string& name) {
    auto reader = fs_->open_file(name);
    EXPECT_TRUE(reader) << reader.error().message;
    if (!reader) return {};
    std::vector<uint8_t> out((*reader)->size());
    auto n = (*reader)->read(0, out.size(), out.data());
    EXPECT_TRUE(n) << n.error().message;
    EXPECT_EQ(n.value_or(0), out.size());
    return out;
  }
  void write_file(const std::string& name, const std::vector<uint8_t>& data, bool sync = true) {
    auto w = fs_->create(name);
    ASSERT_TRUE(w) << w.error().message;
    ASSERT_TRUE((*w)->append(data));
    if (sync) {
      ASSERT_TRUE((*w)->sync());
    }
    ASSERT_TRUE((*w)->close());
  }

  std::shared_ptr<MemoryRegionDevice> device_;
  std::unique_ptr<RegionFs> fs_;
  std::mt19937 rng_{42};
};

TEST_F(RegionFsTest, FilesReadBackAcrossReopens) {
  std::map<std::string, std::vector<uint8_t>> model;
  for (size_t size : {0ul, 1ul, 4063ul, 4064ul, 4065ul, 100000ul, 3000000ul}) {
    const std::string name = "f" + std::to_string(size);
    model[name] = random_bytes(rng_, size);
    // Appended in pieces of every size, as RocksDB's writers do.
    auto w = fs_->create(name).value();
    for (size_t at = 0; at < size;) {
      const size_t n = std::min<size_t>(size - at, 1 + rng_() % 70000);
      ASSERT_TRUE(w->append({model[name].data() + at, n}));
      if (rng_() % 3 == 0) {
        ASSERT_TRUE(w->flush());
      }
      at += n;
    }
    ASSERT_TRUE(w->sync());
    ASSERT_TRUE(w->close());
  }
  for (const auto& [name, bytes] : model) EXPECT_EQ(read_all(name), bytes) << name;
  // Reads at every kind of offset.
  auto r = fs_->open_file("f3000000").value();
  std::vector<uint8_t> got(9000);
  for (uint64_t off : {0ul, 4063ul, 4064ul, 123457ul, 2999000ul}) {
    auto n = r->read(off, got.size(), got.data());
    ASSERT_TRUE(n);
    const size_t want = std::min<size_t>(got.size(), 3000000 - off);
    ASSERT_EQ(*n, want);
    EXPECT_EQ(0, std::memcmp(got.data(), model["f3000000"].data() + off, want)) << off;
  }
  reopen();
  EXPECT_EQ(fs_->list().size(), model.size());
  for (const auto& [name, bytes] : model) EXPECT_EQ(read_all(name), bytes) << name;
  // Read-only: same bytes, and nothing may change.
  reopen(/*read_only=*/true);
  for (const auto& [name, bytes] : model) EXPECT_EQ(read_all(name), bytes) << name;
  EXPECT_EQ(fs_->create("x").error().code, EROFS);
}

TEST_F(RegionFsTest, RenameRemoveAppendAndTruncate) {
  const auto a = random_bytes(rng_, 50000), b = random_bytes(rng_, 7000);
  write_file("CURRENT.tmp", a);
  write_file("CURRENT", b);
  ASSERT_TRUE(fs_->rename("CURRENT.tmp", "CURRENT"));  // replaces
  EXPECT_FALSE(fs_->exists("CURRENT.tmp"));
  EXPECT_EQ(read_all("CURRENT"), a);
  EXPECT_EQ(fs_->rename("nothing", "x").error().code, ENOENT);
  EXPECT_EQ(fs_->remove("nothing").error().code, ENOENT);

  // Reopened for appending: continues after its partial last block.
  auto w = fs_->append_to("CURRENT").value();
  ASSERT_TRUE(w->append(b));
  ASSERT_TRUE(w->sync());
  ASSERT_TRUE(w->close());
  std::vector<uint8_t> ab = a;
  ab.insert(ab.end(), b.begin(), b.end());
  EXPECT_EQ(read_all("CURRENT"), ab);

  ASSERT_TRUE(fs_->truncate("CURRENT", 10000));  // inside a block
  ab.resize(10000);
  EXPECT_EQ(read_all("CURRENT"), ab);
  ASSERT_TRUE(fs_->truncate("CURRENT", 8128));  // at a block's end
  ab.resize(8128);
  EXPECT_EQ(fs_->truncate("CURRENT", 9000).error().code, EINVAL);
  // Appending after a truncation writes over what was cut, in a fresh place.
  w = fs_->append_to("CURRENT").value();
  ASSERT_TRUE(w->append(b));
  ASSERT_TRUE(w->sync());
  ASSERT_TRUE(w->close());
  ab.insert(ab.end(), b.begin(), b.end());
  EXPECT_EQ(read_all("CURRENT"), ab);
  reopen();
  EXPECT_EQ(read_all("CURRENT"), ab);
  ASSERT_TRUE(fs_->remove("CURRENT"));
  EXPECT_TRUE(fs_->list().empty());
  reopen();
  EXPECT_TRUE(fs_->list().empty());
  const RegionFs::Usage u = fs_->usage();
  EXPECT_EQ(u.used_bytes, 0u);
  EXPECT_EQ(u.free_bytes + u.journal_bytes, u.bytes);
}

// A killed process: what was written (flushed to the device, not synced) is all there; of the
// rest, what filled whole blocks went out with them, the last partial block did not.
TEST_F(RegionFsTest, WrittenBytesSurviveTheProcessDying) {
  const auto data = random_bytes(rng_, 20000);
  auto w = fs_->create("000007.log").value();
  ASSERT_TRUE(w->append({data.data(), 15000}));
  ASSERT_TRUE(w->flush());
  ASSERT_TRUE(w->append({data.data() + 15000, 5000}));  // never flushed
  w->abandon();  // the process dies: no close
  reopen();
  const auto got = read_all("000007.log");
  EXPECT_EQ(got.size(), 4 * region::kPayloadBytes);
  EXPECT_TRUE(std::equal(got.begin(), got.end(), data.begin()));
}

// Power cuts: after each, every synced byte reads back and every file is a prefix of what was
// written to it; never garbage, never another file's bytes.
TEST_F(RegionFsTest, PowerCutsKeepSyncedBytesAndLeavePrefixes) {
  for (uint32_t round = 0; round < 40; ++round) {
    std::map<std::string, std::vector<uint8_t>> written;
    std::map<std::string, size_t> synced;
    for (const std::string& name : fs_->list()) {
      written[name] = read_all(name);
      synced[name] = written[name].size();
    }
    // A few files appended, synced now and then; some removed and created.
    for (int step = 0; step < 12; ++step) {
      const std::string name = "f" + std::to_string(rng_() % 6);
      if (rng_() % 5 == 0 && written.count(name)) {
        ASSERT_TRUE(fs_->remove(name));
        written.erase(name);
        synced.erase(name);
        continue;
      }
      const bool fresh = !written.count(name);
      auto w = fresh ? fs_->create(name) : fs_->append_to(name);
      ASSERT_TRUE(w) << w.error().message;
      const auto more = random_bytes(rng_, 1 + rng_() % 30000);
      ASSERT_TRUE((*w)->append(more));
      written[name].insert(written[name].end(), more.begin(), more.end());
      if (fresh) synced[name] = 0;
      if (rng_() % 2) {
        ASSERT_TRUE((*w)->sync());
        ASSERT_TRUE(fs_->sync_namespace());
        synced[name] = written[name].size();
      } else {
        ASSERT_TRUE((*w)->flush());
      }
      ASSERT_TRUE((*w)->close());
    }
    fs_.reset();
    device_->lose_power(round);
    reopen();
    for (const auto& [name, bytes] : written) {
      if (!fs_->exists(name)) {
        EXPECT_EQ(synced[name], 0u) << "round " << round << ": " << name << " lost with synced bytes";
        continue;
      }
      const auto got = read_all(name);
      EXPECT_GE(got.size(), synced[name]) << "round " << round << " " << name;
      ASSERT_LE(got.size(), bytes.size()) << "round " << round << " " << name;
      EXPECT_TRUE(std::equal(got.begin(), got.end(), bytes.begin())) << "round " << round << " " << name;
    }
  }
}

// RocksDB installs a new CURRENT by renaming a synced temporary file over it. A power cut at any
// point of the rename leaves one of the two under the name, never neither (the removal of the
// old file and the rename were once two journal batches: the first could survive alone).
TEST_F(RegionFsTest, ARenameOverAFileLeavesOneOfThemAtEveryPowerCut) {
  const std::vector<uint8_t> old_bytes = random_bytes(rng_, 100), new_bytes = random_bytes(rng_, 120);
  for (uint32_t round = 0; round < 64; ++round) {
    write_file("CURRENT", old_bytes);
    write_file("CURRENT.tmp", new_bytes);
    ASSERT_TRUE(fs_->sync_namespace());
    ASSERT_TRUE(fs_->rename("CURRENT.tmp", "CURRENT"));
    fs_.reset();
    device_->lose_power(round);
    reopen();
    ASSERT_TRUE(fs_->exists("CURRENT")) << "round " << round << ": no CURRENT after the cut";
    const auto got = read_all("CURRENT");
    EXPECT_TRUE(got == old_bytes || got == new_bytes) << "round " << round;
    ASSERT_TRUE(fs_->remove("CURRENT"));
    if (fs_->exists("CURRENT.tmp")) {
      ASSERT_TRUE(fs_->remove("CURRENT.tmp"));
    }
    ASSERT_TRUE(fs_->sync_namespace());
  }
}

// A crash can take an extent's journal record and keep the blocks written into it. The next
// open must not hand out the same place with the same allocation number: a file written there
// would take the dead file's blocks past its own end as its own (they name the same owner,
// allocation and the next index).
TEST_F(RegionFsTest, BlocksOfAFileTheJournalLostAreNeverTakenForALaterOne) {
  const uint64_t journal_blocks = 2 * region::Journal::area_blocks_for(device_->block_count());
  std::vector<std::vector<uint8_t>> journal(device_->copy_count());
  for (uint32_t c = 0; c < device_->copy_count(); ++c)
    journal[c].assign(device_->raw(c, 0), device_->raw(c, 0) + journal_blocks * region::kBlockBytes);
  {
    auto w = fs_->create("a");
    ASSERT_TRUE(w) << w.error().message;
    ASSERT_TRUE((*w)->append(random_bytes(rng_, 3 * region::kPayloadBytes)));
    (*w)->abandon();
  }
  fs_.reset();
  // The journal as it was: "a" and its extent never recorded; its blocks stay.
  for (uint32_t c = 0; c < device_->copy_count(); ++c)
    std::memcpy(device_->raw(c, 0), journal[c].data(), journal[c].size());
  reopen();
  const auto bytes = random_bytes(rng_, region::kPayloadBytes);  // ends on a block boundary
  {
    auto w = fs_->create("b");
    ASSERT_TRUE(w) << w.error().message;
    ASSERT_TRUE((*w)->append(bytes));
    ASSERT_TRUE((*w)->sync());
    (*w)->abandon();  // killed before its close trims the extent
  }
  reopen();
  EXPECT_EQ(fs_->file_size("b").value_or(0), bytes.size());
  EXPECT_EQ(read_all("b"), bytes);
}

// A removed file's space is not reused until the removal is durable: when the power takes the
// removal away, the file is back whole, its blocks untouched by the file written since.
TEST_F(RegionFsTest, FreedSpaceIsReusedOnlyOnceItsFreeingIsDurable) {
  const auto old_bytes = random_bytes(rng_, 6 << 20);
  write_file("old", old_bytes);
  ASSERT_TRUE(fs_->sync_namespace());
  ASSERT_TRUE(fs_->remove("old"));  // the record is written, not flushed
  auto w = fs_->create("new").value();
  const auto new_bytes = random_bytes(rng_, 20 << 20);  // needs most of the region
  ASSERT_TRUE(w->append(new_bytes));
  ASSERT_TRUE(w->flush());
  w->abandon();
  w.reset();
  fs_.reset();
  // Every unflushed block of every copy lost: the removal with it.
  device_->lose_power(7, /*all=*/true);
  reopen();
  ASSERT_TRUE(fs_->exists("old"));
  EXPECT_EQ(read_all("old"), old_bytes);
  EXPECT_FALSE(fs_->exists("new"));
}

TEST_F(RegionFsTest, ABadCopyIsReadAroundAndHealed) {
  const auto data = random_bytes(rng_, 40000);
  write_file("sst", data);
  reopen();
  // Find the file's first block: the first data block in use after the journal areas.
  auto usage = fs_->usage();
  const uint64_t first = usage.journal_bytes / 4096;
  region::BlockHeader h;
  ASSERT_TRUE(region::open_block(device_->raw(0, first), kSalt, &h));
  std::memset(device_->raw(0, first) + 100, 0xAB, 50);      // copy 0 corrupt
  std::memset(device_->raw(0, first + 2), 0, 4096);          // another block's copy 0 zeroed
  device_->set_readable(2, false);                           // copy 2 missing
  EXPECT_EQ(read_all("sst"), data);
  EXPECT_GE(fs_->usage().healed_copies, 2u);
  EXPECT_TRUE(region::open_block(device_->raw(0, first), kSalt, &h)) << "copy 0 healed";
  EXPECT_TRUE(region::open_block(device_->raw(0, first + 2), kSalt, &h)) << "copy 0 healed";
  // Both others bad too: an error, never wrong bytes.
  std::memset(device_->raw(0, first + 1), 1, 4096);
  std::memset(device_->raw(1, first + 1), 2, 4096);
  auto r = fs_->open_file("sst").value();
  std::vector<uint8_t> got(data.size());
  EXPECT_EQ(r->read(0, got.size(), got.data()).error().code, EIO);
}

TEST_F(RegionFsTest, ScrubRepairsBadCopiesAndRestoresARebuiltOne) {
  write_file("a", random_bytes(rng_, 100000));
  write_file("b", random_bytes(rng_, 5000));
  ASSERT_TRUE(fs_->sync_namespace());
  auto clean = fs_->scrub(false).value();
  EXPECT_EQ(clean.bad_copies, 0u);
  EXPECT_EQ(clean.lost_blocks, 0u);
  EXPECT_GT(clean.blocks, 25u);
  const uint64_t first = fs_->usage().journal_bytes / 4096;
  std::memset(device_->raw(2, first + 3), 7, 4096);
  std::memset(device_->raw(0, 0), 7, 4096);  // a journal block's copy
  auto found = fs_->scrub(false).value();
  EXPECT_EQ(found.bad_copies, 1u);
  EXPECT_EQ(found.behind_copies, 1u) << "a journal copy: what a crash leaves, not counted bad";
  EXPECT_FALSE(found.problems.empty());
  auto fixed = fs_->scrub(true).value();
  EXPECT_EQ(fixed.repaired, 2u);
  EXPECT_EQ(fs_->scrub(false).value().bad_copies, 0u);

  // A member replaced: its copy is blank and cannot be read yet, but takes writes. The repair
  // fills it; then it reads as the others.
  for (uint64_t b = 0; b < device_->block_count(); ++b) std::memset(device_->raw(1, b), 0, 4096);
  device_->set_readable(1, false);
  auto restore = fs_->scrub(true).value();
  EXPECT_EQ(restore.restored, restore.blocks);
  device_->set_readable(1, true);
  device_->set_readable(0, false);
  device_->set_readable(2, false);
  reopen();
  EXPECT_EQ(read_all("b").size(), 5000u);
  EXPECT_EQ(fs_->scrub(false).value().lost_blocks, 0u);
}

// Many namespace changes fill the journal's area: it rolls into the other, and a reopen finds
// the same state; a roll torn before its snapshot is durable leaves the older area in charge.
TEST_F(RegionFsTest, TheJournalRollsAndSurvivesATornRoll) {
  std::map<std::string, std::vector<uint8_t>> model;
  for (int i = 0; i < 3000; ++i) {
    const std::string name = "t" + std::to_string(i % 40);
    if (model.count(name) && i % 3 == 0) {
      ASSERT_TRUE(fs_->remove(name));
      model.erase(name);
    } else {
      model[name] = random_bytes(rng_, 10 + rng_() % 9000);
      write_file(name, model[name]);
    }
    if (i % 500 == 499) {
      fs_.reset();
      device_->lose_power(i);  // everything was synced: nothing to lose
      reopen();
    }
  }
  reopen();
  ASSERT_EQ(fs_->list().size(), model.size());
  for (const auto& [name, bytes] : model) EXPECT_EQ(read_all(name), bytes) << name;
}

TEST_F(RegionFsTest, AnotherArraysRegionIsNotReadAsThis) {
  write_file("x", random_bytes(rng_, 100));
  fs_.reset();
  EXPECT_EQ(RegionFs::open(device_, kSalt + 1, false).error().code, EUCLEAN);
  auto blank = std::make_shared<MemoryRegionDevice>(8192, 3);
  EXPECT_EQ(RegionFs::open(blank, kSalt, false).error().code, EUCLEAN);
  auto tiny = std::make_shared<MemoryRegionDevice>(128, 3);
  EXPECT_EQ(RegionFs::format(*tiny, kSalt).error().code, ENOSPC);
}

TEST_F(RegionFsTest, AFullRegionSaysENOSPC) {
  auto w = fs_->create("big").value();
  const auto chunk = random_bytes(rng_, 1 << 20);
  Result<void> r;
  for (int i = 0; i < 64 && r; ++i) r = w->append(chunk);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ENOSPC);
  w.reset();
  ASSERT_TRUE(fs_->remove("big"));
  ASSERT_TRUE(fs_->sync_namespace());
  write_file("after", random_bytes(rng_, 10 << 20));
}

}  // namespace
}  // namespace raidfs::meta
