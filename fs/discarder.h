// Discarder: gives the members back the space of free stripes (mount -o discard, raidfs trim).
//
// A stripe freed by a commit (all its blocks dead: overwritten, deleted, or moved by the cleaner)
// still occupies its chunks on every member: an SSD keeps copying them, a sparse image keeps
// their pages. With -o discard a thread of its own wakes every kPeriodMs and discards the stripes
// that became free since it last looked (FsMeta::take_freed_stripes), contiguous ids as one range
// per member (Array::discard: BLKDISCARD, or a punched hole in an image file); trim() does every
// free stripe, as fstrim does.
//
// Safety: a stripe is discarded only once the commit that freed it is durable (FsMeta records it
// only then: a crash can never bring back an extent into discarded chunks), and only while the
// stripe-reuse lock is held exclusively — no reader of its old contents is in flight, and it
// cannot be handed out to a writer until the discard is done. A member that cannot discard
// turns the background off with one warning; nothing stored changes.
//
// Threads: trim and progress from any thread; one discard at a time.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"
#include "meta/fs_meta.h"
#include "raid/array.h"

namespace raidfs::fs {

struct DiscardProgress {
  bool background = false;  // -o discard, and no member has refused
  uint64_t stripes = 0;     // discarded since mount
  uint64_t member_bytes = 0;
  std::string last_error;   // the last refusal, empty if none
};

class Discarder {
 public:
  static constexpr unsigned kPeriodMs = 1000;
  // Stripes discarded per hold of the stripe-reuse lock: readers and allocation wait for it.
  static constexpr size_t kBatchStripes = 1024;

  // With `background`, the thread discards what gets freed (and tells FsMeta to record it).
  Discarder(Array& array, meta::FsMeta& meta, std::shared_mutex& stripe_reuse, bool background);
  ~Discarder();  // joins
  Discarder(const Discarder&) = delete;
  Discarder& operator=(const Discarder&) = delete;

  // Discards every free stripe now. Returns the stripes discarded; EOPNOTSUPP (or the errno) when
  // a member refused (the rest is still done).
  Result<uint64_t> trim();
  // The background's step, at once: what was freed since the last one (tests; the thread's).
  Result<uint64_t> discard_freed();
  DiscardProgress progress() const;

 private:
  void run();
  Result<uint64_t> discard(bool all);

  Array& array_;
  meta::FsMeta& meta_;
  std::shared_mutex& stripe_reuse_;
  std::mutex discard_mu_;  // one discard at a time; taken before stripe_reuse_

  mutable std::mutex mu_;  // guards what follows (a leaf)
  std::condition_variable wake_;
  bool stop_ = false;
  DiscardProgress progress_;
  std::thread thread_;  // last: started once everything above stands
};

}  // namespace raidfs::fs
