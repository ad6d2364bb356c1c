// units: the sizes every layer shares, and how sizes are shown to people.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace raidfs {

// The unit of checksums, parity rows and O_DIRECT I/O, in raid/ and meta/ alike.
inline constexpr uint32_t kBlockBytes = 4096;

// "512 B", "64.0 KiB", "1.5 GiB": binary units, `decimals` digits after the point (none for
// plain bytes).
inline std::string human_bytes(uint64_t bytes, int decimals = 1) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 6) v /= 1024, ++u;
  char out[40];
  std::snprintf(out, sizeof out, "%.*f %s", u == 0 ? 0 : decimals, v, kUnits[u]);
  return out;
}

}  // namespace raidfs
