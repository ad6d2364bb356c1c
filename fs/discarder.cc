// Discarder: see discarder.h.
#include "fs/discarder.h"

#include <chrono>

#include "base/log.h"
#include "base/thread_name.h"

namespace raidfs::fs {

Discarder::Discarder(Array& array, meta::FsMeta& meta, std::shared_mutex& stripe_reuse,
                     bool background)
    : array_(array), meta_(meta), stripe_reuse_(stripe_reuse) {
  progress_.background = background;
  if (!background) return;
  meta_.track_freed_stripes();
  thread_ = std::thread([this] { run(); });
}

Discarder::~Discarder() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Discarder::run() {
  name_this_thread("raidfs-discard");
  std::unique_lock lock(mu_);
  while (!stop_ && progress_.background) {
    wake_.wait_for(lock, std::chrono::milliseconds(kPeriodMs));
    if (stop_) break;
    lock.unlock();
    Result<uint64_t> done = discard_freed();
    lock.lock();
    if (!done) {
      // A member that cannot discard will not start to: stop asking, say so once.
      progress_.background = false;
      RAIDFS_LOG(kWarning, "discard turned off: %s", done.error().message.c_str());
    }
  }
}

Result<uint64_t> Discarder::trim() { return discard(true); }

Result<uint64_t> Discarder::discard_freed() { return discard(false); }

Result<uint64_t> Discarder::discard(bool all) {
  std::lock_guard one_at_a_time(discard_mu_);
  uint64_t stripes = 0, bytes = 0;
  Result<void> outcome;
  std::vector<uint64_t> ids;
  size_t done = 0;
  bool taken = false;
  while (outcome) {
    // Exclusive: no reader is in the middle of a stripe's old contents, and none is handed out
    // to a writer (allocation takes this lock too) until its discard is done.
    std::unique_lock reuse(stripe_reuse_);
    if (!taken) {
      ids = meta_.take_freed_stripes(all);
      taken = true;
    }
    if (done == ids.size()) break;
    const size_t end = std::min(ids.size(), done + kBatchStripes);
    // Taken before the lock was last let go: those handed out since are no longer ours.
    const std::vector<uint64_t> still = meta_.free_among({ids.data() + done, end - done});
    done = end;
    for (size_t i = 0; i < still.size() && outcome;) {
      size_t j = i + 1;
      while (j < still.size() && still[j] == still[j - 1] + 1) ++j;  // one range per member
      Result<uint64_t> discarded = array_.discard(still[i], j - i);
      if (discarded) {
        stripes += j - i;
        bytes += *discarded;
      } else {
        outcome = std::unexpected(discarded.error());
      }
      i = j;
    }
  }
  std::lock_guard lock(mu_);
  progress_.stripes += stripes;
  progress_.member_bytes += bytes;
  if (!outcome) {
    progress_.last_error = outcome.error().message;
    return std::unexpected(outcome.error());
  }
  return stripes;
}

DiscardProgress Discarder::progress() const {
  std::lock_guard lock(mu_);
  return progress_;
}

}  // namespace raidfs::fs
