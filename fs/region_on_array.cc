// ArrayRegionDevice: the array's metadata region as a meta::RegionDevice. See region_on_array.h.
#include "fs/region_on_array.h"

#include <atomic>
#include <unordered_map>

#include "raid/checksum.h"

namespace raidfs::fs {
namespace {

std::atomic<uint64_t> next_device_id{1};
// Per thread: each device's channel for it. Weak: the device owns them and closes them with
// itself, while threads that used it live on.
thread_local std::unordered_map<uint64_t, std::weak_ptr<void>> thread_channels;

}  // namespace

uint32_t region_salt(const ArrayUuid& uuid) { return crc32c(uuid); }

ArrayRegionDevice::ArrayRegionDevice(Array& array, WrapMemberIo wrap)
    : array_(array), region_(*array.meta_region()), wrap_(std::move(wrap)), id_(next_device_id++) {}

ArrayRegionDevice::~ArrayRegionDevice() {
  thread_channels.erase(id_);
}

Result<IoChannel*> ArrayRegionDevice::channel() {
  if (auto known = thread_channels[id_].lock()) return static_cast<Channel*>(known.get())->channel.get();
  auto c = std::make_shared<Channel>();
  c->io = array_.make_region_io();
  if (wrap_) c->io = wrap_(std::move(c->io));
  c->channel = std::make_unique<IoChannel>(array_, *c->io);
  thread_channels[id_] = c;
  std::lock_guard lock(mu_);
  channels_.push_back(c);
  return c->channel.get();
}

Result<void> ArrayRegionDevice::read(uint64_t block, uint32_t count, uint32_t copy, uint8_t* dest) {
  if (!array_.meta_copy_readable(block, copy))  // no ring needed to say so
    return fail(ENXIO, "metadata copy " + std::to_string(copy) + " cannot be read");
  RAIDFS_TRY(IoChannel* ch, channel());
  return array_.read_meta(*ch, block, count, copy, dest);
}

Result<void> ArrayRegionDevice::write(uint64_t block, uint32_t count, const uint8_t* source) {
  RAIDFS_TRY(IoChannel* ch, channel());
  uint64_t members = 0;
  for (uint32_t c = 0; c < region_.copies(); ++c) members |= uint64_t{1} << region_.place(block, c).member;
  auto written = array_.write_meta(*ch, block, count, source);
  // After the write, failed or not: a flush that takes these bits must have begun once the write
  // was done, or it does not cover it (marked before, a flush racing the write would take them
  // and the writer's own flush would then find nothing to do).
  dirty_.fetch_or(members);
  return written;
}

Result<void> ArrayRegionDevice::write_copy(uint64_t block, uint32_t count, uint32_t copy,
                                           const uint8_t* source) {
  RAIDFS_TRY(IoChannel* ch, channel());
  auto written = array_.write_meta_copy(*ch, block, count, copy, source);
  dirty_.fetch_or(uint64_t{1} << region_.place(block, copy).member);  // after it, as write()
  return written;
}

Result<void> ArrayRegionDevice::flush() {
  RAIDFS_TRY(IoChannel* ch, channel());
  // Only the members written since the last flush: a commit's log block is on m+1 of them. One
  // flush at a time, so that a caller who finds nothing left to flush knows the flush that took
  // its members has completed.
  std::lock_guard lock(flush_mu_);
  const uint64_t members = dirty_.exchange(0);
  if (members == 0) return {};
  auto flushed = array_.flush_meta(*ch, members);
  if (!flushed) dirty_.fetch_or(members);  // still to be made durable
  return flushed;
}

}  // namespace raidfs::fs
