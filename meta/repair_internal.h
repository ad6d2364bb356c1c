// repair_internal (internal to meta/): what the passes of repair() share. See repair.h.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "meta/repair.h"
#include "meta/txn.h"

namespace raidfs::meta::repair_detail {

// One repair run: the store, the policy, and the actions so far.
class Repairer {
 public:
  Repairer(Store& store, RepairPolicy policy) : store_(store), policy_(policy) {}

  Store& store() { return store_; }
  // Records a fix. `safe`: it loses nothing a user could see. Returns whether to make it.
  bool propose(bool safe, std::string text) {
    const bool apply = safe || policy_ == RepairPolicy::kAll;
    actions_.push_back(RepairAction{std::move(text), apply});
    return apply;
  }
  // Writes the pass's batch (nothing if it is empty).
  Result<void> commit(Txn& txn) {
    WriteSet set = txn.take();
    if (set.empty()) return {};
    RAIDFS_TRY(uint64_t seq, store_.write(set, Durability::kNone));
    (void)seq;
    return {};
  }
  std::vector<RepairAction> take_actions() { return std::move(actions_); }

 private:
  Store& store_;
  RepairPolicy policy_;
  std::vector<RepairAction> actions_;
};

// Every inode that decodes, by number.
Result<std::map<uint64_t, Inode>> load_inodes(const Store& store);

struct DirentRecord {
  uint64_t parent = 0;
  std::string name;
  Dirent dirent;
};
// Every directory entry that decodes, in key order (by parent, then name).
Result<std::vector<DirentRecord>> load_dirents(const Store& store);

// The passes (repair.h numbers them).
Result<void> remove_corrupt_records(Repairer& r);
Result<void> repair_root(Repairer& r);
Result<void> repair_dirents(Repairer& r);
Result<void> repair_links(Repairer& r);
Result<void> repair_nlink(Repairer& r);
Result<void> repair_extents(Repairer& r);
Result<void> repair_stripes(Repairer& r);
Result<void> repair_extents_by_stripe(Repairer& r);
Result<void> repair_rest(Repairer& r);

}  // namespace raidfs::meta::repair_detail
