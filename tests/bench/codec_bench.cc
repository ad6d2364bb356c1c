// raidfs-codec-bench: parity encode and reconstruct throughput on one core, against memcpy of the
// same buffers measured in the same run. Throughput counts data bytes (k chunks) per second.
//
//   build/tests/bench/raidfs-codec-bench [--seconds S]
//
// For each shape (RAID5 4+1, RAID6 4+2 and 8+2, triple 8+3) and chunk size (4 KiB, 64 KiB, 1 MiB):
// encode (xor_gen / pq_gen / ec_encode_data as the codec picks), the matrix path alone, rebuild of
// one lost data chunk, and rebuild of m lost data chunks. Not a test: numbers go in the README.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "base/aligned_buffer.h"
#include "raid/parity_codec.h"

namespace {

using raidfs::AlignedBuffer;
using raidfs::ParityCodec;
using Clock = std::chrono::steady_clock;

// Runs `op` repeatedly for about `seconds` and returns GB/s of `bytes_per_op`.
template <class Op>
double rate_gbps(double seconds, uint64_t bytes_per_op, Op&& op) {
  uint64_t ops = 0;
  op();  // warm caches and ISA-L's dispatch
  const auto start = Clock::now();
  const auto stop = start + std::chrono::duration<double>(seconds);
  auto now = start;
  do {
    for (int i = 0; i < 8; ++i) op();
    ops += 8;
    now = Clock::now();
  } while (now < stop);
  return static_cast<double>(ops * bytes_per_op) / std::chrono::duration<double>(now - start).count() / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"raidfs-codec-bench: parity encode/reconstruct throughput vs memcpy (one core)"};
  double seconds = 0.3;
  app.add_option("--seconds", seconds, "time per measurement")->check(CLI::PositiveNumber);
  app.set_version_flag("--version", RAIDFS_VERSION);
  CLI11_PARSE(app, argc, argv);

  struct Shape { const char* name; uint32_t k, m; };
  const Shape shapes[] = {{"RAID5 4+1", 4, 1}, {"RAID6 4+2", 4, 2}, {"RAID6 8+2", 8, 2}, {"triple 8+3", 8, 3}};
  const uint32_t chunks[] = {4096, 65536, 1u << 20};

  std::printf("%-11s %7s %9s %9s %9s %9s %9s %8s %8s\n", "shape", "chunk", "memcpy", "encode", "matrix",
              "rebuild1", "rebuildm", "enc/cpy", "rb1/cpy");
  std::printf("%-11s %7s %9s %9s %9s %9s %9s %8s %8s\n", "", "", "GB/s", "GB/s", "GB/s", "GB/s", "GB/s", "", "");
  std::mt19937 rng(1);
  for (const Shape& s : shapes) {
    auto codec = ParityCodec::create(s.k, s.m).value();
    const uint32_t n = s.k + s.m;
    for (uint32_t chunk : chunks) {
      AlignedBuffer stripe(uint64_t{n} * chunk), copy(uint64_t{s.k} * chunk);
      for (uint64_t i = 0; i < uint64_t{s.k} * chunk; ++i) stripe.data()[i] = static_cast<uint8_t>(rng());
      std::vector<uint8_t*> ptrs(n);
      for (uint32_t i = 0; i < n; ++i) ptrs[i] = stripe.data() + uint64_t{i} * chunk;
      const uint64_t data_bytes = uint64_t{s.k} * chunk;

      double memcpy_rate = rate_gbps(seconds, data_bytes, [&] { std::memcpy(copy.data(), stripe.data(), data_bytes); });
      double encode = rate_gbps(seconds, data_bytes, [&] { codec.encode(ptrs.data(), ptrs.data() + s.k, chunk); });
      double matrix = rate_gbps(seconds, data_bytes, [&] { codec.encode_with_matrix(ptrs.data(), ptrs.data() + s.k, chunk); });
      std::vector<uint32_t> one{1};
      double rebuild1 = rate_gbps(seconds, data_bytes, [&] { (void)codec.reconstruct(ptrs.data(), one, chunk); });
      std::vector<uint32_t> many;
      for (uint32_t j = 0; j < s.m; ++j) many.push_back(j);
      double rebuildm = rate_gbps(seconds, data_bytes, [&] { (void)codec.reconstruct(ptrs.data(), many, chunk); });

      char chunk_name[16];
      std::snprintf(chunk_name, sizeof chunk_name, chunk >= (1u << 20) ? "%uM" : "%uK",
                    chunk >= (1u << 20) ? chunk >> 20 : chunk >> 10);
      std::printf("%-11s %7s %9.2f %9.2f %9.2f %9.2f %9.2f %8.2f %8.2f\n", s.name, chunk_name, memcpy_rate, encode,
                  matrix, rebuild1, rebuildm, encode / memcpy_rate, rebuild1 / memcpy_rate);
    }
  }
  return 0;
}
