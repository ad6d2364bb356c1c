// array_spec: SPEC → member paths → Array + FsMeta. See array_spec.h.
#include "fs/array_spec.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

namespace raidfs::fs {
namespace {

bool is_directory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
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
  if (spec.empty()) return fail(EINVAL, "empty array name: give the metadata directory or the members");
  std::vector<std::string> paths;
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
    return fail(ENOENT, spec + ": no such metadata directory or member");
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
    options.from_member_list = is_directory(spec);
  }
  // Members that do not exist are missing members, not an error, while enough remain.
  RAIDFS_TRY(auto array, Array::open(paths, options));
  metadata_dir = is_directory(spec) ? spec : array->superblock().metadata_dir;
  if (metadata_dir.empty())
    return fail(EINVAL, "the superblocks name no metadata directory (format with mkfs.raidfs -m)");
  return array;
}

Result<OpenedArray> open_array(const std::string& spec,
                               const std::vector<std::string>& members_override, bool read_only) {
  OpenedArray out;
  Superblock sb;
  {
    std::string metadata_dir;
    RAIDFS_TRY(out.array, open_members(spec, members_override, !read_only, metadata_dir));
    sb = out.array->superblock();
    sb.metadata_dir = metadata_dir;
  }
  auto meta = meta::FsMeta::open(metadata_store_options(sb, /*create=*/false));
  if (!meta) return fail_with(meta.error(), sb.metadata_dir + ": ");
  const meta::Super& super = (*meta)->store().super();
  RAIDFS_CHECK(check_metadata_geometry(super, sb));
  out.meta = std::move(*meta);
  out.warnings = out.array->warnings();
  return out;
}

}  // namespace raidfs::fs
