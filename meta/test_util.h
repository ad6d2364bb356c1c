// Test support for meta/ unit tests (not part of the library): a temporary directory that removes
// itself, store options for a small array, and whether the build is sanitized (to scale loops).
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

#include "meta/store.h"

namespace raidfs::meta::testing {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif

class TempDir {
 public:
  TempDir() {
    const char* base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp";
    std::string templ = std::string(base) + "/raidfs-meta-XXXXXX";
    if (mkdtemp(templ.data()) == nullptr) std::abort();
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline ArrayUuid uuid_of(uint8_t seed) {
  ArrayUuid u{};
  for (size_t n = 0; n < u.size(); ++n) u[n] = static_cast<uint8_t>(seed + n);
  return u;
}

inline StoreOptions small_array(const std::string& path, bool create = true) {
  StoreOptions o;
  o.path = path;
  o.array_uuid = uuid_of(1);
  o.create_if_missing = create;
  o.stripe_count = 64;
  o.stripe_data_bytes = 16 * 4096;  // 16 blocks per stripe
  o.geometry = "n=5 m=1 chunk=16384";
  o.block_cache_bytes = 8 << 20;
  return o;
}

}  // namespace raidfs::meta::testing
