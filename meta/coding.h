// coding: the one place where meta/ turns integers and strings into bytes and back.
//
// Every key and every value that meta/ stores in RocksDB is built with these helpers. Integers are
// big-endian and fixed-width, so that the byte order of an encoded key equals the numeric order of
// the integers in it (RocksDB's default comparator is bytewise). Variable-length fields are a
// 32-bit big-endian length followed by the bytes.
//
// Encoding appends to a std::string and cannot fail. Decoding goes through a ByteReader, which
// treats its input as hostile: every read checks the remaining length first and reports a short or
// malformed input as an Error{EIO, "corrupt record: ..."} value; it never asserts and never reads
// past the end. A ByteReader does not own its bytes (it views them); it is not thread-safe, but it
// is cheap and meant to live on the stack of one decoder.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "base/result.h"

namespace raidfs::meta {

// Big-endian <-> host order (its own inverse).
template <class T>
constexpr T swap_big(T v) {
  if constexpr (std::endian::native == std::endian::little) return std::byteswap(v);
  return v;
}

// --- encoding (append to dst) ---------------------------------------------------------------
// Inline: every key of every lookup is built with these, on the read path of each request.
inline void put_u8(std::string& dst, uint8_t v) { dst.push_back(static_cast<char>(v)); }
inline void put_u16(std::string& dst, uint16_t v) {
  const uint16_t be = swap_big(v);
  dst.append(reinterpret_cast<const char*>(&be), 2);
}
inline void put_u32(std::string& dst, uint32_t v) {
  const uint32_t be = swap_big(v);
  dst.append(reinterpret_cast<const char*>(&be), 4);
}
inline void put_u64(std::string& dst, uint64_t v) {
  const uint64_t be = swap_big(v);
  dst.append(reinterpret_cast<const char*>(&be), 8);
}
inline void put_i64(std::string& dst, int64_t v) {  // two's complement, big-endian
  put_u64(dst, static_cast<uint64_t>(v));
}
// A 32-bit big-endian length, then the bytes. Callers bound the length (names ≤ 255, ...).
void put_bytes(std::string& dst, std::string_view bytes);

// --- fixed-position decoding of trusted, length-checked buffers (keys after size check) -------
inline uint16_t load_u16(const char* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return swap_big(v);
}
inline uint32_t load_u32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return swap_big(v);
}
inline uint64_t load_u64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return swap_big(v);
}

// Builds the Error that every decoder returns for bad bytes: EIO "corrupt record: <what>".
std::unexpected<Error> corrupt(std::string_view what);

// --- decoding ---------------------------------------------------------------------------------
class ByteReader {
 public:
  // `what` names the record being decoded; it prefixes every error ("corrupt record: inode: ...").
  ByteReader(std::string_view bytes, std::string_view what) : rest_(bytes), what_(what) {}

  // Each returns the next field, or EIO "corrupt record" when fewer bytes remain than it needs.
  // Inline (the failure path is not): records are decoded on every request's path.
  Result<uint8_t> u8() {
    if (rest_.empty()) return truncated(1);
    return static_cast<uint8_t>(take(1)[0]);
  }
  Result<uint16_t> u16() {
    if (rest_.size() < 2) return truncated(2);
    return load_u16(take(2));
  }
  Result<uint32_t> u32() {
    if (rest_.size() < 4) return truncated(4);
    return load_u32(take(4));
  }
  Result<uint64_t> u64() {
    if (rest_.size() < 8) return truncated(8);
    return load_u64(take(8));
  }
  Result<int64_t> i64() {
    if (rest_.size() < 8) return truncated(8);
    return static_cast<int64_t>(load_u64(take(8)));
  }
  // A length-prefixed byte string of at most `max_bytes` (a longer stated length is corruption).
  Result<std::string_view> bytes(uint32_t max_bytes);
  // Exactly `count` raw bytes.
  Result<std::string_view> raw(size_t count) {
    if (rest_.size() < count) return truncated(count);
    return std::string_view(take(count), count);
  }

  size_t remaining() const { return rest_.size(); }
  // Succeeds only if every byte was consumed (trailing garbage is corruption).
  Result<void> expect_end() const;
  // The Error for a semantic problem found by the caller (bad enum value, ...).
  std::unexpected<Error> fail(std::string_view why) const;

 private:
  const char* take(size_t count) {  // count ≤ remaining(), checked by the caller
    const char* p = rest_.data();
    rest_.remove_prefix(count);
    return p;
  }
  [[gnu::cold]] std::unexpected<Error> truncated(size_t count) const;

  std::string_view rest_;
  std::string_view what_;
};

}  // namespace raidfs::meta
