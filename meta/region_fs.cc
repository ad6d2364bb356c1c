// RegionFs: files in the metadata region. See region_fs.h; the block format is region_block.h,
// the journal region_journal.h.
#include "meta/region_fs.h"

#include <time.h>

#include <algorithm>
#include <cstring>

#include "base/aligned_buffer.h"
#include "meta/region_block.h"

namespace raidfs::meta {

using region::BlockHeader;
using region::kBlockBytes;
using region::kPayloadBytes;
using region::Record;
using region::RecordType;

namespace {

constexpr uint64_t kGrowMin = 16;   // blocks a file takes at least when it grows
constexpr uint64_t kGrowMax = 256;  // ... and at most beyond what it needs (1 MiB)
constexpr size_t kNameBytesMax = 255;
constexpr size_t kProblemsMax = 8;
// Allocation numbers of one open (a life) share their bits above these: 2^32 extents a life.
constexpr unsigned kLifeShift = 32;

uint64_t blocks_for(uint64_t bytes) { return (bytes + kPayloadBytes - 1) / kPayloadBytes; }

uint64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

bool valid_name(std::string_view name) {
  return !name.empty() && name.size() <= kNameBytesMax && name.find('/') == std::string_view::npos;
}

std::unexpected<Error> damaged(const std::string& what) {
  return fail(EIO, "metadata region journal: " + what + " (damaged beyond what its copies fix)");
}

}  // namespace

// --- opening ---------------------------------------------------------------------------------

Result<void> RegionFs::format(RegionDevice& device, uint32_t salt) {
  const region::Batch empty{Record{RecordType::kCounters, 0, 1, 1}};
  RAIDFS_CHECK(region::Journal::format(device, salt, empty));
  return {};
}

RegionFs::RegionFs(std::shared_ptr<RegionDevice> device, uint32_t salt, bool read_only,
                   region::Journal journal)
    : device_(std::move(device)),
      salt_(salt),
      read_only_(read_only),
      data_first_(2 * journal.area_blocks()),
      journal_(std::move(journal)) {
  free_[data_first_] = device_->block_count() - data_first_;
  free_blocks_ = device_->block_count() - data_first_;
}

RegionFs::~RegionFs() = default;

Result<std::unique_ptr<RegionFs>> RegionFs::open(std::shared_ptr<RegionDevice> device,
                                                 uint32_t salt, bool read_only) {
  region::Journal::Replayed replayed;
  RAIDFS_TRY(region::Journal journal, region::Journal::open(*device, salt, &replayed));
  std::unique_ptr<RegionFs> fs(new RegionFs(device, salt, read_only, std::move(journal)));
  {
    std::lock_guard lock(fs->mu_);
    for (const Record& r : replayed.snapshot) RAIDFS_CHECK(fs->apply(r, /*live=*/false));
    for (const region::Batch& batch : replayed.batches)
      for (const Record& r : batch) RAIDFS_CHECK(fs->apply(r, /*live=*/false));
  }
  for (auto& [id, node] : fs->by_id_) RAIDFS_CHECK(fs->probe_length(*node));
  if (!read_only) {
    // A crash may have left the last writes on some copies only: the journal's blocks, and the
    // blocks past each file's journaled size. Every copy of those is brought up to the best one,
    // and all of it made durable (it may still sit in a volatile cache, the daemon killed before
    // a flush), before anything is built on it.
    RAIDFS_CHECK(fs->check_copies(/*repair=*/true, /*window_only=*/true));
    // A new life: its allocation numbers start past every earlier life's. A crash may have
    // taken an extent's journal record and kept the blocks written into it; a file given the
    // same place and the same number now would take those blocks, past its size, as its own
    // (the probe above follows any block that names its file, allocation and next index).
    {
      std::lock_guard lock(fs->mu_);
      fs->next_allocation_ = ((fs->next_allocation_ >> kLifeShift) + 1) << kLifeShift;
      RAIDFS_CHECK(fs->commit_locked(Record{RecordType::kCounters, 0, fs->next_id_, fs->next_allocation_}));
      RAIDFS_CHECK(fs->write_journal_locked());
    }
    RAIDFS_CHECK(device->flush());
  }
  return fs;
}

Result<void> RegionFs::probe_length(FileNode& node) {
  uint64_t size = node.journaled;
  AlignedBuffer block(kBlockBytes);
  for (uint64_t index = size / kPayloadBytes; index < node.allocated; ++index) {
    const uint32_t known = static_cast<uint32_t>(size - index * kPayloadBytes);
    const BlockPlace at = places(*node.extents, index, 1).front();
    int64_t best = -1;
    for (uint32_t c = 0; c < device_->copy_count(); ++c) {
      BlockHeader h;
      if (device_->read(at.block, 1, c, block.data()) && region::open_block(block.data(), salt_, &h) &&
          h.owner == node.id && h.allocation == at.allocation && h.index == index)
        best = std::max<int64_t>(best, h.used);
    }
    if (best <= static_cast<int64_t>(known)) break;
    size = index * kPayloadBytes + static_cast<uint64_t>(best);
    if (best < kPayloadBytes) break;
  }
  node.size = node.durable = size;
  return {};
}

// --- state changes -----------------------------------------------------------------------------

Result<void> RegionFs::apply(const Record& r, bool live) {
  auto node_of = [&](uint64_t id) -> FileNode* {
    auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : it->second.get();
  };
  switch (r.type) {
    case RecordType::kCounters:
      next_id_ = std::max(next_id_, r.a);
      next_allocation_ = std::max(next_allocation_, r.b);
      return {};
    case RecordType::kCreate: {
      if (r.id == 0 || by_id_.count(r.id) || files_.count(r.name) || !valid_name(r.name))
        return damaged("file " + std::to_string(r.id) + " '" + r.name + "' created twice");
      auto node = std::make_shared<FileNode>();
      node->id = r.id;
      node->name = r.name;
      node->mtime_ns = r.a;
      by_id_[r.id] = node;
      files_[r.name] = node;
      next_id_ = std::max(next_id_, r.id + 1);
      return {};
    }
    case RecordType::kExtent: {
      FileNode* node = node_of(r.id);
      if (!node) return damaged("an extent for unknown file " + std::to_string(r.id));
      const uint64_t start = r.a, count = r.b;
      // The blocks must lie in one free range: a block never has two owners.
      auto it = free_.upper_bound(start);
      if (count == 0 || start < data_first_ || it == free_.begin())
        return damaged("file " + node->name + ": extent " + std::to_string(start) + "+" +
                       std::to_string(count) + " is not free space");
      --it;
      const uint64_t free_start = it->first, free_count = it->second;
      if (start + count > free_start + free_count)
        return damaged("file " + node->name + ": extent " + std::to_string(start) + "+" +
                       std::to_string(count) + " overlaps another");
      free_.erase(it);
      if (start > free_start) free_[free_start] = start - free_start;
      if (start + count < free_start + free_count)
        free_[start + count] = free_start + free_count - start - count;
      free_blocks_ -= count;
      auto extents = std::make_shared<std::vector<Extent>>(*node->extents);
      extents->push_back(Extent{start, count, r.c});
      node->extents = std::move(extents);
      node->allocated += count;
      next_allocation_ = std::max(next_allocation_, r.c + 1);
      return {};
    }
    case RecordType::kSize: {
      FileNode* node = node_of(r.id);
      if (!node) return damaged("a size for unknown file " + std::to_string(r.id));
      node->journaled = r.a;
      if (!live) node->size = node->durable = r.a;
      return {};
    }
    case RecordType::kRename: {
      FileNode* node = node_of(r.id);
      if (!node || !valid_name(r.name)) return damaged("a rename of unknown file " + std::to_string(r.id));
      auto taken = files_.find(r.name);
      if (taken != files_.end() && taken->second.get() != node)
        return damaged("rename over existing file " + r.name);
      auto self = files_.find(node->name);
      std::shared_ptr<FileNode> keep = self->second;
      files_.erase(self);
      node->name = r.name;
      files_[r.name] = std::move(keep);
      return {};
    }
    case RecordType::kDelete: {
      auto it = by_id_.find(r.id);
      if (it == by_id_.end()) return damaged("a removal of unknown file " + std::to_string(r.id));
      std::shared_ptr<FileNode> node = it->second;
      by_id_.erase(it);
      files_.erase(node->name);
      node->removed = true;
      for (const Extent& e : *node->extents) give_back_locked(e, live);
      node->extents = std::make_shared<std::vector<Extent>>();
      node->allocated = 0;
      return {};
    }
    case RecordType::kTrim: {
      FileNode* node = node_of(r.id);
      if (!node) return damaged("a trim of unknown file " + std::to_string(r.id));
      const uint64_t keep = r.a;
      auto extents = std::make_shared<std::vector<Extent>>();
      uint64_t held = 0;
      for (const Extent& e : *node->extents) {
        if (held >= keep) {
          give_back_locked(e, live);
          continue;
        }
        const uint64_t take = std::min(e.count, keep - held);
        extents->push_back(Extent{e.start, take, e.allocation});
        if (take < e.count) give_back_locked(Extent{e.start + take, e.count - take, e.allocation}, live);
        held += take;
      }
      node->extents = std::move(extents);
      node->allocated = held;
      // No byte lies beyond the kept blocks any more.
      const uint64_t most = keep * kPayloadBytes;
      node->size = std::min(node->size, most);
      node->durable = std::min(node->durable, most);
      node->journaled = std::min(node->journaled, most);
      return {};
    }
  }
  return damaged("unknown record type");
}

void RegionFs::give_back_locked(const Extent& e, bool live) {
  if (live) {
    // The record that frees it goes out with the next batch; reusable once that is durable.
    freed_.push_back(Freed{batches_written_ + 1, e});
    return;
  }
  uint64_t start = e.start, count = e.count;
  auto next = free_.lower_bound(start);
  if (next != free_.end() && next->first == start + count) {
    count += next->second;
    next = free_.erase(next);
  }
  if (next != free_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == start) {
      start = prev->first;
      count += prev->second;
      free_.erase(prev);
    }
  }
  free_[start] = count;
  free_blocks_ += e.count;
}

void RegionFs::release_freed_locked() {
  std::erase_if(freed_, [&](const Freed& f) {
    if (f.batch > batches_durable_) return false;
    give_back_locked(f.extent, /*live=*/false);
    return true;
  });
}

Result<void> RegionFs::commit_locked(Record r) {
  // A record goes to the journal only if it fits the state: a replay must never meet one that
  // does not (a rename onto a name another thread just created, say, is refused here instead).
  RAIDFS_CHECK(apply(r, /*live=*/true));
  queued_.push_back(std::move(r));
  return {};
}

region::Batch RegionFs::snapshot_locked() const {
  region::Batch snap{Record{RecordType::kCounters, 0, next_id_, next_allocation_}};
  std::vector<const FileNode*> nodes;
  for (const auto& [id, node] : by_id_) nodes.push_back(node.get());
  std::sort(nodes.begin(), nodes.end(), [](auto* a, auto* b) { return a->id < b->id; });
  for (const FileNode* node : nodes) {
    snap.push_back(Record{RecordType::kCreate, node->id, node->mtime_ns, 0, 0, node->name});
    for (const Extent& e : *node->extents)
      snap.push_back(Record{RecordType::kExtent, node->id, e.start, e.count, e.allocation});
    snap.push_back(Record{RecordType::kSize, node->id, node->durable});
  }
  return snap;
}

Result<void> RegionFs::write_journal_locked() {
  if (read_only_) return fail(EROFS, "the metadata region is open read-only");
  if (queued_.empty()) return {};
  // Sizes that became durable ride along with records that go out anyway (a size is only a
  // lower bound: the probe at open finds the rest).
  for (const auto& [id, node] : by_id_)
    if (node->durable > node->journaled) RAIDFS_CHECK(commit_locked(Record{RecordType::kSize, id, node->durable}));
  const uint64_t journal_before = journal_.used_blocks();
  auto appended = journal_.append(*device_, queued_);
  if (appended) {
    written_blocks_.fetch_add((journal_.used_blocks() - journal_before) * device_->copy_count(),
                              std::memory_order_relaxed);
    ++batches_written_;
    queued_.clear();
    return {};
  }
  if (appended.error().code != ENOSPC) return appended;
  // The area is full: the state so far, as a snapshot, into the other one (made durable there).
  RAIDFS_CHECK(journal_.roll(*device_, snapshot_locked()));
  written_blocks_.fetch_add(journal_.used_blocks() * device_->copy_count(), std::memory_order_relaxed);
  ++batches_written_;
  batches_durable_ = batches_written_;
  queued_.clear();
  for (auto& [id, node] : by_id_) node->journaled = node->durable;
  release_freed_locked();
  return {};
}

Result<void> RegionFs::make_durable() {
  uint64_t written;
  {
    std::lock_guard lock(mu_);
    RAIDFS_CHECK(write_journal_locked());
    written = batches_written_;
  }
  RAIDFS_CHECK(device_->flush());
  std::lock_guard lock(mu_);
  batches_durable_ = std::max(batches_durable_, written);
  release_freed_locked();
  return {};
}

// --- space -------------------------------------------------------------------------------------

Result<RegionFs::Extent> RegionFs::take_free_locked(uint64_t want, uint64_t near) {
  if (free_.empty()) return fail(ENOSPC, "the metadata region is full");
  // Right after the file's last extent, so that it stays in one piece; else the first range
  // that holds all of it; else the largest there is.
  auto it = free_.find(near);
  if (it == free_.end())
    it = std::find_if(free_.begin(), free_.end(), [&](const auto& f) { return f.second >= want; });
  if (it == free_.end())
    it = std::max_element(free_.begin(), free_.end(),
                          [](const auto& a, const auto& b) { return a.second < b.second; });
  return Extent{it->first, std::min(want, it->second), next_allocation_};
}

Result<void> RegionFs::allocate_locked(FileNode& node, uint64_t blocks) {
  while (node.allocated < blocks) {
    const uint64_t want = std::max(blocks - node.allocated,
                                   std::clamp(node.allocated, kGrowMin, kGrowMax));
    const uint64_t near = node.extents->empty()
                              ? 0 : node.extents->back().start + node.extents->back().count;
    RAIDFS_TRY(Extent e, take_free_locked(want, near));
    RAIDFS_CHECK(commit_locked(Record{RecordType::kExtent, node.id, e.start, e.count, e.allocation}));
  }
  return {};
}

std::vector<RegionFs::BlockPlace> RegionFs::places(const std::vector<Extent>& extents,
                                                    uint64_t first, uint64_t count) {
  std::vector<BlockPlace> out;
  out.reserve(count);
  uint64_t base = 0;  // file index of the extent's first block
  for (const Extent& e : extents) {
    while (out.size() < count && first + out.size() < base + e.count) {
      const uint64_t index = first + out.size();
      if (index < base) break;
      out.push_back(BlockPlace{e.start + (index - base), e.allocation});
    }
    base += e.count;
    if (out.size() == count) break;
  }
  return out;
}

// --- file blocks -------------------------------------------------------------------------------

Result<void> RegionFs::write_file_blocks(FileNode& node, uint64_t first, uint64_t count,
                                         const uint8_t* payload, uint32_t last_used) {
  ExtentList extents;
  for (int attempt = 0;; ++attempt) {
    std::unique_lock lock(mu_);
    if (node.removed) return fail(ENOENT, "metadata file " + node.name + " was removed");
    auto allocated = allocate_locked(node, first + count);
    if (!allocated && allocated.error().code == ENOSPC && attempt == 0 && !freed_.empty()) {
      lock.unlock();
      RAIDFS_CHECK(make_durable());  // space freed earlier becomes reusable
      continue;
    }
    RAIDFS_CHECK(allocated);
    // Its extents are on record before its blocks go there (a crash keeps neither or both
    // reachable: the probe at open only follows recorded extents).
    RAIDFS_CHECK(write_journal_locked());
    extents = node.extents;
    break;
  }
  const std::vector<BlockPlace> at = places(*extents, first, count);
  AlignedBuffer blocks(count * kBlockBytes);
  for (uint64_t i = 0; i < count; ++i) {
    uint8_t* block = blocks.data() + i * kBlockBytes;
    const uint32_t used = i + 1 == count ? last_used : kPayloadBytes;
    std::memcpy(block + region::kHeaderBytes, payload + i * kPayloadBytes, used);
    region::seal_block(block, BlockHeader{node.id, at[i].allocation, static_cast<uint32_t>(first + i), used},
                       salt_);
  }
  for (uint64_t i = 0; i < count;) {
    uint64_t n = 1;
    const uint64_t end = device_->run_end(at[i].block);
    while (i + n < count && at[i + n].block == at[i].block + n && at[i].block + n < end) ++n;
    RAIDFS_CHECK(device_->write(at[i].block, static_cast<uint32_t>(n), blocks.data() + i * kBlockBytes));
    written_blocks_.fetch_add(n * device_->copy_count(), std::memory_order_relaxed);
    i += n;
  }
  return {};
}

Result<void> RegionFs::read_file(const std::shared_ptr<FileNode>& node, const ExtentList& extents,
                                 uint64_t size, uint64_t offset, size_t n, uint8_t* dest) {
  const uint64_t first = offset / kPayloadBytes;
  const uint64_t count = (offset + n - 1) / kPayloadBytes - first + 1;
  const std::vector<BlockPlace> at = places(*extents, first, count);
  if (at.size() != count)
    return fail(EIO, "metadata file " + name_of(*node) + ": bytes past its extents");
  auto good = [&](const uint8_t* block, uint64_t i) {
    BlockHeader h;
    const uint64_t index = first + i;
    const uint64_t needed = std::min<uint64_t>(kPayloadBytes, size - index * kPayloadBytes);
    return region::open_block(block, salt_, &h) && h.owner == node->id &&
           h.allocation == at[i].allocation && h.index == index && h.used >= needed;
  };
  AlignedBuffer blocks(count * kBlockBytes);
  std::vector<bool> ok(count, false);
  // Copy 0 of each run in one read; what fails there, block by block from the other copies.
  for (uint64_t i = 0; i < count;) {
    uint64_t len = 1;
    const uint64_t end = device_->run_end(at[i].block);
    while (i + len < count && at[i + len].block == at[i].block + len && at[i].block + len < end) ++len;
    if (device_->read(at[i].block, static_cast<uint32_t>(len), 0, blocks.data() + i * kBlockBytes))
      for (uint64_t j = i; j < i + len; ++j) ok[j] = good(blocks.data() + j * kBlockBytes, j);
    i += len;
  }
  for (uint64_t i = 0; i < count; ++i) {
    if (ok[i]) continue;
    uint8_t* block = blocks.data() + i * kBlockBytes;
    std::vector<uint32_t> bad;  // copies that were read but not good: healed below
    if (device_->read(at[i].block, 1, 0, block)) {
      if (good(block, i)) {
        ok[i] = true;  // a write had just reached it
        continue;
      }
      bad.push_back(0);
    }
    for (uint32_t c = 1; c < device_->copy_count() && !ok[i]; ++c) {
      if (!device_->read(at[i].block, 1, c, block)) continue;
      if (good(block, i)) ok[i] = true;
      else bad.push_back(c);
    }
    if (!ok[i])
      return fail(EIO, "metadata file " + name_of(*node) + ": block " + std::to_string(first + i) +
                           " has no good copy (" + std::to_string(device_->copy_count()) + " tried)");
    heal(node, at[i].block, bad, block);
  }
  for (uint64_t i = 0; i < count; ++i) {
    const uint64_t index = first + i;
    const uint64_t from = std::max(offset, index * kPayloadBytes);
    const uint64_t to = std::min<uint64_t>(offset + n, (index + 1) * kPayloadBytes);
    std::memcpy(dest + (from - offset),
                blocks.data() + i * kBlockBytes + region::kHeaderBytes + (from - index * kPayloadBytes),
                to - from);
  }
  return {};
}

void RegionFs::heal(const std::shared_ptr<FileNode>& node, uint64_t block,
                    const std::vector<uint32_t>& copies, const uint8_t* good) {
  if (read_only_ || copies.empty()) return;
  // Only a file nobody writes: a writer may be lengthening this very block. Removal takes
  // io_mu as well, so the block is still this file's while it is held.
  std::unique_lock io(node->io_mu, std::try_to_lock);
  if (!io.owns_lock()) return;
  {
    std::lock_guard lock(mu_);
    if (node->writers > 0 || node->removed) return;
  }
  for (uint32_t c : copies)
    if (device_->write_copy(block, 1, c, good)) healed_.fetch_add(1, std::memory_order_relaxed);
}

// --- the namespace -----------------------------------------------------------------------------

std::string RegionFs::name_of(const FileNode& node) const {
  std::lock_guard lock(mu_);
  return node.name;
}

Result<std::shared_ptr<RegionFs::FileNode>> RegionFs::find_locked(std::string_view name) const {
  auto it = files_.find(std::string(name));
  if (it == files_.end()) return fail(ENOENT, "no metadata file " + std::string(name));
  return it->second;
}

Result<void> RegionFs::remove_named(std::string_view name) {
  // io_mu first (the lock order), so that no heal or scrub repair writes into its blocks once
  // they are given back.
  std::shared_ptr<FileNode> node;
  {
    std::lock_guard lock(mu_);
    auto it = files_.find(std::string(name));
    if (it == files_.end()) return {};
    node = it->second;
  }
  std::lock_guard io(node->io_mu);
  std::lock_guard lock(mu_);
  if (node->removed) return {};
  RAIDFS_CHECK(commit_locked(Record{RecordType::kDelete, node->id}));
  return write_journal_locked();
}

Result<std::unique_ptr<RegionFs::Writer>> RegionFs::create(std::string_view name) {
  if (read_only_) return fail(EROFS, "the metadata region is open read-only");
  if (!valid_name(name)) return fail(EINVAL, "bad metadata file name '" + std::string(name) + "'");
  RAIDFS_CHECK(remove_named(name));
  std::lock_guard lock(mu_);
  if (files_.count(std::string(name)))
    return fail(EEXIST, "metadata file " + std::string(name) + " created twice at once");
  const uint64_t id = next_id_;
  RAIDFS_CHECK(commit_locked(Record{RecordType::kCreate, id, now_ns(), 0, 0, std::string(name)}));
  RAIDFS_CHECK(write_journal_locked());
  std::shared_ptr<FileNode> node = by_id_[id];
  ++node->writers;
  return std::unique_ptr<Writer>(new Writer(*this, node, 0, {}));
}

Result<std::unique_ptr<RegionFs::Writer>> RegionFs::append_to(std::string_view name) {
  if (read_only_) return fail(EROFS, "the metadata region is open read-only");
  std::shared_ptr<FileNode> node;
  uint64_t size;
  ExtentList extents;
  {
    std::lock_guard lock(mu_);
    RAIDFS_TRY(node, find_locked(name));
    ++node->writers;
    size = node->size;
    extents = node->extents;
  }
  const uint64_t full = size / kPayloadBytes * kPayloadBytes;
  std::vector<uint8_t> tail(size - full);
  if (!tail.empty()) {
    auto r = read_file(node, extents, size, full, tail.size(), tail.data());
    if (!r) {
      std::lock_guard lock(mu_);
      --node->writers;
      return std::unexpected(r.error());
    }
  }
  return std::unique_ptr<Writer>(new Writer(*this, node, full, std::move(tail)));
}

Result<std::unique_ptr<RegionFs::Reader>> RegionFs::open_file(std::string_view name) {
  std::lock_guard lock(mu_);
  RAIDFS_TRY(auto node, find_locked(name));
  return std::unique_ptr<Reader>(new Reader(*this, node));
}

bool RegionFs::exists(std::string_view name) const {
  std::lock_guard lock(mu_);
  return files_.count(std::string(name)) != 0;
}

std::vector<std::string> RegionFs::list() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> names;
  for (const auto& [name, node] : files_) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

Result<uint64_t> RegionFs::file_size(std::string_view name) const {
  std::lock_guard lock(mu_);
  RAIDFS_TRY(auto node, find_locked(name));
  return node->size;
}

Result<uint64_t> RegionFs::mtime_ns(std::string_view name) const {
  std::lock_guard lock(mu_);
  RAIDFS_TRY(auto node, find_locked(name));
  return node->mtime_ns;
}

Result<void> RegionFs::remove(std::string_view name) {
  if (read_only_) return fail(EROFS, "the metadata region is open read-only");
  if (!exists(name)) return fail(ENOENT, "no metadata file " + std::string(name));
  return remove_named(name);
}

Result<void> RegionFs::rename(std::string_view from, std::string_view to) {
  if (read_only_) return fail(EROFS, "the metadata region is open read-only");
  if (!valid_name(to)) return fail(EINVAL, "bad metadata file name '" + std::string(to) + "'");
  for (;;) {
    std::shared_ptr<FileNode> target;  // the file called `to` now, which the rename replaces
    {
      std::lock_guard lock(mu_);
      RAIDFS_TRY(auto node, find_locked(from));
      if (node->name == to) return {};
      if (auto it = files_.find(std::string(to)); it != files_.end()) target = it->second;
    }
    // io_mu first (the lock order), as remove_named: no heal or scrub repair writes into the
    // replaced file's blocks once they are given back.
    std::unique_lock<std::mutex> io;
    if (target) io = std::unique_lock(target->io_mu);
    std::lock_guard lock(mu_);
    RAIDFS_TRY(auto node, find_locked(from));
    if (node->name == to) return {};
    auto it = files_.find(std::string(to));
    if ((it == files_.end() ? nullptr : it->second) != target) continue;  // changed meanwhile
    // The removal and the rename in one journal batch: a crash keeps both or neither, so the
    // name never goes missing (RocksDB's CURRENT is installed this way).
    if (target) RAIDFS_CHECK(commit_locked(Record{RecordType::kDelete, target->id}));
    RAIDFS_CHECK(commit_locked(Record{RecordType::kRename, node->id, 0, 0, 0, std::string(to)}));
    return write_journal_locked();
  }
}

Result<void> RegionFs::sync_namespace() {
  if (read_only_) return {};
  return make_durable();
}

Result<std::vector<uint8_t>> RegionFs::truncate_node(const std::shared_ptr<FileNode>& node,
                                                     uint64_t size) {
  std::lock_guard io(node->io_mu);
  uint64_t current;
  ExtentList extents;
  {
    std::lock_guard lock(mu_);
    current = node->size;
    extents = node->extents;
  }
  if (size > current) return fail(EINVAL, "metadata file " + name_of(*node) + ": truncate cannot grow it");
  const uint64_t keep = size / kPayloadBytes;
  std::vector<uint8_t> tail(size - keep * kPayloadBytes);
  if (!tail.empty()) RAIDFS_CHECK(read_file(node, extents, current, keep * kPayloadBytes, tail.size(), tail.data()));
  if (size == current) return tail;
  {
    std::lock_guard lock(mu_);
    RAIDFS_CHECK(commit_locked(Record{RecordType::kTrim, node->id, keep}));
  }
  if (!tail.empty()) {
    // The new last block goes to a fresh extent: the old one's copies hold longer, other bytes.
    std::vector<uint8_t> padded(kPayloadBytes);
    std::memcpy(padded.data(), tail.data(), tail.size());
    RAIDFS_CHECK(write_file_blocks(*node, keep, 1, padded.data(), static_cast<uint32_t>(tail.size())));
  }
  RAIDFS_CHECK(make_durable());
  {
    std::lock_guard lock(mu_);
    node->size = node->durable = size;
    RAIDFS_CHECK(commit_locked(Record{RecordType::kSize, node->id, size}));
  }
  RAIDFS_CHECK(make_durable());
  return tail;
}

Result<void> RegionFs::truncate(std::string_view name, uint64_t size) {
  if (read_only_) return fail(EROFS, "the metadata region is open read-only");
  std::shared_ptr<FileNode> node;
  {
    std::lock_guard lock(mu_);
    RAIDFS_TRY(node, find_locked(name));
    if (node->writers > 0) return fail(EBUSY, "metadata file " + node->name + " is being written");
    if (size == node->size) return {};
  }
  RAIDFS_CHECK(truncate_node(node, size));
  return {};
}

RegionFs::Usage RegionFs::usage() const {
  std::lock_guard lock(mu_);
  Usage u;
  u.bytes = device_->block_count() * kBlockBytes;
  u.journal_bytes = data_first_ * kBlockBytes;
  uint64_t freed = 0;
  for (const Freed& f : freed_) freed += f.extent.count;
  u.free_bytes = (free_blocks_ + freed) * kBlockBytes;
  for (const auto& [id, node] : by_id_) u.used_bytes += node->allocated * kBlockBytes;
  u.files = by_id_.size();
  u.copies = device_->copy_count();
  u.healed_copies = healed_.load();
  u.written_bytes = written_blocks_.load() * kBlockBytes;
  return u;
}

// --- scrub -------------------------------------------------------------------------------------

Result<RegionFs::ScrubReport> RegionFs::scrub(bool repair) { return check_copies(repair, false); }

Result<RegionFs::ScrubReport> RegionFs::check_copies(bool repair, bool window_only) {
  if (repair && read_only_) return fail(EROFS, "the metadata region is open read-only");
  ScrubReport report;
  const uint32_t copies = device_->copy_count();
  auto problem = [&](std::string line) {
    if (report.problems.size() < kProblemsMax) report.problems.push_back(std::move(line));
  };
  // Looks at every copy of one block; `good` judges a copy. Rewrites bad copies (and, repairing,
  // those that cannot be read) from the best good one, which `better` picks. In the crash window
  // (blocks written since the last flush may be: the journal, a file's blocks past its journaled
  // size), a copy that is not good is one a write had not reached yet: behind, not bad.
  AlignedBuffer copy_bytes(uint64_t{copies} * kBlockBytes);
  auto check_block = [&](uint64_t block, const std::string& what, bool in_window, auto&& good,
                         auto&& better) {
    ++report.blocks;
    std::vector<uint32_t> bad, unreadable;
    int best = -1;
    for (uint32_t c = 0; c < copies; ++c) {
      uint8_t* bytes = copy_bytes.data() + uint64_t{c} * kBlockBytes;
      if (!device_->read(block, 1, c, bytes)) {
        unreadable.push_back(c);
        continue;
      }
      if (!good(bytes)) {
        bad.push_back(c);
        continue;
      }
      if (best < 0 || better(bytes, copy_bytes.data() + uint64_t(best) * kBlockBytes)) {
        if (best >= 0) bad.push_back(static_cast<uint32_t>(best));  // shorter: stale
        best = static_cast<int>(c);
      } else if (std::memcmp(bytes, copy_bytes.data() + uint64_t(best) * kBlockBytes, kBlockBytes)) {
        bad.push_back(c);
      }
    }
    (in_window ? report.behind_copies : report.bad_copies) += bad.size();
    report.unreadable_copies += unreadable.size();
    if (best < 0) {
      ++report.lost_blocks;
      problem(what + ": no good copy");
      return;
    }
    if (!bad.empty() && !in_window)
      problem(what + ": " + std::to_string(bad.size()) + " bad cop" + (bad.size() > 1 ? "ies" : "y"));
    if (!repair) return;
    const uint8_t* source = copy_bytes.data() + uint64_t(best) * kBlockBytes;
    for (uint32_t c : bad)
      if (device_->write_copy(block, 1, c, source)) ++report.repaired;
    for (uint32_t c : unreadable)
      if (device_->write_copy(block, 1, c, source)) ++report.restored;
  };

  {
    // The journal: every block of the current epoch, identical in every copy.
    std::lock_guard lock(mu_);
    const uint64_t first = journal_.first_block();
    for (uint64_t i = 0; i < journal_.used_blocks(); ++i)
      check_block(first + i, "journal block " + std::to_string(i), /*in_window=*/true,
                  [&](const uint8_t* b) { return journal_.block_is_current(b, i); },
                  [](const uint8_t*, const uint8_t*) { return false; });
  }

  std::vector<std::shared_ptr<FileNode>> nodes;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, node] : by_id_) nodes.push_back(node);
  }
  for (const std::shared_ptr<FileNode>& node : nodes) {
    std::lock_guard io(node->io_mu);  // no block of it changes meanwhile, nor is given back
    uint64_t size, window;
    ExtentList extents;
    std::string name;  // a rename may change it meanwhile
    {
      std::lock_guard lock(mu_);
      if (node->removed) continue;
      name = node->name;
      size = node->size;
      window = node->journaled / kPayloadBytes;
      extents = node->extents;
    }
    const uint64_t count = blocks_for(size);
    const std::vector<BlockPlace> at = places(*extents, 0, count);
    if (at.size() != count) {
      ++report.lost_blocks;
      problem("metadata file " + name + ": its size runs past its extents");
      continue;
    }
    for (uint64_t i = window_only ? window : 0; i < count; ++i) {
      const uint32_t needed = static_cast<uint32_t>(std::min<uint64_t>(kPayloadBytes, size - i * kPayloadBytes));
      auto used_of = [](const uint8_t* b) { return region::load32(b + 28); };
      check_block(at[i].block, "metadata file " + name + " block " + std::to_string(i),
                  i >= window,
                  [&](const uint8_t* b) {
                    BlockHeader h;
                    return region::open_block(b, salt_, &h) && h.owner == node->id &&
                           h.allocation == at[i].allocation && h.index == i && h.used >= needed;
                  },
                  [&](const uint8_t* a, const uint8_t* b) { return used_of(a) > used_of(b); });
    }
  }
  return report;
}

// --- Writer and Reader -------------------------------------------------------------------------

RegionFs::Writer::~Writer() { (void)close(); }

Result<void> RegionFs::Writer::append(std::span<const uint8_t> data) {
  std::lock_guard lock(mu_);
  if (closed_) return fail(EBADF, "metadata file " + fs_.name_of(*node_) + " is closed");
  if (tail_.size() + data.size() < kPayloadBytes) {
    tail_.insert(tail_.end(), data.begin(), data.end());
    tail_written_ = tail_written_ && data.empty();
    return {};
  }
  // Whole blocks go out now; what is left over waits for the next append or a flush.
  std::vector<uint8_t> bytes(tail_);
  bytes.insert(bytes.end(), data.begin(), data.end());
  const uint64_t whole = bytes.size() / kPayloadBytes;
  {
    std::lock_guard io(node_->io_mu);
    RAIDFS_CHECK(fs_.write_file_blocks(*node_, full_ / kPayloadBytes, whole, bytes.data(), kPayloadBytes));
  }
  full_ += whole * kPayloadBytes;
  tail_.assign(bytes.begin() + static_cast<ptrdiff_t>(whole * kPayloadBytes), bytes.end());
  tail_written_ = tail_.empty();
  std::lock_guard fs_lock(fs_.mu_);
  node_->size = std::max(node_->size, full_);
  return {};
}

Result<void> RegionFs::Writer::flush_locked() {
  if (closed_ || tail_written_) return {};
  std::vector<uint8_t> padded(kPayloadBytes);
  std::memcpy(padded.data(), tail_.data(), tail_.size());
  {
    std::lock_guard io(node_->io_mu);
    RAIDFS_CHECK(fs_.write_file_blocks(*node_, full_ / kPayloadBytes, 1, padded.data(),
                                       static_cast<uint32_t>(tail_.size())));
  }
  tail_written_ = true;
  std::lock_guard fs_lock(fs_.mu_);
  node_->size = std::max(node_->size, full_ + tail_.size());
  return {};
}

Result<void> RegionFs::Writer::flush() {
  std::lock_guard lock(mu_);
  return flush_locked();
}

Result<void> RegionFs::Writer::sync() {
  uint64_t written;
  {
    std::lock_guard lock(mu_);
    if (closed_) return {};
    RAIDFS_CHECK(flush_locked());
    written = full_ + tail_.size();
  }
  // Appends may go on meanwhile: the flush covers what was written before it began.
  RAIDFS_CHECK(fs_.make_durable());
  std::lock_guard fs_lock(fs_.mu_);
  node_->durable = std::max(node_->durable, written);
  return {};
}

Result<void> RegionFs::Writer::truncate(uint64_t size) {
  std::lock_guard lock(mu_);
  if (closed_) return fail(EBADF, "metadata file " + fs_.name_of(*node_) + " is closed");
  if (size == full_ + tail_.size()) return {};
  RAIDFS_CHECK(flush_locked());
  RAIDFS_TRY(tail_, fs_.truncate_node(node_, size));
  full_ = size - tail_.size();
  tail_written_ = true;
  return {};
}

Result<void> RegionFs::Writer::close() {
  std::lock_guard lock(mu_);
  if (closed_) return {};
  auto flushed = flush_locked();
  closed_ = true;
  std::lock_guard fs_lock(fs_.mu_);
  --node_->writers;
  if (!flushed || node_->removed) return flushed;
  // The space it took to grow in one piece, beyond its last block, goes back.
  const uint64_t keep = blocks_for(full_ + tail_.size());
  if (node_->allocated > keep) RAIDFS_CHECK(fs_.commit_locked(Record{RecordType::kTrim, node_->id, keep}));
  return fs_.write_journal_locked();
}

uint64_t RegionFs::Reader::size() const {
  std::lock_guard lock(fs_.mu_);
  return node_->size;
}

Result<size_t> RegionFs::Reader::read(uint64_t offset, size_t n, uint8_t* dest) {
  uint64_t size;
  ExtentList extents;
  {
    std::lock_guard lock(fs_.mu_);
    size = node_->size;
    extents = node_->extents;
  }
  if (offset >= size || n == 0) return size_t{0};
  n = static_cast<size_t>(std::min<uint64_t>(n, size - offset));
  RAIDFS_CHECK(fs_.read_file(node_, extents, size, offset, n, dest));
  return n;
}

}  // namespace raidfs::meta
