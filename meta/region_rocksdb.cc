// region_rocksdb: rocksdb::FileSystem over RegionFs. See region_rocksdb.h.
#include "meta/region_rocksdb.h"

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/io_status.h>

#include <mutex>
#include <set>

#include "meta/region_fs.h"

namespace raidfs::meta {
namespace {

using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

IOStatus to_status(const Error& e) {
  switch (e.code) {
    case ENOENT: return IOStatus::PathNotFound(e.message);
    case ENOSPC: return IOStatus::NoSpace(e.message);
    case EINVAL: return IOStatus::InvalidArgument(e.message);
    case ENOTSUP: return IOStatus::NotSupported(e.message);
    default: return IOStatus::IOError(e.message);
  }
}
template <class T>
IOStatus to_status(const Result<T>& r) {
  return r ? IOStatus::OK() : to_status(r.error());
}

class SequentialFile final : public rocksdb::FSSequentialFile {
 public:
  explicit SequentialFile(std::unique_ptr<RegionFs::Reader> r) : reader_(std::move(r)) {}
  IOStatus Read(size_t n, const IOOptions&, Slice* result, char* scratch, IODebugContext*) override {
    auto got = reader_->read(pos_, n, reinterpret_cast<uint8_t*>(scratch));
    if (!got) return to_status(got.error());
    pos_ += *got;
    *result = Slice(scratch, *got);
    return IOStatus::OK();
  }
  IOStatus Skip(uint64_t n) override {
    pos_ += n;
    return IOStatus::OK();
  }

 private:
  std::unique_ptr<RegionFs::Reader> reader_;
  uint64_t pos_ = 0;
};

class RandomAccessFile final : public rocksdb::FSRandomAccessFile {
 public:
  explicit RandomAccessFile(std::unique_ptr<RegionFs::Reader> r) : reader_(std::move(r)) {}
  IOStatus Read(uint64_t offset, size_t n, const IOOptions&, Slice* result, char* scratch,
                IODebugContext*) const override {
    auto got = reader_->read(offset, n, reinterpret_cast<uint8_t*>(scratch));
    if (!got) return to_status(got.error());
    *result = Slice(scratch, *got);
    return IOStatus::OK();
  }

 private:
  std::unique_ptr<RegionFs::Reader> reader_;
};

class WritableFile final : public rocksdb::FSWritableFile {
 public:
  explicit WritableFile(std::unique_ptr<RegionFs::Writer> w) : writer_(std::move(w)) {}
  IOStatus Append(const Slice& data, const IOOptions&, IODebugContext*) override {
    return to_status(writer_->append({reinterpret_cast<const uint8_t*>(data.data()), data.size()}));
  }
  IOStatus Truncate(uint64_t size, const IOOptions&, IODebugContext*) override {
    return to_status(writer_->truncate(size));
  }
  IOStatus Close(const IOOptions&, IODebugContext*) override { return to_status(writer_->close()); }
  IOStatus Flush(const IOOptions&, IODebugContext*) override { return to_status(writer_->flush()); }
  IOStatus Sync(const IOOptions&, IODebugContext*) override { return to_status(writer_->sync()); }
  IOStatus Fsync(const IOOptions&, IODebugContext*) override { return to_status(writer_->sync()); }
  uint64_t GetFileSize(const IOOptions&, IODebugContext*) override { return writer_->size(); }
  // RocksDB syncs its log from the group-commit leader while other threads append to it.
  bool IsSyncThreadSafe() const override { return true; }

 private:
  std::unique_ptr<RegionFs::Writer> writer_;
};

class Directory final : public rocksdb::FSDirectory {
 public:
  explicit Directory(std::shared_ptr<RegionFs> fs) : fs_(std::move(fs)) {}
  IOStatus Fsync(const IOOptions&, IODebugContext*) override {
    return to_status(fs_->sync_namespace());
  }

 private:
  std::shared_ptr<RegionFs> fs_;
};

struct RegionLock : rocksdb::FileLock {
  std::string name;
};

class RegionFileSystem final : public rocksdb::FileSystem {
 public:
  explicit RegionFileSystem(std::shared_ptr<RegionFs> fs) : fs_(std::move(fs)) {}
  const char* Name() const override { return "RaidfsRegion"; }

  IOStatus NewSequentialFile(const std::string& path, const rocksdb::FileOptions&,
                             std::unique_ptr<rocksdb::FSSequentialFile>* result,
                             IODebugContext*) override {
    std::string name;
    IOStatus s = file_name(path, &name);
    if (!s.ok()) return s;
    auto reader = fs_->open_file(name);
    if (!reader) return to_status(reader.error());
    *result = std::make_unique<SequentialFile>(std::move(*reader));
    return IOStatus::OK();
  }
  IOStatus NewRandomAccessFile(const std::string& path, const rocksdb::FileOptions&,
                               std::unique_ptr<rocksdb::FSRandomAccessFile>* result,
                               IODebugContext*) override {
    std::string name;
    IOStatus s = file_name(path, &name);
    if (!s.ok()) return s;
    auto reader = fs_->open_file(name);
    if (!reader) return to_status(reader.error());
    *result = std::make_unique<RandomAccessFile>(std::move(*reader));
    return IOStatus::OK();
  }
  IOStatus NewWritableFile(const std::string& path, const rocksdb::FileOptions&,
                           std::unique_ptr<rocksdb::FSWritableFile>* result,
                           IODebugContext*) override {
    std::string name;
    IOStatus s = file_name(path, &name);
    if (!s.ok()) return s;
    auto writer = fs_->create(name);
    if (!writer) return to_status(writer.error());
    *result = std::make_unique<WritableFile>(std::move(*writer));
    return IOStatus::OK();
  }
  IOStatus ReopenWritableFile(const std::string& path, const rocksdb::FileOptions& options,
                              std::unique_ptr<rocksdb::FSWritableFile>* result,
                              IODebugContext* dbg) override {
    std::string name;
    IOStatus s = file_name(path, &name);
    if (!s.ok()) return s;
    if (!fs_->exists(name)) return NewWritableFile(path, options, result, dbg);
    auto writer = fs_->append_to(name);
    if (!writer) return to_status(writer.error());
    *result = std::make_unique<WritableFile>(std::move(*writer));
    return IOStatus::OK();
  }
  IOStatus ReuseWritableFile(const std::string& path, const std::string& old_path,
                             const rocksdb::FileOptions& options,
                             std::unique_ptr<rocksdb::FSWritableFile>* result,
                             IODebugContext* dbg) override {
    IOStatus s = RenameFile(old_path, path, IOOptions(), dbg);
    if (!s.ok()) return s;
    return NewWritableFile(path, options, result, dbg);
  }
  IOStatus NewDirectory(const std::string& path, const IOOptions&,
                        std::unique_ptr<rocksdb::FSDirectory>* result, IODebugContext*) override {
    if (!is_root(path)) return IOStatus::PathNotFound(path);
    *result = std::make_unique<Directory>(fs_);
    return IOStatus::OK();
  }
  IOStatus FileExists(const std::string& path, const IOOptions&, IODebugContext*) override {
    if (is_root(path)) return IOStatus::OK();
    std::string name;
    IOStatus s = file_name(path, &name);
    if (!s.ok()) return s;
    return fs_->exists(name) ? IOStatus::OK() : IOStatus::NotFound(path);
  }
  IOStatus GetChildren(const std::string& dir, const IOOptions&, std::vector<std::string>* result,
                       IODebugContext*) override {
    if (!is_root(dir)) return IOStatus::PathNotFound(dir);
    *result = fs_->list();
    return IOStatus::OK();
  }
  IOStatus DeleteFile(const std::string& path, const IOOptions&, IODebugContext*) override {
    std::string name;
    IOStatus s = file_name(path, &name);
    if (!s.ok()) return s;
    return to_status(fs_->remove(name));
  }
  IOStatus Truncate(const std::string& path, size_t size, const IOOptions&, IODebugContext*) override {
    std::string name;
    IOStatus s = file_name(path, &name);
    if (!s.ok()) return s;
    return to_status(fs_->truncate(name, size));
  }
  IOStatus CreateDir(const std::string& path, const IOOptions&, IODebugContext*) override {
    return is_root(path) ? IOStatus::OK() : IOStatus::NotSupported("directories in the region");
  }
  IOStatus CreateDirIfMissing(const std::string& path, const IOOptions& o, IODebugContext* d) override {
    return CreateDir(path, o, d);
  }
  IOStatus DeleteDir(const std::string& path, const IOOptions&, IODebugContext*) override {
    return is_root(path) ? IOStatus::OK() : IOStatus::PathNotFound(path);
  }
  IOStatus GetFileSize(const std::string& path, const IOOptions&, uint64_t* size,
                       IODebugContext*) override {
    std::string name;
    IOStatus s = file_name(path, &name);
    if (!s.ok()) return s;
    auto got = fs_->file_size(name);
    if (!got) return to_status(got.error());
    *size = *got;
    return IOStatus::OK();
  }
  IOStatus GetFileModificationTime(const std::string& path, const IOOptions&, uint64_t* mtime,
                                   IODebugContext*) override {
    std::string name;
    IOStatus s = file_name(path, &name);
    if (!s.ok()) return s;
    auto got = fs_->mtime_ns(name);
    if (!got) return to_status(got.error());
    *mtime = *got / 1000000000u;
    return IOStatus::OK();
  }
  IOStatus RenameFile(const std::string& from, const std::string& to, const IOOptions&,
                      IODebugContext*) override {
    std::string a, b;
    IOStatus s = file_name(from, &a);
    if (s.ok()) s = file_name(to, &b);
    if (!s.ok()) return s;
    return to_status(fs_->rename(a, b));
  }
  IOStatus LockFile(const std::string& path, const IOOptions&, rocksdb::FileLock** lock,
                    IODebugContext*) override {
    std::lock_guard guard(locks_mu_);
    if (!locks_.insert(path).second) return IOStatus::IOError("lock " + path + ": already held");
    auto* l = new RegionLock;
    l->name = path;
    *lock = l;
    return IOStatus::OK();
  }
  IOStatus UnlockFile(rocksdb::FileLock* lock, const IOOptions&, IODebugContext*) override {
    auto* l = static_cast<RegionLock*>(lock);
    std::lock_guard guard(locks_mu_);
    locks_.erase(l->name);
    delete l;
    return IOStatus::OK();
  }
  IOStatus GetTestDirectory(const IOOptions&, std::string* path, IODebugContext*) override {
    *path = kRegionDbPath;
    return IOStatus::OK();
  }
  IOStatus GetAbsolutePath(const std::string& path, const IOOptions&, std::string* out,
                           IODebugContext*) override {
    *out = path;
    return IOStatus::OK();
  }
  IOStatus IsDirectory(const std::string& path, const IOOptions&, bool* is_dir,
                       IODebugContext*) override {
    *is_dir = is_root(path);
    return IOStatus::OK();
  }
  IOStatus NewLogger(const std::string&, const IOOptions&, std::shared_ptr<rocksdb::Logger>* result,
                     IODebugContext*) override {
    *result = discarding_logger();
    return IOStatus::OK();
  }

 private:
  static std::string trimmed(const std::string& path) {
    std::string p = path;
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    return p;
  }
  static bool is_root(const std::string& path) { return trimmed(path) == kRegionDbPath; }
  // The region's file name for a path in its one directory.
  static IOStatus file_name(const std::string& path, std::string* name) {
    const std::string root = std::string(kRegionDbPath) + "/";
    size_t at = root.size();
    if (path.compare(0, root.size(), root) != 0)
      return IOStatus::NotSupported(path + ": outside the metadata region's directory");
    while (at < path.size() && path[at] == '/') ++at;
    *name = path.substr(at);
    if (name->empty() || name->find('/') != std::string::npos)
      return IOStatus::NotSupported(path + ": not a file of the metadata region");
    return IOStatus::OK();
  }

  std::shared_ptr<RegionFs> fs_;
  std::mutex locks_mu_;
  std::set<std::string> locks_;
};

class DiscardingLogger final : public rocksdb::Logger {
 public:
  DiscardingLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::HEADER_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char*, va_list) override {}
};

}  // namespace

std::shared_ptr<rocksdb::FileSystem> region_file_system(std::shared_ptr<RegionFs> fs) {
  return std::make_shared<RegionFileSystem>(std::move(fs));
}

std::shared_ptr<rocksdb::Logger> discarding_logger() { return std::make_shared<DiscardingLogger>(); }

}  // namespace raidfs::meta
