// RecordCache: the Store's write-through cache of records it has read, so that the lookups every
// file read makes — its inode, its extents, their stripes — cost a hash lookup instead of a
// RocksDB search (three searches and two iterators per read, half the daemon's time on a 4 KiB
// read before this cache).
//
// Two kinds of entry; the Store decides which families use which:
//   - a record: one key's value (point-lookup families);
//   - a group: every key of a family that starts with one kGroupPrefixBytes-byte prefix, kept
//     sorted, so that floor() and range() are answered from it. For extents (ino:u64
//     offset:u64) a group is a page: the extents of one file that start in one 16 MiB-aligned
//     16 MiB of it — a page of 4 KiB random writes fits (4096 keys), where a whole file would
//     not. floor() walks back and range() forward through the cached groups next to the one
//     asked for; a walk that meets a group not cached is left to RocksDB. A group of more than
//     kGroupMaxKeys keys is remembered as too large and left to RocksDB. The keys of a family
//     kept in groups must all have one length (extents: 16 bytes), as range() assumes.
//
// Coherence. The Store hands every write set to apply() after RocksDB took it, one write at a
// time, in the order RocksDB applied them: entries present are updated in place (a group gains
// and loses keys), so the cache never holds a value older than the database's.
//   - A reader that missed a record reads RocksDB and offers what it read to fill(), with the
//     generation the miss returned; the offer is dropped when a write to a key that shares the
//     record's generation bucket came in between, because what the reader saw may predate it.
//   - A group is read whole and filled while the Store holds writes off (its write lock), so no
//     write can fall between the two. It is loaded only at its second miss among the last
//     kRecentMisses groups missed: a read over more files than the cache holds then costs what
//     RocksDB costs, not a whole group's scan per read.
//
// Size: at most capacity_bytes (keys + values + a fixed overhead per key). Eviction is second
// chance (CLOCK): entries leave oldest first, except that one used since it was last passed over
// goes round again. A hit only sets a bit: a read of a random block makes four lookups, and
// moving each to the front of a list wrote three list nodes that are mostly out of the CPU's
// caches (3–4% of the daemon's CPU on 4 KiB random reads, stop 35). Values larger than
// kRecordMaxBytes are not kept.
//
// Thread-safety: every method from any thread (one mutex; nothing slow is done under it).
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "meta/store.h"

namespace raidfs::meta {

class RecordCache {
 public:
  static constexpr size_t kGroupPrefixBytes = 13;  // extents: ino and offset / 16 MiB
  static constexpr size_t kGroupMaxKeys = 4096;
  static constexpr size_t kRecordMaxBytes = 4096;
  static constexpr size_t kRecentMisses = 1024;
  static constexpr size_t kGenerationBuckets = 256;

  using Entry = std::pair<std::string, std::string>;

  enum class Lookup : uint8_t {
    kHit,       // answered from the cache
    kMiss,      // not cached: read RocksDB, then fill (records: with the generation returned)
    kUncached,  // groups: read RocksDB and do not fill (first miss, or more than kGroupMaxKeys)
  };

  struct Stats {
    uint64_t hits = 0;
    uint64_t misses = 0;
    uint64_t bytes = 0;
    uint64_t entries = 0;
  };

  explicit RecordCache(size_t capacity_bytes) : capacity_(capacity_bytes) {}

  // Records. On kMiss, *generation is set for fill().
  Lookup find(Family f, std::string_view key, std::string* value, uint64_t* generation);
  void fill(Family f, std::string_view key, std::string_view value, uint64_t generation);

  // Groups: `key`, `lower` and `begin` must be at least kGroupPrefixBytes long; their first
  // kGroupPrefixBytes bytes name the group. floor: the entry with the greatest key ≤ key and
  // ≥ lower, or nullopt. range: the entries in [begin, end) (end empty: to the end of the
  // family). Both answer kMiss/kUncached for the group of `key`/`begin` as find() does, and
  // kUncached when the answer lies beyond it, in a group that is not cached.
  Lookup floor(Family f, std::string_view key, std::string_view lower, std::optional<Entry>* out);
  // The same into *out, its strings' capacity reused (no allocation on the read path); on kHit
  // with no such entry, out->first is empty (no key is).
  Lookup floor(Family f, std::string_view key, std::string_view lower, Entry* out);
  Lookup range(Family f, std::string_view begin, std::string_view end, std::vector<Entry>* out);
  // The same into (*out)[0, *count): entries already in *out are overwritten in place, their
  // strings' capacity reused, and none is freed (the read path's: no allocation once grown).
  Lookup range(Family f, std::string_view begin, std::string_view end, std::vector<Entry>* out,
               size_t* count);
  // `entries`: every key of the group in order, or nullopt when it has more than kGroupMaxKeys.
  // Only while no write can be applied (see Coherence).
  void fill_group(Family f, std::string_view prefix, std::optional<std::vector<Entry>> entries);

  // The first key after every key of prefix's group ("" when there is none: all 0xff bytes).
  static std::string group_end(std::string_view prefix);

  // Brings every cached entry up to date with a write set RocksDB has applied (see above).
  void apply(const WriteSet& set);

  Stats stats() const;

 private:
  struct Node {
    bool is_group = false;
    bool too_large = false;            // groups only
    bool referenced = false;           // used since eviction last passed over it
    std::string value;                 // records only
    std::map<std::string, std::string, std::less<>> keys;  // groups only
    size_t bytes = 0;
    std::list<std::string>::iterator place;  // in order_ (front: newest or given a chance)
  };

  static std::string cache_key(Family f, std::string_view key_or_prefix);
  static_assert(kFamilyCount <= 32, "family_bit needs a wider mask");
  static uint32_t family_bit(Family f) { return uint32_t{1} << static_cast<uint32_t>(f); }
  uint64_t& generation_locked(const std::string& ckey) {
    return generation_[std::hash<std::string>()(ckey) % kGenerationBuckets];
  }
  // The group of `ckey`, or kMiss/kUncached (a first miss is remembered in recent_misses_).
  Lookup find_group_locked(const std::string& ckey, const Node** group);
  // The group of `ckey` if it is cached and usable, else null; no miss is counted.
  const Node* cached_group_locked(const std::string& ckey);
  Node* lookup_locked(const std::string& ckey);
  void insert_locked(std::string ckey, Node node);
  void erase_locked(std::unordered_map<std::string, Node>::iterator it);
  void resize_locked(Node& node, size_t new_bytes);
  void evict_locked();
  // Every entry of the family dropped and every generation moved on (a range delete: fills of
  // anything read before it are refused).
  void forget_family_locked(Family f);

  const size_t capacity_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Node> nodes_;
  std::list<std::string> order_;  // cache keys; eviction takes from the back
  size_t bytes_ = 0;
  std::array<uint64_t, kGenerationBuckets> generation_{};
  std::unordered_set<std::string> recent_misses_;  // groups missed once (cache keys) ...
  std::deque<std::string> recent_order_;           // ... oldest first
  uint64_t hits_ = 0, misses_ = 0;
  // Families apply() must look at (family_bit): looked up by key since construction (set by
  // find(), before the generation it hands out), and holding cached groups (set by fill_group).
  // Writes to the others — most of a random-write batch's index keys — cost no hashing here.
  uint32_t record_families_ = 0;
  uint32_t group_families_ = 0;
};

}  // namespace raidfs::meta
