// UringTransport: see uring_transport.h.
#include "fs/uring_transport.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>

#include "base/log.h"
#include "base/thread_name.h"

namespace raidfs::fs {
namespace {

std::string read_first_line(const char* path, int& error) {
  std::ifstream in(path);
  std::string line;
  if (!in) {
    error = errno != 0 ? errno : ENOENT;
    return line;
  }
  std::getline(in, line);
  error = 0;
  return line;
}

// Payload sizes are whole KiB: shown exactly, not rounded.
std::string exact_size_text(size_t bytes) {
  if (bytes % (1u << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  return std::to_string(bytes >> 10) + " KiB";
}

}  // namespace

Result<void> enable_fuse_over_io_uring(const char* path) {
  int error = 0;
  std::string value = read_first_line(path, error);
  if (error == ENOENT) {
    // The fuse module may not be loaded yet: opening the device loads it.
    const int fd = ::open("/dev/fuse", O_RDWR | O_CLOEXEC);
    if (fd >= 0) ::close(fd);
    value = read_first_line(path, error);
  }
  if (error == ENOENT)
    return fail(ENOENT, std::string("the kernel has no FUSE-over-io_uring (no ") + path +
                            "; it needs Linux 6.14+ with CONFIG_FUSE_IO_URING)");
  if (error != 0) return fail(error, std::string(path) + ": " + std::strerror(error));
  if (value == "Y" || value == "1") return {};

  const int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || ::write(fd, "Y", 1) != 1) {
    const int e = errno;
    if (fd >= 0) ::close(fd);
    return fail(e, std::string("switched off (") + path + " is " + value +
                       ") and cannot be switched on: " + std::strerror(e) +
                       " (as root: echo Y > " + path + ")");
  }
  ::close(fd);
  value = read_first_line(path, error);
  if (value != "Y" && value != "1")
    return fail(EPERM, std::string(path) + " stays " + value + " after writing Y");
  RAIDFS_LOG(kInfo, "turned FUSE-over-io_uring on (%s = Y)", path);
  return {};
}

Result<unsigned> count_cpu_list(std::string_view list) {
  while (!list.empty() && (list.back() == '\n' || list.back() == ' ')) list.remove_suffix(1);
  if (list.empty()) return fail(EINVAL, "empty CPU list");
  unsigned count = 0;
  while (!list.empty()) {
    const size_t comma = list.find(',');
    const std::string_view part = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    const size_t dash = part.find('-');
    unsigned first = 0, last = 0;
    const auto parse = [](std::string_view s, unsigned& out) {
      const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
      return ec == std::errc() && end == s.data() + s.size() && !s.empty();
    };
    if (!parse(part.substr(0, dash), first) ||
        !parse(dash == std::string_view::npos ? part : part.substr(dash + 1), last) ||
        last < first || last - first >= 1u << 16)
      return fail(EINVAL, "bad CPU list entry '" + std::string(part) + "'");
    count += last - first + 1;
  }
  if (count > 1u << 16) return fail(EINVAL, "CPU list too long");
  return count;
}

Result<unsigned> possible_cpu_count() {
  int error = 0;
  const std::string list = read_first_line("/sys/devices/system/cpu/possible", error);
  if (error != 0)
    return fail(error, std::string("/sys/devices/system/cpu/possible: ") + std::strerror(error));
  return count_cpu_list(list);
}

UringTransport::UringTransport(Filesystem& fs, RequestDispatcher& dispatcher, UringOptions options)
    : fs_(fs),
      dispatcher_(dispatcher),
      threads_per_queue_(std::clamp(options.threads_per_queue, 1u, kThreadsPerQueueMax)),
      // 0: chosen by prepare(), which knows the number of queues.
      entries_(options.entries_per_ring == 0
                   ? 0
                   : std::clamp(options.entries_per_ring, 1u, kEntriesMax)),
      // The kernel refuses a payload buffer smaller than max(8 KiB, max_write, max_pages × 4 KiB);
      // max_pages is max_write / 4 KiB here.
      payload_bytes_(std::max<size_t>(8192, (size_t{options.max_write} + 4095) / 4096 * 4096)) {}

unsigned UringTransport::default_entries(unsigned queues, unsigned threads_per_queue,
                                         size_t payload_bytes) {
  const size_t per_entry = size_t{std::max(queues, 1u)} * std::max(threads_per_queue, 1u) *
                           std::max<size_t>(payload_bytes, 1);
  return static_cast<unsigned>(
      std::clamp<size_t>(kPayloadBudgetBytes / per_entry, kEntriesMin, kEntriesDefault));
}

UringTransport::~UringTransport() {
  stop();
  join(std::chrono::seconds(5));
}

Result<void> UringTransport::prepare() {
  RAIDFS_TRY(const unsigned count, possible_cpu_count());
  if (count > UINT16_MAX) return fail(EINVAL, "too many possible CPUs for io_uring queue ids");
  {
    std::lock_guard lock(mu_);
    if (phase_ != Phase::kIdle) return fail(EINVAL, "prepare() called twice");
    phase_ = Phase::kPreparing;
    queue_count_ = count;
    if (entries_ == 0) entries_ = default_entries(count, threads_per_queue_, payload_bytes_);
    servers_ = std::vector<Server>(size_t{count} * threads_per_queue_);
    for (unsigned i = 0; i < servers_.size(); ++i)
      servers_[i].thread = std::thread([this, i] { server_main(i); });
  }
  std::unique_lock lock(mu_);
  const bool settled = cv_.wait_for(lock, kPrepareTimeout, [&] {
    return std::none_of(servers_.begin(), servers_.end(),
                        [](const Server& s) { return s.state == ServerState::kStarting; });
  });
  Error first{ETIMEDOUT, "the io_uring queues did not set up within " +
                             std::to_string(kPrepareTimeout.count()) + " s"};
  bool ok = settled;
  for (const Server& s : servers_) {
    if (s.state == ServerState::kFailed) {
      if (ok) first = s.error;
      ok = false;
      break;
    }
  }
  if (ok) return {};
  phase_ = Phase::kAbandoned;
  lock.unlock();
  cv_.notify_all();
  join(std::chrono::seconds(5));
  return std::unexpected(first);
}

void UringTransport::start(int fuse_fd) {
  {
    std::lock_guard lock(mu_);
    if (phase_ != Phase::kPreparing) return;
    fuse_fd_ = fuse_fd;
    phase_ = Phase::kStarted;
  }
  cv_.notify_all();
  RAIDFS_LOG(kInfo, "FUSE-over-io_uring: %u queues x %u threads x %u entries, %s payloads",
             queue_count_, threads_per_queue_, entries_, exact_size_text(payload_bytes_).c_str());
}

void UringTransport::abandon() {
  {
    std::lock_guard lock(mu_);
    if (phase_ == Phase::kPreparing || phase_ == Phase::kIdle) phase_ = Phase::kAbandoned;
  }
  cv_.notify_all();
}

void UringTransport::stop() {
  std::lock_guard lock(mu_);
  if (phase_ == Phase::kPreparing || phase_ == Phase::kIdle) phase_ = Phase::kAbandoned;
  for (Server& s : servers_)
    if (s.ring != nullptr) s.ring->stop();
  cv_.notify_all();
}

bool UringTransport::join(std::chrono::milliseconds timeout) {
  const auto all_ended = [&] {
    return std::all_of(servers_.begin(), servers_.end(), [](const Server& s) {
      return s.state == ServerState::kDone || s.state == ServerState::kFailed;
    });
  };
  bool ended;
  {
    std::unique_lock lock(mu_);
    ended = cv_.wait_for(lock, timeout, all_ended);
  }
  if (!ended) {
    RAIDFS_LOG(kWarning, "io_uring queues still running %lld ms after the end: stopping them",
               static_cast<long long>(timeout.count()));
    stop();
    std::unique_lock lock(mu_);
    ended = cv_.wait_for(lock, timeout, all_ended);
  }
  // A thread that reported kDone/kFailed is about to return: joining it is quick. One that did
  // not would block the daemon's exit forever; it is left behind (the process is ending).
  std::vector<std::thread> joinable, stuck;
  {
    std::lock_guard lock(mu_);
    for (Server& s : servers_) {
      if (!s.thread.joinable()) continue;
      const bool done = s.state == ServerState::kDone || s.state == ServerState::kFailed;
      (done ? joinable : stuck).push_back(std::move(s.thread));
    }
  }
  for (std::thread& t : joinable) t.join();
  for (std::thread& t : stuck) {
    RAIDFS_LOG(kError, "an io_uring queue thread does not end; leaving it behind");
    t.detach();
  }
  return ended;
}

bool UringTransport::started() const {
  std::lock_guard lock(mu_);
  return phase_ == Phase::kStarted;
}

bool UringTransport::refused() const { return refused_once_.load(std::memory_order_acquire); }

void UringTransport::refused(const Error& error) {
  if (refused_once_.exchange(true, std::memory_order_acq_rel)) return;
  {
    std::lock_guard lock(mu_);
    refusal_ = error.message;
  }
  if (on_refused_) on_refused_(error);
}

bool UringTransport::helpers_settled(unsigned qid) const {
  for (unsigned i = 1; i < threads_per_queue_; ++i) {
    const Server& s = servers_[size_t{qid} * threads_per_queue_ + i];
    if (!s.registered && s.state != ServerState::kDone && s.state != ServerState::kFailed)
      return false;
  }
  return true;
}

std::vector<uint64_t> UringTransport::requests_per_queue() const {
  std::lock_guard lock(mu_);
  std::vector<uint64_t> out(queue_count_, 0);
  for (size_t i = 0; i < servers_.size(); ++i)
    out[i / threads_per_queue_] += requests_locked(servers_[i]);
  return out;
}

std::string UringTransport::status_lines() const {
  std::lock_guard lock(mu_);
  std::ostringstream out, per_queue;
  uint64_t total = 0, helped = 0, fixed = 0, moves = 0;
  unsigned spread = 0;
  bool all_registered = true, all_pinned = true;
  for (unsigned q = 0; q < queue_count_; ++q) {
    uint64_t n = 0;
    for (unsigned i = 0; i < threads_per_queue_; ++i) {
      const Server& s = servers_[size_t{q} * threads_per_queue_ + i];
      const uint64_t r = requests_locked(s);
      n += r;
      if (i > 0) helped += r;
      fixed += s.ring != nullptr ? s.ring->fixed_member_ios() : s.fixed_ios;
      all_registered &= s.registered_buffers;
      if (i > 0) continue;  // placement is the pinned thread's
      all_pinned &= s.pinned;
      moves += s.ring != nullptr ? s.ring->placement_moves() : s.moves;
      if (s.ring != nullptr && s.ring->spread()) ++spread;
    }
    total += n;
    per_queue << (q ? ", " : "") << "q" << q << " " << n;
  }
  out << "uring_queues: " << queue_count_ << " x " << threads_per_queue_ << " threads x "
      << entries_ << " entries, " << exact_size_text(payload_bytes_) << " payloads"
      << (all_registered ? ", fixed buffers" : ", some payloads not fixed buffers")
      << (all_pinned ? "" : ", some queues unpinned") << "\n";
  out << "uring_requests: " << total << " (" << per_queue.str() << ")\n";
  out << "uring_requests_by_helpers: " << helped << "\n";
  out << "uring_fixed_member_ios: " << fixed << "\n";
  out << "uring_placement: " << spread << " of " << queue_count_
      << " queues spread off their CPU, " << moves << " moves\n";
  if (!refusal_.empty()) out << "uring_refused: " << refusal_ << "\n";
  return out.str();
}

void UringTransport::server_main(unsigned index) {
  const unsigned qid = index / threads_per_queue_;
  const bool primary = index % threads_per_queue_ == 0;
  name_this_thread("raidfs-q" + std::to_string(qid) +
                   (primary ? "" : "." + std::to_string(index % threads_per_queue_)));
  // Every thread of a queue is pinned to its CPU: requests of applications on that CPU come to
  // this queue, and serving them there needs no cross-CPU wake-up. A CPU this process may not
  // use (a cpuset) leaves it unpinned.
  cpu_set_t own, everywhere;
  CPU_ZERO(&own);
  CPU_SET(qid, &own);
  if (::sched_getaffinity(0, sizeof everywhere, &everywhere) != 0) everywhere = own;
  const bool pinned = ::sched_setaffinity(0, sizeof own, &own) == 0;
  if (!pinned)
    RAIDFS_LOG(kDebug, "io_uring queue %u thread %u runs unpinned: %s", qid,
               index % threads_per_queue_, std::strerror(errno));

  FuseRingConfig config;
  config.qid = static_cast<uint16_t>(qid);
  config.entries = entries_;
  config.payload_bytes = payload_bytes_;
  config.on_refused = [this](const Error& e) { refused(e); };
  // The first thread may leave its CPU while its callers keep many reads in flight, and come
  // back (fs/queue_placement.h). With helpers it goes to the other CPUs: the helpers stay and
  // serve on the callers' CPU in the time the callers leave, the first thread adds a CPU.
  // Without, to any CPU: the scheduler then picks. A failed move leaves it where it was: a cost,
  // not an error.
  cpu_set_t spread = everywhere;
  if (threads_per_queue_ > 1) CPU_CLR(qid, &spread);
  if (primary && pinned && CPU_COUNT(&spread) > 0 && CPU_COUNT(&everywhere) > 1) {
    config.move = [own, spread](QueuePlacement::Where where) {
      const cpu_set_t& set = where == QueuePlacement::Where::kPinned ? own : spread;
      (void)::sched_setaffinity(0, sizeof set, &set);
    };
  }
  auto ring = FuseRingQueue::create(fs_, dispatcher_, std::move(config));
  int fd = -1;
  {
    std::unique_lock lock(mu_);
    Server& s = servers_[index];
    s.pinned = pinned;
    if (!ring) {
      s.error = ring.error();
      s.state = ServerState::kFailed;
      cv_.notify_all();
      return;
    }
    s.ring = ring->get();
    s.registered_buffers = (*ring)->buffers_registered();
    s.state = ServerState::kReady;
    cv_.notify_all();
    cv_.wait(lock, [&] { return phase_ == Phase::kStarted || phase_ == Phase::kAbandoned; });
    // The pinned thread's entries go last: the kernel gives a request to the most recently
    // available entry, so the first one — and at iodepth 1 every one — comes to it.
    if (primary && phase_ == Phase::kStarted)
      cv_.wait_for(lock, kHelperRegisterWait, [&] {
        return phase_ != Phase::kStarted || helpers_settled(qid);
      });
    if (phase_ == Phase::kStarted) {
      s.state = ServerState::kRunning;
      fd = fuse_fd_;
    }
  }
  if (fd >= 0) {
    const auto registered = [&] {
      {
        std::lock_guard lock(mu_);
        servers_[index].registered = true;
      }
      cv_.notify_all();
    };
    if (auto r = (*ring)->run(fd, registered); !r) RAIDFS_LOG(kError, "%s", r.error().message.c_str());
  }
  {
    std::lock_guard lock(mu_);
    Server& s = servers_[index];
    s.requests = (*ring)->requests();
    s.fixed_ios = (*ring)->fixed_member_ios();
    s.moves = (*ring)->placement_moves();
    s.ring = nullptr;
  }
  ring->reset();  // closes the rings before the thread says it is done
  {
    std::lock_guard lock(mu_);
    servers_[index].state = ServerState::kDone;
  }
  cv_.notify_all();
}

}  // namespace raidfs::fs
