// OpenFiles: how many handles are open on each inode, so that an unlinked file lives until its
// last close (the metadata keeps it as an orphan meanwhile), and how many of them may write (the
// kernel may then hold data of the file that raidfs has not seen yet: see Filesystem::getattr).
//
// Opens race removals: an OPEN may come for an inode whose last name a concurrent unlink or
// rename is taking away. The removal asks keep_or_claim() under the metadata's lock right
// before its commit (meta::OpenCheck): an inode with a handle open is kept (an orphan); one
// without is claimed, and until end_removal() every open() of it fails, so no handle can appear
// on an inode that is being destroyed. An open() that comes after the removal finds the inode
// gone in the metadata (the caller checks, after counting).
//
// Thread-safe; the mutex is a leaf (taken under the metadata's lock, never the other way).
#pragma once

#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

namespace raidfs::fs {

class OpenFiles {
 public:
  // Counts a handle. False when a removal has claimed the inode (the open must fail: ENOENT).
  bool open(uint64_t ino, bool writable) {
    std::lock_guard lock(mu_);
    if (claimed_.contains(ino)) return false;
    Handles& h = count_[ino];
    ++h.all;
    if (writable) ++h.writers;
    return true;
  }
  // Releases a handle counted with the same `writable`. True when it was the last open handle.
  bool release(uint64_t ino, bool writable) {
    std::lock_guard lock(mu_);
    auto it = count_.find(ino);
    if (it == count_.end()) return true;
    if (writable && it->second.writers > 0) --it->second.writers;
    if (--it->second.all > 0) return false;
    count_.erase(it);
    return true;
  }
  bool has_writer(uint64_t ino) const {
    std::lock_guard lock(mu_);
    auto it = count_.find(ino);
    return it != count_.end() && it->second.writers > 0;
  }
  // True when a handle is open (keep the inode); otherwise claims it for removal and returns
  // false. A claimed inode stays claimed until end_removal().
  bool keep_or_claim(uint64_t ino) {
    std::lock_guard lock(mu_);
    if (count_.contains(ino)) return true;
    claimed_.insert(ino);
    return false;
  }
  void end_removal(uint64_t ino) {
    std::lock_guard lock(mu_);
    claimed_.erase(ino);
  }
  bool is_open(uint64_t ino) const {
    std::lock_guard lock(mu_);
    return count_.contains(ino);
  }

 private:
  struct Handles {
    uint32_t all = 0;
    uint32_t writers = 0;
  };
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, Handles> count_;
  std::unordered_set<uint64_t> claimed_;
};

}  // namespace raidfs::fs
