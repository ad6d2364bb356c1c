#include "meta/records.h"

#include <sys/stat.h>

#include "meta/coding.h"

namespace raidfs::meta {
namespace {

Result<void> expect_format(ByteReader& r) {
  RAIDFS_TRY(uint8_t fmt, r.u8());
  if (fmt != kRecordFormat) return r.fail("unknown format byte " + std::to_string(fmt));
  return {};
}

}  // namespace

FileType file_type_of_mode(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return FileType::kRegular;
    case S_IFDIR: return FileType::kDirectory;
    case S_IFLNK: return FileType::kSymlink;
    case S_IFCHR: return FileType::kCharDev;
    case S_IFBLK: return FileType::kBlockDev;
    case S_IFIFO: return FileType::kFifo;
    case S_IFSOCK: return FileType::kSocket;
    default: return FileType::kUnknown;
  }
}

bool valid_file_type(uint8_t v) {
  switch (static_cast<FileType>(v)) {
    case FileType::kUnknown: case FileType::kFifo: case FileType::kCharDev:
    case FileType::kDirectory: case FileType::kBlockDev: case FileType::kRegular:
    case FileType::kSymlink: case FileType::kSocket:
      return true;
  }
  return false;
}

uint32_t blocks_touched(uint64_t offset, uint64_t length) {
  if (length == 0) return 0;
  return static_cast<uint32_t>((offset + length - 1) / kBlockBytes - offset / kBlockBytes + 1);
}

// --- Super ---------------------------------------------------------------------------------------
std::string encode_super(const Super& s) {
  std::string v;
  put_u8(v, kRecordFormat);
  put_u32(v, s.store_format);
  v.append(reinterpret_cast<const char*>(s.array_uuid.data()), s.array_uuid.size());
  put_u64(v, s.stripe_count);
  put_u32(v, s.stripe_data_bytes);
  put_bytes(v, s.geometry);
  return v;
}

Result<Super> decode_super(std::string_view v) {
  ByteReader r(v, "super");
  RAIDFS_CHECK(expect_format(r));
  Super s;
  RAIDFS_TRY(s.store_format, r.u32());
  RAIDFS_TRY(auto uuid, r.raw(16));
  std::copy(uuid.begin(), uuid.end(), s.array_uuid.begin());
  RAIDFS_TRY(s.stripe_count, r.u64());
  RAIDFS_TRY(s.stripe_data_bytes, r.u32());
  RAIDFS_TRY(auto geometry, r.bytes(kGeometryBytesMax));
  s.geometry = geometry;
  RAIDFS_CHECK(r.expect_end());
  if (s.stripe_count == 0 || s.stripe_count > kStripeCountMax)
    return r.fail("stripe count " + std::to_string(s.stripe_count) + " out of range");
  if (s.stripe_data_bytes == 0 || s.stripe_data_bytes % kBlockBytes != 0 ||
      s.stripe_data_bytes > kStripeDataBytesMax)
    return r.fail("stripe data bytes " + std::to_string(s.stripe_data_bytes) +
                  " not a multiple of 4096 in range");
  return s;
}

// --- Counter -------------------------------------------------------------------------------------
std::string encode_counter(uint64_t value) {
  std::string v;
  put_u8(v, kRecordFormat);
  put_u64(v, value);
  return v;
}

Result<uint64_t> decode_counter(std::string_view v) {
  ByteReader r(v, "counter");
  RAIDFS_CHECK(expect_format(r));
  RAIDFS_TRY(uint64_t value, r.u64());
  RAIDFS_CHECK(r.expect_end());
  return value;
}

// --- Inode ---------------------------------------------------------------------------------------
std::string encode_inode(const Inode& i) {
  std::string v;
  v.reserve(88 + i.symlink_target.size());
  put_u8(v, kInodeFormat);
  put_u32(v, i.mode);
  put_u32(v, i.uid);
  put_u32(v, i.gid);
  put_u64(v, i.size);
  put_u32(v, i.nlink);
  put_i64(v, i.atime_ns);
  put_i64(v, i.mtime_ns);
  put_i64(v, i.ctime_ns);
  put_u64(v, i.rdev);
  put_u32(v, i.flags);
  put_u64(v, i.parent);
  put_u64(v, i.next_cookie);
  put_bytes(v, i.symlink_target);
  put_u64(v, i.blocks);
  return v;
}

Result<Inode> decode_inode(uint64_t ino, std::string_view v) {
  ByteReader r(v, "inode");
  RAIDFS_TRY(const uint8_t fmt, r.u8());
  if (fmt != 1 && fmt != kInodeFormat) return r.fail("unknown format byte " + std::to_string(fmt));
  Inode i;
  i.ino = ino;
  RAIDFS_TRY(i.mode, r.u32());
  RAIDFS_TRY(i.uid, r.u32());
  RAIDFS_TRY(i.gid, r.u32());
  RAIDFS_TRY(i.size, r.u64());
  RAIDFS_TRY(i.nlink, r.u32());
  RAIDFS_TRY(i.atime_ns, r.i64());
  RAIDFS_TRY(i.mtime_ns, r.i64());
  RAIDFS_TRY(i.ctime_ns, r.i64());
  RAIDFS_TRY(i.rdev, r.u64());
  RAIDFS_TRY(i.flags, r.u32());
  RAIDFS_TRY(i.parent, r.u64());
  RAIDFS_TRY(i.next_cookie, r.u64());
  RAIDFS_TRY(auto target, r.bytes(kSymlinkBytesMax));
  i.symlink_target = target;
  if (fmt == 1) {
    i.blocks = kBlocksUnknown;
  } else {
    RAIDFS_TRY(i.blocks, r.u64());
    if (i.blocks == kBlocksUnknown) return r.fail("block count out of range");
  }
  RAIDFS_CHECK(r.expect_end());
  if (file_type_of_mode(i.mode) == FileType::kUnknown) return r.fail("bad file type in mode");
  return i;
}

// --- Dirent and its cookie index -----------------------------------------------------------------
std::string encode_dirent(const Dirent& d) {
  std::string v;
  put_u8(v, kRecordFormat);
  put_u64(v, d.child);
  put_u8(v, static_cast<uint8_t>(d.type));
  put_u64(v, d.cookie);
  return v;
}

Result<Dirent> decode_dirent(std::string_view v) {
  ByteReader r(v, "dirent");
  RAIDFS_CHECK(expect_format(r));
  Dirent d;
  RAIDFS_TRY(d.child, r.u64());
  RAIDFS_TRY(uint8_t type, r.u8());
  if (!valid_file_type(type)) return r.fail("bad type " + std::to_string(type));
  d.type = static_cast<FileType>(type);
  RAIDFS_TRY(d.cookie, r.u64());
  RAIDFS_CHECK(r.expect_end());
  return d;
}

std::string encode_cookie(std::string_view name) {
  std::string v;
  put_u8(v, kRecordFormat);
  put_bytes(v, name);
  return v;
}

Result<std::string> decode_cookie(std::string_view v) {
  ByteReader r(v, "cookie");
  RAIDFS_CHECK(expect_format(r));
  RAIDFS_TRY(auto name, r.bytes(kNameBytesMax));
  RAIDFS_CHECK(r.expect_end());
  if (name.empty()) return r.fail("empty name");
  return std::string(name);
}

// --- Extent --------------------------------------------------------------------------------------
std::string encode_extent(const Extent& e) {
  std::string v;
  put_u8(v, kRecordFormat);
  put_u64(v, e.stripe_id);
  put_u32(v, e.stripe_offset);
  put_u32(v, e.length);
  return v;
}

Result<Extent> decode_extent(uint64_t file_offset, std::string_view v) {
  ByteReader r(v, "extent");
  RAIDFS_CHECK(expect_format(r));
  Extent e;
  e.file_offset = file_offset;
  RAIDFS_TRY(e.stripe_id, r.u64());
  RAIDFS_TRY(e.stripe_offset, r.u32());
  RAIDFS_TRY(e.length, r.u32());
  RAIDFS_CHECK(r.expect_end());
  if (e.length == 0) return r.fail("zero length");
  if (file_offset + e.length < file_offset) return r.fail("file range overflows");
  return e;
}

// --- Stripe --------------------------------------------------------------------------------------
std::string encode_stripe(const Stripe& s, bool embed_parity_rows) {
  const size_t rows = embed_parity_rows ? s.parity_rows.size() : 0;
  std::string v;
  v.reserve(32 + 4 * s.block_crcs.size() + rows * (4 + size_t{s.parity_count} * kBlockBytes));
  put_u8(v, kRecordFormat);
  put_u64(v, s.generation);
  put_u8(v, static_cast<uint8_t>(s.state));
  put_u32(v, s.filled_bytes);
  put_u32(v, s.live_blocks);
  put_u32(v, static_cast<uint32_t>(s.block_crcs.size()));
  for (uint32_t crc : s.block_crcs) put_u32(v, crc);
  put_u8(v, s.parity_count);
  put_u32(v, static_cast<uint32_t>(rows));
  for (size_t i = 0; i < rows; ++i) {
    put_u32(v, s.parity_rows[i].row_index);
    v.append(s.parity_rows[i].bytes);
  }
  return v;
}

// --- ParityRow -----------------------------------------------------------------------------------
std::string encode_parity_row(const ParityRow& row) {
  std::string v;
  v.reserve(1 + row.bytes.size());
  put_u8(v, kRecordFormat);
  v.append(row.bytes);
  return v;
}

Result<ParityRow> decode_parity_row(uint32_t row_index, std::string_view v) {
  ByteReader r(v, "parity row");
  RAIDFS_CHECK(expect_format(r));
  const size_t bytes = r.remaining();
  if (bytes == 0 || bytes % kBlockBytes != 0 || bytes / kBlockBytes > kParityCountMax)
    return r.fail("parity of " + std::to_string(bytes) + " bytes");
  RAIDFS_TRY(std::string_view parity, r.raw(bytes));
  return ParityRow{row_index, std::string(parity)};
}

Result<Stripe> decode_stripe(uint64_t id, std::string_view v) {
  Stripe s;
  RAIDFS_CHECK(decode_stripe(id, v, &s));
  return s;
}

Result<void> decode_stripe(uint64_t id, std::string_view v, Stripe* out) {
  ByteReader r(v, "stripe");
  RAIDFS_CHECK(expect_format(r));
  Stripe& s = *out;
  s.id = id;
  RAIDFS_TRY(s.generation, r.u64());
  RAIDFS_TRY(uint8_t state, r.u8());
  if (state > static_cast<uint8_t>(StripeState::kSealed))
    return r.fail("bad state " + std::to_string(state));
  s.state = static_cast<StripeState>(state);
  RAIDFS_TRY(s.filled_bytes, r.u32());
  if (s.filled_bytes > kStripeDataBytesMax) return r.fail("filled_bytes out of range");
  RAIDFS_TRY(s.live_blocks, r.u32());
  RAIDFS_TRY(uint32_t crc_count, r.u32());
  if (crc_count != (s.filled_bytes + kBlockBytes - 1) / kBlockBytes)
    return r.fail("crc count " + std::to_string(crc_count) + " does not match filled bytes");
  RAIDFS_TRY(std::string_view crcs, r.raw(size_t{crc_count} * 4));
  s.block_crcs.resize(crc_count);
  for (uint32_t i = 0; i < crc_count; ++i) s.block_crcs[i] = load_u32(crcs.data() + size_t{i} * 4);
  RAIDFS_TRY(s.parity_count, r.u8());
  if (s.parity_count > kParityCountMax) return r.fail("parity count out of range");
  RAIDFS_TRY(uint32_t row_count, r.u32());
  const size_t row_bytes = size_t{s.parity_count} * kBlockBytes;
  if (row_count > 0 && s.parity_count == 0) return r.fail("parity rows without parity count");
  if (r.remaining() != size_t{row_count} * (4 + row_bytes)) return r.fail("parity rows size");
  s.parity_rows.resize(row_count);
  for (ParityRow& row : s.parity_rows) {
    RAIDFS_TRY(row.row_index, r.u32());
    RAIDFS_TRY(auto bytes, r.raw(row_bytes));
    row.bytes = bytes;
  }
  return r.expect_end();
}

// --- Scrub ---------------------------------------------------------------------------------------
std::string encode_scrub(const ScrubState& s) {
  std::string v;
  put_u8(v, kRecordFormat);
  put_u8(v, static_cast<uint8_t>(s.phase));
  put_u64(v, s.cursor);
  put_i64(v, s.started_ns);
  put_i64(v, s.finished_ns);
  for (uint64_t n : {s.stripes_total, s.stripes_checked, s.bytes_read, s.blocks_rebuilt,
                     s.parity_rows_rewritten, s.blocks_lost, s.stripes_skipped, s.rate_limit})
    put_u64(v, n);
  return v;
}

Result<ScrubState> decode_scrub(std::string_view v) {
  ByteReader r(v, "scrub state");
  RAIDFS_CHECK(expect_format(r));
  ScrubState s;
  RAIDFS_TRY(const uint8_t phase, r.u8());
  if (phase > static_cast<uint8_t>(ScrubPhase::kFinished)) return r.fail("unknown scrub phase");
  s.phase = static_cast<ScrubPhase>(phase);
  RAIDFS_TRY(s.cursor, r.u64());
  RAIDFS_TRY(s.started_ns, r.i64());
  RAIDFS_TRY(s.finished_ns, r.i64());
  for (uint64_t* n : {&s.stripes_total, &s.stripes_checked, &s.bytes_read, &s.blocks_rebuilt,
                      &s.parity_rows_rewritten, &s.blocks_lost, &s.stripes_skipped, &s.rate_limit}) {
    RAIDFS_TRY(*n, r.u64());
  }
  RAIDFS_CHECK(r.expect_end());
  return s;
}

// --- Rebuild -------------------------------------------------------------------------------------
std::string encode_rebuild(const RebuildState& s) {
  std::string v;
  put_u8(v, kRecordFormat);
  put_u8(v, static_cast<uint8_t>(s.phase));
  put_u32(v, s.member);
  put_u64(v, s.from_generation);
  put_u64(v, s.cursor);
  put_i64(v, s.started_ns);
  put_i64(v, s.finished_ns);
  for (uint64_t n : {s.stripes_total, s.stripes_rebuilt, s.stripes_skipped, s.bytes_written})
    put_u64(v, n);
  put_u64(v, s.since_generation);
  put_u8(v, s.replace ? 1 : 0);
  put_u64(v, s.rate_limit);
  return v;
}

Result<RebuildState> decode_rebuild(std::string_view v) {
  ByteReader r(v, "rebuild state");
  RAIDFS_CHECK(expect_format(r));
  RebuildState s;
  RAIDFS_TRY(const uint8_t phase, r.u8());
  if (phase > static_cast<uint8_t>(RebuildPhase::kFailed)) return r.fail("unknown rebuild phase");
  s.phase = static_cast<RebuildPhase>(phase);
  RAIDFS_TRY(s.member, r.u32());
  if (s.member >= 64) return r.fail("member index out of range");
  RAIDFS_TRY(s.from_generation, r.u64());
  RAIDFS_TRY(s.cursor, r.u64());
  RAIDFS_TRY(s.started_ns, r.i64());
  RAIDFS_TRY(s.finished_ns, r.i64());
  for (uint64_t* n : {&s.stripes_total, &s.stripes_rebuilt, &s.stripes_skipped, &s.bytes_written}) {
    RAIDFS_TRY(*n, r.u64());
  }
  RAIDFS_TRY(s.since_generation, r.u64());
  RAIDFS_TRY(const uint8_t replace, r.u8());
  if (replace > 1) return r.fail("bad replace flag");
  s.replace = replace == 1;
  RAIDFS_TRY(s.rate_limit, r.u64());
  RAIDFS_CHECK(r.expect_end());
  return s;
}

// --- Xattr and Orphan ----------------------------------------------------------------------------
std::string encode_xattr(std::string_view value) {
  std::string v;
  put_u8(v, kRecordFormat);
  put_bytes(v, value);
  return v;
}

Result<std::string> decode_xattr(std::string_view v) {
  ByteReader r(v, "xattr");
  RAIDFS_CHECK(expect_format(r));
  RAIDFS_TRY(auto value, r.bytes(kXattrValueBytesMax));
  RAIDFS_CHECK(r.expect_end());
  return std::string(value);
}

std::string encode_orphan() { return std::string(1, static_cast<char>(kRecordFormat)); }

Result<void> decode_orphan(std::string_view v) {
  ByteReader r(v, "orphan");
  RAIDFS_CHECK(expect_format(r));
  return r.expect_end();
}

}  // namespace raidfs::meta
