// MemberFds: the members' file descriptors, one table per array, read by every MemberIo.
//
// A replace puts a new device under a member index while the array runs (Array::replace_member).
// Each UringMemberIo registers the descriptors with its ring (fixed files) when it is made and
// looks at `version` before every batch: when it changed, it registers the table afresh, so no
// batch begins on the old device once the change is published. The descriptor number of a
// present member stays the same across a replace (the new device is dup2'ed onto it), so a
// plain system call on it can never reach a file that reused a closed number.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "raid/geometry.h"

namespace raidfs {

// Slot `count` (one past the last member) holds a replace's old device while it still reads
// (Array::read_replace_source); -1 otherwise.
struct MemberFds {
  uint32_t count = 0;
  std::array<std::atomic<int>, kMembersMax + 1> fd;  // -1: no device
  std::atomic<uint64_t> version{0};                  // bumped after any fd changes

  MemberFds() {
    for (auto& f : fd) f = -1;
  }
  uint32_t slots() const { return count + 1; }
  int operator[](uint32_t slot) const { return slot <= count ? fd[slot].load() : -1; }
};

}  // namespace raidfs
