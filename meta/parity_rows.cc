// parity_rows: see parity_rows.h.
#include "meta/parity_rows.h"

#include <algorithm>
#include <map>

#include "meta/coding.h"
#include "meta/keys.h"

namespace raidfs::meta {

std::pair<std::string, std::string> parity_rows_range(uint64_t id) {
  return {u64_key(id), u64_key(id + 1)};  // ids are below kStripeCountMax: no overflow
}

Result<void> load_parity_rows(const Store& store, Stripe& s) {
  std::map<uint32_t, std::string> rows;
  for (ParityRow& row : s.parity_rows) rows[row.row_index] = std::move(row.bytes);
  const auto [first, end] = parity_rows_range(s.id);
  RAIDFS_CHECK(store.scan(Family::kParityRows, first, end,
                          [&](std::string_view key, std::string_view value) -> Result<bool> {
                            RAIDFS_TRY(auto k, parse_u64_pair_key(key));
                            if (k.second > UINT32_MAX) return corrupt("parity row index too large");
                            const auto index = static_cast<uint32_t>(k.second);
                            RAIDFS_TRY(ParityRow row, decode_parity_row(index, value));
                            rows[index] = std::move(row.bytes);
                            return true;
                          }));
  s.parity_rows.clear();
  for (auto& [index, bytes] : rows) s.parity_rows.push_back(ParityRow{index, std::move(bytes)});
  return {};
}

void replace_parity_rows(WriteSet& set, const Stripe& s) {
  auto [first, end] = parity_rows_range(s.id);
  set.del_range(Family::kParityRows, std::move(first), std::move(end));
  for (const ParityRow& row : s.parity_rows)
    set.put(Family::kParityRows, parity_row_key(s.id, row.row_index), encode_parity_row(row));
}

}  // namespace raidfs::meta
