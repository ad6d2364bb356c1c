// raidfs-meta-bench: throughput of the metadata store (meta/) on a real RocksDB.
//
// Measures creates, lookups and readdir in one large directory, then write-commits (one 4 KiB
// extent each, at random offsets of a per-thread file, so old extents split and stripe live
// counts drop) with 1, 8 and 64 writer threads, for each durability: none (WAL in the page cache),
// group (our leader/follower WAL fsync), each (RocksDB WriteOptions::sync inside the store mutex);
// then the sealer's commit of a stripe of 4 KiB random writes (seal), and the lookups of a 4 KiB
// random read (read). --mode runs one of them.
// Usage: raidfs-meta-bench [DIR] [--entries N] [--seconds S] [--mode none|group|each|seal|read]
//                          [--region]
//   DIR defaults to /tmp; a fresh database is made in a subdirectory and removed afterwards.
//   --region: the database in the metadata region of a self-contained array instead (RAID6 over
//   six 1 GiB sparse images in that subdirectory, 256 MiB of region mirrored on three), so the
//   two kinds are compared on the same medium; it also prints the region's bytes written per
//   commit (every copy).
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "fs/array_spec.h"
#include "meta/fs_meta.h"
#include "meta/region_fs.h"
#include "raid/array.h"

using namespace raidfs::meta;
using raidfs::kBlockBytes;
using Clock = std::chrono::steady_clock;

namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "raidfs-meta-bench: %s\n", what.c_str());
  std::exit(1);
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

Clock::duration duration(double seconds) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

struct WriterStats {
  uint64_t commits = 0;
};

// One writer: commits 4 KiB extents into its own open stripe, sealing and allocating as it fills.
void writer(FsMeta& meta, uint64_t ino, Durability durability, Clock::time_point deadline,
            uint64_t seed, WriterStats& out) {
  std::mt19937_64 rng(seed);
  const uint32_t stripe_blocks = meta.store().super().stripe_data_bytes / kBlockBytes;
  std::optional<Stripe> open;
  while (Clock::now() < deadline) {
    std::vector<Stripe> stripes;
    if (!open || open->filled_bytes / kBlockBytes == stripe_blocks) {
      if (open) {
        open->state = StripeState::kSealed;
        stripes.push_back(*open);
      }
      auto ref = meta.allocate_stripe();
      if (!ref) die(ref.error().message);
      open = Stripe{};
      open->id = ref->id;
      open->generation = ref->generation;
      open->state = StripeState::kOpen;
    }
    const uint32_t at = open->filled_bytes;
    open->filled_bytes += kBlockBytes;
    open->block_crcs.push_back(static_cast<uint32_t>(rng()));
    stripes.push_back(*open);
    Extent e{(rng() % 256) * kBlockBytes, open->id, at, kBlockBytes};
    auto r = meta.commit_write(ino, {&e, 1}, stripes, durability);
    if (!r) die(r.error().message);
    ++out.commits;
  }
}

// Commits `extents` of file `ino` (their stripe offsets set, stripe ids 0) into a new stripe,
// full and sealed, with made-up checksums.
void commit_stripe(FsMeta& meta, uint64_t ino, std::vector<Extent> extents, std::mt19937_64& rng) {
  const uint32_t blocks = meta.store().super().stripe_data_bytes / kBlockBytes;
  auto ref = meta.allocate_stripe();
  if (!ref) die(ref.error().message);
  Stripe record;
  record.id = ref->id;
  record.generation = ref->generation;
  record.state = StripeState::kSealed;
  record.filled_bytes = blocks * kBlockBytes;
  for (uint32_t b = 0; b < blocks; ++b) record.block_crcs.push_back(static_cast<uint32_t>(rng()));
  for (Extent& e : extents) e.stripe_id = ref->id;
  const FileExtents file{ino, std::move(extents), false, std::nullopt};
  if (auto r = meta.commit_files({&file, 1}, {&record, 1}); !r) die(r.error().message);
}

// File `ino` made 512 MiB long by whole stripes, as sequential writes lay it out. Returns its
// size in blocks.
uint64_t lay_out(FsMeta& meta, uint64_t ino, std::mt19937_64& rng) {
  const uint32_t blocks = meta.store().super().stripe_data_bytes / kBlockBytes;
  const uint64_t file_blocks = (uint64_t{512} << 20) / kBlockBytes / blocks * blocks;
  for (uint64_t b = 0; b < file_blocks; b += blocks)
    commit_stripe(meta, ino, {Extent{b * kBlockBytes, 0, 0, blocks * kBlockBytes}}, rng);
  return file_blocks;
}

// The sealer's commit under 4 KiB random writes: a stripe of blocks, each from a random place
// of one 512 MiB file laid out by sequential writes first, committed sealed in one batch (the
// file's extents replaced one by one, the old stripes' live counts dropped). Prints the time per
// commit and per block.
void seal_commits(FsMeta& meta, uint64_t ino, double seconds) {
  const uint32_t blocks = meta.store().super().stripe_data_bytes / kBlockBytes;
  std::mt19937_64 rng(11);
  const uint64_t file_blocks = lay_out(meta, ino, rng);
  uint64_t commits = 0;
  const auto t = Clock::now();
  const auto deadline = t + duration(seconds);
  while (Clock::now() < deadline) {
    std::vector<uint64_t> picked;
    while (picked.size() < blocks) {
      const uint64_t b = rng() % file_blocks;
      if (std::find(picked.begin(), picked.end(), b) == picked.end()) picked.push_back(b);
    }
    std::sort(picked.begin(), picked.end());
    std::vector<Extent> extents;
    for (uint32_t i = 0; i < blocks; ++i)
      extents.push_back(Extent{picked[i] * kBlockBytes, 0, i * kBlockBytes, kBlockBytes});
    commit_stripe(meta, ino, std::move(extents), rng);
    ++commits;
  }
  const double elapsed = seconds_since(t);
  std::printf("%-34s %10.0f blocks/s   %.0f us per commit of %u blocks\n",
              "seal-commit (4 KiB random)", commits * blocks / elapsed, elapsed * 1e6 / commits,
              blocks);
}

// The metadata a 4 KiB read of a random block looks up (Filesystem::read): the file's inode, the
// extent under the block, that extent's stripe — on a 512 MiB file laid out by whole stripes,
// read at random. Prints the lookups' rate on one thread (the RecordCache answers them all).
void read_lookups(FsMeta& meta, uint64_t ino, double seconds) {
  std::mt19937_64 rng(13);
  const uint64_t file_blocks = lay_out(meta, ino, rng);
  uint64_t reads = 0;
  const auto t = Clock::now();
  const auto deadline = t + duration(seconds);
  while (Clock::now() < deadline) {
    for (int n = 0; n < 1000; ++n, ++reads) {
      const uint64_t offset = rng() % file_blocks * kBlockBytes;
      if (auto inode = meta.getattr(ino); !inode) die(inode.error().message);
      auto maps = meta.map_extents(ino, offset, offset + kBlockBytes);
      if (!maps || maps->size() != 1 || maps->front().hole) die("a read found no extent");
      if (auto stripe = meta.get_stripe(maps->front().stripe_id); !stripe)
        die(stripe.error().message);
    }
  }
  const double elapsed = seconds_since(t);
  std::printf("%-34s %10.0f reads/s   %.2f us per read\n", "read-lookups (4 KiB random)",
              reads / elapsed, elapsed * 1e6 / reads);
}

}  // namespace

int main(int argc, char** argv) {
  std::string base = "/tmp";
  int entries = 50000;
  double seconds = 2.0;
  std::string only;  // --mode none|group|each|seal|read: run only that one
  bool region = false;
  for (int n = 1; n < argc; ++n) {
    std::string a = argv[n];
    if (a == "--entries" && n + 1 < argc) entries = std::atoi(argv[++n]);
    else if (a == "--seconds" && n + 1 < argc) seconds = std::atof(argv[++n]);
    else if (a == "--mode" && n + 1 < argc) only = argv[++n];
    else if (a == "--region") region = true;
    else if (a == "--help" || a == "-h") {
      std::printf("usage: raidfs-meta-bench [DIR] [--entries N] [--seconds S] [--mode none|group|each|seal|read] [--region]\n");
      return 0;
    } else base = a;
  }
  std::string path = base + "/raidfs-meta-bench-XXXXXX";
  if (!mkdtemp(path.data())) die("cannot make a directory in " + base);

  std::unique_ptr<raidfs::Array> array;
  raidfs::Result<std::unique_ptr<FsMeta>> opened = raidfs::fail(EINVAL, "not opened");
  if (region) {
    std::vector<std::string> images;
    for (int i = 0; i < 6; ++i) images.push_back(path + "/m" + std::to_string(i) + ".img");
    for (const std::string& image : images) {
      if (FILE* f = std::fopen(image.c_str(), "w")) std::fclose(f);
      std::filesystem::resize_file(image, uint64_t{1} << 30);
    }
    raidfs::FormatOptions fo;
    fo.meta_region_bytes = raidfs::MetaRegion::member_bytes_for(uint64_t{256} << 20, 6, 3);
    if (auto sb = raidfs::Array::format(images, fo); !sb) die(sb.error().message);
    auto a = raidfs::Array::open(images);
    if (!a) die(a.error().message);
    array = std::move(*a);
    opened = raidfs::fs::open_metadata(*array, "", /*create=*/true);
  } else {
    StoreOptions options;
    options.path = path;
    options.array_uuid[0] = 1;
    options.create_if_missing = true;
    options.stripe_count = 1 << 22;
    options.stripe_data_bytes = 64 * kBlockBytes;
    opened = FsMeta::open(options);
  }
  if (!opened) die(opened.error().message);
  FsMeta& meta = **opened;
  auto region_written = [&]() -> uint64_t {
    const auto& r = meta.store().region();
    return r ? r->usage().written_bytes : 0;
  };
  std::printf("raidfs-meta-bench on %s%s (%d entries, %.1f s per write configuration)\n",
              path.c_str(), region ? ", in a metadata region (3 copies)" : "", entries, seconds);

  auto dir = meta.create(kRootIno, "dir", CreateArgs{S_IFDIR | 0755, 0, 0, 0, {}, {}, {}});
  if (!dir) die(dir.error().message);
  auto t = Clock::now();
  for (int n = 0; n < entries; ++n)
    if (auto r = meta.create(dir->ino, "file-" + std::to_string(n), CreateArgs{S_IFREG | 0644, 0, 0, 0, {}, {}, {}}); !r)
      die(r.error().message);
  std::printf("%-34s %10.0f ops/s\n", "create (no sync)", entries / seconds_since(t));

  std::mt19937 rng(1);
  t = Clock::now();
  for (int n = 0; n < entries; ++n)
    if (auto r = meta.lookup(dir->ino, "file-" + std::to_string(rng() % entries)); !r)
      die(r.error().message);
  std::printf("%-34s %10.0f ops/s\n", "lookup (random, 1 thread)", entries / seconds_since(t));

  t = Clock::now();
  uint64_t cookie = 0, listed = 0;
  for (;;) {
    auto batch = meta.readdir(dir->ino, cookie, 1000);
    if (!batch) die(batch.error().message);
    listed += batch->entries.size();
    if (!batch->entries.empty()) cookie = batch->entries.back().cookie;
    if (batch->end) break;
  }
  if (listed != uint64_t(entries)) die("readdir listed " + std::to_string(listed));
  std::printf("%-34s %10.0f entries/s\n", "readdir (batches of 1000)", listed / seconds_since(t));

  std::vector<uint64_t> files;
  for (int n = 0; n < 64; ++n) {
    auto f = meta.create(kRootIno, "w" + std::to_string(n), CreateArgs{S_IFREG | 0644, 0, 0, 0, {}, {}, {}});
    if (!f) die(f.error().message);
    files.push_back(f->ino);
  }
  const std::pair<Durability, const char*> modes[] = {
      {Durability::kNone, "none"}, {Durability::kGroupSync, "group"}, {Durability::kSyncEach, "each"}};
  for (auto [durability, name] : modes) {
    if (!only.empty() && only != name) continue;
    for (int threads : {1, 8, 64}) {
      // Start each configuration from a quiet disk: no dirty WAL left by the previous one.
      if (auto r = meta.store().sync(meta.store().latest_sequence()); !r) die(r.error().message);
      ::sync();
      const StoreStats before = meta.store().stats();
      const uint64_t written_before = region_written();
      std::vector<WriterStats> stats(threads);
      std::vector<std::thread> pool;
      const auto deadline = Clock::now() + duration(seconds);
      t = Clock::now();
      for (int n = 0; n < threads; ++n)
        pool.emplace_back(writer, std::ref(meta), files[n], durability, deadline, n + 7,
                          std::ref(stats[n]));
      for (auto& th : pool) th.join();
      const double elapsed = seconds_since(t);
      uint64_t commits = 0;
      for (auto& s : stats) commits += s.commits;
      const uint64_t fsyncs = meta.store().stats().wal_syncs - before.wal_syncs;
      char label[64];
      std::snprintf(label, sizeof label, "write-commit sync=%s threads=%d", name, threads);
      std::printf("%-34s %10.0f ops/s", label, commits / elapsed);
      if (durability == Durability::kGroupSync)
        std::printf("   %.1f commits per WAL fsync", fsyncs ? double(commits) / fsyncs : 0.0);
      if (region)
        std::printf("   %.0f region bytes per commit",
                    commits ? double(region_written() - written_before) / commits : 0.0);
      std::printf("\n");
    }
  }
  if (only.empty() || only == "seal") {
    auto f = meta.create(kRootIno, "sealed", CreateArgs{S_IFREG | 0644, 0, 0, 0, {}, {}, {}});
    if (!f) die(f.error().message);
    seal_commits(meta, f->ino, seconds);
  }
  if (only.empty() || only == "read") {
    auto f = meta.create(kRootIno, "read", CreateArgs{S_IFREG | 0644, 0, 0, 0, {}, {}, {}});
    if (!f) die(f.error().message);
    read_lookups(meta, f->ino, seconds);
  }
  opened->reset();
  array.reset();
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  return 0;
}
