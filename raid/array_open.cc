// Array::format, Array::open and Array::replace_member: which devices are the members, every way
// a list of them can be wrong, and the superblocks that record it.
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <optional>

#include <chrono>
#include <map>
#include <set>

#include "raid/array.h"
#include "raid/device_probe.h"
#include "raid/member_file.h"
#include "raid/sync_member_io.h"
#include "raid/uring_member_io.h"

namespace raidfs {
namespace {


// The device behind `fd` opened once more, without O_DIRECT (and without a lock or O_EXCL: the
// first descriptor holds those): the metadata region's buffered descriptor. -1 on failure.
int reopen_buffered(int fd) {
  return ::open(("/proc/self/fd/" + std::to_string(fd)).c_str(), O_RDWR | O_CLOEXEC);
}

uint64_t stripes_that_fit(uint64_t member_bytes, uint64_t data_offset, uint32_t chunk_bytes) {
  if (member_bytes < data_offset + 2 * Superblock::kBytes) return 0;
  return (backup_superblock_offset(member_bytes) - data_offset) / chunk_bytes;
}

// Refuses a device listed twice, under the same name or another (a symlink, a hard link).
// Paths that do not exist are left for the caller to judge (a missing member).
Result<void> check_distinct(std::span<const std::string> paths) {
  std::map<std::pair<uint64_t, uint64_t>, std::string> seen;
  for (const std::string& path : paths) {
    auto id = MemberFile::identity(path);
    if (!id) continue;
    auto [it, fresh] = seen.emplace(*id, path);
    if (!fresh) return fail(EINVAL, path + ": same device as " + it->second + " (listed twice)");
  }
  return {};
}

}  // namespace

Result<Superblock> Array::format(std::span<const std::string> paths, const FormatOptions& o) {
  const uint32_t n = static_cast<uint32_t>(paths.size());
  RAIDFS_CHECK(Geometry::create(n, o.parity_count, o.chunk_bytes, kDataOffsetBytes, 0));
  // A self-contained array's metadata region sits between the superblock and the data area.
  const uint64_t data_offset = kDataOffsetBytes + o.meta_region_bytes;
  if (o.meta_region_bytes != 0)
    RAIDFS_CHECK(MetaRegion::create(n, o.parity_count + 1, kDataOffsetBytes, o.meta_region_bytes));
  if (o.meta_region_bytes != 0 && !o.metadata_dir.empty())
    return fail(EINVAL, "the metadata goes in a directory or in a region of the members, not both");
  if (o.label.size() >= Superblock::kLabelBytes)
    return fail(EINVAL, "label is longer than " + std::to_string(Superblock::kLabelBytes - 1) + " bytes");
  if (o.metadata_dir.size() >= Superblock::kMetadataDirBytes)
    return fail(EINVAL, "metadata directory path is longer than " +
                            std::to_string(Superblock::kMetadataDirBytes - 1) + " bytes");

  std::vector<MemberFile> files;
  uint64_t smallest = UINT64_MAX;
  RAIDFS_CHECK(check_distinct(paths));
  for (const std::string& path : paths) {
    RAIDFS_TRY(MemberFile f, MemberFile::open(path));
    const uint64_t need = data_offset + kStripesMin * o.chunk_bytes + 2 * Superblock::kBytes;
    if (f.size_bytes() < need)
      return fail(ENOSPC, path + ": too small (" + human_bytes(f.size_bytes()) + "); a member needs at least " +
                              human_bytes(need) + " with " + human_bytes(o.chunk_bytes) + " chunks" +
                              (o.meta_region_bytes ? " and a metadata region of " +
                                                         human_bytes(o.meta_region_bytes) + " per member"
                                                   : std::string()));
    if (!o.force) {
      auto existing = read_superblock(f.fd(), f.size_bytes());
      if (existing)
        return fail(EEXIST, path + ": already a member of raidfs array " +
                                uuid_to_string(existing->newest.array_uuid) + " (use -f to overwrite)");
      RAIDFS_TRY(auto foreign, probe_foreign_signature(f.fd(), f.size_bytes()));
      if (foreign) return fail(EEXIST, path + ": holds " + *foreign + " data (use -f to overwrite)");
    }
    smallest = std::min(smallest, f.size_bytes());
    files.push_back(std::move(f));
  }

  Superblock sb;
  sb.array_uuid = o.uuid ? *o.uuid : random_uuid();
  sb.member_count = n;
  sb.parity_count = o.parity_count;
  sb.chunk_bytes = o.chunk_bytes;
  sb.data_offset = data_offset;
  sb.stripe_count = stripes_that_fit(smallest, data_offset, o.chunk_bytes);
  if (o.meta_region_bytes != 0) {
    sb.meta_region_offset = kDataOffsetBytes;
    sb.meta_region_bytes = o.meta_region_bytes;
  }
  sb.sequence = 1;
  sb.created_ns = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::system_clock::now().time_since_epoch()).count());
  for (uint32_t i = 0; i < n; ++i) {
    sb.member_states[i] = MemberState::kActive;
    sb.member_uuids[i] = random_uuid();
  }
  sb.label = o.label;
  sb.metadata_dir = o.metadata_dir;
  for (uint32_t i = 0; i < n; ++i) {
    Superblock own = sb;
    own.member_index = i;
    own.member_bytes = files[i].size_bytes();
    auto w = write_superblock(files[i].fd(), own);
    if (!w) return fail_with(w.error(), paths[i] + ": cannot write superblock: ");
  }
  return sb;
}

Result<std::unique_ptr<Array>> Array::open(std::span<const std::string> paths, const OpenOptions& o) {
  struct Found {
    std::string path;
    std::optional<MemberFile> file;  // empty: unusable (absent, unreadable, damaged)
    SuperblockCopies copies;
  };
  std::vector<Found> found;
  std::vector<std::string> warnings;
  std::vector<std::string> unusable;  // why each unusable path was left out
  // A member that cannot be used counts as missing (the array may run degraded without it) when
  // the fault is the device's; a path that is plainly the wrong thing is an error.
  auto leave_out = [&](const std::string& path, const std::string& why) {
    warnings.push_back(why + "; left out");
    unusable.push_back(why);
    found.push_back({path, std::nullopt, {}});
  };
  RAIDFS_CHECK(check_distinct(paths));
  for (const std::string& path : paths) {
    auto f = MemberFile::open(path);
    if (!f) {
      const int e = f.error().code;
      if (e == ENOENT || is_device_error(e)) {
        leave_out(path, f.error().message);
        continue;
      }
      return std::unexpected(f.error());  // in use, not a device, no permission ...
    }
    auto copies = read_superblock(f->fd(), f->size_bytes());
    if (!copies) {
      // Damaged copies or a read error: a broken member. No raidfs superblock at all: the wrong
      // device was named — unless the path came from the array's own list, where it is a
      // member that was blanked or replaced.
      if (copies.error().code == EIO || is_device_error(copies.error().code)) {
        leave_out(path, path + ": " + copies.error().message);
        continue;
      }
      if (o.from_member_list && copies.error().code == EINVAL) {
        leave_out(path, path + ": " + copies.error().message + " (a blank or replaced disk?)");
        continue;
      }
      return fail_with(copies.error(), path + ": ");
    }
    if (!copies->primary_valid) warnings.push_back(path + ": primary superblock unreadable; using the backup copy");
    if (!copies->backup_valid) warnings.push_back(path + ": backup superblock unreadable");
    found.push_back({path, std::move(*f), *copies});
  }

  // The array's identity: the expected UUID, else the one most members carry.
  std::map<ArrayUuid, int> votes;
  for (auto& m : found)
    if (m.file) ++votes[m.copies.newest.array_uuid];
  if (votes.empty()) return fail(ENXIO, "no member of the array could be opened");
  ArrayUuid uuid = o.expected_uuid ? *o.expected_uuid
                                   : std::max_element(votes.begin(), votes.end(), [](auto& a, auto& b) {
                                       return a.second < b.second;
                                     })->first;

  // The newest superblock of this array holds the authoritative geometry and member states.
  const Superblock* newest = nullptr;
  for (auto& m : found) {
    const Superblock& sb = m.copies.newest;
    if (!m.file) continue;
    if (sb.array_uuid != uuid)
      return fail(EINVAL, m.path + ": belongs to another raidfs array (" + uuid_to_string(sb.array_uuid) +
                              ", not " + uuid_to_string(uuid) + "); remove it from the member list");
    if (!newest || sb.sequence > newest->sequence) newest = &sb;
  }
  if (!newest) return fail(ENXIO, "no member of array " + uuid_to_string(uuid) + " was given");
  const Superblock ref = *newest;

  auto array = std::unique_ptr<Array>(new Array(ref, ref.geometry(), ParityCodec::create(ref.member_count - ref.parity_count, ref.parity_count).value()));
  const uint32_t n = ref.member_count;
  array->fds_.count = n;
  array->region_fds_.count = n;
  array->paths_.assign(n, "");
  for (uint32_t i = 0; i < n; ++i) array->volatile_cache_[i] = true;
  array->write_floor_ = ref.write_floor;
  if (ref.self_contained())
    array->meta_region_ = MetaRegion::create(n, ref.parity_count + 1, ref.meta_region_offset,
                                             ref.meta_region_bytes).value();
  array->complete_sequence_ = ref.settled_sequence;
  std::vector<uint32_t> stale;  // present members found older than the array
  for (uint32_t i = 0; i < n; ++i) array->states_[i] = MemberState::kMissing;

  for (size_t pos = 0; pos < found.size(); ++pos) {
    Found& m = found[pos];
    const Superblock& sb = m.copies.newest;
    if (!m.file) {
      // Its place is known when the list is in member order; a present member claiming that
      // index keeps its own path.
      const bool in_order = o.order == OpenOptions::Order::kAsGiven || o.from_member_list;
      if (in_order && pos < n && array->fds_[pos] < 0) array->paths_[pos] = m.path;
      continue;
    }
    if (sb.member_count != n || sb.parity_count != ref.parity_count || sb.chunk_bytes != ref.chunk_bytes ||
        sb.data_offset != ref.data_offset || sb.stripe_count != ref.stripe_count ||
        sb.meta_region_offset != ref.meta_region_offset || sb.meta_region_bytes != ref.meta_region_bytes)
      return fail(EIO, m.path + ": superblock disagrees with the other members on the array's shape");
    const uint32_t index = sb.member_index;
    // A device that held this index before a replace gave it to another one: not a member now.
    if (ref.member_uuids[index] != ArrayUuid{} && sb.own_uuid() != ref.member_uuids[index]) {
      const std::string why = m.path + ": was member " + std::to_string(index) +
                              " before another device took its place (replaced, or an old copy)";
      warnings.push_back(why + "; left out");
      unusable.push_back(why);
      continue;
    }
    if (o.order == OpenOptions::Order::kAsGiven && index != pos)
      return fail(EINVAL, m.path + ": is member " + std::to_string(index) + " of the array but was listed as member " +
                              std::to_string(pos));
    if (array->fds_[index] >= 0)
      return fail(EINVAL, m.path + " and " + array->paths_[index] + " both claim to be member " +
                              std::to_string(index) + " (a copied image?)");
    if (m.file->size_bytes() < sb.member_bytes) {
      const std::string why = m.path + ": is " + human_bytes(m.file->size_bytes()) + " but was " +
                              human_bytes(sb.member_bytes) + " when formatted (truncated?)";
      warnings.push_back(why + "; left out");
      unusable.push_back(why);
      continue;
    }
    if (!m.file->direct()) warnings.push_back(m.path + ": O_DIRECT not supported here; using buffered I/O");
    array->paths_[index] = m.path;
    array->fds_.fd[index] = m.file->release();
    if (array->meta_region_) {
      array->region_fds_.fd[index] = reopen_buffered(array->fds_[index]);
      if (array->region_fds_[index] < 0)
        return fail(errno, m.path + ": cannot open it again for the metadata region: " + std::strerror(errno));
    }
    array->member_bytes_[index] = sb.member_bytes;
    array->volatile_cache_[index] = m.file->volatile_cache();
    // The newest superblock's view wins: a member it lists as failed or missing stays out even if
    // it is back, since writes it missed would be read as stale data.
    array->states_[index] = ref.member_states[index];
    array->member_since_[index] = ref.member_since[index];
    // An old copy of itself (an image put back, a disk from another shelf): it missed an update
    // that every member in service took, so its data is older than the array's. Out until rebuilt;
    // what it holds is as of its own superblock.
    const MemberState listed = ref.member_states[index];
    if ((listed == MemberState::kActive || listed == MemberState::kRebuilding) &&
        sb.sequence < ref.settled_sequence) {
      array->states_[index] = MemberState::kMissing;
      array->member_since_[index] = listed == MemberState::kActive ? sb.write_floor : 0;
      stale.push_back(index);
      warnings.push_back(m.path + ": member " + std::to_string(index) + " is stale (superblock sequence " +
                         std::to_string(sb.sequence) + ", the array's " + std::to_string(ref.sequence) +
                         "): an old copy of the member; not used until rebuilt");
    }
  }

  // Split brain: two present members that each recorded the other as gone were each used without
  // the other; whichever side is picked, the other side's writes would be lost without a word.
  for (uint32_t a = 0; a < n; ++a) {
    for (uint32_t b = a + 1; b < n; ++b) {
      const Superblock* sa = nullptr;
      const Superblock* sb2 = nullptr;
      for (auto& m : found) {
        if (!m.file || array->paths_[m.copies.newest.member_index] != m.path) continue;
        if (m.copies.newest.member_index == a) sa = &m.copies.newest;
        if (m.copies.newest.member_index == b) sb2 = &m.copies.newest;
      }
      if (sa && sb2 && sa->member_states[b] != MemberState::kActive && sb2->member_states[a] != MemberState::kActive)
        return fail(EIO, array->paths_[a] + " and " + array->paths_[b] +
                             " were each used while the other was missing (split brain); open the array "
                             "with only the members of the side whose data you want");
    }
  }

  bool changed = !stale.empty();
  for (uint32_t i = 0; i < n; ++i) {
    MemberState s = array->states_[i];
    if (array->fds_[i] < 0 && ref.member_states[i] == MemberState::kActive) {
      // It left after the newest superblock was written: it holds every stripe below that
      // superblock's write floor.
      array->states_[i] = MemberState::kMissing;
      array->member_since_[i] = ref.write_floor;
      warnings.push_back("member " + std::to_string(i) + " is missing; running degraded");
      changed = true;
    } else if (std::find(stale.begin(), stale.end(), i) != stale.end()) {
      continue;  // said above
    } else if (s != MemberState::kActive) {
      warnings.push_back("member " + std::to_string(i) + " (" + array->paths_[i] + ") is " +
                         member_state_name(s) + "; not used until rebuilt");
    }
  }
  array->warnings_ = std::move(warnings);
  if (array->unavailable_count() > ref.parity_count) {
    std::string who;
    for (uint32_t i = 0; i < n; ++i) {
      if (array->usable(i)) continue;
      who += (who.empty() ? "" : ", ") + std::string("member ") + std::to_string(i) + " (" +
             (array->paths_[i].empty() ? "not given" : array->paths_[i]) + ": " +
             member_state_name(array->member_state(i)) + ")";
    }
    for (const std::string& why : unusable) who += "; " + why;
    return fail(ENXIO, "array " + uuid_to_string(uuid) + " needs " + std::to_string(n - ref.parity_count) + " of its " +
                           std::to_string(n) + " members; unavailable: " + who);
  }
  // Arrays made before device UUIDs: each member in service gets one at its next superblock.
  for (uint32_t i = 0; i < n; ++i) {
    if (array->superblock_.member_uuids[i] == ArrayUuid{} && array->fds_[i] >= 0) {
      array->superblock_.member_uuids[i] = random_uuid();
      changed = true;
    }
  }
  if (changed && o.record_states) {
    std::lock_guard lock(array->superblock_mutex_);
    array->persist_states_locked(nullptr);
  }
  return array;
}

Array::~Array() {
  for (int fd : retired_fds_) ::close(fd);
  for (uint32_t i = 0; i < region_fds_.count; ++i)
    if (region_fds_[i] >= 0) ::close(region_fds_[i]);
  for (uint32_t i = 0; i < fds_.slots(); ++i) {
    const int fd = fds_[i];
    if (fd < 0) continue;
    // Unlock explicitly: an io_uring that registered this file may hold the open file for a
    // moment after it is torn down, and the lock with it.
    ::flock(fd, LOCK_UN);
    ::close(fd);
  }
}

Result<std::unique_ptr<MemberIo>> Array::make_member_io(unsigned queue_depth) const {
  RAIDFS_TRY(auto io, UringMemberIo::create(fds_, queue_depth));
  return std::unique_ptr<MemberIo>(std::move(io));
}

std::unique_ptr<MemberIo> Array::make_region_io() const {
  return std::make_unique<SyncMemberIo>(region_fds_);
}

void Array::persist_states_locked(MemberIo* io) {
  const uint32_t n = geometry_.member_count(), m = geometry_.parity_count();
  for (uint32_t round = 0; round < n; ++round) {
    superblock_.settled_sequence = complete_sequence_;
    superblock_.sequence++;
    superblock_.write_floor = write_floor_.load();
    for (uint32_t i = 0; i < n; ++i) {
      superblock_.member_states[i] = states_[i].load();
      superblock_.member_since[i] = member_since_[i].load();
    }
    // Every member that takes writes: the active ones and one being rebuilt (its own superblock
    // says so, and a replaced device gets its first states).
    std::vector<uint32_t> targets;
    for (uint32_t i = 0; i < n; ++i)
      if (fds_[i] >= 0 && writable(i)) targets.push_back(i);
    std::vector<int> errors(n, 0);  // per target member: 0 recorded, else the errno
    if (io == nullptr) {
      for (uint32_t i : targets) {
        Superblock own = superblock_;
        own.member_index = i;
        own.member_bytes = member_bytes_[i];
        if (auto w = write_superblock(fds_[i], own); !w) errors[i] = w.error().code;
      }
    } else {
      std::vector<AlignedBuffer> copies;
      for (uint32_t i : targets) {
        Superblock own = superblock_;
        own.member_index = i;
        own.member_bytes = member_bytes_[i];
        copies.emplace_back(Superblock::kBytes);
        own.encode(copies.back().data());
      }
      // Primary copies, flush, backup copies, flush: never both copies in flight at once.
      for (int step = 0; step < 4; ++step) {
        std::vector<IoRequest> batch;
        for (size_t t = 0; t < targets.size(); ++t) {
          const uint32_t i = targets[t];
          if (errors[i] != 0) continue;
          if (step % 2 == 1) {
            batch.push_back({IoOp::kFlush, i, 0, 0, nullptr, 0});
          } else {
            const uint64_t at = step == 0 ? 0 : backup_superblock_offset(member_bytes_[i]);
            batch.push_back({IoOp::kWrite, i, at, Superblock::kBytes, copies[t].data(), 0});
          }
        }
        io->execute(batch);
        for (const IoRequest& r : batch)
          if (!r.ok()) errors[r.member] = r.result < 0 ? -r.result : EIO;
      }
    }
    uint32_t recorded = 0;
    bool more_failed = false;
    for (uint32_t i : targets) {
      if (errors[i] == 0) {
        ++recorded;
        continue;
      }
      const std::string what = paths_[i] + ": could not record member states in its superblock: " +
                               std::strerror(errors[i]);
      if (is_device_error(errors[i])) {
        states_[i] = MemberState::kFailed;
        warnings_.push_back(what + "; failed");
        more_failed = true;
      } else {
        warnings_.push_back(what);
      }
    }
    if (recorded == targets.size()) complete_sequence_ = superblock_.sequence;
    // A member that failed now must be recorded too: once more, with the others.
    if (more_failed && unavailable_count() <= m) continue;
    states_recorded_ = recorded >= std::min<uint32_t>(m + 1, static_cast<uint32_t>(targets.size())) &&
                       !more_failed;
    return;
  }
  states_recorded_ = false;
}

void Array::set_write_floor(uint64_t generation) {
  uint64_t seen = write_floor_.load();
  while (seen < generation && !write_floor_.compare_exchange_weak(seen, generation)) {
  }
}

void Array::record_clean_unmount() {
  std::lock_guard lock(superblock_mutex_);
  // The first write may leave some members one behind if it is torn; the second makes the
  // first the settled one, which a copy from before this unmount is behind.
  persist_states_locked(nullptr);
  persist_states_locked(nullptr);
}

Result<void> Array::replace_member(uint32_t member, const std::string& path, bool force) {
  const uint32_t n = geometry_.member_count(), m = geometry_.parity_count();
  if (member >= n) return fail(EINVAL, "no member " + std::to_string(member));
  RAIDFS_TRY(MemberFile file, MemberFile::open(path));
  std::lock_guard lock(superblock_mutex_);
  for (uint32_t i = 0; i < n; ++i)
    if (i != member && states_[i].load() == MemberState::kRebuilding)
      return fail(EBUSY, "member " + std::to_string(i) + " is being rebuilt; replace after it is done");
  if (usable(member) && unavailable_count() + 1 > m)
    return fail(EBUSY, "replacing member " + std::to_string(member) +
                           " would leave more members unavailable than parity covers; rebuild the others first");
  const uint64_t need = geometry_.data_offset() + geometry_.stripe_count() * geometry_.chunk_bytes() +
                        2 * Superblock::kBytes;
  if (file.size_bytes() < need || backup_superblock_offset(file.size_bytes()) <
                                      geometry_.data_offset() + geometry_.stripe_count() * geometry_.chunk_bytes())
    return fail(ENOSPC, path + ": too small (" + human_bytes(file.size_bytes()) + "); member " +
                            std::to_string(member) + " needs at least " + human_bytes(need));
  if (!force) {
    if (auto existing = read_superblock(file.fd(), file.size_bytes()); existing)
      return fail(EEXIST, path + ": holds a raidfs superblock (array " +
                              uuid_to_string(existing->newest.array_uuid) + "); use --force to overwrite it");
    RAIDFS_TRY(auto foreign, probe_foreign_signature(file.fd(), file.size_bytes()));
    if (foreign) return fail(EEXIST, path + ": holds " + *foreign + " data (use --force to overwrite it)");
  }

  // Its first superblock, before anything changes here: a device that cannot take one is refused.
  const ArrayUuid device = random_uuid();
  Superblock own = superblock_;
  own.member_index = member;
  own.member_bytes = file.size_bytes();
  own.member_uuids[member] = device;
  own.member_states[member] = MemberState::kRebuilding;
  own.member_since[member] = 0;
  if (auto w = write_superblock(file.fd(), own); !w) return fail_with(w.error(), path + ": cannot write its superblock: ");

  // Out of service first (read for nothing), then the device: no read picks the new, empty
  // device's chunks as the member's.
  const std::string old_path = paths_[member];
  const MemberState old_state = states_[member].load();
  rebuild_cursor_[member] = 0;
  rebuild_from_generation_[member] = UINT64_MAX;
  meta_restored_[member] = false;  // the new device holds no region copies yet
  states_[member] = MemberState::kRebuilding;
  const int old_fd = fds_[member];
  drop_replace_source_locked();
  // An old device still in service stays readable as the rebuild's source.
  const int source = old_fd >= 0 && old_state == MemberState::kActive ? ::dup(old_fd) : -1;
  if (old_fd >= 0) {
    // The number keeps meaning "member i": the new device takes it over, and the old one is let
    // go (unlocked now, closed once no ring holds it).
    ::flock(old_fd, LOCK_UN);
    if (::dup2(file.fd(), old_fd) < 0) {
      const int e = errno;
      ::flock(old_fd, LOCK_EX | LOCK_NB);
      if (source >= 0) ::close(source);
      states_[member] = old_state;
      return fail(e, path + ": cannot take over member " + std::to_string(member) + "'s descriptor: " +
                         std::strerror(e));
    }
    ::close(file.release());  // the lock is the open file's, which old_fd now shares
  } else {
    fds_.fd[member] = file.release();
  }
  if (meta_region_) {
    // The region's buffered descriptor follows, on its own number likewise.
    const int buffered = reopen_buffered(fds_[member]);
    const int old_buffered = region_fds_[member];
    if (buffered >= 0 && old_buffered >= 0) {
      ::dup2(buffered, old_buffered);
      ::close(buffered);
    } else if (buffered >= 0) {
      region_fds_.fd[member] = buffered;
    } else if (old_buffered >= 0) {
      region_fds_.fd[member] = -1;  // nothing reads the old device's region through it now
      retired_fds_.push_back(old_buffered);
    }
    region_fds_.version++;  // rings that registered the old file register afresh
  }
  member_since_[member] = 0;
  superblock_.member_uuids[member] = device;
  fds_.fd[fds_.count] = source;
  member_bytes_[member] = file.size_bytes();
  volatile_cache_[member] = file.volatile_cache();
  paths_[member] = path;
  fds_.version++;
  persist_states_locked(nullptr);
  warnings_.push_back("member " + std::to_string(member) + ": " + (old_path.empty() ? "(no device)" : old_path) +
                      " replaced by " + path);
  return {};
}

Result<void> Array::read_replace_source(IoChannel& channel, uint64_t stripe, uint8_t* dest) {
  if (!has_replace_source()) return fail(ENXIO, "no replaced device to read from");
  if (stripe >= geometry_.stripe_count() || reinterpret_cast<uintptr_t>(dest) % kBlockBytes)
    return fail(EINVAL, "read of the replaced device: stripe out of range or misaligned buffer");
  IoRequest r{IoOp::kRead, fds_.count, geometry_.row_offset(stripe), geometry_.chunk_bytes(), dest, 0};
  channel.io_.execute({&r, 1});  // not execute(): the source is no member, its errors fail nothing
  if (!r.ok())
    return fail(r.result < 0 ? -r.result : EIO, std::string("reading the replaced device: ") +
                                                   std::strerror(r.result < 0 ? -r.result : EIO));
  return {};
}

void Array::drop_replace_source() {
  std::lock_guard lock(superblock_mutex_);
  drop_replace_source_locked();
}

void Array::drop_replace_source_locked() {
  const int fd = fds_.fd[fds_.count].exchange(-1);
  if (fd < 0) return;
  fds_.version++;
  // Not closed until the array is: another thread may have just read the number from the table
  // and be registering it with a new ring (a closed number would fail that with EBADF, or name
  // another file by then).
  retired_fds_.push_back(fd);
}

uint32_t Array::unavailable_count() const {
  uint32_t count = 0;
  for (uint32_t i = 0; i < geometry_.member_count(); ++i) count += usable(i) ? 0 : 1;
  return count;
}

}  // namespace raidfs
