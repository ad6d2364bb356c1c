// Journal: the allocation log of the metadata region's filesystem (region_fs.h) — which files
// exist, under which names, in which extents, how long — kept as records in the first blocks of
// the region and replayed when the region is opened.
//
// Two areas of `area_blocks` blocks each sit at the start of the region. One is current; its
// blocks are numbered 0, 1, 2 ... within an epoch, and block 0 begins a snapshot: the whole state
// as records. After it come appended batches. A block is only ever written once per epoch, whole
// (never a tail rewritten in place), and records never span blocks; a batch may, and only its
// last block carries kBatchEnd, so a batch torn by a crash is dropped whole. Each block's payload
// begins with the checksum of the block before it, so a block left from an earlier epoch or an
// earlier attempt never continues the chain. When the current area is full, roll() writes a
// snapshot of the state into the other area under the next epoch and makes it durable; until
// then the older area, untouched, stays the one a replay takes.
//
// Replay takes, for each block, any copy that is intact and carries the expected epoch, index
// and chain link (a copy that missed the write is simply another copy's loss). It takes the area
// whose block 0 has the newer epoch and a complete snapshot, else the other.
//
// Not thread-safe: the filesystem calls it under its own lock.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "meta/region_device.h"

namespace raidfs::meta::region {

enum class RecordType : uint8_t {
  kCounters = 1,  // a = next file id, b = next allocation sequence
  kCreate = 2,    // id, a = mtime (ns), name
  kExtent = 3,    // id, a = first block, b = block count, c = allocation sequence
  kSize = 4,      // id, a = size in bytes (durable: its blocks were flushed before)
  kRename = 5,    // id, name
  kDelete = 6,    // id
  kTrim = 7,      // id, a = blocks kept: the file's extents beyond them are given back
};

struct Record {
  RecordType type = RecordType::kCounters;
  uint64_t id = 0;
  uint64_t a = 0, b = 0, c = 0;
  std::string name;

  Record() = default;
  Record(RecordType t, uint64_t id_, uint64_t a_ = 0, uint64_t b_ = 0, uint64_t c_ = 0,
         std::string name_ = {})
      : type(t), id(id_), a(a_), b(b_), c(c_), name(std::move(name_)) {}
};
using Batch = std::vector<Record>;

class Journal {
 public:
  // The blocks of each of the two areas for a region of `region_blocks` blocks.
  static uint64_t area_blocks_for(uint64_t region_blocks);

  // A fresh journal: `snapshot` (the empty state) as epoch 1 in area 0, made durable.
  // `salt` seeds every block's checksum (region_block.h).
  static Result<Journal> format(RegionDevice& device, uint32_t salt, const Batch& snapshot);

  struct Replayed {
    Batch snapshot;
    std::vector<Batch> batches;  // complete batches after the snapshot, in order
  };
  // Reads the current area. EUCLEAN when neither area holds a complete snapshot (not a raidfs
  // region, or both torn); the I/O error when blocks cannot be read at all.
  static Result<Journal> open(RegionDevice& device, uint32_t salt, Replayed* out);

  // Appends `batch` after the last complete batch (not made durable: the caller flushes the
  // device). ENOSPC when the area has no room for it: roll() first.
  Result<void> append(RegionDevice& device, const Batch& batch);
  // Writes `snapshot` as block 0.. of the other area under the next epoch, flushes the device,
  // and makes that area current. ENOSPC when the snapshot does not fit in an area.
  Result<void> roll(RegionDevice& device, const Batch& snapshot);

  // Blocks [first, first + count) of the current area hold this epoch's journal: what a scrub
  // or a rebuild must keep in every copy.
  uint64_t first_block() const { return area_ * area_blocks_; }
  uint64_t used_blocks() const { return tail_; }
  uint64_t area_blocks() const { return area_blocks_; }
  uint64_t epoch() const { return epoch_; }
  // Whether copy bytes `block` (a block of the current area below used_blocks()) are this
  // journal's: intact, this epoch, the right index. The chain is not checked here.
  bool block_is_current(const uint8_t* block, uint64_t index) const;

 private:
  Journal(uint64_t area_blocks, uint32_t salt) : area_blocks_(area_blocks), salt_(salt) {}
  // Reads area `area` as epoch `epoch`: its snapshot and the complete batches after it. False
  // when the snapshot is not complete there.
  Result<bool> read_area(RegionDevice& device, uint32_t area, uint64_t epoch, Replayed* out);
  // Writes the batch's blocks from area block `at` of `area` under `epoch`, chained from
  // `prev_crc`. Returns the number of blocks written and the last block's checksum.
  Result<std::pair<uint64_t, uint32_t>> write_blocks(RegionDevice& device, uint32_t area,
                                                     uint64_t epoch, uint64_t at,
                                                     uint32_t prev_crc, const Batch& batch) const;

  uint64_t area_blocks_ = 0;
  uint32_t salt_ = 0;
  uint32_t area_ = 0;      // current area, 0 or 1
  uint64_t epoch_ = 0;     // current epoch
  uint64_t tail_ = 0;      // blocks of the current area in use (complete batches)
  uint32_t last_crc_ = 0;  // checksum of block tail_ - 1
  uint64_t newest_epoch_seen_ = 0;  // the next roll goes above it, torn attempts included
};

// The bytes a record takes in a block (its header included).
size_t record_bytes(const Record& r);

}  // namespace raidfs::meta::region
