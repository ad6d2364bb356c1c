// StripeWriter against the cleaner's moves while a write's whole stripes are under way: their
// member I/O runs with the writer's lock released, and a move of the same file's data made then
// must not commit the old bytes over the newer ones afterwards.
#include "fs/stripe_writer.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstring>
#include <future>
#include <shared_mutex>

#include "base/aligned_buffer.h"
#include "fs/array_spec.h"
#include "fs/io_context.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_array.h"
#include "tests/support/write_gate.h"

namespace raidfs::fs {
namespace {

// The cleaner moves a piece of a file (8 KiB: copied into the open stripe, committed by a later
// flush) while a write of whole stripes over that piece is held in its member I/O. The move
// must wait for that write: had it gone ahead, the file still mapped the old place, the old
// bytes went pending, and their commit put them back over the write's.
TEST(StripeWriterTest, AMoveWaitsForWholeStripesUnderWayAndNeverBringsOldBytesBack) {
  testing::TempDir dir;
  auto made = testing::make_test_array(dir, 4, 1, 16384, 16 << 20);
  ASSERT_TRUE(made) << made.error().message;
  auto opened = open_array(dir.file("meta"));
  ASSERT_TRUE(opened) << opened.error().message;
  Array& array = *opened->array;
  meta::FsMeta& meta = *opened->meta;
  std::shared_mutex stripe_reuse;
  StripeWriter writer(array, meta, stripe_reuse);
  auto context = [&](testing::WriteGate* gate) -> std::unique_ptr<IoContext> {
    auto io = array.make_member_io();
    if (!io) return nullptr;
    std::unique_ptr<MemberIo> member_io = std::move(*io);
    if (gate) member_io = std::make_unique<testing::GatedIo>(std::move(member_io), *gate);
    return std::make_unique<IoContext>(std::move(member_io), array);
  };
  auto ctx = context(nullptr);
  ASSERT_TRUE(ctx);

  meta::CreateArgs args;
  args.mode = S_IFREG | 0644;
  auto inode = meta.create(meta::kRootIno, "f", args);
  ASSERT_TRUE(inode) << inode.error().message;
  const uint64_t ino = inode->ino;
  const size_t stripe = 3 * 16384;
  const auto old_bytes = testing::random_bytes(stripe, 1), new_bytes = testing::random_bytes(stripe, 2);
  AlignedBuffer old_buffer(stripe), new_buffer(stripe);
  std::memcpy(old_buffer.data(), old_bytes.data(), stripe);
  std::memcpy(new_buffer.data(), new_bytes.data(), stripe);
  ASSERT_TRUE(writer.write(*ctx, ino, 0, {old_buffer.data(), stripe}));
  auto where = meta.map_extents(ino, 0, stripe);
  ASSERT_TRUE(where && where->size() == 1 && !where->front().hole);
  const uint64_t old_stripe = where->front().stripe_id;
  auto old_record = meta.get_stripe(old_stripe);
  ASSERT_TRUE(old_record);

  testing::WriteGate gate;
  gate.arm_first();
  auto newer = std::async(std::launch::async, [&] {
    auto held_ctx = context(&gate);  // an io_uring is used by the thread that made it
    return held_ctx && writer.write(*held_ctx, ino, 0, {new_buffer.data(), stripe}).has_value();
  });
  const bool caught = gate.wait_for_writer();
  if (!caught) gate.open();
  ASSERT_TRUE(caught) << "the whole stripe never reached its member writes";
  auto moved = std::async(std::launch::async, [&]() -> Result<uint64_t> {
    auto move_ctx = context(nullptr);
    if (!move_ctx) return fail(EIO, "no I/O context");
    return writer.relocate(*move_ctx, ino, meta::Extent{0, old_stripe, 0, 8192},
                           old_record->generation, old_buffer.data());
  });
  const bool waited = moved.wait_for(std::chrono::milliseconds(300)) == std::future_status::timeout;
  gate.open();
  ASSERT_TRUE(newer.get());
  auto move = moved.get();
  ASSERT_TRUE(move) << move.error().message;
  EXPECT_TRUE(waited) << "the move went ahead of the write under way";
  EXPECT_EQ(*move, 0u) << "moved bytes the file no longer maps there";
  ASSERT_TRUE(writer.flush(*ctx, 0));
  where = meta.map_extents(ino, 0, stripe);
  ASSERT_TRUE(where);
  ASSERT_FALSE(where->empty());
  for (const meta::Mapping& m : *where) {
    EXPECT_FALSE(m.hole);
    EXPECT_NE(m.stripe_id, old_stripe);
  }
  EXPECT_EQ(where->size(), 1u) << "the file's first bytes map apart from the newer write's stripe";
}

}  // namespace
}  // namespace raidfs::fs
