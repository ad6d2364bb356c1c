// Journal: the region filesystem's allocation log. See region_journal.h.
#include "meta/region_journal.h"

#include <algorithm>
#include <set>

#include "base/aligned_buffer.h"
#include "meta/region_block.h"

namespace raidfs::meta::region {
namespace {

// A record in a block: type u8, body length u16, then the body: id, a, b, c (u64 each), name.
constexpr size_t kRecordHead = 3;
constexpr size_t kRecordFixed = 32;
// A block's payload begins with the checksum of the block before it (the chain).
constexpr size_t kChainBytes = 4;

void encode_record(const Record& r, uint8_t* out) {
  out[0] = static_cast<uint8_t>(r.type);
  const uint16_t body = static_cast<uint16_t>(kRecordFixed + r.name.size());
  std::memcpy(out + 1, &body, 2);
  store64(out + 3, r.id);
  store64(out + 11, r.a);
  store64(out + 19, r.b);
  store64(out + 27, r.c);
  std::memcpy(out + kRecordHead + kRecordFixed, r.name.data(), r.name.size());
}

// Parses the records of one block's payload; false when they do not parse.
bool decode_records(const uint8_t* p, size_t bytes, Batch& out) {
  size_t at = 0;
  while (at < bytes) {
    if (bytes - at < kRecordHead) return false;
    uint16_t body;
    std::memcpy(&body, p + at + 1, 2);
    if (body < kRecordFixed || bytes - at - kRecordHead < body) return false;
    const uint8_t type = p[at];
    if (type < static_cast<uint8_t>(RecordType::kCounters) || type > static_cast<uint8_t>(RecordType::kTrim))
      return false;
    const uint8_t* b = p + at + kRecordHead;
    Record r{static_cast<RecordType>(type), load64(b), load64(b + 8), load64(b + 16), load64(b + 24),
             std::string(reinterpret_cast<const char*>(b + kRecordFixed), body - kRecordFixed)};
    out.push_back(std::move(r));
    at += kRecordHead + body;
  }
  return true;
}

// Reads `block` from the first copy for which `good` holds; false when none does. Copies that
// cannot be read count as not good.
template <class Good>
Result<bool> read_any_copy(RegionDevice& device, uint64_t block, uint8_t* dest, const Good& good) {
  bool any_read = false;
  Error last{EIO, "no copy could be read"};
  for (uint32_t c = 0; c < device.copy_count(); ++c) {
    auto r = device.read(block, 1, c, dest);
    if (!r) {
      last = r.error();
      continue;
    }
    any_read = true;
    if (good(dest)) return true;
  }
  if (!any_read) return fail(last.code, "journal block " + std::to_string(block) + ": " + last.message);
  return false;
}

}  // namespace

size_t record_bytes(const Record& r) { return kRecordHead + kRecordFixed + r.name.size(); }

uint64_t Journal::area_blocks_for(uint64_t region_blocks) {
  return std::clamp<uint64_t>(region_blocks / 64, 64, 2048);
}

bool Journal::block_is_current(const uint8_t* block, uint64_t index) const {
  BlockHeader h;
  return open_block(block, salt_, &h) && h.owner == kJournalOwner && h.allocation == epoch_ &&
         h.index == index;
}

Result<std::pair<uint64_t, uint32_t>> Journal::write_blocks(RegionDevice& device, uint32_t area,
                                                            uint64_t epoch, uint64_t at,
                                                            uint32_t prev_crc,
                                                            const Batch& batch) const {
  // Lay the records out block by block: a record never spans two.
  std::vector<std::pair<size_t, size_t>> spans;  // per block: [first record, end record)
  size_t used = kChainBytes, first = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const size_t bytes = record_bytes(batch[i]);
    if (kChainBytes + bytes > kPayloadBytes)
      return fail(EINVAL, "journal record too large (" + std::to_string(bytes) + " bytes)");
    if (used + bytes > kPayloadBytes) {
      spans.emplace_back(first, i);
      first = i;
      used = kChainBytes;
    }
    used += bytes;
  }
  spans.emplace_back(first, batch.size());
  const uint64_t count = spans.size();
  if (at + count > area_blocks_)
    return fail(ENOSPC, "the metadata region's journal area is full");

  AlignedBuffer blocks(count * kBlockBytes);
  uint32_t chain = prev_crc;
  for (uint64_t b = 0; b < count; ++b) {
    uint8_t* block = blocks.data() + b * kBlockBytes;
    uint8_t* payload = block + kHeaderBytes;
    store32(payload, chain);
    size_t pos = kChainBytes;
    for (size_t i = spans[b].first; i < spans[b].second; ++i) {
      encode_record(batch[i], payload + pos);
      pos += record_bytes(batch[i]);
    }
    BlockHeader h{kJournalOwner, epoch, static_cast<uint32_t>(at + b),
                  static_cast<uint32_t>(pos) | (b + 1 == count ? kBatchEnd : 0)};
    seal_block(block, h, salt_);
    chain = stored_crc(block);
  }
  // One write per run of the region (a run never crosses a row of the members).
  const uint64_t base = uint64_t{area} * area_blocks_ + at;
  for (uint64_t done = 0; done < count;) {
    const uint64_t n = std::min(count - done, device.run_end(base + done) - (base + done));
    RAIDFS_CHECK(device.write(base + done, static_cast<uint32_t>(n), blocks.data() + done * kBlockBytes));
    done += n;
  }
  return std::pair<uint64_t, uint32_t>{count, chain};
}

Result<Journal> Journal::format(RegionDevice& device, uint32_t salt, const Batch& snapshot) {
  const uint64_t area = area_blocks_for(device.block_count());
  if (device.block_count() < 4 * area)
    return fail(ENOSPC, "the metadata region is too small (" +
                            std::to_string(device.block_count() * kBlockBytes >> 20) + " MiB)");
  Journal j(area, salt);
  j.area_ = 1;  // roll() writes area 0
  RAIDFS_CHECK(j.roll(device, snapshot));
  return j;
}

Result<bool> Journal::read_area(RegionDevice& device, uint32_t area, uint64_t epoch,
                                Replayed* out) {
  AlignedBuffer block(kBlockBytes);
  Batch pending;
  std::vector<Batch> batches;
  uint32_t chain = 0, chain_at_tail = 0;
  uint64_t tail = 0;
  for (uint64_t i = 0; i < area_blocks_; ++i) {
    const uint32_t expect_prev = chain;
    auto got = read_any_copy(device, uint64_t{area} * area_blocks_ + i, block.data(),
                             [&](const uint8_t* b) {
                               BlockHeader h;
                               return open_block(b, salt_, &h) && h.owner == kJournalOwner &&
                                      h.allocation == epoch && h.index == i &&
                                      load32(b + kHeaderBytes) == expect_prev;
                             });
    if (!got) return std::unexpected(got.error());
    if (!*got) break;
    BlockHeader h;
    open_block(block.data(), salt_, &h);
    const size_t used = h.used & ~kBatchEnd;
    if (used < kChainBytes ||
        !decode_records(block.data() + kHeaderBytes + kChainBytes, used - kChainBytes, pending))
      break;  // a block that is intact but does not parse ends the journal like a torn one
    chain = stored_crc(block.data());
    if (h.used & kBatchEnd) {
      batches.push_back(std::move(pending));
      pending.clear();
      tail = i + 1;
      chain_at_tail = chain;
    }
  }
  if (batches.empty()) return false;  // no complete snapshot
  area_ = area;
  epoch_ = epoch;
  tail_ = tail;
  last_crc_ = chain_at_tail;
  out->snapshot = std::move(batches.front());
  out->batches.assign(std::make_move_iterator(batches.begin() + 1),
                      std::make_move_iterator(batches.end()));
  return true;
}

Result<Journal> Journal::open(RegionDevice& device, uint32_t salt, Replayed* out) {
  Journal j(area_blocks_for(device.block_count()), salt);
  if (device.block_count() < 4 * j.area_blocks_)
    return fail(EUCLEAN, "the metadata region is too small to hold a journal");
  // Every epoch that some copy of either area's block 0 claims, newest first.
  std::set<std::pair<uint64_t, uint32_t>, std::greater<>> candidates;  // (epoch, area)
  AlignedBuffer block(kBlockBytes);
  for (uint32_t area = 0; area < 2; ++area)
    for (uint32_t c = 0; c < device.copy_count(); ++c) {
      if (!device.read(uint64_t{area} * j.area_blocks_, 1, c, block.data())) continue;
      BlockHeader h;
      if (open_block(block.data(), salt, &h) && h.owner == kJournalOwner && h.index == 0)
        candidates.emplace(h.allocation, area);
    }
  for (const auto& [epoch, area] : candidates) j.newest_epoch_seen_ = std::max(j.newest_epoch_seen_, epoch);
  for (const auto& [epoch, area] : candidates) {
    *out = Replayed{};
    RAIDFS_TRY(bool complete, j.read_area(device, area, epoch, out));
    if (complete) return j;
  }
  return fail(EUCLEAN, "no intact journal in the metadata region (not a self-contained raidfs "
                       "array, or its metadata is damaged beyond its copies)");
}

Result<void> Journal::append(RegionDevice& device, const Batch& batch) {
  if (batch.empty()) return {};
  RAIDFS_TRY(auto written, write_blocks(device, area_, epoch_, tail_, last_crc_, batch));
  tail_ += written.first;
  last_crc_ = written.second;
  return {};
}

Result<void> Journal::roll(RegionDevice& device, const Batch& snapshot) {
  const uint32_t area = 1 - area_;
  const uint64_t epoch = newest_epoch_seen_ + 1;
  newest_epoch_seen_ = epoch;  // a torn attempt's blocks carry it: the next attempt goes above
  RAIDFS_TRY(auto written, write_blocks(device, area, epoch, 0, 0, snapshot));
  RAIDFS_CHECK(device.flush());
  area_ = area;
  epoch_ = epoch;
  tail_ = written.first;
  last_crc_ = written.second;
  return {};
}

}  // namespace raidfs::meta::region
