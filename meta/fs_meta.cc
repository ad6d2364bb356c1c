// FsMeta: opening (root creation, orphan recovery, free-stripe map), the Txn buffer, reads, and
// stripe allocation. Namespace operations are in namespace_ops.cc, data operations in data_ops.cc.
#include "meta/fs_meta.h"

#include <time.h>

#include <algorithm>

#include "base/file_clock.h"
#include "meta/keys.h"
#include "meta/parity_rows.h"
#include "meta/txn.h"

namespace raidfs::meta {

// --- helpers -------------------------------------------------------------------------------------
int64_t now_ns() { return file_time_now_ns(); }

Result<void> check_name(std::string_view name) {
  if (name.empty() || name == "." || name == "..")
    return fail(EINVAL, "invalid name \"" + std::string(name) + "\"");
  if (name.size() > kNameBytesMax) return fail(ENAMETOOLONG, "name longer than 255 bytes");
  if (name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos)
    return fail(EINVAL, "name contains '/' or NUL");
  return {};
}

// --- Txn -----------------------------------------------------------------------------------------
namespace detail {

Result<std::optional<std::string>> Txn::get(Family f, std::string_view key) {
  auto it = overlay_.find(Key{f, std::string(key)});
  if (it != overlay_.end()) return it->second;
  return store_.get(f, key);
}

void Txn::put(Family f, std::string key, std::string value) {
  overlay_[Key{f, std::move(key)}] = std::move(value);
}

void Txn::del(Family f, std::string key) { overlay_[Key{f, std::move(key)}] = std::nullopt; }

WriteSet Txn::take() {
  WriteSet set;
  // Range deletes first: a put of the same batch is newer and stays.
  for (uint64_t id : freed_indexes_)
    set.del_range(Family::kExtentsByStripe, u64_key(id), u64_key(id + 1));
  freed_indexes_.clear();
  for (uint64_t id : freed_parity_) {
    auto [first, end] = parity_rows_range(id);
    set.del_range(Family::kParityRows, std::move(first), std::move(end));
  }
  freed_parity_.clear();
  for (auto& [key, value] : overlay_) {
    if (value)
      set.put(key.first, std::move(key.second), std::move(*value));
    else
      set.del(key.first, std::move(key.second));
  }
  overlay_.clear();
  return set;
}

Result<std::optional<Inode>> Txn::find_inode(uint64_t ino) {
  RAIDFS_TRY(auto v, get(Family::kInodes, inode_key(ino)));
  if (!v) return std::optional<Inode>();
  RAIDFS_TRY(Inode inode, decode_inode(ino, *v));
  return std::optional<Inode>(std::move(inode));
}

Result<Inode> Txn::load_inode(uint64_t ino) {
  RAIDFS_TRY(auto inode, find_inode(ino));
  if (!inode) return fail(ENOENT, "no inode " + std::to_string(ino));
  return std::move(*inode);
}

Result<Inode> Txn::load_dir(uint64_t ino) {
  RAIDFS_TRY(Inode inode, load_inode(ino));
  if (!is_dir(inode)) return fail(ENOTDIR, "inode " + std::to_string(ino) + " is not a directory");
  return inode;
}

Result<std::optional<Dirent>> Txn::find_dirent(uint64_t parent, std::string_view name) {
  RAIDFS_TRY(auto v, get(Family::kDirents, dirent_key(parent, name)));
  if (!v) return std::optional<Dirent>();
  RAIDFS_TRY(Dirent d, decode_dirent(*v));
  return std::optional<Dirent>(d);
}

void Txn::put_dirent(uint64_t parent, std::string_view name, const Dirent& d) {
  put(Family::kDirents, dirent_key(parent, name), encode_dirent(d));
  put(Family::kCookies, cookie_key(parent, d.cookie), encode_cookie(name));
}

void Txn::del_dirent(uint64_t parent, std::string_view name, const Dirent& d) {
  del(Family::kDirents, dirent_key(parent, name));
  del(Family::kCookies, cookie_key(parent, d.cookie));
}

void Txn::put_extent(uint64_t ino, const Extent& e, const Extent* old) {
  put(Family::kExtents, extent_key(ino, e.file_offset), encode_extent(e));
  if (old != nullptr && old->stripe_id == e.stripe_id) return;  // its index entry stays
  // The old stripe's entry stays too, until that stripe is freed: deleting it here would be a
  // second random key per overwrite in the memtable (a tenth of a 4 KiB random write's cost).
  put(Family::kExtentsByStripe, extent_by_stripe_key(e.stripe_id, ino, e.file_offset), {});
}

void Txn::del_extent(uint64_t ino, const Extent& e) {
  del(Family::kExtents, extent_key(ino, e.file_offset));
}

void Txn::del_stripe_index(uint64_t stripe_id) { freed_indexes_.push_back(stripe_id); }

Result<std::optional<Stripe>> Txn::find_stripe(uint64_t id) {
  RAIDFS_TRY(auto v, get(Family::kStripes, stripe_key(id)));
  if (!v) return std::optional<Stripe>();
  RAIDFS_TRY(Stripe s, decode_stripe(id, *v));
  return std::optional<Stripe>(std::move(s));
}

void Txn::put_stripe(const Stripe& s) {
  put(Family::kStripes, stripe_key(s.id), encode_stripe(s));
  for (const ParityRow& row : s.parity_rows)
    put(Family::kParityRows, parity_row_key(s.id, row.row_index), encode_parity_row(row));
  stored_stripes_[s.id] = s.state;
}

Result<uint64_t> Txn::take_inode_number() {
  RAIDFS_TRY(auto v, get(Family::kSuper, std::string(kNextInodeKey)));
  if (!v) return fail(EIO, "corrupt record: super: next_inode counter missing");
  RAIDFS_TRY(uint64_t next, decode_counter(*v));
  if (next <= kRootIno || next == UINT64_MAX) return corrupt("super: next_inode out of range");
  put(Family::kSuper, std::string(kNextInodeKey), encode_counter(next + 1));
  return next;
}

}  // namespace detail

// --- open ----------------------------------------------------------------------------------------
Result<std::unique_ptr<FsMeta>> FsMeta::open(const StoreOptions& options) {
  RAIDFS_TRY(auto store, Store::open(options));
  std::unique_ptr<FsMeta> meta(new FsMeta(std::move(store)));
  Store& s = *meta->store_;

  RAIDFS_TRY(auto next_inode, s.get(Family::kSuper, kNextInodeKey));
  if (!next_inode && s.read_only()) return fail(EIO, "corrupt record: super: next_inode counter missing");
  if (!next_inode) {
    // A new database: the root directory and the counters, in one batch.
    Txn txn(s);
    Inode root;
    root.ino = kRootIno;
    root.mode = S_IFDIR | 0755;
    root.nlink = 2;
    root.atime_ns = root.mtime_ns = root.ctime_ns = now_ns();
    root.parent = kRootIno;
    root.next_cookie = kFirstCookie;
    txn.put_inode(root);
    txn.put(Family::kSuper, std::string(kNextInodeKey), encode_counter(kRootIno + 1));
    txn.put(Family::kSuper, std::string(kGenerationLimitKey), encode_counter(1));
    RAIDFS_CHECK(s.write(txn.take(), Durability::kSyncEach));
  }
  RAIDFS_TRY(auto limit, s.get(Family::kSuper, kGenerationLimitKey));
  if (!limit) return fail(EIO, "corrupt record: super: generation_limit counter missing");
  RAIDFS_TRY(meta->generation_limit_, decode_counter(*limit));
  meta->next_generation_ = meta->generation_limit_;  // a crash may have used any below the limit

  // Read-only: orphans stay until a read-write open, and an old store format is read as it is.
  if (!s.read_only()) {
    RAIDFS_CHECK(meta->upgrade_store());
    RAIDFS_CHECK(meta->recover_orphans());
  }
  RAIDFS_CHECK(meta->build_stripe_maps());
  return meta;
}

// Store format 1 → 2: every regular file's block count, from its extents. 2 → 3: the
// extents_by_stripe index, from the extents. 3 → 4: nothing to change (an exact index is a valid
// format-4 index). 4 → 5: open stripes' parity rows move out of their records. Records are
// written in batches and the new format recorded last, so a crash midway redoes it all (every
// step writes what it derives, again).
Result<void> FsMeta::upgrade_store() {
  const uint32_t format = store_->super().store_format;
  if (format >= kStoreFormat) return {};
  if (format < 3) RAIDFS_CHECK(count_and_index_extents(format));
  RAIDFS_CHECK(move_parity_rows_out());
  return store_->set_store_format(kStoreFormat);
}

Result<void> FsMeta::move_parity_rows_out() {
  std::vector<Stripe> open;
  RAIDFS_CHECK(store_->scan(Family::kStripes, "", "",
                            [&](std::string_view key, std::string_view value) -> Result<bool> {
                              RAIDFS_TRY(uint64_t id, parse_u64_key(key));
                              RAIDFS_TRY(Stripe s, decode_stripe(id, value));
                              if (!s.parity_rows.empty()) open.push_back(std::move(s));
                              return true;
                            }));
  for (const Stripe& s : open) {
    WriteSet set;
    set.put(Family::kStripes, stripe_key(s.id), encode_stripe(s));
    if (s.state == StripeState::kOpen) replace_parity_rows(set, s);  // a sealed one's: unused
    RAIDFS_CHECK(store_->write(set, Durability::kNone));
  }
  return {};
}

Result<void> FsMeta::count_and_index_extents(uint32_t format) {
  constexpr size_t kPerBatch = 4096;
  Txn txn(*store_);
  size_t in_batch = 0;
  auto added = [&]() -> Result<void> {
    if (++in_batch < kPerBatch) return {};
    in_batch = 0;
    RAIDFS_CHECK(store_->write(txn.take(), Durability::kNone));
    return {};
  };
  std::map<uint64_t, uint64_t> blocks;
  RAIDFS_CHECK(store_->scan(Family::kExtents, "", "",
                            [&](std::string_view key, std::string_view value) -> Result<bool> {
                              RAIDFS_TRY(auto k, parse_u64_pair_key(key));
                              RAIDFS_TRY(Extent e, decode_extent(k.second, value));
                              if (format < 2) blocks[k.first] += blocks_touched(e.stripe_offset, e.length);
                              txn.put(Family::kExtentsByStripe,
                                      extent_by_stripe_key(e.stripe_id, k.first, e.file_offset), {});
                              RAIDFS_CHECK(added());
                              return true;
                            }));
  if (format < 2) {
    RAIDFS_CHECK(store_->scan(Family::kInodes, "", "",
                              [&](std::string_view key, std::string_view value) -> Result<bool> {
                                RAIDFS_TRY(uint64_t ino, parse_u64_key(key));
                                RAIDFS_TRY(Inode inode, decode_inode(ino, value));
                                auto it = blocks.find(ino);
                                inode.blocks = it == blocks.end() ? 0 : it->second;
                                txn.put_inode(inode);
                                RAIDFS_CHECK(added());
                                return true;
                              }));
  }
  if (in_batch > 0) RAIDFS_CHECK(store_->write(txn.take(), Durability::kNone));
  return {};
}

Result<void> FsMeta::recover_orphans() {
  std::vector<uint64_t> inos;
  RAIDFS_CHECK(store_->scan(Family::kOrphans, "", "",
                            [&](std::string_view key, std::string_view) -> Result<bool> {
                              RAIDFS_TRY(uint64_t ino, parse_u64_key(key));
                              inos.push_back(ino);
                              return true;
                            }));
  for (uint64_t ino : inos) {  // one batch per orphan, so a crash here just resumes next time
    Txn txn(*store_);
    RAIDFS_TRY(auto inode, txn.find_inode(ino));
    if (!inode) {
      txn.del(Family::kOrphans, orphan_key(ino));
    } else if (inode->nlink == 0) {
      RAIDFS_CHECK(destroy_inode(txn, *inode));
    } else {
      txn.del(Family::kOrphans, orphan_key(ino));  // relinked: not an orphan any more
    }
    RAIDFS_CHECK(store_->write(txn.take(), Durability::kNone));
    ++orphans_removed_at_open_;
  }
  if (!inos.empty()) RAIDFS_CHECK(store_->sync(store_->latest_sequence()));
  return {};
}

Result<void> FsMeta::build_stripe_maps() {
  const uint64_t count = store_->super().stripe_count;
  stripe_free_.assign(count, true);
  free_count_ = count;
  live_blocks_total_ = 0;
  RAIDFS_CHECK(store_->scan(Family::kStripes, "", "",
                            [&](std::string_view key, std::string_view value) -> Result<bool> {
                              RAIDFS_TRY(uint64_t id, parse_u64_key(key));
                              RAIDFS_TRY(Stripe s, decode_stripe(id, value));
                              if (id >= count) return corrupt("stripe id beyond the stripe count");
                              if (s.state == StripeState::kFree) return true;
                              stripe_free_[id] = false;
                              --free_count_;
                              live_blocks_total_ += s.live_blocks;
                              if (s.state == StripeState::kOpen) open_.insert(id);
                              return true;
                            }));
  publish_free_count_locked();
  return {};
}

// --- committing ----------------------------------------------------------------------------------
Result<uint64_t> FsMeta::write_locked(Txn& txn, Durability durability, Room room) {
  // A stripe leaving the open state takes its parity rows with it: its parity is on the members.
  for (const auto& [id, state] : txn.stored_stripes())
    if (state != StripeState::kOpen && open_.contains(id)) txn.del_parity_rows(id);
  WriteSet set = txn.take();
  RAIDFS_TRY(uint64_t seq, store_->write(set, durability == Durability::kSyncEach
                                                   ? Durability::kSyncEach
                                                   : Durability::kNone,
                                         room));
  live_blocks_total_ += txn.live_applied();
  for (const auto& [id, state] : txn.stored_stripes()) {
    if (id >= stripe_free_.size()) continue;  // validated before; never for a committed record
    allocated_.erase(id);                     // its record is committed: no longer just reserved
    if (state == StripeState::kOpen)
      open_.insert(id);
    else
      open_.erase(id);
    if (state == StripeState::kFree) {
      pending_free_.emplace_back(seq, id);
      continue;
    }
    // In use again (commit_write only stores a record for a free stripe it handed out, so these
    // are defensive): not free, whatever an earlier batch said.
    std::erase_if(pending_free_, [id](const auto& p) { return p.second == id; });
    if (stripe_free_[id]) {
      stripe_free_[id] = false;
      --free_count_;
    }
  }
  publish_free_count_locked();
  return seq;
}

Result<void> FsMeta::finish(uint64_t seq, Durability durability) {
  if (durability == Durability::kGroupSync) return store_->sync(seq);
  return {};
}

// --- reads ---------------------------------------------------------------------------------------
Result<Inode> FsMeta::getattr(uint64_t ino) const {
  // As Txn::load_inode, into this thread's string: every read takes the inode.
  thread_local std::string value;
  RAIDFS_TRY(const bool found, store_->get(Family::kInodes, inode_key(ino), &value));
  if (!found) return fail(ENOENT, "no inode " + std::to_string(ino));
  return decode_inode(ino, value);
}

Result<Inode> FsMeta::lookup(uint64_t parent, std::string_view name) const {
  RAIDFS_CHECK(check_name(name));
  Txn txn(*store_);
  RAIDFS_TRY(auto d, txn.find_dirent(parent, name));
  if (!d) {
    RAIDFS_CHECK(txn.load_dir(parent));  // ENOENT / ENOTDIR for the parent itself
    return fail(ENOENT, "no entry \"" + std::string(name) + "\"");
  }
  auto child = txn.load_inode(d->child);
  if (!child && child.error().code == ENOENT)  // removed between the two reads
    return fail(ENOENT, "no entry \"" + std::string(name) + "\"");
  return child;
}

Result<ReaddirBatch> FsMeta::readdir(uint64_t dir, uint64_t after_cookie,
                                     size_t max_entries) const {
  Txn txn(*store_);
  RAIDFS_CHECK(txn.load_dir(dir));
  max_entries = std::clamp<size_t>(max_entries, 1, kReaddirBatchMax);
  ReaddirBatch batch;
  if (after_cookie == UINT64_MAX) {
    batch.end = true;
    return batch;
  }
  batch.end = true;
  RAIDFS_CHECK(store_->scan(
      Family::kCookies, cookie_key(dir, after_cookie + 1), inode_range_end(dir),
      [&](std::string_view key, std::string_view value) -> Result<bool> {
        if (batch.entries.size() == max_entries) {
          batch.end = false;
          return false;
        }
        RAIDFS_TRY(auto k, parse_u64_pair_key(key));
        RAIDFS_TRY(std::string name, decode_cookie(value));
        RAIDFS_TRY(auto d, store_->get(Family::kDirents, dirent_key(dir, name)));
        if (!d) return true;  // removed since the scan's snapshot
        RAIDFS_TRY(Dirent dirent, decode_dirent(*d));
        if (dirent.cookie != k.second) return true;  // replaced since: listed at its new cookie
        batch.entries.push_back(DirEntry{std::move(name), dirent.child, dirent.type, k.second});
        return true;
      }));
  return batch;
}

Result<std::vector<Mapping>> FsMeta::map_range(uint64_t ino, uint64_t offset,
                                               uint64_t length) const {
  Txn txn(*store_);
  RAIDFS_TRY(Inode inode, txn.load_inode(ino));
  return map_extents(ino, offset,
                     std::min(inode.size, offset + std::min(length, UINT64_MAX - offset)));
}

Result<std::vector<Mapping>> FsMeta::map_extents(uint64_t ino, uint64_t offset,
                                                 uint64_t end) const {
  std::vector<Mapping> out;
  RAIDFS_CHECK(map_extents(ino, offset, end, &out));
  return out;
}

Result<void> FsMeta::map_extents(uint64_t ino, uint64_t offset, uint64_t end,
                                 std::vector<Mapping>* mappings) const {
  std::vector<Mapping>& out = *mappings;
  out.clear();
  if (offset >= end) return {};
  // What the scan's visitor needs, behind one pointer: a capture that small is kept inside the
  // std::function instead of allocated, on every read. The keys are PairKeys for the same reason.
  struct Walk {
    std::vector<Mapping>& out;
    uint64_t pos, end;
    bool stopped = false;
    void add(const Extent& e) {
      const uint64_t a = std::max(e.file_offset, pos), b = std::min(e.file_end(), end);
      if (a >= b) return;
      if (a > pos) out.push_back(Mapping{pos, a - pos, true, 0, 0});
      out.push_back(Mapping{a, b - a, false, e.stripe_id,
                            static_cast<uint32_t>(e.stripe_offset + (a - e.file_offset))});
      pos = b;
    }
  } walk{out, offset, end};
  // The floor's key and value land in this thread's strings: no allocation per read.
  thread_local std::pair<std::string, std::string> before;
  RAIDFS_TRY(const bool found,
             store_->floor(Family::kExtents, PairKey(ino, offset), PairKey(ino, 0), &before));
  if (found) {
    RAIDFS_TRY(auto k, parse_u64_pair_key(before.first));
    RAIDFS_TRY(Extent e, decode_extent(k.second, before.second));
    walk.add(e);
  }
  // A stop at the segment limit leaves [pos, end) unread: it may hold data, so it is not reported
  // as a hole; the caller continues from pos.
  RAIDFS_CHECK(store_->scan(Family::kExtents, PairKey(ino, offset), PairKey(ino, end),
                            [w = &walk](std::string_view key, std::string_view value) -> Result<bool> {
                              if (w->out.size() + 2 > kMappingsMax) {
                                w->stopped = true;
                                return false;
                              }
                              RAIDFS_TRY(auto k, parse_u64_pair_key(key));
                              RAIDFS_TRY(Extent e, decode_extent(k.second, value));
                              w->add(e);
                              return true;
                            }));
  if (!walk.stopped && walk.pos < end && out.size() < kMappingsMax)
    out.push_back(Mapping{walk.pos, end - walk.pos, true, 0, 0});
  return {};
}

// --- stripes -------------------------------------------------------------------------------------
void FsMeta::reclaim_pending_locked() {
  const uint64_t synced = store_->synced_sequence();
  std::erase_if(pending_free_, [&](const std::pair<uint64_t, uint64_t>& p) {
    if (p.first > synced) return false;
    if (allocated_.contains(p.second)) return true;  // handed out since: its owner decides
    if (!stripe_free_[p.second]) {
      stripe_free_[p.second] = true;
      ++free_count_;
      if (track_freed_) freed_.push_back(p.second);
    }
    return true;
  });
  publish_free_count_locked();
}

void FsMeta::track_freed_stripes() {
  std::lock_guard lock(mu_);
  track_freed_ = true;
}

std::vector<uint64_t> FsMeta::take_freed_stripes(bool all) {
  std::lock_guard lock(mu_);
  reclaim_pending_locked();
  std::vector<uint64_t> out;
  if (all) {
    for (uint64_t id = 0; id < stripe_free_.size(); ++id)
      if (stripe_free_[id]) out.push_back(id);
  } else {
    // Handed out and freed again since it was recorded: still free, listed once.
    std::sort(freed_.begin(), freed_.end());
    freed_.erase(std::unique(freed_.begin(), freed_.end()), freed_.end());
    for (uint64_t id : freed_)
      if (stripe_free_[id]) out.push_back(id);
  }
  freed_.clear();
  return out;
}

std::vector<uint64_t> FsMeta::free_among(std::span<const uint64_t> ids) const {
  std::lock_guard lock(mu_);
  std::vector<uint64_t> out;
  for (uint64_t id : ids)
    if (id < stripe_free_.size() && stripe_free_[id]) out.push_back(id);
  return out;
}

Result<StripeRef> FsMeta::allocate_stripe() {
  std::lock_guard lock(mu_);
  RAIDFS_CHECK(store_->check_room(Room::kOrdinary));
  reclaim_pending_locked();
  if (free_count_ == 0 && !pending_free_.empty()) {
    RAIDFS_CHECK(store_->sync(store_->latest_sequence()));
    reclaim_pending_locked();
  }
  if (free_count_ == 0) return fail(ENOSPC, "no free stripe");
  if (next_generation_ >= generation_limit_) {
    // Reserve a range of generations. No fsync needed: any commit that uses one is later in the
    // WAL, so it cannot survive a crash without this reservation.
    Txn txn(*store_);
    const uint64_t limit = next_generation_ + 1024;
    txn.put(Family::kSuper, std::string(kGenerationLimitKey), encode_counter(limit));
    RAIDFS_CHECK(store_->write(txn.take(), Durability::kNone));
    generation_limit_ = limit;
  }
  const uint64_t count = stripe_free_.size();
  for (uint64_t n = 0; n < count; ++n) {
    const uint64_t id = (alloc_cursor_ + n) % count;
    if (!stripe_free_[id]) continue;
    stripe_free_[id] = false;
    --free_count_;
    publish_free_count_locked();
    alloc_cursor_ = id + 1;
    const uint64_t generation = next_generation_++;
    allocated_[id] = generation;
    return StripeRef{id, generation};
  }
  return fail(EIO, "free stripe count out of step with the free map");
}

void FsMeta::release_stripe(uint64_t id) {
  std::lock_guard lock(mu_);
  // Only a stripe handed out and not committed since: its store record (absent or free) is
  // durable state, so it may be reused at once. A committed or pending-free id is not ours to free.
  if (allocated_.erase(id) == 0) return;
  stripe_free_[id] = true;
  ++free_count_;
  publish_free_count_locked();
}

Result<Stripe> FsMeta::get_stripe(uint64_t id) const {
  Stripe s;
  RAIDFS_CHECK(get_stripe(id, &s));
  return s;
}

Result<void> FsMeta::get_stripe(uint64_t id, Stripe* out) const {
  // Straight from the store (a Txn of reads only adds nothing), into this thread's string.
  thread_local std::string value;
  RAIDFS_TRY(const bool found, store_->get(Family::kStripes, stripe_key(id), &value));
  if (!found) return fail(ENOENT, "no record for stripe " + std::to_string(id));
  RAIDFS_CHECK(decode_stripe(id, value, out));
  if (out->state == StripeState::kOpen) RAIDFS_CHECK(load_parity_rows(*store_, *out));
  return {};
}

std::vector<uint64_t> FsMeta::open_stripes() const {
  std::lock_guard lock(mu_);
  return {open_.begin(), open_.end()};
}

uint64_t FsMeta::live_block_count() const {
  return static_cast<uint64_t>(std::max<int64_t>(0, live_blocks_total_.load()));
}

uint64_t FsMeta::free_stripe_count() const {
  return free_total_.load(std::memory_order_relaxed);
}

std::vector<uint64_t> FsMeta::orphans() const {
  std::vector<uint64_t> out;
  (void)store_->scan(Family::kOrphans, "", "",
                     [&](std::string_view key, std::string_view) -> Result<bool> {
                       if (auto ino = parse_u64_key(key)) out.push_back(*ino);
                       return true;
                     });
  return out;
}

}  // namespace raidfs::meta
