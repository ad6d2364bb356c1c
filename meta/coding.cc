#include "meta/coding.h"

namespace raidfs::meta {

void put_u8(std::string& dst, uint8_t v) { dst.push_back(static_cast<char>(v)); }

void put_u16(std::string& dst, uint16_t v) {
  put_u8(dst, static_cast<uint8_t>(v >> 8));
  put_u8(dst, static_cast<uint8_t>(v));
}

void put_u32(std::string& dst, uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>(v >> (24 - 8 * i));
  dst.append(b, 4);
}

void put_u64(std::string& dst, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (56 - 8 * i));
  dst.append(b, 8);
}

void put_i64(std::string& dst, int64_t v) { put_u64(dst, static_cast<uint64_t>(v)); }

void put_bytes(std::string& dst, std::string_view bytes) {
  put_u32(dst, static_cast<uint32_t>(bytes.size()));
  dst.append(bytes);
}

uint32_t load_u32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

uint64_t load_u64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

std::unexpected<Error> corrupt(std::string_view what) {
  return raidfs::fail(EIO, "corrupt record: " + std::string(what));
}

std::unexpected<Error> ByteReader::fail(std::string_view why) const {
  return corrupt(std::string(what_) + ": " + std::string(why));
}

Result<std::string_view> ByteReader::raw(size_t count) {
  if (rest_.size() < count)
    return fail("truncated (need " + std::to_string(count) + " bytes, " +
                std::to_string(rest_.size()) + " left)");
  std::string_view out = rest_.substr(0, count);
  rest_.remove_prefix(count);
  return out;
}

Result<uint8_t> ByteReader::u8() {
  RAIDFS_TRY(auto b, raw(1));
  return static_cast<uint8_t>(b[0]);
}

Result<uint16_t> ByteReader::u16() {
  RAIDFS_TRY(auto b, raw(2));
  return static_cast<uint16_t>((static_cast<uint8_t>(b[0]) << 8) | static_cast<uint8_t>(b[1]));
}

Result<uint32_t> ByteReader::u32() {
  RAIDFS_TRY(auto b, raw(4));
  return load_u32(b.data());
}

Result<uint64_t> ByteReader::u64() {
  RAIDFS_TRY(auto b, raw(8));
  return load_u64(b.data());
}

Result<int64_t> ByteReader::i64() {
  RAIDFS_TRY(uint64_t v, u64());
  return static_cast<int64_t>(v);
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
