// detail::Txn (internal to meta/): the read-your-writes buffer of one filesystem operation.
//
// get() answers from the operation's own puts and deletes first, then from the Store; take()
// hands the result to Store::write as one WriteSet. Scans (store().scan/floor) see committed
// state only, so an operation scans a key range before it writes into it. A Txn also records which
// stripe records it stored, so that FsMeta can update its in-memory maps after the write.
// Not thread-safe: one Txn belongs to one operation, under FsMeta::mu_.
#pragma once

#include <sys/stat.h>

#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "meta/coding.h"
#include "meta/fs_meta.h"
#include "meta/keys.h"

namespace raidfs::meta {

namespace detail {

class Txn {
 public:
  explicit Txn(const Store& store) : store_(store) {}

  const Store& store() const { return store_; }
  Result<std::optional<std::string>> get(Family f, std::string_view key);
  void put(Family f, std::string key, std::string value);
  void del(Family f, std::string key);
  WriteSet take();

  Result<std::optional<Inode>> find_inode(uint64_t ino);
  Result<Inode> load_inode(uint64_t ino);  // ENOENT when absent
  Result<Inode> load_dir(uint64_t ino);    // ENOENT absent, ENOTDIR not a directory
  void put_inode(const Inode& inode) { put(Family::kInodes, inode_key(inode.ino), encode_inode(inode)); }
  Result<std::optional<Dirent>> find_dirent(uint64_t parent, std::string_view name);
  void put_dirent(uint64_t parent, std::string_view name, const Dirent& d);  // and its cookie
  void del_dirent(uint64_t parent, std::string_view name, const Dirent& d);  // and its cookie
  // A file's extent stored (over `old`, what its key held, if anything) with its entry in the
  // extents_by_stripe index, or removed: every extent write goes through these two. The entry
  // of an extent that leaves a stripe stays until the stripe is freed (del_stripe_index): the
  // index lists every extent in a stripe and may list some that were (records.h).
  void put_extent(uint64_t ino, const Extent& e, const Extent* old);
  void del_extent(uint64_t ino, const Extent& e);
  // Every extents_by_stripe entry of the stripe removed (it is freed by this batch).
  void del_stripe_index(uint64_t stripe_id);
  // The stripe's record, without its parity rows (load_parity_rows reads them).
  Result<std::optional<Stripe>> find_stripe(uint64_t id);
  // The record, and the parity rows `s` carries (the stripe's other rows stay).
  void put_stripe(const Stripe& s);
  // Every parity row of the stripe removed (it is sealed or freed by this batch).
  void del_parity_rows(uint64_t stripe_id) { freed_parity_.push_back(stripe_id); }
  Result<uint64_t> take_inode_number();  // reads and bumps the next_inode counter

  // Adds `delta` block references to stripe `id` (applied by FsMeta::apply_live_deltas).
  void add_live(uint64_t id, int64_t delta) { live_delta_[id] += delta; }
  std::map<uint64_t, int64_t>& live_deltas() { return live_delta_; }
  const std::map<uint64_t, StripeState>& stored_stripes() const { return stored_stripes_; }
  // The net change of all stripes' live counts that apply_live_deltas put in this batch.
  void note_live_applied(int64_t delta) { live_applied_ += delta; }
  int64_t live_applied() const { return live_applied_; }

 private:
  using Key = std::pair<Family, std::string>;
  const Store& store_;
  std::map<Key, std::optional<std::string>> overlay_;  // nullopt = deleted
  std::vector<uint64_t> freed_indexes_;  // stripes whose index entries go (del_stripe_index)
  std::vector<uint64_t> freed_parity_;   // stripes whose parity rows go (del_parity_rows)
  std::map<uint64_t, int64_t> live_delta_;
  std::map<uint64_t, StripeState> stored_stripes_;
  int64_t live_applied_ = 0;
};

}  // namespace detail
using detail::Txn;

// Helpers shared by the FsMeta implementation files.
int64_t now_ns();  // base/file_clock.h: the clock the kernel stamps files with
// Subtracts the block references of every extent of `ino` at or beyond `from` (clipping the one
// that crosses it) and deletes them. Scans committed state: call before writing those extents.
// Returns the change of the file's block count (≤ 0), for add_blocks().
Result<int64_t> remove_extents_from(Txn& txn, uint64_t ino, uint64_t from);
// Applies a change of a file's referenced blocks to Inode::blocks.
void add_blocks(Inode& inode, int64_t delta);
// Applies the Txn's live-count deltas to stripe records (plus `also` ids, which are checked for
// a sealed stripe at 0); a sealed stripe at 0 becomes free. EIO on a negative count or a delta
// for a stripe without a record.
Result<void> apply_live_deltas(Txn& txn, std::span<const uint64_t> also = {});
// Deletes an inode with its extents, xattrs and orphan entry (not its dirents).
Result<void> destroy_inode(Txn& txn, const Inode& inode);
Result<void> check_name(std::string_view name);
inline std::string inode_range_end(uint64_t ino) {  // first key after every (ino, ...) key
  return ino == UINT64_MAX ? std::string() : u64_key(ino + 1);
}
inline bool is_dir(const Inode& i) { return (i.mode & S_IFMT) == S_IFDIR; }
inline bool is_reg(const Inode& i) { return (i.mode & S_IFMT) == S_IFREG; }

}  // namespace raidfs::meta
