// FuseMount: one mounted FUSE filesystem and its /dev/fuse descriptor, made and torn down with
// libfuse.
//
// libfuse is used only to mount: it parses the standard mount options, calls mount(2) (as root)
// or fusermount3 (otherwise), and unmounts. Requests are not read through libfuse: raidfs has
// its own dispatcher and transports (see docs/decisions.md), so the session is created with no
// operations and its loop never runs.
//
// The descriptor fd() is a duplicate owned by FuseMount, open until destruction: unmount() (which
// makes libfuse close its own copy) leaves it valid, and reads on it then fail with ENODEV once
// the kernel has dropped the filesystem — which is how the transport's workers learn to exit,
// with no chance of reading a reused descriptor number.
//
// Thread-safety: unmount() may be called from any thread (a signal-waiting thread, say) while
// the transport serves; it is idempotent. The destructor unmounts if that was not done.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/result.h"

struct fuse_session;

namespace raidfs::fs {

class FuseMount {
 public:
  // Mounts at `mountpoint` with `options`, one mount option per element ("allow_other",
  // "fsname=/dev/a,/dev/b", "ro" ...; commas inside one are kept). default_permissions is always
  // added (permission checks are the kernel's); subtype=raidfs unless one is given. `debug`
  // passes -d to libfuse. Errors: ENOENT/ENOTDIR/ENOTCONN the mountpoint; EINVAL an option
  // libfuse does not know (the message names it); the errno of mount(2) otherwise.
  static Result<std::unique_ptr<FuseMount>> mount(const std::string& mountpoint,
                                                  const std::vector<std::string>& options,
                                                  bool debug = false);
  // Whether libfuse takes `options` (as mount() would pass them), without mounting: EINVAL
  // naming what it refuses. Lets a program reject a bad option before it opens anything.
  static Result<void> check_options(const std::vector<std::string>& options);
  ~FuseMount();
  FuseMount(const FuseMount&) = delete;
  FuseMount& operator=(const FuseMount&) = delete;

  int fd() const { return fd_; }
  const std::string& mountpoint() const { return mountpoint_; }
  // Detaches the filesystem (lazily, as fusermount3 -u -z: open files keep it alive until closed;
  // then the connection ends). Idempotent.
  void unmount();

 private:
  FuseMount() = default;

  std::string mountpoint_;
  int fd_ = -1;
  std::mutex mu_;  // guards session_ and mounted_: unmount() races the destructor's
  fuse_session* session_ = nullptr;
  bool mounted_ = false;
};

}  // namespace raidfs::fs
