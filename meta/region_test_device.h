// MemoryRegionDevice: a RegionDevice in memory for meta/'s unit tests, with the failures the
// real one meets — a copy that cannot be read (a member missing) or that takes writes but is not
// read yet (a member being rebuilt), bytes changed behind the filesystem's back, and the power
// lost: every block written since the last flush, per copy, is kept or lost at random (a drive
// that loses its cache may have stored any part of what it acknowledged).
//
// The real device over an array's members is fs/region_on_array.h; the tests in fs/ use it.
#pragma once

#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <vector>

#include "meta/region_device.h"

namespace raidfs::meta::testing {

class MemoryRegionDevice final : public RegionDevice {
 public:
  MemoryRegionDevice(uint64_t blocks, uint32_t copies, uint64_t run_blocks = 256)
      : blocks_(blocks), run_(run_blocks), copies_(copies, std::vector<uint8_t>(blocks * kBlockBytes)),
        readable_(copies, true), writable_(copies, true), cache_(copies) {}

  uint64_t block_count() const override { return blocks_; }
  uint32_t copy_count() const override { return static_cast<uint32_t>(copies_.size()); }
  uint64_t run_end(uint64_t block) const override { return (block / run_ + 1) * run_; }

  Result<void> read(uint64_t block, uint32_t count, uint32_t copy, uint8_t* dest) override {
    std::lock_guard lock(mu_);
    RAIDFS_CHECK(check(block, count));
    if (!readable_[copy]) return fail(ENXIO, "copy " + std::to_string(copy) + " cannot be read");
    ++reads_;
    std::memcpy(dest, at(copy, block), uint64_t{count} * kBlockBytes);
    return {};
  }
  Result<void> write(uint64_t block, uint32_t count, const uint8_t* source) override {
    std::lock_guard lock(mu_);
    RAIDFS_CHECK(check(block, count));
    bool any = false;
    for (uint32_t c = 0; c < copies_.size(); ++c)
      if (writable_[c]) {
        put(c, block, count, source);
        any = true;
      }
    if (!any) return fail(EIO, "no copy takes writes");
    return {};
  }
  Result<void> write_copy(uint64_t block, uint32_t count, uint32_t copy, const uint8_t* source) override {
    std::lock_guard lock(mu_);
    RAIDFS_CHECK(check(block, count));
    if (!writable_[copy]) return fail(ENXIO, "copy " + std::to_string(copy) + " takes no writes");
    put(copy, block, count, source);
    return {};
  }
  Result<void> flush() override {
    std::lock_guard lock(mu_);
    ++flushes_;
    for (auto& c : cache_) c.clear();
    return {};
  }

  // --- what the tests do to it ---
  void set_readable(uint32_t copy, bool on) { std::lock_guard l(mu_); readable_[copy] = on; }
  void set_writable(uint32_t copy, bool on) { std::lock_guard l(mu_); writable_[copy] = on; }
  uint8_t* raw(uint32_t copy, uint64_t block) { return at(copy, block); }
  uint64_t flushes() const { std::lock_guard l(mu_); return flushes_; }
  uint64_t reads() const { std::lock_guard l(mu_); return reads_; }
  // The power goes: each block written since the last flush is, per copy, kept or lost (its
  // bytes before the first unflushed write put back); with `all`, every one is lost. Returns
  // the blocks lost.
  uint64_t lose_power(uint32_t seed, bool all = false) {
    std::lock_guard lock(mu_);
    std::mt19937 rng(seed);
    uint64_t lost = 0;
    for (uint32_t c = 0; c < copies_.size(); ++c) {
      for (auto& [block, before] : cache_[c])
        if (all || rng() % 2) {
          std::memcpy(at(c, block), before.data(), kBlockBytes);
          ++lost;
        }
      cache_[c].clear();
    }
    return lost;
  }

 private:
  Result<void> check(uint64_t block, uint32_t count) const {
    if (count == 0 || block + count > blocks_ || block / run_ != (block + count - 1) / run_)
      return fail(EINVAL, "bad run " + std::to_string(block) + "+" + std::to_string(count));
    return {};
  }
  uint8_t* at(uint32_t copy, uint64_t block) { return copies_[copy].data() + block * kBlockBytes; }
  void put(uint32_t copy, uint64_t block, uint32_t count, const uint8_t* source) {
    for (uint32_t i = 0; i < count; ++i) {
      auto& cached = cache_[copy];
      if (!cached.count(block + i))
        cached[block + i].assign(at(copy, block + i), at(copy, block + i) + kBlockBytes);
    }
    std::memcpy(at(copy, block), source, uint64_t{count} * kBlockBytes);
  }

  mutable std::mutex mu_;
  uint64_t blocks_, run_;
  std::vector<std::vector<uint8_t>> copies_;
  std::vector<bool> readable_, writable_;
  std::vector<std::map<uint64_t, std::vector<uint8_t>>> cache_;  // per copy: block → bytes before
  uint64_t flushes_ = 0, reads_ = 0;
};

}  // namespace raidfs::meta::testing
