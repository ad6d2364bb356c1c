// Goal: the write hole is closed. After a power cut at any member write — a stripe's batch torn,
// the members' volatile caches lost — the array is consistent (fsck clean), every fsynced byte
// reads back, nothing that was never written appears, and exactly the same bytes read back with
// one (RAID5) or two (RAID6) members gone, before the mount-time seal and after it.
// Method: a seeded workload (appends, overwrites, whole stripes from aligned buffers, fsyncs, on
// five files) runs through a Filesystem whose member I/O is a PowerCutIo; the cut is placed at
// points spread over all the workload's member writes; after each cut the daemon's state is
// dropped without a word to the array; then: fsck -n, a degraded read-only mount (open stripes
// read through their metadata parity), a normal mount (which seals them), fsck -n, another
// degraded mount — each read checked against a model of what each file may hold. Every member
// write of the workload is a cut point, for RAID5 and RAID6; RAIDFS_POWER_CUT_ROUNDS=N (long
// mode) does the same for N different workloads. To debug a failure: RAIDFS_POWER_CUT_ONLY=SEED:CUT
// replays one cut point (both in the failure's trace), RAIDFS_POWER_CUT_TRACE=1 prints each step.
// The same runs again as mounted, full stripes sealed by the sealer thread (PowerCutWithSealerTest,
// metadata in a directory): its member writes interleave with the workload's differently in each
// run, so each cut index is some instant of that run rather than a fixed one.
// A second test cuts a member's online rebuild at each of its writes: the next mount resumes it
// from its last checkpoint, and the rebuilt member's contents are proven by reading everything
// with m other members gone (a checkpoint recorded before its chunks were flushed fails it).
// Both run on an array whose metadata is in a directory and on a self-contained one, whose
// metadata (RocksDB's log, tables, manifest, the region's allocation log) lives on the members:
// there the cuts fall in metadata writes too, and the caches lose their unflushed blocks as
// they lose data. A self-contained workload makes many more member writes (each metadata commit
// writes its log block to m+1 members), so there the cut points are spread evenly over them,
// about 80 a workload (RAIDFS_POWER_CUT_EVERY=1: every one).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <filesystem>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "base/log.h"
#include "fs/array_spec.h"
#include "fs/filesystem.h"
#include "fs/fsck.h"
#include "tests/crash/power_cut_io.h"
#include "tests/support/test_array.h"

namespace raidfs::fs {
namespace {

constexpr uint32_t kMembers = 5;
constexpr uint32_t kChunk = 16384;
constexpr uint64_t kMemberBytes = 8 << 20;
constexpr uint64_t kRegionMemberBytes = 16 << 20;  // room for the region too
constexpr uint64_t kRegionBytes = 8 << 20;         // the metadata's mirrored room
constexpr uint64_t kRegionCutPoints = 80;
constexpr int kFiles = 5;
constexpr int kSteps = 50;

// What a file may hold after a crash: its content at its last successful fsync, and per byte
// instead any write made since (each may or may not have landed, a sealed stripe committing it
// or another file's fsync taking it along).
struct FileModel {
  uint64_t ino = 0;
  std::vector<uint8_t> synced;
  std::vector<std::pair<uint64_t, std::vector<uint8_t>>> since;
  std::vector<uint8_t> current;  // every write applied: the upper bound of the size

  void wrote(uint64_t offset, const std::vector<uint8_t>& data) {
    since.emplace_back(offset, data);
    if (current.size() < offset + data.size()) current.resize(offset + data.size());
    std::copy(data.begin(), data.end(), current.begin() + static_cast<ptrdiff_t>(offset));
  }
  // "" when `got` is a state the file may be in, else what is wrong with it.
  std::string judge(const std::vector<uint8_t>& got) const {
    if (got.size() < synced.size())
      return "size " + std::to_string(got.size()) + " < fsynced " + std::to_string(synced.size());
    if (got.size() > current.size())
      return "size " + std::to_string(got.size()) + " > ever written " +
             std::to_string(current.size());
    for (size_t i = 0; i < got.size(); ++i) {
      if (i < synced.size() && got[i] == synced[i]) continue;
      bool covered = false, matches = false;
      for (const auto& [off, data] : since) {
        if (i < off || i >= off + data.size()) continue;
        covered = true;
        if (data[i - off] == got[i]) {
          matches = true;
          break;
        }
      }
      if (!matches && !(!covered && i >= synced.size() && got[i] == 0))
        return "byte " + std::to_string(i) + " = " + std::to_string(got[i]) +
               " was never written there" +
               (i < synced.size() ? " (fsynced " + std::to_string(synced[i]) + ")" : "");
    }
    return "";
  }
};

// (parity, self-contained)
class PowerCutTest : public ::testing::TestWithParam<std::tuple<uint32_t, bool>> {
 protected:
  static uint32_t parity() { return std::get<0>(GetParam()); }
  static bool self_contained() { return std::get<1>(GetParam()); }
  static uint64_t member_bytes() { return self_contained() ? kRegionMemberBytes : kMemberBytes; }

  void format() {
    auto a = testing::make_test_array(dir_, kMembers, parity(), kChunk, member_bytes(), "",
                                      self_contained() ? kRegionBytes : 0);
    ASSERT_TRUE(a) << a.error().message;
    array_ = std::move(*a);
  }
  // `power`: every MemberIo the filesystem makes for its own threads (the rebuild's) is a
  // PowerCutIo in that domain, as is the test's own.
  std::unique_ptr<Filesystem> mount(bool read_only,
                                    std::shared_ptr<testing::PowerDomain> power = nullptr) {
    WrapMemberIo wrap;
    if (power) {
      wrap = [power](std::unique_ptr<MemberIo> inner) -> std::unique_ptr<MemberIo> {
        return std::make_unique<testing::PowerCutIo>(std::move(inner), power);
      };
    }
    // A self-contained array's metadata region is written through the cut's domain too.
    auto opened = open_array(array_.metadata_dir, {}, read_only, wrap);
    EXPECT_TRUE(opened) << opened.error().message;
    if (!opened) return nullptr;
    FilesystemOptions options;
    options.read_only = read_only;
    options.rebuild_checkpoint_stripes = 4;  // a cut falls between checkpoints: resumed mid-way
    // The cleaner runs only when the workload says (a clean step), so that every run of a
    // workload makes the same member writes in the same order.
    CleanerOptions cleaner = CleanerOptions::for_stripes(opened->array->geometry().stripe_count());
    cleaner.low_water = cleaner.high_water = 0;
    options.cleaner_options = cleaner;
    // Seals on the workload's thread, unless the test says: with the sealer's writes
    // interleaved by the scheduler, the runs of one workload do not make the same member writes
    // in the same order (PowerCutWithSealerTest).
    options.background_seal = background_seal_;
    // Inline: every aligned block of the workload goes to the members uncopied (the blocks the
    // stripe's parity must cover without having them in memory); with the sealer: the default.
    if (!background_seal_) options.copy_below = kBlockBytes;
    options.wrap_member_io = wrap;
    auto fs = Filesystem::open(std::move(opened->array), std::move(opened->meta), options);
    EXPECT_TRUE(fs) << fs.error().message;
    return fs ? std::move(*fs) : nullptr;
  }

  // The workload's files, created and made durable (before any cut: the model starts here).
  void create_files(Filesystem& fs) {
    files_.assign(kFiles, FileModel{});
    for (int f = 0; f < kFiles; ++f) {
      auto inode = fs.create(meta::kRootIno, "f" + std::to_string(f), 0644, {});
      ASSERT_TRUE(inode) << inode.error().message;
      files_[f].ino = inode->ino;
      ASSERT_TRUE(fs.release(inode->ino, true));
    }
    ASSERT_TRUE(fs.sync_metadata());
  }

  // Runs the workload on the created files until it ends or an operation fails (the cut).
  void run_workload(Filesystem& fs, IoContext& ctx, uint32_t seed) {
    std::mt19937 rng(seed);
    cleans_ = 0;
    auto bytes = [&](size_t n) {
      std::vector<uint8_t> v(n);
      for (auto& b : v) b = static_cast<uint8_t>(rng() | 1);  // never 0: a zero is never written
      return v;
    };
    auto fsync = [&](FileModel& f) {
      auto synced = fs.fsync(ctx, f.ino);
      if (trace_)
        std::printf("  fsync f%lld: %s\n", static_cast<long long>(&f - files_.data()),
                    synced ? "ok" : synced.error().message.c_str());
      if (!synced) return false;
      f.synced = f.current;
      f.since.clear();
      return true;
    };
    static constexpr size_t kSizes[] = {1, 700, 4095, 4096, 5000, 16384, 20000, 50000};
    const size_t data_bytes = size_t{kMembers - parity()} * kChunk;
    for (int step = 0; step < kSteps; ++step) {
      FileModel& f = files_[rng() % kFiles];
      const uint32_t kind = rng() % 10;
      if (kind < 8) {
        uint64_t offset = f.current.size();
        size_t length = kSizes[rng() % std::size(kSizes)];
        if (kind >= 5 && kind < 7 && !f.current.empty()) {  // an overwrite inside the file
          offset = rng() % f.current.size();
          length = std::min<size_t>(length, f.current.size() - offset);
        }
        if (kind == 7) {  // whole stripes from an aligned buffer: the path without a copy
          offset = offset / 4096 * 4096;
          length = data_bytes * (1 + rng() % 2) + (rng() % 2) * 3000;
        }
        const auto data = bytes(length);
        f.wrote(offset, data);  // before the call: a failed write may have landed in part
        AlignedBuffer aligned(length);
        std::copy(data.begin(), data.end(), aligned.data());
        auto n = fs.write(ctx, f.ino, offset, {aligned.data(), length});
        if (trace_)
          std::printf("step %d: f%lld write [%llu, %llu): %s\n", step,
                      static_cast<long long>(&f - files_.data()),
                      static_cast<unsigned long long>(offset),
                      static_cast<unsigned long long>(offset + length),
                      n ? "ok" : n.error().message.c_str());
        if (!n) return;
        ASSERT_EQ(*n, data.size());
        if (rng() % 2 && !fsync(f)) return;
      } else if (kind == 8 && rng() % 2) {
        // The cleaner moves the live blocks out of every stripe the overwrites left partly dead;
        // the moves commit, and the victims are freed, in the cut's domain too.
        auto cleaned = fs.control({}, "clean");
        if (trace_)
          std::printf("step %d: clean: %s\n", step,
                      cleaned ? cleaned->c_str() : cleaned.error().message.c_str());
        if (!cleaned) return;
        ++cleans_;
      } else if (!fsync(files_[rng() % kFiles])) {
        return;
      }
    }
  }

  // Reads every file; checks it against the model; returns the contents.
  std::vector<std::vector<uint8_t>> read_all(Filesystem& fs, const std::string& when) {
    auto ctx = fs.make_io_context();
    EXPECT_TRUE(ctx);
    std::vector<std::vector<uint8_t>> out;
    for (int f = 0; f < kFiles; ++f) {
      auto inode = fs.getattr(files_[f].ino);
      EXPECT_TRUE(inode) << when << ": f" << f << ": " << inode.error().message;
      if (!inode) return out;
      AlignedBuffer buf(inode->size + 4096);
      auto n = fs.read(**ctx, files_[f].ino, 0, inode->size, buf.data());
      EXPECT_TRUE(n) << when << ": f" << f << ": " << n.error().message;
      if (!n) return out;
      out.emplace_back(buf.data(), buf.data() + *n);
      const std::string wrong = files_[f].judge(out.back());
      EXPECT_EQ(wrong, "") << when << ": f" << f;
    }
    return out;
  }

  void expect_fsck_clean(const std::string& when) {
    std::string output;
    FsckOptions o;
    o.output = [&](const std::string& line) { output += line + "\n"; };
    auto s = run_fsck(array_.metadata_dir, o);
    ASSERT_TRUE(s) << when << ": " << s.error().message;
    EXPECT_EQ(s->exit_code(), 0) << when << ":\n" << output;
  }

  // Reads everything read-only with members `gone` removed, then puts them back as they were (the
  // degraded open records them missing in the others' superblocks: those are restored too).
  std::vector<std::vector<uint8_t>> read_degraded(std::vector<uint32_t> gone,
                                                  const std::string& when) {
    std::vector<std::vector<uint8_t>> saved(kMembers);
    const uint64_t backup = backup_superblock_offset(member_bytes());
    for (uint32_t i = 0; i < kMembers; ++i) {
      saved[i].resize(2 * 4096);
      const int fd = ::open(array_.paths[i].c_str(), O_RDONLY);
      EXPECT_EQ(::pread(fd, saved[i].data(), 4096, 0), 4096);
      EXPECT_EQ(::pread(fd, saved[i].data() + 4096, 4096, static_cast<off_t>(backup)), 4096);
      ::close(fd);
    }
    for (uint32_t i : gone)
      EXPECT_EQ(::rename(array_.paths[i].c_str(), (array_.paths[i] + ".gone").c_str()), 0);
    std::vector<std::vector<uint8_t>> contents;
    if (auto fs = mount(/*read_only=*/true)) contents = read_all(*fs, when);
    for (uint32_t i : gone)
      EXPECT_EQ(::rename((array_.paths[i] + ".gone").c_str(), array_.paths[i].c_str()), 0);
    for (uint32_t i = 0; i < kMembers; ++i) {
      const int fd = ::open(array_.paths[i].c_str(), O_WRONLY);
      EXPECT_EQ(::pwrite(fd, saved[i].data(), 4096, 0), 4096);
      EXPECT_EQ(::pwrite(fd, saved[i].data() + 4096, 4096, static_cast<off_t>(backup)), 4096);
      ::close(fd);
    }
    return contents;
  }

  // The member images and the metadata directory, copied aside / put back.
  void snapshot(bool restore) {
    namespace sfs = std::filesystem;
    const std::string snap = dir_.path() + "/snapshot";
    sfs::create_directories(snap);
    for (size_t i = 0; i < array_.paths.size(); ++i) {
      const std::string copy = snap + "/m" + std::to_string(i) + ".img";
      if (restore)
        sfs::copy_file(copy, array_.paths[i], sfs::copy_options::overwrite_existing);
      else
        sfs::copy_file(array_.paths[i], copy, sfs::copy_options::overwrite_existing);
    }
    if (array_.self_contained) return;  // its metadata is in the images
    const std::string meta_copy = snap + "/meta";
    const std::string& from = restore ? meta_copy : array_.metadata_dir;
    const std::string& to = restore ? array_.metadata_dir : meta_copy;
    sfs::remove_all(to);
    sfs::copy(from, to, sfs::copy_options::recursive);
  }
  // Waits until no rebuild runs; returns its phase.
  static meta::RebuildPhase wait_for_rebuild(Filesystem& fs) {
    for (int i = 0; i < 3000 && fs.rebuild_progress().state.phase == meta::RebuildPhase::kRunning; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return fs.rebuild_progress().state.phase;
  }

  testing::TempDir dir_;
  testing::TestArray array_;
  std::vector<FileModel> files_;
  uint64_t cleans_ = 0;  // clean steps the workload ran
  // Of the PowerCutIos of the last mount(…, cut_at), as each went: the most writes one saw, and
  // the cached blocks lost at the cuts.
  bool trace_ = std::getenv("RAIDFS_POWER_CUT_TRACE") != nullptr;  // print every operation
  bool background_seal_ = false;  // full stripes sealed by the sealer thread (as mounted)

  void cut_at_every_write();
};

// With the sealer: the same cuts, the sealer's member writes in the power domain too.
class PowerCutWithSealerTest : public PowerCutTest {};

TEST_P(PowerCutTest, FsyncedDataSurvivesACutAtEveryMemberWriteEvenDegraded) {
  cut_at_every_write();
}

// As mounted: full stripes are sealed by the sealer thread while the workload goes on (and an
// fsync of a file in a stripe being sealed waits for that seal). The order of the member writes
// differs from run to run, so a cut index is a different instant in each — every one still a
// state a power cut can leave (RAIDFS_POWER_CUT_ONLY replays only roughly here), and now and then
// the workload ends before the cut.
TEST_P(PowerCutWithSealerTest, FsyncedDataSurvivesACutAtEveryMemberWriteEvenDegraded) {
  background_seal_ = true;
  cut_at_every_write();
}

void PowerCutTest::cut_at_every_write() {
  const uint32_t parity = PowerCutTest::parity();
  const bool every = !self_contained() || std::getenv("RAIDFS_POWER_CUT_EVERY") != nullptr;
  set_log_level(LogLevel::kWarning);  // one "sealed N stripes" line per mount is noise here
  const char* env = std::getenv("RAIDFS_POWER_CUT_ROUNDS");
  const uint64_t rounds = env ? std::max<uint64_t>(1, std::strtoull(env, nullptr, 10)) : 1;
  uint64_t cuts = 0, torn = 0, lost_blocks = 0, missed = 0;
  for (uint64_t round = 0; round < rounds && !HasFailure(); ++round) {
    uint32_t seed = static_cast<uint32_t>(1000 + parity + 7919 * round);
    uint64_t only_cut = UINT64_MAX;  // RAIDFS_POWER_CUT_ONLY=SEED:CUT replays one cut point
    if (const char* only = std::getenv("RAIDFS_POWER_CUT_ONLY"))
      std::sscanf(only, "%u:%lu", &seed, &only_cut);

    // A run without a cut: how many member writes the workload makes, and that it works at all.
    format();
    uint64_t total_writes = 0;
    {
      auto power = std::make_shared<testing::PowerDomain>();
      auto fs = mount(false, power);  // the filesystem's own threads' writes count too
      ASSERT_TRUE(fs);
      create_files(*fs);
      const uint64_t setup_writes = power->writes;
      auto* io = new testing::PowerCutIo(std::move(*fs->array().make_member_io()), power);
      IoContext ctx(std::unique_ptr<MemberIo>(io), fs->array());
      run_workload(*fs, ctx, seed);
      ASSERT_FALSE(io->cut());
      total_writes = io->writes_seen() - setup_writes;
      EXPECT_GT(fs->stats().bytes_direct_write, 0u) << "the workload takes the path without a copy";
      // (With the sealer, a clean step may come while the stripe it would free is still being
      // sealed, so whether one frees anything is timing: the inline runs make sure.)
      const std::string json = fs->status_json();
      if (!background_seal_) {
        EXPECT_EQ(json.find("\"stripes_cleaned\": 0,"), std::string::npos)
            << "the workload's " << cleans_ << " clean steps freed no stripe: " << json;
      }
      ASSERT_TRUE(fs->sync_all(ctx));
    }
    for (auto& f : files_) {
      f.synced = f.current;
      f.since.clear();
    }
    if (auto fs = mount(false)) read_all(*fs, "after a run without a cut");
    ASSERT_GT(total_writes, 40u);

    // The cut before each member write of the workload in turn (and one after the last); on a
    // self-contained array, before every stride-th, from a different first one each round.
    const uint64_t stride = every ? 1 : std::max<uint64_t>(1, total_writes / kRegionCutPoints);
    for (uint64_t cut = round % stride; cut <= total_writes && !HasFailure(); cut += stride, ++cuts) {
      if (only_cut != UINT64_MAX && cut != only_cut) continue;
      const std::string when = "workload " + std::to_string(seed) + ", cut before member write " +
                               std::to_string(cut) + " of " + std::to_string(total_writes);
      SCOPED_TRACE(when);
      format();
      {
        auto power = std::make_shared<testing::PowerDomain>();
        auto fs = mount(false, power);
        ASSERT_TRUE(fs);
        create_files(*fs);
        auto* io = new testing::PowerCutIo(std::move(*fs->array().make_member_io()), power);
        io->cut_before_write(power->writes + cut, static_cast<uint32_t>(cuts));
        IoContext ctx(std::unique_ptr<MemberIo>(io), fs->array());
        run_workload(*fs, ctx, seed);
        // On a self-contained array RocksDB's own threads write too, and the sealer's writes
        // interleave with the workload's: not always the same number at the same moment, so a
        // cut near the end may find the workload done.
        if (self_contained() || background_seal_) {
          missed += io->cut() ? 0 : 1;
        } else {
          ASSERT_TRUE(io->cut() || cut == total_writes);
        }
        torn += io->torn_batch() ? 1 : 0;
        lost_blocks += io->blocks_lost();
      }  // the daemon is gone: nothing more reaches the array
      expect_fsck_clean(when + ", as the cut left it");
      std::vector<uint32_t> gone1, gone2;
      for (uint32_t j = 0; j < parity; ++j) {
        gone1.push_back(static_cast<uint32_t>((cut + j) % kMembers));
        gone2.push_back(static_cast<uint32_t>((cut + 2 + j) % kMembers));
      }
      const auto before_seal = read_degraded(gone1, when + ", degraded, before the seal");
      std::vector<std::vector<uint8_t>> healthy;
      if (auto fs = mount(false)) {  // seals what the cut left open
        healthy = read_all(*fs, when + ", after the seal");
        auto ctx = fs->make_io_context();
        ASSERT_TRUE(fs->sync_all(**ctx));
      }
      // On a self-contained array a metadata write the cut caught may have reached some copies
      // only: opened without them (degraded) the file may be a prefix of what a full open finds
      // — both states the model allows, neither synced. The read-write open then brings every
      // copy up to the same state, so after it degraded and healthy reads must agree again.
      if (!self_contained()) {
        EXPECT_EQ(before_seal, healthy) << "degraded and healthy reads differ";
      }
      expect_fsck_clean(when + ", after the seal");
      EXPECT_EQ(read_degraded(gone2, when + ", degraded, after the seal"), healthy);
    }
  }
  std::printf("%llu cut points in %llu workload(s): %llu tore a batch, %llu cached blocks lost\n",
              static_cast<unsigned long long>(cuts), static_cast<unsigned long long>(rounds),
              static_cast<unsigned long long>(torn), static_cast<unsigned long long>(lost_blocks));
  EXPECT_GT(torn, 0u);
  EXPECT_GT(lost_blocks, 0u);
  EXPECT_LE(missed * 10, cuts) << missed << " of " << cuts << " cut points came after the workload";
}
// Rebuild writes under a power cut: member 2 failed and a workload written without it; then its
// rebuild is cut before each of the rebuild's member writes in turn, the members' volatile caches
// lost. The next mount resumes the rebuild from its last checkpoint and finishes it; then every
// file reads back exactly, fsck is clean, and the same bytes read back with m *other* members
// gone — which only a member really rebuilt can give.
TEST_P(PowerCutTest, ARebuildCutAtEveryWriteResumesAndTheMemberHoldsTheData) {
  const uint32_t parity = PowerCutTest::parity();
  const bool every = !self_contained() || std::getenv("RAIDFS_POWER_CUT_EVERY") != nullptr;
  set_log_level(LogLevel::kError);
  const uint32_t failed = 2;
  format();
  {
    auto fs = mount(false);
    ASSERT_TRUE(fs);
    auto ctx = fs->make_io_context();
    ASSERT_TRUE(ctx);
    ASSERT_TRUE(fs->control(Caller{}, "fail " + std::to_string(failed)));
    create_files(*fs);
    run_workload(*fs, **ctx, 4242 + parity);
    ASSERT_TRUE(fs->sync_all(**ctx));
  }
  for (auto& f : files_) {
    f.synced = f.current;
    f.since.clear();
  }
  snapshot(/*restore=*/false);
  // A rebuild without a cut: how many member writes it makes.
  uint64_t total_writes = 0;
  {
    auto power = std::make_shared<testing::PowerDomain>();
    auto fs = mount(false, power);
    ASSERT_TRUE(fs);
    const uint64_t mount_writes = power->writes;  // a self-contained array's metadata opening
    ASSERT_TRUE(fs->control(Caller{}, "rebuild " + std::to_string(failed)));
    ASSERT_EQ(wait_for_rebuild(*fs), meta::RebuildPhase::kFinished);
    fs.reset();
    total_writes = power->writes - mount_writes;
  }
  ASSERT_GT(total_writes, 10u);
  std::vector<uint32_t> gone;
  for (uint32_t j = 0; j < parity; ++j) gone.push_back((failed + 1 + j) % kMembers);
  uint64_t cuts = 0, lost_blocks = 0, resumed_mid_way = 0;
  const uint64_t stride = every ? 1 : std::max<uint64_t>(1, total_writes / kRegionCutPoints);
  for (uint64_t cut = 0; cut <= total_writes && !HasFailure(); cut += stride, ++cuts) {
    const std::string when = "rebuild cut before member write " + std::to_string(cut) + " of " +
                             std::to_string(total_writes);
    SCOPED_TRACE(when);
    snapshot(/*restore=*/true);
    {
      auto power = std::make_shared<testing::PowerDomain>();
      power->rng.seed(static_cast<uint32_t>(cut) * 31 + 7);
      auto fs = mount(false, power);
      ASSERT_TRUE(fs);
      {
        std::lock_guard lock(power->mu);
        power->cut_at = power->writes + cut;
      }
      // Starting it records it in the metadata: on a self-contained array the cut may come there.
      if (auto started = fs->control(Caller{}, "rebuild " + std::to_string(failed)); !started) {
        std::lock_guard lock(power->mu);
        ASSERT_TRUE(power->cut) << started.error().message;
      }
      wait_for_rebuild(*fs);
      fs.reset();  // the daemon is gone: nothing more reaches the array
      lost_blocks += power->blocks_lost;
    }
    expect_fsck_clean(when + ", as the cut left it");
    if (auto opened = open_array(array_.metadata_dir, {}, /*read_only=*/true)) {
      auto saved = opened->meta->rebuild_state();
      if (saved && *saved && (*saved)->phase == meta::RebuildPhase::kRunning && (*saved)->cursor > 0)
        ++resumed_mid_way;
    }
    std::vector<std::vector<uint8_t>> healthy;
    if (auto fs = mount(false)) {  // resumes the rebuild from its last checkpoint
      EXPECT_EQ(wait_for_rebuild(*fs), meta::RebuildPhase::kFinished);
      EXPECT_EQ(fs->array().member_state(failed), MemberState::kActive);
      healthy = read_all(*fs, when + ", after the resumed rebuild");
      auto ctx = fs->make_io_context();
      ASSERT_TRUE(fs->unmount(**ctx));
    }
    expect_fsck_clean(when + ", after the resumed rebuild");
    EXPECT_EQ(read_degraded(gone, when + ", with other members gone"), healthy);
  }
  std::printf("%llu rebuild cut points: %llu resumed from a checkpoint, %llu cached blocks lost\n",
              static_cast<unsigned long long>(cuts), static_cast<unsigned long long>(resumed_mid_way),
              static_cast<unsigned long long>(lost_blocks));
  EXPECT_GT(lost_blocks, 0u) << "the cuts lost rebuild writes that were not flushed";
  EXPECT_GT(resumed_mid_way, 0u) << "some cuts came after a checkpoint";
}

INSTANTIATE_TEST_SUITE_P(Raid5And6, PowerCutWithSealerTest,
                         ::testing::Combine(::testing::Values(1u, 2u), ::testing::Values(false)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) == 1 ? "Raid5" : "Raid6");
                         });
INSTANTIATE_TEST_SUITE_P(Raid5And6, PowerCutTest,
                         ::testing::Combine(::testing::Values(1u, 2u), ::testing::Bool()),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) == 1 ? "Raid5" : "Raid6") +
                                  (std::get<1>(info.param) ? "SelfContained" : "MetadataDir");
                         });

}  // namespace
}  // namespace raidfs::fs
