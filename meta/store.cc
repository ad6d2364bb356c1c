// Store: with region_rocksdb.cc, the only file of raidfs that includes RocksDB.
#include "meta/store.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/perf_level.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <sys/statvfs.h>
#include <time.h>

#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <mutex>

#include "meta/coding.h"
#include "meta/keys.h"
#include "meta/record_cache.h"
#include "meta/region_fs.h"
#include "meta/region_rocksdb.h"

namespace raidfs::meta {
namespace {

// RocksDB counts every key comparison in a thread-local perf context unless told not to, per
// thread (its default level is kEnableCount). In a shared librocksdb each count is two dynamic
// TLS lookups: about 6% of the daemon's CPU under 4 KiB random writes, where a seal's batch
// inserts hundreds of keys into the memtables. raidfs reads no perf context, so every thread
// that calls the Store turns the counting off once.
void stop_perf_counting() {
  thread_local bool stopped = false;
  if (stopped) return;
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
  stopped = true;
}

constexpr std::string_view kFamilyNames[kFamilyCount] = {
    "super", "inodes", "dirents", "cookies", "extents", "stripes", "xattrs", "orphans",
    "extents_by_stripe", "parity_rows",
};
// What the RecordCache keeps of each family: the records a read needs on every call — inodes and
// stripes by key, and whole groups of one file's extents (their keys start with the inode).
enum class CacheKind : uint8_t { kNone, kRecord, kGroup };
constexpr CacheKind kFamilyCache[kFamilyCount] = {
    CacheKind::kNone, CacheKind::kRecord, CacheKind::kNone, CacheKind::kNone,
    CacheKind::kGroup, CacheKind::kRecord, CacheKind::kNone, CacheKind::kNone,
    CacheKind::kNone, CacheKind::kNone,
};
constexpr size_t kPrefix = RecordCache::kGroupPrefixBytes;

// Families read mostly by exact key get a bloom filter.
constexpr bool kFamilyPointLookups[kFamilyCount] = {
    false, true, true, false, false, true, true, true, false, false,
};

std::unexpected<Error> rocks_error(const rocksdb::Status& s, std::string_view what) {
  return raidfs::fail(EIO, std::string(what) + ": " + s.ToString());
}

std::string uuid_text(const ArrayUuid& u) {
  char buf[40];
  std::snprintf(buf, sizeof buf,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0],
                u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13],
                u[14], u[15]);
  return buf;
}

rocksdb::Slice slice(std::string_view s) { return rocksdb::Slice(s.data(), s.size()); }
std::string_view view(const rocksdb::Slice& s) { return std::string_view(s.data(), s.size()); }

}  // namespace

// Bytes free for unprivileged users on the filesystem holding `path` (UINT64_MAX if unknown).
uint64_t host_free_bytes(const std::string& path) {
  struct statvfs st;
  if (::statvfs(path.c_str(), &st) != 0) return UINT64_MAX;
  return uint64_t{st.f_bavail} * st.f_frsize;
}

std::string mib(uint64_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

std::string_view family_name(Family f) { return kFamilyNames[static_cast<size_t>(f)]; }

struct Store::Impl {
  std::unique_ptr<rocksdb::Env> env;  // over the metadata region; null for a host directory
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;  // all opened, owned, closed in ~Impl
  rocksdb::ColumnFamilyHandle* family[kFamilyCount] = {};
  std::shared_ptr<rocksdb::Cache> cache;
  std::unique_ptr<RecordCache> records;  // null when StoreOptions::record_cache_bytes is 0
  // Orders writes with their RecordCache::apply(), so the cache sees them in RocksDB's order.
  std::mutex write_mu;

  // Group commit. Guards sync_running and wakes followers; lock order: taken alone.
  std::mutex sync_mu;
  std::condition_variable sync_cv;
  bool sync_running = false;
  std::atomic<uint64_t> wal_syncs{0};
  std::atomic<uint64_t> synced_waits{0};

  ~Impl() {
    if (!db) return;
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
    db->Close();
  }
  rocksdb::ColumnFamilyHandle* cf(Family f) const { return family[static_cast<size_t>(f)]; }
  RecordCache* cache_for(Family f, CacheKind kind) const {
    return kFamilyCache[static_cast<size_t>(f)] == kind ? records.get() : nullptr;
  }
};

Store::~Store() = default;

uint64_t Store::region_reserve_bytes(uint64_t region_bytes) {
  return std::max<uint64_t>(region_bytes / 4, uint64_t{4} << 20);
}

std::string Store::where() const { return region_ ? "the metadata region" : path_; }

Result<std::unique_ptr<Store>> Store::open(const StoreOptions& in) {
  StoreOptions options = in;
  if (options.region) options.path = kRegionDbPath;
  if (options.path.empty()) return raidfs::fail(EINVAL, "metadata path is empty");
  const std::string where = options.region ? "the metadata region" : options.path;
  std::error_code ec;
  const bool exists = options.region ? options.region->exists("CURRENT")
                                     : std::filesystem::exists(options.path + "/CURRENT", ec);
  if (!exists && !options.create_if_missing)
    return raidfs::fail(ENOENT, options.region ? "the metadata region holds no database"
                                               : "no metadata database at " + options.path);
  if (options.create_if_missing) {
    if (options.stripe_count == 0 || options.stripe_count > kStripeCountMax ||
        options.stripe_data_bytes == 0 ||
        options.stripe_data_bytes > kStripeDataBytesMax ||
        options.stripe_data_bytes % kBlockBytes != 0)
      return raidfs::fail(EINVAL, "creating metadata in " + where +
                                      ": stripe count (1.." + std::to_string(kStripeCountMax) +
                                      ") and stripe data bytes (a multiple of 4096) are required");
    if (options.geometry.size() > kGeometryBytesMax)
      return raidfs::fail(EINVAL, "geometry blob too large");
  }

  if (exists && !options.region) {
    // Opening replays the logs into new tables and writes a new manifest and log: room for all
    // of it first, so that a full host filesystem is a clear refusal, not a RocksDB abort.
    uint64_t need = kHostReserveBytes;
    for (const auto& entry : std::filesystem::directory_iterator(options.path, ec))
      if (entry.path().extension() == ".log") need += entry.file_size(ec);
    const uint64_t free_bytes = host_free_bytes(options.path);
    if (free_bytes < need)
      return raidfs::fail(ENOSPC, options.path + ": only " + mib(free_bytes) +
                                      " free on the filesystem holding the metadata; opening it "
                                      "needs about " + mib(need) + " (free some space there)");
  }

  auto impl = std::make_unique<Impl>();
  impl->cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  if (options.record_cache_bytes > 0)
    impl->records = std::make_unique<RecordCache>(options.record_cache_bytes);

  rocksdb::DBOptions db_options;
  db_options.create_if_missing = options.create_if_missing;
  db_options.create_missing_column_families = true;
  db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  db_options.max_background_jobs = 2;
  db_options.keep_log_file_num = 4;
  db_options.max_total_wal_size = size_t{256} << 20;
  // In the members' metadata region: RocksDB's files go through RegionFs, and its sizes follow
  // the region's (a small region must still hold the logs, the tables and a compaction's output).
  // Memtables of 4 MiB, not 16: a seal of 4 KiB random writes inserts a few hundred keys at
  // random places, and a skiplist a quarter the size is a level shallower and more of it in
  // cache (fio randwrite 4K qd16: +6–16% IOPS, −11% daemon CPU per write; docs/decisions.md).
  size_t write_buffer = size_t{4} << 20, target_file = size_t{64} << 20, level_base = size_t{256} << 20;
  if (options.region) {
    const uint64_t bytes = options.region->usage().bytes;
    auto scaled = [&](uint64_t part, uint64_t lo, uint64_t hi) {
      return static_cast<size_t>(std::clamp<uint64_t>(bytes / part, lo, hi));
    };
    impl->env = rocksdb::NewCompositeEnv(region_file_system(options.region));
    db_options.env = impl->env.get();
    db_options.info_log = discarding_logger();
    db_options.max_total_wal_size = scaled(8, 2 << 20, 256 << 20);
    db_options.manifest_preallocation_size = 0;
    write_buffer = scaled(64, 256 << 10, 4 << 20);
    target_file = scaled(32, 1 << 20, 64 << 20);
    level_base = scaled(8, 4 << 20, 256 << 20);
  }

  std::vector<std::string> names;
  if (exists) {
    rocksdb::Status s = rocksdb::DB::ListColumnFamilies(db_options, options.path, &names);
    if (!s.ok()) return rocks_error(s, "listing column families in " + where);
  }
  for (std::string_view f : kFamilyNames)
    if (std::find(names.begin(), names.end(), f) == names.end()) names.emplace_back(f);
  if (std::find(names.begin(), names.end(), rocksdb::kDefaultColumnFamilyName) == names.end())
    names.push_back(rocksdb::kDefaultColumnFamilyName);

  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const std::string& name : names) {
    rocksdb::ColumnFamilyOptions cf_options;
    rocksdb::BlockBasedTableOptions table;
    table.block_cache = impl->cache;
    table.cache_index_and_filter_blocks = true;
    table.pin_l0_filter_and_index_blocks_in_cache = true;
    auto known = std::find(std::begin(kFamilyNames), std::end(kFamilyNames), name);
    if (known != std::end(kFamilyNames) && kFamilyPointLookups[known - std::begin(kFamilyNames)])
      table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    cf_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
    cf_options.write_buffer_size = write_buffer;
    cf_options.target_file_size_base = target_file;
    cf_options.max_bytes_for_level_base = level_base;
    descriptors.emplace_back(name, cf_options);
  }

  rocksdb::DB* raw = nullptr;
  if (options.read_only && !exists)
    return raidfs::fail(ENOENT, "no metadata database in " + where + " (read-only: not created)");
  rocksdb::Status s =
      options.read_only
          ? rocksdb::DB::OpenForReadOnly(db_options, options.path, descriptors, &impl->handles, &raw)
          : rocksdb::DB::Open(db_options, options.path, descriptors, &impl->handles, &raw);
  if (!s.ok()) return rocks_error(s, "opening metadata in " + where);
  impl->db.reset(raw);
  for (size_t i = 0; i < impl->handles.size(); ++i) {
    auto known = std::find(std::begin(kFamilyNames), std::end(kFamilyNames), names[i]);
    if (known != std::end(kFamilyNames))
      impl->family[known - std::begin(kFamilyNames)] = impl->handles[i];
  }

  std::unique_ptr<Store> store(new Store());
  store->impl_ = std::move(impl);
  store->path_ = options.path;
  store->region_ = options.region;
  store->read_only_ = options.read_only;

  RAIDFS_TRY(auto super_value, store->get(Family::kSuper, kSuperKey));
  if (!super_value) {
    if (!options.create_if_missing)
      return raidfs::fail(EIO, "metadata in " + where +
                                   " has no super record: not a raidfs metadata database");
    Super fresh;
    fresh.array_uuid = options.array_uuid;
    fresh.stripe_count = options.stripe_count;
    fresh.stripe_data_bytes = options.stripe_data_bytes;
    fresh.geometry = options.geometry;
    WriteSet set;
    set.put(Family::kSuper, std::string(kSuperKey), encode_super(fresh));
    RAIDFS_CHECK(store->write(set, Durability::kSyncEach));
    store->super_ = fresh;
  } else {
    // The store format sits right after the record format byte in every version of the super
    // record, so a newer database is recognised before its (possibly different) layout is read.
    if (super_value->size() >= 5 && load_u32(super_value->data() + 1) > kStoreFormat)
      return raidfs::fail(ENOTSUP, "metadata in " + where + " has format " +
                                       std::to_string(load_u32(super_value->data() + 1)) +
                                       ", newer than this raidfs understands (" +
                                       std::to_string(kStoreFormat) + "): upgrade raidfs");
    RAIDFS_TRY(Super super, decode_super(*super_value));
    if (super.array_uuid != options.array_uuid)
      return raidfs::fail(EINVAL, "metadata in " + where + " belongs to array " +
                                      uuid_text(super.array_uuid) + ", not " +
                                      uuid_text(options.array_uuid));
    store->super_ = std::move(super);
  }
  store->synced_seq_ = store->latest_sequence();
  return store;
}

Result<void> Store::set_store_format(uint32_t store_format) {
  Super updated = super_;
  updated.store_format = store_format;
  WriteSet set;
  set.put(Family::kSuper, std::string(kSuperKey), encode_super(updated));
  RAIDFS_CHECK(write(set, Durability::kSyncEach));
  super_ = std::move(updated);
  return {};
}

Result<std::optional<std::string>> Store::get(Family f, std::string_view key) const {
  std::string value;
  RAIDFS_TRY(const bool found, get(f, key, &value));
  if (!found) return std::optional<std::string>();
  return std::optional<std::string>(std::move(value));
}

Result<bool> Store::get(Family f, std::string_view key, std::string* value) const {
  stop_perf_counting();
  RecordCache* cache = impl_->cache_for(f, CacheKind::kRecord);
  uint64_t generation = 0;
  if (cache != nullptr && cache->find(f, key, value, &generation) == RecordCache::Lookup::kHit)
    return true;
  rocksdb::Status s = impl_->db->Get(rocksdb::ReadOptions(), impl_->cf(f), slice(key), value);
  if (s.IsNotFound()) return false;
  if (!s.ok()) return rocks_error(s, "reading " + std::string(family_name(f)));
  if (cache != nullptr) cache->fill(f, key, *value, generation);
  return true;
}

// Reads the group of keys starting with `prefix` from RocksDB into the cache, with writes held
// off so that none falls between the read and the fill (nothing on an error: the caller then
// reads RocksDB itself).
void Store::load_group(Family f, std::string_view prefix) const {
  const std::string end = RecordCache::group_end(prefix);
  rocksdb::ReadOptions read_options;
  rocksdb::Slice upper = slice(end);
  if (!end.empty()) read_options.iterate_upper_bound = &upper;
  std::lock_guard lock(impl_->write_mu);
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(read_options, impl_->cf(f)));
  std::vector<RecordCache::Entry> entries;
  bool too_large = false;
  for (it->Seek(slice(prefix)); it->Valid(); it->Next()) {
    if (entries.size() == RecordCache::kGroupMaxKeys) {
      too_large = true;
      break;
    }
    entries.emplace_back(it->key().ToString(), it->value().ToString());
  }
  if (!it->status().ok()) return;
  impl_->records->fill_group(f, prefix, too_large ? std::nullopt : std::optional(std::move(entries)));
}

Result<void> Store::scan(Family f, std::string_view begin, std::string_view end,
                         const Visitor& visit) const {
  stop_perf_counting();
  // A bounded range starting in a cached group is answered from the groups it spans, when
  // they are all cached.
  if (RecordCache* cache = impl_->cache_for(f, CacheKind::kGroup);
      cache != nullptr && begin.size() >= kPrefix && !end.empty()) {
    // The entries are copied out (visit may call the Store) into this thread's list, reused
    // (a read allocates nothing); a scan started by a visitor has a list of its own.
    thread_local std::vector<RecordCache::Entry> reused;
    thread_local bool reused_in_use = false;
    std::vector<RecordCache::Entry> own;
    const bool mine = !reused_in_use;
    std::vector<RecordCache::Entry>& entries = mine ? reused : own;
    size_t count = 0;
    auto found = cache->range(f, begin, end, &entries, &count);
    if (found == RecordCache::Lookup::kMiss) {
      load_group(f, begin.substr(0, kPrefix));
      found = cache->range(f, begin, end, &entries, &count);
    }
    if (found == RecordCache::Lookup::kHit) {
      if (mine) reused_in_use = true;
      Result<void> visited = [&]() -> Result<void> {
        for (size_t i = 0; i < count; ++i) {
          RAIDFS_TRY(bool more, visit(entries[i].first, entries[i].second));
          if (!more) break;
        }
        return {};
      }();
      if (mine) reused_in_use = false;
      return visited;
    }
  }
  rocksdb::ReadOptions read_options;
  rocksdb::Slice upper = slice(end);
  if (!end.empty()) read_options.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(read_options, impl_->cf(f)));
  for (it->Seek(slice(begin)); it->Valid(); it->Next()) {
    RAIDFS_TRY(bool more, visit(view(it->key()), view(it->value())));
    if (!more) return {};
  }
  if (!it->status().ok()) return rocks_error(it->status(), "scanning " + std::string(family_name(f)));
  return {};
}

Result<std::optional<std::pair<std::string, std::string>>> Store::floor(
    Family f, std::string_view key, std::string_view lower) const {
  std::pair<std::string, std::string> entry;
  RAIDFS_TRY(const bool found, floor(f, key, lower, &entry));
  if (!found) return std::optional<std::pair<std::string, std::string>>();
  return std::optional(std::move(entry));
}

Result<bool> Store::floor(Family f, std::string_view key, std::string_view lower,
                          std::pair<std::string, std::string>* entry) const {
  stop_perf_counting();
  if (RecordCache* cache = impl_->cache_for(f, CacheKind::kGroup);
      cache != nullptr && key.size() >= kPrefix && lower.size() >= kPrefix) {
    auto found = cache->floor(f, key, lower, entry);
    if (found == RecordCache::Lookup::kMiss) {
      load_group(f, key.substr(0, kPrefix));
      found = cache->floor(f, key, lower, entry);
    }
    if (found == RecordCache::Lookup::kHit) return !entry->first.empty();
  }
  rocksdb::ReadOptions read_options;
  rocksdb::Slice lower_bound = slice(lower);
  read_options.iterate_lower_bound = &lower_bound;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(read_options, impl_->cf(f)));
  it->SeekForPrev(slice(key));
  if (!it->status().ok()) return rocks_error(it->status(), "seeking " + std::string(family_name(f)));
  if (!it->Valid() || view(it->key()) < lower) return false;
  entry->first.assign(view(it->key()));
  entry->second.assign(view(it->value()));
  return true;
}

Result<void> Store::check_room(Room room) {
  const uint64_t share = room == Room::kOrdinary ? 1 : room == Room::kFreeing ? 2 : 4;
  if (region_) {
    const RegionFs::Usage u = region_->usage();
    const uint64_t reserve = region_reserve_bytes(u.bytes);
    if (u.free_bytes >= reserve / share) return {};
    return raidfs::fail(ENOSPC, "the metadata region is full (" + mib(u.free_bytes) + " of " +
                                    mib(u.bytes) + " free; raidfs keeps " + mib(reserve) +
                                    " in reserve): remove files, or make the array with a larger -M");
  }
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  int64_t seen = space_checked_s_.load(std::memory_order_relaxed);
  if (seen != ts.tv_sec &&
      space_checked_s_.compare_exchange_strong(seen, ts.tv_sec, std::memory_order_relaxed))
    host_free_bytes_.store(host_free_bytes(path_), std::memory_order_relaxed);
  const uint64_t free_bytes = host_free_bytes_.load(std::memory_order_relaxed);
  if (free_bytes >= kHostReserveBytes / share) return {};
  return raidfs::fail(ENOSPC, "the filesystem holding the metadata (" + path_ + ") has only " +
                                  mib(free_bytes) + " free; raidfs keeps " +
                                  mib(kHostReserveBytes) + " there in reserve");
}

Result<uint64_t> Store::write(const WriteSet& set, Durability durability, Room room) {
  stop_perf_counting();
  if (read_only_) return raidfs::fail(EROFS, "the metadata is open read-only");
  RAIDFS_CHECK(check_room(room));
  rocksdb::WriteBatch batch(set.bytes() + 24 * set.ops().size() + 64);
  for (const WriteSet::Op& op : set.ops()) {
    rocksdb::Status s;
    switch (op.kind) {
      case WriteSet::Kind::kPut:
        s = batch.Put(impl_->cf(op.family), slice(op.key), slice(op.value));
        break;
      case WriteSet::Kind::kDelete:
        s = batch.Delete(impl_->cf(op.family), slice(op.key));
        break;
      case WriteSet::Kind::kDeleteRange:
        s = batch.DeleteRange(impl_->cf(op.family), slice(op.key), slice(op.value));
        break;
    }
    if (!s.ok()) return rocks_error(s, "building write batch");
  }
  rocksdb::WriteOptions write_options;
  write_options.sync = durability == Durability::kSyncEach;
  {
    std::lock_guard lock(impl_->write_mu);
    rocksdb::Status s = impl_->db->Write(write_options, &batch);
    if (!s.ok()) return rocks_error(s, "writing metadata");
    if (impl_->records) impl_->records->apply(set);
  }
  writes_.fetch_add(1, std::memory_order_relaxed);
  // At least this write's sequence (possibly a later write of another thread: fine for sync()).
  // Not a reason to advance synced_seq_ after a kSyncEach write: that later write may not be
  // durable, and RocksDB does not say which sequence this write got.
  const uint64_t seq = latest_sequence();
  if (durability == Durability::kGroupSync) RAIDFS_CHECK(sync(seq));
  return seq;
}

Result<void> Store::sync(uint64_t seq) {
  if (read_only_) return {};  // nothing was written
  std::unique_lock lock(impl_->sync_mu);
  for (;;) {
    if (synced_seq_.load() >= seq) {
      impl_->synced_waits.fetch_add(1, std::memory_order_relaxed);
      return {};
    }
    if (!impl_->sync_running) break;
    impl_->sync_cv.wait(lock);
  }
  // Leader: everything published up to `target` is in the WAL; one fsync covers it all.
  impl_->sync_running = true;
  const uint64_t target = latest_sequence();
  lock.unlock();
  rocksdb::Status s = impl_->db->SyncWAL();
  lock.lock();
  impl_->sync_running = false;
  if (s.ok()) {
    impl_->wal_syncs.fetch_add(1, std::memory_order_relaxed);
    if (target > synced_seq_.load()) synced_seq_.store(target);
  }
  impl_->sync_cv.notify_all();
  if (!s.ok()) return rocks_error(s, "syncing metadata WAL");
  return {};
}

uint64_t Store::latest_sequence() const { return impl_->db->GetLatestSequenceNumber(); }

StoreStats Store::stats() const {
  StoreStats stats{writes_.load(), impl_->wal_syncs.load(), impl_->synced_waits.load()};
  if (impl_->records) {
    const RecordCache::Stats c = impl_->records->stats();
    stats.cache_hits = c.hits;
    stats.cache_misses = c.misses;
  }
  return stats;
}

}  // namespace raidfs::meta
