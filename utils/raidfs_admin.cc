// raidfs: the admin tool. Talks to a mounted array through its mount point.
//
//   raidfs status MOUNTPOINT   geometry, member states (degraded?), space, repair counters
//
// The daemon answers through a read-only virtual xattr of the root directory
// (Filesystem::kStatusXattr), so the tool needs no socket and works wherever the mount is seen.
// scrub, replace, fail and rebuild are not implemented yet; they are not offered.
#include <sys/xattr.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "fs/filesystem.h"

namespace {

int die(const std::string& message, int code = 1) {
  std::fprintf(stderr, "raidfs: %s\n", message.c_str());
  return code;
}

int status(const std::string& mountpoint) {
  const std::string name(raidfs::fs::Filesystem::kStatusXattr);
  std::vector<char> buf(64 * 1024);
  const ssize_t n = ::getxattr(mountpoint.c_str(), name.c_str(), buf.data(), buf.size());
  if (n < 0) {
    const int e = errno;
    if (e == ENODATA || e == ENOTSUP)
      return die(mountpoint + ": not a raidfs mount point (no status)");
    return die(mountpoint + ": " + std::strerror(e));
  }
  std::fwrite(buf.data(), 1, static_cast<size_t>(n), stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"raidfs: administer a mounted raidfs array"};
  app.set_version_flag("-V,--version", std::string("raidfs ") + RAIDFS_VERSION);
  app.require_subcommand(1);
  std::string mountpoint;
  CLI::App* status_cmd = app.add_subcommand("status", "show geometry, member states, space and counters");
  status_cmd->add_option("mountpoint", mountpoint, "where the array is mounted")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    return die(e.what() + std::string(" (see --help)"), 16);
  }
  if (status_cmd->parsed()) return status(mountpoint);
  return 16;
}
