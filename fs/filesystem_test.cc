// Filesystem on real member images and a real metadata database: the write path (open stripes,
// partial flushes, seals), the read path (pending + committed, holes, degraded, corrupt blocks
// healed), space, and recovery of stripes left open by a crash.
#include "fs/filesystem.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>

#include "fs/array_spec.h"
#include "fs/fsck.h"
#include "raid/fault_injecting_io.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_array.h"
#include "tests/support/write_gate.h"

namespace raidfs::fs {
namespace {

using testing::GatedIo;
using testing::random_bytes;
using testing::WriteGate;

class FilesystemTest : public ::testing::Test {
 protected:
  static constexpr uint32_t kChunk = 16384;

  void format(uint32_t members, uint32_t parity, uint64_t member_bytes) {
    auto made = testing::make_test_array(dir_, members, parity, kChunk, member_bytes);
    ASSERT_TRUE(made) << made.error().message;
    paths_ = made->paths;
    mount();
  }

  void mount(bool read_only = false) {
    fs_.reset();
    ctx_.reset();
    auto opened = open_array(dir_.file("meta"));  // make_test_array's metadata directory
    ASSERT_TRUE(opened) << opened.error().message;
    FilesystemOptions options = options_;
    options.read_only = read_only;
    auto fs = Filesystem::open(std::move(opened->array), std::move(opened->meta), options);
    ASSERT_TRUE(fs) << fs.error().message;
    fs_ = std::move(*fs);
    auto ctx = fs_->make_io_context();
    ASSERT_TRUE(ctx);
    ctx_ = std::move(*ctx);
  }
  // A clean unmount: everything sealed and synced.
  void remount() {
    ASSERT_TRUE(fs_->sync_all(*ctx_));
    mount();
  }
  // The daemon dies: nothing more is written (open stripes stay open in the metadata).
  void crash_and_mount() { mount(); }

  uint64_t create(const std::string& name) {
    auto inode = fs_->create(meta::kRootIno, name, 0644, {});
    EXPECT_TRUE(inode) << inode.error().message;
    return inode ? inode->ino : 0;
  }
  void write(uint64_t ino, uint64_t offset, const std::vector<uint8_t>& data) {
    auto n = fs_->write(*ctx_, ino, offset, data);
    ASSERT_TRUE(n) << n.error().message;
    ASSERT_EQ(*n, data.size());
  }
  std::vector<uint8_t> read(uint64_t ino, uint64_t offset, size_t size) {
    AlignedBuffer buf(size + 4096);
    auto n = fs_->read(*ctx_, ino, offset, size, buf.data());
    EXPECT_TRUE(n) << n.error().message;
    if (!n) return {};
    return {buf.data(), buf.data() + *n};
  }
  uint64_t ino_of(const std::string& name) {
    auto inode = fs_->lookup(meta::kRootIno, name);
    EXPECT_TRUE(inode) << name << ": " << inode.error().message;
    return inode ? inode->ino : 0;
  }
  void remove_member(uint32_t i) { ASSERT_EQ(::rename(paths_[i].c_str(), (paths_[i] + ".gone").c_str()), 0); }

  testing::TempDir dir_;
  std::vector<std::string> paths_;
  FilesystemOptions options_;  // what mount() opens with (read_only aside)
  std::unique_ptr<Filesystem> fs_;
  std::unique_ptr<IoContext> ctx_;
};

TEST_F(FilesystemTest, FilesOfManySizesReadBackBeforeAndAfterRemount) {
  format(6, 2, 16 << 20);
  const uint64_t stripe = 4 * kChunk;
  const std::vector<size_t> sizes{0, 1, 4095, 4096, 4097, kChunk - 1, kChunk + 1, stripe - 1,
                                  stripe + 1, 3 * stripe + 12345};
  std::vector<std::vector<uint8_t>> contents;
  for (size_t i = 0; i < sizes.size(); ++i) {
    contents.push_back(random_bytes(sizes[i], static_cast<uint32_t>(i)));
    const uint64_t ino = create("f" + std::to_string(i));
    // In pieces of odd sizes, as a program writing through a small buffer would.
    for (size_t off = 0; off < sizes[i]; off += 7000) {
      std::vector<uint8_t> piece(contents[i].begin() + off,
                                 contents[i].begin() + std::min(sizes[i], off + 7000));
      write(ino, off, piece);
    }
  }
  auto check = [&] {
    for (size_t i = 0; i < sizes.size(); ++i) {
      const uint64_t ino = ino_of("f" + std::to_string(i));
      EXPECT_EQ(fs_->getattr(ino)->size, sizes[i]);
      EXPECT_EQ(read(ino, 0, sizes[i] + 100), contents[i]) << "file " << i;
      if (sizes[i] > 5000) {  // an unaligned read in the middle
        std::vector<uint8_t> mid(contents[i].begin() + 1234, contents[i].begin() + 4999);
        EXPECT_EQ(read(ino, 1234, 4999 - 1234), mid);
      }
    }
  };
  check();
  EXPECT_GT(fs_->stats().stripes_sealed, 0u) << "files larger than a stripe seal stripes";
  remount();
  check();
}

TEST_F(FilesystemTest, OverwritesAreCopyOnWriteAndReadBackRight) {
  format(4, 1, 16 << 20);
  const uint64_t ino = create("f");
  auto data = random_bytes(200000, 1);
  write(ino, 0, data);
  ASSERT_TRUE(fs_->fsync(*ctx_, ino));
  auto patch = random_bytes(10000, 2);
  write(ino, 5000, patch);
  std::copy(patch.begin(), patch.end(), data.begin() + 5000);
  EXPECT_EQ(read(ino, 0, data.size()), data);
  ASSERT_TRUE(fs_->fsync(*ctx_, ino));
  EXPECT_EQ(read(ino, 0, data.size()), data);
  remount();
  EXPECT_EQ(read(ino, 0, data.size()), data);
}

class CrashTest : public FilesystemTest, public ::testing::WithParamInterface<uint32_t> {};

TEST_P(CrashTest, FsyncedDataSurvivesACrashAndTheLossOfParityCountMembers) {
  {
    const uint32_t parity = GetParam();
    format(5, parity, 16 << 20);
    const uint64_t a = create("a"), b = create("b");
    auto da = random_bytes(30000, 3), db = random_bytes(5000, 4);
    write(a, 0, da);
    ASSERT_TRUE(fs_->fsync(*ctx_, a));  // partial stripe: parity rows go to the metadata
    write(b, 0, db);
    ASSERT_TRUE(fs_->fsync(*ctx_, b));  // the same stripe, further filled
    write(a, 30000, random_bytes(777, 5));  // never fsynced: may be lost, must not corrupt
    EXPECT_EQ(fs_->stats().partial_flushes, 2u);
    crash_and_mount();  // the open stripe is sealed at mount
    EXPECT_EQ(read(a, 0, da.size()), da);
    EXPECT_EQ(read(b, 0, db.size()), db);
    fs_.reset();
    for (uint32_t i = 0; i < parity; ++i) remove_member(i);
    mount();
    EXPECT_EQ(read(a, 0, da.size()), da);
    EXPECT_EQ(read(b, 0, db.size()), db);
    EXPECT_GT(fs_->stats().reconstructed_blocks, 0u);
  }
}
INSTANTIATE_TEST_SUITE_P(Raid5And6, CrashTest, ::testing::Values(1u, 2u));

TEST_F(FilesystemTest, AnOpenStripeReadsDegradedThroughItsMetadataParity) {
  format(4, 1, 16 << 20);
  const uint64_t a = create("a");
  auto da = random_bytes(20000, 6);
  write(a, 0, da);
  ASSERT_TRUE(fs_->fsync(*ctx_, a));
  fs_.reset();
  remove_member(0);
  mount(/*read_only=*/true);  // read-only: the stripe stays open, its parity only in metadata
  EXPECT_EQ(fs_->meta().open_stripes().size(), 1u);
  EXPECT_EQ(read(a, 0, da.size()), da);
  EXPECT_GT(fs_->stats().reconstructed_blocks, 0u);
}

// One block per fsync: each flush commits the parity of the one row it changed (store format 5),
// the rows of earlier flushes stay as committed, and after a crash the open stripe reads back
// with two members gone (RAID6) — every row's parity, old and new, is right.
TEST_F(FilesystemTest, FsyncsOfSingleBlocksKeepEveryRowsParityForADegradedRead) {
  format(6, 2, 16 << 20);  // 4 data chunks of 16 KiB: 4 rows, 16 blocks a stripe
  const uint64_t a = create("a");
  std::vector<uint8_t> all;
  auto raw_rows = [&] {
    size_t n = 0;
    EXPECT_TRUE(fs_->meta().store().scan(meta::Family::kParityRows, "", "",
                                         [&](std::string_view, std::string_view) -> Result<bool> {
                                           ++n;
                                           return true;
                                         }));
    return n;
  };
  for (uint32_t b = 0; b < 11; ++b) {  // through chunks 0, 1 and into 2: rows rewritten
    auto block = random_bytes(4096, 100 + b);
    write(a, uint64_t{b} * 4096, block);
    ASSERT_TRUE(fs_->fsync(*ctx_, a));
    all.insert(all.end(), block.begin(), block.end());
    EXPECT_EQ(raw_rows(), std::min<size_t>(b + 1, 4)) << "after block " << b;
  }
  const auto open = fs_->meta().open_stripes();
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(fs_->meta().get_stripe(open[0]).value().parity_rows.size(), 4u);
  fs_.reset();
  remove_member(1);
  remove_member(2);
  mount(/*read_only=*/true);
  EXPECT_EQ(read(a, 0, all.size()), all);
  EXPECT_GT(fs_->stats().reconstructed_blocks, 0u);
  fs_.reset();
  ASSERT_EQ(::rename((paths_[1] + ".gone").c_str(), paths_[1].c_str()), 0);
  ASSERT_EQ(::rename((paths_[2] + ".gone").c_str(), paths_[2].c_str()), 0);
  crash_and_mount();  // seals the stripe left open: its rows go with it
  EXPECT_EQ(raw_rows(), 0u);
  EXPECT_EQ(read(a, 0, all.size()), all);
}

// A stripe a crash left open, with a row beyond repair (a member gone and a block of the same row
// scribbled, RAID5): the read-write mount still succeeds; only the file ranges on that row answer
// EIO, the rest of the file and the rest of the array work, and status says what happened.
TEST_F(FilesystemTest, AnOpenStripeThatCannotBeSealedDoesNotBlockTheMount) {
  format(4, 1, 16 << 20);
  const uint64_t a = create("a");
  auto da = random_bytes(5 * 4096, 15);  // blocks 0-3 in data chunk 0, block 4 in chunk 1 (row 0)
  write(a, 0, da);
  ASSERT_TRUE(fs_->fsync(*ctx_, a));
  auto maps = fs_->meta().map_range(a, 0, da.size());
  ASSERT_TRUE(maps && !maps->empty());
  const uint64_t stripe = maps->front().stripe_id;
  const Geometry g = fs_->array().geometry();
  const MemberAddress block0 = g.locate(stripe, 0, 0);
  const uint32_t chunk1_member = g.locate(stripe, 1, 0).member;
  fs_.reset();  // the daemon dies: the stripe stays open, its parity in the metadata
  ctx_.reset();
  int fd = ::open(paths_[block0.member].c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  auto junk = random_bytes(4096, 16);
  ASSERT_EQ(::pwrite(fd, junk.data(), 4096, static_cast<off_t>(block0.offset)), 4096);
  ::close(fd);
  remove_member(chunk1_member);
  mount();  // read-write
  EXPECT_EQ(fs_->meta().open_stripes().size(), 1u) << "left open, not sealed with bad data";
  AlignedBuffer buf(8192);
  auto lost = fs_->read(*ctx_, a, 0, 4096, buf.data());
  ASSERT_FALSE(lost);
  EXPECT_EQ(lost.error().code, EIO);
  std::vector<uint8_t> middle(da.begin() + 4096, da.begin() + 4 * 4096);
  EXPECT_EQ(read(a, 4096, 3 * 4096), middle) << "rows that can still be read are read";
  const uint64_t b = create("b");
  auto db = random_bytes(100000, 17);
  write(b, 0, db);
  ASSERT_TRUE(fs_->fsync(*ctx_, b));
  EXPECT_EQ(read(b, 0, db.size()), db);
  auto text = fs_->get_xattr(meta::kRootIno, Filesystem::kStatusXattr);
  ASSERT_TRUE(text);
  EXPECT_NE(text->find("cannot be sealed"), std::string::npos) << *text;
  // fsck names the lost blocks (it cannot repair them: the row lost two chunks).
  fs_.reset();
  ctx_.reset();
  std::vector<std::string> lines;
  FsckOptions fo;
  fo.output = [&](const std::string& line) { lines.push_back(line); };
  auto summary = run_fsck(dir_.file("meta"), fo);
  ASSERT_TRUE(summary) << summary.error().message;
  EXPECT_GE(summary->blocks_lost, 1u);
  EXPECT_GT(summary->problems_left, 0u);
  bool named = false;
  for (const std::string& line : lines) named |= line.find("/a") != std::string::npos;
  EXPECT_TRUE(named) << "fsck names the file whose blocks are lost";
}

TEST_F(FilesystemTest, CorruptBlocksAreRebuiltCountedAndHealed) {
  format(4, 1, 16 << 20);
  const uint64_t a = create("a");
  auto da = random_bytes(3 * 3 * kChunk, 7);  // three full stripes
  write(a, 0, da);
  remount();
  // Scribble over the first block of stripes 0..2 on member 0 (data in two of them, parity in
  // one: left-symmetric rotation).
  int fd = ::open(paths_[0].c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  for (uint64_t s = 0; s < 3; ++s) {
    auto junk = random_bytes(4096, static_cast<uint32_t>(8 + s));
    ASSERT_EQ(::pwrite(fd, junk.data(), junk.size(), kDataOffsetBytes + s * kChunk), 4096);
  }
  ::close(fd);
  mount();
  EXPECT_EQ(read(a, 0, da.size()), da);
  const FilesystemStats s = fs_->stats();
  EXPECT_GT(s.corrupt_blocks, 0u);
  EXPECT_EQ(s.healed_blocks, s.corrupt_blocks);
  mount();
  EXPECT_EQ(read(a, 0, da.size()), da);
  EXPECT_EQ(fs_->stats().corrupt_blocks, 0u) << "healed blocks read clean";
}

// A 4 KiB read of one of two corrupt blocks in a RAID6 row rebuilds both (the row needs both
// erasures solved); the other one lies outside the read. It is healed from its own verified
// rebuild, never from memory around the read's buffer (under ASan an overrun would abort here).
TEST_F(FilesystemTest, ACorruptNeighbourOutsideTheReadIsHealedFromItsOwnRebuild) {
  format(6, 2, 16 << 20);
  const uint64_t a = create("a");
  auto da = random_bytes(4 * kChunk, 12);  // one full stripe
  write(a, 0, da);
  remount();
  auto maps = fs_->meta().map_range(a, 0, da.size());
  ASSERT_TRUE(maps && maps->size() == 1 && !maps->front().hole);
  const uint64_t stripe = maps->front().stripe_id;
  const Geometry g = fs_->array().geometry();
  // Row 1 of data chunks 0 and 2: stripe data blocks 1 and 2 * 4 + 1 (4 blocks a chunk).
  for (uint32_t chunk : {0u, 2u}) {
    const MemberAddress at = g.locate(stripe, chunk, 4096);
    int fd = ::open(paths_[at.member].c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    auto junk = random_bytes(4096, 100 + chunk);
    ASSERT_EQ(::pwrite(fd, junk.data(), junk.size(), static_cast<off_t>(at.offset)), 4096);
    ::close(fd);
  }
  mount();
  // A small destination, so that healing from "dest + block * 4 KiB" would overrun it.
  AlignedBuffer buf(4096);
  auto n = fs_->read(*ctx_, a, 4096, 4096, buf.data());
  ASSERT_TRUE(n) << n.error().message;
  ASSERT_EQ(*n, 4096u);
  EXPECT_EQ(std::memcmp(buf.data(), da.data() + 4096, 4096), 0);
  EXPECT_EQ(fs_->stats().corrupt_blocks, 2u) << "the read's block and its neighbour";
  EXPECT_EQ(fs_->stats().healed_blocks, 2u);
  // Both rewritten with the right bytes: a fresh mount reads the stripe clean, and fsck agrees.
  mount();
  EXPECT_EQ(read(a, 0, da.size()), da);
  EXPECT_EQ(fs_->stats().corrupt_blocks, 0u);
  EXPECT_EQ(fs_->stats().reconstructed_blocks, 0u);
  fs_.reset();
  ctx_.reset();
  FsckOptions fo;
  fo.output = [](const std::string& line) { std::fprintf(stderr, "fsck: %s\n", line.c_str()); };
  auto summary = run_fsck(dir_.file("meta"), fo);
  ASSERT_TRUE(summary) << summary.error().message;
  EXPECT_EQ(summary->problems_found, 0u);
  EXPECT_EQ(summary->blocks_rebuilt, 0u);
}

TEST_F(FilesystemTest, FullArrayGivesEnospcKeepsDataAndFreesSpaceOnDelete) {
  format(3, 1, 4 << 20);  // a small array
  const uint64_t keep = create("keep");
  auto dk = random_bytes(100000, 9);
  write(keep, 0, dk);
  ASSERT_TRUE(fs_->fsync(*ctx_, keep));
  const uint64_t fill = create("fill");
  auto chunk = random_bytes(1 << 16, 10);
  uint64_t off = 0;
  for (;;) {
    auto n = fs_->write(*ctx_, fill, off, chunk);
    if (!n) {
      EXPECT_EQ(n.error().code, ENOSPC) << n.error().message;
      break;
    }
    off += *n;
    if (*n < chunk.size()) continue;
    ASSERT_LT(off, uint64_t{64} << 20) << "never filled";
  }
  EXPECT_LT(fs_->statfs().blocks_free, 16u);
  EXPECT_EQ(read(keep, 0, dk.size()), dk);
  ASSERT_TRUE(fs_->unlink(meta::kRootIno, "fill"));
  EXPECT_LT(fs_->statfs().blocks_free, 16u) << "still open: its space is still in use";
  ASSERT_TRUE(fs_->release(fill, true));
  ASSERT_TRUE(fs_->sync_all(*ctx_));
  EXPECT_GT(fs_->statfs().blocks_free, fs_->statfs().blocks / 2);
  const uint64_t again = create("again");
  auto d2 = random_bytes(1 << 20, 11);
  write(again, 0, d2);
  remount();
  EXPECT_EQ(read(ino_of("again"), 0, d2.size()), d2);
  EXPECT_EQ(read(ino_of("keep"), 0, dk.size()), dk);
}

// The cleaner: 4 KiB random overwrites of a file holding 70% of the array, three times the
// capacity in all. Without the cleaner the array fills with dead blocks and refuses a write;
// with it every write succeeds while the background cleaner races the overwrites, every byte
// reads back (also by readers running while clean_all moves the file), df's used space is the
// live data, and fsck finds nothing wrong.
TEST_F(FilesystemTest, TheCleanerGivesBackTheSpaceOfOverwrites) {
  options_.cleaner = false;
  format(6, 2, 4 << 20);
  const uint64_t capacity = fs_->statfs().blocks * 4096;
  const uint64_t size = capacity * 7 / 10 / 4096 * 4096;
  const uint64_t ino = create("db");
  std::vector<uint8_t> ref = random_bytes(size, 1);
  for (uint64_t off = 0; off < size; off += 1 << 20)
    write(ino, off, {ref.begin() + off, ref.begin() + std::min(size, off + (1 << 20))});
  ASSERT_TRUE(fs_->fsync(*ctx_, ino));

  std::mt19937_64 rng(7);
  uint64_t written = 0, n = 0;
  // One 4 KiB overwrite of a random block, into `ref` too; an fsync every 64 (a database).
  auto overwrite = [&]() -> Result<size_t> {
    const uint64_t off = rng() % (size / 4096) * 4096;
    std::vector<uint8_t> block = random_bytes(4096, static_cast<uint32_t>(rng()));
    RAIDFS_TRY(size_t done, fs_->write(*ctx_, ino, off, block));
    std::copy(block.begin(), block.end(), ref.begin() + off);
    written += done;
    if (++n % 64 == 0) RAIDFS_CHECK(fs_->fsync(*ctx_, ino));
    return done;
  };
  // Without the cleaner: full of dead blocks well before 3x the capacity.
  bool refused = false;
  while (written < 3 * capacity && !refused) {
    auto r = overwrite();
    if (!r) {
      EXPECT_EQ(r.error().code, ENOSPC) << r.error().message;
      refused = true;
    }
  }
  EXPECT_TRUE(refused) << "overwrites never filled an array without a cleaner";
  EXPECT_LT(written, capacity);

  options_.cleaner = true;
  remount();
  written = 0;
  while (written < 3 * capacity) {
    auto r = overwrite();
    ASSERT_TRUE(r) << "after " << written << " bytes: " << r.error().message;
  }
  ASSERT_TRUE(fs_->fsync(*ctx_, ino));
  ASSERT_EQ(read(ino, 0, size), ref);
  auto json = fs_->status_json();
  EXPECT_EQ(json.find("\"stripes_cleaned\": 0,"), std::string::npos) << json;
  // The moved data went to stripes of the cleaner's own, written whole (the overwrites, 4 KiB
  // each, never are): hot and cold data apart. Only a pass's last partial stripe goes through
  // the open stripe.
  const size_t at = json.find("\"bytes_moved\": ");
  ASSERT_NE(at, std::string::npos);
  const uint64_t moved = std::strtoull(json.c_str() + at + 15, nullptr, 10);
  EXPECT_GT(moved, 0u);
  EXPECT_GE(fs_->stats().bytes_direct_write * 2, moved)
      << "of " << moved << " bytes moved, " << fs_->stats().bytes_direct_write << " in whole stripes";
  if (getenv("RAIDFS_TEST_VERBOSE")) std::fprintf(stderr, "%s\n", fs_->status_text().c_str());

  // Readers while everything with dead space is cleaned.
  std::atomic<bool> done{false};
  std::atomic<uint64_t> bad{0}, reads{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&, t] {
      auto ctx = fs_->make_io_context();
      ASSERT_TRUE(ctx);
      std::mt19937_64 r(100 + t);
      AlignedBuffer buf(1 << 17);
      while (!done || reads < 50) {
        const uint64_t off = r() % (size - (1 << 16));
        const size_t len = 1 + r() % (1 << 16);
        auto got = fs_->read(**ctx, ino, off, len, buf.data());
        if (!got || *got != len || std::memcmp(buf.data(), ref.data() + off, len) != 0) ++bad;
        ++reads;
      }
    });
  }
  auto cleaned = fs_->control({}, "clean");
  done = true;
  for (auto& t : readers) t.join();
  ASSERT_TRUE(cleaned) << cleaned.error().message;
  EXPECT_EQ(bad.load(), 0u) << "of " << reads.load() << " reads during cleaning";
  // Used space is the live data (some stripes stay partly dead: under the background's
  // threshold, or the one being filled).
  const FsStatfs st = fs_->statfs();
  const uint64_t used = (st.blocks - st.blocks_free) * 4096;
  EXPECT_LT(used, size + capacity / 8) << "used " << used << " for " << size << " live";
  remount();
  EXPECT_EQ(read(ino_of("db"), 0, size), ref);
  fs_.reset();
  ctx_.reset();
  auto summary = run_fsck(dir_.file("meta"), FsckOptions{});
  ASSERT_TRUE(summary) << summary.error().message;
  EXPECT_EQ(summary->problems_found, 0u);
}

// The cleaner reads a victim in one request; where that fails — here a dead block that parity
// cannot rebuild (two members gone, and the block corrupt) — it reads the live extents one by
// one, so a victim whose live data can all be read is still moved and freed.
TEST_F(FilesystemTest, TheCleanerMovesAVictimWhoseDeadBlocksCannotBeRead) {
  options_.cleaner = false;
  format(6, 2, 16 << 20);
  const uint64_t stripe_bytes = 4 * kChunk;  // 16 blocks: block b in data chunk b / 4, row b % 4
  const uint64_t ino = create("f");
  std::vector<uint8_t> ref = random_bytes(4 * stripe_bytes, 1);
  write(ino, 0, ref);
  ASSERT_TRUE(fs_->fsync(*ctx_, ino));
  auto maps = fs_->meta().map_range(ino, 0, 4096);
  ASSERT_TRUE(maps && !maps->empty());
  const uint64_t victim = maps->front().stripe_id;
  // Row 1 of the victim dies: its blocks 1, 5, 9 and 13 overwritten.
  for (uint32_t b : {1u, 5u, 9u, 13u}) {
    auto block = random_bytes(4096, 100 + b);
    write(ino, uint64_t{b} * 4096, block);
    std::copy(block.begin(), block.end(), ref.begin() + uint64_t{b} * 4096);
  }
  ASSERT_TRUE(fs_->sync_all(*ctx_));
  const meta::Stripe before = fs_->meta().get_stripe(victim).value();
  ASSERT_EQ(before.live_blocks, 12u);
  const Geometry g = fs_->array().geometry();
  const MemberAddress dead = g.locate(victim, 0, 4096);  // block 1
  fs_.reset();
  ctx_.reset();
  int fd = ::open(paths_[dead.member].c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  auto junk = random_bytes(4096, 7);
  ASSERT_EQ(::pwrite(fd, junk.data(), 4096, static_cast<off_t>(dead.offset)), 4096);
  ::close(fd);
  remove_member(g.locate(victim, 2, 0).member);  // blocks 9 and 13 of row 1 with them
  remove_member(g.locate(victim, 3, 0).member);
  options_.cleaner = true;
  mount();
  auto cleaned = fs_->control({}, "clean");
  ASSERT_TRUE(cleaned) << cleaned.error().message;
  auto after = fs_->meta().get_stripe(victim);
  EXPECT_TRUE(!after || after->generation != before.generation ||
              after->state == meta::StripeState::kFree)
      << "the victim is still in use, " << after->live_blocks << " blocks live";
  EXPECT_EQ(read(ino, 0, ref.size()), ref);
  mount();
  EXPECT_EQ(read(ino, 0, ref.size()), ref);
}

// -o discard: the stripes a delete frees are punched out of the member images once the delete
// is durable (the images get their space back), the data still stored reads back, and `trim`
// discards every free stripe on a mount without it.
TEST_F(FilesystemTest, FreedStripesAreDiscardedOnTheMembers) {
  options_.discard = true;
  format(6, 2, 16 << 20);
  auto member_blocks = [&] {
    uint64_t blocks = 0;
    for (const std::string& p : paths_) {
      struct stat st;
      EXPECT_EQ(::stat(p.c_str(), &st), 0);
      blocks += static_cast<uint64_t>(st.st_blocks);
    }
    return blocks * 512;
  };
  const uint64_t stripe = 4 * kChunk;
  const auto kept = random_bytes(2 * stripe + 5000, 1);
  const uint64_t keep = create("keep");
  write(keep, 0, kept);
  const uint64_t gone = create("gone");
  write(gone, 0, random_bytes(100 * stripe, 2));
  ASSERT_TRUE(fs_->fsync(*ctx_, keep));
  ASSERT_TRUE(fs_->fsync(*ctx_, gone));
  ASSERT_TRUE(fs_->release(gone, true));
  const uint64_t full = member_blocks();
  ASSERT_GT(full, 100 * stripe) << "the images hold the data (6 chunks per stripe)";

  ASSERT_TRUE(fs_->unlink(meta::kRootIno, "gone"));
  ASSERT_TRUE(fs_->sync_metadata());  // discarded only once the delete is durable
  // The background discards within a period or two.
  uint64_t now = full;
  for (int i = 0; i < 50 && now > full - 90 * 6 * kChunk; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    now = member_blocks();
  }
  EXPECT_LE(now, full - 90 * 6 * kChunk) << "member bytes " << full << " -> " << now;
  const std::string status = fs_->status_text();
  const size_t line = status.find("discard: on; ");
  ASSERT_NE(line, std::string::npos) << status;
  EXPECT_GE(std::stoull(status.substr(line + 13)), 90u) << status;
  EXPECT_EQ(read(keep, 0, kept.size()), kept);
  remount();
  EXPECT_EQ(read(ino_of("keep"), 0, kept.size()), kept);

  // Without -o discard nothing is discarded until asked.
  options_.discard = false;
  remount();
  const uint64_t other = create("other");
  write(other, 0, random_bytes(50 * stripe, 3));
  ASSERT_TRUE(fs_->fsync(*ctx_, other));
  ASSERT_TRUE(fs_->release(other, true));
  ASSERT_TRUE(fs_->unlink(meta::kRootIno, "other"));
  ASSERT_TRUE(fs_->sync_metadata());
  const uint64_t before = member_blocks();
  auto trimmed = fs_->control({}, "trim");
  ASSERT_TRUE(trimmed) << trimmed.error().message;
  EXPECT_LE(member_blocks(), before - 45 * 6 * kChunk) << *trimmed;
  EXPECT_EQ(read(ino_of("keep"), 0, kept.size()), kept);
  // A degraded read of what is left: the discards touched no stripe in use.
  fs_.reset();
  ctx_.reset();
  remove_member(1);
  remove_member(4);
  mount(true);
  EXPECT_EQ(read(ino_of("keep"), 0, kept.size()), kept);
  fs_.reset();
  ctx_.reset();
  for (uint32_t i : {1u, 4u}) ASSERT_EQ(::rename((paths_[i] + ".gone").c_str(), paths_[i].c_str()), 0);
  auto summary = run_fsck(dir_.file("meta"), FsckOptions{});
  ASSERT_TRUE(summary) << summary.error().message;
  EXPECT_EQ(summary->problems_found, 0u);
}

// Member writes to one member refused with an errno, by every I/O context of a mount (the
// sealer's too), once `let_through` more have passed: a full host under that member's image.
// Counts the members' flushes too.
struct WriteRefusal {
  std::atomic<int> error{0};
  std::atomic<uint64_t> let_through{0};
  uint32_t member = 2;
  std::atomic<uint64_t> flushes{0};
};

class RefusingIo final : public MemberIo {
 public:
  RefusingIo(std::unique_ptr<MemberIo> inner, WriteRefusal& refusal)
      : inner_(std::move(inner)), refusal_(refusal) {}
  void execute(std::span<IoRequest> batch) override {
    passed_.clear();
    origin_.clear();
    for (size_t i = 0; i < batch.size(); ++i) {
      IoRequest& r = batch[i];
      const int error = refusal_.error.load();
      if (r.op == IoOp::kWrite && r.member == refusal_.member && error != 0) {
        uint64_t left = refusal_.let_through.load();
        while (left > 0 && !refusal_.let_through.compare_exchange_weak(left, left - 1)) {
        }
        if (left == 0) {
          r.result = -error;
          continue;
        }
      }
      if (r.op == IoOp::kFlush) ++refusal_.flushes;
      passed_.push_back(r);
      origin_.push_back(i);
    }
    inner_->execute(passed_);
    for (size_t j = 0; j < passed_.size(); ++j) batch[origin_[j]].result = passed_[j].result;
  }
  Result<void> register_buffers(std::span<const std::span<uint8_t>> ranges) override {
    return inner_->register_buffers(ranges);
  }

 private:
  std::unique_ptr<MemberIo> inner_;
  WriteRefusal& refusal_;
  std::vector<IoRequest> passed_;
  std::vector<size_t> origin_;
};

// Writes `d` at offset 0 of `ino` in one call from an aligned buffer (whole stripes go straight
// to the members); returns the member flushes `counter` saw meanwhile.
uint64_t flushes_of_one_write(Filesystem& fs, IoContext& ctx, uint64_t ino,
                              const std::vector<uint8_t>& d, const WriteRefusal& counter) {
  AlignedBuffer buffer(d.size());
  std::memcpy(buffer.data(), d.data(), d.size());
  const uint64_t before = counter.flushes;
  auto n = fs.write(ctx, ino, 0, {buffer.data(), d.size()});
  EXPECT_TRUE(n) << n.error().message;
  EXPECT_EQ(n.value_or(0), d.size());
  return counter.flushes - before;
}

// A write that first fills the open stripe and then has whole stripes — the kernel's writeback
// sends a short piece now and then, and every later request is shifted against the stripes by
// it — seals the stripe it filled with its whole stripes: one flush of the members and one
// commit for all, another file's data in that stripe included (committed open by its fsync
// before: the commit seals it, its parity rows give way to the parity on the members). Read
// back after a crash (no fsync: the write committed it) and with two members gone.
TEST_F(FilesystemTest, TheStripeAWriteFillsIsSealedWithItsWholeStripes) {
  WriteRefusal counter;  // refuses nothing: counts the flushes
  options_.wrap_member_io = [&counter](std::unique_ptr<MemberIo> io) -> std::unique_ptr<MemberIo> {
    return std::make_unique<RefusingIo>(std::move(io), counter);
  };
  format(6, 2, 16 << 20);
  const size_t stripe = 4 * kChunk;
  const uint64_t a = create("a"), b = create("b");
  const auto head = random_bytes(8192, 31), other = random_bytes(4096, 32);
  write(b, 0, other);  // the open stripe: b at 0 (committed open), a at 4 KiB, a's next at 12
  ASSERT_TRUE(fs_->fsync(*ctx_, b));
  write(a, 0, head);
  const size_t size = (stripe - 12288) + 3 * stripe;
  const auto d = random_bytes(size, 33);
  AlignedBuffer buffer(size);
  std::memcpy(buffer.data(), d.data(), size);
  const uint64_t sealed = fs_->stats().stripes_sealed, flushes = counter.flushes;
  auto n = fs_->write(*ctx_, a, head.size(), {buffer.data(), size});
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_EQ(*n, size);
  EXPECT_EQ(counter.flushes - flushes, 6u) << "the filled stripe and the batch: one flush";
  EXPECT_EQ(fs_->stats().stripes_sealed - sealed, 4u);
  std::vector<uint8_t> whole = head;
  whole.insert(whole.end(), d.begin(), d.end());
  EXPECT_EQ(read(a, 0, whole.size()), whole);
  crash_and_mount();
  EXPECT_EQ(read(a, 0, whole.size()), whole);
  EXPECT_EQ(read(b, 0, other.size()), other);
  fs_.reset();
  remove_member(1);
  remove_member(4);
  mount(/*read_only=*/true);
  EXPECT_EQ(read(a, 0, whole.size()), whole);
  EXPECT_EQ(read(b, 0, other.size()), other);
}

// Older data of the file in the stripe it fills, inside the range of the whole stripes that
// follow: the one commit names the file once, the whole stripes' extents over what they cover
// — one older extent wholly, one in part (its tail stays).
TEST_F(FilesystemTest, WholeStripesSealedWithTheFilledStripeWinOverItsOlderData) {
  format(6, 2, 16 << 20);
  const size_t stripe = 4 * kChunk;
  const uint64_t a = create("a");
  write(a, 2 * stripe, random_bytes(4096, 37));  // at 0 of the open stripe
  const auto older = random_bytes(8192, 39);
  write(a, 4 * stripe - 16384, older);  // at 4 KiB: straddles the end of the whole stripes
  const size_t size = (stripe - 12288) + 3 * stripe;  // from 0: fills it, then 3 whole stripes
  const auto d = random_bytes(size, 38);
  AlignedBuffer buffer(size);
  std::memcpy(buffer.data(), d.data(), size);
  auto n = fs_->write(*ctx_, a, 0, {buffer.data(), size});
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_EQ(*n, size);
  std::vector<uint8_t> expect = d;
  expect.insert(expect.end(), older.begin() + 4096, older.end());
  EXPECT_EQ(read(a, 0, expect.size()), expect);
  crash_and_mount();
  EXPECT_EQ(read(a, 0, expect.size()), expect);
  auto attr = fs_->getattr(a);
  ASSERT_TRUE(attr);
  EXPECT_EQ(attr->size, 4 * stripe - 8192);
}

// The same when a member refuses: the write fails, nothing of its whole stripes commits, and
// what it and the other file placed in the stripe it filled stays pending there (readable),
// sealed by the fsync once the member takes writes again.
TEST_F(FilesystemTest, ARefusedSealWithWholeStripesKeepsTheFilledStripePending) {
  WriteRefusal refusal;
  options_.wrap_member_io = [&refusal](std::unique_ptr<MemberIo> io) -> std::unique_ptr<MemberIo> {
    return std::make_unique<RefusingIo>(std::move(io), refusal);
  };
  format(6, 2, 16 << 20);
  const size_t stripe = 4 * kChunk;
  const uint64_t a = create("a"), b = create("b");
  const auto head = random_bytes(8192, 34), other = random_bytes(4096, 35);
  write(a, 0, head);
  write(b, 0, other);
  const size_t size = (stripe - 12288) + 2 * stripe;
  const auto d = random_bytes(size, 36);
  AlignedBuffer buffer(size);
  std::memcpy(buffer.data(), d.data(), size);
  refusal.error = ENOSPC;
  auto n = fs_->write(*ctx_, a, head.size(), {buffer.data(), size});
  ASSERT_FALSE(n) << "returned " << *n << " of " << size;
  EXPECT_EQ(n.error().code, ENOSPC) << n.error().message;
  auto attr = fs_->getattr(a);
  ASSERT_TRUE(attr);
  EXPECT_EQ(attr->size, stripe - 4096) << "the head placed in the open stripe, no whole stripe";
  std::vector<uint8_t> placed = head;
  placed.insert(placed.end(), d.begin(), d.begin() + (stripe - 12288));
  EXPECT_EQ(read(a, 0, placed.size()), placed);
  EXPECT_EQ(read(b, 0, other.size()), other);
  refusal.error = 0;
  ASSERT_TRUE(fs_->fsync(*ctx_, a));
  crash_and_mount();
  EXPECT_EQ(read(a, 0, placed.size()), placed);
  EXPECT_EQ(read(b, 0, other.size()), other);
  attr = fs_->getattr(a);
  ASSERT_TRUE(attr);
  EXPECT_EQ(attr->size, stripe - 4096) << "part of the refused whole stripes was committed";
}

// A write that spans two stripes, one of which the members refuse (the host under the images
// full): never a short count (the kernel's writeback takes a short reply as done and drops the
// rest silently), and nothing placed is lost. Straight from the caller's buffer (aligned whole
// stripes) the write itself fails, and whole: its two stripes go to the members and the
// metadata as one batch, so the first does not commit either and both are free again. Through
// the open stripe (unaligned) the write returns once placed; the seal of the stripe it filled
// fails behind it and the data stays pending, so the fsync that follows reports the error. What
// was placed reads back as old or new bytes, and once the members take writes again the same
// write and an fsync store it all.
class FailedSealTest : public FilesystemTest, public ::testing::WithParamInterface<bool> {};

TEST_P(FailedSealTest, AWriteOfTwoStripesThatFailsHalfWayReportsTheErrorNotAShortCount) {
  const bool aligned = GetParam();
  WriteRefusal refusal;
  options_.wrap_member_io = [&refusal](std::unique_ptr<MemberIo> io) -> std::unique_ptr<MemberIo> {
    return std::make_unique<RefusingIo>(std::move(io), refusal);
  };
  format(4, 1, 16 << 20);
  const uint64_t a = create("a");
  const size_t stripe = 3 * kChunk;
  const uint64_t offset = aligned ? 0 : 100;
  const size_t size = aligned ? 2 * stripe : stripe + stripe / 2;
  AlignedBuffer data(size);
  auto noise = random_bytes(size, 13);
  std::memcpy(data.data(), noise.data(), size);
  // Member 2 takes the first stripe's chunk, then refuses (aligned: the two stripes are one
  // batch, so neither commits).
  refusal.let_through = aligned ? 1 : 0;
  refusal.error = ENOSPC;
  const uint64_t free_before = fs_->statfs().blocks_free;
  auto n = fs_->write(*ctx_, a, offset, {data.data(), size});
  Result<void> failed = n ? fs_->fsync(*ctx_, a) : Result<void>(std::unexpected(n.error()));
  if (aligned) {
    EXPECT_FALSE(n) << "returned " << *n << " of " << size;
  } else if (n) {
    EXPECT_EQ(*n, size) << "a short count";
  }
  ASSERT_FALSE(failed) << "neither the write nor the fsync after it failed";
  EXPECT_EQ(failed.error().code, ENOSPC) << failed.error().message;
  EXPECT_NE(failed.error().message.find("member 2"), std::string::npos) << failed.error().message;
  EXPECT_EQ(fs_->array().member_state(2), MemberState::kActive) << "a full host is no disk failure";
  EXPECT_GT(fs_->array().member_errors(2).write, 0u);
  if (aligned) {
    auto attr = fs_->getattr(a);
    ASSERT_TRUE(attr);
    EXPECT_EQ(attr->size, 0u) << "part of a failed batch of whole stripes was committed";
    EXPECT_EQ(fs_->statfs().blocks_free, free_before) << "the batch's stripes were not released";
  }
  const auto seen = read(a, 0, offset + size);
  for (size_t i = 0; i < seen.size(); ++i)
    ASSERT_TRUE(seen[i] == 0 || (i >= offset && seen[i] == noise[i - offset])) << "byte " << i;
  refusal.error = 0;
  auto again = fs_->write(*ctx_, a, offset, {data.data(), size});
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(*again, size);
  ASSERT_TRUE(fs_->fsync(*ctx_, a));
  crash_and_mount();
  EXPECT_TRUE(read(a, offset, size) == noise) << "after the retry and fsync the whole write is stored";
}

INSTANTIATE_TEST_SUITE_P(OpenStripeAndDirect, FailedSealTest, ::testing::Values(false, true));

TEST_F(FilesystemTest, TruncatePunchHolesAndSeek) {
  format(4, 1, 16 << 20);
  const uint64_t a = create("a");
  auto d = random_bytes(100000, 12);
  write(a, 0, d);
  // Truncate down drops pending data beyond; extending reads zeros.
  meta::SetAttr shrink;
  shrink.size = 50000;
  ASSERT_TRUE(fs_->setattr(*ctx_, a, shrink));
  meta::SetAttr grow;
  grow.size = 80000;
  ASSERT_TRUE(fs_->setattr(*ctx_, a, grow));
  std::vector<uint8_t> expect(d.begin(), d.begin() + 50000);
  expect.resize(80000, 0);
  EXPECT_EQ(read(a, 0, 80000), expect);
  ASSERT_TRUE(fs_->fsync(*ctx_, a));
  EXPECT_EQ(read(a, 0, 80000), expect);
  // Punch a hole over committed data.
  ASSERT_TRUE(fs_->fallocate(*ctx_, a, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 8192, 16384));
  std::fill(expect.begin() + 8192, expect.begin() + 8192 + 16384, 0);
  EXPECT_EQ(read(a, 0, 80000), expect);
  EXPECT_EQ(*fs_->lseek(a, 0, SEEK_DATA), 0u);
  EXPECT_EQ(*fs_->lseek(a, 0, SEEK_HOLE), 8192u);
  EXPECT_EQ(*fs_->lseek(a, 8192, SEEK_DATA), 8192u + 16384);
  EXPECT_EQ(*fs_->lseek(a, 30000, SEEK_HOLE), 50000u);
  EXPECT_EQ(fs_->lseek(a, 60000, SEEK_DATA).error().code, ENXIO);
  EXPECT_EQ(fs_->lseek(a, 80000, SEEK_HOLE).error().code, ENXIO);
  remount();
  EXPECT_EQ(read(a, 0, 80000), expect);
}

// Zeroing (or punching) every block of a file whose data is still pending keeps its size: the
// size came from the pending data alone, which the zeroing drops (xfs_io fzero in 4 KiB pieces
// once left a 64 KiB file 0 bytes long after a remount).
TEST_F(FilesystemTest, ZeroingEveryBlockOfAPendingFileKeepsItsSize) {
  format(4, 1, 16 << 20);
  for (int mode : {FALLOC_FL_ZERO_RANGE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE}) {
    const std::string name = "f" + std::to_string(mode);
    const uint64_t a = create(name);
    write(a, 0, random_bytes(65536, 14));
    for (uint64_t off = 0; off < 65536; off += 4096)
      ASSERT_TRUE(fs_->fallocate(*ctx_, a, mode, off, 4096));
    EXPECT_EQ(fs_->getattr(a)->size, 65536u) << name;
    EXPECT_EQ(read(a, 0, 65536), std::vector<uint8_t>(65536, 0)) << name;
  }
  crash_and_mount();
  remount();
  for (int mode : {FALLOC_FL_ZERO_RANGE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE}) {
    const uint64_t a = ino_of("f" + std::to_string(mode));
    EXPECT_EQ(fs_->getattr(a)->size, 65536u) << "after a remount, mode " << mode;
    EXPECT_EQ(read(a, 0, 65536), std::vector<uint8_t>(65536, 0));
  }
}

// The kernel's writeback sends a short write now and then; the file's data is then pending in
// the open stripe, and a long write after it fills that stripe first, its whole blocks written
// to the members from the caller's buffer (no copy either), then goes on in whole stripes.
TEST_F(FilesystemTest, ALongWriteAfterPendingDataCopiesNothingFromAnAlignedBuffer) {
  options_.copy_below = 4096;
  format(6, 2, 16 << 20);
  const uint64_t stripe = 4 * kChunk;
  const uint64_t b = create("b");
  auto head = random_bytes(8192, 31);
  std::vector<uint8_t> odd(head.size() + 1);  // a misaligned buffer: copied
  std::memcpy(odd.data() + 1, head.data(), head.size());
  ASSERT_TRUE(fs_->write(*ctx_, b, 0, {odd.data() + 1, head.size()}));
  AlignedBuffer big(4 * stripe);
  auto d = random_bytes(4 * stripe, 32);
  std::memcpy(big.data(), d.data(), d.size());
  auto n = fs_->write(*ctx_, b, 8192, {big.data(), d.size()});
  ASSERT_TRUE(n) << n.error().message;
  ASSERT_EQ(*n, d.size());
  // Only the head was copied; the stripe's rest, 3 whole stripes and the 8 KiB that do not make
  // a stripe at the end went to the members from the caller's buffer.
  EXPECT_EQ(fs_->stats().bytes_copied_write, 8192u);
  EXPECT_EQ(fs_->stats().bytes_direct_write, 4 * stripe);
  std::vector<uint8_t> all = head;
  all.insert(all.end(), d.begin(), d.end());
  EXPECT_EQ(read(b, 0, all.size()), all);
  crash_and_mount();  // what was committed is in order: the head and the stripes after it
  auto after = read(b, 0, all.size());
  ASSERT_GE(after.size(), 8192u + 3 * stripe);
  EXPECT_TRUE(std::equal(all.begin(), all.begin() + 8192 + 3 * stripe, after.begin()));
}

// Whole 4 KiB blocks from a 4 KiB-aligned buffer (the io_uring transport's payload) go to their
// place in the open stripe on the members, not through its buffer: nothing is copied, and their
// parity is accumulated apart and added to the buffer's. Mixed in one stripe with copied data,
// flushed by fsyncs now and then, read while pending (a read of on-member blocks commits them
// first), and read back with two members gone: every parity — the members' of the stripes the
// sealer sealed, the metadata's rows of the stripe left open, the members' again once the mount
// sealed that one degraded — must cover both kinds of block.
TEST_F(FilesystemTest, AlignedBlocksGoToTheMembersUncopiedAndReadBackDegraded) {
  options_.copy_below = 4096;  // every aligned block
  format(6, 2, 16 << 20);  // 4 data chunks of 16 KiB: 16 blocks a stripe
  const uint64_t a = create("a");
  constexpr uint64_t kFileBlocks = 128;
  std::vector<uint8_t> expect(kFileBlocks * 4096, 0);
  AlignedBuffer aligned(2 * 4096);
  std::vector<uint8_t> odd(3001);
  uint64_t copied = 0, direct = 0;
  std::mt19937 rng(5);
  auto check = [&](const char* when) {
    auto back = read(a, 0, expect.size());
    ASSERT_EQ(back.size(), expect.size()) << when;
    EXPECT_TRUE(back == expect) << when;
  };
  for (uint32_t i = 0; i < 120; ++i) {
    // The first write is the last block: the file's size is set from the start.
    const uint64_t block = i == 0 ? kFileBlocks - 1 : rng() % (kFileBlocks - 1);
    if (i % 5 == 4) {  // misaligned: copied, into the same stripe as the others
      const auto bytes = random_bytes(3000, 500 + i);
      std::memcpy(odd.data() + 1, bytes.data(), bytes.size());
      const uint64_t at = block * 4096 + 100;
      ASSERT_TRUE(fs_->write(*ctx_, a, at, {odd.data() + 1, bytes.size()}));
      std::copy(bytes.begin(), bytes.end(), expect.begin() + at);
      copied += bytes.size();
    } else {
      const size_t n = 4096 * (i == 0 ? 1 : 1 + i % 2);
      const auto bytes = random_bytes(n, 700 + i);
      std::memcpy(aligned.data(), bytes.data(), n);
      ASSERT_TRUE(fs_->write(*ctx_, a, block * 4096, {aligned.data(), n}));
      std::copy(bytes.begin(), bytes.end(), expect.begin() + block * 4096);
      direct += n;
    }
    if (i % 7 == 3) {
      ASSERT_TRUE(fs_->fsync(*ctx_, a));
    }
    if (i % 9 == 0) check("while pending");
  }
  EXPECT_EQ(fs_->stats().bytes_copied_write, copied);
  EXPECT_EQ(fs_->stats().bytes_direct_write, direct);
  EXPECT_GT(fs_->stats().stripes_sealed, 0u);
  check("before the fsync");
  ASSERT_TRUE(fs_->fsync(*ctx_, a));
  // Read-only: the last stripe stays open, its parity in the metadata's rows.
  fs_.reset();
  remove_member(0);
  remove_member(3);
  mount(/*read_only=*/true);
  EXPECT_EQ(fs_->meta().open_stripes().size(), 1u);
  check("with two members gone, the last stripe open");
  EXPECT_GT(fs_->stats().reconstructed_blocks, 0u);
  mount();  // seals the stripe left open, degraded
  EXPECT_EQ(fs_->meta().open_stripes().size(), 0u);
  check("with two members gone, every stripe sealed");
  EXPECT_GT(fs_->stats().reconstructed_blocks, 0u);
}

// Pieces shorter than copy_below are copied even when aligned: each uncopied piece is a member
// write of its own, which costs more than a small copy (FilesystemOptions::copy_below).
TEST_F(FilesystemTest, AlignedPiecesShorterThanCopyBelowAreCopied) {
  options_.copy_below = 16384;
  format(6, 2, 16 << 20);  // 64 KiB stripes
  const uint64_t a = create("a");
  AlignedBuffer buf(32768);
  const auto d = random_bytes(32768, 51);
  std::memcpy(buf.data(), d.data(), d.size());
  ASSERT_TRUE(fs_->write(*ctx_, a, 0, {buf.data(), 4096}));
  EXPECT_EQ(fs_->stats().bytes_copied_write, 4096u);
  EXPECT_EQ(fs_->stats().bytes_direct_write, 0u);
  ASSERT_TRUE(fs_->write(*ctx_, a, 4096, {buf.data() + 4096, 28672}));
  EXPECT_EQ(fs_->stats().bytes_copied_write, 4096u);
  EXPECT_EQ(fs_->stats().bytes_direct_write, 28672u);
  EXPECT_EQ(read(a, 0, d.size()), d);
  remount();
  EXPECT_EQ(read(a, 0, d.size()), d);
}

// A write of many whole stripes from an aligned buffer goes to the members in batches of up to
// 16 stripes (with these 16 KiB chunks), each flushed once and committed in one metadata batch —
// not a flush and a commit per stripe, which a device with a volatile cache pays dearly for.
TEST_F(FilesystemTest, WholeStripesOfOneWriteShareAFlushAndACommit) {
  WriteRefusal counter;  // refuses nothing: counts the flushes
  options_.wrap_member_io = [&counter](std::unique_ptr<MemberIo> io) -> std::unique_ptr<MemberIo> {
    return std::make_unique<RefusingIo>(std::move(io), counter);
  };
  format(6, 2, 16 << 20);
  const uint64_t stripe = 4 * kChunk;
  const uint64_t a = create("a");
  const auto d = random_bytes(20 * stripe, 23);
  EXPECT_EQ(flushes_of_one_write(*fs_, *ctx_, a, d, counter), 2u * 6)
      << "20 stripes: two batches, each flushing 6 members";
  EXPECT_EQ(fs_->stats().bytes_direct_write, 20 * stripe);
  EXPECT_EQ(fs_->stats().bytes_copied_write, 0u);
  EXPECT_EQ(read(a, 0, d.size()), d);
  crash_and_mount();  // committed by the write itself
  EXPECT_EQ(read(a, 0, d.size()), d);
  fs_.reset();
  remove_member(0);
  remove_member(5);
  mount(/*read_only=*/true);  // the parity of every stripe of the batch
  EXPECT_EQ(read(a, 0, d.size()), d);
}

// With 64 KiB chunks a batch is 8 stripes (1 MiB of RAID6 parity): 20 stripes go as 8 + 8 + 4,
// each stripe's parity at its own place in the batch's parity buffer — read back degraded.
TEST_F(FilesystemTest, WholeStripeBatchesAreCappedByTheirParityBytes) {
  WriteRefusal counter;  // refuses nothing: counts the flushes
  options_.wrap_member_io = [&counter](std::unique_ptr<MemberIo> io) -> std::unique_ptr<MemberIo> {
    return std::make_unique<RefusingIo>(std::move(io), counter);
  };
  auto made = testing::make_test_array(dir_, 6, 2, 65536, 16 << 20);
  ASSERT_TRUE(made) << made.error().message;
  paths_ = made->paths;
  mount();
  const uint64_t stripe = 4 * 65536;
  const uint64_t a = create("a");
  const auto d = random_bytes(20 * stripe, 24);
  EXPECT_EQ(flushes_of_one_write(*fs_, *ctx_, a, d, counter), 3u * 6)
      << "20 stripes in batches of 8: three flushes";
  fs_.reset();
  remove_member(2);
  remove_member(3);
  mount(/*read_only=*/true);
  EXPECT_EQ(read(a, 0, d.size()), d);
}

TEST_F(FilesystemTest, AlignedFullStripesGoStraightFromTheCallersBuffer) {
  options_.copy_below = 4096;
  format(6, 2, 16 << 20);
  const uint64_t stripe = 4 * kChunk;
  const uint64_t a = create("a");
  AlignedBuffer big(3 * stripe);
  auto d = random_bytes(3 * stripe, 21);
  std::memcpy(big.data(), d.data(), d.size());
  auto n = fs_->write(*ctx_, a, 0, {big.data(), d.size()});
  ASSERT_TRUE(n) << n.error().message;
  ASSERT_EQ(*n, d.size());
  EXPECT_EQ(fs_->stats().bytes_direct_write, 3 * stripe);
  EXPECT_EQ(fs_->stats().bytes_copied_write, 0u);
  EXPECT_EQ(read(a, 0, d.size()), d);

  // With data of the file pending in the open stripe, a full stripe goes into that stripe, so
  // that the file's writes commit in order (its blocks still from the caller's buffer); the
  // newer bytes win either way.
  std::vector<uint8_t> short_write(10001);  // misaligned: copied
  const auto tail = random_bytes(10000, 20);
  std::memcpy(short_write.data() + 1, tail.data(), tail.size());
  ASSERT_TRUE(fs_->write(*ctx_, a, stripe + 4096, {short_write.data() + 1, tail.size()}));
  EXPECT_EQ(fs_->stats().bytes_copied_write, 10000u);
  auto d2 = random_bytes(stripe, 22);
  std::memcpy(big.data(), d2.data(), d2.size());
  n = fs_->write(*ctx_, a, stripe, {big.data(), d2.size()});
  ASSERT_TRUE(n);
  std::copy(d2.begin(), d2.end(), d.begin() + stripe);
  EXPECT_EQ(fs_->stats().bytes_direct_write, 4 * stripe);
  EXPECT_EQ(fs_->stats().bytes_copied_write, 10000u);
  EXPECT_EQ(read(a, 0, d.size()), d);

  // A misaligned buffer takes the copying path too.
  std::vector<uint8_t> odd(stripe + 1);
  std::memcpy(odd.data() + 1, d.data(), stripe);
  n = fs_->write(*ctx_, a, 0, {odd.data() + 1, stripe});
  ASSERT_TRUE(n);
  EXPECT_EQ(fs_->stats().bytes_direct_write, 4 * stripe);
  ASSERT_TRUE(fs_->fsync(*ctx_, a));
  EXPECT_EQ(read(a, 0, d.size()), d);
  remount();
  EXPECT_EQ(read(a, 0, d.size()), d);
  fs_.reset();
  remove_member(1);
  remove_member(4);
  mount();
  EXPECT_EQ(read(a, 0, d.size()), d);
}

// A write returns once its data is placed: the stripe it filled is sealed behind it by the
// writer's sealer thread. While that seal waits for its member writes, the write that filled
// the stripe has returned, other writes are placed in the next stripe and every byte reads back
// (the newest where they overlap); a write that fills that stripe too and an fsync wait for the
// seal, and all of it commits in order.
// getattr combines the committed inode with the writer's pending data under a seqlock; while a
// seal's metadata commit is under way it sleeps until the commit ends (and is woken). Under
// appends that seal stripe after stripe, every getattr sees at least what was acknowledged
// before it began, and a consistent state: the blocks of the file counted once, never in both
// places (a torn read would count a just-committed stripe twice) — and none sleeps for ever.
TEST_F(FilesystemTest, GetattrDuringSealsSeesEveryAcknowledgedByteAndCountsBlocksOnce) {
  format(4, 1, 32 << 20);  // 3 data chunks: 12 blocks a stripe
  const uint64_t f = create("f");
  constexpr uint64_t kBlocks = 1200;  // 100 seals
  std::atomic<uint64_t> acknowledged{0};
  std::atomic<bool> done{false};
  std::atomic<uint64_t> calls{0};
  std::string wrong;
  std::thread reader([&] {
    while (!done.load() && wrong.empty()) {
      const uint64_t at_least = acknowledged.load();
      auto attr = fs_->getattr(f);
      if (!attr) {
        wrong = attr.error().message;
        break;
      }
      ++calls;
      if (attr->size < at_least)
        wrong = "size " + std::to_string(attr->size) + " < acknowledged " + std::to_string(at_least);
      else if (attr->blocks != std::max<uint64_t>(attr->size / 4096, 1))  // open: never 0
        wrong = "blocks " + std::to_string(attr->blocks) + " for size " + std::to_string(attr->size);
    }
  });
  const auto block = random_bytes(4096, 41);
  for (uint64_t b = 0; b < kBlocks && wrong.empty(); ++b) {
    auto n = fs_->write(*ctx_, f, b * 4096, block);
    ASSERT_TRUE(n) << n.error().message;
    acknowledged = (b + 1) * 4096;
  }
  done = true;
  reader.join();
  EXPECT_EQ(wrong, "");
  EXPECT_GT(calls.load(), 0u);
  EXPECT_GT(fs_->stats().stripes_sealed, kBlocks / 12 / 2);
  remount();
  EXPECT_EQ(fs_->getattr(f)->size, kBlocks * 4096);
}

// A read clips to a size taken without waiting for seals (Filesystem::inode_for_read): it must
// still never come back short of an acknowledged write, nor with wrong bytes, while the data
// changes hands from the open stripe to the metadata.
TEST_F(FilesystemTest, ReadsDuringSealsSeeEveryAcknowledgedByte) {
  format(4, 1, 32 << 20);  // 3 data chunks: 12 blocks a stripe
  const uint64_t f = create("f");
  constexpr uint64_t kBlocks = 1200;  // 100 seals
  auto block_of = [](uint64_t b) { return random_bytes(4096, static_cast<uint32_t>(1000 + b % 97)); };
  std::atomic<uint64_t> acknowledged{0};
  std::atomic<bool> done{false};
  std::atomic<uint64_t> reads{0};
  std::mutex wrong_mu;
  std::string wrong;
  auto report = [&](std::string what) {
    std::lock_guard lock(wrong_mu);
    if (wrong.empty()) wrong = std::move(what);
  };
  auto failed = [&] {
    std::lock_guard lock(wrong_mu);
    return !wrong.empty();
  };
  // More readers than CPUs: a reader preempted in the middle of taking the size is what a
  // wrong order of its two reads would need to come back short.
  auto read_loop = [&] {
    auto ctx = fs_->make_io_context();  // an io_uring is used by the thread that made it
    if (!ctx) return report(ctx.error().message);
    std::vector<uint8_t> buf(8 * 4096);
    while (!done.load() && !failed()) {
      const uint64_t at_least = acknowledged.load();
      if (at_least == 0) continue;
      // The last (up to) 8 acknowledged blocks: the ones most likely in a seal right now.
      const uint64_t from = at_least > buf.size() ? at_least - buf.size() : 0;
      auto n = fs_->read(**ctx, f, from, buf.size(), buf.data());
      if (!n) return report(n.error().message);
      ++reads;
      if (*n < at_least - from)
        return report("read " + std::to_string(*n) + " bytes at " + std::to_string(from) +
                      " with " + std::to_string(at_least) + " acknowledged");
      for (uint64_t b = from / 4096; b < at_least / 4096; ++b)
        if (std::memcmp(buf.data() + (b * 4096 - from), block_of(b).data(), 4096) != 0)
          return report("block " + std::to_string(b) + " read back wrong");
    }
  };
  std::vector<std::thread> readers;
  for (int i = 0; i < 4; ++i) readers.emplace_back(read_loop);
  for (uint64_t b = 0; b < kBlocks && !failed(); ++b) {
    auto n = fs_->write(*ctx_, f, b * 4096, block_of(b));
    ASSERT_TRUE(n) << n.error().message;
    acknowledged = (b + 1) * 4096;
    // A filled stripe is sealed behind while the open one holds nothing of the file yet: the
    // size then comes from the seal's commit alone, which the readers must not miss.
    if ((b + 1) % 12 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  done = true;
  for (std::thread& t : readers) t.join();
  EXPECT_EQ(wrong, "");
  EXPECT_GT(reads.load(), 0u);
  EXPECT_GT(fs_->stats().stripes_sealed, kBlocks / 12 / 2);
}

TEST_F(FilesystemTest, AWriteReturnsOnceItsDataIsPlacedAndItsStripeIsSealedBehindIt) {
  WriteGate gate;
  options_.wrap_member_io = [&gate](std::unique_ptr<MemberIo> io) -> std::unique_ptr<MemberIo> {
    return std::make_unique<GatedIo>(std::move(io), gate);
  };
  format(4, 1, 16 << 20);
  const size_t stripe = 3 * kChunk;
  const uint64_t a = create("a"), b = create("b");
  const auto old_a = random_bytes(stripe, 31);
  const auto new_a = random_bytes(4096, 32);
  gate.arm();
  auto placed = std::async(std::launch::async, [&] {
    // From offset 100: not the straight-from-the-caller path; it fills the open stripe.
    auto n = fs_->write(*ctx_, a, 100, old_a);
    auto m = fs_->write(*ctx_, a, 100, new_a);
    auto o = fs_->write(*ctx_, b, 0, random_bytes(5000, 33));
    return n && m && o;
  });
  const bool done = placed.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  const bool held = gate.wait_for_writer();
  if (!done || !held) gate.open();  // do not leave the test hanging
  ASSERT_TRUE(held) << "the filled stripe's seal never reached its member writes";
  ASSERT_TRUE(done) << "a write waited for the seal of the stripe it filled";
  ASSERT_TRUE(placed.get());
  auto want_a = old_a;
  std::copy(new_a.begin(), new_a.end(), want_a.begin());
  EXPECT_TRUE(read(a, 100, stripe) == want_a) << "pending data of both stripes, newest first";
  EXPECT_EQ(fs_->getattr(a)->size, 100 + stripe);
  EXPECT_TRUE(read(b, 0, 5000) == random_bytes(5000, 33));

  // Callers that need the seal done wait for it (the status counts them): a write that fills
  // the open slot too — the sealer moves that slot behind once its seal is done, and the write
  // goes on in the next — and an fsync.
  auto wait_for_waiters = [&](uint64_t n) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (fs_->stats().seal_waits < n && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return fs_->stats().seal_waits;
  };
  const uint64_t c = create("c");
  const auto data_c = random_bytes(stripe + stripe / 2, 34);
  auto filled = std::async(std::launch::async, [&] {
    auto ctx = fs_->make_io_context();  // an io_uring is used by the thread that made it
    return ctx && fs_->write(**ctx, c, 100, data_c) && fs_->fsync(**ctx, c);
  });
  EXPECT_EQ(wait_for_waiters(1), 1u);
  auto synced = std::async(std::launch::async, [&] {
    auto ctx = fs_->make_io_context();
    return ctx && fs_->fsync(**ctx, a);
  });
  EXPECT_EQ(wait_for_waiters(2), 2u);
  EXPECT_EQ(synced.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout)
      << "fsync returned while its data was still held in the seal";
  EXPECT_EQ(filled.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout)
      << "a write placed data in a slot still being sealed";
  gate.open();
  ASSERT_TRUE(synced.get());
  ASSERT_TRUE(filled.get());
  EXPECT_TRUE(read(c, 100, data_c.size()) == data_c);
  crash_and_mount();
  EXPECT_TRUE(read(a, 100, stripe) == want_a) << "the newer write committed after the older";
  EXPECT_TRUE(read(b, 0, 5000) == random_bytes(5000, 33));
  EXPECT_TRUE(read(c, 100, data_c.size()) == data_c);
  fs_.reset();
  ctx_.reset();
  auto summary = run_fsck(dir_.file("meta"), FsckOptions{});
  ASSERT_TRUE(summary) << summary.error().message;
  EXPECT_EQ(summary->problems_found, 0u);
}

// A write's whole stripes get their parity, checksums and member writes with the writer's lock
// released (only their allocation and commit take it). While one such write is held in its member
// I/O, other writes go on — whole stripes of another file, copied data that fills stripes the
// sealer seals, an fsync — and the held stripes keep the array's write floor (below which a member
// that leaves is known to hold every stripe) at or below them. Then all of it reads back, also
// after a crash, and fsck finds nothing wrong.
TEST_F(FilesystemTest, WholeStripesAreWrittenWithTheWritersLockReleased) {
  WriteGate gate;
  options_.wrap_member_io = [&gate](std::unique_ptr<MemberIo> io) -> std::unique_ptr<MemberIo> {
    return std::make_unique<GatedIo>(std::move(io), gate);
  };
  format(4, 1, 16 << 20);
  const size_t stripe = 3 * kChunk;
  const uint64_t a = create("a"), b = create("b"), c = create("c");
  const auto da = random_bytes(2 * stripe, 41), db = random_bytes(stripe, 42),
             dc = random_bytes(3 * stripe + 5000, 43);
  AlignedBuffer buffer_a(da.size()), buffer_b(db.size());
  std::memcpy(buffer_a.data(), da.data(), da.size());
  std::memcpy(buffer_b.data(), db.data(), db.size());
  gate.arm_first();
  auto held = std::async(std::launch::async, [&] {
    auto ctx = fs_->make_io_context();  // an io_uring is used by the thread that made it
    return ctx && fs_->write(**ctx, a, 0, {buffer_a.data(), da.size()});
  });
  const bool caught = gate.wait_for_writer();
  if (!caught) gate.open();
  ASSERT_TRUE(caught) << "the whole stripes never reached their member writes";
  auto others = std::async(std::launch::async, [&] {
    auto ctx = fs_->make_io_context();
    return ctx && fs_->write(**ctx, b, 0, {buffer_b.data(), db.size()}) &&
           fs_->write(**ctx, c, 100, dc) && fs_->fsync(**ctx, c);
  });
  const bool went_on = others.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  const uint64_t floor = fs_->array().write_floor();
  gate.open();
  ASSERT_TRUE(went_on) << "other writes waited for a write's whole stripes";
  ASSERT_TRUE(others.get());
  ASSERT_TRUE(held.get());
  EXPECT_EQ(fs_->stats().bytes_direct_write, da.size() + db.size());
  auto maps = fs_->meta().map_extents(a, 0, da.size());
  ASSERT_TRUE(maps && !maps->empty() && !maps->front().hole);
  auto first = fs_->meta().get_stripe(maps->front().stripe_id);
  ASSERT_TRUE(first);
  EXPECT_LE(floor, first->generation) << "the write floor passed stripes still being written";
  EXPECT_LT(first->generation, fs_->meta().get_stripe(
                                   fs_->meta().map_extents(c, 100, 101)->front().stripe_id)
                                   ->generation)
      << "the held write's stripes were not the older ones";
  EXPECT_TRUE(read(a, 0, da.size()) == da);
  EXPECT_TRUE(read(b, 0, db.size()) == db);
  EXPECT_TRUE(read(c, 100, dc.size()) == dc);
  crash_and_mount();
  EXPECT_TRUE(read(a, 0, da.size()) == da);
  EXPECT_TRUE(read(b, 0, db.size()) == db);
  EXPECT_TRUE(read(c, 100, dc.size()) == dc);
  fs_.reset();
  ctx_.reset();
  auto summary = run_fsck(dir_.file("meta"), FsckOptions{});
  ASSERT_TRUE(summary) << summary.error().message;
  EXPECT_EQ(summary->problems_found, 0u);
}

TEST_F(FilesystemTest, AnUnlinkedOpenFileWorksUntilItsLastClose) {
  format(4, 1, 16 << 20);
  const uint64_t a = create("a");  // create opens it
  auto d = random_bytes(40000, 13);
  ASSERT_TRUE(fs_->unlink(meta::kRootIno, "a"));
  write(a, 0, d);
  ASSERT_TRUE(fs_->fsync(*ctx_, a));
  EXPECT_EQ(read(a, 0, d.size()), d);
  EXPECT_EQ(fs_->meta().orphans().size(), 1u);
  ASSERT_TRUE(fs_->release(a, true));
  EXPECT_TRUE(fs_->meta().orphans().empty());
  EXPECT_EQ(fs_->getattr(a).error().code, ENOENT);
}

// Opens race unlinks and renames over the same names (as the kernel sends them: a LOOKUP, then
// an OPEN of the inode it found). An open either fails with ENOENT (the name was gone first) or
// gives a handle that keeps working — writes stored, getattr and reads answered — until its
// release, even when the name is removed meanwhile.
TEST_F(FilesystemTest, AnOpenRacingUnlinkOrRenameOverNeverLosesItsHandle) {
  format(4, 1, 16 << 20);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> handles{0}, refused{0};
  std::vector<std::string> failures;
  std::mutex failures_mu;
  auto failed = [&](const std::string& what) {
    std::lock_guard lock(failures_mu);
    if (failures.size() < 10) failures.push_back(what);
  };
  // Two threads keep replacing "b": a new file renamed over it, or an unlink and a new create.
  auto replacer = [&](int id) {
    auto ctx = fs_->make_io_context();
    ASSERT_TRUE(ctx);
    for (int i = 0; !stop; ++i) {
      const std::string tmp = "tmp" + std::to_string(id);
      auto made = fs_->create(meta::kRootIno, tmp, 0644, {});
      if (!made) continue;
      (void)fs_->release(made->ino, true);
      if (i % 2 == 0)
        (void)fs_->rename(**ctx, meta::kRootIno, tmp, meta::kRootIno, "b", 0);
      else if (fs_->unlink(meta::kRootIno, "b"))
        (void)fs_->rename(**ctx, meta::kRootIno, tmp, meta::kRootIno, "b", 0);
    }
  };
  // Two threads open whatever "b" is, write a block of their own, and check it through.
  auto opener = [&](int id) {
    auto ctx = fs_->make_io_context();
    ASSERT_TRUE(ctx);
    const auto block = random_bytes(4096, 50 + id);
    AlignedBuffer back(8192);
    while (!stop) {
      auto found = fs_->lookup(meta::kRootIno, "b");
      if (!found) continue;
      auto opened = fs_->open(found->ino, O_RDWR);
      if (!opened) {
        if (opened.error().code != ENOENT) failed("open: " + opened.error().message);
        ++refused;
        continue;
      }
      ++handles;
      const uint64_t ino = found->ino, at = 4096 * static_cast<uint64_t>(id);
      auto n = fs_->write(**ctx, ino, at, block);
      if (!n) failed("write through an open handle: " + n.error().message);
      if (auto attr = fs_->getattr(ino); !attr)
        failed("getattr through an open handle: " + attr.error().message);
      else if (attr->size < at + 4096)
        failed("size " + std::to_string(attr->size) + " after a write up to " + std::to_string(at + 4096));
      auto r = fs_->read(**ctx, ino, at, 4096, back.data());
      if (!r || *r != 4096 || std::memcmp(back.data(), block.data(), 4096) != 0)
        failed("read through an open handle: " + (r ? std::to_string(*r) + " bytes" : r.error().message));
      if (auto closed = fs_->release(ino, true); !closed) failed("release: " + closed.error().message);
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) threads.emplace_back(replacer, i);
  for (int i = 0; i < 2; ++i) threads.emplace_back(opener, i);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  stop = true;
  for (auto& t : threads) t.join();
  for (const std::string& f : failures) ADD_FAILURE() << f;
  EXPECT_GT(handles.load(), 10u) << "the openers got handles";
  std::printf("%llu handles, %llu opens refused (the name was gone first)\n",
              static_cast<unsigned long long>(handles.load()),
              static_cast<unsigned long long>(refused.load()));
  // Nothing left behind: every orphan was released.
  EXPECT_TRUE(fs_->meta().orphans().empty());
}

// The admin verbs through Filesystem::control: scrub and rebuild run on their own threads while
// writes go on (also under the sanitizers); a rebuilt member holds the data, proven by reading
// everything back with two other RAID6 members gone; a caller that is not root is refused.
TEST_F(FilesystemTest, ScrubAndRebuildRunOnlineAndTheRebuiltMemberHoldsTheData) {
  format(6, 2, 16 << 20);
  const uint64_t a = create("a");
  auto da = random_bytes(40 * 4 * kChunk + 999, 21);
  write(a, 0, da);
  ASSERT_TRUE(fs_->fsync(*ctx_, a));
  EXPECT_EQ(fs_->control(Caller{1000, 1000}, "scrub").error().code, EPERM);
  ASSERT_TRUE(fs_->control(Caller{}, "fail 2"));
  const uint64_t b = create("b");
  auto db = random_bytes(10 * 4 * kChunk + 5, 22);
  write(b, 0, db);
  ASSERT_TRUE(fs_->fsync(*ctx_, b));
  ASSERT_TRUE(fs_->control(Caller{}, "rebuild 2"));
  ASSERT_TRUE(fs_->control(Caller{}, "scrub"));
  // Writes while both run.
  const uint64_t c = create("c");
  auto dc = random_bytes(200000, 23);
  for (size_t off = 0; off < dc.size(); off += 10000)
    write(c, off, std::vector<uint8_t>(dc.begin() + off, dc.begin() + std::min(dc.size(), off + 10000)));
  ASSERT_TRUE(fs_->fsync(*ctx_, c));
  for (int i = 0; i < 600 && (fs_->rebuild_progress().state.phase == meta::RebuildPhase::kRunning ||
                              fs_->scrub_progress().state.phase == meta::ScrubPhase::kRunning); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(fs_->rebuild_progress().state.phase, meta::RebuildPhase::kFinished);
  EXPECT_EQ(fs_->scrub_progress().state.phase, meta::ScrubPhase::kFinished);
  EXPECT_EQ(fs_->scrub_progress().state.blocks_lost, 0u);
  EXPECT_EQ(fs_->array().member_state(2), MemberState::kActive);
  EXPECT_GT(fs_->rebuild_progress().state.stripes_rebuilt, 0u);
  remount();
  fs_.reset();
  ctx_.reset();
  remove_member(0);
  remove_member(4);
  mount(/*read_only=*/true);
  EXPECT_EQ(read(ino_of("a"), 0, da.size()), da);
  EXPECT_EQ(read(ino_of("b"), 0, db.size()), db);
  EXPECT_EQ(read(ino_of("c"), 0, dc.size()), dc);
}

// raidfs replace through Filesystem::control while another thread writes and reads (so the
// sanitizer builds see the device change under live MemberIos): the new device holds the member,
// proven with two other RAID6 members gone; the member list names it.
TEST_F(FilesystemTest, ReplacePutsANewDeviceInPlaceWhileIoGoesOn) {
  format(6, 2, 16 << 20);
  const uint64_t a = create("a");
  auto da = random_bytes(30 * 4 * kChunk + 77, 31);
  write(a, 0, da);
  ASSERT_TRUE(fs_->fsync(*ctx_, a));
  // A file nobody reads before the replace, with a block damaged on the old device: the replace
  // must rebuild that chunk from the others, not copy it.
  const uint64_t c = create("c");
  auto dc = random_bytes(8 * 4 * kChunk, 33);
  write(c, 0, dc);
  ASSERT_TRUE(fs_->fsync(*ctx_, c));
  {
    const Geometry& g = fs_->array().geometry();
    auto map = fs_->meta().map_range(c, 0, dc.size());
    ASSERT_TRUE(map);
    bool damaged = false;
    for (const meta::Mapping& seg : *map) {
      if (seg.hole || seg.stripe_offset != 0 || seg.length < g.stripe_data_bytes()) continue;
      const uint32_t slot = g.slot_of(seg.stripe_id, 1);
      if (slot >= g.data_count()) continue;
      const int fd = ::open(paths_[1].c_str(), O_RDWR);
      std::vector<uint8_t> junk(4096, 0x5a);
      ASSERT_EQ(::pwrite(fd, junk.data(), 4096, static_cast<off_t>(g.row_offset(seg.stripe_id))), 4096);
      ::close(fd);
      damaged = true;
      break;
    }
    ASSERT_TRUE(damaged) << "a whole stripe of c with a data chunk on member 1";
  }
  const std::string fresh = dir_.image("new1.img", 16 << 20);
  EXPECT_EQ(fs_->control(Caller{1000, 1000}, "replace 1 0 0 " + fresh).error().code, EPERM);
  EXPECT_EQ(fs_->control(Caller{}, "replace 1 0 0 " + paths_[2]).error().code, EBUSY);

  const uint64_t b = create("b");
  auto db = random_bytes(20 * 4 * kChunk, 32);
  std::atomic<bool> wrote{false};
  std::vector<std::string> failures;
  std::thread io([&] {
    auto ctx = fs_->make_io_context();
    if (!ctx) return failures.push_back(ctx.error().message);
    AlignedBuffer back(da.size() + 4096);
    for (size_t off = 0; off < db.size(); off += 3 * 4096) {
      const size_t len = std::min<size_t>(3 * 4096, db.size() - off);
      auto n = fs_->write(**ctx, b, off, {db.data() + off, len});
      if (!n) return failures.push_back("write: " + n.error().message);
      auto r = fs_->read(**ctx, a, 0, da.size(), back.data());
      if (!r || *r != da.size() || std::memcmp(back.data(), da.data(), da.size()) != 0)
        return failures.push_back("read during the replace differs");
    }
    if (auto f = fs_->fsync(**ctx, b); !f) failures.push_back("fsync: " + f.error().message);
    wrote = true;
  });
  ASSERT_TRUE(fs_->control(Caller{}, "replace 1 0 0 " + fresh));
  io.join();
  for (const std::string& f : failures) ADD_FAILURE() << f;
  ASSERT_TRUE(wrote);
  for (int i = 0; i < 600 && fs_->rebuild_progress().state.phase == meta::RebuildPhase::kRunning; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(fs_->rebuild_progress().state.phase, meta::RebuildPhase::kFinished);
  EXPECT_TRUE(fs_->rebuild_progress().state.replace);
  EXPECT_EQ(fs_->array().member_state(1), MemberState::kActive);
  EXPECT_EQ(fs_->array().member_path(1), fresh);
  fs_.reset();
  ctx_.reset();
  paths_[1] = fresh;
  remove_member(0);
  remove_member(3);
  mount(/*read_only=*/true);  // by the metadata directory: its member list names the new device
  EXPECT_EQ(read(ino_of("a"), 0, da.size()), da);
  EXPECT_EQ(read(ino_of("b"), 0, db.size()), db);
  EXPECT_EQ(read(ino_of("c"), 0, dc.size()), dc) << "the damaged chunk was copied from the old device";
}

TEST_F(FilesystemTest, ReadOnlyMountRefusesChanges) {
  format(4, 1, 16 << 20);
  create("a");
  ASSERT_TRUE(fs_->sync_all(*ctx_));
  mount(/*read_only=*/true);
  EXPECT_EQ(fs_->create(meta::kRootIno, "b", 0644, {}).error().code, EROFS);
  EXPECT_EQ(fs_->write(*ctx_, ino_of("a"), 0, random_bytes(10, 1)).error().code, EROFS);
  EXPECT_EQ(fs_->unlink(meta::kRootIno, "a").error().code, EROFS);
}

TEST_F(FilesystemTest, StatusNamesStateAndCounters) {
  format(4, 1, 16 << 20);
  auto text = fs_->get_xattr(meta::kRootIno, Filesystem::kStatusXattr);
  ASSERT_TRUE(text);
  EXPECT_NE(text->find("state: healthy"), std::string::npos) << *text;
  fs_.reset();
  remove_member(2);
  mount();
  text = fs_->get_xattr(meta::kRootIno, Filesystem::kStatusXattr);
  EXPECT_NE(text->find("state: degraded"), std::string::npos) << *text;
  EXPECT_EQ(fs_->set_xattr(meta::kRootIno, Filesystem::kStatusXattr, "x", 0).error().code, EPERM);
}

}  // namespace
}  // namespace raidfs::fs
