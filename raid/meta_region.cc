// MetaRegion: the mirrored metadata region's layout. See meta_region.h.
#include "raid/meta_region.h"

#include <algorithm>
#include <string>

namespace raidfs {

Result<MetaRegion> MetaRegion::create(uint32_t members, uint32_t copies, uint64_t offset,
                                      uint64_t bytes) {
  if (copies == 0 || copies > members)
    return fail(EINVAL, "metadata region: " + std::to_string(copies) + " copies on " +
                            std::to_string(members) + " members");
  if (offset % kRowBytes != 0 || bytes % kRowBytes != 0)
    return fail(EINVAL, "metadata region: offset and size must be multiples of 1 MiB");
  MetaRegion region(members, copies, offset, bytes);
  if (region.rows_ == 0) return fail(EINVAL, "metadata region: smaller than one mirrored row");
  return region;
}

uint64_t MetaRegion::default_logical_bytes(uint64_t data_capacity) {
  return std::clamp<uint64_t>(data_capacity / 50, uint64_t{64} << 20, uint64_t{64} << 30);
}

uint64_t MetaRegion::member_bytes_for(uint64_t logical_bytes, uint32_t members, uint32_t copies) {
  const uint64_t rows = (logical_bytes + kRowBytes - 1) / kRowBytes;
  // rows · copies slots spread over n members: ⌈rows · copies / n⌉ member rows each.
  return (rows * copies + members - 1) / members * kRowBytes;
}

}  // namespace raidfs
