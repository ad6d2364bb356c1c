// QueuePlacement: see queue_placement.h.
#include "fs/queue_placement.h"

namespace raidfs::fs {

std::optional<QueuePlacement::Where> QueuePlacement::on_request(bool read) {
  ++requests_;
  reads_ += read ? 1 : 0;
  if (requests_ < kWindow) return std::nullopt;

  // Integer forms of "reads >= 90%", "requests >= 2 x sleeps" and "requests < 1.5 x sleeps".
  const bool reads = reads_ * 10 >= requests_ * 9;
  const bool deep = requests_ >= 2 * sleeps_;
  const bool shallow = 2 * requests_ < 3 * sleeps_;
  requests_ = reads_ = sleeps_ = 0;

  Where verdict = where_;
  if (where_ == Where::kPinned && reads && deep) verdict = Where::kSpread;
  if (where_ == Where::kSpread && (!reads || shallow)) verdict = Where::kPinned;
  if (verdict == where_) return std::nullopt;
  where_ = verdict;
  ++moves_;
  return verdict;
}

}  // namespace raidfs::fs
