// Filesystem: the read path — pending data from the open stripe, committed data through the
// extents to verified (rebuilt where it must be) stripe blocks, and self-heal. See filesystem.h.
#include <sys/stat.h>

#include <cstring>
#include <mutex>
#include <shared_mutex>

#include "base/log.h"
#include "fs/filesystem.h"
#include "fs/stripe_writer.h"

namespace raidfs::fs {
namespace {

constexpr uint64_t kBlock = kBlockBytes;

uint64_t round_up(uint64_t v) { return (v + kBlock - 1) / kBlock * kBlock; }
bool is_reg(const meta::Inode& i) { return S_ISREG(i.mode); }

}  // namespace

Result<size_t> Filesystem::read(IoContext& ctx, uint64_t ino, uint64_t offset, size_t size,
                                uint8_t* dest) {
  RAIDFS_TRY(const meta::Inode inode, inode_for_read(ino));
  if (S_ISDIR(inode.mode)) return fail(EISDIR, "read of a directory");
  if (!is_reg(inode)) return fail(EINVAL, "read of a special file");
  if (offset >= inode.size || size == 0) return size_t{0};
  const uint64_t length = std::min<uint64_t>(size, inode.size - offset);
  const uint64_t end = offset + length;

  // Pending data first: anything committed after this point was pending now, so the gaps are
  // either committed already or newer than this read.
  bool on_member = false;
  std::vector<std::pair<uint64_t, uint64_t>>& covered = ctx.pending_ranges();
  writer_->read_pending(ino, offset, length, dest, &on_member, &covered);
  if (on_member) {
    // Pending blocks written to the members straight from their writer are not in memory:
    // committed first (and every other write acknowledged before this read with them), they
    // read as committed data, verified and rebuilt where a member failed meanwhile.
    RAIDFS_CHECK(writer_->flush(ctx, ino));
    RAIDFS_CHECK(read_committed(ctx, ino, offset, end, dest));
    return static_cast<size_t>(length);
  }
  uint64_t pending_bytes = 0, cursor = offset;
  for (const auto& [a, b] : covered) {
    pending_bytes += b - a;
    if (a > cursor) RAIDFS_CHECK(read_committed(ctx, ino, cursor, a, dest + (cursor - offset)));
    cursor = b;
  }
  if (cursor < end) RAIDFS_CHECK(read_committed(ctx, ino, cursor, end, dest + (cursor - offset)));
  counters_.copied_read += pending_bytes;
  return static_cast<size_t>(length);
}

Result<void> Filesystem::read_committed(IoContext& ctx, uint64_t ino, uint64_t begin, uint64_t end,
                                        uint8_t* dest) {
  // A stripe freed under this reader (the file truncated, overwritten or cleaned meanwhile)
  // cannot be handed out again while the lock is held; the map is read again from where the
  // reader got to if its record is gone. Only a mapping that goes stale again and again fails.
  uint64_t pos = begin;
  for (int stale = 0;;) {
    std::shared_lock reuse(stripe_reuse_);
    const uint64_t before = pos;
    Result<void> r = [&]() -> Result<void> {
      std::vector<meta::Mapping>& maps = ctx.read_map();
      while (pos < end) {
        // Past the committed size is a hole: data never committed reads as zeros.
        RAIDFS_CHECK(meta_->map_extents(ino, pos, end, &maps));
        if (maps.empty()) return fail(EIO, "the extent map of a read came back empty");
        RAIDFS_CHECK(read_mappings(ctx, maps, dest + (maps.front().file_offset - begin)));
        pos = maps.back().file_offset + maps.back().length;
      }
      return {};
    }();
    if (r || r.error().code != ESTALE) return r;
    if (pos > before) stale = 0;
    if (++stale == 8) return r;
  }
}

Result<void> Filesystem::read_mappings(IoContext& ctx, std::span<const meta::Mapping> maps,
                                       uint8_t* dest) {
  const uint64_t base = maps.front().file_offset;
  // The stripes of the whole-block mappings, with what their Array requests point at: the
  // context's list, its first `count` in use (their vectors keep their capacity between reads).
  std::vector<IoContext::MappedStripe>& held = ctx.mapped_stripes();
  size_t count = 0;
  for (const meta::Mapping& m : maps) {
    uint8_t* out = dest + (m.file_offset - base);
    if (m.hole) {
      std::memset(out, 0, m.length);
    } else if (m.stripe_offset % kBlock != 0 || m.length % kBlock != 0 ||
               reinterpret_cast<uintptr_t>(out) % kBlock != 0) {
      RAIDFS_CHECK(read_mapping(ctx, m, out));
    } else {
      if (held.size() == count) held.emplace_back();
      IoContext::MappedStripe& h = held[count++];
      RAIDFS_CHECK(mapped_stripe(m, &h.record));
      h.mapping = &m;
    }
  }
  if (count == 0) return {};
  // Requests built once every Held is in place: they point into it.
  std::vector<ReadRequest>& requests = ctx.read_requests();
  std::vector<ReadReport>& reports = ctx.read_reports();
  requests.clear();
  for (size_t i = 0; i < count; ++i) {
    IoContext::MappedStripe& h = held[i];
    requests.push_back(stripe_read(h.record, h.parity_rows, h.mapping->stripe_offset,
                                   static_cast<uint32_t>(h.mapping->length),
                                   dest + (h.mapping->file_offset - base)));
  }
  reports.resize(requests.size());
  if (auto r = array_->read(ctx.channel(), requests, reports); !r) {
    if (r.error().code == EIO) ++counters_.unreadable;
    RAIDFS_LOG(kError, "%s", r.error().message.c_str());
    return r;
  }
  for (size_t i = 0; i < count; ++i)
    absorb_read_report(ctx, held[i].record, requests[i].offset, requests[i].dest, reports[i],
                       /*heal_neighbours=*/true);
  return {};
}

Result<void> Filesystem::mapped_stripe(const meta::Mapping& m, meta::Stripe* out) {
  if (auto found = meta_->get_stripe(m.stripe_id, out); !found) {
    if (found.error().code == ENOENT) return fail(ESTALE, "stripe freed during the read");
    return found;
  }
  if (out->state == meta::StripeState::kFree ||
      uint64_t{m.stripe_offset} + m.length > out->filled_bytes)
    return fail(ESTALE, "stripe reused during the read");
  return {};
}

Result<void> Filesystem::read_mapping(IoContext& ctx, const meta::Mapping& m, uint8_t* dest) {
  IoContext::UnalignedRead& one = ctx.unaligned_read();
  RAIDFS_CHECK(mapped_stripe(m, &one.stripe.record));
  // Blocks [at, at + n) of the stripe into out, with the context's lists (no allocation).
  auto read_blocks = [&](uint64_t at, uint32_t n, uint8_t* out) {
    return read_stripe_blocks(ctx, one.stripe.record, at, n, out, /*heal_neighbours=*/true,
                              one.stripe.parity_rows, one.request, one.report);
  };
  uint64_t done = 0;
  while (done < m.length) {
    const uint64_t at = m.stripe_offset + done;
    uint8_t* out = dest + done;
    const uint64_t skew = at % kBlock;
    if (skew == 0 && reinterpret_cast<uintptr_t>(out) % kBlock == 0 && m.length - done >= kBlock) {
      // Whole blocks straight into the destination.
      const uint64_t n = std::min<uint64_t>((m.length - done) / kBlock * kBlock, 1u << 30);
      RAIDFS_CHECK(read_blocks(at, static_cast<uint32_t>(n), out));
      done += n;
    } else {
      const uint64_t n = std::min<uint64_t>(m.length - done, IoContext::kBounceBytes - skew);
      RAIDFS_CHECK(read_blocks(at - skew, static_cast<uint32_t>(round_up(skew + n)), ctx.bounce()));
      std::memcpy(out, ctx.bounce() + skew, n);
      counters_.copied_read += n;
      done += n;
    }
  }
  return {};
}

ReadRequest Filesystem::stripe_read(const meta::Stripe& stripe,
                                    std::vector<ParityRowRef>& parity_rows, uint64_t offset,
                                    uint32_t length, uint8_t* dest) const {
  const Geometry& g = array_->geometry();
  ReadRequest req;
  req.ref.stripe = stripe.id;
  req.ref.generation = stripe.generation;
  req.ref.block_crcs = stripe.block_crcs;  // one per filled block: the Array checks no others
  req.ref.filled_blocks = static_cast<uint32_t>(round_up(stripe.filled_bytes) / kBlock);
  if (stripe.state == meta::StripeState::kOpen) {
    // Its parity lives in the metadata, per 4 KiB row (rows not listed hold no data: zeros),
    // and is copied only if this read has to rebuild. A row of the wrong shape (a corrupt
    // record) is left out: a rebuild through it fails its checksums rather than lying.
    parity_rows.clear();
    for (const meta::ParityRow& row : stripe.parity_rows)
      if (uint64_t{row.row_index + 1} * kBlock <= g.chunk_bytes() &&
          row.bytes.size() == size_t{g.parity_count()} * kBlock &&
          (parity_rows.empty() || parity_rows.back().row < row.row_index))
        parity_rows.push_back(
            {row.row_index, reinterpret_cast<const uint8_t*>(row.bytes.data())});
    req.ref.parity_rows = parity_rows;
    req.ref.parity_in_rows = true;
  }
  req.offset = offset;
  req.length = length;
  req.dest = dest;
  return req;
}

void Filesystem::absorb_read_report(IoContext& ctx, const meta::Stripe& stripe, uint64_t offset,
                                    uint8_t* dest, const ReadReport& report, bool heal_neighbours) {
  counters_.reconstructed += report.reconstructed_blocks;
  counters_.corrupt += report.corrupt_blocks.size();
  for (uint32_t block : report.corrupt_blocks) {
    RAIDFS_LOG(kWarning, "stripe %llu block %u failed its checksum; rebuilt from parity",
               static_cast<unsigned long long>(stripe.id), block);
    heal_block(ctx, stripe, block, dest + (uint64_t{block} * kBlock - offset));
  }
  // Corrupt blocks of the same rows outside this request: read each on its own (which rebuilds
  // it into the context's heal buffer, verified) and heal it from there. Not recursively: a
  // neighbour's own neighbours are in this list already.
  const bool healable = stripe.state == meta::StripeState::kSealed && !options_.read_only;
  for (uint32_t block : report.corrupt_neighbours) {
    if (!heal_neighbours || !healable) break;
    (void)read_stripe_blocks(ctx, stripe, uint64_t{block} * kBlock, kBlockBytes,
                             ctx.heal_buffer(), /*heal_neighbours=*/false);
  }
}

Result<void> Filesystem::read_stripe_blocks(IoContext& ctx, const meta::Stripe& stripe,
                                            uint64_t offset, uint32_t length, uint8_t* dest,
                                            bool heal_neighbours) {
  // Lists of its own: a heal reads from inside a read that is using the context's.
  std::vector<ParityRowRef> parity_rows;
  std::vector<ReadRequest> request;
  std::vector<ReadReport> report;
  return read_stripe_blocks(ctx, stripe, offset, length, dest, heal_neighbours, parity_rows,
                            request, report);
}

Result<void> Filesystem::read_stripe_blocks(IoContext& ctx, const meta::Stripe& stripe,
                                            uint64_t offset, uint32_t length, uint8_t* dest,
                                            bool heal_neighbours,
                                            std::vector<ParityRowRef>& parity_rows,
                                            std::vector<ReadRequest>& request,
                                            std::vector<ReadReport>& report) {
  request.resize(1);
  report.resize(1);
  request[0] = stripe_read(stripe, parity_rows, offset, length, dest);
  if (auto r = array_->read(ctx.channel(), request, report); !r) {
    if (r.error().code == EIO) ++counters_.unreadable;
    RAIDFS_LOG(kError, "%s", r.error().message.c_str());
    return r;
  }
  absorb_read_report(ctx, stripe, offset, dest, report[0], heal_neighbours);
  return {};
}

// Heals only sealed stripes (their content never changes) and only with verified content: the
// rebuilt block is what the checksum says, so parity coverage is unchanged.
void Filesystem::heal_block(IoContext& ctx, const meta::Stripe& stripe, uint32_t block,
                            const uint8_t* good) {
  if (stripe.state != meta::StripeState::kSealed || options_.read_only) return;
  if (auto healed = array_->write_data(ctx.channel(), stripe.id, uint64_t{block} * kBlock,
                                       kBlockBytes, good);
      healed) {
    ++counters_.healed;
    RAIDFS_LOG(kInfo, "stripe %llu block %u healed", static_cast<unsigned long long>(stripe.id),
               block);
  } else {
    RAIDFS_LOG(kWarning, "stripe %llu block %u could not be healed: %s",
               static_cast<unsigned long long>(stripe.id), block, healed.error().message.c_str());
  }
}

}  // namespace raidfs::fs
