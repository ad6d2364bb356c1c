// array_spec: SPEC → member paths → Array + FsMeta. See array_spec.h.
#include "fs/array_spec.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "meta/region_fs.h"

namespace raidfs::fs {
namespace {

bool is_directory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// A metadata directory holds the member list mkfs.raidfs -m wrote.
bool is_metadata_directory(const std::string& path) {
  struct stat st;
  return is_directory(path) && ::stat((path + "/" + kMembersFileName).c_str(), &st) == 0;
}

// The raidfs members among `candidates`, grouped by array.
std::map<ArrayUuid, std::vector<std::string>> members_by_array(const std::vector<std::string>& candidates) {
  std::map<ArrayUuid, std::vector<std::string>> found;
  for (const std::string& path : candidates)
    if (auto sb = peek_superblock(path)) found[sb->array_uuid].push_back(path);
  return found;
}

// The images (and devices) of one array in a directory.
Result<std::vector<std::string>> members_in_directory(const std::string& dir) {
  std::vector<std::string> candidates;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const auto type = entry.status(ec).type();
    if (type == std::filesystem::file_type::regular || type == std::filesystem::file_type::block)
      candidates.push_back(entry.path().string());
  }
  std::sort(candidates.begin(), candidates.end());
  const auto found = members_by_array(candidates);
  if (found.empty())
    return fail(ENOENT, dir + ": neither a metadata directory (no member list) nor a directory "
                              "holding raidfs members");
  if (found.size() > 1) {
    std::string arrays;
    for (const auto& [uuid, paths] : found) arrays += (arrays.empty() ? "" : ", ") + uuid_to_string(uuid);
    return fail(EINVAL, dir + " holds members of " + std::to_string(found.size()) + " arrays (" +
                            arrays + "): name the members, or UUID=<array>");
  }
  return found.begin()->second;
}

// The block devices whose superblocks name the array `text` (a UUID as uuid_to_string writes).
Result<std::vector<std::string>> members_with_uuid(const std::string& text) {
  std::vector<std::string> candidates;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/sys/class/block", ec)) {
    const std::string dev = "/dev/" + entry.path().filename().string();
    struct stat st;
    if (::stat(dev.c_str(), &st) == 0 && S_ISBLK(st.st_mode)) candidates.push_back(dev);
  }
  std::sort(candidates.begin(), candidates.end());
  for (auto& [uuid, paths] : members_by_array(candidates))
    if (uuid_to_string(uuid) == text) return paths;
  return fail(ENOENT, "UUID=" + text + ": no block device holds a member of that array "
                          "(image files are found by naming them or their directory)");
}

std::string geometry_text(const Geometry& g) {
  return std::to_string(g.member_count()) + "x" + std::to_string(g.chunk_bytes()) + "/p" +
         std::to_string(g.parity_count());
}

}  // namespace

Result<void> check_metadata_geometry(const meta::Super& super, const Superblock& sb) {
  const Geometry g = sb.geometry();
  if (super.stripe_count != g.stripe_count() || super.stripe_data_bytes != g.stripe_data_bytes())
    return fail(EINVAL, sb.metadata_dir + ": the metadata describes " +
                            std::to_string(super.stripe_count) + " stripes of " +
                            std::to_string(super.stripe_data_bytes) + " bytes, the members " +
                            std::to_string(g.stripe_count()) + " of " +
                            std::to_string(g.stripe_data_bytes()));
  return {};
}

meta::StoreOptions metadata_store_options(const Superblock& sb, bool create) {
  const Geometry g = sb.geometry();
  meta::StoreOptions so;
  so.path = sb.metadata_dir;
  so.array_uuid = sb.array_uuid;
  so.create_if_missing = create;
  so.stripe_count = g.stripe_count();
  so.stripe_data_bytes = static_cast<uint32_t>(g.stripe_data_bytes());
  so.geometry = geometry_text(g);
  return so;
}

Result<std::vector<std::string>> member_paths(const std::string& spec) {
  if (spec.empty()) return fail(EINVAL, "empty array name: give the members, their directory, or UUID=");
  std::vector<std::string> paths;
  // mount(8) resolves UUID= through libblkid, which does not know raidfs: through it (fstab,
  // mount -t raidfs) the array is named uuid=..., which it passes on as it is.
  if (spec.starts_with("UUID=") || spec.starts_with("uuid=")) return members_with_uuid(spec.substr(5));
  if (is_directory(spec) && !is_metadata_directory(spec)) return members_in_directory(spec);
  if (is_directory(spec)) {
    const std::string list = spec + "/" + kMembersFileName;
    std::ifstream in(list);
    if (!in)
      return fail(ENOENT, list + ": no member list (is " + spec +
                              " a raidfs metadata directory? name the members instead)");
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) paths.push_back(line);
    if (paths.empty()) return fail(EINVAL, list + ": the member list is empty");
    return paths;
  }
  std::stringstream ss(spec);
  for (std::string path; std::getline(ss, path, ',');) {
    if (path.empty()) return fail(EINVAL, "empty member name in '" + spec + "'");
    paths.push_back(path);
  }
  if (paths.size() == 1 && ::access(paths[0].c_str(), F_OK) != 0)
    return fail(ENOENT, spec + ": no such member or directory");
  return paths;
}

Result<void> write_member_list(const std::string& metadata_dir,
                               const std::vector<std::string>& paths) {
  const std::string list = metadata_dir + "/" + kMembersFileName;
  const std::string tmp = list + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    for (const std::string& p : paths) out << p << '\n';
    out.flush();
    if (!out) return fail(EIO, tmp + ": cannot write the member list");
  }
  if (::rename(tmp.c_str(), list.c_str()) != 0)
    return fail(errno, list + ": cannot write the member list: " + std::strerror(errno));
  return {};
}

Result<std::unique_ptr<Array>> open_members(const std::string& spec,
                                            const std::vector<std::string>& members_override,
                                            bool record_states, std::string& metadata_dir) {
  std::vector<std::string> paths = members_override;
  OpenOptions options;
  options.record_states = record_states;
  if (paths.empty()) {
    RAIDFS_TRY(paths, member_paths(spec));
    options.from_member_list = is_metadata_directory(spec);
  }
  // Members that do not exist are missing members, not an error, while enough remain.
  RAIDFS_TRY(auto array, Array::open(paths, options));
  const Superblock sb = array->superblock();
  if (sb.self_contained()) {
    if (is_metadata_directory(spec))
      return fail(EINVAL, spec + ": a metadata directory, but array " +
                              uuid_to_string(sb.array_uuid) +
                              " keeps its metadata on its members: name the members instead");
    metadata_dir.clear();
    return array;
  }
  metadata_dir = is_metadata_directory(spec) ? spec : sb.metadata_dir;
  if (metadata_dir.empty())
    return fail(EINVAL, "the superblocks name no metadata directory (format with mkfs.raidfs -m)");
  return array;
}

Result<meta::StoreOptions> store_options(Array& array, const std::string& metadata_dir,
                                         bool create, bool read_only, const WrapMemberIo& wrap) {
  Superblock sb = array.superblock();
  sb.metadata_dir = metadata_dir;
  meta::StoreOptions so = metadata_store_options(sb, create);
  if (!sb.self_contained()) return so;
  auto device = std::make_shared<ArrayRegionDevice>(array, wrap);
  const uint32_t salt = region_salt(sb.array_uuid);
  if (create) RAIDFS_CHECK(meta::RegionFs::format(*device, salt));
  auto region = meta::RegionFs::open(device, salt, read_only && !create);
  if (!region) return fail_with(region.error(), "the metadata region: ");
  so.path.clear();
  so.read_only = read_only && !create;
  so.region = std::move(*region);
  return so;
}

Result<std::unique_ptr<meta::FsMeta>> open_metadata(Array& array, const std::string& metadata_dir,
                                                    bool create, bool read_only,
                                                    const WrapMemberIo& wrap) {
  RAIDFS_TRY(meta::StoreOptions so, store_options(array, metadata_dir, create, read_only, wrap));
  auto meta = meta::FsMeta::open(so);
  if (!meta) return fail_with(meta.error(), so.region ? "" : metadata_dir + ": ");
  return meta;
}

Result<OpenedArray> open_array(const std::string& spec,
                               const std::vector<std::string>& members_override, bool read_only,
                               const WrapMemberIo& wrap) {
  OpenedArray out;
  std::string metadata_dir;
  RAIDFS_TRY(out.array, open_members(spec, members_override, !read_only, metadata_dir));
  Superblock sb = out.array->superblock();
  sb.metadata_dir = metadata_dir;
  RAIDFS_TRY(out.meta, open_metadata(*out.array, metadata_dir, /*create=*/false, read_only, wrap));
  RAIDFS_CHECK(check_metadata_geometry(out.meta->store().super(), sb));
  out.warnings = out.array->warnings();
  return out;
}

}  // namespace raidfs::fs
