// remount: `mount -o remount,ro|rw MOUNTPOINT` for a mounted raidfs (mount(8) hands `remount`
// to the helper; FUSE leaves it to the helper to change the mount's flags).
//
// Going read-only first makes everything durable: syncfs on the mount (the kernel's cached writes
// reach the daemon), then the daemon's `sync` command (it seals the open stripe and syncs the
// metadata), then mount(2) with MS_REMOUNT | MS_RDONLY. Going read-write is the reverse flag —
// refused when the daemon itself serves the array read-only (mounted with -o ro): the kernel
// flag alone cannot make it writable. The mount's other flags (nosuid, nodev, noexec, the atime
// ones) are kept unless the options change them.
//
// Errors, one line each: EINVAL not a raidfs mount point; EROFS remount,rw of a read-only array;
// the errno of syncfs, the daemon's sync or mount(2) otherwise.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"

namespace raidfs::utils {

Result<void> remount(const std::string& mountpoint, const std::vector<std::string>& options);

}  // namespace raidfs::utils
