// Array I/O: stripe writes, verified reads, reconstruction, member failure.
#include "raid/array.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cstring>

#include "raid/checksum.h"

namespace raidfs {
namespace {

bool aligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % kBlockBytes == 0; }

// Per-block state of a read, kept in IoChannel::block_flags_.
enum BlockFlag : uint8_t { kBlockOk = 0, kBlockNeeded = 1, kBlockCorrupt = 2 };

}  // namespace

IoChannel::IoChannel(const Array& array, MemberIo& io)
    : io_(io), scratch_(uint64_t{array.geometry().member_count()} * array.geometry().chunk_bytes()) {
  batch_.reserve(2 * array.geometry().member_count());
  block_flags_.reserve(array.geometry().data_count() * array.geometry().blocks_per_chunk());
}

IoChannel::~IoChannel() {
  if (registered_) (void)io_.register_buffers({});
}

Result<void> IoChannel::register_buffers(std::span<const std::span<uint8_t>> ranges) {
  std::vector<std::span<uint8_t>> all(ranges.begin(), ranges.end());
  all.emplace_back(scratch_.data(), scratch_.size());
  RAIDFS_CHECK(io_.register_buffers(all));
  registered_ = true;
  return {};
}

std::vector<std::string> Array::warnings() const {
  std::lock_guard lock(superblock_mutex_);
  return warnings_;
}

MemberErrors Array::member_errors(uint32_t member) const {
  if (member >= geometry_.member_count()) return {};
  const ErrorCounters& c = errors_[member];
  return {c.read.load(), c.write.load(), c.checksum.load()};
}

void Array::mark_failed(uint32_t member, const std::string& reason) {
  fail_member(member, reason, nullptr);
}

void Array::fail_member(uint32_t member, const std::string& reason, MemberIo* io) {
  if (member >= geometry_.member_count()) return;
  // The state changes under the lock and stays locked until it is on the members, so a writer
  // that saw the member failed waits (settle_states) until that is durable before it
  // acknowledges a write that skipped the member.
  std::lock_guard lock(superblock_mutex_);
  MemberState expected = MemberState::kActive;
  if (!states_[member].compare_exchange_strong(expected, MemberState::kFailed)) {
    // A member being rebuilt fails the same way (the rebuild then stops).
    expected = MemberState::kRebuilding;
    if (!states_[member].compare_exchange_strong(expected, MemberState::kFailed)) return;
  }
  member_since_[member] = 0;  // what a failed member holds is not trusted
  warnings_.push_back("member " + std::to_string(member) + " (" + paths_[member] + ") failed: " + reason);
  // Beyond m failures the array has stopped; the superblocks keep the last state it could serve
  // in, so once the cause is fixed (a cable, a controller) the array opens again as it was.
  if (unavailable_count() <= geometry_.parity_count()) persist_states_locked(io);
}

Result<void> Array::settle_states(IoChannel& channel) {
  if (unavailable_count() == 0) return {};
  std::lock_guard lock(superblock_mutex_);  // waits out a failure being recorded
  if (!states_recorded_ && unavailable_count() <= geometry_.parity_count())
    persist_states_locked(&channel.io_);
  if (states_recorded_) return {};
  return fail(EIO, "a member failure is not recorded on enough superblocks (at least " +
                       std::to_string(geometry_.parity_count() + 1) +
                       " or every active member); writes are refused until it is");
}

Result<void> Array::begin_rebuild(uint32_t member, uint64_t from_generation, uint64_t cursor) {
  if (member >= geometry_.member_count()) return fail(EINVAL, "no member " + std::to_string(member));
  std::lock_guard lock(superblock_mutex_);
  if (fds_[member] < 0)
    return fail(ENXIO, "member " + std::to_string(member) + " has no device (give a new one: replace)");
  for (uint32_t i = 0; i < geometry_.member_count(); ++i)
    if (i != member && states_[i].load() == MemberState::kRebuilding)
      return fail(EBUSY, "member " + std::to_string(i) + " is being rebuilt already");
  const MemberState s = states_[member].load();
  if (s == MemberState::kActive)
    return fail(EINVAL, "member " + std::to_string(member) + " is active: nothing to rebuild");
  // The bounds first, then the state: a reader that sees kRebuilding sees them too. Its region
  // copies are read again only once the metadata has restored them.
  meta_restored_[member] = false;
  rebuild_cursor_[member] = cursor;
  rebuild_from_generation_[member] = from_generation;
  if (s != MemberState::kRebuilding) {
    states_[member] = MemberState::kRebuilding;
    persist_states_locked(nullptr);
  }
  return {};
}

void Array::advance_rebuild(uint32_t member, uint64_t cursor) {
  if (member < geometry_.member_count()) rebuild_cursor_[member] = cursor;
}

Result<void> Array::finish_rebuild(uint32_t member) {
  if (member >= geometry_.member_count()) return fail(EINVAL, "no member " + std::to_string(member));
  std::lock_guard lock(superblock_mutex_);
  MemberState expected = MemberState::kRebuilding;
  if (!states_[member].compare_exchange_strong(expected, MemberState::kActive))
    return fail(EINVAL, "member " + std::to_string(member) + " is not being rebuilt");
  drop_replace_source_locked();
  persist_states_locked(nullptr);
  warnings_.push_back("member " + std::to_string(member) + " (" + paths_[member] + ") rebuilt");
  return {};
}

Result<void> Array::check_quorum(std::string_view what, std::optional<uint64_t> stripe) const {
  if (unavailable_count() <= geometry_.parity_count()) return {};
  std::string who;
  for (uint32_t i = 0; i < geometry_.member_count(); ++i)
    if (!usable(i))
      who += (who.empty() ? "" : ", ") + std::to_string(i) + " (" + member_state_name(member_state(i)) + ")";
  return fail(EIO, std::string(what) + (stripe ? " " + std::to_string(*stripe) : "") +
                       ": more members unavailable than parity covers (" +
                       std::to_string(geometry_.parity_count()) + "): members " + who);
}

Result<void> Array::execute(IoChannel& channel) {
  channel.io_.execute(channel.batch_);
  Result<void> outcome;
  for (const IoRequest& r : channel.batch_) {
    if (r.ok()) continue;
    const int error = r.result < 0 ? -r.result : EIO;
    const char* op = r.op == IoOp::kRead ? "read" : r.op == IoOp::kWrite ? "write" : "flush";
    ++(r.op == IoOp::kRead ? errors_[r.member].read : errors_[r.member].write);
    if (is_device_error(error)) {
      fail_member(r.member, std::string(op) + " error: " + std::strerror(error), &channel.io_);
      continue;
    }
    // Not the member's fault (the host filesystem under an image is full, a request the kernel
    // refused): the member stays, the caller gets the error, and the user hears of it once.
    std::lock_guard lock(superblock_mutex_);
    const std::string what = "member " + std::to_string(r.member) + " (" + paths_[r.member] + "): " + op +
                             " refused: " + std::strerror(error);
    if (outcome) outcome = fail(error, what);
    const std::pair<uint32_t, int> key{r.member, error};
    if (std::find(refusals_warned_.begin(), refusals_warned_.end(), key) == refusals_warned_.end()) {
      refusals_warned_.push_back(key);
      warnings_.push_back(what + (error == ENOSPC ? " (is the filesystem holding it full?)" : ""));
    }
  }
  return outcome;
}

Result<void> Array::write_stripe(IoChannel& channel, uint64_t stripe, uint8_t* buffer, bool flush) {
  if (stripe >= geometry_.stripe_count() || !aligned(buffer))
    return fail(EINVAL, "write of stripe " + std::to_string(stripe) + ": out of range or misaligned buffer");
  const uint32_t k = geometry_.data_count(), n = geometry_.member_count();
  const uint32_t chunk = geometry_.chunk_bytes();
  std::array<uint8_t*, kMembersMax> slots;
  for (uint32_t s = 0; s < n; ++s) slots[s] = buffer + uint64_t{s} * chunk;
  codec_.encode(slots.data(), slots.data() + k, chunk);
  const StripeWrite whole{stripe, buffer, slots[k]};
  RAIDFS_CHECK(write_stripes(channel, {&whole, 1}));
  return flush ? this->flush(channel) : Result<void>{};
}

Result<void> Array::write_data(IoChannel& channel, uint64_t stripe, uint64_t offset, uint32_t length,
                               const uint8_t* source) {
  if (stripe >= geometry_.stripe_count() || offset % kBlockBytes || length % kBlockBytes ||
      offset > geometry_.stripe_data_bytes() || length > geometry_.stripe_data_bytes() - offset || !aligned(source))
    return fail(EINVAL, "write to stripe " + std::to_string(stripe) + ": misaligned or out of range");
  RAIDFS_CHECK(check_quorum("cannot write stripe", stripe));
  const uint32_t chunk = geometry_.chunk_bytes();
  channel.batch_.clear();
  for (uint64_t pos = offset; pos < offset + length;) {
    uint32_t index = static_cast<uint32_t>(pos / chunk), in_chunk = static_cast<uint32_t>(pos % chunk);
    uint32_t len = static_cast<uint32_t>(std::min<uint64_t>(chunk - in_chunk, offset + length - pos));
    MemberAddress a = geometry_.locate(stripe, index, in_chunk);
    if (writable(a.member))
      channel.batch_.push_back({IoOp::kWrite, a.member, a.offset, len, const_cast<uint8_t*>(source + (pos - offset)), 0});
    pos += len;
  }
  RAIDFS_CHECK(execute(channel));
  RAIDFS_CHECK(check_quorum("cannot write stripe", stripe));
  RAIDFS_CHECK(settle_states(channel));
  return {};
}

Result<void> Array::write_stripes(IoChannel& channel, std::span<const StripeWrite> writes) {
  if (writes.empty()) return {};
  for (const StripeWrite& w : writes)
    if (w.stripe >= geometry_.stripe_count() || !aligned(w.data) || !aligned(w.parity))
      return fail(EINVAL, "write of stripe " + std::to_string(w.stripe) + ": out of range or misaligned");
  RAIDFS_CHECK(check_quorum("cannot write stripe", writes.front().stripe));
  const uint32_t k = geometry_.data_count(), chunk = geometry_.chunk_bytes();
  channel.batch_.clear();
  for (const StripeWrite& w : writes)
    for (uint32_t s = 0; s < geometry_.member_count(); ++s) {
      const uint32_t member = geometry_.member_of(w.stripe, s);
      const uint8_t* from = s < k ? w.data + uint64_t{s} * chunk : w.parity + uint64_t{s - k} * chunk;
      if (writable(member))
        channel.batch_.push_back({IoOp::kWrite, member, geometry_.row_offset(w.stripe), chunk,
                                  const_cast<uint8_t*>(from), 0});
    }
  RAIDFS_CHECK(execute(channel));
  RAIDFS_CHECK(check_quorum("cannot write stripe", writes.front().stripe));
  RAIDFS_CHECK(settle_states(channel));
  return {};
}

Result<void> Array::write_parity(IoChannel& channel, uint64_t stripe, const uint8_t* parity) {
  if (stripe >= geometry_.stripe_count() || !aligned(parity))
    return fail(EINVAL, "parity write of stripe " + std::to_string(stripe) + ": out of range or misaligned");
  RAIDFS_CHECK(check_quorum("cannot write stripe", stripe));
  const uint32_t chunk = geometry_.chunk_bytes();
  channel.batch_.clear();
  for (uint32_t j = 0; j < geometry_.parity_count(); ++j) {
    MemberAddress a = geometry_.locate_parity(stripe, j, 0);
    if (writable(a.member))
      channel.batch_.push_back({IoOp::kWrite, a.member, a.offset, chunk, const_cast<uint8_t*>(parity + uint64_t{j} * chunk), 0});
  }
  RAIDFS_CHECK(execute(channel));
  RAIDFS_CHECK(check_quorum("cannot write stripe", stripe));
  RAIDFS_CHECK(settle_states(channel));
  return {};
}

Result<void> Array::write_parity_chunk(IoChannel& channel, uint64_t stripe, uint32_t j,
                                       const uint8_t* chunk) {
  if (stripe >= geometry_.stripe_count() || j >= geometry_.parity_count() || !aligned(chunk))
    return fail(EINVAL, "parity write of stripe " + std::to_string(stripe) + ": out of range or misaligned");
  RAIDFS_CHECK(check_quorum("cannot write stripe", stripe));
  const MemberAddress a = geometry_.locate_parity(stripe, j, 0);
  channel.batch_.clear();
  if (writable(a.member))
    channel.batch_.push_back({IoOp::kWrite, a.member, a.offset, geometry_.chunk_bytes(),
                              const_cast<uint8_t*>(chunk), 0});
  RAIDFS_CHECK(execute(channel));
  RAIDFS_CHECK(check_quorum("cannot write stripe", stripe));
  return settle_states(channel);
}

Result<void> Array::flush(IoChannel& channel, uint64_t members) {
  return flush_members(channel, members, /*page_cache=*/false);
}

Result<void> Array::flush_meta(IoChannel& channel, uint64_t members) {
  return flush_members(channel, members, /*page_cache=*/true);
}

Result<void> Array::flush_members(IoChannel& channel, uint64_t members, bool page_cache) {
  channel.batch_.clear();
  for (uint32_t i = 0; i < geometry_.member_count(); ++i)
    if ((members >> i & 1) && writable(i) && (page_cache || volatile_cache_[i]))
      channel.batch_.push_back({IoOp::kFlush, i, 0, 0, nullptr, 0});
  RAIDFS_CHECK(execute(channel));
  RAIDFS_CHECK(check_quorum("cannot flush the members"));
  RAIDFS_CHECK(settle_states(channel));
  return {};
}

Result<ReadReport> Array::read(IoChannel& channel, const ReadRequest& req) {
  ReadReport report;
  RAIDFS_CHECK(read(channel, {&req, 1}, {&report, 1}));
  return report;
}

Result<void> Array::read(IoChannel& channel, std::span<const ReadRequest> reqs,
                         std::span<ReadReport> reports) {
  if (reports.size() != reqs.size()) return fail(EINVAL, "one read report per request expected");
  if (reqs.empty()) return {};
  const uint32_t blocks_per_chunk = geometry_.blocks_per_chunk();
  const uint32_t stripe_blocks = geometry_.data_count() * blocks_per_chunk;
  auto& flags = channel.block_flags_;
  auto& spans = channel.read_spans_;
  spans.clear();
  uint32_t total_blocks = 0;
  for (const ReadRequest& req : reqs) {
    const StripeRef& ref = req.ref;
    if (ref.stripe >= geometry_.stripe_count() || req.offset % kBlockBytes || req.length % kBlockBytes ||
        req.length == 0 || req.offset > geometry_.stripe_data_bytes() ||
        req.length > geometry_.stripe_data_bytes() - req.offset || !aligned(req.dest) ||
        (!ref.block_crcs.empty() && (ref.block_crcs.size() > stripe_blocks ||
                                     ref.block_crcs.size() < std::min(ref.filled_blocks, stripe_blocks))))
      return fail(EINVAL, "read of stripe " + std::to_string(ref.stripe) + ": misaligned or out of range");
    spans.push_back({total_blocks, 0, 0});
    total_blocks += req.length / kBlockBytes;
  }
  RAIDFS_CHECK(check_quorum("cannot read stripe", reqs[0].ref.stripe));
  flags.assign(total_blocks, kBlockOk);

  // 1. Read what the healthy members hold straight into the destinations: every request's reads
  // in one batch, so that a read spanning stripes waits for the members once.
  channel.batch_.clear();
  for (size_t q = 0; q < reqs.size(); ++q) {
    const ReadRequest& req = reqs[q];
    const StripeRef& ref = req.ref;
    const uint32_t first = static_cast<uint32_t>(req.offset / kBlockBytes);
    const uint32_t count = req.length / kBlockBytes;
    uint8_t* const req_flags = flags.data() + spans[q].first_flag;
    spans[q].batch_begin = static_cast<uint32_t>(channel.batch_.size());
    for (uint32_t b = first; b < first + count;) {
      const uint32_t index = b / blocks_per_chunk;
      const uint32_t run = std::min(first + count, (index + 1) * blocks_per_chunk) - b;
      const uint32_t filled = b >= ref.filled_blocks ? 0 : std::min(run, ref.filled_blocks - b);
      if (filled < run) std::memset(req.dest + uint64_t{b + filled - first} * kBlockBytes, 0,
                                    uint64_t{run - filled} * kBlockBytes);  // never written: zeros
      if (filled > 0) {
        MemberAddress a = geometry_.locate(ref.stripe, index, (b % blocks_per_chunk) * kBlockBytes);
        if (readable(a.member, ref.stripe, ref.generation) && !req.force_reconstruct)
          channel.batch_.push_back({IoOp::kRead, a.member, a.offset, filled * kBlockBytes,
                                    req.dest + uint64_t{b - first} * kBlockBytes, 0});
        else
          std::fill_n(req_flags + (b - first), filled, kBlockNeeded);
      }
      b += run;
    }
    spans[q].batch_end = static_cast<uint32_t>(channel.batch_.size());
  }
  RAIDFS_CHECK(execute(channel));
  for (size_t q = 0; q < reqs.size(); ++q) {
    for (uint32_t i = spans[q].batch_begin; i < spans[q].batch_end; ++i) {
      const IoRequest& r = channel.batch_[i];
      if (r.ok()) continue;
      const uint32_t b0 = static_cast<uint32_t>((r.buffer - reqs[q].dest) / kBlockBytes);
      std::fill_n(flags.begin() + spans[q].first_flag + b0, r.length / kBlockBytes, kBlockNeeded);
    }
  }

  for (size_t q = 0; q < reqs.size(); ++q) {
    const ReadRequest& req = reqs[q];
    const StripeRef& ref = req.ref;
    const uint32_t first = static_cast<uint32_t>(req.offset / kBlockBytes);
    const uint32_t count = req.length / kBlockBytes;
    const std::span<uint8_t> req_flags(flags.data() + spans[q].first_flag, count);
    ReadReport& report = reports[q];
    report = ReadReport{};

    // 2. Verify the versioned checksums of what was read.
    if (!ref.block_crcs.empty()) {
      for (uint32_t i = 0; i < count; ++i) {
        const uint32_t b = first + i;
        if (req_flags[i] != kBlockOk || b >= ref.filled_blocks) continue;
        const std::span<const uint8_t> data(req.dest + uint64_t{i} * kBlockBytes, kBlockBytes);
        if (!block_matches({ref.stripe, ref.generation, b}, data, ref.block_crcs[b])) {
          req_flags[i] = kBlockCorrupt;
          report.corrupt_blocks.push_back(b);
          ++errors_[geometry_.locate(ref.stripe, b / blocks_per_chunk, 0).member].checksum;
        }
      }
    }

    // 3. Rebuild what is missing or corrupt from the rest of its rows.
    if (std::any_of(req_flags.begin(), req_flags.end(), [](uint8_t f) { return f != kBlockOk; }))
      RAIDFS_CHECK(reconstruct_rows(channel, req, req_flags, report));
  }
  return {};
}

// Rebuilds every flagged block of the request, row by row. A "row" is the 4 KiB at the same
// offset of each of the stripe's n chunks; parity covers each row independently, so each row is
// solved on its own with its own set of lost slots.
Result<void> Array::reconstruct_rows(IoChannel& channel, const ReadRequest& req, std::span<uint8_t> flags,
                                     ReadReport& report) {
  const StripeRef& ref = req.ref;
  const uint32_t n = geometry_.member_count(), k = geometry_.data_count(), m = geometry_.parity_count();
  const uint32_t chunk = geometry_.chunk_bytes(), per_chunk = geometry_.blocks_per_chunk();
  const uint32_t first = static_cast<uint32_t>(req.offset / kBlockBytes), count = req.length / kBlockBytes;
  uint8_t* scratch = channel.scratch_.data();
  auto slot_row = [&](uint32_t slot, uint32_t row) { return scratch + uint64_t{slot} * chunk + uint64_t{row} * kBlockBytes; };

  // Rows touched by a flagged block.
  uint32_t row_lo = per_chunk, row_hi = 0;
  for (uint32_t i = 0; i < count; ++i) {
    if (flags[i] == kBlockOk) continue;
    uint32_t row = (first + i) % per_chunk;
    row_lo = std::min(row_lo, row);
    row_hi = std::max(row_hi, row);
  }
  const uint32_t rows = row_hi - row_lo + 1;

  // Read those rows of every other slot into the scratch stripe in one batch.
  uint64_t lost_slots = 0;  // slots unreadable for all rows
  channel.batch_.clear();
  for (uint32_t s = 0; s < n; ++s) {
    const uint32_t member = geometry_.member_of(ref.stripe, s);
    if (s >= k && ref.parity != nullptr) {
      std::memcpy(slot_row(s, row_lo), ref.parity + uint64_t{s - k} * chunk + uint64_t{row_lo} * kBlockBytes,
                  uint64_t{rows} * kBlockBytes);
      continue;
    }
    if (s >= k && ref.parity_in_rows) {
      auto it = std::lower_bound(ref.parity_rows.begin(), ref.parity_rows.end(), row_lo,
                                 [](const ParityRowRef& p, uint32_t row) { return p.row < row; });
      for (uint32_t row = row_lo; row < row_lo + rows; ++row) {
        while (it != ref.parity_rows.end() && it->row < row) ++it;
        if (it != ref.parity_rows.end() && it->row == row)
          std::memcpy(slot_row(s, row), it->bytes + uint64_t{s - k} * kBlockBytes, kBlockBytes);
        else
          std::memset(slot_row(s, row), 0, kBlockBytes);  // no data in the row: zero parity
      }
      continue;
    }
    if (s < k && s * per_chunk + row_lo >= ref.filled_blocks) {
      std::memset(slot_row(s, row_lo), 0, uint64_t{rows} * kBlockBytes);  // never written: zeros
      continue;
    }
    if (!readable(member, ref.stripe, ref.generation)) {
      lost_slots |= uint64_t{1} << s;
      continue;
    }
    channel.batch_.push_back({IoOp::kRead, member, geometry_.row_offset(ref.stripe) + uint64_t{row_lo} * kBlockBytes,
                              rows * kBlockBytes, slot_row(s, row_lo), 0});
  }
  RAIDFS_CHECK(execute(channel));
  for (const IoRequest& r : channel.batch_)
    if (!r.ok()) lost_slots |= uint64_t{1} << geometry_.slot_of(ref.stripe, r.member);
  RAIDFS_CHECK(check_quorum("cannot read stripe", ref.stripe));

  // Classify each row: which slots it lost (unreadable, or a data block failing its checksum).
  std::array<uint64_t, kChunkBytesMax / kBlockBytes> row_lost{};  // bit s: slot s lost
  std::array<bool, kChunkBytesMax / kBlockBytes> row_wanted{};
  for (uint32_t row = row_lo; row <= row_hi; ++row) {
    for (uint32_t d = 0; d < k; ++d) {
      const uint32_t b = d * per_chunk + row;
      if (b >= first && b < first + count && flags[b - first] != kBlockOk) row_wanted[row] = true;
    }
    if (!row_wanted[row]) continue;
    uint64_t lost = 0;
    for (uint32_t s = 0; s < n; ++s) {
      const uint32_t b = s * per_chunk + row;
      if (s < k && b >= ref.filled_blocks) {
        std::memset(slot_row(s, row), 0, kBlockBytes);  // never written: zeros in the parity
        continue;
      }
      if (lost_slots >> s & 1) {
        lost |= uint64_t{1} << s;
      } else if (s < k && !ref.block_crcs.empty() &&
                 !block_matches({ref.stripe, ref.generation, b}, {slot_row(s, row), kBlockBytes}, ref.block_crcs[b])) {
        if (b < first || b >= first + count) report.corrupt_neighbours.push_back(b);
        lost |= uint64_t{1} << s;
      }
    }
    if (static_cast<uint32_t>(std::popcount(lost)) > m)
      return fail(EIO, "stripe " + std::to_string(ref.stripe) + " row " + std::to_string(row) +
                           ": more chunks lost or corrupt than parity covers (" + std::to_string(m) + ")");
    row_lost[row] = lost;
  }

  // Solve runs of consecutive rows that lost the same slots with one codec call each (one matrix
  // inversion per run, not per 4 KiB), then check every rebuilt block.
  std::array<uint8_t*, kMembersMax> ptrs;
  std::array<uint32_t, kParityMax + 1> erased;
  auto erasures_of = [&](uint64_t lost) {
    uint32_t count_lost = 0;
    for (uint32_t s = 0; s < n; ++s)
      if (lost >> s & 1) erased[count_lost++] = s;
    return count_lost;
  };
  auto point_at = [&](uint32_t row) {
    for (uint32_t s = 0; s < n; ++s) ptrs[s] = slot_row(s, row);
  };
  auto rebuilt_ok = [&](uint32_t row, uint32_t lost) {
    if (ref.block_crcs.empty()) return true;
    for (uint32_t e = 0; e < lost; ++e) {
      const uint32_t s = erased[e], b = s * per_chunk + row;
      if (s < k && !block_matches({ref.stripe, ref.generation, b}, {slot_row(s, row), kBlockBytes}, ref.block_crcs[b]))
        return false;
    }
    return true;
  };
  for (uint32_t row = row_lo; row <= row_hi;) {
    if (!row_wanted[row]) { ++row; continue; }
    uint32_t end = row + 1;
    while (end <= row_hi && row_wanted[end] && row_lost[end] == row_lost[row]) ++end;
    const uint32_t lost = erasures_of(row_lost[row]);
    point_at(row);
    if (req.force_reconstruct) {
      for (uint32_t r = row; r < end; ++r) {
        point_at(r);
        RAIDFS_CHECK(rebuild_each(req, r, {erased.data(), lost}, ptrs.data(), flags, report));
      }
      row = end;
      continue;
    }
    RAIDFS_CHECK(codec_.reconstruct(ptrs.data(), {erased.data(), lost}, uint64_t{end - row} * kBlockBytes));
    for (uint32_t r = row; r < end; ++r) {
      if (rebuilt_ok(r, lost)) continue;
      // A rebuilt block fails its checksum: a parity chunk may itself be bad. With parity to
      // spare, solve this row again leaving each parity chunk out in turn.
      point_at(r);
      std::array<uint8_t, kParityMax * kBlockBytes> parity_copy;  // parity as read
      for (uint32_t j = 0; j < m; ++j) std::memcpy(&parity_copy[j * kBlockBytes], ptrs[k + j], kBlockBytes);
      bool ok = false;
      for (uint32_t p = k; !ok && lost < m && p < n; ++p) {
        if (row_lost[r] >> p & 1) continue;
        for (uint32_t j = 0; j < m; ++j) std::memcpy(ptrs[k + j], &parity_copy[j * kBlockBytes], kBlockBytes);
        erased[lost] = p;
        RAIDFS_CHECK(codec_.reconstruct(ptrs.data(), {erased.data(), lost + 1}, kBlockBytes));
        ok = rebuilt_ok(r, lost + 1);
      }
      if (!ok)
        return fail(EIO, "stripe " + std::to_string(ref.stripe) + " row " + std::to_string(r) +
                             ": rebuilt data fails its checksum (too much corruption to repair)");
      erasures_of(row_lost[r]);  // restore the run's erasure list for the next rows
    }
    for (uint32_t r = row; r < end; ++r) {
      for (uint32_t d = 0; d < k; ++d) {
        const uint32_t b = d * per_chunk + r;
        if (b < first || b >= first + count || flags[b - first] == kBlockOk) continue;
        std::memcpy(req.dest + uint64_t{b - first} * kBlockBytes, slot_row(d, r), kBlockBytes);
        flags[b - first] = kBlockOk;
        report.reconstructed_blocks++;
      }
    }
    row = end;
  }
  return {};
}

// Forced reconstruction (scrub, tests): every requested data block of the row is rebuilt from
// the other chunks, one at a time, on top of the chunks already lost, so each block is proven
// recoverable from parity. Fails with EIO if a block has no parity to spare or does not verify.
Result<void> Array::rebuild_each(const ReadRequest& req, uint32_t row,
                                 std::span<const uint32_t> already_lost, uint8_t* const* ptrs,
                                 std::span<uint8_t> flags, ReadReport& report) {
  const StripeRef& ref = req.ref;
  const uint32_t k = geometry_.data_count(), per_chunk = geometry_.blocks_per_chunk();
  const uint32_t first = static_cast<uint32_t>(req.offset / kBlockBytes), count = req.length / kBlockBytes;
  std::array<uint32_t, kParityMax + 1> erased;
  std::copy(already_lost.begin(), already_lost.end(), erased.begin());
  // Verifies data slot d's block b in the row and hands it to the caller.
  auto deliver = [&](uint32_t d, uint32_t b, const char* failure) -> Result<void> {
    if (!ref.block_crcs.empty() &&
        !block_matches({ref.stripe, ref.generation, b}, {ptrs[d], kBlockBytes}, ref.block_crcs[b]))
      return fail(EIO, "stripe " + std::to_string(ref.stripe) + " block " + std::to_string(b) + ": " + failure);
    std::memcpy(req.dest + uint64_t{b - first} * kBlockBytes, ptrs[d], kBlockBytes);
    flags[b - first] = kBlockOk;
    return {};
  };
  for (uint32_t d = 0; d < k; ++d) {
    const uint32_t b = d * per_chunk + row;
    if (b < first || b >= first + count || b >= ref.filled_blocks) continue;
    uint32_t lost = static_cast<uint32_t>(already_lost.size());
    if (std::find(already_lost.begin(), already_lost.end(), d) == already_lost.end()) {
      if (lost == geometry_.parity_count()) {
        // Degraded to the limit: nothing to rebuild this block from but itself. It was read
        // from its member with the row; take it if it verifies (a scrub can prove no more).
        RAIDFS_CHECK(deliver(d, b, "corrupt, and no parity to spare to rebuild it"));
        continue;
      }
      erased[lost++] = d;
    }
    RAIDFS_CHECK(codec_.reconstruct(ptrs, {erased.data(), lost}, kBlockBytes));
    RAIDFS_CHECK(deliver(d, b, "rebuilt from parity, fails its checksum"));
    report.reconstructed_blocks++;
  }
  return {};
}

}  // namespace raidfs
