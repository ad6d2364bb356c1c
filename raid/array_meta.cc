// Array: reads and writes of the metadata region's mirrored blocks (raid/meta_region.h).
#include <string>

#include "raid/array.h"

namespace raidfs {

Result<void> Array::check_meta_run(uint64_t block, uint32_t count) const {
  if (!meta_region_) return fail(EINVAL, "this array has no metadata region");
  if (count == 0 || block >= meta_region_->block_count() ||
      count > meta_region_->run_end(block) - block)
    return fail(EINVAL, "metadata region blocks " + std::to_string(block) + "+" +
                            std::to_string(count) + ": out of range or across a row");
  return {};
}

bool Array::meta_copy_readable(uint64_t block, uint32_t copy) const {
  if (!meta_region_ || copy >= meta_region_->copies()) return false;
  const uint32_t member = meta_region_->place(block, copy).member;
  const MemberState s = member_state(member);
  return fds_[member] >= 0 &&
         (s == MemberState::kActive || (s == MemberState::kRebuilding && meta_restored_[member]));
}

Result<void> Array::read_meta(IoChannel& channel, uint64_t block, uint32_t count, uint32_t copy,
                              uint8_t* dest) {
  RAIDFS_CHECK(check_meta_run(block, count));
  if (copy >= meta_region_->copies()) return fail(EINVAL, "no metadata copy " + std::to_string(copy));
  const MetaRegion::Place at = meta_region_->place(block, copy);
  if (!meta_copy_readable(block, copy))
    return fail(ENXIO, "metadata copy " + std::to_string(copy) + " is on member " +
                           std::to_string(at.member) + ", which cannot be read");
  channel.batch_.clear();
  channel.batch_.push_back({IoOp::kRead, at.member, at.offset, count * MetaRegion::kBlockBytes, dest, 0});
  RAIDFS_CHECK(execute(channel));
  if (!channel.batch_[0].ok())  // a device error: execute() failed the member
    return fail(EIO, "metadata copy " + std::to_string(copy) + ": member " +
                         std::to_string(at.member) + " failed the read");
  return {};
}

Result<void> Array::write_meta(IoChannel& channel, uint64_t block, uint32_t count,
                               const uint8_t* source) {
  RAIDFS_CHECK(check_meta_run(block, count));
  RAIDFS_CHECK(check_quorum("cannot write metadata"));
  channel.batch_.clear();
  for (uint32_t copy = 0; copy < meta_region_->copies(); ++copy) {
    const MetaRegion::Place at = meta_region_->place(block, copy);
    if (writable(at.member) && fds_[at.member] >= 0)
      channel.batch_.push_back({IoOp::kWrite, at.member, at.offset, count * MetaRegion::kBlockBytes,
                                const_cast<uint8_t*>(source), 0});
  }
  RAIDFS_CHECK(execute(channel));
  RAIDFS_CHECK(check_quorum("cannot write metadata"));
  RAIDFS_CHECK(settle_states(channel));
  return {};
}

Result<void> Array::write_meta_copy(IoChannel& channel, uint64_t block, uint32_t count,
                                    uint32_t copy, const uint8_t* source) {
  RAIDFS_CHECK(check_meta_run(block, count));
  if (copy >= meta_region_->copies()) return fail(EINVAL, "no metadata copy " + std::to_string(copy));
  const MetaRegion::Place at = meta_region_->place(block, copy);
  if (!writable(at.member) || fds_[at.member] < 0)
    return fail(ENXIO, "metadata copy " + std::to_string(copy) + " is on member " +
                           std::to_string(at.member) + ", which takes no writes");
  channel.batch_.clear();
  channel.batch_.push_back({IoOp::kWrite, at.member, at.offset, count * MetaRegion::kBlockBytes,
                            const_cast<uint8_t*>(source), 0});
  RAIDFS_CHECK(execute(channel));
  if (!channel.batch_[0].ok())
    return fail(EIO, "metadata copy " + std::to_string(copy) + ": member " +
                         std::to_string(at.member) + " failed the write");
  RAIDFS_CHECK(settle_states(channel));
  return {};
}

}  // namespace raidfs
