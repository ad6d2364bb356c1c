// make_test_array: a freshly formatted raidfs array on sparse image files in a TempDir — the
// superblocks, the metadata database in DIR/meta and its member list — as mkfs.raidfs makes one,
// for tests that then open it with fs::open_array(DIR/meta). With `region_bytes`, a
// self-contained array instead (its metadata in a region of the members, that many bytes
// mirrored), opened by the member list `metadata_dir` then holds.
#pragma once

#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "fs/array_spec.h"
#include "meta/fs_meta.h"
#include "raid/array.h"
#include "tests/support/temp_dir.h"

namespace raidfs::testing {

// n bytes of reproducible noise (test file contents).
inline std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

struct TestArray {
  std::vector<std::string> paths;  // member images, in member order
  std::string metadata_dir;        // the SPEC to open it by (a self-contained one: the members)
  bool self_contained = false;
  Superblock superblock;
  Geometry geometry() const { return superblock.geometry(); }
};

inline Result<TestArray> make_test_array(const TempDir& dir, uint32_t members, uint32_t parity,
                                         uint32_t chunk_bytes, uint64_t member_bytes,
                                         const std::string& name = "", uint64_t region_bytes = 0) {
  TestArray out;
  std::error_code ec;
  for (uint32_t i = 0; i < members; ++i) {
    // A new, all-zero image: an old one of the same size would keep its bytes through image().
    std::filesystem::remove(dir.file(name + "m" + std::to_string(i) + ".img"), ec);
    out.paths.push_back(dir.image(name + "m" + std::to_string(i) + ".img", member_bytes));
  }
  FormatOptions fo;
  fo.parity_count = parity;
  fo.chunk_bytes = chunk_bytes;
  fo.force = true;
  if (region_bytes != 0) {
    fo.meta_region_bytes = MetaRegion::member_bytes_for(region_bytes, members, parity + 1);
    RAIDFS_TRY(out.superblock, Array::format(out.paths, fo));
    RAIDFS_TRY(auto array, Array::open(out.paths));
    RAIDFS_TRY(auto meta, fs::open_metadata(*array, "", /*create=*/true));
    for (const std::string& p : out.paths) out.metadata_dir += (out.metadata_dir.empty() ? "" : ",") + p;
    out.self_contained = true;
    return out;
  }
  fo.metadata_dir = dir.file(name + "meta");
  std::filesystem::remove_all(fo.metadata_dir, ec);
  RAIDFS_TRY(out.superblock, Array::format(out.paths, fo));
  std::filesystem::create_directories(fo.metadata_dir);
  RAIDFS_CHECK(fs::write_member_list(fo.metadata_dir, out.paths));
  RAIDFS_CHECK(meta::FsMeta::open(fs::metadata_store_options(out.superblock, /*create=*/true)));
  out.metadata_dir = fo.metadata_dir;
  return out;
}

}  // namespace raidfs::testing
