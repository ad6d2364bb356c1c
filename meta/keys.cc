#include "meta/keys.h"

#include "meta/coding.h"

namespace raidfs::meta {

std::string u64_key(uint64_t a) {
  std::string k;
  k.reserve(8);
  put_u64(k, a);
  return k;
}

std::string u64_pair_key(uint64_t a, uint64_t b) {
  std::string k;
  k.reserve(16);
  put_u64(k, a);
  put_u64(k, b);
  return k;
}

PairKey::PairKey(uint64_t a, uint64_t b) {
  const uint64_t be[2] = {swap_big(a), swap_big(b)};
  std::memcpy(bytes_, be, sizeof bytes_);
}

std::string u64_name_key(uint64_t a, std::string_view name) {
  std::string k;
  k.reserve(8 + name.size());
  put_u64(k, a);
  k.append(name);
  return k;
}

std::string u64_triple_key(uint64_t a, uint64_t b, uint64_t c) {
  std::string k;
  k.reserve(24);
  put_u64(k, a);
  put_u64(k, b);
  put_u64(k, c);
  return k;
}

Result<uint64_t> parse_u64_key(std::string_view key) {
  if (key.size() != 8) return corrupt("key of " + std::to_string(key.size()) + " bytes, want 8");
  return load_u64(key.data());
}

Result<std::pair<uint64_t, uint64_t>> parse_u64_pair_key(std::string_view key) {
  if (key.size() != 16) return corrupt("key of " + std::to_string(key.size()) + " bytes, want 16");
  return std::pair{load_u64(key.data()), load_u64(key.data() + 8)};
}

Result<std::pair<uint64_t, std::string_view>> parse_u64_name_key(std::string_view key) {
  if (key.size() <= 8) return corrupt("name key of " + std::to_string(key.size()) + " bytes");
  return std::pair{load_u64(key.data()), key.substr(8)};
}

Result<ExtentByStripeKey> parse_extent_by_stripe_key(std::string_view key) {
  if (key.size() != 24) return corrupt("key of " + std::to_string(key.size()) + " bytes, want 24");
  return ExtentByStripeKey{load_u64(key.data()), load_u64(key.data() + 8), load_u64(key.data() + 16)};
}

}  // namespace raidfs::meta
