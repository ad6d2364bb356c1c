// Goal: the RecordCache never answers with anything but what RocksDB holds — after writes,
// deletes, groups growing past their limit, eviction, and readers racing writers — and does
// answer repeated lookups itself. Method: the cache alone for its rules; then a Store with the
// cache against the same operations on a Store without it (random, many rounds); then threads
// that read while one writes, checking that no reader ever goes back to an older value.
#include "meta/record_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "meta/keys.h"
#include "meta/test_util.h"

namespace raidfs::meta {
namespace {

using testing::small_array;
using testing::TempDir;
using Lookup = RecordCache::Lookup;

std::string key(uint64_t group, uint64_t n) { return u64_pair_key(group, n); }
// The prefix of group `page` of a file's extents: the keys of file bytes [page, page + 1) × 16 MiB.
constexpr uint64_t kPage = uint64_t{1} << 24;
std::string page(uint64_t file, uint64_t page = 0) {
  return key(file, page * kPage).substr(0, RecordCache::kGroupPrefixBytes);
}

TEST(RecordCache, FillThenFindAndWritesUpdateInPlace) {
  RecordCache cache(1 << 20);
  std::string value;
  uint64_t gen = 0;
  ASSERT_EQ(cache.find(Family::kInodes, "a", &value, &gen), Lookup::kMiss);
  cache.fill(Family::kInodes, "a", "one", gen);
  ASSERT_EQ(cache.find(Family::kInodes, "a", &value, &gen), Lookup::kHit);
  EXPECT_EQ(value, "one");

  WriteSet set;
  set.put(Family::kInodes, "a", "two");
  cache.apply(set);
  ASSERT_EQ(cache.find(Family::kInodes, "a", &value, &gen), Lookup::kHit);
  EXPECT_EQ(value, "two");

  WriteSet del;
  del.del(Family::kInodes, "a");
  cache.apply(del);
  EXPECT_EQ(cache.find(Family::kInodes, "a", &value, &gen), Lookup::kMiss);
  // The same key in another family is another record.
  EXPECT_EQ(cache.find(Family::kStripes, "a", &value, &gen), Lookup::kMiss);
}

// A range delete (the extents_by_stripe index of a freed stripe) in a family the cache holds:
// its entries go, other families' stay, and a fill of what was read before it is refused.
TEST(RecordCache, ARangeDeleteDropsTheFamilysEntriesAndRefusesOlderFills) {
  RecordCache cache(1 << 20);
  std::string value;
  uint64_t gen_a = 0, gen_b = 0, gen = 0;
  ASSERT_EQ(cache.find(Family::kInodes, "a", &value, &gen_a), Lookup::kMiss);
  cache.fill(Family::kInodes, "a", "one", gen_a);
  ASSERT_EQ(cache.find(Family::kStripes, "a", &value, &gen), Lookup::kMiss);
  cache.fill(Family::kStripes, "a", "stripe", gen);
  ASSERT_EQ(cache.find(Family::kInodes, "b", &value, &gen_b), Lookup::kMiss);  // read, not yet filled
  WriteSet set;
  set.del_range(Family::kInodes, "a", "c");
  cache.apply(set);
  EXPECT_EQ(cache.find(Family::kInodes, "a", &value, &gen), Lookup::kMiss);
  cache.fill(Family::kInodes, "b", "stale", gen_b);
  EXPECT_EQ(cache.find(Family::kInodes, "b", &value, &gen), Lookup::kMiss);
  ASSERT_EQ(cache.find(Family::kStripes, "a", &value, &gen), Lookup::kHit);
  EXPECT_EQ(value, "stripe");
}

// apply() skips families nobody has looked up: the first lookup must still see every later write.
TEST(RecordCache, AFamilyLookedUpOnlyAfterWritesStaysCoherent) {
  RecordCache cache(1 << 20);
  std::string value;
  uint64_t gen = 0;
  WriteSet early;
  early.put(Family::kXattrs, "x", "1");
  cache.apply(early);  // nothing of the family cached: nothing to do
  ASSERT_EQ(cache.find(Family::kXattrs, "x", &value, &gen), Lookup::kMiss);
  WriteSet between;  // after the miss, before the fill: the reader's "1" is stale
  between.put(Family::kXattrs, "x", "2");
  cache.apply(between);
  cache.fill(Family::kXattrs, "x", "1", gen);
  ASSERT_EQ(cache.find(Family::kXattrs, "x", &value, &gen), Lookup::kMiss);
  cache.fill(Family::kXattrs, "x", "2", gen);
  ASSERT_EQ(cache.find(Family::kXattrs, "x", &value, &gen), Lookup::kHit);
  EXPECT_EQ(value, "2");
  WriteSet later;
  later.put(Family::kXattrs, "x", "3");
  cache.apply(later);
  ASSERT_EQ(cache.find(Family::kXattrs, "x", &value, &gen), Lookup::kHit);
  EXPECT_EQ(value, "3");
}

TEST(RecordCache, FillAfterAWriteToTheFamilyIsDropped) {
  RecordCache cache(1 << 20);
  std::string value;
  uint64_t gen = 0;
  ASSERT_EQ(cache.find(Family::kStripes, "s", &value, &gen), Lookup::kMiss);
  WriteSet set;  // lands between the reader's miss and its fill: what it read may be older
  set.put(Family::kStripes, "s", "new");
  cache.apply(set);
  cache.fill(Family::kStripes, "s", "old", gen);
  EXPECT_EQ(cache.find(Family::kStripes, "s", &value, &gen), Lookup::kMiss);
  // A write to another family does not matter.
  WriteSet other;
  other.put(Family::kInodes, "i", "x");
  cache.apply(other);
  cache.fill(Family::kStripes, "s", "new", gen);
  ASSERT_EQ(cache.find(Family::kStripes, "s", &value, &gen), Lookup::kHit);
  EXPECT_EQ(value, "new");
}

TEST(RecordCache, GroupsAnswerFloorAndRangeAndFollowWrites) {
  RecordCache cache(1 << 20);
  std::optional<RecordCache::Entry> entry;
  std::vector<RecordCache::Entry> entries;
  // Loaded at the second miss only.
  ASSERT_EQ(cache.floor(Family::kExtents, key(7, 50), key(7, 0), &entry), Lookup::kUncached);
  ASSERT_EQ(cache.range(Family::kExtents, key(7, 0), key(7, 9), &entries), Lookup::kMiss);
  cache.fill_group(Family::kExtents, page(7),
                   std::vector<RecordCache::Entry>{{key(7, 10), "a"}, {key(7, 40), "b"}});

  ASSERT_EQ(cache.floor(Family::kExtents, key(7, 50), key(7, 0), &entry), Lookup::kHit);
  ASSERT_TRUE(entry);
  EXPECT_EQ(entry->first, key(7, 40));
  ASSERT_EQ(cache.floor(Family::kExtents, key(7, 40), key(7, 0), &entry), Lookup::kHit);
  EXPECT_EQ(entry->second, "b");
  ASSERT_EQ(cache.floor(Family::kExtents, key(7, 9), key(7, 0), &entry), Lookup::kHit);
  EXPECT_FALSE(entry);
  ASSERT_EQ(cache.floor(Family::kExtents, key(7, 39), key(7, 11), &entry), Lookup::kHit);
  EXPECT_FALSE(entry);  // below `lower`

  WriteSet set;
  set.put(Family::kExtents, key(7, 20), "c");
  set.del(Family::kExtents, key(7, 40));
  set.put(Family::kExtents, key(7, 10), "a, overwritten");  // updated where it is
  set.put(Family::kExtents, key(8, 0), "other group");  // not cached: ignored
  const uint64_t bytes_before = cache.stats().bytes;
  cache.apply(set);
  // One key in ("c"), one out ("b"), one value 13 bytes longer.
  EXPECT_EQ(cache.stats().bytes, bytes_before + 13);
  ASSERT_EQ(cache.range(Family::kExtents, key(7, 0), RecordCache::group_end(page(7)), &entries),
            Lookup::kHit);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0], (RecordCache::Entry{key(7, 10), "a, overwritten"}));
  EXPECT_EQ(entries[1], (RecordCache::Entry{key(7, 20), "c"}));
  ASSERT_EQ(cache.range(Family::kExtents, key(7, 11), key(7, 20), &entries), Lookup::kHit);
  EXPECT_TRUE(entries.empty());
  EXPECT_EQ(cache.range(Family::kExtents, key(8, 0), key(8, 9), &entries), Lookup::kUncached);
}

TEST(RecordCache, GroupPastTheLimitIsLeftToTheDatabase) {
  RecordCache cache(64 << 20);
  std::vector<RecordCache::Entry> full;
  for (uint64_t i = 0; i < RecordCache::kGroupMaxKeys; ++i) full.emplace_back(key(3, i), "v");
  std::optional<RecordCache::Entry> entry;
  cache.fill_group(Family::kExtents, page(3), full);
  ASSERT_EQ(cache.floor(Family::kExtents, key(3, 5), key(3, 0), &entry), Lookup::kHit);
  WriteSet one_more;
  one_more.put(Family::kExtents, key(3, 5000), "v");
  cache.apply(one_more);
  EXPECT_EQ(cache.floor(Family::kExtents, key(3, 5), key(3, 0), &entry), Lookup::kUncached);
  cache.fill_group(Family::kExtents, page(4), std::nullopt);  // more than the limit
  EXPECT_EQ(cache.floor(Family::kExtents, key(4, 5), key(4, 0), &entry), Lookup::kUncached);
  EXPECT_EQ(cache.floor(Family::kExtents, key(4, 5), key(4, 0), &entry), Lookup::kUncached);
}

TEST(RecordCache, GroupsMissedOnceAmongManyAreNotLoaded) {
  RecordCache cache(64 << 20);
  std::optional<RecordCache::Entry> entry;
  // More groups than the misses remembered, in turn: none is ever asked for a load.
  for (int round = 0; round < 3; ++round)
    for (uint64_t g = 0; g <= RecordCache::kRecentMisses; ++g)
      ASSERT_EQ(cache.floor(Family::kExtents, key(g, 1), key(g, 0), &entry), Lookup::kUncached);
}

TEST(RecordCache, StaysWithinItsBytesKeepingWhatIsInUse) {
  RecordCache cache(64 * 1024);
  const std::string value(900, 'x');  // ~1 KiB a record: 64 fit
  uint64_t gen = 0;
  std::string out;
  for (int i = 0; i < 200; ++i) {
    const std::string k = "k" + std::to_string(i);
    if (cache.find(Family::kInodes, k, &out, &gen) == Lookup::kMiss)
      cache.fill(Family::kInodes, k, value, gen);
    ASSERT_EQ(cache.find(Family::kInodes, "k0", &out, &gen), Lookup::kHit) << i;  // kept in use
    EXPECT_LE(cache.stats().bytes, 64u * 1024);
  }
  EXPECT_EQ(cache.find(Family::kInodes, "k1", &out, &gen), Lookup::kMiss);
  EXPECT_EQ(cache.find(Family::kInodes, "k199", &out, &gen), Lookup::kHit);
  // Values larger than a record may be are not kept.
  cache.find(Family::kInodes, "big", &out, &gen);
  cache.fill(Family::kInodes, "big", std::string(RecordCache::kRecordMaxBytes + 1, 'y'), gen);
  EXPECT_EQ(cache.find(Family::kInodes, "big", &out, &gen), Lookup::kMiss);
}

TEST(RecordCache, GroupEndIsTheNextPrefix) {
  EXPECT_EQ(RecordCache::group_end(page(7)), page(7, 1));
  EXPECT_EQ(RecordCache::group_end(page(7, 0xff)), page(7, 0x100));
  EXPECT_EQ(RecordCache::group_end(key(5, 99)), page(5, 1));
  EXPECT_EQ(RecordCache::group_end(key(5, UINT64_MAX)), page(6));  // carries into the inode
  EXPECT_EQ(RecordCache::group_end(key(UINT64_MAX, UINT64_MAX)), "");
}

// A floor whose group holds nothing below the key is the last key of an earlier cached group; a
// range goes on into the cached groups after its first; a group not cached on the way, or one too
// large, leaves the answer to the database.
TEST(RecordCache, FloorAndRangeWalkThroughCachedNeighbours) {
  RecordCache cache(1 << 20);
  std::optional<RecordCache::Entry> entry;
  std::vector<RecordCache::Entry> entries;
  cache.fill_group(Family::kExtents, page(7, 0), std::vector<RecordCache::Entry>{{key(7, 100), "a"}});
  cache.fill_group(Family::kExtents, page(7, 1), std::vector<RecordCache::Entry>{});
  cache.fill_group(Family::kExtents, page(7, 2),
                   std::vector<RecordCache::Entry>{{key(7, 2 * kPage + 50), "b"}});

  ASSERT_EQ(cache.floor(Family::kExtents, key(7, 2 * kPage + 10), key(7, 0), &entry), Lookup::kHit);
  ASSERT_TRUE(entry);
  EXPECT_EQ(entry->second, "a");  // two groups back, across an empty one
  ASSERT_EQ(cache.floor(Family::kExtents, key(7, 2 * kPage + 10), key(7, 101), &entry),
            Lookup::kHit);
  EXPECT_FALSE(entry);  // below `lower`
  ASSERT_EQ(cache.floor(Family::kExtents, key(7, 2 * kPage + 10), key(7, 2 * kPage), &entry),
            Lookup::kHit);
  EXPECT_FALSE(entry);  // `lower` in the key's own group: no walk

  ASSERT_EQ(cache.range(Family::kExtents, key(7, 50), key(7, 3 * kPage), &entries), Lookup::kHit);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].second, "a");
  EXPECT_EQ(entries[1].second, "b");
  ASSERT_EQ(cache.range(Family::kExtents, key(7, 50), key(7, 2 * kPage + 50), &entries),
            Lookup::kHit);
  EXPECT_EQ(entries.size(), 1u);  // the end is exclusive

  // Page 3 is not cached: a range into it, or a floor from page 4 (if it were cached) back
  // through it, is the database's.
  EXPECT_EQ(cache.range(Family::kExtents, key(7, 50), key(7, 3 * kPage + 1), &entries),
            Lookup::kUncached);
  EXPECT_TRUE(entries.empty());
  cache.fill_group(Family::kExtents, page(7, 4), std::vector<RecordCache::Entry>{});
  EXPECT_EQ(cache.floor(Family::kExtents, key(7, 4 * kPage + 1), key(7, 0), &entry),
            Lookup::kUncached);
  // Nor is a walk through a group that grew too large.
  cache.fill_group(Family::kExtents, page(7, 3), std::nullopt);
  EXPECT_EQ(cache.floor(Family::kExtents, key(7, 4 * kPage + 1), key(7, 0), &entry),
            Lookup::kUncached);

  // A write into a cached neighbour is seen through the walk.
  WriteSet set;
  set.put(Family::kExtents, key(7, kPage + 8), "c");
  cache.apply(set);
  ASSERT_EQ(cache.floor(Family::kExtents, key(7, 2 * kPage + 10), key(7, 0), &entry), Lookup::kHit);
  ASSERT_TRUE(entry);
  EXPECT_EQ(entry->second, "c");
}

// --- through the Store ------------------------------------------------------------------------

using Entries = std::vector<std::pair<std::string, std::string>>;

Entries scan_all(const Store& s, Family f, std::string_view begin, std::string_view end) {
  Entries out;
  auto r = s.scan(f, begin, end, [&](std::string_view k, std::string_view v) -> Result<bool> {
    out.emplace_back(k, v);
    return true;
  });
  EXPECT_TRUE(r.has_value());
  return out;
}

TEST(RecordCacheStore, AnswersAsRocksDbAloneWouldUnderRandomWrites) {
  TempDir dir;
  StoreOptions with = small_array(dir.sub("with"));
  StoreOptions without = small_array(dir.sub("without"));
  with.record_cache_bytes = 256 * 1024;  // small: eviction happens too
  without.record_cache_bytes = 0;
  auto cached = Store::open(with).value();
  auto plain = Store::open(without).value();

  std::mt19937_64 rng(11);
  auto pick = [&](uint64_t n) { return rng() % n; };
  // Offsets 3 MiB apart: a file's extents fall in ~8 groups of 16 MiB, and floors and ranges
  // cross from one to the next.
  constexpr uint64_t kStep = (3 << 20) + 4096;
  for (int round = 0; round < 3000; ++round) {
    WriteSet set;
    for (int i = 0, n = 1 + static_cast<int>(pick(4)); i < n; ++i) {
      const uint64_t group = pick(6), offset = pick(40) * kStep;
      const std::string value = std::to_string(rng());
      switch (pick(6)) {
        case 0: set.put(Family::kInodes, u64_key(group), value); break;
        case 1: set.del(Family::kInodes, u64_key(group)); break;
        case 2: set.put(Family::kStripes, u64_key(pick(20)), value); break;
        case 3: set.del(Family::kExtents, key(group, offset)); break;
        default: set.put(Family::kExtents, key(group, offset), value); break;
      }
    }
    ASSERT_TRUE(cached->write(set, Durability::kNone));
    ASSERT_TRUE(plain->write(set, Durability::kNone));

    const uint64_t group = pick(6), at = pick(45) * kStep + pick(2);
    EXPECT_EQ(cached->get(Family::kInodes, u64_key(group)).value(),
              plain->get(Family::kInodes, u64_key(group)).value());
    const std::string s = u64_key(pick(20));
    EXPECT_EQ(cached->get(Family::kStripes, s).value(), plain->get(Family::kStripes, s).value());
    EXPECT_EQ(cached->floor(Family::kExtents, key(group, at), key(group, 0)).value(),
              plain->floor(Family::kExtents, key(group, at), key(group, 0)).value())
        << "round " << round;
    const uint64_t a = pick(40) * kStep, b = a + pick(20) * kStep;
    EXPECT_EQ(scan_all(*cached, Family::kExtents, key(group, a), key(group, b)),
              scan_all(*plain, Family::kExtents, key(group, a), key(group, b)));
    EXPECT_EQ(scan_all(*cached, Family::kExtents, key(group, a), u64_key(group + 1)),
              scan_all(*plain, Family::kExtents, key(group, a), u64_key(group + 1)));
    // To the end of the family: RocksDB's.
    EXPECT_EQ(scan_all(*cached, Family::kExtents, key(group, 0), ""),
              scan_all(*plain, Family::kExtents, key(group, 0), ""));
  }
  const StoreStats stats = cached->stats();
  EXPECT_GT(stats.cache_hits, stats.cache_misses) << "the cache answered too little";
}

TEST(RecordCacheStore, ReadersRacingAWriterNeverGoBack) {
  TempDir dir;
  StoreOptions options = small_array(dir.path());
  options.record_cache_bytes = 1 << 20;
  auto store = Store::open(options).value();
  constexpr uint64_t kLast = 20000;
  auto encode = [](uint64_t n) { return u64_key(n); };
  auto write = [&](uint64_t n) {
    WriteSet set;
    set.put(Family::kStripes, u64_key(1), encode(n));
    set.put(Family::kExtents, key(9, 0), encode(n));
    ASSERT_TRUE(store->write(set, Durability::kNone));
  };
  write(0);
  std::atomic<bool> done{false};
  std::atomic<int> errors{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&] {
      uint64_t seen_record = 0, seen_group = 0;
      while (!done.load()) {
        auto v = store->get(Family::kStripes, u64_key(1)).value();
        const uint64_t n = parse_u64_key(*v).value();
        if (n < seen_record) ++errors;
        seen_record = n;
        auto e = store->floor(Family::kExtents, key(9, 4096), key(9, 0)).value();
        const uint64_t g = parse_u64_key(e->second).value();
        if (g < seen_group) ++errors;
        seen_group = g;
      }
    });
  }
  for (uint64_t n = 1; n <= kLast; ++n) write(n);
  done = true;
  for (auto& r : readers) r.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(parse_u64_key(*store->get(Family::kStripes, u64_key(1)).value()).value(), kLast);
  EXPECT_EQ(parse_u64_key(store->floor(Family::kExtents, key(9, 1), key(9, 0)).value()->second)
                .value(),
            kLast);
}

}  // namespace
}  // namespace raidfs::meta
