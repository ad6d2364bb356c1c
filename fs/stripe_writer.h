// StripeWriter: the write path — file data into an open stripe in memory, committed without a
// write hole (docs/commit-protocol.md has the argument; DESIGN.md section 5 the plan).
//
// One stripe is open for new data at a time. A write places its data in the stripe at the next
// unused position (an overwrite too: copy-on-write; the old blocks die when the new extent
// commits) and records a *pending* extent for the file. Pending data is not yet referenced by the
// metadata; readers get it from here (read_pending) and the committed rest from the members.
//
// Placing: whole 4 KiB blocks from a 4 KiB-aligned buffer (the io_uring transport's payload) at a
// block-aligned file offset are written to their place on the members at once, from that buffer
// — *on_member*, not copied — and their parity is added to the slot's member_parity
// (ParityCodec::update); the rest (partial blocks, misaligned buffers) is copied into the
// stripe's buffer, which holds zeros where on-member blocks are. Parity is linear: the stripe's
// parity is that of its buffer XOR member_parity, and every flush and seal computes it so. A read
// of pending on-member blocks (not in memory) commits the file's pending data first and reads
// them as committed (read_pending says so).
//
// The open stripe moves through explicit states:
//
//   (none) --allocate--> kFilling --flush_partial--> kFilling (committed: its record is open,
//                           |                         blocks on members, parity rows in metadata)
//                           +----------seal----------> (none)  record sealed, parity on members
//
//   flush_partial (fsync): write the blocks placed since the last flush to never-used positions
//     of the stripe (on-member ones are there already), flush the members, then one metadata
//     batch commits the pending extents of every file and the stripe record: open, filled
//     bytes, block checksums, and the parity of each 4 KiB row the new blocks changed (one
//     metadata record per row: the rows of earlier flushes stay). Member parity is untouched.
//   seal (stripe full, or unmount): write the remaining blocks and the whole parity, flush the
//     members, then one batch commits the extents and the record sealed (its rows deleted).
//
// In every committed state the metadata names exactly the blocks the parity it points at covers:
// a crash at any instant leaves the previous commit readable, degraded or not.
//
// Two slots, so that a seal is off the writers' path: each slot is a stripe buffer with its
// pending extents. New data goes to the *open* slot; a full one moves *behind* and is sealed by
// the *sealer*, a thread of the writer's own (start_sealer), with the writer's lock released,
// while the writes fill the open slot: a client's WRITE returns once its data is placed, and the
// FUSE queue that served it goes on to the next request instead of spending the seal's member
// writes and metadata commit in between. (Without a sealer — before start_sealer, or if its
// I/O context could not be made — the write that filled the slot seals it before returning.)
// Only one stripe is ever behind, and it is sealed before the open one may move behind in its
// turn, so stripes commit in the order they filled and a file's writes commit in order. When
// writers wait for that (the open slot filled during the seal), the sealer moves the open slot
// behind itself as soon as its seal is done and seals it next.
// Everything else that commits or changes pending data (flush, seal, truncate, punch, the
// cleaner) first *settles* the slot behind: waits for its seal, or seals it itself when it is
// full and not being sealed — the sealer has not picked it up yet, or its seal failed (its data
// stays pending there until a seal succeeds; the sealer tries a slot once, so the failure is
// reported to the next caller that settles: a write that needs the slot, fsync, the commit
// timer's flush).
//
// Full stripes straight from the caller: a write that covers a whole stripe's worth of data from
// a 4 KiB-aligned file offset and a 4 KiB-aligned buffer (the io_uring transport's payload) is
// not copied: it gets a stripe of its own, its data chunks are written from the caller's buffer
// (WRITE_FIXED when that buffer is registered), parity is computed from it, and the stripe is
// committed sealed. The open stripe is left as it was. So that a file's writes commit in order,
// a write that finds its file's data pending in the open stripe fills that stripe first
// (on_member when aligned) — a long write is back on this path within a stripe — and one that
// finds it only in the stripe behind seals that stripe with its batch when it waits for its
// seal (typically the stripe this write just filled: one flush and one commit for both, the
// batch's extents over the older ones), or waits for the seal under way.
//
// Alignment: data is placed so that stripe_offset ≡ file_offset (mod 4 KiB), which keeps block
// aligned file reads block aligned on the members. Consecutive writes of one file are packed
// contiguously while their block has not reached the members.
//
// Threads: all methods are thread-safe. One mutex (mu_) serialises placement, flushes and
// synchronous seals (their member I/O included, an on-member block's write too, and a seal of
// the slot behind with a write's whole stripes); the seal of a full slot by the sealer (or,
// without one, by the write that filled it, after placing its data) runs without it, and so do
// the parity, checksums and member I/O of a write's own whole stripes: they are allocated and
// committed under mu_, computed and written with it released, several writes side by side. Such
// a batch holds the array's write floor below its stripes until it ends, and seal_after (a
// rebuild's start) and relocate (the cleaner's move of a file's pieces, which go pending) wait
// for the batches under way and keep new ones locked while they run.
// Readers take only a short lock on the pending maps, never waiting for member I/O — except a
// read of pending on-member blocks, which flushes them first. Allocating a stripe takes `stripe_reuse` exclusively: readers of committed
// data hold it shared, so a stripe cannot be reused under a reader that mapped its old contents.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <span>
#include <thread>
#include <utility>
#include <vector>

#include "base/log.h"
#include "base/result.h"
#include "meta/fs_meta.h"
#include "base/aligned_buffer.h"
#include "raid/array.h"

namespace raidfs::fs {

class IoContext;

struct WriterStats {
  uint64_t stripes_sealed = 0;
  uint64_t partial_flushes = 0;
  uint64_t bytes_copied = 0;  // file bytes copied into stripe buffers
  uint64_t bytes_direct = 0;  // file bytes written to the members from the caller's buffer
  uint64_t bytes_relocated = 0;  // of those two, the cleaner's (relocate)
  // Times a caller waited for the seal of the stripe behind (a write that needed the slot, a
  // flush, a truncate): how often the sealer falls behind the writes.
  uint64_t seal_waits = 0;
};

class StripeWriter {
 public:
  StripeWriter(Array& array, meta::FsMeta& meta, std::shared_mutex& stripe_reuse);
  // Stops the sealer (a seal in progress completes first).
  ~StripeWriter();
  StripeWriter(const StripeWriter&) = delete;
  StripeWriter& operator=(const StripeWriter&) = delete;

  // Pieces shorter than `bytes` are copied into the open stripe even when aligned (see
  // FilesystemOptions::copy_below); at least kBlockBytes. Before any write.
  void set_copy_below(uint32_t bytes) { copy_below_ = std::max<uint32_t>(bytes, kBlockBytes); }

  // Starts the sealer thread, which makes its own I/O context with `make_context` (an io_uring
  // belongs to the thread that made it). Once only; before it, full stripes are sealed by the
  // write that filled them.
  void start_sealer(std::function<Result<std::unique_ptr<IoContext>>()> make_context);

  // Accepts `data` for file `ino` at `offset`; seals and commits each stripe it fills (the last
  // one after placing all of `data`, without the writer's lock). Returns data.size(), or an
  // error — never a short count: the kernel's writeback takes a short reply as done and would
  // drop the rest without a word.
  //   ENOSPC, with nothing changed, when the free stripes cannot hold the data (checked first;
  //   a write that waits for a seal midway lets other writers in, so under concurrent writers
  //   an array filling up may refuse a later part of it instead).
  //   Any other error comes from sealing a stripe or writing one straight from `data`: a member
  //   write refused (ENOSPC or EROFS from the host under an image, EIO beyond the parity count)
  //   or the metadata commit. Then what this call placed before the failure stays as it is —
  //   stripes committed, bytes pending in a slot, retried by the next flush or seal —
  //   and the range holds old or new bytes, as after any failed write(2).
  // `set_times`: the write sets the file's mtime/ctime (to now, kept pending and committed with
  // the data).
  Result<size_t> write(IoContext& ctx, uint64_t ino, uint64_t offset, std::span<const uint8_t> data,
                       bool set_times = true);

  // The cleaner's write (fs/cleaner.h): `data` holds file bytes of `from`, an extent of `ino` it
  // read from a sealed stripe of `generation`. Those of its bytes that the file still maps to
  // that place — not overwritten, punched, truncated or pending since, and the stripe not
  // reused — are written again like any data (no times set; the stripes kept free for the
  // cleaner may be used). Returns the bytes placed; the old blocks die when they commit.
  Result<uint64_t> relocate(IoContext& ctx, uint64_t ino, const meta::Extent& from,
                            uint64_t generation, const uint8_t* data);
  // The cleaner's own stream: a stripe's worth of moved data, `data` (k * C bytes, 4 KiB-aligned;
  // bytes past `used` are zeroed here), assembled from `moves`, each an extent of a file read
  // from a sealed stripe and placed at `at` in `data` (at ≡ its stripe offset mod 4 KiB). Under
  // the writer's lock the parts each file still maps where they were read (not overwritten,
  // punched, truncated or pending since, the stripe not reused) are kept, as relocate() keeps
  // them; the rest stay in the new stripe as dead blocks. If anything is kept, a stripe (the
  // cleaner's reserve may be used) is written whole — data and parity from `data`, never the
  // open stripe, so moved (cold) data does not share stripes with fresh writes — flushed, and
  // committed sealed with the kept extents in one batch. Returns the bytes kept.
  struct Move {
    uint64_t ino = 0;
    meta::Extent from;
    uint64_t generation = 0;  // of the stripe `from` was read from
    uint32_t at = 0;          // where its bytes are in `data`
  };
  Result<uint64_t> relocate_stripe(IoContext& ctx, std::span<const Move> moves, uint8_t* data,
                                   uint32_t used);
  // Free stripes that write() leaves to the cleaner: a write that would need them is refused
  // with ENOSPC (the caller may wait for the cleaner and try again).
  void set_reserved_stripes(uint64_t n) { reserved_stripes_ = n; }

  // Commits the open stripe's pending data if `ino` (0: anyone) has some (flush_partial). The
  // commit is in the WAL, not yet synced: the caller syncs the metadata for durability.
  Result<void> flush(IoContext& ctx, uint64_t ino);
  // Seals the open stripe, if any (unmount).
  Result<void> seal(IoContext& ctx);
  // Runs `first` with no write in progress and none starting, then seals the open stripe: after
  // it, every stripe allocated from now on is written with the member states `first` set (a
  // rebuild's start: no stripe straddles the moment the rebuilding member joins the writes).
  Result<void> seal_after(IoContext& ctx, const std::function<Result<void>()>& first);

  // --- for readers and namespace operations --------------------------------------------------
  // What the file's pending data adds to its committed inode: where it ends (0 when it has
  // none), the time its last pending write set (0 when none did), and the 4 KiB blocks it holds
  // in the open stripe (counted whole: blocks it overwrites die only when it commits).
  struct PendingSummary {
    uint64_t end = 0;
    int64_t mtime_ns = 0;
    uint64_t blocks = 0;
  };
  PendingSummary pending_summary(uint64_t ino) const;
  // pending_summary(ino).end alone, without walking the extents.
  uint64_t pending_end(uint64_t ino) const;
  // A time set explicitly (utimens) replaces the pending one: called before the caller stores
  // it, it waits for a seal under way (which may have taken the pending time already).
  void clear_pending_mtime(uint64_t ino);
  // Copies the file's pending data overlapping [offset, offset + length) to dest (dest[0] is
  // file byte `offset`) and fills *covered with the file ranges it copied, sorted (the caller's
  // list: a read allocates nothing once it has grown). Pending blocks that went to the members
  // straight from their writer (on_member) are not in memory: when the range overlaps one,
  // *on_member is set and nothing is covered — the caller commits the file's pending data
  // (flush) and reads the range as committed.
  void read_pending(uint64_t ino, uint64_t offset, uint64_t length, uint8_t* dest,
                    bool* on_member, std::vector<std::pair<uint64_t, uint64_t>>* covered) const;
  // File ranges [begin, end) of pending data at or after `offset`, sorted (lseek).
  std::vector<std::pair<uint64_t, uint64_t>> pending_ranges(uint64_t ino, uint64_t offset) const;
  // Changes the committed size (truncate) with the pending data beyond it dropped first, both
  // under the writer's lock so that no seal commits dropped data in between.
  Result<meta::Inode> set_size(uint64_t ino, const meta::SetAttr& attr);
  // Unmaps [offset, offset + length): pending data dropped, committed extents punched.
  Result<void> punch_hole(uint64_t ino, uint64_t offset, uint64_t length);
  // Drops a removed file's pending data.
  void forget(uint64_t ino);

  // A seqlock over the pending maps for readers that combine them with the committed inode
  // (Filesystem::getattr): pending data changes hands — committed and then dropped from the maps,
  // or dropped by a truncate or punch whose commit follows — between an odd value and the next
  // even one. A reader that read the committed inode and then pending_summary() retries unless it saw
  // the same even value before and after: otherwise both reads may have missed the data. (One
  // that needs only a size covering every acknowledged write reads pending_end() first and the
  // inode after, and needs no retry: Filesystem::inode_for_read.)
  uint64_t pending_epoch() const { return pending_epoch_.load(); }
  // Sleeps while the epoch is still `odd` (a change of hands under way: a seal's metadata commit
  // can take a millisecond; spinning readers would take the CPU it needs).
  void wait_pending_change(uint64_t odd) const { pending_epoch_.wait(odd); }

  // Bytes the open stripe can still take (statfs).
  uint64_t open_free_bytes() const;

  // --- the two halves of a seal, shared with mount-time recovery (Filesystem) -----------------
  // The members' half: the parity of the n chunks in `chunks` (n * C bytes, data 0..k-1 as on
  // the members, zeros past the filled part) computed into its parity chunks and written, then
  // the members flushed. The metadata's half follows: commit sealed_record().
  // `extra_parity` (m * C bytes, or null): added to the computed parity — that of data not in
  // `chunks` (zeros there), already on the members.
  static Result<void> write_parity_and_flush(Array& array, IoChannel& channel, uint64_t stripe,
                                             uint8_t* chunks, const uint8_t* extra_parity = nullptr);
  // The same without the flush (the caller flushes once for more writes).
  static Result<void> write_parity(Array& array, IoChannel& channel, uint64_t stripe,
                                   uint8_t* chunks, const uint8_t* extra_parity = nullptr);
  // A sealed stripe's record: its parity lives on the members, so none in the metadata.
  static meta::Stripe sealed_record(uint64_t stripe, uint64_t generation, uint32_t filled_bytes,
                                    std::vector<uint32_t> block_crcs);
  WriterStats stats() const;

 private:
  using Lock = std::unique_lock<std::mutex>;
  struct Pending {  // file bytes [file_offset, file_offset + length) at stripe_offset
    uint32_t length = 0;
    uint32_t stripe_offset = 0;
    // Whole blocks written to the members straight from the writer's buffer: not in the slot's
    // buffer (zeros there), their parity in Slot::member_parity.
    bool on_member = false;
  };
  using PendingMap = std::map<uint64_t, Pending>;  // by file_offset, non-overlapping
  struct PendingFile {
    PendingMap extents;
    int64_t mtime_ns = 0;  // set by the last write that sets times; 0: none
  };

  struct OpenStripe {
    uint64_t id = 0;
    uint64_t generation = 0;
    uint32_t filled = 0;        // data bytes placed, from offset 0
    uint32_t written = 0;       // block-aligned prefix on the members (and committed)
    bool committed = false;     // a record exists (after the first flush_partial)
    std::vector<uint32_t> crcs; // versioned checksums of the written blocks
    // Per block of the stripe: placed on the members by its writer (and that block's checksum).
    std::vector<bool> on_member;
    std::vector<uint32_t> on_member_crcs;
    bool any_on_member = false;  // else member_parity is zeros and adds nothing
    uint64_t last_ino = 0;      // the last placement, to pack a file's consecutive writes
    uint64_t last_file_end = 0;
    uint32_t last_stripe_end = 0;
  };

  // A stripe buffer and the data placed in it (see the header comment: open or behind).
  struct Slot {
    Slot(size_t bytes, size_t parity_bytes) : buffer(bytes), member_parity(parity_bytes) {}
    std::optional<OpenStripe> stripe;  // allocated at the first placement
    AlignedBuffer buffer;  // n chunks: data 0..k-1 then parity 0..m-1, each C bytes
    // m chunks: the parity of the on_member blocks alone (the buffer holds zeros in their
    // place), accumulated as they are placed. Parity is linear: the stripe's parity is the
    // buffer's XOR this.
    AlignedBuffer member_parity;
    bool member_parity_dirty = false;  // not zeros: cleared at the next allocation
    std::map<uint64_t, PendingFile> pending;  // by inode; under pending_mu_
  };
  // The slot behind the open one: empty, full and waiting for its seal (handed to the sealer, or
  // to the write that filled it when there is none, or a seal failed), or being sealed with mu_
  // released.
  enum class Behind { kEmpty, kFull, kSealing };

  // write() under mu_, leaving `kept_free` free stripes alone. Sets *filled when the open slot
  // filled and moved behind: the caller hands it on (after_fill). The member I/O of its whole
  // stripes runs with the lock released unless a BatchPause is in force.
  Result<size_t> write_locked(IoContext& ctx, Lock& lock, uint64_t ino, uint64_t offset,
                              std::span<const uint8_t> data, bool set_times, uint64_t kept_free,
                              bool* filled);
  Result<void> allocate_locked();
  // Array::set_write_floor(generation), kept at or below the unlocked batches' stripes.
  void raise_write_floor(uint64_t generation);
  // Logs a failure to store file data (rate-limited) and passes the outcome on.
  Result<void> logged(Result<void> outcome);
  bool has_pending(uint64_t ino) const;  // in either slot; ino 0: any file
  // The zero-copy path above: `count` (≤ direct_batch_) whole stripes of `data_bytes_` each,
  // consecutive in the file and in `src`.
  // Allocates `count` stripes, writes `data` (4 KiB-aligned: `count` whole stripes' data, one
  // after the other) and their parity to them in one submission, flushes once, and commits
  // `files` with their sealed records in one batch — an extent's stripe_id names the stripe by
  // its index in the batch (0 .. count-1) and is set to the allocated id. The stripes are
  // released again if any of that fails: nothing of the batch is committed.
  // `behind` (the slot behind, full, not being sealed; or null): sealed with the batch — its
  // remaining blocks and parity written with the batch's stripes, the one flush, and its files'
  // extents in the one commit, the batch's extents over them. When that fails the slot stays
  // full with its data pending (as after a failed seal) and the batch's stripes are released.
  // `lock` (the caller's hold on mu_, or null): released for the parity, checksums and member
  // I/O when there is no slot behind to seal and no seal_after waits, taken again to commit.
  Result<void> commit_whole_stripes_locked(IoContext& ctx, Lock* lock, const uint8_t* data,
                                           uint32_t count, std::vector<meta::FileExtents> files,
                                           Slot* behind);
  Result<void> write_full_stripes_locked(IoContext& ctx, Lock* lock, uint64_t ino,
                                         uint64_t file_offset,
                                         const uint8_t* src, uint32_t count, int64_t mtime_ns,
                                         Slot* behind);
  // Whole blocks [pos, pos + n) of the open stripe written to the members from `src` (the
  // writer's buffer, 4 KiB-aligned), checksummed, their parity added to member_parity and the
  // blocks marked on_member. Nothing is marked when the member write fails.
  Result<void> place_on_members(IoContext& ctx, Slot& slot, uint32_t pos, const uint8_t* src,
                                uint32_t n);

  // --- the slots (mu_ held) ------------------------------------------------------------------
  Slot& open_slot() { return slots_[open_slot_]; }
  Slot& behind_slot() { return slots_[1 - open_slot_]; }
  // Makes the slot behind empty: waits for the seal in flight, or seals a full slot here.
  // The lock may be released while waiting.
  Result<void> settle_behind(IoContext& ctx, Lock& lock);
  // Moves the open slot behind (settling the one there first) and says so; false when no stripe
  // is open, or when another writer or the sealer moved it while this one waited.
  Result<bool> rotate(IoContext& ctx, Lock& lock);
  void move_open_behind();  // the open slot becomes the (empty) slot behind, full
  // Whether the file has data pending in that slot. Takes pending_mu_.
  bool pending_in(const Slot& slot, uint64_t ino) const;
  // Waits while the slot behind is being sealed (it may stay full: its seal failed).
  void wait_behind(Lock& lock);
  // Seals the slot behind, if full; with the lock released meanwhile when `release`.
  Result<void> seal_behind(IoContext& ctx, Lock& lock, bool release);
  // The slot behind was sealed: it is empty again (and the write floor moves up).
  void behind_emptied();
  // A write filled the open slot and moved it behind: hands it to the sealer, or seals it here
  // (lock released) when there is none.
  Result<void> after_fill(IoContext& ctx, Lock& lock);
  // The sealer's loop: seals each slot handed to it, once.
  void run_sealer(const std::function<Result<std::unique_ptr<IoContext>>()>& make_context);
  // The open stripe sealed now (unmount, fsync of everything, a rebuild's start).
  Result<void> seal_open(IoContext& ctx, Lock& lock);

  // --- one slot's stripe (the caller owns the slot: mu_ held, or the slot being sealed) ------
  // Writes blocks [written, filled rounded up) to the members and checksums them (those placed
  // on_member are there already: their checksums are taken as computed then).
  Result<void> write_new_blocks(IoContext& ctx, Slot& slot);
  // Commits the slot's pending extents with `records` (its own among them) and `newer`'s extents
  // over them (overlay: data written after the slot's, a batch's whole stripes); on success
  // clears them. Called after the members' flush: the extents and times are taken then, so a
  // time set meanwhile (utimens) is the one stored.
  Result<void> commit_slot(Slot& slot, std::span<const meta::Stripe> records,
                           std::vector<meta::FileExtents> newer = {});
  // The slot's pending extents, a FileExtents per file, for a commit. Takes pending_mu_.
  std::vector<meta::FileExtents> slot_files(const Slot& slot) const;
  // Adds `newer` to `files`: a file already there keeps only its extents' parts outside
  // newer's, and takes newer's time (one commit may name a file once; the newer data wins).
  static void overlay(std::vector<meta::FileExtents>& files, meta::FileExtents newer);
  // Member writes, parity, flush and commit of the slot's stripe, sealed; or its release when
  // nothing of it was ever committed or is pending. Leaves slot.stripe for the caller to reset.
  Result<void> seal_slot(IoContext& ctx, Slot& slot);
  // The members' half of a seal without its flush: the slot's remaining blocks and its parity.
  // Returns the record to commit once the members are flushed.
  Result<meta::Stripe> write_sealing(IoContext& ctx, Slot& slot);
  Result<void> flush_partial_locked(IoContext& ctx);
  // The parity of rows [first_row, first_row + row_count) into the buffer's parity chunks: the
  // buffer's data encoded, member_parity added.
  void parity_rows(Slot& slot, uint32_t first_row, uint32_t row_count);
  static void carve(PendingMap& map, uint64_t begin, uint64_t end);
  // The parts of `from` (read from a sealed stripe of `generation`) that file `ino` still maps
  // there and has nothing pending over, as file ranges. Under mu_, the slot behind settled.
  Result<std::vector<std::pair<uint64_t, uint64_t>>> still_mapped_locked(
      uint64_t ino, const meta::Extent& from, uint64_t generation);

  Array& array_;
  meta::FsMeta& meta_;
  std::shared_mutex& stripe_reuse_;
  const uint32_t chunk_bytes_;
  const uint32_t data_bytes_;  // k * C
  uint32_t copy_below_ = 64 * 1024;  // set_copy_below

  std::mutex mu_;               // placement, flush, seal; taken before pending_mu_
  std::condition_variable behind_cv_;  // behind_ left kSealing
  std::array<Slot, 2> slots_;
  unsigned open_slot_ = 0;      // changed under mu_ and pending_mu_: readers hold either
  Behind behind_ = Behind::kEmpty;  // under mu_
  uint64_t rotations_ = 0;      // under mu_: open slots moved behind so far
  // Whole stripes one direct write commits together (one flush and one commit for them all),
  // and the parity of that many stripes written from the caller (m chunks each).
  const uint32_t direct_batch_;
  // Batches of whole stripes being written with mu_ released, by their lowest generation (the
  // write floor stays at or below it); under mu_. seal_after and relocate count themselves in
  // batch_pauses_ while they wait for them to end (batches_cv_) and run: no batch releases the
  // lock then.
  std::multiset<uint64_t> unlocked_batches_;
  unsigned batch_pauses_ = 0;
  std::condition_variable batches_cv_;
  // For its lifetime (mu_ held by the caller, released only while it waits in the constructor):
  // no batch is under way with the lock released, and new ones keep it.
  struct BatchPause {
    BatchPause(StripeWriter& writer, Lock& lock);
    ~BatchPause() { --writer_.batch_pauses_; }
    BatchPause(const BatchPause&) = delete;
    BatchPause& operator=(const BatchPause&) = delete;
    StripeWriter& writer_;
  };
  mutable std::mutex pending_mu_;
  WriterStats stats_;           // under pending_mu_
  std::atomic<uint64_t> open_free_bytes_{0};  // statfs reads it without waiting for a seal
  std::atomic<uint64_t> reserved_stripes_{0};
  std::atomic<uint64_t> seal_waits_{0};  // WriterStats::seal_waits
  LogRateLimit failure_log_{5};
  // The sealer (under mu_): running, asked to stop, and whether the slot behind waits for it.
  std::condition_variable sealer_cv_;
  bool sealer_running_ = false;
  bool sealer_stop_ = false;
  bool sealer_owed_ = false;
  unsigned rotation_waiters_ = 0;  // writers in rotate(), waiting for the slot behind
  std::thread sealer_;  // started last, joined first
  std::atomic<uint64_t> pending_epoch_{0};  // see pending_epoch()
  // Makes pending_epoch_ odd for its lifetime. One change of hands at a time: under mu_, or by
  // the seal in flight, which every other changer settles first.
  struct PendingChange {
    explicit PendingChange(std::atomic<uint64_t>& epoch) : epoch_(epoch) { ++epoch_; }
    ~PendingChange() {
      ++epoch_;
      epoch_.notify_all();
    }
    std::atomic<uint64_t>& epoch_;
  };
};

}  // namespace raidfs::fs
