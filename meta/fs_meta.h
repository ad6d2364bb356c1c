// FsMeta: the filesystem's metadata — namespace (inodes, directory entries, xattrs), file data
// maps (extents), stripe records and the free-stripe map — as transactions on a Store.
//
// Every mutating call is one filesystem operation and one atomic RocksDB write: it commits whole
// or not at all, and on any error nothing is written. Inside an operation reads see the
// operation's own earlier writes (a Txn overlay). Mutations are serialised by one mutex (held while
// the operation computes and appends its batch to the WAL, not while it waits for the WAL fsync),
// so Durability::kGroupSync callers from many threads share WAL fsyncs (see store.h).
//
// Thread-safety: every method may be called from any thread. Reads (lookup, getattr, readdir,
// map_range, ...) take no lock; each sees committed state, but two reads are not one snapshot.
//
// Namespace rules (the checker enforces them):
//   - The root directory is inode 1 (kRootIno); its parent is itself. Inode numbers come from the
//     next_inode counter in the super family, bumped in the batch that consumes it: never reused.
//   - nlink of a non-directory = the number of dirents naming it (0 only while in the orphan list).
//     nlink of a directory = 2 + the number of its child directories ("." and the entry in its
//     parent, or the root's implicit self-link, plus each child's ".."). "." and ".." are not
//     stored; Inode::parent gives "..".
//   - Names are 1..255 bytes, without '/' or NUL, and not "." or "..".
//   - Readdir cookies: each directory hands out increasing cookies from Inode::next_cookie
//     (starting at 3; 0 = "from the start", 1 and 2 are left for "." and ".."). A dirent keeps its
//     cookie for life; a (parent, cookie) → name index orders the listing. Resuming from a cookie
//     lists every entry that existed throughout exactly once, whatever was added or removed since.
//   - Orphans: unlinking the last name of an inode that the caller says is still open keeps the
//     inode (nlink 0) in the orphan list; release() removes it at last close. open() removes every
//     orphan left by a crash, with its extents and xattrs.
//
// Data map rules:
//   - An extent maps file bytes [file_offset, file_offset + length) to a stripe's data bytes
//     [stripe_offset, stripe_offset + length); a file's extents never overlap.
//   - Stripe::live_blocks = Σ over all extents pointing at the stripe of blocks_touched(extent's
//     stripe range): a reference count of 4 KiB blocks, maintained by FsMeta (a caller's value is
//     ignored). A sealed stripe whose count reaches 0 becomes free in the same batch.
//   - The free map is derived at open from the stripes family (absent or kFree = free), then kept
//     in memory. A stripe freed by a commit is handed out again only once that commit is durable.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "meta/records.h"
#include "meta/store.h"

namespace raidfs::meta {

namespace detail {
class Txn;  // txn.h: one operation's read-your-writes buffer
}

inline constexpr uint64_t kRootIno = 1;
inline constexpr uint64_t kFirstCookie = 3;
inline constexpr uint32_t kLinkMax = 65000;
inline constexpr size_t kReaddirBatchMax = 4096;    // entries per readdir() call
inline constexpr size_t kMappingsMax = 4096;         // segments per map_range() call

struct CreateArgs {
  uint32_t mode = 0;  // S_IFMT type (regular, directory, symlink, device, fifo, socket) | perms
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t rdev = 0;
  std::string symlink_target;  // symlinks only: 1..4095 bytes
  // Extended attributes the inode is born with, in the same batch (its inherited ACLs).
  std::vector<std::pair<std::string, std::string>> xattrs;
  // Called with the new inode's number under the metadata's lock, right before the commit: a
  // caller that counts open handles (fs/open_files.h) counts the creator's here, so that no
  // unlink can remove the file between its creation and its open. Not called on an error before.
  std::function<void(uint64_t ino)> opened;
};

// Whether an inode about to lose its last name is open (it then lives on as an orphan until
// release()). Asked under the metadata's lock right before the commit, and only then, so that
// whoever keeps the open count can make the answer and the commit one step (fs/open_files.h: a
// "no" also refuses new opens until the removal is over). A plain bool is a known answer.
class OpenCheck {
 public:
  OpenCheck(bool open) : known_(open) {}  // NOLINT: a bool is the common case
  OpenCheck(std::function<bool(uint64_t ino)> ask) : ask_(std::move(ask)) {}  // NOLINT
  bool operator()(uint64_t ino) const { return ask_ ? ask_(ino) : known_; }

 private:
  bool known_ = false;
  std::function<bool(uint64_t ino)> ask_;
};

struct SetAttr {
  std::optional<uint32_t> mode;  // permission bits; the type bits are kept
  // After `mode`: what a write or truncate by a caller without CAP_FSETID does to a file (the
  // kernel's should_remove_suid): S_ISUID cleared, S_ISGID cleared if group-execute is set, and
  // security.capability removed. Directories are left alone.
  bool kill_set_id = false;
  std::optional<uint32_t> uid;
  std::optional<uint32_t> gid;
  std::optional<uint64_t> size;  // regular files: truncate or extend (a hole)
  std::optional<int64_t> atime_ns;
  std::optional<int64_t> mtime_ns;
  // The change time to store; unset: now. Under the writeback cache the kernel sends its own
  // (it stamped the write it is flushing), which must be the one stored.
  std::optional<int64_t> ctime_ns;
  // Extended attributes set (a value) or removed (nullopt, absent or not) in the same batch:
  // an access ACL changes with the mode it mirrors.
  std::vector<std::pair<std::string, std::optional<std::string>>> xattrs;
};

struct DirEntry {
  std::string name;
  uint64_t ino = 0;
  FileType type = FileType::kUnknown;
  uint64_t cookie = 0;  // pass to readdir() to continue after this entry
};

struct ReaddirBatch {
  std::vector<DirEntry> entries;
  bool end = false;  // true when no entry with a greater cookie existed when the call ran
};

struct UnlinkResult {
  uint64_t ino = 0;
  uint32_t nlink = 0;     // after the unlink
  bool orphaned = false;  // nlink reached 0 while open: kept until release()
  bool removed = false;   // nlink reached 0 and the inode, its extents and xattrs are gone
};

enum RenameFlags : unsigned { kRenameNoReplace = 1, kRenameExchange = 2 };  // = RENAME_* values

// One piece of [offset, offset + length) of a file: a hole (reads as zeros) or stripe data.
struct Mapping {
  uint64_t file_offset = 0;
  uint64_t length = 0;
  bool hole = true;
  uint64_t stripe_id = 0;
  uint32_t stripe_offset = 0;
};

// One file's part of a commit_files() batch.
struct FileExtents {
  uint64_t ino = 0;
  std::vector<Extent> extents;  // sorted by file_offset, non-overlapping, length > 0
  // A file removed since its data was written is skipped instead of failing the batch: its
  // data is dead, and the other files' data must still commit.
  bool skip_if_missing = true;
  // The file's new mtime and ctime (the time of its last write); unset: times unchanged (the
  // kernel keeps them, with a writeback cache).
  std::optional<int64_t> mtime_ns;
};

struct StripeRef {
  uint64_t id = 0;
  uint64_t generation = 0;
};

class FsMeta {
 public:
  // Opens the store (see Store::open for its errors), creates the root directory in a new
  // database, removes the orphans a crash left behind, and builds the free-stripe map. A
  // read-only store (StoreOptions::read_only) is only read: its orphans stay.
  static Result<std::unique_ptr<FsMeta>> open(const StoreOptions& options);

  Store& store() { return *store_; }
  const Store& store() const { return *store_; }
  size_t orphans_removed_at_open() const { return orphans_removed_at_open_; }

  // --- namespace reads --------------------------------------------------------------------------
  // The inode. ENOENT when it does not exist; EIO when its record is corrupt.
  Result<Inode> getattr(uint64_t ino) const;
  // The inode named `name` in directory `parent`. ENOENT no such entry (or no such parent);
  // ENOTDIR parent is not a directory; EINVAL/ENAMETOOLONG bad name.
  Result<Inode> lookup(uint64_t parent, std::string_view name) const;
  // Up to max_entries (≤ kReaddirBatchMax) entries with cookies greater than after_cookie, in
  // cookie order. ENOENT/ENOTDIR as lookup.
  Result<ReaddirBatch> readdir(uint64_t dir, uint64_t after_cookie, size_t max_entries) const;

  // --- namespace operations (each one batch) ---------------------------------------------------
  // Creates a file, directory, symlink or special file. Returns the new inode.
  // EEXIST name taken; ENOENT/ENOTDIR parent; EINVAL bad name, type or empty target;
  // ENAMETOOLONG name > 255 or target > 4095 bytes; EMLINK parent has kLinkMax subdirectories.
  Result<Inode> create(uint64_t parent, std::string_view name, const CreateArgs& args,
                       Durability durability = Durability::kNone);
  // open(O_TMPFILE): a regular file without a name, in the orphan list (nlink 0) until link()
  // names it; removed at its last release() or, after a crash, at the next open. `dir` is where
  // it was asked for (it must be a live directory). ENOENT/ENOTDIR dir; EINVAL not a regular file.
  Result<Inode> create_unnamed(uint64_t dir, const CreateArgs& args,
                               Durability durability = Durability::kNone);
  // Adds a name for a non-directory (the first one of a create_unnamed() inode). EPERM ino is a
  // directory; ENOENT ino or parent missing (or ino already unlinked); EEXIST; EMLINK nlink at
  // kLinkMax; ENOTDIR, EINVAL, ENAMETOOLONG.
  Result<Inode> link(uint64_t ino, uint64_t new_parent, std::string_view new_name,
                     Durability durability = Durability::kNone);
  // Removes a non-directory's name. `is_open`: whether the inode is still open (then its last
  // unlink orphans it instead of removing it). EISDIR it is a directory; ENOENT; ENOTDIR.
  Result<UnlinkResult> unlink(uint64_t parent, std::string_view name, const OpenCheck& is_open,
                              Durability durability = Durability::kNone);
  // Removes an empty directory — kept as an orphan while `is_open` says a handle is open on it
  // (release() removes it at the last close). ENOTDIR not a directory; ENOTEMPTY; ENOENT; EBUSY
  // the root.
  Result<void> rmdir(uint64_t parent, std::string_view name, const OpenCheck& is_open = false,
                     Durability durability = Durability::kNone);
  // rename(2)/renameat2(2). flags: 0, kRenameNoReplace or kRenameExchange. A replaced target
  // loses a name as unlink/rmdir would (`target_open` as unlink's is_open); its fate is returned.
  // EEXIST (NOREPLACE, target exists); ENOENT source (or, EXCHANGE, target) missing; EISDIR
  // non-directory over a directory; ENOTDIR directory over a non-directory; ENOTEMPTY target
  // directory not empty; EINVAL bad flags, or a directory moved into its own subtree; EMLINK.
  // Renaming a name onto itself, or onto another name of the same inode, does nothing.
  Result<std::optional<UnlinkResult>> rename(uint64_t old_parent, std::string_view old_name,
                                             uint64_t new_parent, std::string_view new_name,
                                             unsigned flags, const OpenCheck& target_open,
                                             Durability durability = Durability::kNone);
  // Changes attributes; a size change truncates (removing extents beyond it, clipping the one
  // across it) or extends with a hole. Returns the new inode. ENOENT; EISDIR size of a directory;
  // EINVAL size of another non-regular file.
  Result<Inode> setattr(uint64_t ino, const SetAttr& attr,
                        Durability durability = Durability::kNone);
  // Last close of an inode: removes it (extents, xattrs) if it is an orphan and `is_open` —
  // asked under the lock, as unlink's is — says no handle came back meanwhile. Returns whether it
  // was removed; false (a no-op) otherwise.
  Result<bool> release(uint64_t ino, const OpenCheck& is_open = false,
                       Durability durability = Durability::kNone);

  // --- xattrs -------------------------------------------------------------------------------------
  // flags: 0, XATTR_CREATE (1: EEXIST if present) or XATTR_REPLACE (2: ENODATA if absent).
  // ENOENT inode; EINVAL empty name; ERANGE name > 255 bytes; E2BIG value > 64 KiB.
  Result<void> set_xattr(uint64_t ino, std::string_view name, std::string_view value, int flags,
                         Durability durability = Durability::kNone);
  Result<std::string> get_xattr(uint64_t ino, std::string_view name) const;  // ENODATA absent
  Result<std::vector<std::string>> list_xattrs(uint64_t ino) const;         // names, sorted
  Result<void> remove_xattr(uint64_t ino, std::string_view name,
                            Durability durability = Durability::kNone);   // ENODATA absent

  // --- data: extents and stripes -------------------------------------------------------------------
  // Commits written data: `extents` (sorted by file_offset, non-overlapping, length > 0) replace
  // whatever mapped those file bytes before (old extents are split or removed; the blocks they
  // referenced are subtracted from their stripes' live counts, freeing sealed stripes that reach
  // 0); `stripes` are new stripe records to store (state, filled bytes, checksums, parity rows;
  // live_blocks is computed here). The file grows to cover the last extent; mtime and ctime are
  // set. ino may be 0 to commit only stripe records (e.g. sealing one). The data was acknowledged
  // to its writers: the commit may use most of the metadata's reserve (store.h Room).
  // ENOENT inode; EISDIR/EINVAL not a regular file; EINVAL bad extents (unsorted, overlapping,
  // past a stripe's filled bytes, or pointing at a free or unknown stripe) or a bad stripe record
  // (free state, id ≥ stripe count, crc count ≠ ceil(filled/4096), bad parity row size, or a
  // transition a stripe cannot make: filled bytes shrinking, the checksums of already filled
  // blocks changing, a sealed stripe reopened or refilled); ESTALE a record whose generation is
  // not the stripe's current one — for a committed stripe its stored generation, for a free one
  // the generation allocate_stripe() handed out (a free stripe that is not currently allocated
  // takes no record at all: a late commit of an earlier incarnation); EIO a live count would go
  // negative (corruption).
  Result<void> commit_write(uint64_t ino, std::span<const Extent> extents,
                            std::span<const Stripe> stripes,
                            Durability durability = Durability::kNone);
  // commit_write for several files in one batch (a sealed stripe holds many files' data): the
  // stripe records and every file's extents commit together or not at all. Each inode at most
  // once (EINVAL otherwise); a missing inode is skipped when its entry says so, else ENOENT.
  Result<void> commit_files(std::span<const FileExtents> files, std::span<const Stripe> stripes,
                            Durability durability = Durability::kNone);
  // Unmaps file bytes [offset, offset + length) (they read as zeros; the size is unchanged, or
  // raised to `min_size`: the size a caller's uncommitted data gave the file, which the punch
  // may have dropped), releasing the blocks they referenced. ENOENT; EISDIR/EINVAL not a
  // regular file.
  Result<void> punch_hole(uint64_t ino, uint64_t offset, uint64_t length, uint64_t min_size = 0,
                          Durability durability = Durability::kNone);
  // The mapping of [offset, offset + length) clipped at the file size: holes and extents in file
  // order, at most kMappingsMax segments (continue from the end of the last one: a call that stops
  // at the limit ends with the last segment it read, never with a hole over extents it did not
  // read). ENOENT.
  Result<std::vector<Mapping>> map_range(uint64_t ino, uint64_t offset, uint64_t length) const;
  // map_range of [offset, end) without reading the inode, for a caller that bounded the range by
  // the size it read itself (the read path): bytes past the size read as a hole.
  Result<std::vector<Mapping>> map_extents(uint64_t ino, uint64_t offset, uint64_t end) const;
  // The same into *out (cleared first; its capacity reused, so a read keeping it allocates
  // nothing here).
  Result<void> map_extents(uint64_t ino, uint64_t offset, uint64_t end,
                           std::vector<Mapping>* out) const;

  // Hands out a free stripe (the lowest free id at or after the last one handed out) and a
  // never-used generation. The stripe stays reserved in memory until a commit_write stores its
  // record or release_stripe() returns it; a crash forgets it (it was never committed). A stripe
  // freed by a commit is handed out only once that commit is durable (this call syncs the WAL
  // when nothing else is free). ENOSPC no free stripe, or the metadata region (or the host disk
  // holding the metadata) is below its reserve: new data is refused here, before it is
  // acknowledged, so that the commits of what was acknowledged always have room (store.h Room).
  Result<StripeRef> allocate_stripe();
  // Returns an allocated stripe whose record was never committed. Any other id (never handed out,
  // already committed, already released) is ignored.
  void release_stripe(uint64_t id);
  Result<Stripe> get_stripe(uint64_t id) const;  // ENOENT no record (free, never used)
  // The same into *out, its vectors' capacity reused (the read path's: no allocation).
  Result<void> get_stripe(uint64_t id, Stripe* out) const;

  // The online scrub's progress (records.h ScrubState); nullopt before the first scrub.
  Result<std::optional<ScrubState>> scrub_state() const;
  Result<void> put_scrub_state(const ScrubState& state, Durability durability = Durability::kNone);
  // A member's rebuild (records.h RebuildState); nullopt when none was ever started.
  Result<std::optional<RebuildState>> rebuild_state() const;
  Result<void> put_rebuild_state(const RebuildState& state,
                                 Durability durability = Durability::kNone);
  // Committed stripes (sealed or open) with an id ≥ `from`, in id order (= member-offset order),
  // at most `max`. EIO when RocksDB fails.
  Result<std::vector<Stripe>> stripes_from(uint64_t from, size_t max) const;
  // How many stripes are committed (sealed or open), or sealed only.
  uint64_t committed_stripe_count(bool sealed_only = false) const;
  // The generation the next allocate_stripe() hands out: every stripe allocated later has this
  // generation or a greater one.
  uint64_t next_generation() const;
  std::vector<uint64_t> open_stripes() const;    // committed stripes in state kOpen
  // Stripes free now or once the commit that freed them is durable (not those handed out).
  // Without a lock: as of the last change published, never waiting for a commit in flight.
  uint64_t free_stripe_count() const;
  // Σ Stripe::live_blocks over every committed stripe: the 4 KiB blocks the files' extents hold
  // (a block two extents share counts twice). Kept in step with every commit, without a lock.
  uint64_t live_block_count() const;
  std::vector<uint64_t> orphans() const;         // inodes in the orphan list

  // --- discard (fs/discarder.h) ------------------------------------------------------------
  // From now on, records the stripes that become free (once their freeing commit is durable)
  // for take_freed_stripes; off until called, as nobody would drain the record.
  void track_freed_stripes();
  // The stripes recorded since the last call, or with `all` every stripe, that are free now and
  // not handed out, in id order. Call it holding what allocation waits for (the owner's
  // stripe-reuse lock), or one may be handed out while the caller still works on it.
  std::vector<uint64_t> take_freed_stripes(bool all = false);
  // Those of `ids` that are free now and not handed out (same lock), in their order.
  std::vector<uint64_t> free_among(std::span<const uint64_t> ids) const;

 private:
  using Txn = detail::Txn;
  explicit FsMeta(std::unique_ptr<Store> store) : store_(std::move(store)) {}
  Result<void> upgrade_store();
  Result<void> count_and_index_extents(uint32_t format);  // formats 1 and 2
  Result<void> move_parity_rows_out();                     // formats 1 to 4
  Result<void> recover_orphans();
  Result<void> build_stripe_maps();
  // Writes the transaction's batch (mu_ held), then applies its in-memory stripe changes.
  Result<uint64_t> write_locked(Txn& txn, Durability durability, Room room = Room::kOrdinary);
  Result<void> finish(uint64_t seq, Durability durability);
  // commit_files' work for one file (mu_ held): validates its extents, overlays them, sets size
  // and times.
  Result<void> apply_file_extents(Txn& txn, Inode inode, const FileExtents& file,
                                  const std::map<uint64_t, Stripe>& supplied);
  void reclaim_pending_locked();

  std::unique_ptr<Store> store_;
  size_t orphans_removed_at_open_ = 0;

  // Guards everything below and serialises mutations. Lock order: mu_, then the Store's own.
  mutable std::mutex mu_;
  // A stripe id is in exactly one of: stripe_free_ (free, its freeing commit durable), allocated_
  // (handed out, no record committed since), pending_free_ (freed by a commit not yet durable), or
  // in use (a committed record that is not free).
  std::vector<bool> stripe_free_;                    // by stripe id: free and not handed out
  uint64_t free_count_ = 0;
  uint64_t alloc_cursor_ = 0;
  std::map<uint64_t, uint64_t> allocated_;           // id → generation handed out, uncommitted
  std::set<uint64_t> open_;                          // committed open stripes
  std::vector<std::pair<uint64_t, uint64_t>> pending_free_;  // (sequence, id) freed, not synced
  bool track_freed_ = false;
  std::vector<uint64_t> freed_;                      // free since the last take_freed_stripes
  uint64_t next_generation_ = 0;
  uint64_t generation_limit_ = 0;                    // persisted; generations < it may be used
  std::atomic<int64_t> live_blocks_total_{0};        // see live_block_count(); changed under mu_
  // free_count_ + pending_free_.size(), published under mu_ after each change, so that
  // free_stripe_count() (every write's space check) does not wait for a commit holding mu_.
  std::atomic<uint64_t> free_total_{0};
  void publish_free_count_locked() {
    free_total_.store(free_count_ + pending_free_.size(), std::memory_order_relaxed);
  }
};

}  // namespace raidfs::meta
