// keys: the RocksDB key of every record meta/ stores, one builder and one parser per family.
//
// Grammar (all integers big-endian, fixed width, so byte order = numeric order; "name" is raw
// bytes, 1..255 of them, no NUL and no '/'):
//
//   super      "super" | "next_inode" | "generation_limit" | "scrub" | "rebuild"
//   inodes     ino:u64
//   dirents    parent:u64 name                                  a directory's entries, by name
//   cookies    parent:u64 cookie:u64                            a directory's entries, by cookie
//   extents    ino:u64 file_offset:u64                          a file's extents, by offset
//   stripes    stripe_id:u64
//   xattrs     ino:u64 name
//   orphans    ino:u64
//   extents_by_stripe
//              stripe_id:u64 ino:u64 file_offset:u64            the extents pointing into a stripe
//                                                               (empty values; derived from
//                                                               extents in the same batches)
//   parity_rows
//              stripe_id:u64 row:u64                            an open stripe's parity, by row
//
// Builders cannot fail. Parsers are given bytes read back from RocksDB and treat them as hostile:
// a key of the wrong length is Error{EIO, "corrupt record: ..."}. Thread-safe (pure functions).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "base/result.h"

namespace raidfs::meta {

inline constexpr std::string_view kSuperKey = "super";
inline constexpr std::string_view kNextInodeKey = "next_inode";
inline constexpr std::string_view kGenerationLimitKey = "generation_limit";
inline constexpr std::string_view kScrubKey = "scrub";
inline constexpr std::string_view kRebuildKey = "rebuild";

std::string u64_key(uint64_t a);                        // inodes, stripes, orphans; also a prefix
std::string u64_pair_key(uint64_t a, uint64_t b);       // cookies, extents, parity_rows
std::string u64_name_key(uint64_t a, std::string_view name);  // dirents, xattrs
std::string u64_triple_key(uint64_t a, uint64_t b, uint64_t c);  // extents_by_stripe

inline std::string inode_key(uint64_t ino) { return u64_key(ino); }
inline std::string stripe_key(uint64_t id) { return u64_key(id); }
inline std::string orphan_key(uint64_t ino) { return u64_key(ino); }
inline std::string dirent_key(uint64_t parent, std::string_view name) {
  return u64_name_key(parent, name);
}
inline std::string cookie_key(uint64_t parent, uint64_t cookie) {
  return u64_pair_key(parent, cookie);
}
inline std::string extent_key(uint64_t ino, uint64_t file_offset) {
  return u64_pair_key(ino, file_offset);
}
// u64_pair_key's 16 bytes held in the object, not on the heap: the keys of the lookups that
// every file read makes (a std::string of 16 bytes is past the short-string buffer).
class PairKey {
 public:
  PairKey(uint64_t a, uint64_t b);
  operator std::string_view() const { return {bytes_, sizeof bytes_}; }

 private:
  char bytes_[16];
};
inline std::string xattr_key(uint64_t ino, std::string_view name) {
  return u64_name_key(ino, name);
}
inline std::string extent_by_stripe_key(uint64_t stripe_id, uint64_t ino, uint64_t file_offset) {
  return u64_triple_key(stripe_id, ino, file_offset);
}
inline std::string parity_row_key(uint64_t stripe_id, uint32_t row) {
  return u64_pair_key(stripe_id, row);
}

// Parsers: exactly 8 bytes; exactly 16 bytes; 8 bytes then a non-empty name; exactly 24 bytes.
Result<uint64_t> parse_u64_key(std::string_view key);
Result<std::pair<uint64_t, uint64_t>> parse_u64_pair_key(std::string_view key);
Result<std::pair<uint64_t, std::string_view>> parse_u64_name_key(std::string_view key);
struct ExtentByStripeKey {
  uint64_t stripe_id, ino, file_offset;
};
Result<ExtentByStripeKey> parse_extent_by_stripe_key(std::string_view key);

}  // namespace raidfs::meta
