// Goal: the Filesystem stays right under concurrency — writers, readers, fsync, truncate, punch,
// unlink and rename in several threads at once, sharing the open stripe, seals, stripe reuse and
// the metadata — and what it stores matches a model, before and after a remount.
// Method: each worker thread owns a few files (its own names, so the model of each file is exact)
// and runs a seeded random mix of operations on them, checking every read against its model; a
// reader thread reads all the others' files meanwhile (any bytes, never an error but ENOENT), and
// the commit timer runs. At the end everything is synced, the filesystem remounted and every file
// compared with its model. Bounded by operation count (about 2 s; more under the sanitizers).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "fs/array_spec.h"
#include "fs/filesystem.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_array.h"

namespace raidfs::fs {
namespace {

constexpr uint32_t kChunk = 16384;
constexpr int kWorkers = 3;
constexpr int kFilesPerWorker = 3;
constexpr uint64_t kFileBytesMax = 600000;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr int kOpsPerWorker = 400;
#else
constexpr int kOpsPerWorker = 1500;
#endif

struct Model {
  std::map<std::string, std::vector<uint8_t>> files;  // name → content
};

class StressTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto made = testing::make_test_array(dir_, 6, 2, kChunk, 64 << 20);
    ASSERT_TRUE(made) << made.error().message;
    mount(/*commit_ms=*/50);
  }
  void mount(unsigned commit_ms) {
    fs_.reset();
    auto opened = open_array(dir_.file("meta"));
    ASSERT_TRUE(opened) << opened.error().message;
    FilesystemOptions options;
    options.commit_interval_ms = commit_ms;
    auto fs = Filesystem::open(std::move(opened->array), std::move(opened->meta), options);
    ASSERT_TRUE(fs) << fs.error().message;
    fs_ = std::move(*fs);
  }
  void failed(const std::string& what) {
    std::lock_guard lock(failures_mu_);
    if (failures_.size() < 20) failures_.push_back(what);
  }

  // The random operations of worker `w` on its own files.
  void work(int w, Model& model) {
    auto made = fs_->make_io_context();
    ASSERT_TRUE(made);
    IoContext& ctx = **made;
    std::mt19937_64 rng(1000 + w);
    auto pick = [&](uint64_t n) { return rng() % n; };
    auto name_of = [&](int f) { return "w" + std::to_string(w) + "-f" + std::to_string(f); };
    std::map<std::string, uint64_t> ino;  // open handles, by name
    for (int f = 0; f < kFilesPerWorker; ++f) {
      auto created = fs_->create(meta::kRootIno, name_of(f), 0644, {});
      ASSERT_TRUE(created) << created.error().message;
      ino[name_of(f)] = created->ino;
      model.files[name_of(f)] = {};
    }
    AlignedBuffer buf(kFileBytesMax + 8192);
    for (int op = 0; op < kOpsPerWorker; ++op) {
      const std::string name = name_of(static_cast<int>(pick(kFilesPerWorker)));
      std::vector<uint8_t>& content = model.files[name];
      const uint64_t file = ino[name];
      switch (pick(10)) {
        case 0: case 1: case 2: case 3: {  // write, sometimes stripe-sized and aligned
          const uint64_t off = pick(2) ? pick(kFileBytesMax / 2) : pick(8) * 4096;
          const size_t len = pick(4) == 0 ? 4 * kChunk : 1 + pick(3 * kChunk);
          std::vector<uint8_t> data(len);
          for (auto& b : data) b = static_cast<uint8_t>(rng());
          std::memcpy(buf.data(), data.data(), len);
          auto n = fs_->write(ctx, file, off, {buf.data(), len});
          if (!n || *n != len) {
            failed(name + ": write: " + (n ? std::to_string(*n) : n.error().message));
            break;
          }
          if (content.size() < off + len) content.resize(off + len, 0);
          std::memcpy(content.data() + off, data.data(), len);
          break;
        }
        case 4: case 5: {  // read a random range and compare
          const uint64_t off = pick(content.size() + 1);
          const size_t len = std::min<uint64_t>(1 + pick(200000), kFileBytesMax);
          auto n = fs_->read(ctx, file, off, len, buf.data());
          const size_t want = off < content.size() ? std::min<size_t>(len, content.size() - off) : 0;
          if (!n || *n != want ||
              (want > 0 && std::memcmp(buf.data(), content.data() + off, want) != 0))
            failed(name + ": read at " + std::to_string(off) + ": " +
                   (n ? std::to_string(*n) + " bytes, want " + std::to_string(want) + " (or wrong bytes)"
                      : n.error().message));
          break;
        }
        case 6:
          if (auto r = fs_->fsync(ctx, file); !r) failed(name + ": fsync: " + r.error().message);
          break;
        case 7: {  // truncate, down or up
          meta::SetAttr attr;
          attr.size = pick(kFileBytesMax);
          if (auto r = fs_->setattr(ctx, file, attr); !r) {
            failed(name + ": truncate: " + r.error().message);
            break;
          }
          content.resize(*attr.size, 0);
          break;
        }
        case 8: {  // punch a hole
          if (content.empty()) break;
          const uint64_t off = pick(content.size()), len = 1 + pick(50000);
          if (auto r = fs_->fallocate(ctx, file, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len);
              !r) {
            failed(name + ": punch: " + r.error().message);
            break;
          }
          std::fill(content.begin() + off, content.begin() + std::min<uint64_t>(off + len, content.size()), 0);
          break;
        }
        default: {  // replace the file: a new one written, renamed over it (or unlink + rename)
          const std::string tmp = "w" + std::to_string(w) + "-tmp";
          auto created = fs_->create(meta::kRootIno, tmp, 0644, {});
          if (!created) {
            failed(tmp + ": create: " + created.error().message);
            break;
          }
          std::vector<uint8_t> data(1 + pick(100000));
          for (auto& b : data) b = static_cast<uint8_t>(rng());
          std::memcpy(buf.data(), data.data(), data.size());
          if (auto n = fs_->write(ctx, created->ino, 0, {buf.data(), data.size()}); !n) {
            failed(tmp + ": write: " + n.error().message);
            break;
          }
          if (pick(2) && !fs_->unlink(meta::kRootIno, name)) failed(name + ": unlink");
          if (auto r = fs_->rename(ctx, meta::kRootIno, tmp, meta::kRootIno, name, 0); !r) {
            failed(name + ": rename over: " + r.error().message);
            break;
          }
          (void)fs_->release(file, true);  // the old file, maybe an orphan now
          ino[name] = created->ino;
          content = std::move(data);
          break;
        }
      }
    }
    for (const auto& [name, handle] : ino) (void)fs_->release(handle, true);
  }

  testing::TempDir dir_;
  std::unique_ptr<Filesystem> fs_;
  std::mutex failures_mu_;
  std::vector<std::string> failures_;
};

TEST_F(StressTest, ConcurrentOperationsMatchTheModelBeforeAndAfterARemount) {
  std::vector<Model> models(kWorkers);
  std::atomic<bool> done{false};
  std::atomic<uint64_t> reads{0};
  std::thread reader([&] {
    auto made = fs_->make_io_context();
    ASSERT_TRUE(made);
    AlignedBuffer buf(256 * 1024);
    std::mt19937_64 rng(7);
    while (!done) {
      const std::string name = "w" + std::to_string(rng() % kWorkers) + "-f" +
                               std::to_string(rng() % kFilesPerWorker);
      auto found = fs_->lookup(meta::kRootIno, name);
      if (!found) continue;
      auto opened = fs_->open(found->ino, O_RDONLY);
      if (!opened) {
        if (opened.error().code != ENOENT) failed(name + ": reader open: " + opened.error().message);
        continue;
      }
      auto n = fs_->read(**made, found->ino, rng() % kFileBytesMax, 200000, buf.data());
      if (!n) failed(name + ": reader: " + n.error().message);
      ++reads;
      (void)fs_->release(found->ino, false);
    }
  });
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) workers.emplace_back([&, w] { work(w, models[w]); });
  for (auto& t : workers) t.join();
  done = true;
  reader.join();
  for (const std::string& f : failures_) ADD_FAILURE() << f;
  EXPECT_GT(reads.load(), 0u);

  auto ctx = fs_->make_io_context();
  ASSERT_TRUE(ctx);
  ASSERT_TRUE(fs_->sync_all(**ctx));
  ctx->reset();
  mount(0);
  auto check_ctx = fs_->make_io_context();
  ASSERT_TRUE(check_ctx);
  AlignedBuffer buf(kFileBytesMax + 8192);
  size_t files = 0;
  for (const Model& model : models) {
    for (const auto& [name, content] : model.files) {
      auto found = fs_->lookup(meta::kRootIno, name);
      ASSERT_TRUE(found) << name;
      EXPECT_EQ(found->size, content.size()) << name;
      auto n = fs_->read(**check_ctx, found->ino, 0, kFileBytesMax, buf.data());
      ASSERT_TRUE(n) << name << ": " << n.error().message;
      ASSERT_EQ(*n, content.size()) << name;
      if (!content.empty()) {
        EXPECT_EQ(std::memcmp(buf.data(), content.data(), content.size()), 0) << name << " after the remount";
      }
      ++files;
    }
  }
  EXPECT_EQ(files, size_t{kWorkers * kFilesPerWorker});
  EXPECT_TRUE(fs_->meta().orphans().empty()) << "every replaced file was released";
}

}  // namespace
}  // namespace raidfs::fs
