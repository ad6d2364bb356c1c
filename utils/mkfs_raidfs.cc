// mkfs.raidfs: creates a raidfs array — superblocks on every member, and the RocksDB metadata
// (with the root directory) in METADIR, whose path every superblock records.
//
//   mkfs.raidfs [-l 5|6] [-p PARITY] [-c CHUNK] -m METADIR [-L LABEL] [-f] MEMBER...
//
// Everything is checked before anything is written: the geometry, each member (exists, big
// enough, not listed twice, not in use, holding no raidfs or other known data unless -f), and
// METADIR (creatable, writable, empty unless -f and it holds an earlier raidfs database). The
// metadata is created first and removed again if a superblock cannot be written, so a failed
// mkfs leaves no half-made array behind.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>

#include "fs/array_spec.h"
#include "meta/fs_meta.h"
#include "raid/array.h"
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

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mkfs.raidfs: create a raidfs array (RAID5/6 striped filesystem) on members"};
  int level = 6;
  uint32_t parity = 0;
  uint64_t chunk = kChunkBytesDefault;
  std::string metadata_dir, label;
  bool force = false, quiet = false;
  std::vector<std::string> members;
  app.add_option("-l,--level", level, "RAID level: 5 (one parity) or 6 (two)")
      ->capture_default_str()->check(CLI::IsMember({5, 6}));
  app.add_option("-p,--parity", parity, "parity chunks per stripe, 1..3 (overrides -l; 3 = triple)")
      ->check(CLI::Range(1, 3));
  app.add_option("-c,--chunk", chunk, "chunk size, a power of two from 4K to 1M")
      ->capture_default_str()->transform(raidfs::utils::size_option());
  app.add_option("-m,--metadata-dir", metadata_dir, "directory for the metadata database (required)")->required();
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

  // Check the metadata directory, then format the members (Array::format checks every member
  // before it writes any), then create the metadata.
  auto dir = check_metadata_dir(metadata_dir, force);
  if (!dir) return die(dir.error().message);
  fo.metadata_dir = dir->path;
  auto sb = Array::format(members, fo);
  if (!sb) {
    remove_created(*dir);
    return die(sb.error().message);
  }
  if (dir->replace) {
    std::error_code ec;
    for (const auto& entry : stdfs::directory_iterator(dir->path, ec)) stdfs::remove_all(entry.path(), ec);
    if (ec) return die(dir->path + ": cannot remove the old database: " + ec.message());
  }
  const Geometry g = sb->geometry();
  std::vector<std::string> absolute_members;
  for (const std::string& member : members) absolute_members.push_back(stdfs::absolute(member).string());
  if (auto listed = raidfs::fs::write_member_list(dir->path, absolute_members); !listed)
    return die(listed.error().message);
  auto fsmeta = meta::FsMeta::open(raidfs::fs::metadata_store_options(*sb, /*create=*/true));
  if (!fsmeta) {
    return die(dir->path + ": cannot create the metadata database: " + fsmeta.error().message +
               " (the members now carry superblocks without metadata: rerun mkfs.raidfs -f)");
  }

  if (!quiet) {
    const char* level_name = m == 1 ? "RAID5" : m == 2 ? "RAID6" : "triple parity";
    std::printf("raidfs array %s%s%s\n", uuid_to_string(sb->array_uuid).c_str(), label.empty() ? "" : ", label ",
                label.c_str());
    std::printf("  %s: %u members, %u data + %u parity chunks per stripe, chunk %s\n", level_name,
                g.member_count(), g.data_count(), g.parity_count(), human_bytes(g.chunk_bytes(), 2).c_str());
    std::printf("  %llu stripes of %s data; usable capacity %s\n",
                static_cast<unsigned long long>(g.stripe_count()), human_bytes(g.stripe_data_bytes(), 2).c_str(),
                human_bytes(g.capacity_bytes(), 2).c_str());
    std::printf("  metadata in %s\n", dir->path.c_str());
    for (const std::string& member : members) std::printf("  member %s\n", member.c_str());
  }
  return 0;
}
