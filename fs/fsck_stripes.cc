// fsck pass 3: every stripe record's blocks against their checksums and its parity against its
// data (Array::scrub_stripe), the records' own sanity, and the files behind blocks beyond repair.
#include <algorithm>
#include <cstring>
#include <set>

#include "fs/fsck_internal.h"
#include "meta/block_owners.h"
#include "meta/keys.h"
#include "meta/parity_rows.h"
#include "meta/repair.h"
#include "raid/array_scrub.h"

namespace raidfs::fs::fsck_detail {
namespace {

constexpr uint32_t kBlock = kBlockBytes;

// "3, 5-9, 12" for sorted numbers (at most `max_items` runs, then "...").
std::string ranges(std::vector<uint32_t> v, size_t max_items = 8) {
  std::sort(v.begin(), v.end());
  std::string out;
  size_t items = 0;
  for (size_t i = 0; i < v.size();) {
    size_t j = i;
    while (j + 1 < v.size() && v[j + 1] == v[j] + 1) ++j;
    if (items++ == max_items) return out + ", ...";
    out += (out.empty() ? "" : ", ") + std::to_string(v[i]) +
           (j > i ? "-" + std::to_string(v[j]) : "");
    i = j + 1;
  }
  return out;
}

class StripePass {
 public:
  StripePass(Array& array, meta::Store& store, FsckLog& log, FsckSummary& summary,
             std::unique_ptr<MemberIo> io)
      : array_(array),
        store_(store),
        log_(log),
        summary_(summary),
        g_(array.geometry()),
        io_(std::move(io)),
        channel_(array, *io_),
        chunks_(size_t{g_.member_count()} * g_.chunk_bytes()),
        open_parity_(size_t{g_.parity_count()} * g_.chunk_bytes()),
        crcs_(g_.data_count() * g_.blocks_per_chunk()) {}

  Result<void> run() {
    uint64_t total = 0, done = 0;
    RAIDFS_CHECK(store_.scan(meta::Family::kStripes, "", "",
                             [&](std::string_view, std::string_view) -> Result<bool> {
                               ++total;
                               return true;
                             }));
    uint64_t records_in_use = 0;
    RAIDFS_CHECK(store_.scan(
        meta::Family::kStripes, "", "",
        [&](std::string_view k, std::string_view v) -> Result<bool> {
          log_.progress(++done, total);
          auto id = meta::parse_u64_key(k);
          if (!id) return true;
          auto stripe = meta::decode_stripe(*id, v);  // what does not decode is pass 2's
          if (!stripe || *id >= g_.stripe_count() || stripe->state == meta::StripeState::kFree)
            return true;
          if (stripe->state == meta::StripeState::kOpen &&
              !meta::load_parity_rows(store_, *stripe))
            return true;  // a row that does not decode: the metadata pass's
          ++records_in_use;
          RAIDFS_CHECK(check_stripe(*stripe));
          return true;
        }));
    summary_.stripes_free = g_.stripe_count() - std::min(g_.stripe_count(), records_in_use);
    return report_lost();
  }

 private:
  Result<void> check_stripe(meta::Stripe& s) {
    const uint32_t m = g_.parity_count(), c = g_.chunk_bytes();
    const uint32_t per_chunk = g_.blocks_per_chunk();
    const bool open = s.state == meta::StripeState::kOpen;
    const std::string what = "stripe " + std::to_string(s.id) + (open ? " (open)" : "");
    (open ? summary_.stripes_open : summary_.stripes_sealed)++;
    if (s.filled_bytes > g_.stripe_data_bytes()) {
      log_.found_and_fixed(what + ": filled bytes " + std::to_string(s.filled_bytes) +
                               " beyond the stripe's size: cannot be checked",
                           false);
      return {};
    }
    if (!open && !s.parity_rows.empty()) {
      // Leftover parity rows of a sealed stripe: unused (its parity is on the members).
      bool done = false;
      if (log_.repairing()) {
        meta::Stripe fixed = s;
        fixed.parity_count = 0;
        fixed.parity_rows.clear();
        RAIDFS_CHECK(meta::put_stripe_record(store_, fixed));
        done = true;
      }
      log_.found_and_fixed(
          what + ": sealed, but keeps parity rows in the metadata" + (done ? ": dropped" : ""),
          done);
    }

    std::fill(crcs_.begin(), crcs_.end(), 0);
    std::copy(s.block_crcs.begin(), s.block_crcs.end(), crcs_.begin());
    ScrubRequest req;
    req.ref.stripe = s.id;
    req.ref.generation = s.generation;
    req.ref.block_crcs = crcs_;
    req.ref.filled_blocks = static_cast<uint32_t>((uint64_t{s.filled_bytes} + kBlock - 1) / kBlock);
    req.repair = log_.repairing();
    bool rows_valid = true;  // an open stripe's rows: right parity count, rows inside a chunk
    if (open) {
      std::memset(open_parity_.data(), 0, open_parity_.size());
      for (const meta::ParityRow& row : s.parity_rows) {
        if (s.parity_count != m || row.row_index >= per_chunk ||
            row.bytes.size() != size_t{m} * kBlock) {
          rows_valid = false;
          continue;
        }
        for (uint32_t j = 0; j < m; ++j)
          std::memcpy(open_parity_.data() + size_t{j} * c + size_t{row.row_index} * kBlock,
                      row.bytes.data() + size_t{j} * kBlock, kBlock);
      }
      req.ref.parity = open_parity_.data();
    }
    if (open)
      log_.note(what + ": " + std::to_string(s.filled_bytes) + " bytes filled, " +
                std::to_string(s.live_blocks) + " live blocks, parity of " +
                std::to_string(s.parity_rows.size()) + " row(s) in the metadata");
    RAIDFS_TRY(ScrubReport r, array_.scrub_stripe(channel_, req, chunks_.data()));
    summary_.bytes_read += uint64_t{req.ref.filled_blocks} * kBlock + (open ? 0 : uint64_t{m} * c);
    summary_.blocks_verified +=
        req.ref.filled_blocks - r.rebuilt_blocks.size() - r.lost_blocks.size();
    summary_.blocks_rebuilt += r.rebuilt_blocks.size();
    summary_.blocks_lost += r.lost_blocks.size();
    summary_.parity_rows_checked += r.parity_rows_checked;
    summary_.parity_rows_bad += r.parity_mismatches.size();

    if (!r.rebuilt_blocks.empty()) {
      std::set<uint32_t> members;
      for (uint32_t b : r.rebuilt_blocks) members.insert(g_.locate(s.id, b / per_chunk, 0).member);
      std::string on;
      for (uint32_t mem : members)
        on += (on.empty() ? "" : ", ") + std::to_string(mem) + " (" + array_.member_path(mem) + ")";
      const bool done = r.healed_blocks == r.rebuilt_blocks.size();
      log_.found_and_fixed(what + ": block(s) " + ranges(r.rebuilt_blocks) + " on member(s) " + on +
                               " failed their checksum" +
                               (done ? "; rebuilt from parity and rewritten" : ""),
                           done, r.rebuilt_blocks.size());
    }
    for (uint32_t b : r.lost_blocks) lost_.emplace_back(s.id, b);

    if (!r.parity_mismatches.empty() || !rows_valid) {
      std::vector<uint32_t> rows;
      std::set<uint32_t> which;
      for (const ParityMismatch& mm : r.parity_mismatches) {
        rows.push_back(mm.row);
        which.insert(mm.parity_index);
      }
      std::sort(rows.begin(), rows.end());
      rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
      std::string names;
      for (uint32_t j : which) names += std::string(names.empty() ? "" : "/") + "PQR"[j];
      const uint64_t count = std::max<uint64_t>(1, r.parity_mismatches.size());
      if (open) {
        // The parity of an open stripe is in its record: recompute the rows from the data.
        bool done = false;
        if (log_.repairing() && r.lost_blocks.empty()) {
          RAIDFS_CHECK(rewrite_open_parity(s));
          done = true;
        }
        log_.found_and_fixed(
            what + ": parity rows in the metadata " +
                (rows_valid ? names + " differ from the data in row(s) " + ranges(rows)
                            : std::string("are malformed")) +
                (done ? "; recomputed from the verified data" : ""),
            done, count);
      } else {
        const bool done = r.parity_rows_rewritten == r.parity_mismatches.size();
        log_.found_and_fixed(what + ": parity " + names +
                                 " on the members differs from the data in row(s) " + ranges(rows) +
                                 (done ? "; rewritten from the verified data" : ""),
                             done, count);
      }
    }
    return {};
  }

  // New parity rows for an open stripe from the parity scrub_stripe computed into chunks_.
  Result<void> rewrite_open_parity(const meta::Stripe& s) {
    const uint32_t k = g_.data_count(), m = g_.parity_count(), c = g_.chunk_bytes();
    const uint32_t filled_blocks =
        static_cast<uint32_t>((uint64_t{s.filled_bytes} + kBlock - 1) / kBlock);
    meta::Stripe fixed = s;
    fixed.parity_count = static_cast<uint8_t>(m);
    fixed.parity_rows.clear();
    // Rows holding data are a prefix: chunk 0 fills first (as StripeWriter writes them).
    for (uint32_t row = 0; row < std::min(g_.blocks_per_chunk(), filled_blocks); ++row) {
      meta::ParityRow pr{row, std::string(size_t{m} * kBlock, '\0')};
      for (uint32_t j = 0; j < m; ++j)
        std::memcpy(pr.bytes.data() + size_t{j} * kBlock,
                    chunks_.data() + size_t{k + j} * c + size_t{row} * kBlock, kBlock);
      fixed.parity_rows.push_back(std::move(pr));
    }
    return meta::put_stripe_record(store_, fixed);
  }

  // Blocks beyond repair, with the files and bytes they hold.
  Result<void> report_lost() {
    if (lost_.empty()) return {};
    RAIDFS_TRY(auto owners, meta::block_owners(store_, lost_));
    std::vector<uint64_t> inos;
    for (const meta::BlockOwner& o : owners) inos.push_back(o.ino);
    RAIDFS_TRY(auto paths, meta::inode_paths(store_, inos));
    const uint32_t per_chunk = g_.blocks_per_chunk();
    for (const auto& [stripe, block] : lost_) {
      const MemberAddress a = g_.locate(stripe, block / per_chunk, (block % per_chunk) * kBlock);
      std::string held;
      for (const meta::BlockOwner& o : owners) {
        if (o.stripe_id != stripe || o.block != block) continue;
        held += (held.empty() ? "" : "; ") + paths[o.ino] + " bytes " +
                std::to_string(o.file_offset) + "-" + std::to_string(o.file_offset + o.length - 1);
      }
      if (held.empty()) held = "no file (dead data, but its row has lost its redundancy)";
      log_.problem(
          "stripe " + std::to_string(stripe) + " block " + std::to_string(block) + " (member " +
          std::to_string(a.member) + " at byte " + std::to_string(a.offset) +
          "): corrupt, and its row has more damage than parity covers: cannot be rebuilt; holds " +
          held);
      log_.left("stripe " + std::to_string(stripe) + " block " + std::to_string(block) +
                " stays unreadable (restore " + held + " from a backup)");
    }
    return {};
  }

  Array& array_;
  meta::Store& store_;
  FsckLog& log_;
  FsckSummary& summary_;
  const Geometry& g_;
  std::unique_ptr<MemberIo> io_;
  IoChannel channel_;
  AlignedBuffer chunks_;       // n chunks: the stripe's verified data, then its computed parity
  AlignedBuffer open_parity_;  // m chunks: an open stripe's parity from its record
  std::vector<uint32_t> crcs_;
  std::vector<std::pair<uint64_t, uint32_t>> lost_;  // (stripe, block) beyond repair
};

}  // namespace

Result<void> check_stripes(Array& array, meta::Store& store, FsckLog& log, FsckSummary& summary) {
  RAIDFS_TRY(auto io, array.make_member_io());
  StripePass pass(array, store, log, summary, std::move(io));
  return pass.run();
}

}  // namespace raidfs::fs::fsck_detail
