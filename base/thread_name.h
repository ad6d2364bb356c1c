// name_this_thread: names the calling thread as `top -H`, `perf` and /proc/PID/task/*/comm show it.
//
// raidfs runs a handful of threads of its own (the sealer, the cleaner, a FUSE queue per CPU...);
// named, they can be told apart when one of them is the one that is busy. Linux keeps at most 15
// characters; longer names are cut.
#pragma once

#include <pthread.h>

#include <string>

namespace raidfs {

inline void name_this_thread(const std::string& name) {
  (void)::pthread_setname_np(::pthread_self(), name.substr(0, 15).c_str());
}

}  // namespace raidfs
