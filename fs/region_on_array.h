// ArrayRegionDevice: the metadata region of a self-contained array (raid/meta_region.h) as the
// RegionDevice that the metadata's filesystem runs on (meta/region_fs.h). The glue between raid/
// and meta/, which know nothing of each other.
//
// The I/O goes through Array::make_region_io: system calls on buffered descriptors of the members,
// on the calling thread (a commit's log block is a copy into the page cache, not a trip through
// an io_uring worker); a flush is fdatasync of only the members with writes completed since the
// last flush began (a write still under way when a flush begins is left to the next one). Each
// thread that does metadata I/O (RocksDB's, the request threads) gets its own channel at its
// first call; the device owns them. The MemberIos pass through `wrap` when one is given: tests
// inject faults and power cuts into the region as into the data.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "meta/region_device.h"
#include "raid/array.h"

namespace raidfs::fs {

using WrapMemberIo = std::function<std::unique_ptr<MemberIo>(std::unique_ptr<MemberIo>)>;

// The salt of the array's region blocks (meta/region_block.h): its UUID's crc32c.
uint32_t region_salt(const ArrayUuid& uuid);

class ArrayRegionDevice final : public meta::RegionDevice {
 public:
  // `array` must have a region and outlive the device.
  explicit ArrayRegionDevice(Array& array, WrapMemberIo wrap = {});
  ~ArrayRegionDevice() override;

  uint64_t block_count() const override { return region_.block_count(); }
  uint32_t copy_count() const override { return region_.copies(); }
  uint64_t run_end(uint64_t block) const override { return region_.run_end(block); }
  Result<void> read(uint64_t block, uint32_t count, uint32_t copy, uint8_t* dest) override;
  Result<void> write(uint64_t block, uint32_t count, const uint8_t* source) override;
  Result<void> write_copy(uint64_t block, uint32_t count, uint32_t copy,
                          const uint8_t* source) override;
  Result<void> flush() override;

 private:
  struct Channel {
    std::unique_ptr<MemberIo> io;
    std::unique_ptr<IoChannel> channel;
  };
  // The calling thread's channel, made at its first call.
  Result<IoChannel*> channel();

  Array& array_;
  const MetaRegion region_;
  WrapMemberIo wrap_;
  const uint64_t id_;  // tells this device's channels apart in a thread's table
  std::atomic<uint64_t> dirty_{0};  // members written since the last flush (a bit each)
  std::mutex flush_mu_;              // one flush at a time
  std::mutex mu_;      // guards channels_
  std::vector<std::shared_ptr<Channel>> channels_;  // every thread's
};

}  // namespace raidfs::fs
