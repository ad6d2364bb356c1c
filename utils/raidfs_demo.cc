// raidfs-demo: shows the RAID engine end to end on image files, until the filesystem mounts.
//
// Formats an array on sparse image files, writes random stripes (data + parity, versioned block
// checksums), then reads everything back three times: healthy; with a block corrupted behind the
// array's back (detected by its checksum, rebuilt from parity); and with as many members deleted as
// the parity covers (every block of those members rebuilt). Exits 0 only if every byte matched.
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>

#include "raid/array.h"
#include "raid/checksum.h"
#include "utils/progress.h"
#include "utils/size_option.h"

namespace {

using namespace raidfs;
using Clock = std::chrono::steady_clock;

struct Written {
  std::vector<uint32_t> crcs;  // all stripes' block checksums, stripe after stripe
};

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Fills a stripe's data deterministically from (seed, stripe), so it can be regenerated to compare.
void fill(uint8_t* data, uint64_t bytes, uint64_t seed, uint64_t stripe) {
  std::mt19937_64 rng(seed * 1000003 + stripe);
  for (uint64_t i = 0; i < bytes; i += 8) {
    uint64_t v = rng();
    std::memcpy(data + i, &v, 8);
  }
}

// Reads back every stripe and compares; returns blocks rebuilt, or an error line.
Result<uint64_t> verify_all(Array& array, uint64_t stripes, uint64_t seed, const Written& w, const char* label) {
  auto io = array.make_member_io();
  if (!io) return std::unexpected(io.error());
  IoChannel channel(array, **io);
  const Geometry& g = array.geometry();
  const uint64_t bytes = g.stripe_data_bytes();
  const uint32_t blocks = static_cast<uint32_t>(bytes / kBlockBytes);
  AlignedBuffer got(bytes), expected(bytes);
  std::vector<std::span<uint8_t>> fixed{{got.data(), got.size()}};
  RAIDFS_CHECK(channel.register_buffers(fixed));
  uint64_t rebuilt = 0;
  ProgressBar bar(label, stripes);
  const auto start = Clock::now();
  for (uint64_t s = 0; s < stripes; ++s) {
    StripeRef ref{s, 1, std::span(w.crcs).subspan(s * blocks, blocks)};
    RAIDFS_TRY(ReadReport report, array.read(channel, {ref, 0, static_cast<uint32_t>(bytes), got.data()}));
    rebuilt += report.reconstructed_blocks;
    fill(expected.data(), bytes, seed, s);
    if (std::memcmp(got.data(), expected.data(), bytes) != 0)
      return fail(EIO, "stripe " + std::to_string(s) + " read back wrong");
    // Self-heal: put the verified bytes back where a corrupt block was found.
    for (uint32_t b : report.corrupt_blocks) {
      RAIDFS_CHECK(array.write_data(channel, s, uint64_t{b} * kBlockBytes, kBlockBytes,
                                    got.data() + uint64_t{b} * kBlockBytes));
      std::printf("  healed block %u of stripe %llu\n", b, static_cast<unsigned long long>(s));
    }
    bar.update(s + 1);
  }
  bar.finish();
  const double secs = seconds_since(start);
  std::printf("  %-34s %5.0f MiB/s, %llu blocks rebuilt from parity, all bytes match\n", label,
              static_cast<double>(stripes * bytes) / secs / (1 << 20), static_cast<unsigned long long>(rebuilt));
  return rebuilt;
}

int run(const std::string& dir, uint32_t members, uint32_t parity, uint32_t chunk, uint64_t member_bytes, uint64_t seed) {
  std::filesystem::create_directories(dir);
  std::vector<std::string> paths;
  for (uint32_t i = 0; i < members; ++i) {
    std::string p = dir + "/member" + std::to_string(i) + ".img";
    std::filesystem::remove(p);
    int fd = ::open(p.c_str(), O_RDWR | O_CREAT, 0600);
    if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(member_bytes)) != 0) {
      std::fprintf(stderr, "raidfs-demo: cannot create %s: %s\n", p.c_str(), std::strerror(errno));
      return 1;
    }
    ::close(fd);
    paths.push_back(p);
  }

  FormatOptions fo;
  fo.parity_count = parity;
  fo.chunk_bytes = chunk;
  fo.label = "demo";
  auto sb = Array::format(paths, fo);
  if (!sb) {
    std::fprintf(stderr, "raidfs-demo: %s\n", sb.error().message.c_str());
    return 1;
  }
  const Geometry g = sb->geometry();
  std::printf("array %s: %u members (%u data + %u parity per stripe), %u KiB chunks, %llu stripes, %.1f MiB usable\n",
              uuid_to_string(sb->array_uuid).c_str(), members, g.data_count(), parity, chunk >> 10,
              static_cast<unsigned long long>(g.stripe_count()), static_cast<double>(g.capacity_bytes()) / (1 << 20));

  const uint64_t stripes = g.stripe_count();
  const uint64_t bytes = g.stripe_data_bytes();
  const uint32_t blocks = static_cast<uint32_t>(bytes / kBlockBytes);
  Written w;
  {
    auto array = Array::open(paths);
    if (!array) return std::fprintf(stderr, "raidfs-demo: %s\n", array.error().message.c_str()), 1;
    auto io = (*array)->make_member_io();
    if (!io) return std::fprintf(stderr, "raidfs-demo: %s\n", io.error().message.c_str()), 1;
    IoChannel channel(**array, **io);
    AlignedBuffer buffer(uint64_t{members} * chunk);
    std::vector<std::span<uint8_t>> fixed{{buffer.data(), buffer.size()}};
    if (auto r = channel.register_buffers(fixed); !r)
      return std::fprintf(stderr, "raidfs-demo: %s\n", r.error().message.c_str()), 1;
    ProgressBar bar("writing", stripes);
    const auto start = Clock::now();
    for (uint64_t s = 0; s < stripes; ++s) {
      fill(buffer.data(), bytes, seed, s);
      for (uint32_t b = 0; b < blocks; ++b)
        w.crcs.push_back(block_checksum({s, 1, b}, {buffer.data() + uint64_t{b} * kBlockBytes, kBlockBytes}));
      if (auto r = (*array)->write_stripe(channel, s, buffer.data(), s + 1 == stripes); !r)
        return std::fprintf(stderr, "raidfs-demo: %s\n", r.error().message.c_str()), 1;
      bar.update(s + 1);
    }
    bar.finish();
    std::printf("  %-34s %5.0f MiB/s (data + parity, flushed)\n", "wrote every stripe",
                static_cast<double>(stripes * bytes) / seconds_since(start) / (1 << 20));
    if (auto r = verify_all(**array, stripes, seed, w, "read back, healthy"); !r)
      return std::fprintf(stderr, "raidfs-demo: %s\n", r.error().message.c_str()), 1;
  }

  // Corrupt one data block on a member image behind the array's back.
  {
    const uint64_t victim_stripe = stripes / 2;
    MemberAddress a = g.locate(victim_stripe, 0, 0);
    int fd = ::open(paths[a.member].c_str(), O_RDWR);
    std::vector<uint8_t> junk(kBlockBytes, 0x5A);
    if (fd < 0 || ::pwrite(fd, junk.data(), junk.size(), static_cast<off_t>(a.offset)) != 4096)
      return std::fprintf(stderr, "raidfs-demo: cannot corrupt %s\n", paths[a.member].c_str()), 1;
    ::close(fd);
    std::printf("corrupted 4 KiB of stripe %llu on %s\n", static_cast<unsigned long long>(victim_stripe),
                paths[a.member].c_str());
    auto array = Array::open(paths);
    if (!array) return std::fprintf(stderr, "raidfs-demo: %s\n", array.error().message.c_str()), 1;
    auto rebuilt = verify_all(**array, stripes, seed, w, "read back, one block corrupt");
    if (!rebuilt || *rebuilt != 1)
      return std::fprintf(stderr, "raidfs-demo: corruption not caught and repaired\n"), 1;
  }

  // Delete as many members as there is parity.
  std::printf("deleting %u of %u members:", parity, members);
  for (uint32_t j = 0; j < parity; ++j) {  // members 1, 3, 5 ... (mod n: distinct while m < n - 1)
    const std::string& p = paths[(1 + 2 * j) % members];
    std::filesystem::remove(p);
    std::printf(" %s", p.c_str());
  }
  std::printf("\n");
  auto array = Array::open(paths);
  if (!array) return std::fprintf(stderr, "raidfs-demo: %s\n", array.error().message.c_str()), 1;
  for (const std::string& warning : (*array)->warnings()) std::printf("  warning: %s\n", warning.c_str());
  if (auto r = verify_all(**array, stripes, seed, w, "read back, degraded"); !r)
    return std::fprintf(stderr, "raidfs-demo: %s\n", r.error().message.c_str()), 1;

  std::printf("demo passed: every byte read back correctly, healthy, corrupt and degraded\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"raidfs-demo: format a RAID array on image files, write it, damage it, read it back"};
  std::string dir = "/var/tmp/raidfs-demo";
  uint32_t members = 6, parity = 2;
  uint64_t chunk = 64 << 10, member_bytes = 64 << 20, seed = 1;
  app.add_option("-d,--dir", dir, "directory for the member image files")->capture_default_str();
  app.add_option("-n,--members", members, "number of members")->capture_default_str()->check(CLI::Range(3, 64));
  app.add_option("-p,--parity", parity, "parity chunks per stripe: 1 (RAID5), 2 (RAID6), 3")
      ->capture_default_str()->check(CLI::Range(1, 3));
  app.add_option("-c,--chunk", chunk, "chunk size (4K .. 1M, a power of two)")
      ->capture_default_str()->transform(raidfs::utils::size_option());
  app.add_option("-s,--member-size", member_bytes, "size of each member image")
      ->capture_default_str()->transform(raidfs::utils::size_option());
  app.add_option("--seed", seed, "seed of the random data")->capture_default_str();
  app.set_version_flag("-V,--version", std::string("raidfs-demo ") + RAIDFS_VERSION);
  CLI11_PARSE(app, argc, argv);
  if (chunk > UINT32_MAX) {
    std::fprintf(stderr, "raidfs-demo: chunk size too large\n");
    return 2;
  }
  return run(dir, members, parity, static_cast<uint32_t>(chunk), member_bytes, seed);
}
