// ArrayRegionDevice's flush: what it covers when threads write and flush the region at once
// (RocksDB writes a table on one thread while another syncs the log).
#include "fs/region_on_array.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "base/aligned_buffer.h"
#include "tests/support/test_array.h"
#include "tests/support/write_gate.h"

namespace raidfs::fs {
namespace {

// Every request that reached the members, in the order they completed (all threads').
struct IoLog {
  std::mutex mu;
  std::vector<std::pair<IoOp, uint32_t>> done;
};

// Holds batches with a write at the gate, then logs what each batch did.
class LoggedIo final : public MemberIo {
 public:
  LoggedIo(std::unique_ptr<MemberIo> inner, testing::WriteGate& gate, IoLog& log)
      : inner_(std::move(inner)), gate_(gate), log_(log) {}
  void execute(std::span<IoRequest> batch) override {
    if (std::any_of(batch.begin(), batch.end(), [](const IoRequest& r) { return r.op == IoOp::kWrite; }))
      gate_.pass();
    inner_->execute(batch);
    std::lock_guard lock(log_.mu);
    for (const IoRequest& r : batch)
      if (r.ok()) log_.done.emplace_back(r.op, r.member);
  }
  Result<void> register_buffers(std::span<const std::span<uint8_t>> ranges) override {
    return inner_->register_buffers(ranges);
  }

 private:
  std::unique_ptr<MemberIo> inner_;
  testing::WriteGate& gate_;
  IoLog& log_;
};

// A flush by another thread that begins while a write is still on its way to the members does
// not cover it: the writer's own flush that returns after the write must flush those members
// after it. (It once found the members marked clean by that other flush and did nothing: a
// table RocksDB had synced could then lose its blocks to a power cut.)
TEST(ArrayRegionDeviceTest, AFlushCoversOnlyWritesDoneBeforeItBegan) {
  testing::TempDir dir;
  auto made = testing::make_test_array(dir, 4, 1, 16384, 32 << 20, "", 16 << 20);
  ASSERT_TRUE(made) << made.error().message;
  auto array = Array::open(made->paths);
  ASSERT_TRUE(array) << array.error().message;
  testing::WriteGate gate;
  IoLog log;
  ArrayRegionDevice device(**array, [&](std::unique_ptr<MemberIo> inner) -> std::unique_ptr<MemberIo> {
    return std::make_unique<LoggedIo>(std::move(inner), gate, log);
  });

  const uint64_t block = device.block_count() - 1;  // the region's last: no file of the test array's
  AlignedBuffer bytes(4096);
  std::memset(bytes.data(), 0x5a, bytes.size());
  gate.arm_first();
  Result<void> written, flushed;
  std::thread writer([&] {
    written = device.write(block, 1, bytes.data());
    if (written) flushed = device.flush();
  });
  ASSERT_TRUE(gate.wait_for_writer());
  auto other = device.flush();  // begins (and ends) while the write is held
  gate.open();
  writer.join();
  ASSERT_TRUE(other) << other.error().message;
  ASSERT_TRUE(written) << written.error().message;
  ASSERT_TRUE(flushed) << flushed.error().message;

  const MetaRegion& region = *(*array)->meta_region();
  std::lock_guard lock(log.mu);
  for (uint32_t c = 0; c < device.copy_count(); ++c) {
    const uint32_t member = region.place(block, c).member;
    auto last_write = std::find(log.done.rbegin(), log.done.rend(), std::pair{IoOp::kWrite, member});
    ASSERT_NE(last_write, log.done.rend()) << "copy " << c << " was never written";
    const bool flushed_after =
        std::find(log.done.rbegin(), last_write, std::pair{IoOp::kFlush, member}) != last_write;
    EXPECT_TRUE(flushed_after) << "member " << member << " (copy " << c
                               << ") was not flushed after the write reached it";
  }
}

}  // namespace
}  // namespace raidfs::fs
