// fsck: the driver — opening, pass 1 (superblocks), pass 2 (metadata), then the stripe pass
// (fsck_stripes.cc), and the summary. See fsck.h.
#include "fs/fsck.h"

#include "meta/region_fs.h"

#include <chrono>

#include "fs/array_spec.h"
#include "fs/fsck_internal.h"
#include "meta/checker.h"
#include "meta/repair.h"
#include "raid/array_scrub.h"

namespace raidfs::fs {
namespace {

using fsck_detail::FsckLog;

std::string level_name(uint32_t m) { return m == 1 ? "RAID5" : m == 2 ? "RAID6" : "triple parity"; }

// Pass 1: the superblock copies on the members.
void check_superblocks(Array& array, FsckLog& log) {
  log.line("pass 1: superblocks");
  for (const SuperblockIssue& issue : array.check_superblocks(log.repairing()))
    log.found_and_fixed(issue.what + (issue.repaired ? ": rewritten" : ""), issue.repaired);
}

// Pass 2: the metadata — meta::check(), and meta::repair() when repairing and it found anything.
Result<void> check_metadata(meta::Store& store, FsckLog& log) {
  log.line("pass 2: metadata (namespace, extents, stripe records, counters)");
  RAIDFS_TRY(auto findings, meta::check(store));
  for (const meta::Finding& f : findings)
    log.problem(std::string(meta::finding_kind_name(f.kind)) + ": " + f.detail);
  if (findings.empty()) return {};
  if (!log.repairing()) {
    log.left(std::to_string(findings.size()) + " metadata problem(s) not fixed (-n)",
             findings.size());
    return {};
  }
  const auto policy = log.preening() ? meta::RepairPolicy::kSafe : meta::RepairPolicy::kAll;
  RAIDFS_TRY(auto actions, meta::repair(store, policy));
  for (const meta::RepairAction& a : actions) {
    if (a.applied)
      log.fixed(a.text);
    else
      log.line("not fixed without -y: " + a.text);
  }
  RAIDFS_TRY(auto remaining, meta::check(store));
  for (const meta::Finding& f : remaining)
    log.left(std::string(meta::finding_kind_name(f.kind)) + ": " + f.detail);
  return {};
}

Result<std::unique_ptr<meta::Store>> open_store(Array& array, const std::string& metadata_dir,
                                                bool repairing) {
  Superblock sb = array.superblock();
  sb.metadata_dir = metadata_dir;
  RAIDFS_TRY(const meta::StoreOptions so,
             store_options(array, metadata_dir, /*create=*/false, /*read_only=*/!repairing));
  auto store = meta::Store::open(so);
  if (!store) return fail_with(store.error(), so.region ? "" : sb.metadata_dir + ": ");
  const meta::Super& super = (*store)->super();
  RAIDFS_CHECK(check_metadata_geometry(super, sb));
  return store;
}

// Every copy of every block the metadata region uses: the journal's and each file's. A bad copy
// is rewritten from a good one (-p and -y: it loses nothing); a block with no good copy is lost.
Result<void> check_metadata_region(meta::RegionFs& region, FsckLog& log) {
  const bool repair = log.repairing();
  const meta::RegionFs::Usage u = region.usage();
  log.line("pass 1b: the metadata region (" + std::to_string(u.files) + " files, " +
           human_bytes(u.bytes - u.free_bytes) + " used of " + human_bytes(u.bytes) + ", " +
           std::to_string(u.copies) + " copies of each block)");
  RAIDFS_TRY(const meta::RegionFs::ScrubReport report, region.scrub(repair));
  log.note("metadata region: " + std::to_string(report.blocks) + " blocks, " +
           std::to_string(report.bad_copies) + " bad copies, " +
           std::to_string(report.unreadable_copies) + " on members that cannot be read");
  if (report.behind_copies > 0)
    log.line("metadata region: " + std::to_string(report.behind_copies) +
             " copies behind the others (writes a crash kept from them; " +
             (repair ? "brought up to date)" : "the next read-write mount brings them up to date)"));
  for (const std::string& p : report.problems) log.note("metadata region: " + p);
  if (report.lost_blocks > 0)
    log.found_and_fixed("metadata region: " + std::to_string(report.lost_blocks) +
                            " blocks with no good copy (" + report.problems.front() + ")",
                        /*done=*/false, report.lost_blocks);
  if (report.bad_copies > 0)
    log.found_and_fixed("metadata region: " + std::to_string(report.bad_copies) +
                            " bad copies" + (repair ? ", rewritten from good ones" : ""),
                        report.repaired == report.bad_copies, report.bad_copies);
  return {};
}

}  // namespace

Result<FsckSummary> run_fsck(const std::string& spec, const FsckOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  FsckSummary summary;
  FsckLog log(options, summary);

  std::string metadata_dir;
  auto opened = open_members(spec, {}, /*record_states=*/options.mode != FsckMode::kCheck,
                             metadata_dir);  // -n writes nothing
  if (!opened) {
    if (opened.error().code == EBUSY)
      return fail(
          EBUSY, spec + " is in use (mounted?): unmount it first (" + opened.error().message + ")");
    return std::unexpected(opened.error());
  }
  std::unique_ptr<Array> array = std::move(*opened);
  const Geometry& g = array->geometry();
  const Superblock sb = array->superblock();
  log.line("array " + uuid_to_string(sb.array_uuid) +
           (sb.label.empty() ? "" : " (" + sb.label + ")") + ": " + level_name(g.parity_count()) +
           ", " + std::to_string(g.member_count()) + " members, " + std::to_string(g.data_count()) +
           "+" + std::to_string(g.parity_count()) + " chunks of " +
           std::to_string(g.chunk_bytes() / 1024) + " KiB, " + std::to_string(g.stripe_count()) +
           " stripes; metadata " +
           (sb.self_contained() ? std::string("on the members") : "in " + metadata_dir));
  for (uint32_t i = 0; i < g.member_count(); ++i)
    log.note("member " + std::to_string(i) + ": " +
             (array->member_path(i).empty() ? std::string("(not given)") : array->member_path(i)) +
             ", " + member_state_name(array->member_state(i)));
  for (const std::string& w : array->warnings()) log.warning(w);
  summary.members_unavailable = array->unavailable_count();
  if (summary.members_unavailable > 0)
    log.warning("the array is degraded: " + std::to_string(summary.members_unavailable) +
                " member(s) unavailable; what they held is checked through parity; "
                "`raidfs rebuild` or `raidfs replace` on the mounted array brings them back");

  check_superblocks(*array, log);
  RAIDFS_TRY(auto store, open_store(*array, metadata_dir, log.repairing()));
  if (store->region()) RAIDFS_CHECK(check_metadata_region(*store->region(), log));
  RAIDFS_CHECK(check_metadata(*store, log));
  log.line("pass 3: stripes (block checksums, parity)");
  RAIDFS_CHECK(fsck_detail::check_stripes(*array, *store, log, summary));
  RAIDFS_CHECK(store->sync(store->latest_sequence()));

  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  char line[512];
  std::snprintf(line, sizeof line,
                "stripes: %llu sealed, %llu open, %llu free; %llu blocks verified, %llu rebuilt, "
                "%llu lost; %llu parity rows checked, %llu wrong; %.1f GiB read in %.1f s",
                static_cast<unsigned long long>(summary.stripes_sealed),
                static_cast<unsigned long long>(summary.stripes_open),
                static_cast<unsigned long long>(summary.stripes_free),
                static_cast<unsigned long long>(summary.blocks_verified),
                static_cast<unsigned long long>(summary.blocks_rebuilt),
                static_cast<unsigned long long>(summary.blocks_lost),
                static_cast<unsigned long long>(summary.parity_rows_checked),
                static_cast<unsigned long long>(summary.parity_rows_bad),
                static_cast<double>(summary.bytes_read) / (1 << 30), seconds);
  log.line(line);
  return summary;
}

}  // namespace raidfs::fs
