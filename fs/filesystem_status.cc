// Filesystem: what it tells about itself — counters, the status text, space. See filesystem.h.
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <sstream>
#include <utility>

#include "base/log.h"
#include "base/units.h"
#include "fs/cleaner.h"
#include "fs/filesystem.h"
#include "fs/scrubber.h"
#include "meta/region_fs.h"
#include "fs/stripe_writer.h"

namespace raidfs::fs {
namespace {

constexpr uint64_t kBlock = kBlockBytes;

// A string as a JSON string literal.
std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char esc[8];
          std::snprintf(esc, sizeof esc, "\\u%04x", c);
          out += esc;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

const char* phase_name(meta::ScrubPhase p) {
  switch (p) {
    case meta::ScrubPhase::kNone: return "never";
    case meta::ScrubPhase::kRunning: return "running";
    case meta::ScrubPhase::kStopped: return "stopped";
    case meta::ScrubPhase::kFinished: return "finished";
  }
  return "unknown";
}

std::string utc_time(int64_t ns) {
  const time_t t = static_cast<time_t>(ns / 1000000000);
  tm parts{};
  gmtime_r(&t, &parts);
  char out[32];
  std::strftime(out, sizeof out, "%Y-%m-%d %H:%M:%S UTC", &parts);
  return out;
}

const char* rebuild_phase_name(meta::RebuildPhase p) {
  switch (p) {
    case meta::RebuildPhase::kNone: return "never";
    case meta::RebuildPhase::kRunning: return "running";
    case meta::RebuildPhase::kFinished: return "finished";
    case meta::RebuildPhase::kFailed: return "failed";
  }
  return "unknown";
}

int rebuild_percent(const meta::RebuildState& s) {
  if (s.phase == meta::RebuildPhase::kFinished) return 100;
  if (s.stripes_total == 0) return 0;
  return static_cast<int>(
      std::min<uint64_t>(99, (s.stripes_rebuilt + s.stripes_skipped) * 100 / s.stripes_total));
}

// Whole percent done: 100 only once finished.
int percent_done(const meta::ScrubState& s) {
  if (s.phase == meta::ScrubPhase::kFinished) return 100;
  if (s.stripes_total == 0) return 0;
  return static_cast<int>(std::min<uint64_t>(99, s.stripes_checked * 100 / s.stripes_total));
}

}  // namespace

std::vector<std::string> Filesystem::warnings() const {
  std::lock_guard lock(warnings_mu_);
  return warnings_;
}

FilesystemStats Filesystem::stats() const {
  const WriterStats w = writer_->stats();
  FilesystemStats s;
  s.reconstructed_blocks = counters_.reconstructed;
  s.corrupt_blocks = counters_.corrupt;
  s.healed_blocks = counters_.healed;
  s.unreadable_reads = counters_.unreadable;
  s.stripes_sealed = w.stripes_sealed;
  s.partial_flushes = w.partial_flushes;
  s.bytes_copied_read = counters_.copied_read;
  s.bytes_copied_write = w.bytes_copied;
  s.bytes_direct_write = w.bytes_direct;
  s.seal_waits = w.seal_waits;
  return s;
}

std::string Filesystem::status_text() const {
  const Geometry& g = array_->geometry();
  const Superblock sb = array_->superblock();
  const FsStatfs st = statfs();
  const FilesystemStats c = stats();
  const uint32_t m = g.parity_count();
  std::ostringstream out;
  out << "array: " << uuid_to_string(sb.array_uuid);
  if (!sb.label.empty()) out << " (" << sb.label << ")";
  out << "\n";
  out << "level: " << (m == 1 ? "raid5" : m == 2 ? "raid6" : "triple parity") << ", "
      << g.member_count() << " members, " << g.data_count() << "+" << m << " chunks of "
      << human_bytes(g.chunk_bytes()) << "\n";
  const uint32_t down = array_->unavailable_count();
  out << "state: "
      << (down == 0 ? "healthy" : down <= m ? "degraded" : "failed (more members lost than parity)")
      << (down ? " (" + std::to_string(down) + " of " + std::to_string(g.member_count()) +
                     " members unavailable)"
               : std::string())
      << (options_.read_only ? ", read-only" : "") << "\n";
  for (uint32_t i = 0; i < g.member_count(); ++i) {
    const MemberErrors e = array_->member_errors(i);
    out << "member " << i << ": " << member_state_name(array_->member_state(i)) << " "
        << array_->member_path(i) << " (errors: read " << e.read << ", write " << e.write
        << ", checksum " << e.checksum << ")\n";
  }
  const uint64_t used = (st.blocks - st.blocks_free) * st.block_size;
  out << "space: " << human_bytes(used) << " used of " << human_bytes(st.blocks * st.block_size) << ", "
      << human_bytes(st.blocks_free * st.block_size) << " free\n";
  out << "reconstructed_blocks: " << c.reconstructed_blocks << "\n";
  out << "corrupt_blocks: " << c.corrupt_blocks << "\n";
  out << "healed_blocks: " << c.healed_blocks << "\n";
  out << "unreadable_reads: " << c.unreadable_reads << "\n";
  out << "stripes_sealed: " << c.stripes_sealed << "\n";
  out << "partial_flushes: " << c.partial_flushes << "\n";
  out << "bytes_copied_read: " << c.bytes_copied_read << "\n";
  out << "bytes_copied_write: " << c.bytes_copied_write << "\n";
  out << "bytes_direct_write: " << c.bytes_direct_write << "\n";
  out << "seal_waits: " << c.seal_waits << "\n";
  out << "cleaner: " << cleaner_line() << "\n";
  out << "discard: " << discard_line() << "\n";
  out << "metadata: " << metadata_line() << "\n";
  const meta::StoreStats ms = meta_->store().stats();
  out << "metadata_cache: " << ms.cache_hits << " hits, " << ms.cache_misses << " misses\n";
  const ScrubProgress scrub = scrub_progress();
  const meta::ScrubState& ss = scrub.state;
  out << "scrub: " << phase_name(ss.phase);
  if (ss.phase != meta::ScrubPhase::kNone) {
    if (ss.phase == meta::ScrubPhase::kFinished) out << " " << utc_time(ss.finished_ns);
    out << ", " << percent_done(ss) << "% (" << ss.stripes_checked << " of about "
        << ss.stripes_total << " stripes, " << human_bytes(ss.bytes_read) << " read";
    if (ss.phase == meta::ScrubPhase::kRunning && scrub.rate_bytes_per_s > 0)
      out << ", " << human_bytes(static_cast<uint64_t>(scrub.rate_bytes_per_s)) << "/s";
    if (scrub.eta_s >= 0) out << ", " << static_cast<uint64_t>(scrub.eta_s) << " s left";
    out << "); repaired " << ss.blocks_rebuilt << " blocks and " << ss.parity_rows_rewritten
        << " parity rows, " << ss.blocks_lost << " blocks lost, " << ss.stripes_skipped
        << " stripes skipped; started " << utc_time(ss.started_ns);
  }
  out << "\n";
  if (scrub.region_scrubbed)
    out << "scrub_metadata: " << scrub.region.blocks << " blocks, every copy checked: "
        << scrub.region.bad_copies << " bad copies (" << scrub.region.repaired << " repaired), "
        << scrub.region.unreadable_copies << " unreadable, " << scrub.region.lost_blocks
        << " blocks lost\n";
  for (const std::string& l : scrub.lost) out << "scrub_lost: " << l << "\n";
  const RebuildProgress rebuild = rebuild_progress();
  const meta::RebuildState& rs = rebuild.state;
  if (rs.phase != meta::RebuildPhase::kNone) {
    out << (rs.replace ? "replace: member " : "rebuild: member ") << rs.member << " "
        << rebuild_phase_name(rs.phase);
    if (rs.finished_ns) out << " " << utc_time(rs.finished_ns);
    out << ", " << rebuild_percent(rs) << "% (" << rs.stripes_rebuilt << " stripes rebuilt, "
        << rs.stripes_skipped << " skipped, of about " << rs.stripes_total << "; "
        << human_bytes(rs.bytes_written) << " written";
    if (rs.phase == meta::RebuildPhase::kRunning && rebuild.rate_bytes_per_s > 0)
      out << ", " << human_bytes(static_cast<uint64_t>(rebuild.rate_bytes_per_s)) << "/s";
    if (rebuild.eta_s >= 0) out << ", " << static_cast<uint64_t>(rebuild.eta_s) << " s left";
    out << "); started " << utc_time(rs.started_ns) << "\n";
  }
  {
    std::lock_guard lock(warnings_mu_);
    if (!last_control_.empty()) out << "last_command: " << last_control_ << "\n";
  }
  for (const std::string& w : array_->warnings()) out << "warning: " << w << "\n";
  for (const std::string& w : warnings()) out << "warning: " << w << "\n";
  // The log's last warnings and errors: what happened, for a user on a machine without syslog.
  out << "log: " << log_destination() << "\n";
  for (const std::string& line : recent_warnings()) out << "recent: " << line << "\n";
  return out.str();
}

RebuildProgress Filesystem::rebuild_progress() const {
  if (rebuilder_) return rebuilder_->progress();
  RebuildProgress p;
  if (auto saved = meta_->rebuild_state(); saved && *saved) p.state = **saved;
  return p;
}

ScrubProgress Filesystem::scrub_progress() const {
  if (scrubber_) return scrubber_->progress();
  ScrubProgress p;
  if (auto saved = meta_->scrub_state(); saved && *saved) p.state = **saved;
  return p;
}

std::string Filesystem::status_json() const {
  const Geometry& g = array_->geometry();
  const Superblock sb = array_->superblock();
  const FsStatfs st = statfs();
  const FilesystemStats c = stats();
  const uint32_t m = g.parity_count(), down = array_->unavailable_count();
  std::ostringstream out;
  out << "{\"format\": 1, \"array\": " << json_string(uuid_to_string(sb.array_uuid))
      << ", \"label\": " << json_string(sb.label) << ", \"parity\": " << m
      << ", \"members_count\": " << g.member_count() << ", \"chunk_bytes\": " << g.chunk_bytes()
      << ", \"state\": " << json_string(down == 0 ? "healthy" : down <= m ? "degraded" : "failed")
      << ", \"read_only\": " << (options_.read_only ? "true" : "false") << ", \"members\": [";
  for (uint32_t i = 0; i < g.member_count(); ++i) {
    const MemberErrors e = array_->member_errors(i);
    out << (i ? ", " : "") << "{\"index\": " << i << ", \"path\": " << json_string(array_->member_path(i))
        << ", \"state\": " << json_string(member_state_name(array_->member_state(i)))
        << ", \"errors\": {\"read\": " << e.read << ", \"write\": " << e.write
        << ", \"checksum\": " << e.checksum << "}}";
  }
  out << "], \"space\": {\"bytes\": " << st.blocks * st.block_size
      << ", \"free_bytes\": " << st.blocks_free * st.block_size << "}";
  if (const auto& region = meta_->store().region()) {
    const meta::RegionFs::Usage u = region->usage();
    out << ", \"metadata\": {\"kind\": \"region\", \"bytes\": " << u.bytes
        << ", \"used_bytes\": " << u.used_bytes << ", \"free_bytes\": " << u.free_bytes
        << ", \"reserve_bytes\": " << meta::Store::region_reserve_bytes(u.bytes)
        << ", \"journal_bytes\": " << u.journal_bytes << ", \"files\": " << u.files
        << ", \"copies\": " << u.copies << ", \"member_bytes\": " << sb.meta_region_bytes
        << ", \"healed_copies\": " << u.healed_copies << ", \"written_bytes\": " << u.written_bytes << "}";
  } else {
    out << ", \"metadata\": {\"kind\": \"directory\", \"path\": " << json_string(meta_->store().path()) << "}";
  }
  out << ", \"counters\": {\"reconstructed_blocks\": " << c.reconstructed_blocks
      << ", \"corrupt_blocks\": " << c.corrupt_blocks << ", \"healed_blocks\": " << c.healed_blocks
      << ", \"unreadable_reads\": " << c.unreadable_reads << ", \"stripes_sealed\": " << c.stripes_sealed
      << ", \"partial_flushes\": " << c.partial_flushes << "}";
  {
    const CleanerProgress cp = cleaner_ ? cleaner_->progress() : CleanerProgress{};
    const WriterStats w = writer_->stats();
    out << ", \"cleaner\": {\"on\": " << (cleaner_ ? "true" : "false") << ", \"passes\": " << cp.passes
        << ", \"stripes_cleaned\": " << cp.stripes_cleaned << ", \"bytes_moved\": " << cp.bytes_moved
        << ", \"reclaimable_bytes\": " << cp.reclaimable_bytes
        << ", \"user_bytes_written\": " << w.bytes_copied + w.bytes_direct - w.bytes_relocated
        << ", \"last_error\": " << json_string(cp.last_error) << "}";
    const DiscardProgress dp = discarder_ ? discarder_->progress() : DiscardProgress{};
    out << ", \"discard\": {\"on\": " << (dp.background ? "true" : "false")
        << ", \"stripes\": " << dp.stripes << ", \"member_bytes\": " << dp.member_bytes
        << ", \"last_error\": " << json_string(dp.last_error) << "}";
  }
  const ScrubProgress scrub = scrub_progress();
  const meta::ScrubState& ss = scrub.state;
  out << ", \"scrub\": {\"state\": " << json_string(phase_name(ss.phase))
      << ", \"percent\": " << percent_done(ss) << ", \"stripes_total\": " << ss.stripes_total
      << ", \"stripes_checked\": " << ss.stripes_checked << ", \"stripes_skipped\": " << ss.stripes_skipped
      << ", \"bytes_read\": " << ss.bytes_read
      << ", \"rate_bytes_per_s\": " << static_cast<uint64_t>(scrub.rate_bytes_per_s)
      << ", \"rate_limit\": " << ss.rate_limit << ", \"eta_s\": " << static_cast<int64_t>(scrub.eta_s)
      << ", \"blocks_rebuilt\": " << ss.blocks_rebuilt
      << ", \"parity_rows_rewritten\": " << ss.parity_rows_rewritten
      << ", \"blocks_lost\": " << ss.blocks_lost << ", \"started_ns\": " << ss.started_ns
      << ", \"finished_ns\": " << ss.finished_ns;
  if (scrub.region_scrubbed)
    out << ", \"metadata\": {\"blocks\": " << scrub.region.blocks << ", \"bad_copies\": "
        << scrub.region.bad_copies << ", \"repaired\": " << scrub.region.repaired
        << ", \"unreadable_copies\": " << scrub.region.unreadable_copies
        << ", \"lost_blocks\": " << scrub.region.lost_blocks << "}";
  out << ", \"lost\": [";
  for (size_t i = 0; i < scrub.lost.size(); ++i) out << (i ? ", " : "") << json_string(scrub.lost[i]);
  out << "]}";
  const RebuildProgress rebuild = rebuild_progress();
  const meta::RebuildState& rs = rebuild.state;
  out << ", \"rebuild\": {\"state\": " << json_string(rebuild_phase_name(rs.phase))
      << ", \"member\": " << rs.member << ", \"replace\": " << (rs.replace ? "true" : "false")
      << ", \"since_generation\": " << rs.since_generation << ", \"rate_limit\": " << rs.rate_limit
      << ", \"percent\": " << rebuild_percent(rs)
      << ", \"stripes_total\": " << rs.stripes_total << ", \"stripes_rebuilt\": " << rs.stripes_rebuilt
      << ", \"stripes_skipped\": " << rs.stripes_skipped << ", \"bytes_written\": " << rs.bytes_written
      << ", \"rate_bytes_per_s\": " << static_cast<uint64_t>(rebuild.rate_bytes_per_s)
      << ", \"eta_s\": " << static_cast<int64_t>(rebuild.eta_s) << ", \"started_ns\": " << rs.started_ns
      << ", \"finished_ns\": " << rs.finished_ns << "}";
  {
    std::lock_guard lock(warnings_mu_);
    out << ", \"last_command\": " << json_string(last_control_);
  }
  out << ", \"warnings\": [";
  bool first = true;
  for (const std::string& w : array_->warnings()) out << (std::exchange(first, false) ? "" : ", ") << json_string(w);
  for (const std::string& w : warnings()) out << (std::exchange(first, false) ? "" : ", ") << json_string(w);
  out << "], \"log\": " << json_string(log_destination()) << ", \"recent\": [";
  first = true;
  for (const std::string& line : recent_warnings())
    out << (std::exchange(first, false) ? "" : ", ") << json_string(line);
  out << "]}\n";
  return out.str();
}

std::string Filesystem::metadata_line() const {
  const auto& region = meta_->store().region();
  if (!region) return "in " + meta_->store().path();
  const meta::RegionFs::Usage u = region->usage();
  const uint64_t reserve = meta::Store::region_reserve_bytes(u.bytes);
  std::ostringstream out;
  out << "on the members, " << human_bytes(u.bytes - u.free_bytes) << " used of "
      << human_bytes(u.bytes) << " (" << u.files << " files), mirrored on " << u.copies
      << " members, " << human_bytes(u.written_bytes) << " written since mount, "
      << u.healed_copies << " bad copies healed";
  // Writes are refused below the reserve: say so before it comes to that.
  if (u.free_bytes < reserve + reserve / 2)
    out << "; NEARLY FULL: metadata writes are refused below " << human_bytes(reserve) << " free";
  return out.str();
}

std::string Filesystem::cleaner_line() const {
  if (!cleaner_) return options_.read_only ? "off (read-only)" : "off";
  const CleanerProgress cp = cleaner_->progress();
  const CleanerOptions& o = cleaner_->options();
  const WriterStats w = writer_->stats();
  const uint64_t user = w.bytes_copied + w.bytes_direct - w.bytes_relocated;
  std::ostringstream out;
  out << (cp.running ? "cleaning" : "idle") << ", " << human_bytes(cp.reclaimable_bytes)
      << " reclaimable; " << cp.passes << " passes, " << cp.stripes_cleaned << " stripes cleaned, "
      << human_bytes(cp.bytes_moved) << " moved";
  if (user > 0) {
    char wa[32];
    std::snprintf(wa, sizeof wa, "%.2f", static_cast<double>(user + w.bytes_relocated) / user);
    out << ", write amplification " << wa << " (data, before parity)";
  }
  out << "; runs below " << o.low_water << " free stripes until " << o.high_water << ", keeps "
      << o.reserve << " for itself";
  if (!cp.last_error.empty()) out << "; last error: " << cp.last_error;
  return out.str();
}

std::string Filesystem::discard_line() const {
  if (!discarder_) return options_.read_only ? "off (read-only)" : "off";
  const DiscardProgress dp = discarder_->progress();
  std::ostringstream out;
  out << (dp.background ? "on" : options_.discard ? "off (a member refused)" : "off (raidfs trim discards now)")
      << "; " << dp.stripes << " stripes discarded (" << human_bytes(dp.member_bytes) << " on the members)";
  if (!dp.last_error.empty()) out << "; last error: " << dp.last_error;
  return out.str();
}

FsStatfs Filesystem::statfs() const {
  const Geometry& g = array_->geometry();
  FsStatfs st;
  st.blocks = g.capacity_bytes() / kBlock;
  uint64_t free_bytes = meta_->free_stripe_count() * g.stripe_data_bytes() + writer_->open_free_bytes();
  // What cleaning gives back is free too; what the cleaner keeps for its own moves is not.
  if (cleaner_) free_bytes += cleaner_->reclaimable_bytes();
  const uint64_t reserve = cleaner_options_.reserve * g.stripe_data_bytes();
  free_bytes = free_bytes > reserve ? free_bytes - reserve : 0;
  st.blocks_free = free_bytes / kBlock;
  st.files = UINT64_MAX / 2;
  st.files_free = UINT64_MAX / 2;
  return st;
}

bool Filesystem::nearly_full() const {
  const FsStatfs st = statfs();
  return st.blocks_free < st.blocks / 8;
}

}  // namespace raidfs::fs
