// MetaRegion: where the metadata's blocks live on the members of a self-contained array.
//
// A self-contained array keeps its metadata database on the members, beside the data, so that it
// survives whatever the data survives. Every member has the same region: `bytes` at `offset`,
// between the superblock and the data area. The region holds logical blocks of 4 KiB, each
// mirrored on `copies` = m+1 distinct members — m members lost still leave one copy, exactly the
// loss the stripes' parity covers (btrfs pairs RAID6 data with RAID1C3 metadata the same way).
//
// The layout, once: each member's region is cut into rows of kRowBytes. Logical row r has its
// copy j in slot s = r·copies + j of a sequence that walks the members round-robin — member
// s mod n, that member's row s div n. The copies of a row sit on consecutive members, so they are
// always distinct (copies ≤ n), every member carries the same share, and the logical rows number
// ⌊n · rows_per_member / copies⌋. Within a row, logical blocks are contiguous on every copy, so a
// run of blocks inside one row is one I/O per copy.
//
//   members n=4, copies 3 (RAID6): slot → (member, row)
//     row 0: copies on members 0,1,2 (member rows 0,0,0)
//     row 1: copies on members 3,0,1 (member rows 0,1,1)
//     row 2: copies on members 2,3,0 (member rows 1,1,2) ...
//
// The region knows nothing of what the blocks hold (meta/region_fs.h gives them a format).
#pragma once

#include <cstdint>
#include <optional>

#include "base/result.h"

namespace raidfs {

class MetaRegion {
 public:
  static constexpr uint32_t kBlockBytes = 4096;
  static constexpr uint64_t kRowBytes = uint64_t{1} << 20;
  static constexpr uint32_t kRowBlocks = kRowBytes / kBlockBytes;

  // EINVAL: copies not in [1, members], offset or bytes not multiples of kRowBytes, a region of
  // less than one logical row.
  static Result<MetaRegion> create(uint32_t members, uint32_t copies, uint64_t offset,
                                   uint64_t bytes);
  MetaRegion() = default;

  uint32_t members() const { return n_; }
  uint32_t copies() const { return copies_; }
  uint64_t offset() const { return offset_; }       // on each member
  uint64_t member_bytes() const { return bytes_; }  // on each member
  uint64_t row_count() const { return rows_; }
  uint64_t block_count() const { return rows_ * kRowBlocks; }
  uint64_t logical_bytes() const { return block_count() * kBlockBytes; }
  // The first block past the row holding `block`: a run that one I/O per copy can cover ends there.
  uint64_t run_end(uint64_t block) const { return (block / kRowBlocks + 1) * kRowBlocks; }

  struct Place {
    uint32_t member;
    uint64_t offset;  // bytes on the member
  };
  // Where copy `copy` of `block` is. Requires block < block_count(), copy < copies().
  Place place(uint64_t block, uint32_t copy) const {
    const uint64_t row = block / kRowBlocks;
    const uint64_t slot = row * copies_ + copy;
    return {static_cast<uint32_t>(slot % n_),
            offset_ + (slot / n_) * kRowBytes + (block % kRowBlocks) * kBlockBytes};
  }
  // Which copy of `block` the member holds, if any.
  std::optional<uint32_t> copy_on(uint64_t block, uint32_t member) const {
    const uint64_t first = (block / kRowBlocks) * copies_;
    const uint32_t j = static_cast<uint32_t>((member + n_ - first % n_) % n_);
    if (j < copies_) return j;
    return std::nullopt;
  }

  // What mkfs.raidfs gives the metadata when not told (-M): 2% of the data capacity, at least
  // 64 MiB (RocksDB's logs, tables and a compaction's room) and at most 64 GiB.
  static uint64_t default_logical_bytes(uint64_t data_capacity);

  // The per-member bytes a region needs to give `logical_bytes` of mirrored blocks (rounded up to
  // whole rows).
  static uint64_t member_bytes_for(uint64_t logical_bytes, uint32_t members, uint32_t copies);

 private:
  MetaRegion(uint32_t n, uint32_t copies, uint64_t offset, uint64_t bytes)
      : n_(n), copies_(copies), offset_(offset), bytes_(bytes),
        rows_(bytes / kRowBytes * n / copies) {}

  uint32_t n_ = 0;
  uint32_t copies_ = 0;
  uint64_t offset_ = 0;
  uint64_t bytes_ = 0;
  uint64_t rows_ = 0;
};

}  // namespace raidfs
