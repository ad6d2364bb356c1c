// Goal: the metadata store runs on the region as it runs in a host directory — RocksDB creates,
// flushes and compacts its tables there, reopens them, keeps every synced write across a power
// cut (its log's unflushed blocks lost at random), reads through a lost copy, and a full region
// is a clear ENOSPC, never a broken database — refused to new data before it is acknowledged,
// never to the commit of data acknowledged before the region filled.
// Method: real RocksDB (Store, FsMeta) over RegionFs over a MemoryRegionDevice.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <random>

#include "meta/fs_meta.h"
#include "meta/keys.h"
#include "meta/region_fs.h"
#include "meta/region_test_device.h"
#include "meta/store.h"
#include "meta/test_util.h"

namespace raidfs::meta {
namespace {

using testing::MemoryRegionDevice;
constexpr uint32_t kSalt = 77;

class RegionStoreTest : public ::testing::Test {
 protected:
  void make(uint64_t blocks) {
    device_ = std::make_shared<MemoryRegionDevice>(blocks, 3);
    ASSERT_TRUE(RegionFs::format(*device_, kSalt));
  }
  StoreOptions options(bool create) {
    auto region = RegionFs::open(device_, kSalt, false);
    EXPECT_TRUE(region) << region.error().message;
    StoreOptions o = testing::small_array("", create);
    o.region = region ? std::shared_ptr<RegionFs>(std::move(*region)) : nullptr;
    return o;
  }
  static std::string key(uint64_t i) { return "key" + std::to_string(i); }
  static std::string value(uint64_t i) { return std::string(100 + i % 300, static_cast<char>('a' + i % 26)); }

  std::shared_ptr<MemoryRegionDevice> device_;
};

TEST_F(RegionStoreTest, TablesAreWrittenCompactedAndReopened) {
  make(16384);  // 64 MiB of mirrored blocks: write buffers of 1 MiB
  const uint64_t n = testing::kSanitized ? 20000 : 60000;
  {
    auto store = Store::open(options(true));
    ASSERT_TRUE(store) << store.error().message;
    for (uint64_t i = 0; i < n; ++i) {
      WriteSet set;
      set.put(Family::kXattrs, key(i), value(i));
      if (i % 7 == 0 && i > 0) set.del(Family::kXattrs, key(i - 7));
      ASSERT_TRUE((*store)->write(set, i % 1000 == 0 ? Durability::kGroupSync : Durability::kNone));
    }
    ASSERT_TRUE((*store)->sync((*store)->latest_sequence()));
    // RocksDB really wrote tables into the region.
    size_t tables = 0;
    for (const std::string& name : (*store)->region()->list()) tables += name.ends_with(".sst");
    EXPECT_GT(tables, 0u);
    EXPECT_EQ((*store)->where(), "the metadata region");
  }
  auto store = Store::open(options(false));
  ASSERT_TRUE(store) << store.error().message;
  for (uint64_t i = 0; i < n; ++i) {
    auto got = (*store)->get(Family::kXattrs, key(i));
    ASSERT_TRUE(got);
    const bool deleted = i % 7 == 0 && i + 7 < n;
    if (deleted) {
      EXPECT_FALSE(got->has_value()) << i;
    } else {
      ASSERT_TRUE(got->has_value()) << i;
      EXPECT_EQ(**got, value(i));
    }
  }
  // One copy unreadable (a member missing): the same answers.
  store->reset();
  device_->set_readable(0, false);
  store = Store::open(options(false));
  ASSERT_TRUE(store) << store.error().message;
  auto got = (*store)->get(Family::kXattrs, key(n - 1));
  ASSERT_TRUE(got && got->has_value());
  EXPECT_EQ(**got, value(n - 1));
}

// Power cuts during writes: every write a sync covered is there after the cut; the database
// always opens.
TEST_F(RegionStoreTest, SyncedWritesSurvivePowerCuts) {
  make(16384);
  uint64_t next = 0;
  std::mt19937 rng(5);
  for (int round = 0; round < (testing::kSanitized ? 4 : 10); ++round) {
    uint64_t synced = 0;
    {
      auto store = Store::open(options(round == 0));
      ASSERT_TRUE(store) << "round " << round << ": " << store.error().message;
      // Everything synced before this round is there.
      for (uint64_t i = 0; i < next; i += 97) {
        auto got = (*store)->get(Family::kXattrs, key(i));
        ASSERT_TRUE(got && got->has_value()) << "round " << round << " key " << i;
      }
      const uint64_t writes = 2000 + rng() % 5000;
      for (uint64_t w = 0; w < writes; ++w, ++next) {
        WriteSet set;
        set.put(Family::kXattrs, key(next), value(next));
        ASSERT_TRUE((*store)->write(set, Durability::kNone));
        if (rng() % 500 == 0) {
          ASSERT_TRUE((*store)->sync((*store)->latest_sequence()));
          synced = next + 1;
        }
      }
      ASSERT_TRUE((*store)->sync((*store)->latest_sequence()));
      synced = next;
      // More writes nobody syncs, then the power goes (the store is closed first: its writes
      // are handed to the device, but not flushed).
      for (uint64_t w = 0; w < 300; ++w) {
        WriteSet set;
        set.put(Family::kXattrs, "unsynced" + std::to_string(w), value(w));
        ASSERT_TRUE((*store)->write(set, Durability::kNone));
      }
    }
    device_->lose_power(round);
    next = synced;
  }
  auto store = Store::open(options(false));
  ASSERT_TRUE(store) << store.error().message;
  for (uint64_t i = 0; i < next; ++i) {
    auto got = (*store)->get(Family::kXattrs, key(i));
    ASSERT_TRUE(got && got->has_value()) << "key " << i;
    EXPECT_EQ(**got, value(i));
  }
}

TEST_F(RegionStoreTest, FsMetaOnTheRegion) {
  make(4096);
  {
    auto meta = FsMeta::open(options(true));
    ASSERT_TRUE(meta) << meta.error().message;
    CreateArgs args;
    args.mode = S_IFDIR | 0755;
    auto dir = (*meta)->create(kRootIno, "d", args, Durability::kGroupSync);
    ASSERT_TRUE(dir) << dir.error().message;
  }
  auto meta = FsMeta::open(options(false));
  ASSERT_TRUE(meta) << meta.error().message;
  EXPECT_TRUE((*meta)->lookup(kRootIno, "d"));
}

TEST_F(RegionStoreTest, AFullRegionIsENOSPCAndTheDatabaseStillOpens) {
  make(4096);  // 16 MiB: 4 MiB kept in reserve
  auto store = Store::open(options(true));
  ASSERT_TRUE(store) << store.error().message;
  Result<uint64_t> w = 0;
  uint64_t i = 0;
  std::string big(4000, 'x');
  for (; i < 100000 && w; ++i) {
    WriteSet set;
    big[i % big.size()] = static_cast<char>(i);
    set.put(Family::kXattrs, key(i), big);
    w = (*store)->write(set, i % 100 ? Durability::kNone : Durability::kGroupSync);
  }
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code, ENOSPC) << w.error().message;
  EXPECT_NE(w.error().message.find("metadata region is full"), std::string::npos) << w.error().message;
  store->reset();
  store = Store::open(options(false));
  ASSERT_TRUE(store) << store.error().message;
  auto got = (*store)->get(Family::kXattrs, key(1));
  ASSERT_TRUE(got && got->has_value());
}

TEST_F(RegionStoreTest, DataAcknowledgedBeforeTheRegionFilledIsCommittedAfter) {
  make(4096);  // 16 MiB: 4 MiB kept in reserve
  uint64_t ino = 0;
  StripeRef early;
  {
    auto meta = FsMeta::open(options(true));
    ASSERT_TRUE(meta) << meta.error().message;
    CreateArgs args;
    args.mode = S_IFREG | 0644;
    auto file = (*meta)->create(kRootIno, "kept", args);
    ASSERT_TRUE(file) << file.error().message;
    ino = file->ino;
    // A stripe taken while there was room: data placed in it is acknowledged to its writers.
    auto ref = (*meta)->allocate_stripe();
    ASSERT_TRUE(ref) << ref.error().message;
    early = *ref;
    // Then xattrs of random bytes (nothing to compress) fill the region until new work is
    // refused, new data included. (The region's use moves as RocksDB flushes and compacts: while
    // a stripe can still be had, the filling goes on.)
    std::mt19937_64 rng(7);
    std::string big(3000, '\0');
    std::optional<Error> refused;
    for (int i = 0; i < 20000 && !refused; ++i) {
      for (char& c : big) c = static_cast<char>(rng());
      auto w = (*meta)->set_xattr(ino, "user.x" + std::to_string(i), big, 0);
      if (w) continue;
      ASSERT_EQ(w.error().code, ENOSPC) << w.error().message;
      auto late = (*meta)->allocate_stripe();
      if (late) {
        (*meta)->release_stripe(late->id);
        continue;
      }
      refused = late.error();
    }
    ASSERT_TRUE(refused) << "20000 xattrs of 3000 bytes fit in a 16 MiB region?";
    EXPECT_EQ(refused->code, ENOSPC);
    EXPECT_NE(refused->message.find("metadata region is full"), std::string::npos) << refused->message;
    // ...but what was acknowledged before commits.
    Stripe record;
    record.id = early.id;
    record.generation = early.generation;
    record.state = StripeState::kOpen;
    record.filled_bytes = 2 * kBlockBytes;
    record.block_crcs.assign(2, 0x1234);
    const Extent extent{0, early.id, 0, 2 * kBlockBytes};
    auto committed = (*meta)->commit_write(ino, {&extent, 1}, {&record, 1}, Durability::kSyncEach);
    ASSERT_TRUE(committed) << committed.error().message;
  }
  auto meta = FsMeta::open(options(false));
  ASSERT_TRUE(meta) << meta.error().message;
  auto inode = (*meta)->getattr(ino);
  ASSERT_TRUE(inode) << inode.error().message;
  EXPECT_EQ(inode->size, 2 * kBlockBytes);
  auto map = (*meta)->map_range(ino, 0, inode->size);
  ASSERT_TRUE(map) << map.error().message;
  ASSERT_EQ(map->size(), 1u);
  EXPECT_FALSE((*map)[0].hole);
  EXPECT_EQ((*map)[0].stripe_id, early.id);
}

}  // namespace
}  // namespace raidfs::meta
