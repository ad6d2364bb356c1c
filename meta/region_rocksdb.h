// region_rocksdb: RocksDB's view of a RegionFs — a rocksdb::FileSystem whose one directory,
// kRegionDbPath, is the metadata region, so that Store opens the database there exactly as it
// opens one in a host directory (store.h: StoreOptions::region).
//
// Mapping: writable files → RegionFs::Writer (Append, Flush = written, Sync/Fsync = durable,
// Close, Truncate), sequential and random-access files → RegionFs::Reader, the directory's fsync
// → RegionFs::sync_namespace, rename/delete/list/size as named. Locks are kept in memory (the
// members are locked against other processes by the array itself). Hard links, random-write
// files and memory maps are not supported (RocksDB does not need them as raidfs configures it).
#pragma once

#include <memory>

namespace rocksdb {
class FileSystem;
class Logger;
}  // namespace rocksdb

namespace raidfs::meta {

class RegionFs;

inline constexpr const char* kRegionDbPath = "/raidfs-region";

std::shared_ptr<rocksdb::FileSystem> region_file_system(std::shared_ptr<RegionFs> fs);
// A logger that drops RocksDB's informational log: there is no host directory to keep it in, and
// the region's space is for the database. Errors reach raidfs as statuses anyway.
std::shared_ptr<rocksdb::Logger> discarding_logger();

}  // namespace raidfs::meta
