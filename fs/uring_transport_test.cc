// The io_uring transport's pieces that run without a mount: the CPU-list count that decides how
// many queues there are, the module-parameter switch on a stand-in file, and a ring queue against
// descriptors the kernel refuses (it must report the refusal once and return, never hang).
#include "fs/uring_transport.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "base/log.h"
#include "fs/array_spec.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_array.h"

namespace raidfs::fs {
namespace {

TEST(CpuList, CountsRangesAndSingles) {
  EXPECT_EQ(count_cpu_list("0").value(), 1u);
  EXPECT_EQ(count_cpu_list("0-1\n").value(), 2u);
  EXPECT_EQ(count_cpu_list("0-3,5").value(), 5u);
  EXPECT_EQ(count_cpu_list("0,2-5,8-9").value(), 7u);
  for (const char* bad : {"", "-", "1-0", "a", "0-", ",", "0,,1", "0-1-2", "99999999999"})
    EXPECT_FALSE(count_cpu_list(bad)) << bad;
}

TEST(CpuList, ThisMachineHasAtLeastOnePossibleCpu) {
  auto n = possible_cpu_count();
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_GE(*n, 1u);
}

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

TEST(EnableUring, ReadsYTurnsNOnAndNamesAMissingSwitch) {
  testing::TempDir dir;
  const std::string path = dir.file("enable_uring");
  std::ofstream(path) << "Y\n";
  EXPECT_TRUE(enable_fuse_over_io_uring(path.c_str()));
  std::ofstream(path) << "N\n";
  auto on = enable_fuse_over_io_uring(path.c_str());
  EXPECT_TRUE(on) << on.error().message;
  EXPECT_EQ(read_all(path), "Y");
  auto missing = enable_fuse_over_io_uring(dir.file("absent").c_str());
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ENOENT);
  EXPECT_NE(missing.error().message.find("6.14"), std::string::npos) << missing.error().message;
}

class RingQueueTest : public ::testing::Test {
 protected:
  // transport.prepare(); skips the test where this machine has no io_uring, fails it on any
  // other error (callers return when IsSkipped() or HasFatalFailure()).
  static void prepare(UringTransport& transport) {
    auto prepared = transport.prepare();
    if (!prepared && (prepared.error().code == ENOSYS || prepared.error().code == EPERM))
      GTEST_SKIP() << "no io_uring here: " << prepared.error().message;
    ASSERT_TRUE(prepared) << prepared.error().message;
  }

  void SetUp() override {
    set_log_level(LogLevel::kError);
    auto array = raidfs::testing::make_test_array(dir_, 4, 1, 16384, 24 << 20);
    ASSERT_TRUE(array) << array.error().message;
    auto opened = open_array(array->metadata_dir);
    ASSERT_TRUE(opened) << opened.error().message;
    auto fs = Filesystem::open(std::move(opened->array), std::move(opened->meta), {});
    ASSERT_TRUE(fs) << fs.error().message;
    fs_ = std::move(*fs);
    DispatcherOptions options;
    options.over_io_uring = true;
    dispatcher_ = std::make_unique<RequestDispatcher>(*fs_, options);
  }

  testing::TempDir dir_;
  std::unique_ptr<Filesystem> fs_;
  std::unique_ptr<RequestDispatcher> dispatcher_;
};

// The kernel refuses REGISTER on a file without FUSE's command handler (EOPNOTSUPP) and on
// /dev/fuse before a mount (no connection: EPERM); /dev/null answers every command with 0 and no
// request. In each case every entry ends and run() returns — no hang, no request served — and
// a refusal is reported exactly once.
TEST_F(RingQueueTest, RefusedOrBogusRegistrationsEndTheQueue) {
  const std::string plain = dir_.image("plain.img", 4096);
  struct Case {
    std::string path;
    int reports;
  };
  for (const Case& c : {Case{plain, 1}, Case{"/dev/fuse", 1}, Case{"/dev/null", 0}}) {
    SCOPED_TRACE(c.path);
    const int fd = ::open(c.path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) GTEST_SKIP() << c.path << ": " << std::strerror(errno);
    int reports = 0;
    Error reported;
    FuseRingConfig config;
    config.entries = 4;
    config.payload_bytes = 64 << 10;
    config.on_refused = [&](const Error& e) {
      ++reports;
      reported = e;
    };
    auto queue = FuseRingQueue::create(*fs_, *dispatcher_, config);
    if (!queue && (queue.error().code == ENOSYS || queue.error().code == EPERM))
      GTEST_SKIP() << "no io_uring here: " << queue.error().message;
    ASSERT_TRUE(queue) << queue.error().message;
    auto ran = (*queue)->run(fd);
    EXPECT_TRUE(ran) << ran.error().message;
    EXPECT_EQ((*queue)->requests(), 0u);
    EXPECT_EQ(reports, c.reports) << reported.message;
    if (c.reports > 0) {
      EXPECT_NE(reported.message.find("REGISTER"), std::string::npos) << reported.message;
    }
    ::close(fd);
  }
}

// prepare() builds one queue per possible CPU, two threads each; abandon() (the kernel did not grant io_uring)
// ends them without a registration, and join() returns at once.
TEST_F(RingQueueTest, PreparedQueuesEndWhenAbandoned) {
  UringOptions options;
  options.threads_per_queue = 2;
  options.entries_per_ring = 2;
  options.max_write = 128 << 10;
  UringTransport transport(*fs_, *dispatcher_, options);
  prepare(transport);
  if (IsSkipped() || HasFatalFailure()) return;
  EXPECT_EQ(transport.queue_count(), possible_cpu_count().value());
  EXPECT_EQ(transport.threads_per_queue(), 2u);
  EXPECT_EQ(transport.payload_bytes(), 128u << 10);
  EXPECT_FALSE(transport.started());
  transport.abandon();
  EXPECT_TRUE(transport.join(std::chrono::seconds(5)));
  const std::string status = transport.status_lines();
  EXPECT_NE(status.find("uring_requests: 0"), std::string::npos) << status;
}

// Ring entries by default: 8 a thread while the payload buffers fit the budget, fewer on many
// CPUs, never below the minimum; prepare() applies them when none were asked for.
TEST(UringTransportEntries, DefaultKeepsPayloadMemoryWithinTheBudget) {
  constexpr size_t kMiB = size_t{1} << 20;
  EXPECT_EQ(UringTransport::default_entries(2, 2, kMiB), UringTransport::kEntriesDefault);
  EXPECT_EQ(UringTransport::default_entries(16, 2, kMiB), 8u);   // 256 MiB exactly
  EXPECT_EQ(UringTransport::default_entries(32, 2, kMiB), 4u);
  EXPECT_EQ(UringTransport::default_entries(64, 2, kMiB), 2u);
  EXPECT_EQ(UringTransport::default_entries(1024, 2, kMiB), UringTransport::kEntriesMin);
  EXPECT_EQ(UringTransport::default_entries(64, 1, 128 << 10), 8u);  // small payloads: all
}

TEST_F(RingQueueTest, PreparedQueuesGetTheDefaultEntries) {
  UringOptions options;
  options.max_write = 128 << 10;
  UringTransport transport(*fs_, *dispatcher_, options);
  prepare(transport);
  if (IsSkipped() || HasFatalFailure()) return;
  EXPECT_EQ(transport.entries_per_ring(),
            UringTransport::default_entries(transport.queue_count(), 2, 128 << 10));
  transport.abandon();
  EXPECT_TRUE(transport.join(std::chrono::seconds(5)));
}

}  // namespace
}  // namespace raidfs::fs
