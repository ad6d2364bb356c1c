// Scrubber: see scrubber.h.
#include "fs/scrubber.h"

#include <algorithm>
#include <ctime>

#include "base/log.h"
#include "base/thread_name.h"
#include "meta/block_owners.h"
#include "raid/array_scrub.h"

namespace raidfs::fs {
namespace {

constexpr size_t kListBatch = 256;

int64_t now_ns() {
  timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// "3, 5-9" for sorted block numbers.
std::string block_list(const std::vector<uint32_t>& blocks) {
  std::string out;
  for (size_t i = 0; i < blocks.size();) {
    size_t j = i;
    while (j + 1 < blocks.size() && blocks[j + 1] == blocks[j] + 1) ++j;
    out += (out.empty() ? "" : ", ") + std::to_string(blocks[i]) +
           (j > i ? "-" + std::to_string(blocks[j]) : "");
    i = j + 1;
  }
  return out;
}

}  // namespace

Scrubber::Scrubber(Array& array, meta::FsMeta& meta, std::shared_mutex& stripe_reuse,
                   std::function<Result<std::unique_ptr<IoContext>>()> make_context)
    : array_(array), meta_(meta), stripe_reuse_(stripe_reuse), make_context_(std::move(make_context)) {}

Scrubber::~Scrubber() {
  {
    std::lock_guard lock(mu_);
    stop_requested_ = true;  // an unmount: the record stays kRunning, the next mount resumes
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Result<void> Scrubber::start(uint64_t rate_bytes_per_s) {
  if (running_) return fail(EBUSY, "a scrub is running already");
  if (thread_.joinable()) thread_.join();  // the last one has ended
  RAIDFS_TRY(auto saved, meta_.scrub_state());
  meta::ScrubState state;
  if (saved && saved->phase == meta::ScrubPhase::kStopped) {
    state = *saved;  // resumes where it was stopped
  } else {
    state.started_ns = now_ns();
    state.stripes_total = meta_.committed_stripe_count(/*sealed_only=*/true);
  }
  return launch(state, rate_bytes_per_s);
}

Result<void> Scrubber::resume_if_interrupted() {
  RAIDFS_TRY(auto saved, meta_.scrub_state());
  if (!saved || saved->phase != meta::ScrubPhase::kRunning) return {};
  RAIDFS_LOG(kInfo, "resuming the scrub the last mount left at stripe %llu",
             static_cast<unsigned long long>(saved->cursor));
  return launch(*saved, saved->rate_limit);
}

Result<void> Scrubber::launch(meta::ScrubState state, uint64_t rate_bytes_per_s) {
  state.rate_limit = rate_bytes_per_s;
  state.phase = meta::ScrubPhase::kRunning;
  state.finished_ns = 0;
  RAIDFS_CHECK(meta_.put_scrub_state(state, meta::Durability::kGroupSync));
  {
    std::lock_guard lock(mu_);
    state_ = state;
    stop_requested_ = false;
    pacer_.reset(state.bytes_read, rate_bytes_per_s);
  }
  running_ = true;
  thread_ = std::thread([this] { run(); });
  return {};
}

Result<void> Scrubber::stop() {
  if (!running_) return fail(ENOENT, "no scrub is running");
  {
    std::lock_guard lock(mu_);
    stop_requested_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(mu_);
  state_.phase = meta::ScrubPhase::kStopped;
  return meta_.put_scrub_state(state_, meta::Durability::kGroupSync);
}

ScrubProgress Scrubber::progress() const {
  std::lock_guard lock(mu_);
  ScrubProgress p;
  p.state = state_;
  p.lost.assign(lost_.begin(), lost_.end());
  p.region_scrubbed = region_scrubbed_;
  p.region = region_;
  if (running_) {
    p.rate_bytes_per_s = pacer_.rate();
    if (p.rate_bytes_per_s > 0 && state_.stripes_checked > 0 &&
        state_.stripes_total > state_.stripes_checked) {
      const double per_stripe = static_cast<double>(state_.bytes_read) / state_.stripes_checked;
      p.eta_s = (state_.stripes_total - state_.stripes_checked) * per_stripe / p.rate_bytes_per_s;
    }
  }
  return p;
}

void Scrubber::run() {
  name_this_thread("raidfs-scrub");
  auto made = make_context_();
  if (!made) {
    RAIDFS_LOG(kError, "scrub: %s", made.error().message.c_str());
    running_ = false;
    return;
  }
  IoContext& ctx = **made;
  if (const auto& region = meta_.store().region()) {
    auto report = region->scrub(/*repair=*/true);
    if (!report) {
      RAIDFS_LOG(kError, "scrub: the metadata region: %s", report.error().message.c_str());
    } else {
      for (const std::string& line : report->problems)
        log_message(report->lost_blocks ? LogLevel::kError : LogLevel::kWarning,
                    "scrub: the metadata region: %s", line.c_str());
      std::lock_guard lock(mu_);
      region_scrubbed_ = true;
      region_ = std::move(*report);
    }
  }
  bool finished = false;
  for (;;) {
    uint64_t cursor;
    {
      std::lock_guard lock(mu_);
      if (stop_requested_) break;
      cursor = state_.cursor;
    }
    auto batch = meta_.stripes_from(cursor, kListBatch);
    if (!batch) {
      RAIDFS_LOG(kError, "scrub: listing stripes: %s", batch.error().message.c_str());
      break;
    }
    if (batch->empty()) {
      finished = true;
      break;
    }
    for (const meta::Stripe& listed : *batch) {
      const uint64_t id = listed.id;
      {
        std::lock_guard lock(mu_);
        if (stop_requested_) break;
      }
      if (auto r = scrub_one(ctx, id); !r) {
        RAIDFS_LOG(kError, "scrub: stripe %llu: %s", static_cast<unsigned long long>(id),
                   r.error().message.c_str());
        std::lock_guard lock(mu_);
        ++state_.stripes_skipped;
      }
      meta::ScrubState checkpoint;
      {
        std::lock_guard lock(mu_);
        state_.cursor = id + 1;
        checkpoint = state_;
      }
      if ((checkpoint.stripes_checked + checkpoint.stripes_skipped) % kCheckpointStripes == 0)
        (void)meta_.put_scrub_state(checkpoint);
    }
  }
  std::lock_guard lock(mu_);
  if (finished) {
    state_.phase = meta::ScrubPhase::kFinished;
    state_.finished_ns = now_ns();
    RAIDFS_LOG(kInfo,
               "scrub finished: %llu stripes checked, %llu blocks and %llu parity rows repaired, "
               "%llu blocks lost, %llu stripes skipped",
               static_cast<unsigned long long>(state_.stripes_checked),
               static_cast<unsigned long long>(state_.blocks_rebuilt),
               static_cast<unsigned long long>(state_.parity_rows_rewritten),
               static_cast<unsigned long long>(state_.blocks_lost),
               static_cast<unsigned long long>(state_.stripes_skipped));
  }
  // Stopped by stop() or an unmount: the phase stays kRunning here (stop() records kStopped), so
  // an interrupted scrub resumes at the next mount.
  if (auto saved = meta_.put_scrub_state(state_, meta::Durability::kGroupSync); !saved)
    RAIDFS_LOG(kError, "scrub: recording its progress: %s", saved.error().message.c_str());
  running_ = false;
}

Result<void> Scrubber::scrub_one(IoContext& ctx, uint64_t id) {
  const Geometry& g = array_.geometry();
  const uint32_t stripe_blocks = g.data_count() * g.blocks_per_chunk();
  ScrubReport report;
  uint64_t bytes = 0;
  {
    // Held across the I/O: the stripe cannot be freed and reused under the scrub.
    std::shared_lock reuse(stripe_reuse_);
    auto stripe = meta_.get_stripe(id);
    if (!stripe) return stripe.error().code == ENOENT ? Result<void>() : std::unexpected(stripe.error());
    if (stripe->state != meta::StripeState::kSealed) return {};  // freed or reused since listed
    std::vector<uint32_t> crcs = stripe->block_crcs;
    crcs.resize(stripe_blocks, 0);
    ScrubRequest request;
    request.ref.stripe = id;
    request.ref.generation = stripe->generation;
    request.ref.block_crcs = crcs;
    request.ref.filled_blocks = static_cast<uint32_t>((stripe->filled_bytes + kBlockBytes - 1) / kBlockBytes);
    request.repair = true;
    if (chunks_.size() == 0) chunks_ = AlignedBuffer(size_t{g.member_count()} * g.chunk_bytes());
    RAIDFS_TRY(report, array_.scrub_stripe(ctx.channel(), request, chunks_.data()));
    bytes = uint64_t{request.ref.filled_blocks} * kBlockBytes + uint64_t{g.parity_count()} * g.chunk_bytes();
  }
  if (!report.lost_blocks.empty()) report_lost(id, report.lost_blocks);
  {
    std::lock_guard lock(mu_);
    ++state_.stripes_checked;
    state_.bytes_read += bytes;
    state_.blocks_rebuilt += report.healed_blocks;
    state_.parity_rows_rewritten += report.parity_rows_rewritten;
    state_.blocks_lost += report.lost_blocks.size();
    pacer_.add(state_.bytes_read, bytes);
  }
  std::unique_lock lock(mu_);
  pacer_.throttle(lock, cv_, [this] { return stop_requested_; });
  return {};
}

void Scrubber::report_lost(uint64_t stripe, const std::vector<uint32_t>& blocks) {
  std::vector<std::pair<uint64_t, uint32_t>> pairs;
  for (uint32_t b : blocks) pairs.emplace_back(stripe, b);
  std::string owners;
  if (auto found = meta::block_owners(meta_.store(), pairs); found && !found->empty()) {
    std::vector<uint64_t> inos;
    for (const auto& o : *found) inos.push_back(o.ino);
    auto paths = meta::inode_paths(meta_.store(), inos);
    for (const auto& o : *found) {
      const std::string path = paths && paths->contains(o.ino) ? paths->at(o.ino)
                                                                 : "<inode " + std::to_string(o.ino) + ">";
      owners += (owners.empty() ? "" : ", ") + path + " bytes " + std::to_string(o.file_offset) +
                "-" + std::to_string(o.file_offset + o.length - 1);
    }
  }
  const std::string line = "stripe " + std::to_string(stripe) + " blocks " + block_list(blocks) +
                           " lost (beyond repair)" +
                           (owners.empty() ? ": no file holds them" : ": " + owners);
  RAIDFS_LOG(kError, "scrub: %s", line.c_str());
  std::lock_guard lock(mu_);
  lost_.push_back(line);
  while (lost_.size() > kLostReportsMax) lost_.pop_front();
}

}  // namespace raidfs::fs
