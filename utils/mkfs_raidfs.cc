// mkfs.raidfs: creates a raidfs array — superblocks on every member, and the RocksDB metadata
// (with the root directory): by default in a metadata region on the members themselves, mirrored
// on m+1 of them (a self-contained array); with -m METADIR in that directory, whose path every
// superblock records.
//
//   mkfs.raidfs [-l 5|6] [-p PARITY] [-c CHUNK] [-M SIZE | -m METADIR] [-L LABEL] [-f] MEMBER...
//
// Everything is checked before anything is written: the geometry, each member (exists, big
// enough — with the region —, not listed twice, not in use, holding no raidfs or other known data
// unless -f), and METADIR (creatable, writable, empty unless -f and it holds an earlier raidfs
// database). A metadata directory is created first and removed again if a superblock cannot be
// written, so a failed mkfs leaves no half-made array behind.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>

#include "fs/array_spec.h"
#include "meta/fs_meta.h"
#include "raid/array.h"
#include "raid/member_file.h"
#include "utils/size_option.h"

namespace {

namespace stdfs = std::filesystem;
using namespace raidfs;

int die(const std::string& message, int code = 1) {
  std::fprintf(stderr, "mkfs.raidfs: %s\n", message.c_str());
  return code;
}


// Where the metadata will go, checked before any member is touched.
struct MetadataDir {
  std::string path;      // absolute, normalised
  std::string created;   // the topmost directory this run made ("": none), removed on failure
  bool replace = false;  // holds an earlier raidfs database, to be removed (-f)
};

void remove_created(const MetadataDir& dir) {
  std::error_code ec;
  if (!dir.created.empty()) stdfs::remove_all(dir.created, ec);
}

// METADIR must be creatable and writable, and empty — or, with force, hold an earlier database
// (RocksDB's CURRENT file), which is removed only once the members are formatted.
Result<MetadataDir> check_metadata_dir(const std::string& dir, bool force) {
  std::error_code ec;
  MetadataDir out;
  if (dir.empty()) return fail(EINVAL, "-m: an empty path; name a directory for the metadata database");
  stdfs::path path = stdfs::absolute(dir, ec).lexically_normal();
  if (ec) return fail(EINVAL, dir + ": " + ec.message());
  if (path.has_filename() == false) path = path.parent_path();  // "dir/" is "dir"
  out.path = path.string();
  if (stdfs::exists(path, ec)) {
    if (!stdfs::is_directory(path, ec)) return fail(ENOTDIR, dir + ": exists and is not a directory");
    if (!stdfs::is_empty(path, ec)) {
      const bool database = stdfs::exists(path / "CURRENT", ec);
      if (!database) return fail(EEXIST, dir + ": not empty (choose an empty or new directory)");
      if (!force) return fail(EEXIST, dir + ": holds a metadata database already (use -f to replace it)");
      out.replace = true;
    }
  } else {
    stdfs::path top = path;  // the first ancestor that does not exist yet
    while (top.has_parent_path() && top.parent_path() != top &&
           !stdfs::exists(top.parent_path(), ec))
      top = top.parent_path();
    stdfs::create_directories(path, ec);
    if (ec) {
      stdfs::remove_all(top, ec);
      return fail(ec.value() ? ec.value() : EIO, dir + ": cannot create: " + ec.message());
    }
    out.created = top.string();
  }
  if (::access(path.c_str(), W_OK) != 0) {
    remove_created(out);
    return fail(EACCES, dir + ": not writable");
  }
  return out;
}

// The region's bytes on each member: -M (the mirrored capacity the metadata gets) or the default
// for these members' capacity. ENOSPC when it would leave the members too little for data.
Result<uint64_t> region_bytes_per_member(const std::vector<std::string>& members, uint32_t m,
                                         uint32_t chunk, uint64_t requested) {
  const uint32_t n = static_cast<uint32_t>(members.size());
  uint64_t smallest = UINT64_MAX;
  for (const std::string& member : members) {
    auto size = MemberFile::size_of(member);
    if (!size) return std::unexpected(size.error());
    smallest = std::min(smallest, *size);
  }
  const uint64_t capacity = smallest > kDataOffsetBytes ? (smallest - kDataOffsetBytes) * (n - m) : 0;
  const uint64_t logical = requested ? requested : MetaRegion::default_logical_bytes(capacity);
  if (logical < (uint64_t{8} << 20))
    return fail(EINVAL, "-M " + human_bytes(logical) + ": the metadata region needs at least 8 MiB");
  const uint64_t per_member = MetaRegion::member_bytes_for(logical, n, m + 1);
  const uint64_t need = kDataOffsetBytes + per_member + kStripesMin * chunk + 2 * Superblock::kBytes;
  if (smallest < need || (!requested && per_member > smallest / 2))
    return fail(ENOSPC, "the members are too small for a metadata region of " + human_bytes(logical) +
                            " (" + human_bytes(per_member) + " on each of " + std::to_string(n) +
                            ", the smallest is " + human_bytes(smallest) +
                            "): give a smaller -M, or keep the metadata in a directory (-m DIR)");
  return per_member;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mkfs.raidfs: create a raidfs array (RAID5/6 striped filesystem) on members"};
  int level = 6;
  uint32_t parity = 0;
  uint64_t chunk = kChunkBytesDefault;
  uint64_t region = 0;
  std::string metadata_dir, label;
  bool force = false, quiet = false;
  std::vector<std::string> members;
  app.add_option("-l,--level", level, "RAID level: 5 (one parity) or 6 (two)")
      ->capture_default_str()->check(CLI::IsMember({5, 6}));
  app.add_option("-p,--parity", parity, "parity chunks per stripe, 1..3 (overrides -l; 3 = triple)")
      ->check(CLI::Range(1, 3));
  app.add_option("-c,--chunk", chunk, "chunk size, a power of two from 4K to 1M")
      ->capture_default_str()->transform(raidfs::utils::size_option());
  auto* region_option = app.add_option(
      "-M,--metadata-size", region,
      "room for the metadata on the members, mirrored on m+1 of them (default: 2% of the "
      "capacity, at least 64M)")->transform(raidfs::utils::size_option());
  auto* dir_option = app.add_option(
      "-m,--metadata-dir", metadata_dir,
      "keep the metadata database in this directory instead (a separate fast device)")
      ->excludes(region_option);
  app.add_option("-L,--label", label, "array label (up to 63 bytes)");
  app.add_flag("-f,--force", force, "overwrite members holding raidfs or other data, and an old database");
  app.add_flag("-q,--quiet", quiet, "print nothing on success");
  app.add_option("members", members, "member devices or image files")->required();
  app.set_version_flag("-V,--version", std::string("mkfs.raidfs ") + RAIDFS_VERSION);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    return die(e.what() + std::string(" (see --help)"), 16);
  }

  if (dir_option->count() > 0 && metadata_dir.empty())
    return die("-m: an empty path; name a directory for the metadata database, or leave -m out to "
               "keep the metadata on the members");
  const uint32_t m = parity ? parity : (level == 5 ? 1 : 2);
  if (chunk > kChunkBytesMax) return die("chunk size " + human_bytes(chunk, 2) + " is larger than 1 MiB");
  if (auto g = Geometry::create(static_cast<uint32_t>(members.size()), m, static_cast<uint32_t>(chunk),
                                kDataOffsetBytes, 0);
      !g)
    return die(g.error().message);

  FormatOptions fo;
  fo.parity_count = m;
  fo.chunk_bytes = static_cast<uint32_t>(chunk);
  fo.label = label;
  fo.force = force;
  fo.uuid = random_uuid();

  // Check the metadata's place, then format the members (Array::format checks every member
  // before it writes any), then create the metadata.
  const bool self_contained = metadata_dir.empty();
  MetadataDir dir;
  if (self_contained) {
    auto bytes = region_bytes_per_member(members, m, static_cast<uint32_t>(chunk), region);
    if (!bytes) return die(bytes.error().message);
    fo.meta_region_bytes = *bytes;
  } else {
    auto checked = check_metadata_dir(metadata_dir, force);
    if (!checked) return die(checked.error().message);
    dir = *checked;
    fo.metadata_dir = dir.path;
  }
  auto sb = Array::format(members, fo);
  if (!sb) {
    remove_created(dir);
    return die(sb.error().message);
  }
  const std::string half_made = " (the members now carry superblocks without metadata: rerun mkfs.raidfs -f)";
  if (self_contained) {
    auto array = Array::open(members);
    if (!array) return die("cannot open the new array: " + array.error().message + half_made);
    auto fsmeta = raidfs::fs::open_metadata(**array, "", /*create=*/true);
    if (!fsmeta) return die("cannot create the metadata: " + fsmeta.error().message + half_made);
  } else {
    if (dir.replace) {
      std::error_code ec;
      for (const auto& entry : stdfs::directory_iterator(dir.path, ec)) stdfs::remove_all(entry.path(), ec);
      if (ec) return die(dir.path + ": cannot remove the old database: " + ec.message());
    }
    std::vector<std::string> absolute_members;
    for (const std::string& member : members) absolute_members.push_back(stdfs::absolute(member).string());
    if (auto listed = raidfs::fs::write_member_list(dir.path, absolute_members); !listed)
      return die(listed.error().message);
    auto fsmeta = meta::FsMeta::open(raidfs::fs::metadata_store_options(*sb, /*create=*/true));
    if (!fsmeta)
      return die(dir.path + ": cannot create the metadata database: " + fsmeta.error().message + half_made);
  }
  const Geometry g = sb->geometry();

  if (!quiet) {
    const char* level_name = m == 1 ? "RAID5" : m == 2 ? "RAID6" : "triple parity";
    std::printf("raidfs array %s%s%s\n", uuid_to_string(sb->array_uuid).c_str(), label.empty() ? "" : ", label ",
                label.c_str());
    std::printf("  %s: %u members, %u data + %u parity chunks per stripe, chunk %s\n", level_name,
                g.member_count(), g.data_count(), g.parity_count(), human_bytes(g.chunk_bytes(), 2).c_str());
    std::printf("  %llu stripes of %s data; usable capacity %s\n",
                static_cast<unsigned long long>(g.stripe_count()), human_bytes(g.stripe_data_bytes(), 2).c_str(),
                human_bytes(g.capacity_bytes(), 2).c_str());
    if (self_contained) {
      const MetaRegion r = MetaRegion::create(g.member_count(), m + 1, sb->meta_region_offset,
                                              sb->meta_region_bytes).value();
      std::printf("  metadata on the members: %s, mirrored on %u of them (%s on each)\n",
                  human_bytes(r.logical_bytes(), 2).c_str(), m + 1,
                  human_bytes(sb->meta_region_bytes, 2).c_str());
    } else {
      std::printf("  metadata in %s\n", dir.path.c_str());
    }
    for (const std::string& member : members) std::printf("  member %s\n", member.c_str());
  }
  return 0;
}
