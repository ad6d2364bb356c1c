// Goal: the Store creates and reopens a database, refuses another array's or a newer format's,
// applies a WriteSet atomically, and groups concurrent syncs (one WAL fsync serves many callers).
// Method: real RocksDB in a temporary directory; the group-commit accounting is checked exactly.
#include "meta/store.h"

#include <gtest/gtest.h>

#include <thread>

#include "meta/fs_meta.h"
#include "meta/keys.h"
#include "meta/test_util.h"

namespace raidfs::meta {
namespace {

using testing::small_array;
using testing::TempDir;

TEST(Store, CreateThenReopenKeepsSuper) {
  TempDir dir;
  {
    auto s = Store::open(small_array(dir.path()));
    ASSERT_TRUE(s.has_value()) << s.error().message;
    EXPECT_EQ((*s)->super().stripe_count, 64u);
  }
  auto s = Store::open(small_array(dir.path(), /*create=*/false));
  ASSERT_TRUE(s.has_value()) << s.error().message;
  EXPECT_EQ((*s)->super().array_uuid, testing::uuid_of(1));
  EXPECT_EQ((*s)->super().stripe_data_bytes, 16u * 4096);
  EXPECT_EQ((*s)->super().geometry, "n=5 m=1 chunk=16384");
}

TEST(Store, MissingDatabaseWithoutCreateIsEnoent) {
  TempDir dir;
  auto s = Store::open(small_array(dir.sub("nothing"), false));
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, ENOENT);
}

TEST(Store, RefusesAnotherArraysUuid) {
  TempDir dir;
  ASSERT_TRUE(Store::open(small_array(dir.path())).has_value());
  StoreOptions other = small_array(dir.path(), false);
  other.array_uuid = testing::uuid_of(9);
  auto s = Store::open(other);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, EINVAL);
  EXPECT_NE(s.error().message.find("belongs to array 01020304-"), std::string::npos)
      << s.error().message;
  EXPECT_NE(s.error().message.find("not 090a0b0c-"), std::string::npos) << s.error().message;
  EXPECT_EQ(s.error().message.find('\n'), std::string::npos);
}

TEST(Store, RefusesNewerFormat) {
  TempDir dir;
  {
    auto s = Store::open(small_array(dir.path()));
    ASSERT_TRUE(s.has_value());
    Super newer = (*s)->super();
    newer.store_format = kStoreFormat + 1;
    WriteSet set;
    set.put(Family::kSuper, std::string(kSuperKey), encode_super(newer));
    ASSERT_TRUE((*s)->write(set, Durability::kSyncEach).has_value());
  }
  auto s = Store::open(small_array(dir.path(), false));
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, ENOTSUP);
  EXPECT_NE(s.error().message.find("newer than this raidfs"), std::string::npos)
      << s.error().message;
}

TEST(Store, RefusesCorruptSuper) {
  TempDir dir;
  {
    auto s = Store::open(small_array(dir.path()));
    ASSERT_TRUE(s.has_value());
    WriteSet set;
    set.put(Family::kSuper, std::string(kSuperKey), std::string("\x01\x00\x00", 3));
    ASSERT_TRUE((*s)->write(set, Durability::kNone).has_value());
  }
  auto s = Store::open(small_array(dir.path(), false));
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, EIO);
}

// A super record claiming 2^62 stripes must be refused (EIO), not crash FsMeta::open sizing its
// free map.
TEST(Store, RefusesSuperWithAbsurdStripeCount) {
  TempDir dir;
  {
    auto s = Store::open(small_array(dir.path()));
    ASSERT_TRUE(s.has_value());
    Super huge = (*s)->super();
    huge.stripe_count = uint64_t{1} << 62;
    WriteSet set;
    set.put(Family::kSuper, std::string(kSuperKey), encode_super(huge));
    ASSERT_TRUE((*s)->write(set, Durability::kNone).has_value());
  }
  auto m = FsMeta::open(small_array(dir.path(), false));
  ASSERT_FALSE(m.has_value());
  EXPECT_EQ(m.error().code, EIO);
  EXPECT_NE(m.error().message.find("stripe count"), std::string::npos) << m.error().message;

  StoreOptions create = small_array(dir.sub("new"));
  create.stripe_count = kStripeCountMax + 1;
  auto refused = Store::open(create);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, EINVAL);
}

TEST(Store, WriteSetGetScanFloor) {
  TempDir dir;
  auto opened = Store::open(small_array(dir.path()));
  ASSERT_TRUE(opened.has_value());
  Store& s = **opened;
  WriteSet set;
  for (uint64_t off : {0, 4096, 8192, 65536}) set.put(Family::kExtents, extent_key(7, off), "v" + std::to_string(off));
  set.put(Family::kExtents, extent_key(8, 0), "other");
  ASSERT_TRUE(s.write(set, Durability::kNone).has_value());
  WriteSet del;
  del.del(Family::kExtents, extent_key(7, 8192));
  ASSERT_TRUE(s.write(del, Durability::kGroupSync).has_value());

  EXPECT_EQ(s.get(Family::kExtents, extent_key(7, 4096)).value(), "v4096");
  EXPECT_FALSE(s.get(Family::kExtents, extent_key(7, 8192)).value().has_value());
  EXPECT_FALSE(s.get(Family::kInodes, extent_key(7, 4096)).value().has_value());  // other family

  std::vector<std::string> seen;
  ASSERT_TRUE(s.scan(Family::kExtents, u64_key(7), u64_key(8),
                     [&](std::string_view, std::string_view v) -> Result<bool> {
                       seen.emplace_back(v);
                       return true;
                     }).has_value());
  EXPECT_EQ(seen, (std::vector<std::string>{"v0", "v4096", "v65536"}));

  auto f = s.floor(Family::kExtents, extent_key(7, 60000), extent_key(7, 0)).value();
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->second, "v4096");
  auto exact = s.floor(Family::kExtents, extent_key(8, 0), extent_key(8, 0)).value();
  ASSERT_TRUE(exact.has_value());
  EXPECT_EQ(exact->second, "other");
  EXPECT_FALSE(s.floor(Family::kExtents, extent_key(6, 5), extent_key(6, 0)).value().has_value());
}

// synced_sequence() is a promise that everything up to it is durable. A kSyncEach write cannot
// tell which sequence it got (the latest may be another thread's unsynced write), so it leaves
// synced_sequence() alone; only sync() advances it.
TEST(Store, SyncEachWriteDoesNotClaimOtherWritesDurable) {
  TempDir dir;
  auto opened = Store::open(small_array(dir.path()));
  ASSERT_TRUE(opened.has_value());
  Store& s = **opened;
  const uint64_t synced = s.synced_sequence();
  WriteSet a;
  a.put(Family::kInodes, inode_key(10), "a");
  ASSERT_TRUE(s.write(a, Durability::kNone).has_value());
  WriteSet b;
  b.put(Family::kInodes, inode_key(11), "b");
  auto seq = s.write(b, Durability::kSyncEach);
  ASSERT_TRUE(seq.has_value());
  EXPECT_EQ(s.synced_sequence(), synced);
  ASSERT_TRUE(s.sync(*seq).has_value());
  EXPECT_GE(s.synced_sequence(), *seq);
}

TEST(Store, GroupCommitSharesWalSyncs) {
  TempDir dir;
  auto opened = Store::open(small_array(dir.path()));
  ASSERT_TRUE(opened.has_value());
  Store& s = **opened;
  const StoreStats before = s.stats();
  constexpr int kThreads = 8, kPerThread = 40;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int n = 0; n < kPerThread; ++n) {
        WriteSet set;
        set.put(Family::kInodes, inode_key(uint64_t(t) * 1000 + n), "x");
        auto seq = s.write(set, Durability::kGroupSync);
        if (!seq || s.synced_sequence() < *seq) ++failures;  // durable when write() returns
      }
    });
  for (auto& t : threads) t.join();
  const StoreStats after = s.stats();
  EXPECT_EQ(failures.load(), 0);
  const uint64_t syncs = after.wal_syncs - before.wal_syncs;
  const uint64_t waits = after.synced_waits - before.synced_waits;
  EXPECT_EQ(syncs + waits, uint64_t{kThreads * kPerThread});  // every call: led or was covered
  EXPECT_GE(s.synced_sequence(), s.latest_sequence());
  std::printf("group commit: %d synced writes, %llu WAL fsyncs\n", kThreads * kPerThread,
              static_cast<unsigned long long>(syncs));
}

}  // namespace
}  // namespace raidfs::meta
