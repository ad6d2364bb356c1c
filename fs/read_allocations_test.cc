// Goal: a read allocates nothing once the caches are warm — the metadata lookups (inode, extent
// map, stripe records) land in buffers the thread keeps, the read's lists (pending ranges
// among them) in its IoContext (the write-path issue asks for no allocation per request on the
// read path). Method: this binary replaces the global operator new with one that counts the calls
// made by the test's thread while it reads; the reads are checked byte for byte too. Under the
// sanitizers (which own the allocator) the count is not taken: the reads and their checks run
// there all the same, for the sanitizers to watch the buffers being reused.
#include <gtest/gtest.h>

#include <cstdlib>
#include <new>
#include <random>

#include "base/aligned_buffer.h"
#include "fs/array_spec.h"
#include "fs/filesystem.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_array.h"

namespace {
thread_local bool counting = false;
thread_local uint64_t allocations = 0;
}  // namespace

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define RAIDFS_COUNTS_ALLOCATIONS 0
#else
#define RAIDFS_COUNTS_ALLOCATIONS 1

// The library's own operator new is malloc underneath and its operator delete is free: this one
// keeps to that, so the default deletes stay right for what it hands out.
void* operator new(size_t n) {
  if (counting) ++allocations;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) { return operator new(n); }
#endif

namespace raidfs::fs {
namespace {

TEST(ReadAllocations, ReadsOfCommittedAndPendingDataAllocateNothing) {
  testing::TempDir dir;
  auto made = testing::make_test_array(dir, 6, 2, 16384, 64 << 20);
  ASSERT_TRUE(made) << made.error().message;
  auto opened = open_array(dir.file("meta"));
  ASSERT_TRUE(opened) << opened.error().message;
  auto fs = Filesystem::open(std::move(opened->array), std::move(opened->meta), {});
  ASSERT_TRUE(fs) << fs.error().message;
  auto ctx = (*fs)->make_io_context();
  ASSERT_TRUE(ctx);

  // 8 MiB written in 1 MiB pieces and sealed: whole stripes, as a copy leaves a file.
  constexpr size_t kFile = 8 << 20, kPiece = 1 << 20;
  std::vector<uint8_t> data = testing::random_bytes(kFile, 7);
  auto inode = (*fs)->create(meta::kRootIno, "f", 0644, {});
  ASSERT_TRUE(inode) << inode.error().message;
  const uint64_t ino = inode->ino;
  AlignedBuffer piece(kPiece);
  for (size_t off = 0; off < kFile; off += kPiece) {
    std::memcpy(piece.data(), data.data() + off, kPiece);
    auto n = (*fs)->write(**ctx, ino, off, {piece.data(), kPiece});
    ASSERT_TRUE(n) << n.error().message;
  }
  ASSERT_TRUE((*fs)->sync_all(**ctx));

  AlignedBuffer buf(kPiece);
  auto read_and_check = [&](uint64_t offset, size_t size) {
    auto n = (*fs)->read(**ctx, ino, offset, size, buf.data());
    counting = false;  // the checks below may allocate
    ASSERT_TRUE(n) << n.error().message;
    ASSERT_EQ(*n, size);
    ASSERT_EQ(std::memcmp(buf.data(), data.data() + offset, size), 0) << "at " << offset;
  };
  // Reads of 4 KiB at random and of 1 MiB across stripes, `count`ed or not.
  uint64_t reads = 0;
  auto read_all = [&](bool count) {
    std::mt19937_64 rng(3);
    for (int n = 0; n < 2000; ++n, ++reads) {
      const uint64_t off = rng() % (kFile / 4096) * 4096;
      counting = count;
      read_and_check(off, 4096);
    }
    for (size_t off = 0; off + kPiece <= kFile; off += kPiece / 2, ++reads) {
      counting = count;
      read_and_check(off, kPiece);
    }
  };
  // Warm: the record cache loads a file's extents at their second miss, and the lists a read
  // fills grow to what the largest of these reads needs.
  for (size_t off = 0; off < kFile; off += 4096) read_and_check(off, 4096);
  read_all(false);
  read_all(true);
  if (RAIDFS_COUNTS_ALLOCATIONS) {
    EXPECT_EQ(allocations, 0u) << "in " << reads / 2 << " reads";
  }

  // Data still pending in the open stripe (short pieces from a misaligned buffer are copied
  // there): reads that take it from memory, alone or with committed data around it.
  std::vector<uint8_t> newer = testing::random_bytes(8 * 3000 + 1, 9);
  for (int n = 0; n < 8; ++n) {
    const uint64_t off = static_cast<uint64_t>(n) * 300 * 1024 + 1000;
    auto w = (*fs)->write(**ctx, ino, off, {newer.data() + 1 + n * 3000, 3000});
    ASSERT_TRUE(w) << w.error().message;
    std::memcpy(data.data() + off, newer.data() + 1 + n * 3000, 3000);
  }
  auto read_pending = [&](bool count) {
    for (int n = 0; n < 8; ++n, ++reads) {
      const uint64_t off = static_cast<uint64_t>(n) * 300 * 1024;
      counting = count;
      read_and_check(off, 4096);  // the piece and committed bytes around it
      counting = count;
      read_and_check(off + 1000, 3000);  // the piece alone
      counting = count;
      read_and_check(off / kPiece * kPiece, kPiece);
    }
  };
  allocations = 0;
  read_pending(false);
  read_pending(true);
  EXPECT_GT((*fs)->stats().bytes_copied_read, 0u) << "the reads did not find the pending data";
  if (RAIDFS_COUNTS_ALLOCATIONS) {
    EXPECT_EQ(allocations, 0u) << "in reads of pending data";
  }
}

}  // namespace
}  // namespace raidfs::fs
