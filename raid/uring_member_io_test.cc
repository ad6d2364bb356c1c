// Goal: UringMemberIo moves exactly the bytes asked for, through fixed buffers when registered, and
// reports errors per request. Method: image files opened O_DIRECT, compared with pread.
#include "raid/uring_member_io.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <random>

#include "base/aligned_buffer.h"
#include "raid/fault_injecting_io.h"
#include "tests/support/temp_dir.h"

namespace raidfs {
namespace {

class UringMemberIoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 3; ++i) {
      std::string p = dir_.image("m" + std::to_string(i), 8 << 20);
      int fd = ::open(p.c_str(), O_RDWR | O_DIRECT);
      ASSERT_GE(fd, 0);
      fds_.push_back(fd);
    }
  }
  void TearDown() override {
    for (int fd : fds_) ::close(fd);
  }
  // On disk: files that take non-blocking I/O, so that batches go through the ring (tmpfs files
  // would be run on the calling thread: BatchesOnFilesWithoutNowaitSkipTheRing).
  testing::TempDir dir_{"/var/tmp"};
  std::vector<int> fds_;
};

TEST_F(UringMemberIoTest, BatchOfWritesAndReadsThroughFixedBuffers) {
  auto io = UringMemberIo::create(fds_, 8).value();  // fewer slots than requests: waves
  AlignedBuffer out(64 * 4096), in(64 * 4096);
  std::mt19937 rng(5);
  for (size_t i = 0; i < out.size(); ++i) out.data()[i] = static_cast<uint8_t>(rng());
  std::vector<std::span<uint8_t>> ranges{{out.data(), out.size()}, {in.data(), in.size()}};
  ASSERT_TRUE(io->register_buffers(ranges));

  std::vector<IoRequest> writes, reads;
  for (uint32_t i = 0; i < 32; ++i) {
    uint32_t member = i % 3;
    uint64_t offset = (1 << 20) + uint64_t{i} * 8192;
    writes.push_back({IoOp::kWrite, member, offset, 8192, out.data() + i * 8192, 0});
    reads.push_back({IoOp::kRead, member, offset, 8192, in.data() + i * 8192, 0});
  }
  io->execute(writes);
  for (auto& r : writes) ASSERT_TRUE(r.ok()) << r.result;
  std::vector<IoRequest> flushes{{IoOp::kFlush, 0, 0, 0, nullptr, 0}, {IoOp::kFlush, 1, 0, 0, nullptr, 0}};
  io->execute(flushes);
  for (auto& r : flushes) EXPECT_TRUE(r.ok()) << r.result;
  io->execute(reads);
  for (auto& r : reads) ASSERT_TRUE(r.ok()) << r.result;
  EXPECT_EQ(0, memcmp(in.data(), out.data(), 32 * 8192));
  EXPECT_EQ(io->fixed_request_count(), 64u);

  // The bytes really are on the files where they were sent.
  AlignedBuffer check(8192);
  ASSERT_EQ(::pread(fds_[1], check.data(), 8192, (1 << 20) + 8192), 8192);
  EXPECT_EQ(0, memcmp(check.data(), out.data() + 8192, 8192));
}

TEST_F(UringMemberIoTest, UnregisteredBuffersAndErrorsAreReportedPerRequest) {
  auto io = UringMemberIo::create(fds_).value();
  AlignedBuffer buf(4 * 4096);
  std::vector<IoRequest> batch{
      {IoOp::kWrite, 0, 4096, 4096, buf.data(), 0},
      {IoOp::kRead, 1, 8 << 20, 4096, buf.data() + 4096, 0},   // past the end of the file
      {IoOp::kRead, 7, 0, 4096, buf.data() + 12288, 0},         // no such member
  };
  io->execute(batch);
  EXPECT_TRUE(batch[0].ok());
  EXPECT_EQ(batch[1].result, -EIO);
  EXPECT_EQ(batch[2].result, -ENODEV);
  EXPECT_EQ(io->fixed_request_count(), 0u);
}

TEST_F(UringMemberIoTest, FaultInjectionFailsMembersAndDropsWrites) {
  auto io = UringMemberIo::create(fds_).value();
  FaultInjectingIo faulty(*io);
  AlignedBuffer a(4096), b(4096);
  memset(a.data(), 0x11, 4096);
  faulty.fail_member(1, EIO);
  faulty.drop_writes_after(1);
  std::vector<IoRequest> batch{{IoOp::kWrite, 0, 0, 4096, a.data(), 0},
                               {IoOp::kWrite, 1, 0, 4096, a.data(), 0},
                               {IoOp::kWrite, 2, 0, 4096, a.data(), 0}};
  faulty.execute(batch);
  EXPECT_TRUE(batch[0].ok());
  EXPECT_EQ(batch[1].result, -EIO);
  EXPECT_TRUE(batch[2].ok()) << "a dropped write is acknowledged";
  EXPECT_EQ(faulty.dropped_write_count(), 1u);
  std::vector<IoRequest> read{{IoOp::kRead, 2, 0, 4096, b.data(), 0}};
  io->execute(read);
  EXPECT_EQ(b.data()[0], 0) << "but never stored";
}

// A batch wholly on members whose files take no non-blocking I/O (tmpfs) is issued on the
// calling thread; a member that does (ext4, under /var/tmp), alone or in a batch, goes through
// the ring.
TEST_F(UringMemberIoTest, BatchesOnFilesWithoutNowaitSkipTheRing) {
  testing::TempDir shm("/dev/shm"), disk("/var/tmp");
  std::vector<int> fds;
  for (auto* dir : {&shm, &disk}) {
    int fd = ::open(dir->image("m", 1 << 20).c_str(), O_RDWR | O_DIRECT);
    ASSERT_GE(fd, 0);
    fds.push_back(fd);
  }
  auto io = UringMemberIo::create(fds).value();
  EXPECT_TRUE(io->lacks_nowait(0)) << "tmpfs files take RWF_NOWAIT now: the rule may be moot";
  AlignedBuffer out(2 * 4096), in(2 * 4096);
  memset(out.data(), 0x5a, out.size());
  for (size_t i = 0; i < out.size(); i += 4096) out.data()[i] = static_cast<uint8_t>(i / 4096 + 1);
  std::vector<std::span<uint8_t>> ranges{{out.data(), out.size()}, {in.data(), in.size()}};
  ASSERT_TRUE(io->register_buffers(ranges));
  for (uint32_t member : {0u, 1u}) {
    const bool sync = io->lacks_nowait(member);
    const uint64_t sync_before = io->sync_request_count();
    std::vector<IoRequest> write{{IoOp::kWrite, member, 8192, 4096, out.data(), 0}};
    io->execute(write);
    ASSERT_TRUE(write[0].ok()) << write[0].result;
    std::vector<IoRequest> read{{IoOp::kRead, member, 8192, 4096, in.data(), 0}};
    io->execute(read);
    ASSERT_TRUE(read[0].ok()) << read[0].result;
    EXPECT_EQ(0, memcmp(in.data(), out.data(), 4096)) << "member " << member;
    EXPECT_EQ(io->sync_request_count() - sync_before, sync ? 2u : 0u) << "member " << member;
  }
  // Two requests on the tmpfs member: the calling thread, in order, each with its own result.
  uint64_t sync_before = io->sync_request_count(), fixed_before = io->fixed_request_count();
  std::vector<IoRequest> both{{IoOp::kWrite, 0, 16384, 8192, out.data(), 0},
                              {IoOp::kRead, 0, 8192, 4096, in.data() + 4096, 0}};
  io->execute(both);
  EXPECT_TRUE(both[0].ok() && both[1].ok());
  EXPECT_EQ(io->sync_request_count() - sync_before, 2u);
  EXPECT_EQ(io->fixed_request_count(), fixed_before);
  EXPECT_EQ(0, memcmp(in.data() + 4096, out.data(), 4096));
  // One request on each: the ring, whatever the files.
  sync_before = io->sync_request_count(), fixed_before = io->fixed_request_count();
  AlignedBuffer other(4096);  // not registered
  std::vector<IoRequest> two{{IoOp::kRead, 0, 16384, 8192, in.data(), 0},
                             {IoOp::kRead, 1, 8192, 4096, other.data(), 0}};
  io->execute(two);
  EXPECT_TRUE(two[0].ok() && two[1].ok());
  EXPECT_EQ(io->sync_request_count(), sync_before);
  EXPECT_EQ(io->fixed_request_count() - fixed_before, 1u) << "the second buffer is not registered";
  EXPECT_EQ(0, memcmp(in.data(), out.data(), 8192));
  EXPECT_EQ(0, memcmp(other.data(), out.data(), 4096));
  // Errors come back the same way: past the end of the file.
  std::vector<IoRequest> past{{IoOp::kRead, 0, 1 << 20, 4096, in.data(), 0}};
  io->execute(past);
  EXPECT_EQ(past[0].result, -EIO);
  for (int fd : fds) ::close(fd);
}

}  // namespace
}  // namespace raidfs
