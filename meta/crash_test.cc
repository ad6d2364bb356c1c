// Goal: every FsMeta operation commits whole or not at all, whatever instant the process dies at,
// and every commit whose synced write was acknowledged survives.
// Method: a child process (this binary re-executed in workload mode) runs random operations from
// two threads on one database until SIGKILLed at a random moment; the parent then runs the checker
// on the raw store (as the crash left it) and again after FsMeta::open's orphan recovery, and
// requires no finding. Durability: among the random operations each thread makes synced writes of
// a counter of its own (xattr user.ackT of the root, 1, 2, 3 ...) and, once a write returns,
// appends the value to a log outside the database; after the kill the stored counter must be at
// least the last value logged (a SIGKILL keeps the page cache: this proves a commit is in the
// log before it is acknowledged; a lost fsync is the power-cut test's). The database carries over
// from one kill to the next. ~3 s.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include "meta/checker.h"
#include "meta/fs_meta.h"
#include "meta/test_util.h"

extern char** environ;

namespace raidfs::meta {
namespace {

using testing::TempDir;

constexpr uint32_t kStripeBlocks = 16;

StoreOptions crash_options(const std::string& path) {
  StoreOptions o = testing::small_array(path);
  o.stripe_count = 100000;
  return o;
}

// The random workload of one child thread. Returns only on a corruption error (exit code 3).
class Workload {
 public:
  // `ack_fd`: the log of acknowledged synced counters ("T N" lines); `thread`: this one's T.
  Workload(FsMeta& meta, uint64_t seed, int ack_fd, int thread)
      : meta_(meta), rng_(seed), ack_fd_(ack_fd), thread_(thread) {}

  // Continues from the counter the database holds (the previous child's).
  void resume_counter() {
    auto v = meta_.get_xattr(kRootIno, "user.ack" + std::to_string(thread_));
    acked_ = v ? std::stoull(*v) : 0;
  }

  void run(int ops) {
    for (int n = 0; n < ops; ++n) {
      Result<void> r = step();
      if (!r && r.error().code == EIO) {
        std::fprintf(stderr, "workload: %s\n", r.error().message.c_str());
        _exit(3);
      }
    }
  }

 private:
  uint64_t pick(uint64_t n) { return rng_() % n; }
  std::string name() { return "n" + std::to_string(pick(12)); }
  Durability durability() { return pick(8) == 0 ? Durability::kGroupSync : Durability::kNone; }

  // A random directory: the root or a descendant up to two levels down.
  uint64_t random_dir() {
    uint64_t dir = kRootIno;
    for (int depth = 0; depth < 2 && pick(2); ++depth) {
      auto entries = meta_.readdir(dir, 0, 64);
      if (!entries) break;
      std::vector<uint64_t> dirs;
      for (auto& e : entries->entries)
        if (e.type == FileType::kDirectory) dirs.push_back(e.ino);
      if (dirs.empty()) break;
      dir = dirs[pick(dirs.size())];
    }
    return dir;
  }
  std::optional<DirEntry> random_entry(uint64_t dir, bool want_file) {
    auto entries = meta_.readdir(dir, 0, 64);
    if (!entries) return std::nullopt;
    std::vector<DirEntry> match;
    for (auto& e : entries->entries)
      if (!want_file || e.type == FileType::kRegular) match.push_back(e);
    if (match.empty()) return std::nullopt;
    return match[pick(match.size())];
  }

  Result<void> write_file() {
    auto file = random_entry(random_dir(), true);
    if (!file) return {};
    const uint32_t blocks = 1 + static_cast<uint32_t>(pick(4));
    std::vector<Stripe> stripes;
    if (!open_ || open_->filled_bytes / kBlockBytes + blocks > kStripeBlocks) {
      if (open_) {  // seal the full stripe in the same batch
        open_->state = StripeState::kSealed;
        stripes.push_back(*open_);
      }
      RAIDFS_TRY(StripeRef ref, meta_.allocate_stripe());
      open_ = Stripe{};
      open_->id = ref.id;
      open_->generation = ref.generation;
      open_->state = StripeState::kOpen;
    }
    const uint32_t start = open_->filled_bytes;
    open_->filled_bytes += blocks * kBlockBytes;
    open_->block_crcs.resize(open_->filled_bytes / kBlockBytes, static_cast<uint32_t>(rng_()));
    stripes.push_back(*open_);
    // One or two extents at random (block-aligned or not) file offsets.
    std::vector<Extent> extents;
    uint64_t off = pick(64) * kBlockBytes + (pick(2) ? pick(kBlockBytes) : 0);
    const uint32_t bytes = blocks * kBlockBytes - static_cast<uint32_t>(pick(kBlockBytes));
    if (blocks > 1 && pick(2)) {
      const uint32_t first = kBlockBytes;
      extents.push_back(Extent{off, open_->id, start, first});
      extents.push_back(Extent{off + first + pick(3) * kBlockBytes, open_->id, start + first,
                               bytes - first});
    } else {
      extents.push_back(Extent{off, open_->id, start, bytes});
    }
    auto r = meta_.commit_write(file->ino, extents, stripes, durability());
    if (!r) {
      open_.reset();  // unknown state: start a new stripe next time
      return r;
    }
    return {};
  }

  // A synced write of this thread's counter; logged once it is acknowledged.
  Result<void> durable_counter() {
    const uint64_t next = acked_ + 1;
    RAIDFS_CHECK(meta_.set_xattr(kRootIno, "user.ack" + std::to_string(thread_),
                                 std::to_string(next), 0, Durability::kGroupSync));
    acked_ = next;
    const std::string line = std::to_string(thread_) + " " + std::to_string(next) + "\n";
    if (::write(ack_fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) _exit(4);
    return {};
  }

  Result<void> step() {
    const uint64_t dir = random_dir();
    const bool open_flag = pick(3) == 0;
    if (pick(10) == 0) return durable_counter();
    switch (pick(14)) {
      case 0: case 1: case 2:
        return as_void(meta_.create(dir, name(), CreateArgs{S_IFREG | 0644, 0, 0, 0, {}, {}, {}}, durability()));
      case 3:
        return as_void(meta_.create(dir, name(), CreateArgs{S_IFDIR | 0755, 0, 0, 0, {}, {}, {}}, durability()));
      case 4:
        return as_void(meta_.create(dir, name(), CreateArgs{S_IFLNK | 0777, 0, 0, 0, "t", {}, {}}, durability()));
      case 5: {
        auto e = random_entry(dir, true);
        if (!e) return {};
        return as_void(meta_.link(e->ino, random_dir(), name(), durability()));
      }
      case 6: {
        auto e = random_entry(dir, false);
        if (!e) return {};
        if (e->type == FileType::kDirectory) return meta_.rmdir(dir, e->name, false, durability());
        return as_void(meta_.unlink(dir, e->name, open_flag, durability()));
      }
      case 7: {
        auto e = random_entry(dir, false);
        if (!e) return {};
        static constexpr unsigned kFlags[] = {0, 0, kRenameNoReplace, kRenameExchange};
        return as_void(meta_.rename(dir, e->name, random_dir(), name(), kFlags[pick(4)],
                                    open_flag, durability()));
      }
      case 8: case 9: case 10:
        return write_file();
      case 11: {
        auto e = random_entry(dir, true);
        if (!e) return {};
        SetAttr attr;
        attr.size = pick(80) * 3000;
        return as_void(meta_.setattr(e->ino, attr, durability()));
      }
      case 12: {
        auto e = random_entry(dir, false);
        if (!e) return {};
        if (pick(2)) return meta_.set_xattr(e->ino, name(), "value", 0, durability());
        return meta_.remove_xattr(e->ino, name(), durability());
      }
      default: {
        auto orphans = meta_.orphans();
        if (orphans.empty()) return {};
        return as_void(meta_.release(orphans[pick(orphans.size())], false, durability()));
      }
    }
  }

  template <class T>
  static Result<void> as_void(const Result<T>& r) {
    if (!r) return std::unexpected(r.error());
    return {};
  }

  FsMeta& meta_;
  std::mt19937_64 rng_;
  std::optional<Stripe> open_;
  const int ack_fd_;
  const int thread_;
  uint64_t acked_ = 0;  // this thread's counter as last acknowledged
};

// The last acknowledged counter of each thread, from the log.
std::map<int, uint64_t> acknowledged(const std::string& log) {
  std::map<int, uint64_t> last;
  std::ifstream in(log);
  int thread;
  uint64_t value;
  while (in >> thread >> value) last[thread] = std::max(last[thread], value);
  return last;
}

// Workload mode: runs only when the crash test re-executes this binary with the variables set.
TEST(CrashChild, Workload) {
  const char* dir = std::getenv("RAIDFS_META_CRASH_DIR");
  const char* seed = std::getenv("RAIDFS_META_CRASH_SEED");
  if (!dir || !seed) GTEST_SKIP() << "runs only as the crash test's child";
  auto meta = FsMeta::open(crash_options(dir));
  if (!meta) {
    std::fprintf(stderr, "child open: %s\n", meta.error().message.c_str());
    _exit(meta.error().code == EIO ? 3 : 2);
  }
  const char* ack_log = std::getenv("RAIDFS_META_CRASH_ACKS");
  const int ack_fd = ::open(ack_log, O_WRONLY | O_APPEND | O_CREAT, 0644);
  if (ack_fd < 0) _exit(2);
  // Give each thread its own open stripe; a stripe left open by the previous child stays open.
  std::thread other([&] {
    Workload w(**meta, std::stoull(seed) * 2 + 1, ack_fd, 1);
    w.resume_counter();
    w.run(100000);
  });
  Workload w(**meta, std::stoull(seed) * 2, ack_fd, 0);
  w.resume_counter();
  w.run(100000);
  other.join();
  _exit(0);
}

void expect_no_findings(const Store& store, const std::string& when) {
  auto findings = check(store);
  ASSERT_TRUE(findings.has_value()) << when << ": " << findings.error().message;
  for (const Finding& f : *findings)
    ADD_FAILURE() << when << ": " << finding_kind_name(f.kind) << ": " << f.detail;
}

TEST(Crash, SigkillAtRandomPointsLeavesConsistentMetadata) {
  TempDir dir;
  {
    auto meta = FsMeta::open(crash_options(dir.path()));
    ASSERT_TRUE(meta.has_value()) << meta.error().message;
  }
  const auto budget = std::chrono::milliseconds(testing::kSanitized ? 4000 : 3000);
  // At least iterations_min whatever the time (a sanitizer build on a loaded machine is slow),
  // more while the budget lasts.
  const int iterations_min = 5, iterations_max = 60;
  const std::string ack_log = dir.path() + "/acks.log";
  uint64_t acks_checked = 0;
  std::mt19937 rng(2024);
  const auto start = std::chrono::steady_clock::now();
  int iterations = 0, killed = 0;
  while (iterations < iterations_min ||
         (iterations < iterations_max && std::chrono::steady_clock::now() - start < budget)) {
    ++iterations;
    // Everything the child needs is built before fork: the child only calls execve.
    std::string dir_var = "RAIDFS_META_CRASH_DIR=" + dir.path();
    std::string seed_var = "RAIDFS_META_CRASH_SEED=" + std::to_string(iterations);
    std::string acks_var = "RAIDFS_META_CRASH_ACKS=" + ack_log;
    std::vector<char*> envp;
    for (char** e = environ; *e; ++e) envp.push_back(*e);
    envp.push_back(dir_var.data());
    envp.push_back(seed_var.data());
    envp.push_back(acks_var.data());
    envp.push_back(nullptr);
    std::string self = "/proc/self/exe", filter = "--gtest_filter=CrashChild.Workload";
    char* argv[] = {self.data(), filter.data(), nullptr};
    const auto delay = std::chrono::milliseconds(
        (testing::kSanitized ? 150 : 60) + rng() % (testing::kSanitized ? 250 : 120));

    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      int null_fd = open("/dev/null", O_WRONLY);  // keep the child's gtest banner out of the log
      if (null_fd >= 0) dup2(null_fd, STDOUT_FILENO);
      execve(argv[0], argv, envp.data());
      _exit(127);
    }
    // Every other iteration waits until the child acknowledged a synced write first (a slow
    // sanitizer build on a loaded machine may otherwise be killed before it gets anywhere, every
    // time); the others may kill it at any point, opening included.
    int status = 0;
    bool reaped = false;
    if (iterations % 2 == 0) {
      std::error_code ec;
      const auto before = std::filesystem::file_size(ack_log, ec);
      const uintmax_t start = ec ? 0 : before;
      for (int t = 0; t < 1000 && !reaped; ++t) {
        reaped = waitpid(pid, &status, WNOHANG) == pid;
        const auto now = std::filesystem::file_size(ack_log, ec);
        if (!ec && now > start) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    if (!reaped) std::this_thread::sleep_for(delay);
    if (!reaped && waitpid(pid, &status, WNOHANG) == 0) {
      kill(pid, SIGKILL);
      ASSERT_EQ(waitpid(pid, &status, 0), pid);
    }
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
      ++killed;
    } else {
      ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
          << "child failed on its own, status " << status;
    }
    {
      auto store = Store::open(crash_options(dir.path()));
      ASSERT_TRUE(store.has_value()) << store.error().message;
      expect_no_findings(**store, "as the crash left it, iteration " + std::to_string(iterations));
    }
    auto meta = FsMeta::open(crash_options(dir.path()));
    ASSERT_TRUE(meta.has_value()) << meta.error().message;
    EXPECT_TRUE((*meta)->orphans().empty());
    expect_no_findings((*meta)->store(), "after recovery, iteration " + std::to_string(iterations));
    for (const auto& [thread, value] : acknowledged(ack_log)) {
      auto stored = (*meta)->get_xattr(kRootIno, "user.ack" + std::to_string(thread));
      const uint64_t have = stored ? std::stoull(*stored) : 0;
      EXPECT_GE(have, value) << "iteration " << iterations << ": thread " << thread
                             << "'s synced write of " << value << " was acknowledged, but "
                             << have << " survived";
      acks_checked = std::max(acks_checked, value);
    }
    if (::testing::Test::HasFailure()) break;
  }
  auto meta = FsMeta::open(crash_options(dir.path()));
  ASSERT_TRUE(meta.has_value());
  auto listing = (*meta)->readdir(kRootIno, 0, 100);
  ASSERT_TRUE(listing.has_value());
  std::printf("%d iterations, %d killed mid-run; root has %zu entries; %llu RocksDB sequence; "
              "acknowledged synced counters up to %llu survived\n",
              iterations, killed, listing->entries.size(),
              static_cast<unsigned long long>((*meta)->store().latest_sequence()),
              static_cast<unsigned long long>(acks_checked));
  EXPECT_GT(acks_checked, 0u) << "synced writes were acknowledged and checked";
  EXPECT_GE(killed, iterations / 2);
  EXPECT_GE(iterations, iterations_min);
}

}  // namespace
}  // namespace raidfs::meta
