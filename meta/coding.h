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

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace raidfs::meta {

// --- encoding (append to dst) ---------------------------------------------------------------
void put_u8(std::string& dst, uint8_t v);
void put_u16(std::string& dst, uint16_t v);
void put_u32(std::string& dst, uint32_t v);
void put_u64(std::string& dst, uint64_t v);
void put_i64(std::string& dst, int64_t v);  // two's complement, big-endian
// A 32-bit big-endian length, then the bytes. Callers bound the length (names ≤ 255, ...).
void put_bytes(std::string& dst, std::string_view bytes);

// --- fixed-position decoding of trusted, length-checked buffers (keys after size check) -------
uint32_t load_u32(const char* p);
uint64_t load_u64(const char* p);

// Builds the Error that every decoder returns for bad bytes: EIO "corrupt record: <what>".
std::unexpected<Error> corrupt(std::string_view what);

// --- decoding ---------------------------------------------------------------------------------
class ByteReader {
 public:
  // `what` names the record being decoded; it prefixes every error ("corrupt record: inode: ...").
  ByteReader(std::string_view bytes, std::string_view what) : rest_(bytes), what_(what) {}

  // Each returns the next field, or EIO "corrupt record" when fewer bytes remain than it needs.
  Result<uint8_t> u8();
  Result<uint16_t> u16();
  Result<uint32_t> u32();
  Result<uint64_t> u64();
  Result<int64_t> i64();
  // A length-prefixed byte string of at most `max_bytes` (a longer stated length is corruption).
  Result<std::string_view> bytes(uint32_t max_bytes);
  // Exactly `count` raw bytes.
  Result<std::string_view> raw(size_t count);

  size_t remaining() const { return rest_.size(); }
  // Succeeds only if every byte was consumed (trailing garbage is corruption).
  Result<void> expect_end() const;
  // The Error for a semantic problem found by the caller (bad enum value, ...).
  std::unexpected<Error> fail(std::string_view why) const;

 private:
  std::string_view rest_;
  std::string_view what_;
};

}  // namespace raidfs::meta
