// Goal: each FsMeta operation does what fs_meta.h promises — results, errno values, nlink rules,
// readdir cookies, extent splitting, live counts, orphans — and leaves the store consistent.
// Method: drive FsMeta on a temporary RocksDB; after each scenario the checker must find nothing.
#include "meta/fs_meta.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <random>
#include <set>

#include "meta/block_owners.h"
#include "meta/checker.h"
#include "meta/keys.h"
#include "meta/parity_rows.h"
#include "meta/repair.h"
#include "meta/test_util.h"

extern char** environ;

namespace raidfs::meta {
namespace {

using testing::small_array;
using testing::TempDir;

CreateArgs file_args(uint32_t perms = 0644) { return CreateArgs{S_IFREG | perms, 0, 0, 0, {}, {}, {}}; }
SetAttr size_attr(uint64_t size) {
  SetAttr a;
  a.size = size;
  return a;
}
CreateArgs dir_args() { return CreateArgs{S_IFDIR | 0755, 0, 0, 0, {}, {}, {}}; }

class FsMetaTest : public ::testing::Test {
 protected:
  void SetUp() override { reopen(); }
  void reopen() {
    meta_.reset();
    auto m = FsMeta::open(small_array(dir_.path()));
    ASSERT_TRUE(m.has_value()) << m.error().message;
    meta_ = std::move(*m);
  }
  void expect_consistent() {
    auto findings = check(meta_->store());
    ASSERT_TRUE(findings.has_value()) << findings.error().message;
    for (const Finding& f : *findings)
      ADD_FAILURE() << finding_kind_name(f.kind) << ": " << f.detail;
  }
  uint64_t mkfile(uint64_t parent, const std::string& name) {
    auto r = meta_->create(parent, name, file_args());
    EXPECT_TRUE(r.has_value()) << name << ": " << r.error().message;
    return r ? r->ino : 0;
  }
  uint64_t mkdir(uint64_t parent, const std::string& name) {
    auto r = meta_->create(parent, name, dir_args());
    EXPECT_TRUE(r.has_value()) << name << ": " << r.error().message;
    return r ? r->ino : 0;
  }
  uint32_t nlink(uint64_t ino) { return meta_->getattr(ino).value().nlink; }
  template <class T>
  int err(const Result<T>& r) { return r ? 0 : r.error().code; }

  // A stripe with `blocks` filled blocks, committed as `state`.
  Stripe stripe(StripeRef ref, uint32_t blocks, StripeState state = StripeState::kOpen) {
    Stripe s;
    s.id = ref.id;
    s.generation = ref.generation;
    s.state = state;
    s.filled_bytes = blocks * kBlockBytes;
    s.block_crcs.assign(blocks, 0xabcd);
    return s;
  }

  TempDir dir_;
  std::unique_ptr<FsMeta> meta_;
};

TEST_F(FsMetaTest, FreshStoreHasRootAndIsConsistent) {
  auto root = meta_->getattr(kRootIno);
  ASSERT_TRUE(root.has_value());
  EXPECT_TRUE(S_ISDIR(root->mode));
  EXPECT_EQ(root->nlink, 2u);
  EXPECT_EQ(meta_->free_stripe_count(), 64u);
  expect_consistent();
}

TEST_F(FsMetaTest, CreateLookupAndErrors) {
  uint64_t f = mkfile(kRootIno, "a");
  uint64_t d = mkdir(kRootIno, "d");
  EXPECT_NE(f, d);
  EXPECT_EQ(meta_->lookup(kRootIno, "a").value().ino, f);
  EXPECT_EQ(nlink(kRootIno), 3u);  // 2 + one subdirectory
  EXPECT_EQ(nlink(d), 2u);
  EXPECT_EQ(meta_->getattr(d).value().parent, kRootIno);

  EXPECT_EQ(err(meta_->create(kRootIno, "a", file_args())), EEXIST);
  EXPECT_EQ(err(meta_->create(f, "x", file_args())), ENOTDIR);
  EXPECT_EQ(err(meta_->create(999, "x", file_args())), ENOENT);
  EXPECT_EQ(err(meta_->create(kRootIno, "", file_args())), EINVAL);
  EXPECT_EQ(err(meta_->create(kRootIno, "..", file_args())), EINVAL);
  EXPECT_EQ(err(meta_->create(kRootIno, "a/b", file_args())), EINVAL);
  EXPECT_EQ(err(meta_->create(kRootIno, std::string(256, 'n'), file_args())), ENAMETOOLONG);
  EXPECT_TRUE(meta_->create(kRootIno, std::string(255, 'n'), file_args()).has_value());
  EXPECT_EQ(err(meta_->create(kRootIno, "s", CreateArgs{S_IFLNK | 0777, 0, 0, 0, {}, {}, {}})), EINVAL);
  EXPECT_EQ(err(meta_->lookup(kRootIno, "zz")), ENOENT);
  EXPECT_EQ(err(meta_->lookup(f, "zz")), ENOTDIR);

  auto link = meta_->create(kRootIno, "s", CreateArgs{S_IFLNK | 0777, 1, 2, 0, "a/target", {}, {}});
  ASSERT_TRUE(link.has_value());
  EXPECT_EQ(meta_->getattr(link->ino).value().symlink_target, "a/target");
  EXPECT_EQ(link->size, 8u);
  auto dev = meta_->create(kRootIno, "dev", CreateArgs{S_IFCHR | 0600, 0, 0, 0x0501, {}, {}, {}});
  ASSERT_TRUE(dev.has_value());
  EXPECT_EQ(meta_->getattr(dev->ino).value().rdev, 0x0501u);
  expect_consistent();

  // Inode numbers are never reused, across reopen too.
  reopen();
  uint64_t g = mkfile(kRootIno, "g");
  EXPECT_GT(g, dev->ino);
  expect_consistent();
}

TEST_F(FsMetaTest, LinkUnlinkRmdir) {
  uint64_t d = mkdir(kRootIno, "d");
  uint64_t f = mkfile(d, "f");
  ASSERT_TRUE(meta_->link(f, kRootIno, "f2").has_value());
  EXPECT_EQ(nlink(f), 2u);
  EXPECT_EQ(err(meta_->link(d, kRootIno, "d2")), EPERM);
  EXPECT_EQ(err(meta_->link(f, kRootIno, "f2")), EEXIST);
  EXPECT_EQ(err(meta_->unlink(kRootIno, "d", false)), EISDIR);
  EXPECT_EQ(err(meta_->rmdir(kRootIno, "d")), ENOTEMPTY);
  EXPECT_EQ(err(meta_->rmdir(kRootIno, "f2")), ENOTDIR);
  expect_consistent();

  auto r = meta_->unlink(d, "f", false);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->nlink, 1u);
  EXPECT_FALSE(r->removed);
  EXPECT_EQ(err(meta_->unlink(d, "f", false)), ENOENT);
  ASSERT_TRUE(meta_->rmdir(kRootIno, "d").has_value());
  EXPECT_EQ(nlink(kRootIno), 2u);
  EXPECT_EQ(err(meta_->getattr(d)), ENOENT);
  r = meta_->unlink(kRootIno, "f2", false);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->removed);
  EXPECT_EQ(err(meta_->getattr(f)), ENOENT);
  expect_consistent();
}

TEST_F(FsMetaTest, RenameSemantics) {
  uint64_t a = mkdir(kRootIno, "a");
  uint64_t b = mkdir(kRootIno, "b");
  uint64_t x = mkfile(a, "x");
  uint64_t y = mkfile(b, "y");
  uint64_t sub = mkdir(a, "sub");
  uint64_t empty = mkdir(b, "empty");

  // Plain move across directories.
  ASSERT_TRUE(meta_->rename(a, "x", b, "x2", 0, false).has_value());
  EXPECT_EQ(meta_->lookup(b, "x2").value().ino, x);
  EXPECT_EQ(err(meta_->lookup(a, "x")), ENOENT);
  // NOREPLACE onto an existing name.
  EXPECT_EQ(err(meta_->rename(b, "x2", b, "y", kRenameNoReplace, false)), EEXIST);
  // Type mismatches and a non-empty target directory.
  EXPECT_EQ(err(meta_->rename(a, "sub", b, "y", 0, false)), ENOTDIR);
  EXPECT_EQ(err(meta_->rename(b, "y", b, "empty", 0, false)), EISDIR);
  mkfile(sub, "inner");
  EXPECT_EQ(err(meta_->rename(b, "empty", a, "sub", 0, false)), ENOTEMPTY);
  // Into its own subtree.
  EXPECT_EQ(err(meta_->rename(kRootIno, "a", sub, "a", 0, false)), EINVAL);
  EXPECT_EQ(err(meta_->rename(kRootIno, "a", a, "a", 0, false)), EINVAL);
  EXPECT_EQ(err(meta_->rename(a, "nothing", b, "q", 0, false)), ENOENT);
  EXPECT_EQ(err(meta_->rename(a, "sub", b, "q", kRenameExchange, false)), ENOENT);
  EXPECT_EQ(err(meta_->rename(a, "sub", b, "q", 3, false)), EINVAL);
  expect_consistent();

  // File over file: the target loses its only name and is removed.
  auto r = meta_->rename(b, "x2", b, "y", 0, false);
  ASSERT_TRUE(r.has_value());
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->ino, y);
  EXPECT_TRUE((*r)->removed);
  EXPECT_EQ(err(meta_->getattr(y)), ENOENT);
  EXPECT_EQ(meta_->lookup(b, "y").value().ino, x);

  // Directory over an empty directory, across parents: nlink of both parents follows.
  EXPECT_EQ(nlink(a), 3u);
  EXPECT_EQ(nlink(b), 3u);
  r = meta_->rename(a, "sub", b, "empty", 0, false);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(err(meta_->getattr(empty)), ENOENT);
  EXPECT_EQ(nlink(a), 2u);
  EXPECT_EQ(nlink(b), 3u);
  EXPECT_EQ(meta_->getattr(sub).value().parent, b);
  expect_consistent();

  // Exchange a file and a directory across parents.
  uint64_t f = mkfile(a, "f");
  ASSERT_TRUE(meta_->rename(a, "f", b, "empty", kRenameExchange, false).has_value());
  EXPECT_EQ(meta_->lookup(a, "f").value().ino, sub);
  EXPECT_EQ(meta_->lookup(b, "empty").value().ino, f);
  EXPECT_EQ(meta_->getattr(sub).value().parent, a);
  EXPECT_EQ(nlink(a), 3u);
  EXPECT_EQ(nlink(b), 2u);
  expect_consistent();

  // Two names of one inode: rename is a no-op and both names stay.
  ASSERT_TRUE(meta_->link(x, b, "x3").has_value());
  ASSERT_TRUE(meta_->rename(b, "x3", b, "y", 0, false).has_value());
  EXPECT_EQ(meta_->lookup(b, "x3").value().ino, x);
  EXPECT_EQ(nlink(x), 2u);
  // Replacing an open file orphans it.
  uint64_t open_file = mkfile(b, "open");
  r = meta_->rename(b, "x3", b, "open", 0, /*target_open=*/true);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE((*r)->orphaned);
  EXPECT_EQ(meta_->orphans(), std::vector<uint64_t>{open_file});
  expect_consistent();
  ASSERT_TRUE(meta_->release(open_file).has_value());
  EXPECT_TRUE(meta_->orphans().empty());
  EXPECT_EQ(err(meta_->getattr(open_file)), ENOENT);
  expect_consistent();
}

// Directory depth has no limit, so rename's walk up the parent chain must not call a deep tree
// corrupt; only a real cycle is.
TEST_F(FsMetaTest, RenameIntoAVeryDeepDirectory) {
  constexpr int kDepth = 4200;
  uint64_t dir = kRootIno;
  for (int n = 0; n < kDepth; ++n) {
    dir = mkdir(dir, "d");
    ASSERT_NE(dir, 0u);
  }
  mkdir(kRootIno, "x");
  auto r = meta_->rename(kRootIno, "x", dir, "x", 0, false);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(err(meta_->rename(kRootIno, "d", dir, "loop", 0, false)), EINVAL);  // own subtree
  expect_consistent();
}

TEST_F(FsMetaTest, ReaddirCookiesSurviveInsertsAndDeletes) {
  uint64_t d = mkdir(kRootIno, "d");
  std::set<std::string> present;
  for (int n = 0; n < 100; ++n) {
    mkfile(d, "f" + std::to_string(n));
    present.insert("f" + std::to_string(n));
  }
  std::multiset<std::string> listed;
  auto first = meta_->readdir(d, 0, 10);
  ASSERT_TRUE(first.has_value());
  ASSERT_EQ(first->entries.size(), 10u);
  EXPECT_FALSE(first->end);
  for (auto& e : first->entries) listed.insert(e.name);
  uint64_t cookie = first->entries.back().cookie;

  // Between batches: delete some listed and some unlisted entries, add new ones.
  std::set<std::string> deleted_unlisted;
  for (int n = 0; n < 100; n += 7) {
    std::string name = "f" + std::to_string(n);
    ASSERT_TRUE(meta_->unlink(d, name, false).has_value());
    present.erase(name);
    if (!listed.contains(name)) deleted_unlisted.insert(name);
  }
  for (int n = 0; n < 20; ++n) mkfile(d, "new" + std::to_string(n));

  for (;;) {
    auto batch = meta_->readdir(d, cookie, 13);
    ASSERT_TRUE(batch.has_value());
    for (auto& e : batch->entries) {
      EXPECT_GT(e.cookie, cookie);
      cookie = e.cookie;
      listed.insert(e.name);
    }
    if (batch->end) break;
  }
  for (const std::string& name : present) EXPECT_EQ(listed.count(name), 1u) << name;
  for (const std::string& name : deleted_unlisted) EXPECT_EQ(listed.count(name), 0u) << name;
  for (int n = 0; n < 20; ++n) EXPECT_EQ(listed.count("new" + std::to_string(n)), 1u);
  expect_consistent();
}

TEST_F(FsMetaTest, LargeDirectoryListsCompletelyInBatches) {
  const int count = testing::kSanitized ? 20000 : 100000;
  uint64_t d = mkdir(kRootIno, "big");
  auto t0 = std::chrono::steady_clock::now();
  for (int n = 0; n < count; ++n)
    ASSERT_TRUE(meta_->create(d, "entry-" + std::to_string(n), file_args()).has_value());
  auto t1 = std::chrono::steady_clock::now();
  std::vector<bool> seen(count, false);
  uint64_t cookie = 0;
  size_t batches = 0, max_batch = 0, total = 0;
  for (;;) {
    auto batch = meta_->readdir(d, cookie, 1000);
    ASSERT_TRUE(batch.has_value());
    ++batches;
    max_batch = std::max(max_batch, batch->entries.size());
    for (auto& e : batch->entries) {
      int n = std::stoi(e.name.substr(6));
      ASSERT_FALSE(seen[n]) << e.name;
      seen[n] = true;
      ++total;
      cookie = e.cookie;
    }
    if (batch->end) break;
  }
  auto t2 = std::chrono::steady_clock::now();
  EXPECT_EQ(total, size_t(count));
  EXPECT_LE(max_batch, 1000u);  // memory per call is bounded by the batch size
  EXPECT_GE(batches, size_t(count) / 1000);
  std::printf("%d creates in %.2f s, listed in %zu batches in %.2f s\n", count,
              std::chrono::duration<double>(t1 - t0).count(), batches,
              std::chrono::duration<double>(t2 - t1).count());
}

TEST_F(FsMetaTest, CommitWriteSplitsExtentsAndCountsLiveBlocks) {
  uint64_t f = mkfile(kRootIno, "data");
  auto s1 = meta_->allocate_stripe();
  ASSERT_TRUE(s1.has_value());
  EXPECT_EQ(meta_->free_stripe_count(), 63u);
  // 16 blocks at file offset 0 → stripe s1 bytes [0, 64 KiB).
  Extent whole{0, s1->id, 0, 16 * kBlockBytes};
  ASSERT_TRUE(meta_->commit_write(f, {&whole, 1}, {std::vector{stripe(*s1, 16, StripeState::kSealed)}}).has_value());
  EXPECT_EQ(meta_->getattr(f).value().size, 16u * kBlockBytes);
  EXPECT_EQ(meta_->get_stripe(s1->id).value().live_blocks, 16u);
  EXPECT_EQ(meta_->getattr(f).value().blocks, 16u);
  expect_consistent();

  // Overwrite blocks 4..5 from a new open stripe: the old extent splits in two around it.
  auto s2 = meta_->allocate_stripe();
  ASSERT_TRUE(s2.has_value());
  EXPECT_GT(s2->generation, s1->generation);
  Extent mid{4 * kBlockBytes, s2->id, 0, 2 * kBlockBytes};
  ASSERT_TRUE(meta_->commit_write(f, {&mid, 1}, {std::vector{stripe(*s2, 2)}}).has_value());
  EXPECT_EQ(meta_->get_stripe(s1->id).value().live_blocks, 14u);
  EXPECT_EQ(meta_->get_stripe(s2->id).value().live_blocks, 2u);
  EXPECT_EQ(meta_->open_stripes(), std::vector<uint64_t>{s2->id});
  EXPECT_EQ(meta_->getattr(f).value().blocks, 16u) << "an overwrite allocates as much as it frees";

  auto map = meta_->map_range(f, 0, 1 << 30);
  ASSERT_TRUE(map.has_value());
  ASSERT_EQ(map->size(), 3u);
  EXPECT_EQ((*map)[0].stripe_id, s1->id);
  EXPECT_EQ((*map)[0].length, 4u * kBlockBytes);
  EXPECT_EQ((*map)[1].stripe_id, s2->id);
  EXPECT_EQ((*map)[2].stripe_id, s1->id);
  EXPECT_EQ((*map)[2].stripe_offset, 6u * kBlockBytes);
  EXPECT_EQ((*map)[2].file_offset + (*map)[2].length, 16u * kBlockBytes);
  expect_consistent();

  // A write beyond EOF leaves a hole; map_range reports it.
  Extent far{40 * kBlockBytes, s2->id, kBlockBytes, 100};
  ASSERT_TRUE(meta_->commit_write(f, {&far, 1}, {}).has_value());
  map = meta_->map_range(f, 15 * kBlockBytes, 30 * kBlockBytes);
  ASSERT_TRUE(map.has_value());
  ASSERT_EQ(map->size(), 3u);
  EXPECT_FALSE((*map)[0].hole);
  EXPECT_TRUE((*map)[1].hole);
  EXPECT_EQ((*map)[1].file_offset, 16u * kBlockBytes);
  EXPECT_EQ((*map)[2].length, 100u);
  EXPECT_EQ(meta_->getattr(f).value().size, 40u * kBlockBytes + 100);
  EXPECT_EQ(meta_->getattr(f).value().blocks, 17u) << "the hole takes no block";
  expect_consistent();

  // Bad extents are refused and change nothing.
  Extent on_free{0, 63, 0, 10};
  EXPECT_EQ(err(meta_->commit_write(f, {&on_free, 1}, {})), EINVAL);
  Extent past{0, s2->id, 0, 3 * kBlockBytes};
  EXPECT_EQ(err(meta_->commit_write(f, {&past, 1}, {})), EINVAL);
  std::vector<Extent> overlapping{{0, s2->id, 0, 100}, {50, s2->id, 0, 100}};
  EXPECT_EQ(err(meta_->commit_write(f, overlapping, {})), EINVAL);
  EXPECT_EQ(meta_->get_stripe(s1->id).value().live_blocks, 14u);
  expect_consistent();

  // Truncate to 2 blocks: the sealed stripe keeps 2 live blocks, the open one none.
  ASSERT_TRUE(meta_->setattr(f, size_attr(2 * kBlockBytes)).has_value());
  EXPECT_EQ(meta_->get_stripe(s1->id).value().live_blocks, 2u);
  EXPECT_EQ(meta_->get_stripe(s2->id).value().live_blocks, 0u);
  EXPECT_EQ(meta_->getattr(f).value().blocks, 2u);
  expect_consistent();

  // Removing the file frees the sealed stripe, but it is handed out again only once that commit
  // is durable: first every other free stripe, then (after a WAL sync) s1.
  const uint64_t synced_before = meta_->store().synced_sequence();
  ASSERT_TRUE(meta_->unlink(kRootIno, "data", false).has_value());
  const uint64_t freed_at = meta_->store().latest_sequence();
  EXPECT_EQ(meta_->get_stripe(s1->id).value().state, StripeState::kFree);
  EXPECT_EQ(meta_->free_stripe_count(), 63u);  // s2 is still open; s1 counts as soon to be free
  expect_consistent();
  for (int n = 0; n < 62; ++n) {
    auto other = meta_->allocate_stripe();
    ASSERT_TRUE(other.has_value());
    EXPECT_NE(other->id, s1->id) << "handed out before its free was durable";
  }
  EXPECT_EQ(meta_->store().synced_sequence(), synced_before);
  auto again = meta_->allocate_stripe();
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->id, s1->id);
  EXPECT_GE(meta_->store().synced_sequence(), freed_at);
  EXPECT_EQ(err(meta_->allocate_stripe()), ENOSPC);
  reopen();
  EXPECT_EQ(meta_->free_stripe_count(), 63u);
  EXPECT_EQ(meta_->open_stripes(), std::vector<uint64_t>{s2->id});
}

TEST_F(FsMetaTest, OverwriteInsideOneBlockKeepsReferenceCounts) {
  uint64_t f = mkfile(kRootIno, "f");
  auto s = meta_->allocate_stripe().value();
  Extent a{0, s.id, 0, 3 * kBlockBytes};
  ASSERT_TRUE(meta_->commit_write(f, {&a, 1}, {std::vector{stripe(s, 4)}}).has_value());
  // Replace a 100-byte piece inside block 1: both remnants still touch block 1.
  Extent b{kBlockBytes + 10, s.id, 3 * kBlockBytes, 100};
  ASSERT_TRUE(meta_->commit_write(f, {&b, 1}, {}).has_value());
  EXPECT_EQ(meta_->get_stripe(s.id).value().live_blocks, 2u + 2u + 1u);
  expect_consistent();
}

// More extents than one map_range call may return: each call ends at the last segment it read
// (no made-up hole over extents it never looked at), and continuing covers the file exactly.
TEST_F(FsMetaTest, MapRangeStopsAtTheSegmentLimitWithoutInventingAHole) {
  uint64_t f = mkfile(kRootIno, "many");
  auto s = meta_->allocate_stripe().value();
  constexpr uint32_t kExtents = 5000, kLength = 10;  // contiguous, 50000 bytes in one stripe
  std::vector<Extent> extents;
  for (uint32_t n = 0; n < kExtents; ++n)
    extents.push_back(Extent{uint64_t{n} * kLength, s.id, n * kLength, kLength});
  ASSERT_TRUE(meta_->commit_write(f, extents, {std::vector{stripe(s, 13)}}).has_value());
  const uint64_t data_end = uint64_t{kExtents} * kLength;
  ASSERT_TRUE(meta_->setattr(f, size_attr(data_end + 5000)).has_value());  // a real hole at the end

  auto first = meta_->map_range(f, 0, data_end);
  ASSERT_TRUE(first.has_value());
  ASSERT_FALSE(first->empty());
  EXPECT_LE(first->size(), kMappingsMax);
  for (const Mapping& m : *first) EXPECT_FALSE(m.hole) << "hole at " << m.file_offset;

  uint64_t pos = 0, data_bytes = 0, hole_bytes = 0, calls = 0;
  while (pos < data_end + 5000) {
    auto map = meta_->map_range(f, pos, UINT64_MAX);
    ASSERT_TRUE(map.has_value());
    ASSERT_FALSE(map->empty());
    ASSERT_LE(map->size(), kMappingsMax);
    ++calls;
    for (const Mapping& m : *map) {
      ASSERT_EQ(m.file_offset, pos);
      if (m.hole) {
        EXPECT_GE(m.file_offset, data_end) << "data reported as a hole";
        hole_bytes += m.length;
      } else {
        EXPECT_EQ(m.stripe_offset, m.file_offset);
        data_bytes += m.length;
      }
      pos += m.length;
    }
  }
  EXPECT_EQ(data_bytes, data_end);
  EXPECT_EQ(hole_bytes, 5000u);
  EXPECT_EQ(calls, 2u);
  expect_consistent();
}

// A stripe record may only move forward within one incarnation of the stripe: a late commit of an
// earlier incarnation's record, or one that shrinks, rewrites or reopens a stripe, is refused and
// changes nothing.
TEST_F(FsMetaTest, CommitWriteRefusesStaleAndBackwardStripeRecords) {
  // Incarnation 1 of a stripe: sealed, then freed by removing its only file.
  uint64_t f1 = mkfile(kRootIno, "f1");
  auto x1 = meta_->allocate_stripe().value();
  Extent e{0, x1.id, 0, kBlockBytes};
  const Stripe sealed1 = stripe(x1, 16, StripeState::kSealed);
  ASSERT_TRUE(meta_->commit_write(f1, {&e, 1}, {std::vector{sealed1}}).has_value());
  ASSERT_TRUE(meta_->unlink(kRootIno, "f1", false, Durability::kGroupSync).has_value());
  EXPECT_EQ(err(meta_->commit_write(0, {}, {std::vector{sealed1}})), ESTALE);  // free, not allocated
  // Incarnation 2 of the same id (allocate everything else first).
  StripeRef x2{};
  for (;;) {
    x2 = meta_->allocate_stripe().value();
    if (x2.id == x1.id) break;
  }
  EXPECT_GT(x2.generation, x1.generation);
  EXPECT_EQ(err(meta_->commit_write(0, {}, {std::vector{sealed1}})), ESTALE);  // wrong generation
  uint64_t f2 = mkfile(kRootIno, "f2");
  Stripe open2 = stripe(x2, 2);
  open2.block_crcs = {42, 43};
  ASSERT_TRUE(meta_->commit_write(f2, {&e, 1}, {std::vector{open2}}).has_value());

  EXPECT_EQ(err(meta_->commit_write(0, {}, {std::vector{sealed1}})), ESTALE);  // the late commit
  Stripe shrunk = open2;
  shrunk.filled_bytes = kBlockBytes;
  shrunk.block_crcs = {42};
  EXPECT_EQ(err(meta_->commit_write(0, {}, {std::vector{shrunk}})), EINVAL);
  Stripe rewritten = open2;
  rewritten.block_crcs = {42, 44};
  EXPECT_EQ(err(meta_->commit_write(0, {}, {std::vector{rewritten}})), EINVAL);
  const Stripe stored = meta_->get_stripe(x2.id).value();
  EXPECT_EQ(stored.generation, x2.generation);
  EXPECT_EQ(stored.block_crcs, open2.block_crcs);
  expect_consistent();

  // Forward moves are accepted: fill further (the partly filled block may change), then seal.
  Stripe grown = stripe(x2, 3);
  grown.block_crcs = {42, 43, 7};
  ASSERT_TRUE(meta_->commit_write(0, {}, {std::vector{grown}}).has_value());
  grown.state = StripeState::kSealed;
  ASSERT_TRUE(meta_->commit_write(0, {}, {std::vector{grown}}).has_value());
  ASSERT_TRUE(meta_->commit_write(0, {}, {std::vector{grown}}).has_value());  // idempotent
  Stripe reopened = grown;
  reopened.state = StripeState::kOpen;
  EXPECT_EQ(err(meta_->commit_write(0, {}, {std::vector{reopened}})), EINVAL);
  Stripe refilled = stripe(x2, 4, StripeState::kSealed);
  refilled.block_crcs = {42, 43, 7, 8};
  EXPECT_EQ(err(meta_->commit_write(0, {}, {std::vector{refilled}})), EINVAL);
  EXPECT_EQ(meta_->get_stripe(x2.id).value().state, StripeState::kSealed);
  auto map = meta_->map_range(f2, 0, kBlockBytes).value();
  ASSERT_EQ(map.size(), 1u);
  EXPECT_EQ(map[0].stripe_id, x2.id);
  expect_consistent();
}

// Stripe reuse on a 2-stripe array, against a model: a stripe is never handed out while another
// allocation or a committed record holds it, nor before the commit that freed it is durable, and
// release_stripe() of anything but an uncommitted allocation changes nothing.
TEST_F(FsMetaTest, FreedStripeIsHandedOutOnceAndOnlyWhenTheFreeIsDurable) {
  {
    meta_.reset();
    TempDir small;
    StoreOptions o = testing::small_array(small.path());
    o.stripe_count = 2;
    auto m = FsMeta::open(o);
    ASSERT_TRUE(m.has_value());
    FsMeta& meta = **m;

    // The reviewer's sequence: free x without syncing, release it by mistake, allocate twice.
    uint64_t f = meta.create(kRootIno, "f", file_args()).value().ino;
    auto x = meta.allocate_stripe().value();
    Extent e{0, x.id, 0, kBlockBytes};
    ASSERT_TRUE(meta.commit_write(f, {&e, 1}, {std::vector{stripe(x, 16, StripeState::kSealed)}},
                                  Durability::kGroupSync).has_value());
    ASSERT_TRUE(meta.unlink(kRootIno, "f", false).has_value());
    const uint64_t freed_at = meta.store().latest_sequence();
    meta.release_stripe(x.id);
    auto y = meta.allocate_stripe().value();
    EXPECT_NE(y.id, x.id);
    auto z = meta.allocate_stripe().value();  // nothing else free: syncs, then reuses x
    EXPECT_EQ(z.id, x.id);
    EXPECT_GE(meta.store().synced_sequence(), freed_at);
    ASSERT_TRUE(meta.commit_write(0, {}, {std::vector{stripe(y, 1)}}).has_value());
    ASSERT_TRUE(meta.store().sync(meta.store().latest_sequence()).has_value());
    EXPECT_EQ(err(meta.allocate_stripe()), ENOSPC);  // y in use, z allocated
    meta.release_stripe(y.id);                       // committed: ignored
    EXPECT_EQ(err(meta.allocate_stripe()), ENOSPC);
    meta.release_stripe(z.id);
    meta.release_stripe(z.id);                       // twice: the second is ignored
    EXPECT_EQ(meta.allocate_stripe().value().id, z.id);
    EXPECT_EQ(err(meta.allocate_stripe()), ENOSPC);
  }

  // Random sequences of allocate / commit / free (unsynced) / release / sync.
  TempDir small;
  StoreOptions o = testing::small_array(small.path());
  o.stripe_count = 2;
  auto m = FsMeta::open(o);
  ASSERT_TRUE(m.has_value());
  FsMeta& meta = **m;
  std::mt19937 rng(7);
  std::map<uint64_t, StripeRef> allocated;         // id → handed out, not committed
  std::map<uint64_t, std::string> committed;       // id → the file whose extent holds it
  std::map<uint64_t, uint64_t> freed_at;           // id → sequence of the freeing commit
  uint64_t last_generation = 0;
  int files = 0, allocations = 0, reuses = 0;
  const int ops = testing::kSanitized ? 600 : 2000;
  for (int n = 0; n < ops; ++n) {
    switch (rng() % 5) {
      case 0: {
        auto r = meta.allocate_stripe();
        if (!r) {
          ASSERT_EQ(r.error().code, ENOSPC);
          ASSERT_EQ(allocated.size() + committed.size(), 2u);
          break;
        }
        ++allocations;
        ASSERT_FALSE(allocated.contains(r->id)) << "stripe " << r->id << " handed out twice";
        ASSERT_FALSE(committed.contains(r->id)) << "stripe " << r->id << " is in use";
        if (auto fr = freed_at.find(r->id); fr != freed_at.end()) {
          ASSERT_GE(meta.store().synced_sequence(), fr->second)
              << "stripe " << r->id << " reused before its free was durable";
          freed_at.erase(fr);
          ++reuses;
        }
        ASSERT_GT(r->generation, last_generation);
        last_generation = r->generation;
        allocated[r->id] = *r;
        break;
      }
      case 1: {
        if (allocated.empty()) break;
        StripeRef ref = allocated.begin()->second;
        const std::string name = "f" + std::to_string(files++);
        uint64_t ino = meta.create(kRootIno, name, file_args()).value().ino;
        Extent e{0, ref.id, 0, kBlockBytes};
        ASSERT_TRUE(meta.commit_write(ino, {&e, 1}, {std::vector{stripe(ref, 16, StripeState::kSealed)}})
                        .has_value());
        allocated.erase(ref.id);
        committed[ref.id] = name;
        break;
      }
      case 2: {
        if (committed.empty()) break;
        auto it = std::next(committed.begin(), rng() % committed.size());
        ASSERT_TRUE(meta.unlink(kRootIno, it->second, false).has_value());
        freed_at[it->first] = meta.store().latest_sequence();
        committed.erase(it);
        break;
      }
      case 3: {
        const uint64_t id = rng() % 2;
        meta.release_stripe(id);
        if (allocated.erase(id)) freed_at.erase(id);  // never committed: free at once
        break;
      }
      default:
        if (rng() % 3 == 0) {
          ASSERT_TRUE(meta.store().sync(meta.store().latest_sequence()).has_value());
        }
        break;
    }
  }
  EXPECT_GT(reuses, ops / 50);
  EXPECT_GT(allocations, ops / 10);
  auto findings = check(meta.store());
  ASSERT_TRUE(findings.has_value());
  for (const Finding& f : *findings) ADD_FAILURE() << finding_kind_name(f.kind) << ": " << f.detail;
}

TEST_F(FsMetaTest, OrphansAreRemovedAtNextOpen) {
  uint64_t f = mkfile(kRootIno, "f");
  auto s = meta_->allocate_stripe().value();
  Extent e{0, s.id, 0, 4 * kBlockBytes};
  ASSERT_TRUE(meta_->commit_write(f, {&e, 1}, {std::vector{stripe(s, 4, StripeState::kSealed)}}).has_value());
  ASSERT_TRUE(meta_->set_xattr(f, "user.k", "v", 0).has_value());
  auto r = meta_->unlink(kRootIno, "f", /*is_open=*/true);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->orphaned);
  EXPECT_EQ(meta_->getattr(f).value().nlink, 0u);
  EXPECT_EQ(meta_->map_range(f, 0, 100).value().size(), 1u);  // still readable while open
  EXPECT_EQ(meta_->orphans(), std::vector<uint64_t>{f});
  expect_consistent();

  reopen();  // as after a crash: nothing is open any more
  EXPECT_EQ(meta_->orphans_removed_at_open(), 1u);
  EXPECT_TRUE(meta_->orphans().empty());
  EXPECT_EQ(err(meta_->getattr(f)), ENOENT);
  EXPECT_EQ(meta_->get_stripe(s.id).value().state, StripeState::kFree);
  EXPECT_EQ(meta_->free_stripe_count(), 64u);
  expect_consistent();
}

TEST_F(FsMetaTest, SetattrAndXattrs) {
  uint64_t f = mkfile(kRootIno, "f");
  SetAttr attr;
  attr.mode = 0600;
  attr.uid = 7;
  attr.mtime_ns = 1234;
  auto after = meta_->setattr(f, attr);
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->mode, uint32_t{S_IFREG | 0600});
  EXPECT_EQ(after->uid, 7u);
  EXPECT_EQ(meta_->getattr(f).value().mtime_ns, 1234);
  EXPECT_EQ(err(meta_->setattr(kRootIno, size_attr(5))), EISDIR);
  ASSERT_TRUE(meta_->setattr(f, size_attr(1 << 20)).has_value());
  EXPECT_TRUE(meta_->map_range(f, 0, 1 << 20).value().at(0).hole);

  EXPECT_EQ(err(meta_->get_xattr(f, "user.a")), ENODATA);
  EXPECT_EQ(err(meta_->set_xattr(f, "user.a", "1", XATTR_REPLACE)), ENODATA);
  ASSERT_TRUE(meta_->set_xattr(f, "user.a", "1", XATTR_CREATE).has_value());
  EXPECT_EQ(err(meta_->set_xattr(f, "user.a", "2", XATTR_CREATE)), EEXIST);
  ASSERT_TRUE(meta_->set_xattr(f, "user.a", "2", XATTR_REPLACE).has_value());
  ASSERT_TRUE(meta_->set_xattr(f, "user.b", std::string(1000, 'z'), 0).has_value());
  EXPECT_EQ(meta_->get_xattr(f, "user.a").value(), "2");
  EXPECT_EQ(meta_->list_xattrs(f).value(), (std::vector<std::string>{"user.a", "user.b"}));
  EXPECT_EQ(err(meta_->set_xattr(f, "user.big", std::string(kXattrValueBytesMax + 1, 'z'), 0)), E2BIG);
  ASSERT_TRUE(meta_->remove_xattr(f, "user.a").has_value());
  EXPECT_EQ(err(meta_->remove_xattr(f, "user.a")), ENODATA);
  ASSERT_TRUE(meta_->unlink(kRootIno, "f", false).has_value());
  expect_consistent();  // the xattrs went with the inode
}

TEST_F(FsMetaTest, CheckerReportsPlantedDamage) {
  uint64_t f = mkfile(kRootIno, "f");
  auto s = meta_->allocate_stripe().value();
  Extent e{0, s.id, 0, 2 * kBlockBytes};
  ASSERT_TRUE(meta_->commit_write(f, {&e, 1}, {std::vector{stripe(s, 2)}}).has_value());
  expect_consistent();
  WriteSet damage;
  damage.put(Family::kDirents, dirent_key(kRootIno, "ghost"), encode_dirent(Dirent{777, FileType::kRegular, 3}));
  damage.put(Family::kExtents, extent_key(f, 100), encode_extent(Extent{100, 50, 0, 10}));
  damage.put(Family::kInodes, inode_key(555), "garbage");
  Stripe wrong = meta_->get_stripe(s.id).value();
  wrong.live_blocks = 9;
  damage.put(Family::kStripes, stripe_key(s.id), encode_stripe(wrong));
  ASSERT_TRUE(meta_->store().write(damage, Durability::kNone).has_value());
  auto findings = check(meta_->store()).value();
  std::set<Finding::Kind> kinds;
  for (auto& x : findings) kinds.insert(x.kind);
  EXPECT_TRUE(kinds.contains(Finding::Kind::kDanglingDirent));
  EXPECT_TRUE(kinds.contains(Finding::Kind::kCookieIndex));
  EXPECT_TRUE(kinds.contains(Finding::Kind::kExtentOverlap));
  EXPECT_TRUE(kinds.contains(Finding::Kind::kExtentBadStripe));
  EXPECT_TRUE(kinds.contains(Finding::Kind::kCorruptRecord));
  EXPECT_TRUE(kinds.contains(Finding::Kind::kLiveCount));
  EXPECT_TRUE(kinds.contains(Finding::Kind::kBlockCount)) << "the planted extent is not counted";
}

TEST_F(FsMetaTest, AnUnnamedFileIsAnOrphanUntilLinkNamesIt) {
  uint64_t d = mkdir(kRootIno, "d");
  auto tmp = meta_->create_unnamed(d, file_args(0600));
  ASSERT_TRUE(tmp) << tmp.error().message;
  EXPECT_EQ(tmp->nlink, 0u);
  EXPECT_EQ(meta_->orphans(), std::vector<uint64_t>{tmp->ino});
  expect_consistent();
  EXPECT_EQ(err(meta_->create_unnamed(d, dir_args())), EINVAL);
  EXPECT_EQ(err(meta_->create_unnamed(tmp->ino, file_args())), ENOTDIR);
  auto named = meta_->link(tmp->ino, kRootIno, "kept");
  ASSERT_TRUE(named) << named.error().message;
  EXPECT_EQ(named->nlink, 1u);
  EXPECT_TRUE(meta_->orphans().empty());
  expect_consistent();
  // Named once, it is an ordinary file: unlinked while open, it cannot be named again.
  ASSERT_TRUE(meta_->unlink(kRootIno, "kept", true));
  EXPECT_EQ(err(meta_->link(tmp->ino, kRootIno, "again")), ENOENT);
  // One never named goes at its last release, or with the next open after a crash.
  auto gone = meta_->create_unnamed(d, file_args()).value();
  EXPECT_TRUE(meta_->release(gone.ino).value());
  EXPECT_EQ(err(meta_->getattr(gone.ino)), ENOENT);
  auto crashed = meta_->create_unnamed(d, file_args()).value();
  reopen();
  EXPECT_EQ(err(meta_->getattr(crashed.ino)), ENOENT);
  expect_consistent();
}

TEST_F(FsMetaTest, PunchedHolesGiveTheirBlocksBack) {
  uint64_t f = mkfile(kRootIno, "f");
  auto s = meta_->allocate_stripe().value();
  Extent e{0, s.id, 0, 8 * kBlockBytes};
  ASSERT_TRUE(meta_->commit_write(f, {&e, 1}, {std::vector{stripe(s, 8)}}).has_value());
  ASSERT_TRUE(meta_->punch_hole(f, 2 * kBlockBytes, 3 * kBlockBytes));
  EXPECT_EQ(meta_->getattr(f).value().blocks, 5u);
  // A punch inside one block keeps it, and both remnants hold bytes of it: counted per extent,
  // as the stripes' live counts are (a block shared by two extents counts twice).
  ASSERT_TRUE(meta_->punch_hole(f, 6 * kBlockBytes + 10, 100));
  EXPECT_EQ(meta_->getattr(f).value().blocks, 6u);
  EXPECT_EQ(meta_->getattr(f).value().size, 8u * kBlockBytes);
  expect_consistent();
}

// A database of store format 1 (inodes without a block count) is counted once when opened.
TEST_F(FsMetaTest, AFormatOneStoreIsUpgradedWithEveryFilesBlocks) {
  uint64_t f = mkfile(kRootIno, "f");
  uint64_t empty = mkfile(kRootIno, "empty");
  uint64_t d = mkdir(kRootIno, "d");
  auto s = meta_->allocate_stripe().value();
  std::vector<Extent> extents{{0, s.id, 0, 3 * kBlockBytes}, {10 * kBlockBytes, s.id, 3 * kBlockBytes, 5}};
  ASSERT_TRUE(meta_->commit_write(f, extents, {std::vector{stripe(s, 4)}}).has_value());
  WriteSet downgrade;
  for (uint64_t ino : {kRootIno, f, empty, d}) {
    std::string v1 = encode_inode(meta_->getattr(ino).value());
    v1.resize(v1.size() - 8);
    v1[0] = 1;
    downgrade.put(Family::kInodes, inode_key(ino), v1);
  }
  Super old = meta_->store().super();
  old.store_format = 1;
  downgrade.put(Family::kSuper, std::string(kSuperKey), encode_super(old));
  ASSERT_TRUE(meta_->store().write(downgrade, Durability::kSyncEach).has_value());
  reopen();
  EXPECT_EQ(meta_->store().super().store_format, kStoreFormat);
  EXPECT_EQ(meta_->getattr(f).value().blocks, 4u);
  EXPECT_EQ(meta_->getattr(empty).value().blocks, 0u);
  EXPECT_EQ(meta_->getattr(d).value().blocks, 0u);
  expect_consistent();
}

// An open stripe's parity rows are records of their own (store format 5): a commit writes the
// rows it carries and keeps the others; sealing the stripe drops them all in the same batch; the
// checker flags rows of a stripe that is not open, and repair drops them.
TEST_F(FsMetaTest, AnOpenStripesParityRowsAreWrittenOneByOneAndGoWhenItIsSealed) {
  const uint64_t f = mkfile(kRootIno, "f");
  auto ref = meta_->allocate_stripe().value();
  auto row = [](uint32_t index, char fill) { return ParityRow{index, std::string(2 * kBlockBytes, fill)}; };
  auto raw_rows = [&](uint64_t id) {
    std::vector<uint64_t> out;
    const auto [first, end] = parity_rows_range(id);
    EXPECT_TRUE(meta_->store().scan(Family::kParityRows, first, end,
                                    [&](std::string_view k, std::string_view) -> Result<bool> {
                                      out.push_back(parse_u64_pair_key(k).value().second);
                                      return true;
                                    }));
    return out;
  };
  Stripe open = stripe(ref, 2);
  open.parity_count = 2;
  open.parity_rows = {row(0, 'a'), row(1, 'b')};
  Extent e0{0, ref.id, 0, 2 * kBlockBytes};
  ASSERT_TRUE(meta_->commit_write(f, {&e0, 1}, {std::vector{open}}).has_value());
  // One more block: only its row is written; row 0 is rewritten with new parity.
  Stripe more = stripe(ref, 3);
  more.parity_count = 2;
  more.parity_rows = {row(2, 'c'), row(0, 'A')};
  Extent e1{2 * kBlockBytes, ref.id, 2 * kBlockBytes, kBlockBytes};
  ASSERT_TRUE(meta_->commit_write(f, {&e1, 1}, {std::vector{more}}).has_value());
  const Stripe got = meta_->get_stripe(ref.id).value();
  EXPECT_EQ(got.parity_rows, (std::vector{row(0, 'A'), row(1, 'b'), row(2, 'c')}));
  EXPECT_EQ(meta_->stripes_from(ref.id, 1).value().at(0).parity_rows, got.parity_rows);
  const std::string record = meta_->store().get(Family::kStripes, stripe_key(ref.id)).value().value();
  EXPECT_LT(record.size(), size_t{kBlockBytes}) << "the record holds no row";
  expect_consistent();
  reopen();
  EXPECT_EQ(meta_->get_stripe(ref.id).value().parity_rows, got.parity_rows);

  // Sealed: the rows go with the seal's batch.
  ASSERT_TRUE(meta_->commit_write(f, {}, {std::vector{stripe(ref, 3, StripeState::kSealed)}}).has_value());
  EXPECT_TRUE(raw_rows(ref.id).empty());
  EXPECT_TRUE(meta_->get_stripe(ref.id).value().parity_rows.empty());
  expect_consistent();

  // A row left behind (planted): the checker says so, repair drops it.
  WriteSet plant;
  plant.put(Family::kParityRows, parity_row_key(ref.id, 4), encode_parity_row(row(4, 'x')));
  ASSERT_TRUE(meta_->store().write(plant, Durability::kSyncEach).has_value());
  auto findings = check(meta_->store()).value();
  ASSERT_EQ(findings.size(), 1u);
  EXPECT_EQ(findings[0].kind, Finding::Kind::kParityRow) << findings[0].detail;
  meta_.reset();
  {
    auto store = Store::open(small_array(dir_.path())).value();
    auto actions = repair(*store, RepairPolicy::kSafe).value();
    ASSERT_EQ(actions.size(), 1u);
    EXPECT_TRUE(actions[0].applied) << actions[0].text;
  }
  reopen();
  EXPECT_TRUE(raw_rows(ref.id).empty());
  expect_consistent();
}

// A format-4 store keeps an open stripe's rows in its record: the upgrade moves them out.
TEST_F(FsMetaTest, AFormatFourStoresParityRowsMoveOutOfTheirRecords) {
  const uint64_t f = mkfile(kRootIno, "f");
  auto ref = meta_->allocate_stripe().value();
  Stripe open = stripe(ref, 2);
  Extent e{0, ref.id, 0, 2 * kBlockBytes};
  ASSERT_TRUE(meta_->commit_write(f, {&e, 1}, {std::vector{open}}).has_value());
  open.live_blocks = 2;
  open.parity_count = 1;
  open.parity_rows = {ParityRow{0, std::string(kBlockBytes, 'p')}, ParityRow{1, std::string(kBlockBytes, 'q')}};
  WriteSet downgrade;
  downgrade.put(Family::kStripes, stripe_key(ref.id), encode_stripe(open, /*embed_parity_rows=*/true));
  Super old = meta_->store().super();
  old.store_format = 4;
  downgrade.put(Family::kSuper, std::string(kSuperKey), encode_super(old));
  ASSERT_TRUE(meta_->store().write(downgrade, Durability::kSyncEach).has_value());
  reopen();
  EXPECT_EQ(meta_->store().super().store_format, kStoreFormat);
  EXPECT_EQ(meta_->get_stripe(ref.id).value(), open);
  const std::string record = meta_->store().get(Family::kStripes, stripe_key(ref.id)).value().value();
  Stripe bare = decode_stripe(ref.id, record).value();
  EXPECT_TRUE(bare.parity_rows.empty()) << "moved out of the record";
  expect_consistent();
}

// An overwrite leaves the old stripe's index entry (deleting it would cost a second random key
// per 4 KiB write): stripe_extents() passes over it, the checker accepts it, and it goes, with
// every other entry of the stripe, in the batch that frees the stripe.
TEST_F(FsMetaTest, AnIndexEntryOfAnExtentThatMovedStaysUntilItsStripeIsFreed) {
  const uint64_t f = mkfile(kRootIno, "f");
  auto s1 = meta_->allocate_stripe().value();
  auto s2 = meta_->allocate_stripe().value();
  auto raw_index = [&](uint64_t id) {
    std::vector<std::pair<uint64_t, uint64_t>> out;
    EXPECT_TRUE(meta_->store().scan(Family::kExtentsByStripe, u64_key(id), u64_key(id + 1),
                                    [&](std::string_view k, std::string_view) -> Result<bool> {
                                      auto key = parse_extent_by_stripe_key(k).value();
                                      out.emplace_back(key.ino, key.file_offset);
                                      return true;
                                    }));
    return out;
  };
  using Keys = std::vector<std::pair<uint64_t, uint64_t>>;
  Extent both{0, s1.id, 0, 2 * kBlockBytes};
  ASSERT_TRUE(meta_->commit_write(f, {&both, 1}, {std::vector{stripe(s1, 2, StripeState::kSealed)}}).has_value());
  Extent first{0, s2.id, 0, kBlockBytes};
  ASSERT_TRUE(meta_->commit_write(f, {&first, 1}, {std::vector{stripe(s2, 2)}}).has_value());
  EXPECT_EQ(raw_index(s1.id), (Keys{{f, 0}, {f, kBlockBytes}})) << "the moved extent's entry stays";
  const uint64_t ids[] = {s1.id};
  auto in_s1 = stripe_extents(meta_->store(), ids).value();
  ASSERT_EQ(in_s1.size(), 1u);
  EXPECT_EQ(in_s1[0].extent.file_offset, kBlockBytes);
  expect_consistent();

  // The last block of s1 overwritten: s1 is free, and its index empty.
  Extent second{kBlockBytes, s2.id, kBlockBytes, kBlockBytes};
  ASSERT_TRUE(meta_->commit_write(f, {&second, 1}, {}).has_value());
  EXPECT_EQ(meta_->get_stripe(s1.id).value().state, StripeState::kFree);
  EXPECT_TRUE(raw_index(s1.id).empty());
  EXPECT_EQ(raw_index(s2.id), (Keys{{f, 0}, {f, kBlockBytes}}));
  expect_consistent();
  reopen();
  EXPECT_TRUE(raw_index(s1.id).empty());
  expect_consistent();
}

// The extents_by_stripe index names every extent in each stripe, through overwrites,
// punches, truncation and removal; the checker finds it damaged, repair rebuilds it, and a
// format-2 store gets it whole when opened.
TEST_F(FsMetaTest, TheStripeIndexFollowsEveryExtentChange) {
  uint64_t f = mkfile(kRootIno, "f");
  uint64_t g = mkfile(kRootIno, "g");
  auto s1 = meta_->allocate_stripe().value();
  auto s2 = meta_->allocate_stripe().value();
  Extent whole{0, s1.id, 0, 8 * kBlockBytes};
  ASSERT_TRUE(meta_->commit_write(f, {&whole, 1}, {std::vector{stripe(s1, 10)}}).has_value());
  Extent tail{0, s1.id, 8 * kBlockBytes, 2 * kBlockBytes};
  ASSERT_TRUE(meta_->commit_write(g, {&tail, 1}, {}).has_value());
  Extent over{2 * kBlockBytes, s2.id, 0, 2 * kBlockBytes};  // splits f's extent in three
  ASSERT_TRUE(meta_->commit_write(f, {&over, 1}, {std::vector{stripe(s2, 2)}}).has_value());
  ASSERT_TRUE(meta_->punch_hole(f, 5 * kBlockBytes, kBlockBytes));
  ASSERT_TRUE(meta_->setattr(f, size_attr(7 * kBlockBytes)).has_value());

  // Brute force: every extent, by a scan of the extents themselves.
  auto by_scan = [&](uint64_t id) {
    std::vector<std::pair<uint64_t, uint64_t>> out;
    EXPECT_TRUE(meta_->store().scan(Family::kExtents, "", "",
                                    [&](std::string_view k, std::string_view v) -> Result<bool> {
                                      auto key = parse_u64_pair_key(k).value();
                                      if (decode_extent(key.second, v).value().stripe_id == id)
                                        out.push_back(key);
                                      return true;
                                    }));
    return out;
  };
  auto by_index = [&](uint64_t id) {
    std::vector<std::pair<uint64_t, uint64_t>> out;
    const uint64_t ids[] = {id};
    const std::vector<OwnedExtent> found = stripe_extents(meta_->store(), ids).value();
    for (const OwnedExtent& e : found) out.emplace_back(e.ino, e.extent.file_offset);
    return out;
  };
  using Keys = std::vector<std::pair<uint64_t, uint64_t>>;
  // f: [0,2) s1, [2,4) s2, [4,5) s1, hole, [6,7) s1; g: [0,2) s1.
  EXPECT_EQ(by_index(s1.id), (Keys{{f, 0}, {f, 4 * kBlockBytes}, {f, 6 * kBlockBytes}, {g, 0}}));
  EXPECT_EQ(by_index(s1.id), by_scan(s1.id));
  EXPECT_EQ(by_index(s2.id), (Keys{{f, 2 * kBlockBytes}}));
  expect_consistent();

  // Damage: an entry lost, one invented in a stripe that is free. Found, and rebuilt by a safe
  // repair.
  WriteSet damage;
  damage.del(Family::kExtentsByStripe, extent_by_stripe_key(s1.id, g, 0));
  damage.put(Family::kExtentsByStripe, extent_by_stripe_key(s2.id + 1000, g, 4096), "");
  ASSERT_TRUE(meta_->store().write(damage, Durability::kNone).has_value());
  auto findings = check(meta_->store()).value();
  ASSERT_EQ(findings.size(), 2u);
  EXPECT_EQ(findings[0].kind, Finding::Kind::kExtentIndex);
  EXPECT_EQ(findings[1].kind, Finding::Kind::kExtentIndex);
  auto actions = repair(meta_->store(), RepairPolicy::kSafe).value();
  EXPECT_EQ(actions.size(), 2u);
  expect_consistent();
  EXPECT_EQ(by_index(s1.id), by_scan(s1.id));

  // A store of format 2, without the index: it is built at the next open.
  WriteSet downgrade;
  EXPECT_TRUE(meta_->store().scan(Family::kExtentsByStripe, "", "",
                                  [&](std::string_view k, std::string_view) -> Result<bool> {
                                    downgrade.del(Family::kExtentsByStripe, std::string(k));
                                    return true;
                                  }));
  Super old = meta_->store().super();
  old.store_format = 2;
  downgrade.put(Family::kSuper, std::string(kSuperKey), encode_super(old));
  ASSERT_TRUE(meta_->store().write(downgrade, Durability::kSyncEach).has_value());
  reopen();
  EXPECT_EQ(meta_->store().super().store_format, kStoreFormat);
  EXPECT_EQ(by_index(s1.id), by_scan(s1.id));
  EXPECT_EQ(by_index(s2.id), by_scan(s2.id));
  expect_consistent();

  // Removed with their files.
  ASSERT_TRUE(meta_->unlink(kRootIno, "f", false).has_value());
  ASSERT_TRUE(meta_->unlink(kRootIno, "g", false).has_value());
  EXPECT_TRUE(by_index(s1.id).empty());
  EXPECT_TRUE(by_index(s2.id).empty());
  expect_consistent();
}

// Child mode of StripeGenerationsNeverRepeatAcrossReopen: allocates stripes (more than one
// reservation of generations), commits one, records the highest generation it was given, and dies
// without closing anything, as a crash would.
TEST(GenerationChild, AllocateThenDie) {
  const char* dir = std::getenv("RAIDFS_META_GENERATION_DIR");
  if (!dir) GTEST_SKIP() << "runs only as StripeGenerationsNeverRepeatAcrossReopen's child";
  auto meta = FsMeta::open(small_array(dir, false));
  if (!meta) _exit(2);
  uint64_t max_generation = 0;
  StripeRef last{};
  for (int n = 0; n < 1500; ++n) {
    auto ref = (*meta)->allocate_stripe();
    if (!ref) _exit(3);
    max_generation = std::max(max_generation, ref->generation);
    if (n + 1 < 1500) (*meta)->release_stripe(ref->id);
    last = *ref;
  }
  auto f = (*meta)->create(kRootIno, "child", file_args());
  Stripe s;
  s.id = last.id;
  s.generation = last.generation;
  s.state = StripeState::kSealed;
  s.filled_bytes = kBlockBytes;
  s.block_crcs = {1};
  Extent e{0, last.id, 0, kBlockBytes};
  if (!f || !(*meta)->commit_write(f->ino, {&e, 1}, {&s, 1})) _exit(4);
  FILE* out = std::fopen((std::string(dir) + ".max").c_str(), "w");
  if (!out) _exit(5);
  std::fprintf(out, "%llu\n", static_cast<unsigned long long>(max_generation));
  std::fclose(out);
  _exit(0);  // no destructor runs: the database is not closed
}

// Generations are never handed out twice: not after a clean reopen, nor after a process that
// allocated (beyond one 1024-generation reservation) died without closing the store.
TEST_F(FsMetaTest, StripeGenerationsNeverRepeatAcrossReopen) {
  uint64_t max_generation = 0;
  for (int n = 0; n < 10; ++n) {
    auto ref = meta_->allocate_stripe().value();
    max_generation = std::max(max_generation, ref.generation);
    meta_->release_stripe(ref.id);
  }
  reopen();  // clean: the store is closed
  auto after_close = meta_->allocate_stripe().value();
  EXPECT_GT(after_close.generation, max_generation);
  meta_.reset();

  std::string dir_var = "RAIDFS_META_GENERATION_DIR=" + dir_.path();
  std::vector<char*> envp;
  for (char** e = environ; *e; ++e) envp.push_back(*e);
  envp.push_back(dir_var.data());
  envp.push_back(nullptr);
  std::string self = "/proc/self/exe", filter = "--gtest_filter=GenerationChild.AllocateThenDie";
  char* argv[] = {self.data(), filter.data(), nullptr};
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int null_fd = open("/dev/null", O_WRONLY);
    if (null_fd >= 0) dup2(null_fd, STDOUT_FILENO);
    execve(argv[0], argv, envp.data());
    _exit(127);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  unsigned long long child_max = 0;
  FILE* in = std::fopen((dir_.path() + ".max").c_str(), "r");
  ASSERT_NE(in, nullptr);
  ASSERT_EQ(std::fscanf(in, "%llu", &child_max), 1);
  std::fclose(in);
  std::remove((dir_.path() + ".max").c_str());
  EXPECT_GT(child_max, after_close.generation + 1024);  // it used more than one reservation

  reopen();  // after the "crash"
  auto after_crash = meta_->allocate_stripe().value();
  EXPECT_GT(after_crash.generation, child_max);
  EXPECT_EQ(meta_->lookup(kRootIno, "child").value().size, kBlockBytes);
  expect_consistent();
}

// Damage the per-record checks cannot see: each kind alone must be reported.
TEST_F(FsMetaTest, CheckerFindsDetachedCycleSharedCookieAndGenerationBeyondLimit) {
  auto kinds_after = [&](const WriteSet& damage) {
    EXPECT_TRUE(meta_->store().write(damage, Durability::kNone).has_value());
    std::multiset<Finding::Kind> kinds;
    auto findings = check(meta_->store());
    EXPECT_TRUE(findings.has_value());
    if (findings)
      for (const Finding& f : *findings) kinds.insert(f.kind);
    return kinds;
  };
  // Directories a (in the root) and b (in a) become each other's parent, cut off from the root.
  uint64_t a = mkdir(kRootIno, "a");
  uint64_t b = mkdir(a, "b");
  expect_consistent();
  {
    Inode root = meta_->getattr(kRootIno).value(), ia = meta_->getattr(a).value();
    Inode ib = meta_->getattr(b).value();
    const Dirent old_a{a, FileType::kDirectory, meta_->readdir(kRootIno, 0, 10).value().entries.at(0).cookie};
    WriteSet damage;
    damage.del(Family::kDirents, dirent_key(kRootIno, "a"));
    damage.del(Family::kCookies, cookie_key(kRootIno, old_a.cookie));
    root.nlink = 2;
    ia.parent = b;
    const Dirent a_in_b{a, FileType::kDirectory, ib.next_cookie++};
    ib.nlink = 3;
    damage.put(Family::kDirents, dirent_key(b, "a"), encode_dirent(a_in_b));
    damage.put(Family::kCookies, cookie_key(b, a_in_b.cookie), encode_cookie("a"));
    for (const Inode* i : {&root, &ia, &ib}) damage.put(Family::kInodes, inode_key(i->ino), encode_inode(*i));
    auto kinds = kinds_after(damage);
    EXPECT_EQ(kinds.count(Finding::Kind::kDirLinks), 2u);  // a and b
    EXPECT_EQ(kinds.size(), 2u);
  }
  reopen();
  {
    // Two entries of one directory share a cookie; the index holds only the later name.
    TempDir other;
    meta_.reset();
    auto m = FsMeta::open(testing::small_array(other.path()));
    ASSERT_TRUE(m.has_value());
    meta_ = std::move(*m);
    mkfile(kRootIno, "x");
    mkfile(kRootIno, "y");
    auto listed = meta_->readdir(kRootIno, 0, 10).value().entries;
    ASSERT_EQ(listed.size(), 2u);
    WriteSet damage;
    damage.put(Family::kDirents, dirent_key(kRootIno, "x"),
               encode_dirent(Dirent{listed[0].ino, FileType::kRegular, listed[1].cookie}));
    damage.del(Family::kCookies, cookie_key(kRootIno, listed[0].cookie));
    auto kinds = kinds_after(damage);
    EXPECT_EQ(kinds.count(Finding::Kind::kCookieIndex), 1u);
    EXPECT_EQ(kinds.size(), 1u);

    // A stripe generation at or above generation_limit.
    auto s = meta_->allocate_stripe().value();
    uint64_t f = mkfile(kRootIno, "z");
    Extent e{0, s.id, 0, kBlockBytes};
    ASSERT_TRUE(meta_->commit_write(f, {&e, 1}, {std::vector{stripe(s, 1)}}).has_value());
    const uint64_t limit = decode_counter(meta_->store().get(Family::kSuper, kGenerationLimitKey).value().value()).value();
    Stripe ahead = meta_->get_stripe(s.id).value();
    ahead.generation = limit;
    WriteSet more;
    more.put(Family::kStripes, stripe_key(s.id), encode_stripe(ahead));
    kinds = kinds_after(more);
    EXPECT_EQ(kinds.count(Finding::Kind::kCounter), 1u);
    EXPECT_EQ(kinds.size(), 2u);  // and the shared cookie from before
  }
}

}  // namespace
}  // namespace raidfs::meta
