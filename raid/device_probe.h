// Recognises what else a device may hold, so mkfs does not overwrite a filesystem, a RAID member
// or a partition table by mistake. A small table of on-disk signatures (the same ones blkid looks
// at first), not a full probe: absence of a match does not prove the device is blank.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "base/result.h"

namespace raidfs {

// The name of the first known signature found on the open device (e.g. "ext4", "btrfs",
// "xfs", "swap", "LUKS", "LVM2", "md RAID", "GPT partition table"), or nullopt.
// Errors: a failed read (the errno), naming nothing: the caller names the device.
Result<std::optional<std::string>> probe_foreign_signature(int fd, uint64_t device_bytes);

}  // namespace raidfs
