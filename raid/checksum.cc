#include "raid/checksum.h"

#include <isa-l/crc.h>

#include "raid/endian.h"

namespace raidfs {

uint32_t crc32c(std::span<const uint8_t> bytes, uint32_t crc) {
  // crc32_iscsi applies no pre/post inversion; the standard CRC-32C does both.
  return ~crc32_iscsi(const_cast<uint8_t*>(bytes.data()), static_cast<int>(bytes.size()), ~crc);
}

uint32_t block_checksum(const BlockVersion& v, std::span<const uint8_t> block) {
  uint8_t tag[20];
  store_le64(tag, v.stripe_id);
  store_le64(tag + 8, v.generation);
  store_le32(tag + 16, v.block_index);
  return crc32c(block, crc32c(tag));
}

}  // namespace raidfs
