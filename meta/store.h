// Store: owns the RocksDB database of one array's metadata — its column families, its opening
// (and refusal to open another array's or a newer format's database), atomic writes, and group
// commit. It knows nothing of inodes or directories: keys and values are bytes (see keys.h,
// records.h). Only store.cc and region_rocksdb.cc (the metadata region as a rocksdb::FileSystem)
// include RocksDB headers.
//
// Column families (one per record kind, see keys.h for key grammar, records.h for values):
//   super, inodes, dirents, cookies, extents, stripes, xattrs, orphans.
// Point-lookup families (inodes, dirents, stripes, xattrs, orphans) carry bloom filters; all
// share one LRU block cache of StoreOptions::block_cache_bytes. Above RocksDB, a RecordCache
// (record_cache.h) of StoreOptions::record_cache_bytes keeps the inodes and stripes read by key
// and each file's extents in groups of 16 MiB of the file, updated by every write: get(),
// floor() and scan() within one file's extents are answered from memory when they can be.
//
// Durability and group commit: write() appends the batch to the WAL and the memtables in one
// atomic RocksDB write. With Durability::kNone the WAL bytes are handed to the OS (they survive a
// crash of this process, not a power cut). sync(seq) makes every write up to sequence `seq`
// durable with one WAL fsync; concurrent callers form a group: one leader fsyncs for everything
// written before it started, the followers wait for it and return without an fsync of their own
// when it covered them. Because the WAL is ordered, a synced write implies every earlier write is
// synced too. Durability::kGroupSync = write() then sync(). Durability::kSyncEach asks RocksDB to
// fsync inside the write (WriteOptions::sync; kept for comparison in the benchmark); it does not
// advance synced_sequence(), since RocksDB does not report the write's own sequence and the latest
// one may belong to another thread's unsynced write.
//
// Thread-safety: all methods may be called from any thread concurrently. Reads see every write
// that returned before they started; a scan sees one consistent snapshot.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "meta/records.h"

namespace raidfs::meta {

enum class Family : uint8_t {
  kSuper, kInodes, kDirents, kCookies, kExtents, kStripes, kXattrs, kOrphans, kExtentsByStripe,
  kParityRows,
};
inline constexpr size_t kFamilyCount = 10;
std::string_view family_name(Family f);

// The writes of one filesystem operation, applied all together or not at all by Store::write.
class WriteSet {
 public:
  enum class Kind : uint8_t { kPut, kDelete, kDeleteRange };
  struct Op {
    Family family;
    Kind kind;
    std::string key;
    std::string value;  // empty for a delete; the range's end for kDeleteRange
    bool is_delete() const { return kind != Kind::kPut; }
  };
  void put(Family f, std::string key, std::string value) {
    bytes_ += key.size() + value.size();
    ops_.push_back(Op{f, Kind::kPut, std::move(key), std::move(value)});
  }
  void del(Family f, std::string key) {
    bytes_ += key.size();
    ops_.push_back(Op{f, Kind::kDelete, std::move(key), {}});
  }
  // Every key in [begin, end) deleted: one RocksDB range tombstone, however many keys it covers.
  void del_range(Family f, std::string begin, std::string end) {
    bytes_ += begin.size() + end.size();
    ops_.push_back(Op{f, Kind::kDeleteRange, std::move(begin), std::move(end)});
  }
  const std::vector<Op>& ops() const { return ops_; }
  bool empty() const { return ops_.empty(); }
  size_t bytes() const { return bytes_; }

 private:
  std::vector<Op> ops_;
  size_t bytes_ = 0;
};

enum class Durability : uint8_t { kNone, kGroupSync, kSyncEach };

// How much of the space kept in reserve a write may use. New work is refused at the whole reserve;
// kFreeing, a write that gives space back (a removal, a truncation), may use half of it, so that a
// full metadata region can still be emptied; kAcknowledged, the commit of data already
// acknowledged to its writers (a stripe sealed or flushed), three quarters, so that a region that
// filled after the data was written cannot lose it. New data is refused where new work is, when
// its stripe is allocated (FsMeta::allocate_stripe): what such commits still need is bounded by the
// stripes open at the time.
enum class Room : uint8_t { kOrdinary, kFreeing, kAcknowledged };

class RegionFs;

struct StoreOptions {
  std::string path;             // directory of the database, unless `region` is set
  // The database lives in the members' metadata region instead (region_fs.h): path is ignored,
  // and the space kept in reserve is the region's (region_reserve_bytes).
  std::shared_ptr<RegionFs> region;
  // Opens the database read-only (RocksDB's OpenForReadOnly: its log replayed in memory, no file
  // written); write() then refuses with EROFS and sync() has nothing to do. Used for read-only
  // opens of a self-contained array, whose region must not change while members may be away
  // unrecorded (a read-only open records no member state).
  bool read_only = false;
  ArrayUuid array_uuid{};       // the array this metadata must belong to
  bool create_if_missing = false;
  // Used only when a new database is created (recorded in the super record):
  uint64_t stripe_count = 0;
  uint32_t stripe_data_bytes = 0;
  std::string geometry;
  size_t block_cache_bytes = size_t{64} << 20;
  size_t record_cache_bytes = size_t{64} << 20;  // 0: no RecordCache
};

struct StoreStats {
  uint64_t writes = 0;
  uint64_t wal_syncs = 0;       // fsyncs done by sync() leaders
  uint64_t synced_waits = 0;    // sync() calls satisfied by another caller's fsync
  uint64_t cache_hits = 0;      // lookups the RecordCache answered
  uint64_t cache_misses = 0;    // lookups it sent to RocksDB (some then filled it)
};

class Store {
 public:
  // Opens (or, with create_if_missing, creates) the database at options.path.
  // Errors: ENOENT no database there (and not asked to create); EINVAL the database belongs to
  // another array (different UUID) or the options are invalid; ENOTSUP its format is newer than
  // this program's; ENOSPC the filesystem holding it has too little room to open it (the
  // reserve below plus its logs, which opening replays into tables); EIO RocksDB failed or the
  // super record is corrupt.
  static Result<std::unique_ptr<Store>> open(const StoreOptions& options);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const Super& super() const { return super_; }
  // Records that the database now has the layout of `store_format` (after its upgrade's own
  // writes, which this makes durable first). EIO on failure.
  Result<void> set_store_format(uint32_t store_format);
  const std::string& path() const { return path_; }

  // The value at key, or nullopt when absent. EIO when RocksDB fails.
  Result<std::optional<std::string>> get(Family f, std::string_view key) const;
  // The same into *value, its capacity reused (a read answered from the record cache allocates
  // nothing); false when absent.
  Result<bool> get(Family f, std::string_view key, std::string* value) const;

  // Calls visit(key, value) for every key in [begin, end) in key order (end empty: to the end of
  // the family) on one consistent snapshot, until visit returns false or an error (returned).
  using Visitor = std::function<Result<bool>(std::string_view key, std::string_view value)>;
  Result<void> scan(Family f, std::string_view begin, std::string_view end,
                    const Visitor& visit) const;

  // The entry with the greatest key ≤ key and ≥ lower, or nullopt when there is none.
  Result<std::optional<std::pair<std::string, std::string>>> floor(
      Family f, std::string_view key, std::string_view lower) const;
  // The same into *entry, its strings' capacity reused; false when there is none.
  Result<bool> floor(Family f, std::string_view key, std::string_view lower,
                     std::pair<std::string, std::string>* entry) const;

  // Applies `set` atomically. Returns a sequence number to pass to sync(). EIO on failure
  // (nothing of the set applied); ENOSPC, before anything is tried, when the filesystem holding
  // the database has less than kHostReserveBytes free, or the metadata region less than
  // region_reserve_bytes (RocksDB, once a write of its log has failed, may abort the process on
  // the next one, and a compaction needs room for its output before it frees its input: it must
  // never get that far).
  Result<uint64_t> write(const WriteSet& set, Durability durability, Room room = Room::kOrdinary);
  static constexpr uint64_t kHostReserveBytes = uint64_t{32} << 20;
  // A quarter of the region, at least 4 MiB: room for a compaction to finish.
  static uint64_t region_reserve_bytes(uint64_t region_bytes);
  // ENOSPC (saying what is full and what to do) when a write of this kind would be refused now.
  // The host filesystem's free space is looked at once a second at most.
  Result<void> check_room(Room room);
  // Where the database is, for messages: its directory, or "the metadata region".
  std::string where() const;
  // The region the database lives in (null: a host directory).
  const std::shared_ptr<RegionFs>& region() const { return region_; }
  bool read_only() const { return read_only_; }

  // Makes every write whose sequence is ≤ seq durable (group commit, see above). EIO on failure.
  Result<void> sync(uint64_t seq);
  uint64_t latest_sequence() const;
  // Every write with a sequence ≤ this is durable (advanced by sync() only).
  uint64_t synced_sequence() const { return synced_seq_.load(); }

  StoreStats stats() const;

 private:
  struct Impl;
  Store() = default;
  void load_group(Family f, std::string_view prefix) const;

  std::unique_ptr<Impl> impl_;
  Super super_;
  std::string path_;
  std::shared_ptr<RegionFs> region_;
  bool read_only_ = false;
  std::atomic<uint64_t> synced_seq_{0};
  std::atomic<uint64_t> writes_{0};
  std::atomic<int64_t> space_checked_s_{-1};  // monotonic second of the last look
  std::atomic<uint64_t> host_free_bytes_{UINT64_MAX};
};

}  // namespace raidfs::meta
