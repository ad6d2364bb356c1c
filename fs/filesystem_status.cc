// Filesystem: what it tells about itself — counters, the status text, space. See filesystem.h.
#include <sstream>

#include "base/units.h"
#include "fs/filesystem.h"
#include "fs/stripe_writer.h"

namespace raidfs::fs {
namespace {

constexpr uint64_t kBlock = kBlockBytes;

const char* state_name(MemberState s) {
  switch (s) {
    case MemberState::kActive: return "active";
    case MemberState::kFailed: return "failed";
    case MemberState::kMissing: return "missing";
    case MemberState::kRebuilding: return "rebuilding";
    case MemberState::kUnknown: break;
  }
  return "unknown";
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
    out << "member " << i << ": " << state_name(array_->member_state(i)) << " "
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
  const meta::StoreStats ms = meta_->store().stats();
  out << "metadata_cache: " << ms.cache_hits << " hits, " << ms.cache_misses << " misses\n";
  for (const std::string& w : array_->warnings()) out << "warning: " << w << "\n";
  for (const std::string& w : warnings()) out << "warning: " << w << "\n";
  return out.str();
}

FsStatfs Filesystem::statfs() const {
  const Geometry& g = array_->geometry();
  FsStatfs st;
  st.blocks = g.capacity_bytes() / kBlock;
  st.blocks_free =
      (meta_->free_stripe_count() * g.stripe_data_bytes() + writer_->open_free_bytes()) / kBlock;
  st.files = UINT64_MAX / 2;
  st.files_free = UINT64_MAX / 2;
  return st;
}

bool Filesystem::nearly_full() const {
  const FsStatfs st = statfs();
  return st.blocks_free < st.blocks / 8;
}

}  // namespace raidfs::fs
