// records: the values meta/ stores in RocksDB, as C++ structs with one encoder and one decoder each.
//
// Value grammar (integers big-endian; every value opens with a format byte, today 1 for all;
// bytes(n) = len:u32 then len bytes; a decoder rejects an unknown format byte, short input,
// trailing bytes, out-of-range enums and lengths beyond the limits below as EIO "corrupt record"):
//
//   Super    fmt:u8=1 store_format:u32 array_uuid:16 stripe_count:u64 stripe_data_bytes:u32
//            geometry:bytes(4096)                        geometry is opaque to meta/ (raid/ owns it)
//            stripe_count 1..kStripeCountMax; stripe_data_bytes a multiple of 4096, 4096..kStripeDataBytesMax
//   Counter  fmt:u8=1 value:u64                          next_inode, generation_limit
//   Inode    fmt:u8=2 mode:u32 uid:u32 gid:u32 size:u64 nlink:u32 atime_ns:i64 mtime_ns:i64
//            ctime_ns:i64 rdev:u64 flags:u32 parent:u64 next_cookie:u64 target:bytes(4095)
//            blocks:u64                                  parent, next_cookie: directories only
//            fmt 1 (store format 1) is the same without blocks: decoded as kBlocksUnknown
//   Dirent   fmt:u8=1 child:u64 type:u8 cookie:u64
//   Cookie   fmt:u8=1 name:bytes(255)                    (parent, cookie) → name index
//   Extent   fmt:u8=1 stripe_id:u64 stripe_offset:u32 length:u32
//   Stripe   fmt:u8=1 generation:u64 state:u8 filled_bytes:u32 live_blocks:u32
//            crc_count:u32 crc32c:u32 × crc_count                  crc_count = ceil(filled/4096)
//            parity_count:u8 row_count:u32 (row_index:u32 parity:parity_count×4096 bytes) × rows
//            rows: only in records of store format 4 and older; since 5, row_count is 0 and an
//            open stripe's rows are ParityRow records of their own
//   ParityRow fmt:u8=1 parity:parity_count×4096 bytes    (parity_rows family, key stripe and row)
//   Xattr    fmt:u8=1 value:bytes(65536)
//   Orphan   fmt:u8=1
//   Scrub    fmt:u8=1 state:u8 cursor:u64 started_ns:i64 finished_ns:i64 stripes_total:u64
//            stripes_checked:u64 bytes_read:u64 blocks_rebuilt:u64 parity_rows_rewritten:u64
//            blocks_lost:u64 stripes_skipped:u64              (super family, key "scrub")
//   Rebuild  fmt:u8=1 phase:u8 member:u32 from_generation:u64 cursor:u64 started_ns:i64
//            finished_ns:i64 stripes_total:u64 stripes_rebuilt:u64 stripes_skipped:u64
//            bytes_written:u64                               (super family, key "rebuild")
//
// All functions are pure and thread-safe. Decoders never assert on their input.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "base/units.h"

namespace raidfs::meta {

// --- limits (every variable-length field has one) ----------------------------------------------
inline constexpr uint32_t kNameBytesMax = 255;          // file and xattr names
inline constexpr uint32_t kSymlinkBytesMax = 4095;
inline constexpr uint32_t kXattrValueBytesMax = 65536;
// The file capabilities xattr, which a write or truncate removes (SetAttr::kill_set_id).
inline constexpr std::string_view kCapabilityXattr = "security.capability";
inline constexpr uint32_t kGeometryBytesMax = 4096;
inline constexpr uint32_t kStripeDataBytesMax = 1u << 30;  // bounds crc and parity-row counts
// FsMeta keeps one bit per stripe in memory (512 MiB at this limit); with 4 KiB chunks that is
// 16 TiB per data member. A super record beyond it is corrupt, not a reason to allocate.
inline constexpr uint64_t kStripeCountMax = uint64_t{1} << 32;
inline constexpr uint32_t kParityCountMax = 3;
inline constexpr uint8_t kRecordFormat = 1;
// The layout of the whole database. 2: inodes carry their allocated block count. 3: the
// extents_by_stripe index. 4: that index may also hold entries of extents that have left a
// stripe since it was allocated (they go with the stripe when it is freed), so an older raidfs,
// whose checker wants it exact, is kept out. 5: an open stripe's parity rows are records of
// their own (parity_rows), so a flush of one block rewrites one row, not all of them. An older
// database is upgraded when it is opened (FsMeta::open counts every file's blocks once, indexes
// every extent, moves the open stripes' rows out of their records; 3 → 4 changes nothing).
inline constexpr uint32_t kStoreFormat = 5;
inline constexpr uint8_t kInodeFormat = 2;
inline constexpr uint64_t kBlocksUnknown = UINT64_MAX;  // a format-1 inode, not yet counted
// Inode::flags: an O_TMPFILE inode, born without a name, that link() may give its first one
// (the kernel's I_LINKABLE); cleared by that link.
inline constexpr uint32_t kInodeLinkable = 1;

using ArrayUuid = std::array<uint8_t, 16>;

struct Super {
  uint32_t store_format = kStoreFormat;
  ArrayUuid array_uuid{};
  uint64_t stripe_count = 0;       // stripes 0 .. stripe_count-1 exist on the members
  uint32_t stripe_data_bytes = 0;  // k × chunk bytes: data bytes one stripe holds
  std::string geometry;            // opaque to meta/
  bool operator==(const Super&) const = default;
};

struct Inode {
  uint64_t ino = 0;  // the key; not part of the value
  uint32_t mode = 0;  // S_IFMT type bits and permission bits, as st_mode
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  uint32_t nlink = 0;
  int64_t atime_ns = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  uint64_t rdev = 0;
  uint32_t flags = 0;        // kInodeLinkable

  uint64_t parent = 0;       // directories: the parent directory (root: itself)
  uint64_t next_cookie = 0;  // directories: the readdir cookie the next new entry gets
  std::string symlink_target;
  // Regular files: the 4 KiB stripe blocks its extents reference, Σ blocks_touched over them
  // (what st_blocks reports; maintained with the extents, checked by the checker). Counted per
  // extent, as Stripe::live_blocks: a block two extents share (a punch inside it) counts twice.
  uint64_t blocks = 0;
  bool operator==(const Inode&) const = default;
};

// The type of a directory entry's child, as the d_type values of <dirent.h> (DT_REG = 8 ...).
enum class FileType : uint8_t {
  kUnknown = 0, kFifo = 1, kCharDev = 2, kDirectory = 4, kBlockDev = 6, kRegular = 8,
  kSymlink = 10, kSocket = 12,
};
FileType file_type_of_mode(uint32_t mode);  // kUnknown for an unknown S_IFMT
bool valid_file_type(uint8_t v);

struct Dirent {
  uint64_t child = 0;
  FileType type = FileType::kUnknown;
  uint64_t cookie = 0;
  bool operator==(const Dirent&) const = default;
};

struct Extent {
  uint64_t file_offset = 0;  // the key; not part of the value
  uint64_t stripe_id = 0;
  uint32_t stripe_offset = 0;  // byte offset in the stripe's data (0 .. stripe_data_bytes)
  uint32_t length = 0;         // bytes, > 0
  uint64_t file_end() const { return file_offset + length; }
  bool operator==(const Extent&) const = default;
};

enum class StripeState : uint8_t { kFree = 0, kOpen = 1, kSealed = 2 };

struct ParityRow {
  uint32_t row_index = 0;  // which 4 KiB row of the chunks this parity covers
  std::string bytes;       // parity_count × 4096 bytes, opaque
  bool operator==(const ParityRow&) const = default;
};

struct Stripe {
  uint64_t id = 0;  // the key; not part of the value
  uint64_t generation = 0;
  StripeState state = StripeState::kFree;
  uint32_t filled_bytes = 0;              // data bytes written so far (from offset 0)
  uint32_t live_blocks = 0;               // Σ over extents of the 4 KiB blocks each touches
  std::vector<uint32_t> block_crcs;       // one crc32c per 4 KiB data block, ceil(filled/4096)
  uint8_t parity_count = 0;               // m, when parity_rows is not empty
  // Open stripes: the parity committed in the metadata, by row. Read: every row stored
  // (FsMeta::get_stripe, load_parity_rows). Committed: the rows given are written, the others
  // stay; all go when the stripe is sealed or freed.
  std::vector<ParityRow> parity_rows;
  bool operator==(const Stripe&) const = default;
};

// The online scrub's progress, kept so that an unmount or a crash resumes it where it stopped.
enum class ScrubPhase : uint8_t { kNone = 0, kRunning = 1, kStopped = 2, kFinished = 3 };

struct ScrubState {
  ScrubPhase phase = ScrubPhase::kNone;
  uint64_t cursor = 0;  // the next stripe id to check
  int64_t started_ns = 0;
  int64_t finished_ns = 0;  // 0 until finished
  uint64_t stripes_total = 0;    // sealed stripes when it started (an estimate: they change)
  uint64_t stripes_checked = 0;
  uint64_t bytes_read = 0;       // member bytes read
  uint64_t blocks_rebuilt = 0;   // data blocks that failed their checksum, rebuilt and rewritten
  uint64_t parity_rows_rewritten = 0;
  uint64_t blocks_lost = 0;      // beyond repair (more damage in a row than parity covers)
  uint64_t stripes_skipped = 0;  // open (being written) or unreadable as a whole
  uint64_t rate_limit = 0;       // bytes a second asked for (--rate), 0: none; kept on resume
  bool operator==(const ScrubState&) const = default;
};

// A member's rebuild (raidfs rebuild / replace), kept so that an unmount or a crash resumes it.
enum class RebuildPhase : uint8_t { kNone = 0, kRunning = 1, kFinished = 2, kFailed = 3 };

struct RebuildState {
  RebuildPhase phase = RebuildPhase::kNone;
  uint32_t member = 0;
  uint64_t from_generation = 0;  // stripes of this generation and later were written full width
  uint64_t cursor = 0;           // stripes below it are rebuilt and flushed on the member
  int64_t started_ns = 0;
  int64_t finished_ns = 0;
  uint64_t stripes_total = 0;    // committed stripes when it started (an estimate)
  uint64_t stripes_rebuilt = 0;
  uint64_t stripes_skipped = 0;  // nothing to copy: written full width since it began, or no
                                 // data in the member's chunk (parity of an open stripe: metadata)
  uint64_t bytes_written = 0;    // to the member
  // Stripes of a lower generation were on the member, unchanged, when it left (a returned
  // member): skipped. 0 for a failed member or a new device: every committed stripe is rebuilt.
  uint64_t since_generation = 0;
  bool replace = false;          // onto a new device (raidfs replace), not the member's own
  uint64_t rate_limit = 0;       // bytes a second asked for (--rate), 0: none; kept on resume
  bool operator==(const RebuildState&) const = default;
};

// Number of 4 KiB blocks of a stripe's data that [offset, offset + length) touches.
uint32_t blocks_touched(uint64_t offset, uint64_t length);

std::string encode_super(const Super& s);
Result<Super> decode_super(std::string_view v);
std::string encode_counter(uint64_t value);
Result<uint64_t> decode_counter(std::string_view v);
std::string encode_inode(const Inode& i);
Result<Inode> decode_inode(uint64_t ino, std::string_view v);
std::string encode_dirent(const Dirent& d);
Result<Dirent> decode_dirent(std::string_view v);
std::string encode_cookie(std::string_view name);
Result<std::string> decode_cookie(std::string_view v);
std::string encode_extent(const Extent& e);
Result<Extent> decode_extent(uint64_t file_offset, std::string_view v);
// Without the parity rows (store format 5), unless `embed_parity_rows` (a format-4 record, as
// tests of the upgrade write). The decoder reads rows embedded by format 4.
std::string encode_stripe(const Stripe& s, bool embed_parity_rows = false);
Result<Stripe> decode_stripe(uint64_t id, std::string_view v);
// The same into *out, reusing its vectors' capacity (the read path decodes without allocating);
// on an error *out is left partly written.
Result<void> decode_stripe(uint64_t id, std::string_view v, Stripe* out);
std::string encode_parity_row(const ParityRow& row);
Result<ParityRow> decode_parity_row(uint32_t row_index, std::string_view v);
std::string encode_xattr(std::string_view value);
Result<std::string> decode_xattr(std::string_view v);
std::string encode_orphan();
Result<void> decode_orphan(std::string_view v);
std::string encode_scrub(const ScrubState& s);
Result<ScrubState> decode_scrub(std::string_view v);
std::string encode_rebuild(const RebuildState& s);
Result<RebuildState> decode_rebuild(std::string_view v);

}  // namespace raidfs::meta
