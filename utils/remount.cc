// remount: see remount.h.
#include "utils/remount.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "fs/filesystem.h"

namespace raidfs::utils {
namespace {

// The mount's flags as statvfs reports them, as mount(2) flags.
unsigned long current_flags(const struct statvfs& st) {
  unsigned long flags = 0;
  if (st.f_flag & ST_RDONLY) flags |= MS_RDONLY;
  if (st.f_flag & ST_NOSUID) flags |= MS_NOSUID;
  if (st.f_flag & ST_NODEV) flags |= MS_NODEV;
  if (st.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
  if (st.f_flag & ST_NOATIME) flags |= MS_NOATIME;
  if (st.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
  if (st.f_flag & ST_RELATIME) flags |= MS_RELATIME;
  return flags;
}

// Applies one option to `flags`; other options (FUSE ones, raidfs ones) do not change a mount.
void apply(const std::string& o, unsigned long& flags) {
  struct Flag {
    const char* set;
    const char* clear;
    unsigned long bit;
  };
  static const Flag kFlags[] = {{"ro", "rw", MS_RDONLY},          {"nosuid", "suid", MS_NOSUID},
                                {"nodev", "dev", MS_NODEV},       {"noexec", "exec", MS_NOEXEC},
                                {"noatime", "atime", MS_NOATIME}, {"nodiratime", "diratime", MS_NODIRATIME},
                                {"relatime", "norelatime", MS_RELATIME}};
  for (const Flag& f : kFlags) {
    if (o == f.set) flags |= f.bit;
    if (o == f.clear) flags &= ~f.bit;
  }
  if (o == "strictatime") flags &= ~(MS_NOATIME | MS_RELATIME);
}

}  // namespace

Result<void> remount(const std::string& mountpoint, const std::vector<std::string>& options) {
  char json[64 * 1024];
  const ssize_t n = ::getxattr(mountpoint.c_str(), std::string(fs::Filesystem::kStatusJsonXattr).c_str(),
                               json, sizeof json - 1);
  if (n < 0) return fail(EINVAL, mountpoint + ": not a mounted raidfs (no status): cannot remount it");
  json[n] = '\0';
  const bool array_read_only = std::strstr(json, "\"read_only\": true") != nullptr;
  struct statvfs st;
  if (::statvfs(mountpoint.c_str(), &st) != 0) return fail(errno, mountpoint + ": " + std::strerror(errno));
  unsigned long flags = current_flags(st);
  const bool was_read_only = flags & MS_RDONLY;
  for (const std::string& o : options) apply(o, flags);
  const bool read_only = flags & MS_RDONLY;
  if (!read_only && array_read_only)
    return fail(EROFS, mountpoint + ": the array is served read-only (mounted with -o ro); remount,rw "
                                    "cannot make it writable: unmount it and mount it again");
  if (read_only && !was_read_only) {
    // Everything written so far made durable before the mount stops taking writes.
    const int fd = ::open(mountpoint.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return fail(errno, mountpoint + ": " + std::strerror(errno));
    const int synced = ::syncfs(fd);
    const int e = errno;
    ::close(fd);
    if (synced != 0) return fail(e, mountpoint + ": syncfs: " + std::strerror(e));
    if (!array_read_only) {
      const std::string command = "sync";
      if (::setxattr(mountpoint.c_str(), std::string(fs::Filesystem::kControlXattr).c_str(), command.data(),
                     command.size(), 0) != 0)
        return fail(errno, mountpoint + ": the daemon could not write everything out: " + std::strerror(errno));
    }
  }
  if (::mount(nullptr, mountpoint.c_str(), nullptr, MS_REMOUNT | flags, nullptr) != 0)
    return fail(errno, mountpoint + ": remount: " + std::strerror(errno));
  return {};
}

}  // namespace raidfs::utils
