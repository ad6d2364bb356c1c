#include "raid/device_probe.h"

#include <unistd.h>

#include <cstring>
#include <string_view>

#include "base/aligned_buffer.h"

namespace raidfs {
namespace {

struct Signature {
  const char* name;
  uint64_t offset;        // byte offset of the magic on the device
  std::string_view magic;
};

using namespace std::string_view_literals;
// Offsets and magics as documented by each format (and used by util-linux's libblkid).
constexpr Signature kSignatures[] = {
    {"ext2/3/4", 0x438, "\x53\xef"sv},
    {"btrfs", 0x10040, "_BHRfS_M"sv},
    {"xfs", 0, "XFSB"sv},
    {"swap", 4096 - 10, "SWAPSPACE2"sv},
    {"LUKS", 0, "LUKS\xba\xbe"sv},
    {"LVM2", 0x218, "LVM2 001"sv},
    {"md RAID (1.1)", 0, "\xfc\x4e\x2b\xa9"sv},
    {"md RAID (1.2)", 0x1000, "\xfc\x4e\x2b\xa9"sv},
    {"GPT partition table", 0x200, "EFI PART"sv},
    {"NTFS", 3, "NTFS    "sv},
    {"FAT", 0x52, "FAT32   "sv},
    {"ZFS", 0x4000 * 2 + 0x10000, "\x0c\xb1\xba\x00"sv},  // uberblock magic, label 0
};

}  // namespace

Result<std::optional<std::string>> probe_foreign_signature(int fd, uint64_t device_bytes) {
  constexpr uint64_t kWindow = 0x20000;  // every magic above lies in the first 128 KiB
  AlignedBuffer head(kWindow);
  const uint64_t want = std::min(kWindow, device_bytes / 4096 * 4096);
  ssize_t got = want ? ::pread(fd, head.data(), want, 0) : 0;
  if (got < 0) return fail(errno, std::string("cannot read: ") + std::strerror(errno));
  for (const Signature& s : kSignatures) {
    if (s.offset + s.magic.size() > static_cast<uint64_t>(got)) continue;
    if (std::memcmp(head.data() + s.offset, s.magic.data(), s.magic.size()) == 0) return std::string(s.name);
  }
  // An MBR partition table: boot signature plus at least one non-empty partition entry.
  if (got >= 512 && head.data()[510] == 0x55 && head.data()[511] == 0xAA) {
    for (int p = 0; p < 4; ++p)
      if (head.data()[446 + 16 * p + 4] != 0) return std::string("MBR partition table");
  }
  return std::nullopt;
}

}  // namespace raidfs
