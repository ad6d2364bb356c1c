// Filesystem: the POSIX operations of a mounted raidfs, independent of how requests arrive.
//
// A Filesystem joins an Array (raid/: members, stripes, parity) and an FsMeta (meta/: namespace,
// extents, stripe records) with the write path (StripeWriter: open stripes in memory, committed
// without a write hole) and the read path (extents → stripes → verified, reconstructed, healed
// blocks). Transports (fs/fuse_*: classic /dev/fuse, io_uring) decode requests, call these
// methods, and encode replies; nothing here knows the FUSE wire format.
//
// Errors are values: every method returns Result<...> whose error code is the errno to hand the
// kernel (ENOENT, EEXIST, ENOSPC, EIO ...) and whose message is worth logging.
//
// Threads: every method may be called from any thread. Methods that do member I/O take the
// calling thread's IoContext (one io_uring per thread, never shared).
//
// Lock order, the whole of it (a lock may be taken while holding those to its left, never the
// other way round):
//   StripeWriter::mu_ (placement, flush, seal, truncate, punch; a write's seal of the stripe
//     it filled, and the member I/O of its own whole stripes, run without it, taking only the
//     locks to its right)
//     → Filesystem::stripe_reuse_ (exclusive to hand out a stripe; readers hold it shared)
//     → FsMeta::mu_ (every metadata mutation)
//     → OpenFiles::mu_ (asked through meta::OpenCheck under FsMeta::mu_)
//     → Store's write_mu (RocksDB write + RecordCache apply) → RecordCache's locks.
// The cleaner's own lock (Cleaner::mu_) is taken with none of these held, and only FsMeta::mu_
// (its counts) after it; its passes take the chain above from the start like any writer.
// Leaves, taken with nothing else acquired after them: StripeWriter::pending_mu_ (also alone, by
// readers), Array's superblock_mutex_ (member state changes, which write superblocks under it),
// Filesystem::warnings_mu_, Store's sync_mu (group commit), CommitTimer's own.
//
// Durability (see docs/commit-protocol.md): namespace operations commit to the metadata WAL at
// once (they survive a daemon crash); data is accepted into an open stripe in memory and
// committed when the stripe fills, on fsync, by the commit timer (FilesystemOptions), and at
// unmount; a rename over an existing file first commits the source's pending data. fsync(ino)
// makes that file's data and every metadata change before it durable against a power cut.
#pragma once

#include <atomic>
#include <shared_mutex>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "meta/fs_meta.h"
#include "base/aligned_buffer.h"
#include "fs/cleaner.h"
#include "fs/discarder.h"
#include "fs/io_context.h"
#include "fs/rebuilder.h"
#include "fs/scrubber.h"
#include "raid/array.h"

namespace raidfs::fs {

class StripeWriter;
class OpenFiles;
class CommitTimer;
class Scrubber;
class Rebuilder;

// Who asks: the credentials of the calling process (new inodes get its uid and gid), and the
// umask still to apply to a new inode's mode (0 when the kernel applied it already).
struct Caller {
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t umask = 0;
};

struct FilesystemOptions {
  bool read_only = false;
  // Data nobody fsyncs, and the metadata log, are made durable at most this long after they were
  // written (CommitTimer; mount.raidfs's default is 5 s). 0: only by fsync, seals and unmount.
  unsigned commit_interval_ms = 0;
  // A rebuild records its progress every this many stripes (Rebuilder).
  uint64_t rebuild_checkpoint_stripes = 64;
  // The cleaner (fs/cleaner.h) gives back the space overwrites leave dead; off, a full array
  // stays full of dead blocks. Its water marks: CleanerOptions::for_stripes unless set.
  bool cleaner = true;
  std::optional<CleanerOptions> cleaner_options;
  // Freed stripes are discarded on the members (fs/discarder.h: BLKDISCARD, punched holes).
  bool discard = false;
  // Full stripes are sealed by the writer's sealer thread, off the writes' path
  // (fs/stripe_writer.h). Off: by the write that filled them, so that one thread makes every
  // member write of a single-threaded workload in a fixed order (the power-cut test enumerates
  // them and counts on each run making the same ones).
  bool background_seal = true;
  // A piece of a write placed in the open stripe from a 4 KiB-aligned buffer at a block-aligned
  // offset, at least this long, goes to the members from the writer's buffer (its whole blocks;
  // StripeWriter: on_member) instead of being copied into the stripe's buffer. Each such piece
  // is a member write of its own, made at once: on this machine's tmpfs members a 4 KiB one
  // costs more CPU than the copy it saves (docs/decisions.md), so by default only pieces of a
  // chunk or more. kBlockBytes: every aligned block.
  uint32_t copy_below = 64 * 1024;
  // Tests only (fault and power-cut injection): every MemberIo the filesystem makes for its own
  // threads (make_io_context: scrub, rebuild, commit timer, control, the sealer) passes through
  // this.
  std::function<std::unique_ptr<MemberIo>(std::unique_ptr<MemberIo>)> wrap_member_io;
};

// Whether a write sets the file's mtime and ctime. With the kernel's writeback cache the kernel
// keeps the times itself and sends them in SETATTR; setting them again at commit would replace a
// time the user set (touch -d) with the commit time.
enum class WriteTimes { kSetByWrite, kKeptByKernel };

// Counters for status and benchmarks; monotonic since mount.
struct FilesystemStats {
  uint64_t reconstructed_blocks = 0;  // blocks rebuilt from parity on read (degraded or corrupt)
  uint64_t corrupt_blocks = 0;        // blocks that failed their checksum
  uint64_t healed_blocks = 0;         // corrupt blocks of sealed stripes rewritten in place
  uint64_t unreadable_reads = 0;      // reads that failed: blocks lost beyond the parity count
  uint64_t stripes_sealed = 0;
  uint64_t partial_flushes = 0;       // fsyncs that committed part of an open stripe
  uint64_t bytes_copied_read = 0;     // file bytes memcpy'd in user space on reads
  uint64_t bytes_copied_write = 0;    // file bytes memcpy'd in user space on writes
  uint64_t bytes_direct_write = 0;    // file bytes written to members from the request buffer
  uint64_t seal_waits = 0;            // callers that waited for a stripe's seal (WriterStats)
};

struct FsStatfs {
  uint64_t block_size = 4096;
  uint64_t blocks = 0;       // data capacity in 4 KiB blocks
  uint64_t blocks_free = 0;  // blocks in free stripes plus the unfilled part of open ones
  uint64_t files = 0;        // inode numbers are 64-bit and never reused: reported as plenty
  uint64_t files_free = 0;
  uint32_t name_max = meta::kNameBytesMax;
};

class Filesystem {
 public:
  // Takes an opened array and its metadata. Checks that they belong together (UUID, stripe
  // count and size), and, unless read-only, seals the stripes a crash left open (their parity
  // moves from the metadata to the members). EINVAL mismatch; the engine's errors otherwise.
  static Result<std::unique_ptr<Filesystem>> open(std::unique_ptr<Array> array,
                                                  std::unique_ptr<meta::FsMeta> meta,
                                                  const FilesystemOptions& options);
  ~Filesystem();

  Result<std::unique_ptr<IoContext>> make_io_context() const;

  // The transport says who keeps file times once it knows (INIT); kSetByWrite until then.
  void set_write_times(WriteTimes times) { write_times_ = times; }
  // The kernel enforces POSIX ACLs (FUSE_POSIX_ACL granted at INIT): system.posix_acl_* xattrs
  // are ACLs (fs/posix_acl.h), kept in step with the mode and inherited by new inodes. Off until
  // then: those names are refused (EOPNOTSUPP), so tools fall back to the mode.
  void set_posix_acl(bool on) { posix_acl_ = on; }

  const Array& array() const { return *array_; }
  meta::FsMeta& meta() { return *meta_; }
  bool read_only() const { return options_.read_only; }
  FilesystemStats stats() const;
  // A human-readable multi-line report: geometry, member states, space, counters, warnings.
  std::string status_text() const;
  // What the filesystem found worth telling (a stripe that could not be sealed at mount ...);
  // the array's own warnings are Array::warnings().
  std::vector<std::string> warnings() const;

  // --- namespace ---------------------------------------------------------------------------
  // Inodes returned carry the size a reader would see now (including data not yet committed).
  Result<meta::Inode> lookup(uint64_t parent, std::string_view name) const;
  Result<meta::Inode> getattr(uint64_t ino) const;
  Result<meta::Inode> setattr(IoContext& ctx, uint64_t ino, const meta::SetAttr& attr);
  Result<std::string> readlink(uint64_t ino) const;
  // mknod/mkdir/symlink/create: `mode` includes the type bits (mkdir adds S_IFDIR itself).
  Result<meta::Inode> mknod(uint64_t parent, std::string_view name, uint32_t mode, uint64_t rdev,
                            const Caller& caller);
  Result<meta::Inode> mkdir(uint64_t parent, std::string_view name, uint32_t mode,
                            const Caller& caller);
  Result<meta::Inode> symlink(uint64_t parent, std::string_view name, std::string_view target,
                              const Caller& caller);
  Result<void> unlink(uint64_t parent, std::string_view name);
  Result<void> rmdir(uint64_t parent, std::string_view name);
  // A rename that replaces a file (or exchanges two) first commits the pending data of the
  // files it moves (ext4's auto_da_alloc): after a crash the target holds the old or the new
  // content, never the new name over data that was never committed.
  Result<void> rename(IoContext& ctx, uint64_t old_parent, std::string_view old_name,
                      uint64_t new_parent, std::string_view new_name, unsigned flags);
  Result<meta::Inode> link(uint64_t ino, uint64_t new_parent, std::string_view new_name);
  Result<meta::ReaddirBatch> readdir(uint64_t dir, uint64_t after_cookie, size_t max_entries) const;

  // --- open files ------------------------------------------------------------------------------
  // open/create count an open handle on the inode (an unlinked inode lives until the last
  // release). open: EISDIR for a directory opened for writing. create: a regular file, opened
  // for writing. release: `writable` as the handle was opened (open: flags not O_RDONLY).
  Result<meta::Inode> open(uint64_t ino, int flags);
  Result<meta::Inode> create(uint64_t parent, std::string_view name, uint32_t mode,
                             const Caller& caller);
  // open(O_TMPFILE) in `dir`: a new regular file without a name, opened for writing; linkat()
  // may name it (link), else it goes at its last release (or at the next mount after a crash).
  Result<meta::Inode> tmpfile(uint64_t dir, uint32_t mode, const Caller& caller);
  Result<void> release(uint64_t ino, bool writable);
  // True while a handle that may write is open: getattr then counts every block of the size in
  // st_blocks (the kernel may hold data raidfs has not seen), so the kernel's cached attributes
  // are stale when the last such handle goes.
  bool has_writer(uint64_t ino) const;
  // Reads up to `size` bytes at `offset` into `dest` (4 KiB-aligned, room for `size` rounded up
  // to 4 KiB). Returns the bytes read (short at end of file, 0 past it). Holes read as zeros.
  // EIO when a block cannot be read or rebuilt (more than the parity count of its row lost).
  Result<size_t> read(IoContext& ctx, uint64_t ino, uint64_t offset, size_t size, uint8_t* dest);
  // Accepts `data` at `offset`. Returns data.size() or an error, never a short count
  // (StripeWriter::write says what a failure leaves): ENOSPC full, EIO or the member's errno
  // when the members refuse the data, EFBIG beyond the largest offset, EROFS read-only.
  Result<size_t> write(IoContext& ctx, uint64_t ino, uint64_t offset, std::span<const uint8_t> data);
  // Before a write by a caller without CAP_FSETID: a set-user-ID file (and a set-group-ID one
  // with group-execute) loses those bits (meta::SetAttr::kill_set_id). Returns whether the mode
  // changed — the kernel's cached attributes are then stale. Most files have neither bit: one
  // inode read, and a metadata batch only when one is set.
  Result<bool> kill_set_id(uint64_t ino);
  // Makes the file's data and all earlier metadata changes durable (group commit).
  Result<void> fsync(IoContext& ctx, uint64_t ino);
  // Makes all earlier metadata changes durable (one WAL sync, shared with concurrent callers).
  Result<void> sync_metadata();
  // mode 0 (allocate: extends the size unless FALLOC_FL_KEEP_SIZE; space is checked, not
  // reserved — every write goes to a new place), FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE
  // (deallocates, reads as zeros), FALLOC_FL_ZERO_RANGE. EOPNOTSUPP other modes.
  Result<void> fallocate(IoContext& ctx, uint64_t ino, int mode, uint64_t offset, uint64_t length);
  // SEEK_DATA / SEEK_HOLE. ENXIO past the end (or no data after offset).
  Result<uint64_t> lseek(uint64_t ino, uint64_t offset, int whence);

  // --- xattrs and the rest ---------------------------------------------------------------------
  Result<void> set_xattr(uint64_t ino, std::string_view name, std::string_view value, int flags);
  Result<std::string> get_xattr(uint64_t ino, std::string_view name) const;
  Result<std::vector<std::string>> list_xattrs(uint64_t ino) const;
  Result<void> remove_xattr(uint64_t ino, std::string_view name);
  FsStatfs statfs() const;
  // Less than an eighth of the capacity is free: writers should no longer be buffered by the
  // kernel (see RequestDispatcher's OPEN), so that ENOSPC reaches them at the write.
  bool nearly_full() const;

  // Commits every open stripe and makes everything durable. The filesystem stays usable.
  Result<void> sync_all(IoContext& ctx);
  // The end of a mount: a running scrub or rebuild stopped (the next mount resumes it),
  // sync_all, and the clean unmount recorded in the superblocks (Array::record_clean_unmount).
  // Only destruction may follow.
  Result<void> unmount(IoContext& ctx);

  // --- the admin channel (docs/decisions.md): virtual xattrs of the root directory ---------------
  // status_text(), and the same as JSON for monitoring (status_json), for anyone to read.
  static constexpr std::string_view kStatusXattr = "raidfs.status";
  static constexpr std::string_view kStatusJsonXattr = "raidfs.status.json";
  // Set to a command to change the array; in the trusted namespace, so the kernel lets only
  // CAP_SYS_ADMIN set it, and control() checks the caller is root as well.
  static constexpr std::string_view kControlXattr = "trusted.raidfs.control";
  // Status as JSON: {"format": 1, "array": ..., "members": [...], "scrub": {...}, ...}.
  std::string status_json() const;
  // Runs an admin command and returns its one-line outcome (also kept for status):
  //   "fail MEMBER"      marks the member failed (as if it returned I/O errors)
  //   "scrub [RATE]"     starts the online scrub (resumes a stopped one), RATE bytes/s at most
  //   "scrub-stop"       stops it, its progress kept
  //   "rebuild MEMBER [RATE]"  rebuilds a failed or returned member in place (fs/rebuilder.h)
  //   "replace MEMBER RATE FORCE PATH"  a new device at PATH for the member (Rebuilder), FORCE 0|1
  //   "sync"             seals and syncs everything (remount,ro)
  //   "clean"            cleans every stripe holding dead space now (Cleaner::clean_all)
  //   "trim"             discards every free stripe on the members now (Discarder::trim)
  // EPERM the caller is not root; EROFS read-only mount; EINVAL unknown command or argument;
  // EBUSY a scrub runs already / failing that member would stop the array; ENOENT no scrub runs.
  Result<std::string> control(const Caller& caller, std::string_view command);
  // The online scrub's progress (from the metadata when no scrubber runs: a read-only mount).
  ScrubProgress scrub_progress() const;
  RebuildProgress rebuild_progress() const;

 private:
  Filesystem(std::unique_ptr<Array> array, std::unique_ptr<meta::FsMeta> meta,
             const FilesystemOptions& options);
  Result<void> seal_leftover_open_stripes(IoContext& ctx);
  // The commit timer's work: pending data committed, the metadata log synced. Logs failures.
  void commit_by_time();
  meta::Inode with_pending(meta::Inode inode) const;
  std::string metadata_line() const;  // status_text's "metadata:" line
  std::string cleaner_line() const;  // status_text's "cleaner:" line
  std::string discard_line() const;  // status_text's "discard:" line
  // A new inode's mode and ACLs under `parent`: the parent's default ACL when it has one (the
  // umask then does not apply), else the mode less the caller's umask.
  Result<void> inherit(uint64_t parent, const Caller& caller, meta::CreateArgs& args) const;
  Result<void> set_acl(uint64_t ino, std::string_view name, std::string_view value);
  // create and tmpfile: a new regular file, its creator's handle counted before `commit` ends.
  Result<meta::Inode> create_opened(
      uint64_t parent, uint32_t mode, const Caller& caller,
      const std::function<Result<meta::Inode>(const meta::CreateArgs&)>& commit);
  // The inode `read` returns, with what the open stripe holds of it, read again if pending data
  // changed hands in between (StripeWriter::pending_epoch).
  template <class ReadInode>
  Result<meta::Inode> current(const ReadInode& read) const;
  // The inode a read clips to, without current()'s retries: its size covers every write
  // acknowledged before the call (the pending end is taken before the stored inode, and a seal
  // stores its commit before it drops the pending data), so a read never waits for a seal's
  // metadata commit. Its blocks and times are the stored ones.
  Result<meta::Inode> inode_for_read(uint64_t ino) const;
  // File bytes [begin, end) as committed (holes and past the committed size read as zeros).
  Result<void> read_committed(IoContext& ctx, uint64_t ino, uint64_t begin, uint64_t end,
                              uint8_t* dest);
  // Consecutive mappings of a file into dest (the first mapping's bytes at dest): holes as
  // zeros; the whole-block extents with one batch of member reads (Array::read of many, so a
  // read across stripes waits for the members once), the others through read_mapping.
  Result<void> read_mappings(IoContext& ctx, std::span<const meta::Mapping> maps, uint8_t* dest);
  // The stripe record a mapping points at, into *out; ESTALE when it was freed or reused
  // meanwhile.
  Result<void> mapped_stripe(const meta::Mapping& m, meta::Stripe* out);
  // One mapped extent of stripe data into dest, through the bounce buffer where unaligned.
  Result<void> read_mapping(IoContext& ctx, const meta::Mapping& m, uint8_t* dest);
  // The Array request for whole blocks [offset, offset + length) of the stripe into dest. An
  // open stripe's parity rows are pointed at through `parity_rows` (views into the record's own
  // bytes), which must live as long as the request.
  ReadRequest stripe_read(const meta::Stripe& stripe, std::vector<ParityRowRef>& parity_rows,
                          uint64_t offset, uint32_t length, uint8_t* dest) const;
  // Counts a read's rebuilt and corrupt blocks and heals them (sealed stripes only); with
  // `heal_neighbours`, also the corrupt blocks of the same rows found outside the range.
  void absorb_read_report(IoContext& ctx, const meta::Stripe& stripe, uint64_t offset,
                          uint8_t* dest, const ReadReport& report, bool heal_neighbours);
  // Whole blocks of a stripe's data, verified; rebuilt blocks of sealed stripes are healed, and
  // with `heal_neighbours` also corrupt blocks of the same rows found outside the range.
  Result<void> read_stripe_blocks(IoContext& ctx, const meta::Stripe& stripe, uint64_t offset,
                                  uint32_t length, uint8_t* dest, bool heal_neighbours = true);
  // The same with the request's lists given (read_mapping passes the context's: no allocation);
  // `request` and `report` get one entry each.
  Result<void> read_stripe_blocks(IoContext& ctx, const meta::Stripe& stripe, uint64_t offset,
                                  uint32_t length, uint8_t* dest, bool heal_neighbours,
                                  std::vector<ParityRowRef>& parity_rows,
                                  std::vector<ReadRequest>& request,
                                  std::vector<ReadReport>& report);
  // Rewrites one verified block of a sealed stripe in place (self-heal), counted and logged.
  void heal_block(IoContext& ctx, const meta::Stripe& stripe, uint32_t block, const uint8_t* good);
  Result<void> seal_open_stripe(IoContext& ctx, const meta::Stripe& stripe);

  FilesystemOptions options_;
  const CleanerOptions cleaner_options_;  // its reserve is kept from writers, cleaner on or off
  std::atomic<WriteTimes> write_times_{WriteTimes::kSetByWrite};
  std::atomic<bool> posix_acl_{false};
  std::unique_ptr<Array> array_;
  std::unique_ptr<meta::FsMeta> meta_;
  // Readers of committed data hold it shared; allocating a stripe holds it exclusively.
  mutable std::shared_mutex stripe_reuse_;
  std::unique_ptr<OpenFiles> open_files_;
  std::unique_ptr<StripeWriter> writer_;
  mutable struct Counters {
    std::atomic<uint64_t> reconstructed{0}, corrupt{0}, healed{0}, unreadable{0}, copied_read{0};
  } counters_;
  mutable std::mutex warnings_mu_;  // guards warnings_ (a leaf)
  std::vector<std::string> warnings_;
  std::string last_control_;  // the last admin command's outcome, under warnings_mu_
  std::unique_ptr<Scrubber> scrubber_;         // read-write mounts only
  std::unique_ptr<Rebuilder> rebuilder_;       // read-write mounts only
  std::unique_ptr<Cleaner> cleaner_;           // read-write mounts, unless options_.cleaner off
  std::unique_ptr<Discarder> discarder_;       // read-write mounts; its thread with -o discard
  std::unique_ptr<IoContext> timer_ctx_;       // the commit timer's, made on its thread
  std::unique_ptr<CommitTimer> commit_timer_;  // last: stopped first, while the rest stands
};

}  // namespace raidfs::fs
