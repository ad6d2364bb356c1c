// file_clock: the one clock file times (atime, mtime, ctime) are read from.
//
// Under the writeback cache the kernel stamps writes itself, with its coarse clock (FUSE inodes
// do not take the fine-grained "multigrain" timestamps of ext4 or xfs on Linux 6.18), and sends
// those times to raidfs, which stores them. Every time raidfs stamps itself comes from the same
// coarse clock, so a file's times never step backwards between the kernel's changes and the
// daemon's, and what a mount shows is what is stored. The cost is the kernel's: a reading of
// CLOCK_REALTIME taken just before a change may be up to one tick later than the time stamped.
#pragma once

#include <time.h>

#include <cstdint>

namespace raidfs {

inline int64_t file_time_now_ns() {
  timespec ts;
  ::clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace raidfs
