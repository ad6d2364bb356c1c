// Array scrub: whole-stripe verification and repair, superblock copies. See array_scrub.h.
#include "raid/array_scrub.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace raidfs {
namespace {

bool aligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % kBlockBytes == 0; }

Result<void> pread_all(int fd, uint8_t* buf, size_t len, uint64_t off) {
  size_t done = 0;
  while (done < len) {
    const ssize_t r = ::pread(fd, buf + done, len - done, static_cast<off_t>(off + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return fail(errno, std::strerror(errno));
    if (r == 0) return fail(EIO, "short read");
    done += static_cast<size_t>(r);
  }
  return {};
}

void sort_unique(std::vector<uint32_t>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

}  // namespace

Result<ScrubReport> Array::scrub_stripe(IoChannel& channel, const ScrubRequest& request,
                                        uint8_t* chunks) {
  const StripeRef& ref = request.ref;
  const uint32_t k = geometry_.data_count();
  const uint32_t m = geometry_.parity_count(), chunk = geometry_.chunk_bytes();
  const uint32_t per_chunk = geometry_.blocks_per_chunk(), stripe_blocks = k * per_chunk;
  const std::string what = "scrub of stripe " + std::to_string(ref.stripe);
  if (ref.stripe >= geometry_.stripe_count() || !aligned(chunks) ||
      ref.block_crcs.size() != stripe_blocks || ref.filled_blocks > stripe_blocks)
    return fail(EINVAL, what + ": bad request");
  RAIDFS_CHECK(check_quorum("cannot " + what));
  ScrubReport report;
  const uint32_t filled = ref.filled_blocks;
  auto collect = [&](const ReadReport& r) {
    report.rebuilt_blocks.insert(report.rebuilt_blocks.end(), r.corrupt_blocks.begin(),
                                 r.corrupt_blocks.end());
    const uint32_t corrupt = static_cast<uint32_t>(r.corrupt_blocks.size());
    report.degraded_blocks += r.reconstructed_blocks - std::min(r.reconstructed_blocks, corrupt);
  };

  // 1. The data, verified and rebuilt where it must be. A read fails as a whole when one row is
  //    beyond repair; then each block is read alone to learn which ones are lost.
  if (filled > 0) {
    ReadRequest whole{ref, 0, filled * kBlockBytes, chunks, false};
    auto read_all = read(channel, whole);
    if (read_all) {
      collect(*read_all);
    } else {
      if (read_all.error().code != EIO) return std::unexpected(read_all.error());
      RAIDFS_CHECK(check_quorum("cannot " + what));
      for (uint32_t b = 0; b < filled; ++b) {
        uint8_t* dest = chunks + uint64_t{b} * kBlockBytes;
        auto one =
            read(channel, ReadRequest{ref, uint64_t{b} * kBlockBytes, kBlockBytes, dest, false});
        if (one) {
          collect(*one);
          continue;
        }
        if (one.error().code != EIO) return std::unexpected(one.error());
        RAIDFS_CHECK(check_quorum("cannot " + what));
        report.lost_blocks.push_back(b);
        std::memset(dest, 0, kBlockBytes);
      }
    }
  }
  std::memset(chunks + uint64_t{filled} * kBlockBytes, 0,
              uint64_t{stripe_blocks - filled} * kBlockBytes);  // never written: zeros to parity
  sort_unique(report.rebuilt_blocks);
  std::erase_if(report.rebuilt_blocks, [&](uint32_t b) {
    return std::binary_search(report.lost_blocks.begin(), report.lost_blocks.end(), b);
  });
  std::vector<bool> row_unknown(per_chunk, false);  // a lost block: its row's parity is unknown
  for (uint32_t b : report.lost_blocks) row_unknown[b % per_chunk] = true;

  // 2. The parity of the verified data.
  std::array<const uint8_t*, kMembersMax> data;
  std::array<uint8_t*, kParityMax> parity;
  for (uint32_t d = 0; d < k; ++d) data[d] = chunks + uint64_t{d} * chunk;
  for (uint32_t j = 0; j < m; ++j) parity[j] = chunks + uint64_t{k + j} * chunk;
  codec_.encode(data.data(), parity.data(), chunk);

  // 3. Compared with the parity the stripe is read through.
  std::array<const uint8_t*, kParityMax> against{};
  if (ref.parity != nullptr) {
    for (uint32_t j = 0; j < m; ++j) against[j] = ref.parity + uint64_t{j} * chunk;
  } else {
    uint8_t* scratch = channel.scratch_.data();
    channel.batch_.clear();
    for (uint32_t j = 0; j < m; ++j) {
      const MemberAddress a = geometry_.locate_parity(ref.stripe, j, 0);
      if (readable(a.member, ref.stripe, ref.generation))
        channel.batch_.push_back(
            {IoOp::kRead, a.member, a.offset, chunk, scratch + uint64_t{j} * chunk, 0});
    }
    RAIDFS_CHECK(execute(channel));
    for (const IoRequest& r : channel.batch_)
      if (r.ok()) against[geometry_.slot_of(ref.stripe, r.member) - k] = r.buffer;
  }
  for (uint32_t j = 0; j < m; ++j) {
    if (against[j] == nullptr) continue;  // on an unavailable member
    for (uint32_t row = 0; row < per_chunk; ++row) {
      if (row_unknown[row]) continue;
      ++report.parity_rows_checked;
      const uint64_t at = uint64_t{row} * kBlockBytes;
      if (std::memcmp(parity[j] + at, against[j] + at, kBlockBytes) != 0)
        report.parity_mismatches.push_back({j, row});
    }
  }
  if (!request.repair) return report;

  // 4. Repair: verified content only, so what parity covers never changes.
  bool wrote = false;
  for (uint32_t b : report.rebuilt_blocks) {
    RAIDFS_CHECK(write_data(channel, ref.stripe, uint64_t{b} * kBlockBytes, kBlockBytes,
                            chunks + uint64_t{b} * kBlockBytes));
    ++report.healed_blocks;
    wrote = true;
  }
  if (ref.parity == nullptr && !report.parity_mismatches.empty()) {
    channel.batch_.clear();
    for (const ParityMismatch& mm : report.parity_mismatches) {
      const MemberAddress a =
          geometry_.locate_parity(ref.stripe, mm.parity_index, mm.row * kBlockBytes);
      if (writable(a.member))
        channel.batch_.push_back({IoOp::kWrite, a.member, a.offset, kBlockBytes,
                                  parity[mm.parity_index] + uint64_t{mm.row} * kBlockBytes, 0});
    }
    RAIDFS_CHECK(execute(channel));
    for (const IoRequest& r : channel.batch_) report.parity_rows_rewritten += r.ok() ? 1 : 0;
    RAIDFS_CHECK(check_quorum("cannot " + what));
    RAIDFS_CHECK(settle_states(channel));
    wrote = true;
  }
  if (wrote) RAIDFS_CHECK(flush(channel));
  return report;
}

std::vector<SuperblockIssue> Array::check_superblocks(bool repair) {
  std::vector<SuperblockIssue> issues;
  std::lock_guard lock(superblock_mutex_);  // no state change or replace may interleave
  const Superblock newest = superblock_;
  AlignedBuffer expected(Superblock::kBytes), copy(Superblock::kBytes);
  for (uint32_t i = 0; i < geometry_.member_count(); ++i) {
    // Members out of service keep the superblock of the day they left, by design.
    if (fds_[i] < 0 || !usable(i)) continue;
    Superblock own = newest;
    own.member_index = i;
    own.member_bytes = member_bytes_[i];
    own.encode(expected.data());
    std::string problems;
    const std::pair<const char*, uint64_t> copies[] = {
        {"primary", 0}, {"backup", backup_superblock_offset(member_bytes_[i])}};
    for (const auto& [name, offset] : copies) {
      std::string problem;
      if (auto r = pread_all(fds_[i], copy.data(), Superblock::kBytes, offset); !r) {
        problem = "unreadable (" + r.error().message + ")";
      } else if (std::memcmp(copy.data(), expected.data(), Superblock::kBytes) == 0) {
        continue;
      } else if (auto d = Superblock::decode(copy.data()); !d) {
        problem = d.error().message;
      } else if (d->sequence < own.sequence) {
        problem = "out of date (sequence " + std::to_string(d->sequence) + ", the array's " +
                  std::to_string(own.sequence) + ")";
      } else {
        problem = "differs from the array's newest superblock";
      }
      problems += (problems.empty() ? "" : "; ") + std::string(name) + " superblock " + problem;
    }
    if (problems.empty()) continue;
    SuperblockIssue issue{i, "member " + std::to_string(i) + " (" + paths_[i] + "): " + problems,
                          false};
    if (repair) {
      if (auto w = write_superblock(fds_[i], own); w)
        issue.repaired = true;
      else
        issue.what += " (rewrite failed: " + w.error().message + ")";
    }
    issues.push_back(std::move(issue));
  }
  return issues;
}

}  // namespace raidfs
