// Filesystem: the operations, the read path, and mount-time recovery. The write path is
// StripeWriter's (stripe_writer.h).
#include "fs/filesystem.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <sstream>
#include <thread>

#include "base/log.h"
#include "fs/commit_timer.h"
#include "fs/open_files.h"
#include "fs/stripe_writer.h"
#include "raid/checksum.h"

namespace raidfs::fs {
namespace {

constexpr uint64_t kBlock = kBlockBytes;
// The largest file offset: extents store 64-bit offsets; keep clear of overflow in end math.
constexpr uint64_t kMaxFileBytes = uint64_t{1} << 60;

uint64_t round_up(uint64_t v) { return (v + kBlock - 1) / kBlock * kBlock; }
bool is_reg(const meta::Inode& i) { return S_ISREG(i.mode); }


const char* state_name(MemberState s) {
  switch (s) {
    case MemberState::kActive: return "active";
    case MemberState::kFailed: return "failed";
    case MemberState::kMissing: return "missing";
    case MemberState::kRebuilding: return "rebuilding";
    case MemberState::kUnknown: break;
  }
  return "unknown";
}

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
      array_(std::move(array)),
      meta_(std::move(meta)),
      open_files_(std::make_unique<OpenFiles>()),
      writer_(std::make_unique<StripeWriter>(*array_, *meta_, stripe_reuse_)) {}

Filesystem::~Filesystem() {
  commit_timer_.reset();
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
  return std::make_unique<IoContext>(std::move(io), *array_);
}

// --- mount-time recovery ------------------------------------------------------------------------

// A stripe that cannot be sealed (a row with more chunks lost than parity covers) stays open —
// its parity in the metadata, readable wherever its rows still are — and the mount goes on: only
// the file ranges on its lost rows answer EIO, and fsck names them.
Result<void> Filesystem::seal_leftover_open_stripes(IoContext& ctx) {
  const std::vector<uint64_t> open = meta_->open_stripes();
  size_t sealed_count = 0;
  for (uint64_t id : open) {
    auto sealed = [&]() -> Result<void> {
      RAIDFS_TRY(meta::Stripe stripe, meta_->get_stripe(id));
      return seal_open_stripe(ctx, stripe);
    }();
    if (sealed) {
      ++sealed_count;
      continue;
    }
    const std::string why = "stripe " + std::to_string(id) +
                            " left open by the last mount cannot be sealed (" +
                            sealed.error().message +
                            "); it stays open, reads of its damaged rows fail: run raidfs-fsck";
    RAIDFS_LOG(kError, "%s", why.c_str());
    std::lock_guard lock(warnings_mu_);
    warnings_.push_back(why);
  }
  if (sealed_count > 0) {
    RAIDFS_CHECK(sync_metadata());
    RAIDFS_LOG(kInfo, "sealed %zu stripe(s) left open by the last mount", sealed_count);
  }
  return {};
}

// A stripe committed open holds data blocks on the members and its parity in the metadata.
// Sealing reads the data back (verified; rebuilt through the metadata parity if a member is
// gone), writes the full parity to the members, flushes, and commits the record sealed.
Result<void> Filesystem::seal_open_stripe(IoContext& ctx, const meta::Stripe& stripe) {
  const Geometry& g = array_->geometry();
  AlignedBuffer chunks(size_t{g.member_count()} * g.chunk_bytes());
  if (stripe.filled_bytes > 0)
    RAIDFS_CHECK(read_stripe_blocks(ctx, stripe, 0, stripe.filled_bytes, chunks.data()));
  RAIDFS_CHECK(StripeWriter::write_parity_and_flush(*array_, ctx.channel(), stripe.id, chunks.data()));
  const meta::Stripe sealed = StripeWriter::sealed_record(stripe.id, stripe.generation,
                                                          stripe.filled_bytes, stripe.block_crcs);
  return meta_->commit_files({}, std::span(&sealed, 1));
}

// --- status ---------------------------------------------------------------------------------------

std::vector<std::string> Filesystem::warnings() const {
  std::lock_guard lock(warnings_mu_);
  return warnings_;
}

FilesystemStats Filesystem::stats() const {
  const WriterStats w = writer_->stats();
  FilesystemStats s;
  s.reconstructed_blocks = counters_.reconstructed;
  s.corrupt_blocks = counters_.corrupt;
  s.healed_blocks = counters_.healed;
  s.unreadable_reads = counters_.unreadable;
  s.stripes_sealed = w.stripes_sealed;
  s.partial_flushes = w.partial_flushes;
  s.bytes_copied_read = counters_.copied_read;
  s.bytes_copied_write = w.bytes_copied;
  s.bytes_direct_write = w.bytes_direct;
  return s;
}

std::string Filesystem::status_text() const {
  const Geometry& g = array_->geometry();
  const Superblock sb = array_->superblock();
  const FsStatfs st = statfs();
  const FilesystemStats c = stats();
  const uint32_t m = g.parity_count();
  std::ostringstream out;
  out << "array: " << uuid_to_string(sb.array_uuid);
  if (!sb.label.empty()) out << " (" << sb.label << ")";
  out << "\n";
  out << "level: " << (m == 1 ? "raid5" : m == 2 ? "raid6" : "triple parity") << ", "
      << g.member_count() << " members, " << g.data_count() << "+" << m << " chunks of "
      << human_bytes(g.chunk_bytes()) << "\n";
  const uint32_t down = array_->unavailable_count();
  out << "state: "
      << (down == 0 ? "healthy" : down <= m ? "degraded" : "failed (more members lost than parity)")
      << (down ? " (" + std::to_string(down) + " of " + std::to_string(g.member_count()) +
                     " members unavailable)"
               : std::string())
      << (options_.read_only ? ", read-only" : "") << "\n";
  for (uint32_t i = 0; i < g.member_count(); ++i) {
    const MemberErrors e = array_->member_errors(i);
    out << "member " << i << ": " << state_name(array_->member_state(i)) << " "
        << array_->member_path(i) << " (errors: read " << e.read << ", write " << e.write
        << ", checksum " << e.checksum << ")\n";
  }
  const uint64_t used = (st.blocks - st.blocks_free) * st.block_size;
  out << "space: " << human_bytes(used) << " used of " << human_bytes(st.blocks * st.block_size) << ", "
      << human_bytes(st.blocks_free * st.block_size) << " free\n";
  out << "reconstructed_blocks: " << c.reconstructed_blocks << "\n";
  out << "corrupt_blocks: " << c.corrupt_blocks << "\n";
  out << "healed_blocks: " << c.healed_blocks << "\n";
  out << "unreadable_reads: " << c.unreadable_reads << "\n";
  out << "stripes_sealed: " << c.stripes_sealed << "\n";
  out << "partial_flushes: " << c.partial_flushes << "\n";
  out << "bytes_copied_read: " << c.bytes_copied_read << "\n";
  out << "bytes_copied_write: " << c.bytes_copied_write << "\n";
  out << "bytes_direct_write: " << c.bytes_direct_write << "\n";
  const meta::StoreStats ms = meta_->store().stats();
  out << "metadata_cache: " << ms.cache_hits << " hits, " << ms.cache_misses << " misses\n";
  for (const std::string& w : array_->warnings()) out << "warning: " << w << "\n";
  for (const std::string& w : warnings()) out << "warning: " << w << "\n";
  return out.str();
}

FsStatfs Filesystem::statfs() const {
  const Geometry& g = array_->geometry();
  FsStatfs st;
  st.blocks = g.capacity_bytes() / kBlock;
  st.blocks_free =
      (meta_->free_stripe_count() * g.stripe_data_bytes() + writer_->open_free_bytes()) / kBlock;
  st.files = UINT64_MAX / 2;
  st.files_free = UINT64_MAX / 2;
  return st;
}

bool Filesystem::nearly_full() const {
  const FsStatfs st = statfs();
  return st.blocks_free < st.blocks / 8;
}

// --- namespace --------------------------------------------------------------------------------------

meta::Inode Filesystem::with_pending_size(meta::Inode inode) const {
  if (!is_reg(inode)) return inode;
  inode.size = std::max(inode.size, writer_->pending_end(inode.ino));
  // 0 means no pending time (a stored time may be negative: before 1970).
  if (const int64_t t = writer_->pending_mtime(inode.ino); t != 0 && t > inode.mtime_ns)
    inode.mtime_ns = inode.ctime_ns = t;
  return inode;
}

template <class ReadInode>
Result<meta::Inode> Filesystem::current(const ReadInode& read) const {
  for (unsigned attempt = 0;; ++attempt) {
    const uint64_t epoch = writer_->pending_epoch();
    RAIDFS_TRY(meta::Inode inode, read());
    inode = with_pending_size(std::move(inode));
    if (epoch % 2 == 0 && writer_->pending_epoch() == epoch) return inode;
    if (attempt >= 8) std::this_thread::yield();  // a commit is under way: it is short
  }
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
  RAIDFS_CHECK(meta_->setattr(ino, attr));
  return getattr(ino);
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
  return meta_->create(parent, name, args);
}

Result<meta::Inode> Filesystem::mkdir(uint64_t parent, std::string_view name, uint32_t mode,
                                      const Caller& caller) {
  if (options_.read_only) return fail(EROFS, "read-only mount");
  meta::CreateArgs args;
  args.mode = (mode & ~S_IFMT) | S_IFDIR;
  args.uid = caller.uid;
  args.gid = caller.gid;
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
  return meta_->rmdir(parent, name);
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
  if (!open_files_->open(ino)) return fail(ENOENT, "the file is being removed");
  auto opened = [&]() -> Result<meta::Inode> {
    RAIDFS_TRY(meta::Inode inode, getattr(ino));
    const int access = flags & O_ACCMODE;
    if (S_ISDIR(inode.mode) && access != O_RDONLY)
      return fail(EISDIR, "directory opened for writing");
    if (options_.read_only && (access != O_RDONLY || (flags & O_TRUNC)))
      return fail(EROFS, "read-only mount");
    return inode;
  }();
  if (!opened) (void)release(ino);
  return opened;
}

Result<meta::Inode> Filesystem::create(uint64_t parent, std::string_view name, uint32_t mode,
                                       const Caller& caller) {
  if (options_.read_only) return fail(EROFS, "read-only mount");
  meta::CreateArgs args;
  args.mode = (mode & ~S_IFMT) | S_IFREG;
  args.uid = caller.uid;
  args.gid = caller.gid;
  // Opened before the commit: an unlink of the new name right after it finds the handle.
  uint64_t counted = 0;
  args.opened = [&](uint64_t ino) {
    open_files_->open(ino);  // a new inode: no removal can have claimed it
    counted = ino;
  };
  auto inode = meta_->create(parent, name, args);
  if (!inode && counted != 0) open_files_->release(counted);
  return inode;
}

Result<void> Filesystem::release(uint64_t ino) {
  if (!open_files_->release(ino)) return {};
  // The last close of an unlinked file (nlink 0: an orphan) removes it — unless it was opened
  // again meanwhile (through /proc/PID/fd), which the claim finds. Decided under the metadata's
  // lock, as an unlink's orphaning is, so that one of the two always sees the other.
  RemovalClaim claim(*open_files_);
  RAIDFS_TRY(const bool removed, meta_->release(ino, claim.check()));
  if (removed) writer_->forget(ino);
  return {};
}

Result<size_t> Filesystem::write(IoContext& ctx, uint64_t ino, uint64_t offset,
                                 std::span<const uint8_t> data) {
  if (options_.read_only) return fail(EROFS, "read-only mount");
  if (offset > kMaxFileBytes || data.size() > kMaxFileBytes - offset)
    return fail(EFBIG, "write beyond the largest file");
  if (data.empty()) return size_t{0};
  return writer_->write(ctx, ino, offset, data, write_times_ == WriteTimes::kSetByWrite);
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

// --- the read path ----------------------------------------------------------------------------------

Result<size_t> Filesystem::read(IoContext& ctx, uint64_t ino, uint64_t offset, size_t size,
                                uint8_t* dest) {
  RAIDFS_TRY(meta::Inode inode, getattr(ino));
  if (S_ISDIR(inode.mode)) return fail(EISDIR, "read of a directory");
  if (!is_reg(inode)) return fail(EINVAL, "read of a special file");
  if (offset >= inode.size || size == 0) return size_t{0};
  const uint64_t length = std::min<uint64_t>(size, inode.size - offset);
  const uint64_t end = offset + length;

  // Pending data first: anything committed after this point was pending now, so the gaps are
  // either committed already or newer than this read.
  const auto covered = writer_->read_pending(ino, offset, length, dest);
  uint64_t pending_bytes = 0, cursor = offset;
  for (const auto& [a, b] : covered) {
    pending_bytes += b - a;
    if (a > cursor) RAIDFS_CHECK(read_committed(ctx, ino, cursor, a, dest + (cursor - offset)));
    cursor = b;
  }
  if (cursor < end) RAIDFS_CHECK(read_committed(ctx, ino, cursor, end, dest + (cursor - offset)));
  counters_.copied_read += pending_bytes;
  return static_cast<size_t>(length);
}

Result<void> Filesystem::read_committed(IoContext& ctx, uint64_t ino, uint64_t begin, uint64_t end,
                                        uint8_t* dest) {
  // A stripe freed under this reader (the file truncated or overwritten meanwhile) cannot be
  // handed out again while the lock is held; the map is read again if its record is gone.
  for (int attempt = 0;; ++attempt) {
    std::shared_lock reuse(stripe_reuse_);
    Result<void> r = [&]() -> Result<void> {
      for (uint64_t pos = begin; pos < end;) {
        // Past the committed size is a hole: data never committed reads as zeros.
        RAIDFS_TRY(auto maps, meta_->map_extents(ino, pos, end));
        for (const meta::Mapping& m : maps) {
          uint8_t* out = dest + (m.file_offset - begin);
          if (m.hole) {
            std::memset(out, 0, m.length);
          } else {
            RAIDFS_CHECK(read_mapping(ctx, m, out));
          }
        }
        pos = maps.back().file_offset + maps.back().length;
      }
      return {};
    }();
    if (r || r.error().code != ESTALE || attempt == 2) return r;
  }
}

Result<void> Filesystem::read_mapping(IoContext& ctx, const meta::Mapping& m, uint8_t* dest) {
  auto stripe = meta_->get_stripe(m.stripe_id);
  if (!stripe) {
    if (stripe.error().code == ENOENT) return fail(ESTALE, "stripe freed during the read");
    return std::unexpected(stripe.error());
  }
  if (stripe->state == meta::StripeState::kFree ||
      uint64_t{m.stripe_offset} + m.length > stripe->filled_bytes)
    return fail(ESTALE, "stripe reused during the read");
  uint64_t done = 0;
  while (done < m.length) {
    const uint64_t at = m.stripe_offset + done;
    uint8_t* out = dest + done;
    const uint64_t skew = at % kBlock;
    if (skew == 0 && reinterpret_cast<uintptr_t>(out) % kBlock == 0 && m.length - done >= kBlock) {
      // Whole blocks straight into the destination.
      const uint64_t n = std::min<uint64_t>((m.length - done) / kBlock * kBlock, 1u << 30);
      RAIDFS_CHECK(read_stripe_blocks(ctx, *stripe, at, static_cast<uint32_t>(n), out));
      done += n;
    } else {
      const uint64_t n = std::min<uint64_t>(m.length - done, IoContext::kBounceBytes - skew);
      RAIDFS_CHECK(read_stripe_blocks(ctx, *stripe, at - skew,
                                      static_cast<uint32_t>(round_up(skew + n)), ctx.bounce()));
      std::memcpy(out, ctx.bounce() + skew, n);
      counters_.copied_read += n;
      done += n;
    }
  }
  return {};
}

Result<void> Filesystem::read_stripe_blocks(IoContext& ctx, const meta::Stripe& stripe,
                                            uint64_t offset, uint32_t length, uint8_t* dest,
                                            bool heal_neighbours) {
  const Geometry& g = array_->geometry();
  const uint32_t stripe_blocks = static_cast<uint32_t>(g.stripe_data_bytes() / kBlock);
  // The Array wants one checksum per block of the stripe; blocks past `filled` are zeros and
  // never checked. A full stripe's list is used as it is.
  std::vector<uint32_t> padded;
  std::span<const uint32_t> crcs = stripe.block_crcs;
  if (crcs.size() != stripe_blocks) {
    padded.assign(crcs.begin(), crcs.end());
    padded.resize(stripe_blocks, 0);
    crcs = padded;
  }
  AlignedBuffer open_parity;
  ReadRequest req;
  req.ref.stripe = stripe.id;
  req.ref.generation = stripe.generation;
  req.ref.block_crcs = crcs;
  req.ref.filled_blocks = static_cast<uint32_t>(round_up(stripe.filled_bytes) / kBlock);
  if (stripe.state == meta::StripeState::kOpen) {
    // Its parity lives in the metadata, per 4 KiB row; rows not listed hold no data (zeros).
    const uint32_t c = g.chunk_bytes();
    open_parity = AlignedBuffer(size_t{g.parity_count()} * c);
    for (const meta::ParityRow& row : stripe.parity_rows) {
      if (uint64_t{row.row_index + 1} * kBlock > c) continue;
      for (uint32_t p = 0; p < stripe.parity_count && p < g.parity_count(); ++p)
        std::memcpy(open_parity.data() + size_t{p} * c + size_t{row.row_index} * kBlock,
                    row.bytes.data() + size_t{p} * kBlock, kBlock);
    }
    req.ref.parity = open_parity.data();
  }
  req.offset = offset;
  req.length = length;
  req.dest = dest;
  auto report = array_->read(ctx.channel(), req);
  if (!report) {
    if (report.error().code == EIO) ++counters_.unreadable;
    RAIDFS_LOG(kError, "%s", report.error().message.c_str());
    return std::unexpected(report.error());
  }
  counters_.reconstructed += report->reconstructed_blocks;
  counters_.corrupt += report->corrupt_blocks.size();
  for (uint32_t block : report->corrupt_blocks) {
    RAIDFS_LOG(kWarning, "stripe %llu block %u failed its checksum; rebuilt from parity",
               static_cast<unsigned long long>(stripe.id), block);
    heal_block(ctx, stripe, block, dest + (uint64_t{block} * kBlock - offset));
  }
  // Corrupt blocks of the same rows outside this request: read each on its own (which rebuilds
  // it into the context's heal buffer, verified) and heal it from there. Not recursively: a
  // neighbour's own neighbours are in this list already.
  const bool healable = stripe.state == meta::StripeState::kSealed && !options_.read_only;
  for (uint32_t block : report->corrupt_neighbours) {
    if (!heal_neighbours || !healable) break;
    (void)read_stripe_blocks(ctx, stripe, uint64_t{block} * kBlock, kBlockBytes,
                             ctx.heal_buffer(), /*heal_neighbours=*/false);
  }
  return {};
}

// Heals only sealed stripes (their content never changes) and only with verified content: the
// rebuilt block is what the checksum says, so parity coverage is unchanged.
void Filesystem::heal_block(IoContext& ctx, const meta::Stripe& stripe, uint32_t block,
                            const uint8_t* good) {
  if (stripe.state != meta::StripeState::kSealed || options_.read_only) return;
  if (auto healed = array_->write_data(ctx.channel(), stripe.id, uint64_t{block} * kBlock,
                                       kBlockBytes, good);
      healed) {
    ++counters_.healed;
    RAIDFS_LOG(kInfo, "stripe %llu block %u healed", static_cast<unsigned long long>(stripe.id),
               block);
  } else {
    RAIDFS_LOG(kWarning, "stripe %llu block %u could not be healed: %s",
               static_cast<unsigned long long>(stripe.id), block, healed.error().message.c_str());
  }
}

// --- xattrs -------------------------------------------------------------------------------------------

Result<void> Filesystem::set_xattr(uint64_t ino, std::string_view name, std::string_view value,
                                   int flags) {
  if (options_.read_only) return fail(EROFS, "read-only mount");
  if (ino == meta::kRootIno && name == kStatusXattr) return fail(EPERM, "status is read-only");
  // POSIX ACLs are not implemented: storing them as plain bytes would make cp -a, tar --acls
  // and setfacl believe the ACL (and the mode it implies) took effect. Refusing lets them fall
  // back to chmod.
  if (name.starts_with("system.posix_acl_")) return fail(EOPNOTSUPP, "POSIX ACLs are not supported");
  return meta_->set_xattr(ino, name, value, flags);
}

Result<std::string> Filesystem::get_xattr(uint64_t ino, std::string_view name) const {
  if (ino == meta::kRootIno && name == kStatusXattr) return status_text();
  if (name.starts_with("system.posix_acl_")) return fail(EOPNOTSUPP, "POSIX ACLs are not supported");
  return meta_->get_xattr(ino, name);
}

Result<std::vector<std::string>> Filesystem::list_xattrs(uint64_t ino) const {
  return meta_->list_xattrs(ino);
}

Result<void> Filesystem::remove_xattr(uint64_t ino, std::string_view name) {
  if (options_.read_only) return fail(EROFS, "read-only mount");
  if (ino == meta::kRootIno && name == kStatusXattr) return fail(EPERM, "status is read-only");
  return meta_->remove_xattr(ino, name);
}

}  // namespace raidfs::fs
