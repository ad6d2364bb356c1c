// Array: n member devices that together hold stripes of data and parity.
//
// An Array is opened from member paths; it checks that their superblocks agree (same array UUID,
// same geometry, each index once), knows which members are active, missing or failed, and reads
// and writes stripes through an IoChannel, the per-thread I/O context (one io_uring each).
//
//   Array::format(paths, options)      writes fresh superblocks (mkfs)
//   Array::open(paths, options)        -> Array, degraded if up to m members are unavailable
//   array.write_stripe(channel, s, buf)  data + computed parity of stripe s, one submission
//   array.write_data / write_parity    parts of a stripe (a partial stripe's new blocks; a seal)
//   array.write_stripes(channel, ws)   whole stripes, data and parity given, one submission
//   array.read(channel, request)       a range of a stripe's data, verified and, where a block
//                                      is unreadable or fails its checksum, reconstructed (or
//                                      several ranges, with their member reads in one batch)
//
// What the array does not know: which stripes are free, what files are, or what is committed —
// that is the metadata's business. The array never rewrites anything on its own except
// superblocks (member state changes).
//
// Failure model: a member whose I/O returns an error is marked failed — in memory at once, and in
// the superblocks of the remaining members — and is not used again until it is replaced. While at
// most m members are unavailable every read still returns the right bytes; beyond that, reads and
// writes fail with EIO and a message naming the members.
//
// Threads: open/format on one thread; afterwards any number of threads may call read/write/flush
// concurrently, each with its own IoChannel. mark_failed and member_state are thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "base/aligned_buffer.h"
#include "raid/geometry.h"
#include "raid/member_fds.h"
#include "raid/member_io.h"
#include "raid/meta_region.h"
#include "raid/parity_codec.h"
#include "raid/superblock.h"

namespace raidfs {

class Array;
struct ScrubRequest;     // raid/array_scrub.h
struct ScrubReport;
struct SuperblockIssue;

// The data area starts 1 MiB into each member (room for the superblock and future use); a member
// must hold at least this many stripes.
inline constexpr uint64_t kDataOffsetBytes = 1u << 20;
inline constexpr uint64_t kStripesMin = 16;

struct FormatOptions {
  uint32_t parity_count = 2;
  uint32_t chunk_bytes = kChunkBytesDefault;
  std::string label;
  std::string metadata_dir;       // the metadata lives in this directory ...
  std::optional<ArrayUuid> uuid;  // a fresh random one if unset
  bool force = false;             // overwrite members that already hold a raidfs superblock
  // ... or, when this is set, in a region of this many bytes on each member (a multiple of
  // 1 MiB; raid/meta_region.h), and metadata_dir is empty.
  uint64_t meta_region_bytes = 0;
};

struct OpenOptions {
  // kBySuperblock: paths may come in any order and some may be absent; each goes where its
  // superblock says. kAsGiven: paths[i] must be member i (a mismatch is an error).
  enum class Order { kBySuperblock, kAsGiven } order = Order::kBySuperblock;
  std::optional<ArrayUuid> expected_uuid;  // refuse members of any other array
  // Whether open() records a member it finds missing in the others' superblocks (so that it
  // stays out until rebuilt, even if it comes back). False for a read-only open (ro mount,
  // fsck -n): nothing is written, the member is left out of this open only.
  bool record_states = true;
  // The paths are the array's own member list, in member order (the metadata directory's
  // `members` file), not paths a user named: one that holds no raidfs superblock at all (a
  // blank, zeroed or replaced disk) is that member missing, not an error.
  bool from_member_list = false;
};

// Per-thread I/O context: a MemberIo plus scratch space for reconstruction, both made once.
class IoChannel {
 public:
  // `io` must outlive the channel and be used only by the channel's thread.
  IoChannel(const Array& array, MemberIo& io);
  // Drops the registration made through this channel (its scratch is freed with it).
  ~IoChannel();
  IoChannel(const IoChannel&) = delete;
  IoChannel& operator=(const IoChannel&) = delete;
  MemberIo& io() { return io_; }
  // Registers the caller's buffers (plus the channel's scratch) as fixed buffers of the MemberIo,
  // replacing its earlier registration. They must stay allocated while the channel lives.
  Result<void> register_buffers(std::span<const std::span<uint8_t>> ranges);

 private:
  friend class Array;
  MemberIo& io_;
  bool registered_ = false;
  AlignedBuffer scratch_;             // one stripe: n chunks, slot-major
  std::vector<IoRequest> batch_;      // reused request list
  std::vector<uint8_t> block_flags_;  // reused per-block state of a read
  // Where each request of a read keeps its flags and its requests in batch_.
  struct ReadSpan {
    uint32_t first_flag, batch_begin, batch_end;
  };
  std::vector<ReadSpan> read_spans_;
};

// Which version of a stripe a read expects: the generation, the versioned checksum of each data
// block, and how much of the stripe was ever written. Blocks at or past `filled_blocks` count as
// zeros in the parity and read as zeros.
// One 4 KiB row of the parity of a stripe not sealed yet, where the metadata keeps it: parity j
// of row `row` at bytes + j * 4 KiB.
struct ParityRowRef {
  uint32_t row = 0;
  const uint8_t* bytes = nullptr;
};

struct StripeRef {
  uint64_t stripe = 0;
  uint64_t generation = 0;
  // One per data block: every block below filled_blocks at least (those past it are never
  // checked), at most k * C / 4 KiB. Empty: do not verify.
  std::span<const uint32_t> block_crcs;
  uint32_t filled_blocks = UINT32_MAX;
  // For a stripe whose parity is not on the members yet (open stripe), where it is instead:
  // `parity`, its parity chunks (m * C bytes, parity j at j * C); or, with `parity_in_rows`,
  // `parity_rows`, the rows that hold data in row order (a row not listed has zero parity) —
  // copied only by a read that must rebuild. Neither: read parity from the members.
  const uint8_t* parity = nullptr;
  std::span<const ParityRowRef> parity_rows = {};
  bool parity_in_rows = false;
};

// One whole stripe for Array::write_stripes: its k data chunks (data_bytes, chunk i at i * C) and
// m parity chunks (parity j at j * C), both 4 KiB-aligned.
struct StripeWrite {
  uint64_t stripe = 0;
  const uint8_t* data = nullptr;
  const uint8_t* parity = nullptr;
};

struct ReadRequest {
  StripeRef ref;
  uint64_t offset = 0;     // into the stripe's data, a multiple of 4 KiB
  uint32_t length = 0;     // a multiple of 4 KiB, within the stripe
  uint8_t* dest = nullptr; // 4 KiB-aligned
  bool force_reconstruct = false;  // rebuild every block from the other members (scrub, tests)
};

// Errors seen on one member since the array was opened, as `zpool status` counts them: I/O
// requests that failed (reads; writes and flushes), and blocks read from it that failed their
// checksum.
struct MemberErrors {
  uint64_t read = 0;
  uint64_t write = 0;
  uint64_t checksum = 0;
};

struct ReadReport {
  uint32_t reconstructed_blocks = 0;
  // Blocks of the request (index within the stripe's data) that were read but failed their
  // checksum and were rebuilt: their verified content is in request.dest, for self-heal by the
  // caller.
  std::vector<uint32_t> corrupt_blocks;
  // Blocks outside the request, in the rows it touched, found failing their checksum on the way
  // (while rebuilding the request's own blocks). Their content is not returned: a read of them
  // (or a scrub) rebuilds them and hands them to whoever heals.
  std::vector<uint32_t> corrupt_neighbours;
};

class Array {
 public:
  // Writes a superblock (both copies) on every member. Errors, each naming the member:
  // EINVAL bad geometry, member listed twice, label/metadata path too long; ENOSPC member too
  // small; EEXIST member already holds raidfs or another known signature (a filesystem, a
  // partition table, an md or LVM member; without force); the open/write errno otherwise.
  static Result<Superblock> format(std::span<const std::string> paths, const FormatOptions& options);

  // Opens an array. Errors: EINVAL member of another array / listed twice / wrong position /
  // shrunk; EIO or EINVAL unreadable superblock (both copies); EBUSY member in use by another
  // process; EIO members disagree on the geometry; ENXIO more than m members unavailable.
  static Result<std::unique_ptr<Array>> open(std::span<const std::string> paths,
                                             const OpenOptions& options = {});
  ~Array();
  Array(const Array&) = delete;
  Array& operator=(const Array&) = delete;

  const Geometry& geometry() const { return geometry_; }
  const ParityCodec& codec() const { return codec_; }
  const ArrayUuid& uuid() const { return superblock_.array_uuid; }
  Superblock superblock() const {
    std::lock_guard lock(superblock_mutex_);
    return superblock_;
  }
  MemberState member_state(uint32_t member) const { return states_[member].load(); }
  std::string member_path(uint32_t member) const {
    std::lock_guard lock(superblock_mutex_);
    return member < paths_.size() ? paths_[member] : std::string();
  }
  // Whether the member's device was found and opened (a missing one has none).
  bool has_device(uint32_t member) const { return fds_[member] >= 0; }
  uint32_t unavailable_count() const;
  // Things worth telling the user (a backup superblock used, a member missing or failed, a
  // member refusing writes ...).
  std::vector<std::string> warnings() const;
  MemberErrors member_errors(uint32_t member) const;

  // A MemberIo on a fresh io_uring over this array's members, for the calling thread.
  Result<std::unique_ptr<MemberIo>> make_member_io(unsigned queue_depth = 128) const;
  // The metadata region's MemberIo (raid/sync_member_io.h): system calls on buffered descriptors
  // of the members (their page cache takes the region's small writes; a flush makes them
  // durable), for the read_meta/write_meta family. Any thread may use it.
  std::unique_ptr<MemberIo> make_region_io() const;

  // Computes the parity of stripe `stripe` from the k data chunks in `buffer` (n * C bytes,
  // 4 KiB-aligned, slot-major: data chunk i at i * C, parity j at (k + j) * C) into its parity
  // chunks, and writes all n chunks in one submission; then flushes the members if `flush`.
  // Members that are unavailable are skipped. Errors: EIO if more than m members are unavailable
  // after the write (message names them); EINVAL for a stripe past the end.
  Result<void> write_stripe(IoChannel& channel, uint64_t stripe, uint8_t* buffer, bool flush);
  // Writes `length` bytes of data at `offset` of the stripe's data (both multiples of 4 KiB).
  Result<void> write_data(IoChannel& channel, uint64_t stripe, uint64_t offset, uint32_t length,
                          const uint8_t* source);
  // Writes every chunk of each whole stripe of `writes` (data and parity computed by the caller;
  // distinct stripes) in one submission, so that a long write's stripes reach the members
  // together. No flush. Errors: EINVAL (nothing written) if any stripe is past the end or a
  // buffer misaligned; EIO beyond m failed members.
  Result<void> write_stripes(IoChannel& channel, std::span<const StripeWrite> writes);
  // Writes the stripe's m parity chunks from `parity` (m * C bytes, parity j at j * C).
  Result<void> write_parity(IoChannel& channel, uint64_t stripe, const uint8_t* parity);
  // Writes parity chunk j alone (C bytes from `chunk`): a rebuild's copy of one member's chunk.
  Result<void> write_parity_chunk(IoChannel& channel, uint64_t stripe, uint32_t j, const uint8_t* chunk);
  // Flushes the volatile cache (fdatasync) of every active member that has one — of those in
  // `members` (a bit per member index) — ; members that report a write-through cache are
  // skipped. Errors: EIO beyond m failures.
  Result<void> flush(IoChannel& channel, uint64_t members = UINT64_MAX);

  // Tells the members that stripes [first_stripe, first_stripe + count) hold nothing: a
  // BLKDISCARD of their chunks on a block device, a punched hole (the size kept) in an image
  // file, so that an SSD or the filesystem under an image gets the space back. Only for stripes
  // that are free for good (their freeing durable, none reading or writing them): they may read
  // back as zeros or as anything. Members without a device or not taking writes are skipped.
  // Returns the member bytes discarded. EINVAL past the last stripe; EOPNOTSUPP (or the errno)
  // when a member refused, naming the first — the others are still discarded.
  Result<uint64_t> discard(uint64_t first_stripe, uint64_t count);

  // Reads a range of one stripe's data into request.dest, verifying each block against
  // ref.block_crcs when given, rebuilding from parity what is unreadable or corrupt. Errors:
  // EINVAL misaligned or out-of-range request; EIO when a block cannot be rebuilt (more than m
  // chunks of its row lost or corrupt) — the message names the stripe and block.
  Result<ReadReport> read(IoChannel& channel, const ReadRequest& request);
  // Several such reads (of any stripes, destinations not overlapping) whose member reads go out
  // in one batch: a read spanning stripes waits for the members once, not once per stripe.
  // reports[i] is requests[i]'s (as many as requests). The first request that cannot be served
  // fails the call; the reports of those before it are filled.
  Result<void> read(IoChannel& channel, std::span<const ReadRequest> requests,
                    std::span<ReadReport> reports);

  // Verifies one whole stripe — every filled block's checksum, the parity against the data — and
  // with request.repair rewrites rebuilt blocks and wrong member parity (raid/array_scrub.h).
  // `chunks`: n * C bytes, 4 KiB-aligned; on return the verified data (slot-major, zeros past
  // filled and for lost blocks) and the parity computed from it. EINVAL bad request; EIO when
  // the stripe cannot be read at all (more members unavailable than parity covers).
  Result<ScrubReport> scrub_stripe(IoChannel& channel, const ScrubRequest& request, uint8_t* chunks);
  // Compares both superblock copies of every present active member with the array's newest
  // superblock; with `repair`, rewrites the members whose copies differ (raid/array_scrub.h).
  std::vector<SuperblockIssue> check_superblocks(bool repair);

  // Marks a member failed (in memory, then in the other members' superblocks — unless that would
  // leave more than m unavailable: then the array stops in memory only, and the superblocks keep
  // the last state it could serve in). Idempotent; ignores an index out of range.
  void mark_failed(uint32_t member, const std::string& reason);
  // Whether the member states in memory are recorded on enough superblocks (see
  // persist_states_locked): writes are refused with EIO while they are not.
  bool states_recorded() const { return states_recorded_.load(); }

  // --- what a member that left still holds -------------------------------------------------
  // The writer says below which generation no stripe takes new data any more (its oldest open
  // stripe's, or the next it will hand out); never lowered. Superblock writes record it, so a
  // member found missing at an open is known to hold every stripe below it (Superblock).
  void set_write_floor(uint64_t generation);
  uint64_t write_floor() const { return write_floor_.load(); }
  // For a missing member: stripes of a lower generation were on it, as they are now, when it
  // left — a rebuild skips them. 0 for any other member (a failed one is not trusted at all).
  uint64_t member_since(uint32_t member) const {
    return member_state(member) == MemberState::kMissing ? member_since_[member].load() : 0;
  }
  // A clean unmount, after the last seal: the superblocks are written twice, so that a copy of
  // a member taken during this mount is detected as stale at the next (Superblock's comment).
  void record_clean_unmount();

  // --- the metadata region of a self-contained array (raid/meta_region.h) --------------------
  // Absent for an array whose metadata lives in a directory. The region's blocks are bytes to
  // the array: their format, and which copy is right, are the metadata's business
  // (meta/region_fs.h). A run of blocks passed to these calls lies within one region row
  // (MetaRegion::run_end); buffers are 4 KiB-aligned.
  const std::optional<MetaRegion>& meta_region() const { return meta_region_; }
  // Whether copy `copy` of `block` may be read: its member is active, or being rebuilt and its
  // region copies restored already (set_meta_restored).
  bool meta_copy_readable(uint64_t block, uint32_t copy) const;
  // Reads copy `copy` of blocks [block, block + count). ENXIO when that copy cannot be read (see
  // meta_copy_readable); EIO (the member is failed) when its device fails the read; EINVAL out
  // of range or no region.
  Result<void> read_meta(IoChannel& channel, uint64_t block, uint32_t count, uint32_t copy,
                         uint8_t* dest);
  // Writes the blocks to every copy whose member takes writes (active or being rebuilt), in one
  // submission. EIO when more members are unavailable than parity covers afterwards (then a copy
  // may be missing), as for data.
  Result<void> write_meta(IoChannel& channel, uint64_t block, uint32_t count, const uint8_t* source);
  // Writes one copy alone (healing a bad copy, restoring a rebuilt member's). ENXIO when its
  // member takes no writes.
  Result<void> write_meta_copy(IoChannel& channel, uint64_t block, uint32_t count, uint32_t copy,
                               const uint8_t* source);
  // Makes the region writes so far durable on the members in `members` that take writes. Unlike
  // flush(), a member that reports a write-through cache is flushed too: the region is written
  // through the page cache (make_region_io), which only an fdatasync sends to the device.
  // Errors as flush().
  Result<void> flush_meta(IoChannel& channel, uint64_t members = UINT64_MAX);
  // A rebuilt or replacing member holds every region block again (the metadata restored them):
  // its copies may be read from now on.
  void set_meta_restored(uint32_t member) { meta_restored_[member] = true; }

  // --- rebuilding a member (raidfs rebuild / replace; the copying is fs/rebuilder's) ----------
  // Puts the device at `path` under index `member` (raidfs replace): checked as mkfs checks a
  // member (big enough for the array's stripes; holding no raidfs superblock or other signature
  // unless `force`; not in use), given a fresh superblock with a new device
  // UUID, and the member becomes kRebuilding, read for nothing until begin_rebuild gives it
  // bounds. The old device is let go: an open later finds it replaced and leaves it out. Every
  // MemberIo moves to the new device at its next batch; the caller makes sure none is reading
  // the member's old chunks or writing new stripes meanwhile (fs/rebuilder.h). Errors: EINVAL
  // no such member; EBUSY another member is being rebuilt, or taking the member out would leave
  // more members unavailable than parity covers, or the device is in use (one of the array's
  // own, say); ENOSPC too small; EEXIST a signature; the open/write errno otherwise. Nothing
  // changes on an error.
  Result<void> replace_member(uint32_t member, const std::string& path, bool force);
  // A replaced member that was active keeps its old device open as a read source until the
  // rebuild ends (as btrfs replace reads the device it replaces): the member's chunk of a stripe
  // can be copied from it rather than rebuilt from the k others. Not verified here — the caller
  // checks the blocks against their checksums. ENXIO when there is no source.
  bool has_replace_source() const { return fds_[fds_.count] >= 0; }
  Result<void> read_replace_source(IoChannel& channel, uint64_t stripe, uint8_t* dest);
  // Takes the source out of the table (finish_rebuild does it too); its descriptor is closed with
  // the array, since another thread may be registering the number it just read. Only the thread
  // that reads the source may call it.
  void drop_replace_source();

  // The member becomes kRebuilding, recorded in the superblocks: written like an active member
  // from now on, but read only for the stripes already on it — those below `cursor` (rebuilt)
  // and those with a generation ≥ `from_generation` (written full width since the rebuild began);
  // elsewhere it counts as missing and its chunks are reconstructed. A member already
  // kRebuilding (a rebuild resumed at mount) takes the new bounds. EINVAL no such member, or one
  // that is active; ENXIO it has no device; EBUSY another member is being rebuilt.
  Result<void> begin_rebuild(uint32_t member, uint64_t from_generation, uint64_t cursor);
  // Stripes below `cursor` are rebuilt onto the member and flushed there.
  void advance_rebuild(uint32_t member, uint64_t cursor);
  // The member is whole again: kActive, recorded in the superblocks. EINVAL not rebuilding.
  Result<void> finish_rebuild(uint32_t member);
  uint64_t rebuild_cursor(uint32_t member) const { return rebuild_cursor_[member].load(); }
  // Whether a read of `stripe` (generation `generation`) may use the member's chunk.
  bool readable(uint32_t member, uint64_t stripe, uint64_t generation) const {
    const MemberState s = member_state(member);
    if (s == MemberState::kActive) return true;
    return s == MemberState::kRebuilding && (stripe < rebuild_cursor_[member].load() ||
                                             generation >= rebuild_from_generation_[member].load());
  }

 private:
  Array(Superblock sb, Geometry g, ParityCodec c) : superblock_(std::move(sb)), geometry_(g), codec_(std::move(c)) {
    // Until begin_rebuild says otherwise, a member found kRebuilding is read for nothing.
    for (auto& from : rebuild_from_generation_) from = UINT64_MAX;
  }

  bool usable(uint32_t member) const { return member_state(member) == MemberState::kActive; }
  // Takes writes: active, or being rebuilt.
  bool writable(uint32_t member) const {
    const MemberState s = member_state(member);
    return s == MemberState::kActive || s == MemberState::kRebuilding;
  }
  // EIO naming the unavailable members if more than m are; `what` (and the stripe, when given)
  // leads the message, which is built only then: every read and write asks.
  Result<void> check_quorum(std::string_view what, std::optional<uint64_t> stripe = {}) const;
  // Runs channel.batch_. Members whose requests failed with a device error are marked failed;
  // any other error (ENOSPC, EINVAL, a spent ring ...) is returned and fails no member.
  Result<void> execute(IoChannel& channel);
  // Returns once every member failure seen so far is recorded on enough superblocks, retrying
  // the record through the channel if an earlier attempt fell short; EIO if it still does. A
  // write that skipped a failed member is acknowledged only after this: no later open may trust
  // the member that missed it.
  Result<void> settle_states(IoChannel& channel);
  // flush() and flush_meta(): `page_cache` flushes write-through members too.
  Result<void> flush_members(IoChannel& channel, uint64_t members, bool page_cache);
  void fail_member(uint32_t member, const std::string& reason, MemberIo* io);
  // `flags`: the request's per-block state (BlockFlag in array.cc), one per block of it.
  Result<void> reconstruct_rows(IoChannel& channel, const ReadRequest& request,
                                std::span<uint8_t> flags, ReadReport& report);
  Result<void> rebuild_each(const ReadRequest& request, uint32_t row,
                            std::span<const uint32_t> already_lost, uint8_t* const* ptrs,
                            std::span<uint8_t> flags, ReadReport& report);
  // Writes the member states in memory to the superblocks of the active members (primary copies,
  // a flush, backup copies, a flush: a torn update leaves one good copy), through `io` when given
  // (the caller's member I/O), else with plain synchronous writes (open). A member whose
  // superblock write fails with a device error is failed as well, and the round repeats for the
  // others. Sets states_recorded_: true when at least m+1 members — every active one if fewer
  // remain — hold the new states, so that any later open with quorum finds one of them.
  // Requires superblock_mutex_.
  void persist_states_locked(MemberIo* io);
  void drop_replace_source_locked();
  // EINVAL unless the array has a region and [block, block + count) lies within one of its rows.
  Result<void> check_meta_run(uint64_t block, uint32_t count) const;

  Superblock superblock_;  // the newest copy; member_index is meaningless here
  Geometry geometry_;
  ParityCodec codec_;
  MemberFds fds_;          // -1 where a member is absent; changed only by replace_member
  // The same devices opened again without O_DIRECT, for the metadata region (make_region_io);
  // kept in step with fds_ (a replace dup2s the new device onto the same number).
  MemberFds region_fds_;
  std::vector<int> retired_fds_;  // replace sources no longer in the table; closed with the array
  std::vector<std::string> paths_;      // under superblock_mutex_ once open (a replace changes one)
  // Each member's size as formatted (locates its backup), and whether it needs a flush for
  // durability; a replace changes them under superblock_mutex_.
  std::array<std::atomic<uint64_t>, kMembersMax> member_bytes_{};
  std::array<std::atomic<bool>, kMembersMax> volatile_cache_{};
  std::array<std::atomic<MemberState>, kMembersMax> states_{};
  struct ErrorCounters {
    std::atomic<uint64_t> read{0}, write{0}, checksum{0};
  };
  std::array<ErrorCounters, kMembersMax> errors_{};
  // Guards superblock_.sequence/member_states and warnings_; taken only off the I/O fast path.
  mutable std::mutex superblock_mutex_;
  std::vector<std::string> warnings_;
  std::vector<std::pair<uint32_t, int>> refusals_warned_;  // (member, errno) already in warnings_
  std::atomic<bool> states_recorded_{true};
  std::array<std::atomic<uint64_t>, kMembersMax> member_since_{};
  std::atomic<uint64_t> write_floor_{0};
  uint64_t complete_sequence_ = 0;  // the last superblock sequence every target took; under the mutex
  std::array<std::atomic<uint64_t>, kMembersMax> rebuild_cursor_{};
  std::array<std::atomic<uint64_t>, kMembersMax> rebuild_from_generation_{};
  std::optional<MetaRegion> meta_region_;
  std::array<std::atomic<bool>, kMembersMax> meta_restored_{};  // for a kRebuilding member
};

}  // namespace raidfs
