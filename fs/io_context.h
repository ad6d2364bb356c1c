// IoContext: what one thread needs to do member I/O — its own ring (a MemberIo and the Array's
// IoChannel over it), a bounce buffer for reads that do not fall on 4 KiB boundaries, a block
// for rebuilding a corrupt neighbour to heal, the parity of a write's whole stripes, and the
// lists a read fills (its extent map, its stripes' records, its Array requests and their
// reports), kept so that a read allocates nothing once they have grown. Made by Filesystem::make_io_context (or by a test around a
// fault-injecting MemberIo) and used by the thread that made it only.
#pragma once

#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

#include "base/units.h"
#include "base/aligned_buffer.h"
#include "meta/fs_meta.h"
#include "raid/array.h"

namespace raidfs::fs {

class IoContext {
 public:
  IoContext(std::unique_ptr<MemberIo> io, const Array& array)
      : io_(std::move(io)), channel_(array, *io_), bounce_(kBounceBytes), heal_(kBlockBytes) {}
  IoChannel& channel() { return channel_; }
  uint8_t* bounce() { return bounce_.data(); }  // kBounceBytes, 4 KiB-aligned
  static constexpr size_t kBounceBytes = 128 * 1024;
  // One block, 4 KiB-aligned: where a corrupt block found outside a read is rebuilt to be healed
  // (the bounce buffer may be the read's own destination).
  uint8_t* heal_buffer() { return heal_.data(); }
  // At least `bytes`, 4 KiB-aligned: the parity of a write's whole stripes
  // (StripeWriter::commit_whole_stripes_locked), computed while other writes compute theirs.
  uint8_t* parity_buffer(size_t bytes) {
    if (parity_.size() < bytes) parity_ = AlignedBuffer(bytes);
    return parity_.data();
  }
  // One stripe a read takes whole blocks of: its record, the views of its parity rows that the
  // read's Array request points at (open stripes), and the mapping read from it.
  struct MappedStripe {
    meta::Stripe record;
    std::vector<ParityRowRef> parity_rows;
    const meta::Mapping* mapping = nullptr;
  };
  // A read's lists, reused (Filesystem::read_committed and read_mappings; not re-entered).
  std::vector<meta::Mapping>& read_map() { return read_map_; }
  std::vector<std::pair<uint64_t, uint64_t>>& pending_ranges() { return pending_ranges_; }
  std::vector<MappedStripe>& mapped_stripes() { return mapped_stripes_; }
  std::vector<ReadRequest>& read_requests() { return read_requests_; }
  std::vector<ReadReport>& read_reports() { return read_reports_; }
  // A read's extent that is not on block boundaries, read stripe by stripe through the bounce
  // buffer (Filesystem::read_mapping): its stripe and its one request, apart from the lists
  // above, which the read is filling meanwhile.
  struct UnalignedRead {
    MappedStripe stripe;
    std::vector<ReadRequest> request;  // one
    std::vector<ReadReport> report;    // one
  };
  UnalignedRead& unaligned_read() { return unaligned_read_; }

 private:
  std::unique_ptr<MemberIo> io_;
  IoChannel channel_;
  AlignedBuffer bounce_;
  AlignedBuffer heal_;
  AlignedBuffer parity_;  // grown on first use
  std::vector<meta::Mapping> read_map_;
  std::vector<std::pair<uint64_t, uint64_t>> pending_ranges_;  // file ranges the read found pending
  std::vector<MappedStripe> mapped_stripes_;
  std::vector<ReadRequest> read_requests_;
  std::vector<ReadReport> read_reports_;
  UnalignedRead unaligned_read_;
};

}  // namespace raidfs::fs
