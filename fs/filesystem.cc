// Filesystem: construction, the namespace and file operations, xattrs. The read path is in
// filesystem_read.cc, mount-time recovery in filesystem_recovery.cc, status in
// filesystem_status.cc; the write path is StripeWriter's (stripe_writer.h).
#include "fs/filesystem.h"

#include "fs/cleaner.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <cstring>
#include <thread>

#include "base/log.h"
#include "fs/array_spec.h"
#include "fs/commit_timer.h"
#include "fs/open_files.h"
#include "fs/posix_acl.h"
#include "fs/scrubber.h"
#include "fs/stripe_writer.h"
#include "raid/checksum.h"

namespace raidfs::fs {
namespace {

// The largest file offset: extents store 64-bit offsets; keep clear of overflow in end math.
constexpr uint64_t kMaxFileBytes = uint64_t{1} << 60;

bool is_reg(const meta::Inode& i) { return S_ISREG(i.mode); }

// The OpenCheck of one removal (unlink, rename over a file, the last release of an orphan):
// inodes with a handle open are kept, the others claimed — refusing opens — until it ends.
class RemovalClaim {
 public:
  explicit RemovalClaim(OpenFiles& files) : files_(files) {}
  ~RemovalClaim() {
    for (uint64_t ino : claimed_) files_.end_removal(ino);
  }
  RemovalClaim(const RemovalClaim&) = delete;
  RemovalClaim& operator=(const RemovalClaim&) = delete;
  meta::OpenCheck check() {
    return meta::OpenCheck([this](uint64_t ino) {
      if (files_.keep_or_claim(ino)) return true;
      claimed_.push_back(ino);
      return false;
    });
  }

 private:
  OpenFiles& files_;
  std::vector<uint64_t> claimed_;
};

}  // namespace

Filesystem::Filesystem(std::unique_ptr<Array> array, std::unique_ptr<meta::FsMeta> meta,
                       const FilesystemOptions& options)
    : options_(options),
      cleaner_options_(options.cleaner_options
                           ? *options.cleaner_options
                           : CleanerOptions::for_stripes(array->geometry().stripe_count())),
      array_(std::move(array)),
      meta_(std::move(meta)),
      open_files_(std::make_unique<OpenFiles>()),
      writer_(std::make_unique<StripeWriter>(*array_, *meta_, stripe_reuse_)) {
  writer_->set_copy_below(options.copy_below);
}

Filesystem::~Filesystem() {
  commit_timer_.reset();
  cleaner_.reset();
  discarder_.reset();
  scrubber_.reset();  // an unmount interrupts a scrub or a rebuild: the next mount resumes it
  rebuilder_.reset();
  timer_ctx_.reset();
}

Result<std::unique_ptr<Filesystem>> Filesystem::open(std::unique_ptr<Array> array,
                                                     std::unique_ptr<meta::FsMeta> meta,
                                                     const FilesystemOptions& options) {
  const meta::Super& super = meta->store().super();
  const Geometry& g = array->geometry();
  if (super.array_uuid != array->uuid())
    return fail(EINVAL, "the metadata belongs to array " + uuid_to_string(super.array_uuid) +
                            ", the members to " + uuid_to_string(array->uuid()));
  if (super.stripe_count != g.stripe_count() || super.stripe_data_bytes != g.stripe_data_bytes())
    return fail(EINVAL, "the metadata and the members disagree on the stripe geometry");
  std::unique_ptr<Filesystem> fs(new Filesystem(std::move(array), std::move(meta), options));
  if (!options.read_only) {
    RAIDFS_TRY(auto ctx, fs->make_io_context());
    RAIDFS_CHECK(fs->seal_leftover_open_stripes(*ctx));
    Filesystem* owner = fs.get();
    fs->scrubber_ = std::make_unique<Scrubber>(*fs->array_, *fs->meta_, fs->stripe_reuse_,
                                               [owner] { return owner->make_io_context(); });
    if (auto resumed = fs->scrubber_->resume_if_interrupted(); !resumed)
      RAIDFS_LOG(kError, "cannot resume the scrub: %s", resumed.error().message.c_str());
    fs->rebuilder_ = std::make_unique<Rebuilder>(
        *fs->array_, *fs->meta_, fs->stripe_reuse_, [owner] { return owner->make_io_context(); },
        [owner](IoContext& c, const meta::Stripe& s, uint8_t* dest) {
          return owner->read_stripe_blocks(c, s, 0, s.filled_bytes, dest);
        },
        [owner](IoContext& c, const std::function<Result<void>()>& first) {
          return owner->writer_->seal_after(c, first);
        },
        options.rebuild_checkpoint_stripes);
    if (auto resumed = fs->rebuilder_->resume_if_interrupted(); !resumed)
      RAIDFS_LOG(kError, "cannot resume the rebuild: %s", resumed.error().message.c_str());
    fs->writer_->set_reserved_stripes(fs->cleaner_options_.reserve);
    if (options.background_seal)
      fs->writer_->start_sealer([owner] { return owner->make_io_context(); });
    if (options.cleaner) {
      fs->cleaner_ = std::make_unique<Cleaner>(
          *fs->meta_, *fs->writer_, fs->stripe_reuse_, g.stripe_count(),
          static_cast<uint32_t>(g.stripe_data_bytes()),
          [owner](IoContext& c, const meta::Stripe& s, uint64_t offset, uint32_t length,
                  uint8_t* dest) { return owner->read_stripe_blocks(c, s, offset, length, dest); },
          [owner] { return owner->make_io_context(); }, fs->cleaner_options_);
    }
    fs->discarder_ = std::make_unique<Discarder>(*fs->array_, *fs->meta_, fs->stripe_reuse_,
                                                 options.discard);
    // A member that is back (its device present) but out of date: say what to run.
    const Array& a = *fs->array_;
    for (uint32_t i = 0; i < a.geometry().member_count(); ++i) {
      const MemberState st = a.member_state(i);
      if ((st == MemberState::kFailed || st == MemberState::kMissing) && a.has_device(i)) {
        const std::string why = "member " + std::to_string(i) + " (" + a.member_path(i) +
                                ") is present but out of date (" + member_state_name(st) +
                                "): run `raidfs rebuild MOUNTPOINT " + std::to_string(i) + "`";
        RAIDFS_LOG(kWarning, "%s", why.c_str());
        fs->warnings_.push_back(why);
      }
    }
    if (options.commit_interval_ms > 0) {
      Filesystem* self = fs.get();
      fs->commit_timer_ = std::make_unique<CommitTimer>(
          std::chrono::milliseconds(options.commit_interval_ms), [self] { self->commit_by_time(); });
    }
  }
  return fs;
}

void Filesystem::commit_by_time() {
  if (!timer_ctx_) {  // made on the timer's thread: an io_uring is used by the thread that made it
    auto made = make_io_context();
    if (!made) {
      RAIDFS_LOG(kError, "commit timer: %s", made.error().message.c_str());
      return;
    }
    timer_ctx_ = std::move(*made);
  }
  (void)writer_->flush(*timer_ctx_, 0);  // a failure is logged by the writer; the data stays pending
  meta::Store& store = meta_->store();
  if (store.synced_sequence() >= store.latest_sequence()) return;
  if (auto synced = sync_metadata(); !synced)
    RAIDFS_LOG(kError, "commit timer: %s", synced.error().message.c_str());
}

Result<std::unique_ptr<IoContext>> Filesystem::make_io_context() const {
  RAIDFS_TRY(auto io, array_->make_member_io());
  if (options_.wrap_member_io) io = options_.wrap_member_io(std::move(io));
  return std::make_unique<IoContext>(std::move(io), *array_);
}

// --- namespace --------------------------------------------------------------------------------------

meta::Inode Filesystem::with_pending(meta::Inode inode) const {
  if (!is_reg(inode)) return inode;
  const StripeWriter::PendingSummary pending = writer_->pending_summary(inode.ino);
  inode.size = std::max(inode.size, pending.end);
  // 0 means no pending time (a stored time may be negative: before 1970).
  if (pending.mtime_ns != 0 && pending.mtime_ns > inode.mtime_ns)
    inode.mtime_ns = inode.ctime_ns = pending.mtime_ns;
  if (inode.blocks != meta::kBlocksUnknown) {
    inode.blocks += pending.blocks;
    // While a handle may write, the kernel may hold data raidfs has not seen (its writeback
    // cache, a shared mapping): never call such a file empty. tar --sparse archives a file
    // whose st_blocks is 0 as all holes, and cp --sparse asks SEEK_DATA, which the kernel
    // answers itself under the writeback cache (all data).
    if (open_files_->has_writer(inode.ino))
      inode.blocks = std::max({inode.blocks, (inode.size + kBlockBytes - 1) / kBlockBytes,
                               uint64_t{1}});
  }
  return inode;
}

template <class ReadInode>
Result<meta::Inode> Filesystem::current(const ReadInode& read) const {
  for (unsigned attempt = 0;; ++attempt) {
    const uint64_t epoch = writer_->pending_epoch();
    RAIDFS_TRY(meta::Inode inode, read());
    inode = with_pending(std::move(inode));
    if (epoch % 2 == 0 && writer_->pending_epoch() == epoch) return inode;
    if (epoch % 2 == 1) {
      writer_->wait_pending_change(epoch);  // a commit was under way: wait for its end
    } else if (attempt >= 8) {
      std::this_thread::yield();
    }
  }
}

Result<meta::Inode> Filesystem::inode_for_read(uint64_t ino) const {
  const uint64_t pending_end = writer_->pending_end(ino);
  RAIDFS_TRY(meta::Inode inode, meta_->getattr(ino));
  inode.size = std::max(inode.size, pending_end);
  return inode;
}

Result<meta::Inode> Filesystem::lookup(uint64_t parent, std::string_view name) const {
  return current([&] { return meta_->lookup(parent, name); });
}

Result<meta::Inode> Filesystem::getattr(uint64_t ino) const {
  return current([&] { return meta_->getattr(ino); });
}

Result<meta::Inode> Filesystem::setattr(IoContext&, uint64_t ino, const meta::SetAttr& attr) {
  if (options_.read_only) return fail(EROFS, "read-only mount");
  if (attr.mtime_ns) writer_->clear_pending_mtime(ino);
  if (attr.size) {
    if (*attr.size > kMaxFileBytes) return fail(EFBIG, "size beyond the largest file");
    RAIDFS_CHECK(writer_->set_size(ino, attr));
    return getattr(ino);
  }
  if (attr.mode && posix_acl_) {
    // chmod: the access ACL's owner, group-class and other entries follow the mode.
    auto stored = meta_->get_xattr(ino, kAclAccessXattr);
    if (stored) {
      RAIDFS_TRY(PosixAcl acl, PosixAcl::decode(*stored));
      acl.apply_mode(*attr.mode);
      meta::SetAttr with_acl = attr;
      with_acl.xattrs.emplace_back(std::string(kAclAccessXattr), acl.encode());
      RAIDFS_CHECK(meta_->setattr(ino, with_acl));
      return getattr(ino);
    }
    if (stored.error().code != ENODATA) return std::unexpected(stored.error());
  }
  RAIDFS_CHECK(meta_->setattr(ino, attr));
  return getattr(ino);
}

Result<void> Filesystem::inherit(uint64_t parent, const Caller& caller,
                                 meta::CreateArgs& args) const {
  if (posix_acl_) {
    auto inherited = meta_->get_xattr(parent, kAclDefaultXattr);
    if (inherited) {
      RAIDFS_TRY(PosixAcl acl, PosixAcl::decode(*inherited));
      args.mode = (args.mode & ~07777u) | acl.mask_create(args.mode & 07777);
      if (!acl.equivalent_to_mode()) args.xattrs.emplace_back(std::string(kAclAccessXattr), acl.encode());
      if (S_ISDIR(args.mode)) args.xattrs.emplace_back(std::string(kAclDefaultXattr), *inherited);
      return {};
    }
    if (inherited.error().code != ENODATA) return std::unexpected(inherited.error());
  }
  args.mode &= ~(caller.umask & 0777);
  return {};
}

Result<std::string> Filesystem::readlink(uint64_t ino) const {
  RAIDFS_TRY(meta::Inode inode, meta_->getattr(ino));
  if (!S_ISLNK(inode.mode)) return fail(EINVAL, "not a symbolic link");
  return inode.symlink_target;
}

Result<meta::Inode> Filesystem::mknod(uint64_t parent, std::string_view name, uint32_t mode,
                                      uint64_t rdev, const Caller& caller) {
  if (options_.read_only) return fail(EROFS, "read-only mount");
  meta::CreateArgs args;
  args.mode = (mode & S_IFMT) == 0 ? mode | S_IFREG : mode;
  if (S_ISDIR(args.mode) || S_ISLNK(args.mode)) return fail(EINVAL, "mknod of a directory or symlink");
  args.uid = caller.uid;
  args.gid = caller.gid;
  args.rdev = rdev;
  RAIDFS_CHECK(inherit(parent, caller, args));
  return meta_->create(parent, name, args);
}

Result<meta::Inode> Filesystem::mkdir(uint64_t parent, std::string_view name, uint32_t mode,
                                      const Caller& caller) {
  if (options_.read_only) return fail(EROFS, "read-only mount");
  meta::CreateArgs args;
  args.mode = (mode & ~S_IFMT) | S_IFDIR;
  args.uid = caller.uid;
  args.gid = caller.gid;
  RAIDFS_CHECK(inherit(parent, caller, args));
  return meta_->create(parent, name, args);
}

Result<meta::Inode> Filesystem::symlink(uint64_t parent, std::string_view name,
                                        std::string_view target, const Caller& caller) {
  if (options_.read_only) return fail(EROFS, "read-only mount");
  meta::CreateArgs args;
  args.mode = S_IFLNK | 0777;
  args.uid = caller.uid;
  args.gid = caller.gid;
  args.symlink_target = std::string(target);
  return meta_->create(parent, name, args);
}

Result<void> Filesystem::unlink(uint64_t parent, std::string_view name) {
  if (options_.read_only) return fail(EROFS, "read-only mount");
  RemovalClaim claim(*open_files_);
  RAIDFS_TRY(meta::UnlinkResult r, meta_->unlink(parent, name, claim.check()));
  if (r.removed) writer_->forget(r.ino);
  return {};
}

Result<void> Filesystem::rmdir(uint64_t parent, std::string_view name) {
  if (options_.read_only) return fail(EROFS, "read-only mount");
  RemovalClaim claim(*open_files_);  // an open directory lives on until closed, as a file does
  return meta_->rmdir(parent, name, claim.check());
}

Result<void> Filesystem::rename(IoContext& ctx, uint64_t old_parent, std::string_view old_name,
                                uint64_t new_parent, std::string_view new_name, unsigned flags) {
  if (options_.read_only) return fail(EROFS, "read-only mount");
  if (auto target = meta_->lookup(new_parent, new_name)) {
    // Replace-by-rename: the moved file's data reaches the metadata before the new name does
    // (both go through the one metadata log, in order), so a crash never shows the name over
    // data that was never committed. An exchange moves the target too.
    RAIDFS_TRY(meta::Inode source, meta_->lookup(old_parent, old_name));
    if (is_reg(source)) RAIDFS_CHECK(writer_->flush(ctx, source.ino));
    if ((flags & meta::kRenameExchange) && is_reg(*target))
      RAIDFS_CHECK(writer_->flush(ctx, target->ino));
  }
  RemovalClaim claim(*open_files_);
  RAIDFS_TRY(auto replaced,
             meta_->rename(old_parent, old_name, new_parent, new_name, flags, claim.check()));
  if (replaced && replaced->removed) writer_->forget(replaced->ino);
  return {};
}

Result<meta::Inode> Filesystem::link(uint64_t ino, uint64_t new_parent, std::string_view new_name) {
  if (options_.read_only) return fail(EROFS, "read-only mount");
  RAIDFS_CHECK(meta_->link(ino, new_parent, new_name));
  return getattr(ino);
}

Result<meta::ReaddirBatch> Filesystem::readdir(uint64_t dir, uint64_t after_cookie,
                                               size_t max_entries) const {
  return meta_->readdir(dir, after_cookie, max_entries);
}

// --- open files ------------------------------------------------------------------------------------

Result<meta::Inode> Filesystem::open(uint64_t ino, int flags) {
  // Counted first, then looked up: a removal either sees this handle (and keeps the inode) or
  // has already claimed or removed it, and then this open fails (open_files.h).
  const bool writable = (flags & O_ACCMODE) != O_RDONLY;
  if (!open_files_->open(ino, writable)) return fail(ENOENT, "the file is being removed");
  auto opened = [&]() -> Result<meta::Inode> {
    RAIDFS_TRY(meta::Inode inode, getattr(ino));
    const int access = flags & O_ACCMODE;
    if (S_ISDIR(inode.mode) && access != O_RDONLY)
      return fail(EISDIR, "directory opened for writing");
    if (options_.read_only && (access != O_RDONLY || (flags & O_TRUNC)))
      return fail(EROFS, "read-only mount");
    return inode;
  }();
  if (!opened) (void)release(ino, writable);
  return opened;
}

Result<meta::Inode> Filesystem::create_opened(
    uint64_t parent, uint32_t mode, const Caller& caller,
    const std::function<Result<meta::Inode>(const meta::CreateArgs&)>& commit) {
  if (options_.read_only) return fail(EROFS, "read-only mount");
  meta::CreateArgs args;
  args.mode = (mode & ~S_IFMT) | S_IFREG;
  args.uid = caller.uid;
  args.gid = caller.gid;
  RAIDFS_CHECK(inherit(parent, caller, args));
  // Opened before the commit: an unlink of the new name right after it finds the handle.
  uint64_t counted = 0;
  args.opened = [&](uint64_t ino) {
    open_files_->open(ino, true);  // a new inode: no removal can have claimed it
    counted = ino;
  };
  auto inode = commit(args);
  if (!inode && counted != 0) open_files_->release(counted, true);
  return inode;
}

Result<meta::Inode> Filesystem::create(uint64_t parent, std::string_view name, uint32_t mode,
                                       const Caller& caller) {
  return create_opened(parent, mode, caller, [&](const meta::CreateArgs& args) {
    return meta_->create(parent, name, args);
  });
}

Result<meta::Inode> Filesystem::tmpfile(uint64_t dir, uint32_t mode, const Caller& caller) {
  return create_opened(dir, mode, caller, [&](const meta::CreateArgs& args) {
    return meta_->create_unnamed(dir, args);
  });
}

Result<void> Filesystem::release(uint64_t ino, bool writable) {
  if (!open_files_->release(ino, writable)) return {};
  // The last close of an unlinked file (nlink 0: an orphan) removes it — unless it was opened
  // again meanwhile (through /proc/PID/fd), which the claim finds. Decided under the metadata's
  // lock, as an unlink's orphaning is, so that one of the two always sees the other.
  RemovalClaim claim(*open_files_);
  RAIDFS_TRY(const bool removed, meta_->release(ino, claim.check()));
  if (removed) writer_->forget(ino);
  return {};
}

bool Filesystem::has_writer(uint64_t ino) const { return open_files_->has_writer(ino); }

Result<size_t> Filesystem::write(IoContext& ctx, uint64_t ino, uint64_t offset,
                                 std::span<const uint8_t> data) {
  if (options_.read_only) return fail(EROFS, "read-only mount");
  if (offset > kMaxFileBytes || data.size() > kMaxFileBytes - offset)
    return fail(EFBIG, "write beyond the largest file");
  if (data.empty()) return size_t{0};
  for (;;) {
    Result<size_t> written =
        writer_->write(ctx, ino, offset, data, write_times_ == WriteTimes::kSetByWrite);
    // Full, but maybe only of dead blocks: wait for the cleaner while it frees stripes — unless
    // it is the metadata that is full, which the cleaner cannot help.
    if (written || written.error().code != ENOSPC || !cleaner_ ||
        !meta_->store().check_room(meta::Room::kOrdinary) || !cleaner_->make_room())
      return written;
  }
}

Result<bool> Filesystem::kill_set_id(uint64_t ino) {
  if (options_.read_only) return fail(EROFS, "read-only mount");
  RAIDFS_TRY(const meta::Inode inode, meta_->getattr(ino));
  const bool set_gid_exec = (inode.mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP);
  if (!S_ISREG(inode.mode) || !((inode.mode & S_ISUID) || set_gid_exec)) return false;
  meta::SetAttr kill;
  kill.kill_set_id = true;
  RAIDFS_CHECK(meta_->setattr(ino, kill));
  return true;
}

Result<void> Filesystem::fsync(IoContext& ctx, uint64_t ino) {
  if (!options_.read_only) RAIDFS_CHECK(writer_->flush(ctx, ino));
  return sync_metadata();
}

Result<void> Filesystem::sync_metadata() {
  meta::Store& store = meta_->store();
  return store.sync(store.latest_sequence());
}

Result<void> Filesystem::sync_all(IoContext& ctx) {
  if (!options_.read_only) RAIDFS_CHECK(writer_->seal(ctx));
  return sync_metadata();
}

Result<void> Filesystem::unmount(IoContext& ctx) {
  cleaner_.reset();
  discarder_.reset();  // what it had still to discard waits for a trim (or goes with the mount)
  scrubber_.reset();
  rebuilder_.reset();
  RAIDFS_CHECK(sync_all(ctx));
  if (!options_.read_only) {
    array_->set_write_floor(meta_->next_generation());  // nothing is open any more
    array_->record_clean_unmount();
  }
  return {};
}

Result<void> Filesystem::fallocate(IoContext& ctx, uint64_t ino, int mode, uint64_t offset,
                                   uint64_t length) {
  if (options_.read_only) return fail(EROFS, "read-only mount");
  if (length == 0 || offset > kMaxFileBytes || length > kMaxFileBytes - offset)
    return fail(EINVAL, "bad fallocate range");
  RAIDFS_TRY(meta::Inode inode, getattr(ino));
  if (S_ISDIR(inode.mode)) return fail(EISDIR, "fallocate of a directory");
  if (!is_reg(inode)) return fail(ENODEV, "fallocate of a special file");
  const uint64_t end = offset + length;
  const bool keep_size = mode & FALLOC_FL_KEEP_SIZE;
  if (mode & FALLOC_FL_PUNCH_HOLE) {
    if (!keep_size || (mode & ~(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)))
      return fail(EOPNOTSUPP, "punch hole needs KEEP_SIZE and no other flag");
    return writer_->punch_hole(ino, offset, std::min(end, inode.size) - std::min(offset, inode.size));
  }
  if (mode & FALLOC_FL_ZERO_RANGE) {
    if (mode & ~(FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE))
      return fail(EOPNOTSUPP, "unsupported fallocate flags");
    if (offset < inode.size)
      RAIDFS_CHECK(writer_->punch_hole(ino, offset, std::min(end, inode.size) - offset));
  } else if (mode & ~FALLOC_FL_KEEP_SIZE) {
    return fail(EOPNOTSUPP, "unsupported fallocate mode");
  } else {
    // Every write goes to a new place, so space cannot be reserved ahead; refuse what cannot
    // fit now, as a reservation would.
    const FsStatfs st = statfs();
    if (length > st.blocks_free * st.block_size) return fail(ENOSPC, "not enough free space");
  }
  if (!keep_size && end > inode.size) {
    meta::SetAttr grow;
    grow.size = end;
    RAIDFS_CHECK(setattr(ctx, ino, grow));
  }
  return {};
}

Result<uint64_t> Filesystem::lseek(uint64_t ino, uint64_t offset, int whence) {
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return fail(EINVAL, "unsupported whence");
  RAIDFS_TRY(meta::Inode inode, getattr(ino));
  if (offset >= inode.size) return fail(ENXIO, "offset at or past the end of the file");
  // Data ranges at or after offset: committed extents and pending writes, merged.
  std::vector<std::pair<uint64_t, uint64_t>> data = writer_->pending_ranges(ino, offset);
  for (uint64_t pos = offset; pos < inode.size;) {
    RAIDFS_TRY(auto maps, meta_->map_range(ino, pos, inode.size - pos));
    if (maps.empty()) break;
    for (const meta::Mapping& m : maps)
      if (!m.hole) data.emplace_back(m.file_offset, m.file_offset + m.length);
    pos = maps.back().file_offset + maps.back().length;
  }
  std::sort(data.begin(), data.end());
  uint64_t hole_at = offset;  // SEEK_HOLE: advance past data ranges that cover it
  for (const auto& [a, b] : data) {
    if (b <= offset) continue;
    if (whence == SEEK_DATA) return std::max(a, offset);
    if (a > hole_at) break;
    hole_at = std::max(hole_at, b);
  }
  if (whence == SEEK_DATA) return fail(ENXIO, "no data after offset");
  return std::min(hole_at, inode.size);
}

// --- xattrs -------------------------------------------------------------------------------------------

Result<void> Filesystem::set_xattr(uint64_t ino, std::string_view name, std::string_view value,
                                   int flags) {
  if (options_.read_only) return fail(EROFS, "read-only mount");
  if (ino == meta::kRootIno && name == kStatusXattr) return fail(EPERM, "status is read-only");
  if (name == kAclAccessXattr || name == kAclDefaultXattr) return set_acl(ino, name, value);
  // Without the kernel enforcing them, storing ACLs as plain bytes would make cp -a, tar
  // --acls and setfacl believe the ACL (and the mode it implies) took effect. Refusing lets
  // them fall back to chmod.
  if (name.starts_with("system.posix_acl_")) return fail(EOPNOTSUPP, "no such POSIX ACL");
  return meta_->set_xattr(ino, name, value, flags);
}

// setfacl: an access ACL sets the mode it implies, and is not stored when the mode says it all
// (the kernel's posix_acl_update_mode); a default ACL only on directories. One batch each.
Result<void> Filesystem::set_acl(uint64_t ino, std::string_view name, std::string_view value) {
  if (!posix_acl_) return fail(EOPNOTSUPP, "POSIX ACLs are off (-o noacl)");
  RAIDFS_TRY(PosixAcl acl, PosixAcl::decode(value));
  RAIDFS_TRY(const meta::Inode inode, meta_->getattr(ino));
  meta::SetAttr attr;
  if (name == kAclDefaultXattr) {
    if (!S_ISDIR(inode.mode)) return fail(EACCES, "a default ACL on a non-directory");
    attr.xattrs.emplace_back(std::string(name), std::string(value));
  } else {
    attr.mode = (inode.mode & 07000) | acl.mode_bits();
    attr.xattrs.emplace_back(std::string(name), acl.equivalent_to_mode()
                                                    ? std::nullopt
                                                    : std::optional<std::string>(value));
  }
  RAIDFS_CHECK(meta_->setattr(ino, attr));
  return {};
}

Result<std::string> Filesystem::get_xattr(uint64_t ino, std::string_view name) const {
  if (ino == meta::kRootIno && name == kStatusXattr) return status_text();
  if (name.starts_with("system.posix_acl_") && !posix_acl_)
    return fail(EOPNOTSUPP, "POSIX ACLs are off (-o noacl)");
  return meta_->get_xattr(ino, name);
}

Result<std::vector<std::string>> Filesystem::list_xattrs(uint64_t ino) const {
  return meta_->list_xattrs(ino);
}

Result<void> Filesystem::remove_xattr(uint64_t ino, std::string_view name) {
  if (options_.read_only) return fail(EROFS, "read-only mount");
  if (ino == meta::kRootIno && name == kStatusXattr) return fail(EPERM, "status is read-only");
  if (name.starts_with("system.posix_acl_") && !posix_acl_)
    return fail(EOPNOTSUPP, "POSIX ACLs are off (-o noacl)");
  return meta_->remove_xattr(ino, name);
}

// --- admin commands ------------------------------------------------------------------------------

Result<std::string> Filesystem::control(const Caller& caller, std::string_view command) {
  auto outcome = [&]() -> Result<std::string> {
    if (caller.uid != 0) return fail(EPERM, "only root may change the array");
    if (options_.read_only || !scrubber_) return fail(EROFS, "read-only mount");
    std::vector<std::string> words;
    for (size_t at = 0; at < command.size();) {
      const size_t space = command.find(' ', at);
      const size_t end = space == std::string_view::npos ? command.size() : space;
      if (end > at) words.emplace_back(command.substr(at, end - at));
      at = end + 1;
    }
    auto number = [](const std::string& text) -> std::optional<uint64_t> {
      if (text.empty() || text.size() > 19 || text.find_first_not_of("0123456789") != std::string::npos)
        return std::nullopt;
      return std::stoull(text);
    };
    if (words.empty()) return fail(EINVAL, "empty command");
    if (words[0] == "fail" && words.size() == 2) {
      const auto member = number(words[1]);
      if (!member || *member >= array_->geometry().member_count())
        return fail(EINVAL, "no member " + words[1]);
      const uint32_t i = static_cast<uint32_t>(*member);
      if (array_->member_state(i) != MemberState::kActive)
        return std::string("member " + words[1] + " is " + member_state_name(array_->member_state(i)) +
                           " already");
      if (array_->unavailable_count() + 1 > array_->geometry().parity_count())
        return fail(EBUSY, "failing member " + words[1] +
                               " would leave more members unavailable than parity covers");
      array_->mark_failed(i, "marked failed by the admin");
      return "member " + words[1] + " (" + array_->member_path(i) + ") marked failed";
    }
    if (words[0] == "scrub" && words.size() <= 2) {
      uint64_t rate = 0;
      if (words.size() == 2) {
        const auto r = number(words[1]);
        if (!r) return fail(EINVAL, "rate '" + words[1] + "' is not a number of bytes a second");
        rate = *r;
      }
      RAIDFS_CHECK(scrubber_->start(rate));
      return std::string("scrub started");
    }
    if (words[0] == "rebuild" && (words.size() == 2 || words.size() == 3)) {
      const auto member = number(words[1]);
      if (!member || *member >= array_->geometry().member_count())
        return fail(EINVAL, "no member " + words[1]);
      uint64_t rate = 0;
      if (words.size() == 3) {
        const auto r = number(words[2]);
        if (!r) return fail(EINVAL, "rate '" + words[2] + "' is not a number of bytes a second");
        rate = *r;
      }
      RAIDFS_TRY(auto ctx, make_io_context());
      RAIDFS_CHECK(rebuilder_->start(*ctx, static_cast<uint32_t>(*member), rate));
      return "rebuilding member " + words[1] + " (" + array_->member_path(static_cast<uint32_t>(*member)) + ")";
    }
    // replace MEMBER RATE FORCE PATH: the path last, as it is (it may hold spaces).
    if (words[0] == "replace" && words.size() >= 5) {
      const auto member = number(words[1]);
      if (!member || *member >= array_->geometry().member_count())
        return fail(EINVAL, "no member " + words[1]);
      const auto rate = number(words[2]);
      if (!rate) return fail(EINVAL, "rate '" + words[2] + "' is not a number of bytes a second");
      if (words[3] != "0" && words[3] != "1") return fail(EINVAL, "replace: FORCE is 0 or 1");
      size_t at = 0;
      for (int field = 0; field < 4; ++field) at = command.find_first_not_of(' ', command.find(' ', at));
      const std::string path(command.substr(at));
      const uint32_t i = static_cast<uint32_t>(*member);
      const std::string old_path = array_->member_path(i);
      RAIDFS_TRY(auto ctx, make_io_context());
      RAIDFS_CHECK(rebuilder_->start_replace(*ctx, i, path, words[3] == "1", *rate));
      // The member list of a metadata directory names the new device from now on (a
      // self-contained array keeps none on the host).
      std::vector<std::string> members;
      for (uint32_t m = 0; m < array_->geometry().member_count(); ++m) members.push_back(array_->member_path(m));
      if (!meta_->store().region())
        if (auto listed = write_member_list(meta_->store().path(), members); !listed)
          RAIDFS_LOG(kWarning, "replace: %s (mount with the new device named)", listed.error().message.c_str());
      return "replacing member " + words[1] + " (" + (old_path.empty() ? "no device" : old_path) + ") by " + path;
    }
    if (words[0] == "sync" && words.size() == 1) {  // everything durable (remount,ro)
      RAIDFS_TRY(auto ctx, make_io_context());
      RAIDFS_CHECK(sync_all(*ctx));
      return std::string("everything written out");
    }
    if (words[0] == "clean" && words.size() == 1) {
      if (!cleaner_) return fail(EOPNOTSUPP, "the cleaner is off (-o nocleaner)");
      RAIDFS_TRY(uint64_t freed, cleaner_->clean_all());
      return "cleaned: " + std::to_string(freed) + " stripes freed";
    }
    if (words[0] == "trim" && words.size() == 1) {
      RAIDFS_CHECK(sync_metadata());  // what was freed so far is durable, so discarded too
      RAIDFS_TRY(uint64_t stripes, discarder_->trim());
      return "trimmed: " + std::to_string(stripes) + " free stripes discarded";
    }
    if (words[0] == "scrub-stop" && words.size() == 1) {
      RAIDFS_CHECK(scrubber_->stop());
      return std::string("scrub stopped");
    }
    return fail(EINVAL, "unknown command '" + std::string(command) + "'");
  }();
  std::lock_guard lock(warnings_mu_);
  last_control_ = std::string(command) + ": " + (outcome ? *outcome : "error: " + outcome.error().message);
  if (outcome) RAIDFS_LOG(kInfo, "admin: %s", last_control_.c_str());
  return outcome;
}

}  // namespace raidfs::fs
