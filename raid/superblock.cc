#include "raid/superblock.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <random>

#include "base/aligned_buffer.h"
#include "raid/checksum.h"
#include "raid/endian.h"
#include "raid/member_file.h"
#include "raid/meta_region.h"

namespace raidfs {
namespace {

constexpr char kMagic[8] = {'R', 'A', 'I', 'D', 'F', 'S', 'M', 'B'};
constexpr size_t kCrcOffset = Superblock::kBytes - 4;

void store_string(uint8_t* field, size_t field_bytes, const std::string& s) {
  std::memcpy(field, s.data(), std::min(field_bytes, s.size()));
}

std::string load_string(const uint8_t* field, size_t field_bytes) {
  const void* nul = std::memchr(field, 0, field_bytes);
  size_t len = nul ? static_cast<size_t>(static_cast<const uint8_t*>(nul) - field) : field_bytes;
  return std::string(reinterpret_cast<const char*>(field), len);
}

Result<void> pread_all(int fd, uint8_t* buf, size_t len, uint64_t offset) {
  size_t done = 0;
  while (done < len) {
    ssize_t r = ::pread(fd, buf + done, len - done, static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return fail(errno, std::string("read failed: ") + std::strerror(errno));
    if (r == 0) return fail(EIO, "device ends before the superblock");
    done += static_cast<size_t>(r);
  }
  return {};
}

Result<void> pwrite_all(int fd, const uint8_t* buf, size_t len, uint64_t offset) {
  size_t done = 0;
  while (done < len) {
    ssize_t r = ::pwrite(fd, buf + done, len - done, static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return fail(r < 0 ? errno : EIO, std::string("write failed: ") + std::strerror(errno));
    done += static_cast<size_t>(r);
  }
  return {};
}

}  // namespace

const char* member_state_name(MemberState s) {
  switch (s) {
    case MemberState::kUnknown: return "unknown";
    case MemberState::kActive: return "active";
    case MemberState::kFailed: return "failed";
    case MemberState::kMissing: return "missing";
    case MemberState::kRebuilding: return "rebuilding";
  }
  return "invalid";
}

std::string uuid_to_string(const ArrayUuid& u) {
  char s[37];
  std::snprintf(s, sizeof s,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
                u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
                u[15]);
  return s;
}

ArrayUuid random_uuid() {
  std::random_device rd;
  ArrayUuid u;
  for (auto& b : u) b = static_cast<uint8_t>(rd());
  u[6] = static_cast<uint8_t>((u[6] & 0x0f) | 0x40);  // RFC 4122 version 4
  u[8] = static_cast<uint8_t>((u[8] & 0x3f) | 0x80);
  return u;
}

void Superblock::encode(uint8_t* out) const {
  std::memset(out, 0, kBytes);
  std::memcpy(out, kMagic, 8);
  store_le32(out + 8, self_contained() ? 2 : 1);
  store_le32(out + 12, kBytes);
  std::memcpy(out + 16, array_uuid.data(), 16);
  store_le32(out + 32, member_index);
  store_le32(out + 36, member_count);
  store_le32(out + 40, parity_count);
  store_le32(out + 44, chunk_bytes);
  store_le64(out + 48, data_offset);
  store_le64(out + 56, member_bytes);
  store_le64(out + 64, stripe_count);
  store_le64(out + 72, sequence);
  store_le64(out + 80, created_ns);
  for (uint32_t i = 0; i < kMembersMax; ++i) out[88 + i] = static_cast<uint8_t>(member_states[i]);
  store_string(out + 152, kLabelBytes, label);
  store_string(out + 216, kMetadataDirBytes, metadata_dir);
  store_le64(out + 1240, settled_sequence);
  store_le64(out + 1248, write_floor);
  for (uint32_t i = 0; i < kMembersMax; ++i) store_le64(out + 1256 + 8 * i, member_since[i]);
  for (uint32_t i = 0; i < kMembersMax; ++i) std::memcpy(out + 1768 + 16 * i, member_uuids[i].data(), 16);
  store_le64(out + 2792, meta_region_offset);
  store_le64(out + 2800, meta_region_bytes);
  store_le32(out + kCrcOffset, crc32c({out, kCrcOffset}));
}

Result<Superblock> Superblock::decode(const uint8_t* in) {
  if (std::memcmp(in, kMagic, 8) != 0) return fail(EINVAL, "no raidfs superblock");
  if (load_le32(in + kCrcOffset) != crc32c({in, kCrcOffset}))
    return fail(EIO, "superblock checksum mismatch (torn or corrupt)");
  uint32_t version = load_le32(in + 8);
  if (version > kFormatVersion)
    return fail(EPROTONOSUPPORT, "format version " + std::to_string(version) +
                                     " is newer than this raidfs supports (" +
                                     std::to_string(kFormatVersion) + "): upgrade raidfs");
  if (version == 0 || load_le32(in + 12) != kBytes)
    return fail(EIO, "inconsistent superblock: bad version or record size");

  Superblock sb;
  std::memcpy(sb.array_uuid.data(), in + 16, 16);
  sb.member_index = load_le32(in + 32);
  sb.member_count = load_le32(in + 36);
  sb.parity_count = load_le32(in + 40);
  sb.chunk_bytes = load_le32(in + 44);
  sb.data_offset = load_le64(in + 48);
  sb.member_bytes = load_le64(in + 56);
  sb.stripe_count = load_le64(in + 64);
  sb.sequence = load_le64(in + 72);
  sb.created_ns = load_le64(in + 80);
  for (uint32_t i = 0; i < kMembersMax; ++i) {
    uint8_t s = in[88 + i];
    if (s > static_cast<uint8_t>(MemberState::kRebuilding))
      return fail(EIO, "inconsistent superblock: bad member state");
    sb.member_states[i] = static_cast<MemberState>(s);
  }
  sb.label = load_string(in + 152, kLabelBytes);
  sb.metadata_dir = load_string(in + 216, kMetadataDirBytes);
  sb.settled_sequence = load_le64(in + 1240);
  sb.write_floor = load_le64(in + 1248);
  for (uint32_t i = 0; i < kMembersMax; ++i) sb.member_since[i] = load_le64(in + 1256 + 8 * i);
  for (uint32_t i = 0; i < kMembersMax; ++i) std::memcpy(sb.member_uuids[i].data(), in + 1768 + 16 * i, 16);
  if (version >= 2) {
    sb.meta_region_offset = load_le64(in + 2792);
    sb.meta_region_bytes = load_le64(in + 2800);
  }

  auto geometry = Geometry::create(sb.member_count, sb.parity_count, sb.chunk_bytes,
                                   sb.data_offset, sb.stripe_count);
  if (!geometry) return fail_with(geometry.error(), "inconsistent superblock: ");
  if (sb.member_index >= sb.member_count)
    return fail(EIO, "inconsistent superblock: member index " + std::to_string(sb.member_index) +
                         " of " + std::to_string(sb.member_count));
  if (sb.data_offset < kBytes)
    return fail(EIO, "inconsistent superblock: data area overlaps the superblock");
  // Division, not multiplication: hostile counts must not overflow into a pass.
  if (sb.member_bytes < sb.data_offset + 2 * kBytes ||
      sb.stripe_count > (backup_superblock_offset(sb.member_bytes) - sb.data_offset) / sb.chunk_bytes)
    return fail(EIO, "inconsistent superblock: stripes overrun the member");
  if ((version >= 2) != sb.self_contained() ||
      (sb.self_contained() &&
       (sb.meta_region_offset < kBytes || sb.meta_region_bytes > sb.data_offset ||
        sb.meta_region_offset > sb.data_offset - sb.meta_region_bytes ||
        !MetaRegion::create(sb.member_count, sb.parity_count + 1, sb.meta_region_offset,
                            sb.meta_region_bytes))))
    return fail(EIO, "inconsistent superblock: bad metadata region");
  return sb;
}

Geometry Superblock::geometry() const {
  return Geometry::create(member_count, parity_count, chunk_bytes, data_offset, stripe_count)
      .value();
}

Result<SuperblockCopies> read_superblock(int fd, uint64_t device_bytes) {
  AlignedBuffer buf(Superblock::kBytes);
  if (device_bytes < 2 * Superblock::kBytes) return fail(EINVAL, "no raidfs superblock (too small)");

  RAIDFS_CHECK(pread_all(fd, buf.data(), Superblock::kBytes, 0));
  Result<Superblock> primary = Superblock::decode(buf.data());

  // The backup sits at the end of the device as it was formatted; if the primary is gone, look at
  // the end of the device as it is now.
  uint64_t member_bytes = primary ? primary->member_bytes : device_bytes;
  Result<Superblock> backup = fail(EINVAL, "no raidfs superblock");
  if (member_bytes <= device_bytes) {
    RAIDFS_CHECK(pread_all(fd, buf.data(), Superblock::kBytes, backup_superblock_offset(member_bytes)));
    backup = Superblock::decode(buf.data());
  }
  if (!primary && !backup) {
    // Prefer the more specific complaint: a damaged copy says more than a missing one.
    const Error& e = primary.error().code != EINVAL ? primary.error() : backup.error();
    return fail(e.code, e.message + (e.code != EINVAL ? " (both copies)" : ""));
  }
  SuperblockCopies copies{{}, primary.has_value(), backup.has_value()};
  if (primary && backup)
    // Copies of different arrays mean a forced mkfs was torn between them: the primary is the
    // one written first, so it is the new array's.
    copies.newest = primary->array_uuid != backup->array_uuid || primary->sequence >= backup->sequence
                        ? *primary : *backup;
  else
    copies.newest = primary ? *primary : *backup;
  return copies;
}

Result<Superblock> peek_superblock(const std::string& path) {
  RAIDFS_TRY(const uint64_t bytes, MemberFile::size_of(path));
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(errno, path + ": " + std::strerror(errno));
  auto copies = read_superblock(fd, bytes);
  ::close(fd);
  if (!copies) return fail_with(copies.error(), path + ": ");
  return copies->newest;
}

Result<void> write_superblock(int fd, const Superblock& sb) {
  AlignedBuffer buf(Superblock::kBytes);
  sb.encode(buf.data());
  RAIDFS_CHECK(pwrite_all(fd, buf.data(), Superblock::kBytes, 0));
  if (::fdatasync(fd) != 0) return fail(errno, std::string("sync failed: ") + std::strerror(errno));
  RAIDFS_CHECK(pwrite_all(fd, buf.data(), Superblock::kBytes, backup_superblock_offset(sb.member_bytes)));
  if (::fdatasync(fd) != 0) return fail(errno, std::string("sync failed: ") + std::strerror(errno));
  return {};
}

}  // namespace raidfs
