#include "meta/coding.h"

namespace raidfs::meta {

void put_bytes(std::string& dst, std::string_view bytes) {
  put_u32(dst, static_cast<uint32_t>(bytes.size()));
  dst.append(bytes);
}

std::unexpected<Error> corrupt(std::string_view what) {
  return raidfs::fail(EIO, "corrupt record: " + std::string(what));
}

std::unexpected<Error> ByteReader::fail(std::string_view why) const {
  return corrupt(std::string(what_) + ": " + std::string(why));
}

std::unexpected<Error> ByteReader::truncated(size_t count) const {
  return fail("truncated (need " + std::to_string(count) + " bytes, " +
              std::to_string(rest_.size()) + " left)");
}

Result<std::string_view> ByteReader::bytes(uint32_t max_bytes) {
  RAIDFS_TRY(uint32_t n, u32());
  if (n > max_bytes)
    return fail("length " + std::to_string(n) + " exceeds limit " + std::to_string(max_bytes));
  return raw(n);
}

Result<void> ByteReader::expect_end() const {
  if (!rest_.empty()) return fail(std::to_string(rest_.size()) + " trailing bytes");
  return {};
}

}  // namespace raidfs::meta
