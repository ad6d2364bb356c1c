// parity_rows: an open stripe's parity in the metadata, one record per 4 KiB row (store format 5:
// family parity_rows, key stripe id and row, value records.h ParityRow).
//
// An open stripe's parity on the members is rewritten in place as the stripe fills, so the
// parity its committed data needs lives in the metadata until the stripe is sealed. A flush of
// a few blocks changes the parity of a few rows; one record per row lets the commit write those
// and nothing else (a record holding every row, as in format 4, cost a 4 KiB fdatasync loop
// 128 KiB of metadata per call once a chunk was full).
//
// Writes go with the stripe's record (detail::Txn::put_stripe writes the rows a Stripe carries
// and leaves the others; FsMeta drops all of them in the batch that seals or frees the stripe).
// Reads: load_parity_rows. Pure functions of the Store; thread-safe as the Store is.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "base/result.h"
#include "meta/records.h"
#include "meta/store.h"

namespace raidfs::meta {

// The key range [first, end) of stripe `id`'s rows.
std::pair<std::string, std::string> parity_rows_range(uint64_t id);

// Merges the rows stored for `s` into s.parity_rows (a stored row replaces one of the same
// index embedded by a format-4 record), in row order. EIO when a row does not decode.
Result<void> load_parity_rows(const Store& store, Stripe& s);

// Adds to `set`: every row of stripe s.id removed, then the rows s carries. Used where the rows
// are to be exactly these (fsck's fix of an open stripe's parity, the upgrade from format 4).
void replace_parity_rows(WriteSet& set, const Stripe& s);

}  // namespace raidfs::meta
