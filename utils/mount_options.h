// MountOptions: what mount.raidfs was asked to do, from its -o options.
//
// mount(8) hands a helper one comma-separated -o list mixing its own options (defaults, noauto,
// _netdev, x-*: dropped here), the generic FUSE/VFS ones (ro, allow_other, noatime ...: passed to
// the FUSE mount) and raidfs's own (taken here):
//
//   members=P1:P2:...        member paths overriding the spec's list
//   transport=uring|classic  FUSE-over-io_uring (default, when the kernel allows it) or /dev/fuse
//   uring_entries=N, uring_threads=N, threads=N    transport sizing
//   writeback_cache, no_writeback_cache            the kernel's writeback cache (default on)
//   async_dio, no_async_dio  asynchronous O_DIRECT kept in flight (default off: see
//                            DispatcherOptions::async_dio)
//   attr_timeout=S, entry_timeout=S                kernel caching of attributes and names
//   commit=S                 data nobody fsyncs is made durable within S seconds (default 5; 0
//                            means the default, as ext4)
//   acl, noacl               POSIX ACLs enforced by the kernel (default) or refused
//   cleaner, nocleaner       the cleaner gives back the space of overwrites (default on)
//   discard, nodiscard       freed stripes discarded on the members (default off; fs/discarder.h)
//   copy_below=SIZE          aligned pieces of writes shorter than SIZE are copied into the open
//                            stripe, longer ones go to the members from the request (default
//                            64K; 4K to 1G; FilesystemOptions::copy_below)
//   log=syslog|PATH          where a detached daemon logs (default: syslog when /dev/log is
//                            there, else kLogFileDefault)
//   remount                  change the flags of the mount at MOUNTPOINT (utils/remount.h)
//
// parse() takes one -o argument; it may be called for several. Errors: EINVAL naming the option
// and what it expects (mount.raidfs exits 16 with it). Not thread-safe (one parse at start-up).
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "fs/classic_transport.h"
#include "fs/fuse_dispatcher.h"
#include "fs/uring_transport.h"

namespace raidfs::utils {

struct MountOptions {
  std::vector<std::string> fuse_options;  // for the FUSE mount, in the order given
  std::vector<std::string> members;       // members=: overrides the spec's member list
  bool read_only = false;
  bool remount = false;                   // -o remount: change a mount's flags, start nothing
  bool uring = true;                      // transport=uring (the default) or classic
  unsigned threads = fs::ClassicTransport::kThreadsDefault;  // classic /dev/fuse workers
  unsigned uring_entries = 0;             // 0: UringTransport::default_entries()
  unsigned uring_threads = fs::UringTransport::kThreadsPerQueueDefault;
  unsigned commit_interval_s = kCommitIntervalDefault;
  std::string log;                        // log=: "syslog", an absolute path, or empty (default)
  bool cleaner = true;                    // nocleaner: off (fs/cleaner.h)
  bool discard = false;                   // discard: on (fs/discarder.h)
  uint32_t copy_below = 64 * 1024;        // FilesystemOptions::copy_below
  fs::DispatcherOptions dispatcher;

  static constexpr const char* kLogFileDefault = "/var/log/raidfs.log";

  static constexpr unsigned kCommitIntervalDefault = 5;
  static constexpr unsigned kCommitIntervalMax = 24 * 3600;
  static constexpr uint64_t kCopyBelowMax = uint64_t{1} << 30;

  // Applies the options of one -o argument ("a,b=c,..."); empty items are skipped.
  Result<void> parse(const std::string& list);
  // Applies one option.
  Result<void> apply(const std::string& option);
};

// "a,b,,c" → {"a", "b", "", "c"}.
std::vector<std::string> split(const std::string& text, char separator);
// The path made absolute when it exists (the daemon leaves its working directory), else as is.
std::string absolute_if_exists(const std::string& path);

}  // namespace raidfs::utils
