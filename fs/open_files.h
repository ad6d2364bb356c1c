// OpenFiles: how many handles are open on each inode, so that an unlinked file lives until its
// last close (the metadata keeps it as an orphan meanwhile).
// Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <unordered_map>

namespace raidfs::fs {

class OpenFiles {
 public:
  void open(uint64_t ino) {
    std::lock_guard lock(mu_);
    ++count_[ino];
  }
  // Returns true when this was the last open handle.
  bool release(uint64_t ino) {
    std::lock_guard lock(mu_);
    auto it = count_.find(ino);
    if (it == count_.end()) return true;
    if (--it->second > 0) return false;
    count_.erase(it);
    return true;
  }
  bool is_open(uint64_t ino) const {
    std::lock_guard lock(mu_);
    return count_.contains(ino);
  }

 private:
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, uint32_t> count_;
};

}  // namespace raidfs::fs
