// RegionDevice: what the metadata's own filesystem (region_fs.h) needs of the members — a range
// of 4 KiB blocks, each kept in several copies, read one copy at a time and written to all.
//
// meta/ knows no disks: fs/ implements this over an Array's metadata region (raid/meta_region.h),
// tests over plain memory. Block numbers are the region's logical blocks; a run of blocks in one
// call lies within [block, run_end(block)); buffers are 4 KiB-aligned. Every method may be called
// from any thread concurrently.
#pragma once

#include <cstdint>

#include "base/result.h"

namespace raidfs::meta {

class RegionDevice {
 public:
  static constexpr uint32_t kBlockBytes = 4096;

  virtual ~RegionDevice() = default;
  virtual uint64_t block_count() const = 0;
  virtual uint32_t copy_count() const = 0;
  // The first block past the run holding `block` that one call can cover.
  virtual uint64_t run_end(uint64_t block) const = 0;
  // One copy. ENXIO: that copy cannot be read now (its member is missing, failed, or not yet
  // restored); EIO: the read failed.
  virtual Result<void> read(uint64_t block, uint32_t count, uint32_t copy, uint8_t* dest) = 0;
  // Every copy that takes writes. Fails when too few copies could be written to keep the
  // promise (raid's quorum).
  virtual Result<void> write(uint64_t block, uint32_t count, const uint8_t* source) = 0;
  // One copy alone (healing, restoring). ENXIO: that copy takes no writes now.
  virtual Result<void> write_copy(uint64_t block, uint32_t count, uint32_t copy,
                                  const uint8_t* source) = 0;
  // Makes every write that completed before the call durable.
  virtual Result<void> flush() = 0;
};

}  // namespace raidfs::meta
