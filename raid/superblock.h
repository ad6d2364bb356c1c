// Superblock: the identity record at the start of every member, with a copy at its end.
//
// On-member format (version 1; 2 for a self-contained array), 4096 bytes, little-endian:
//
//   offset  bytes  field
//        0      8  magic "RAIDFSMB"
//        8      4  format version (1)
//       12      4  record bytes (4096)
//       16     16  array UUID (same on every member of one array)
//       32      4  member index (0 .. n-1: this member's column in the geometry)
//       36      4  member count n
//       40      4  parity count m
//       44      4  chunk bytes C
//       48      8  data offset (bytes; stripe 0's row)
//       56      8  member bytes (this member's device size at format time)
//       64      8  stripe count (same on every member: set by the smallest one)
//       72      8  sequence: bumped on every rewrite; the newest copy across members wins
//       80      8  created (ns since the epoch)
//       88     64  member states: byte i is member i's MemberState as this member last knew it
//      152     64  label, NUL-padded UTF-8
//      216   1024  metadata directory path, NUL-padded
//     1240      8  settled sequence: every member written at that sequence holds it (below)
//     1248      8  write floor: no stripe of a lower generation takes new data any more
//     1256    512  member since, 64 × 8: for a missing member, the write floor when it left
//     1768   1024  member device UUIDs, 64 × 16: which device holds each index (zero: unknown)
//     2792      8  metadata region offset (bytes on each member; 0: no region)
//     2800      8  metadata region bytes on each member (0: the metadata lives in a directory)
//     2808   1284  reserved, zero
//     4092      4  crc32c (standard) of bytes [0, 4092)
//
// Stale copies: a member whose own sequence is below the newest copy's settled sequence missed an
// update that reached every member written then — it is an old copy of itself (an image put back,
// a disk swapped in from elsewhere) and is rebuilt, never trusted. One behind the newest is not
// enough to say so (an update torn by a crash leaves some members one behind), which is why a
// clean unmount writes twice (Array::record_clean_unmount). Fields from 1240 on were reserved
// zero in earlier raidfs, and zero means "not known": no check is made on them.
//
// Version 2 marks an array whose metadata lives in a region of the members (raid/meta_region.h):
// a raidfs that knows only version 1 refuses it instead of looking for a metadata directory.
// Version-1 arrays (metadata in a directory) are still written as version 1.
//
// The primary copy is at byte 0; the backup at backup_offset(member bytes), the last 4 KiB of the
// device. Both are written (and synced) on every update, primary first: a torn write leaves one of
// them whole, and read() takes the valid copy with the larger sequence.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "base/result.h"
#include "raid/geometry.h"

namespace raidfs {

enum class MemberState : uint8_t {
  kUnknown = 0,
  kActive = 1,      // holds current data
  kFailed = 2,      // returned I/O errors, or marked failed by the admin: never read again
  kMissing = 3,     // absent at mount
  kRebuilding = 4,  // being rebuilt onto (not yet trusted for reads)
};
const char* member_state_name(MemberState s);

using ArrayUuid = std::array<uint8_t, 16>;
std::string uuid_to_string(const ArrayUuid& uuid);
ArrayUuid random_uuid();

struct Superblock {
  static constexpr uint32_t kBytes = 4096;
  static constexpr uint32_t kFormatVersion = 2;  // the newest this raidfs reads and writes
  static constexpr uint32_t kLabelBytes = 64;
  static constexpr uint32_t kMetadataDirBytes = 1024;

  ArrayUuid array_uuid{};
  uint32_t member_index = 0;
  uint32_t member_count = 0;
  uint32_t parity_count = 0;
  uint32_t chunk_bytes = 0;
  uint64_t data_offset = 0;
  uint64_t member_bytes = 0;
  uint64_t stripe_count = 0;
  uint64_t sequence = 0;
  uint64_t created_ns = 0;
  std::array<MemberState, kMembersMax> member_states{};
  std::string label;
  std::string metadata_dir;
  uint64_t settled_sequence = 0;
  uint64_t write_floor = 0;
  std::array<uint64_t, kMembersMax> member_since{};
  std::array<ArrayUuid, kMembersMax> member_uuids{};
  uint64_t meta_region_offset = 0;
  uint64_t meta_region_bytes = 0;  // per member; 0: metadata in `metadata_dir`

  // Serialises into exactly kBytes bytes, crc included. Strings longer than their field are cut
  // (format() refuses them earlier with a clear error).
  void encode(uint8_t* out) const;

  // Parses and validates a copy. Errors, all naming the problem:
  //   EINVAL "no raidfs superblock"         wrong magic (not a member, or never formatted)
  //   EIO    "superblock checksum mismatch" torn or corrupt
  //   EPROTONOSUPPORT "format version N is newer than this raidfs supports (1)"
  //   EIO    "inconsistent superblock: ..." fields that no valid array has
  static Result<Superblock> decode(const uint8_t* in);

  // The geometry these fields describe (always valid for a decoded superblock).
  Geometry geometry() const;

  bool self_contained() const { return meta_region_bytes != 0; }
  MemberState own_state() const { return member_states[member_index]; }
  const ArrayUuid& own_uuid() const { return member_uuids[member_index]; }
};

// Byte offset of the backup copy on a device of `member_bytes` bytes.
inline uint64_t backup_superblock_offset(uint64_t member_bytes) {
  return member_bytes / Superblock::kBytes * Superblock::kBytes - Superblock::kBytes;
}

// What reading both copies of a member's superblock found.
struct SuperblockCopies {
  Superblock newest;       // the valid copy with the larger sequence
  bool primary_valid;
  bool backup_valid;
};

// Reads and validates both copies from an open member (any open mode; O_DIRECT is fine).
// `device_bytes` is the device's current size. If both copies are invalid the error is that of the
// primary copy (e.g. "no raidfs superblock" for a foreign device).
Result<SuperblockCopies> read_superblock(int fd, uint64_t device_bytes);

// The newest valid superblock of the device or image at `path`, opened read-only without a lock
// (a scan for an array's members: mount by a directory or by UUID=). EINVAL "no raidfs
// superblock"; the open errno, naming the path.
Result<Superblock> peek_superblock(const std::string& path);

// Writes both copies (primary, then backup) and syncs the member. Errors: EIO with the cause.
Result<void> write_superblock(int fd, const Superblock& sb);

}  // namespace raidfs
