// raidfs: the admin tool. Talks to a mounted array through its mount point.
//
//   raidfs status [--json] MOUNTPOINT            geometry, member states and errors, space, scrub
//   raidfs scrub [--rate BYTES] [--wait] MOUNTPOINT   start (or resume) the online scrub
//   raidfs scrub --stop MOUNTPOINT               stop it (its progress kept)
//   raidfs fail MOUNTPOINT MEMBER                mark a member failed
//   raidfs rebuild [--rate BYTES] [--wait] MOUNTPOINT MEMBER   rebuild a member in place
//   raidfs replace [--rate BYTES] [--wait] [--force] MOUNTPOINT OLD NEW
//                                                onto a new device (OLD: index or path)
//
// The channel is the mount's root directory (docs/decisions.md): status is the virtual xattr
// raidfs.status (raidfs.status.json), readable by anyone; a change is a write of the command to
// trusted.raidfs.control, which the kernel allows only to CAP_SYS_ADMIN and the daemon only to
// root. The daemon's one-line outcome of the last command is in the status ("last_command").
//
// Exit codes: 0 done; 1 the daemon refused or the mount cannot be read; 16 usage.
#include <sys/xattr.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "fs/filesystem.h"
#include "utils/progress.h"
#include "utils/size_option.h"

namespace {

using raidfs::fs::Filesystem;

int die(const std::string& message, int code = 1) {
  std::fprintf(stderr, "raidfs: %s\n", message.c_str());
  return code;
}

// The value of one of the root's virtual xattrs, or the errno.
int read_status(const std::string& mountpoint, std::string_view name, std::string& out) {
  std::vector<char> buf(64 * 1024);
  const ssize_t n = ::getxattr(mountpoint.c_str(), std::string(name).c_str(), buf.data(), buf.size());
  if (n < 0) return errno;
  out.assign(buf.data(), static_cast<size_t>(n));
  return 0;
}

std::string status_error(const std::string& mountpoint, int e) {
  if (e == ENODATA || e == ENOTSUP) return mountpoint + ": not a raidfs mount point (no status)";
  return mountpoint + ": " + std::strerror(e);
}

// The first line of the text status that starts with `key: `, without the key.
std::string status_line(const std::string& text, const std::string& key) {
  const std::string prefix = key + ": ";
  for (size_t at = 0; at < text.size();) {
    const size_t end = text.find('\n', at);
    const std::string line = text.substr(at, end == std::string::npos ? std::string::npos : end - at);
    if (line.starts_with(prefix)) return line.substr(prefix.size());
    if (end == std::string::npos) break;
    at = end + 1;
  }
  return "";
}

int status(const std::string& mountpoint, bool json) {
  std::string text;
  if (int e = read_status(mountpoint, json ? Filesystem::kStatusJsonXattr : Filesystem::kStatusXattr, text))
    return die(status_error(mountpoint, e));
  std::fwrite(text.data(), 1, text.size(), stdout);
  return 0;
}

// Sends one command; on a refusal prints the daemon's reason (or the kernel's) in one line.
int control(const std::string& mountpoint, const std::string& verb, const std::string& command) {
  std::string before;
  if (int e = read_status(mountpoint, Filesystem::kStatusXattr, before))
    return die(status_error(mountpoint, e));
  const std::string name(Filesystem::kControlXattr);
  if (::setxattr(mountpoint.c_str(), name.c_str(), command.data(), command.size(), 0) == 0) {
    std::string after;
    if (read_status(mountpoint, Filesystem::kStatusXattr, after) == 0) {
      const std::string outcome = status_line(after, "last_command");
      std::printf("%s\n", outcome.substr(outcome.find(": ") + 2).c_str());
    }
    return 0;
  }
  const int e = errno;
  if (e == EPERM) return die(verb + ": only root may change the array (" + std::strerror(e) + ")");
  std::string after;
  std::string why = std::strerror(e);
  if (read_status(mountpoint, Filesystem::kStatusXattr, after) == 0) {
    const std::string outcome = status_line(after, "last_command");
    if (outcome.starts_with(command + ": error: ")) why = outcome.substr(command.size() + 9);
  }
  return die(verb + ": " + why);
}

// Waits for the scrub (or rebuild: `key`) to end, drawing a progress bar on a terminal; prints
// its result.
int wait_for(const std::string& mountpoint, const std::string& key) {
  raidfs::ProgressBar bar(key, 100);
  for (;;) {
    std::string text;
    if (int e = read_status(mountpoint, Filesystem::kStatusXattr, text))
      return die(status_error(mountpoint, e));
    const std::string full = status_line(text, key);
    // "member N running ..." for a rebuild or replace: the phase is the third word.
    const std::string line = key != "scrub" && full.find(' ', 7) != std::string::npos
                                 ? full.substr(full.find(' ', 7) + 1)
                                 : full;
    if (!line.starts_with("running")) {
      bar.finish();
      std::printf("%s: %s\n", key.c_str(), full.c_str());
      return line.starts_with("finished") ? 0 : 1;
    }
    const size_t pct = line.find("% (");
    const size_t start = line.rfind(' ', pct);
    if (pct != std::string::npos && start != std::string::npos)
      bar.update(std::strtoull(line.c_str() + start + 1, nullptr, 10));
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

std::string absolute(const std::string& path) {
  char real[PATH_MAX];
  return ::realpath(path.c_str(), real) ? std::string(real) : path;
}

// The index of the member named by `old`: its index, or its device's path as status shows it.
// -1 (after saying why) when there is none.
int member_index(const std::string& mountpoint, const std::string& old) {
  if (!old.empty() && old.find_first_not_of("0123456789") == std::string::npos && old.size() < 3)
    return std::atoi(old.c_str());
  std::string json;
  if (int e = read_status(mountpoint, Filesystem::kStatusJsonXattr, json)) {
    die(status_error(mountpoint, e));
    return -1;
  }
  const std::string want = absolute(old);
  const std::string index_key = "{\"index\": ", path_key = ", \"path\": \"";
  for (size_t at = json.find(index_key); at != std::string::npos; at = json.find(index_key, at + 1)) {
    const int index = std::atoi(json.c_str() + at + index_key.size());
    const size_t p = json.find(path_key, at);
    if (p == std::string::npos) break;
    const size_t begin = p + path_key.size(), end = json.find('"', begin);
    const std::string path = json.substr(begin, end - begin);
    if (!path.empty() && (path == old || absolute(path) == want)) return index;
  }
  die("replace: " + old + " is not a member of the array at " + mountpoint + " (give its index or path)");
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"raidfs: administer a mounted raidfs array"};
  app.set_version_flag("-V,--version", std::string("raidfs ") + RAIDFS_VERSION);
  app.require_subcommand(1);
  std::string mountpoint;
  bool json = false, stop = false, wait = false;
  uint64_t rate = 0;
  uint32_t member = 0;

  CLI::App* status_cmd = app.add_subcommand("status", "show geometry, members, space, scrub and counters");
  status_cmd->add_flag("--json", json, "as JSON (for monitoring; has a format version)");
  status_cmd->add_option("mountpoint", mountpoint, "where the array is mounted")->required();

  CLI::App* scrub_cmd = app.add_subcommand(
      "scrub", "verify every live stripe online (checksums, parity) and repair what can be repaired");
  scrub_cmd->add_flag("--stop", stop, "stop the running scrub (a later scrub resumes it)");
  scrub_cmd->add_option("--rate", rate, "read at most this many bytes a second (e.g. 200M)")
      ->transform(raidfs::utils::size_option());
  scrub_cmd->add_flag("--wait", wait, "wait until it ends (a progress bar on a terminal)");
  scrub_cmd->add_option("mountpoint", mountpoint, "where the array is mounted")->required();

  CLI::App* rebuild_cmd = app.add_subcommand(
      "rebuild", "bring a failed or returned member up to date in place, online");
  rebuild_cmd->add_flag("--wait", wait, "wait until it ends (a progress bar on a terminal)");
  rebuild_cmd->add_option("--rate", rate, "write at most this many bytes a second (e.g. 100M)")
      ->transform(raidfs::utils::size_option());
  rebuild_cmd->add_option("mountpoint", mountpoint, "where the array is mounted")->required();
  rebuild_cmd->add_option("member", member, "the member's index (as raidfs status shows it)")->required();

  bool force = false;
  std::string old_member, new_device;
  CLI::App* replace_cmd = app.add_subcommand(
      "replace", "put a new device in a member's place and rebuild the member onto it, online");
  replace_cmd->add_flag("--wait", wait, "wait until it ends (a progress bar on a terminal)");
  replace_cmd->add_flag("-f,--force", force, "overwrite a device that holds a filesystem or raidfs superblock");
  replace_cmd->add_option("--rate", rate, "write at most this many bytes a second (e.g. 100M)")
      ->transform(raidfs::utils::size_option());
  replace_cmd->add_option("mountpoint", mountpoint, "where the array is mounted")->required();
  replace_cmd->add_option("old", old_member, "the member to replace: its index or its device's path")->required();
  replace_cmd->add_option("new", new_device, "the new device (block device or image file)")->required();

  CLI::App* clean_cmd = app.add_subcommand(
      "clean", "move the live data out of every stripe holding dead space now, and free them "
               "(the cleaner does this by itself when free space runs low)");
  clean_cmd->add_option("mountpoint", mountpoint, "where the array is mounted")->required();

  CLI::App* trim_cmd = app.add_subcommand(
      "trim", "discard every free stripe on the members now, as fstrim does (-o discard does it "
              "as stripes are freed)");
  trim_cmd->add_option("mountpoint", mountpoint, "where the array is mounted")->required();

  CLI::App* fail_cmd = app.add_subcommand("fail", "mark a member failed (it is no longer used)");
  fail_cmd->add_option("mountpoint", mountpoint, "where the array is mounted")->required();
  fail_cmd->add_option("member", member, "the member's index (as raidfs status shows it)")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    return die(e.what() + std::string(" (see --help)"), 16);
  }
  if (status_cmd->parsed()) return status(mountpoint, json);
  if (fail_cmd->parsed()) return control(mountpoint, "fail", "fail " + std::to_string(member));
  if (clean_cmd->parsed()) return control(mountpoint, "clean", "clean");
  if (trim_cmd->parsed()) return control(mountpoint, "trim", "trim");
  if (rebuild_cmd->parsed()) {
    const int code = control(mountpoint, "rebuild", "rebuild " + std::to_string(member) +
                                                        (rate ? " " + std::to_string(rate) : ""));
    if (code != 0 || !wait) return code;
    return wait_for(mountpoint, "rebuild");
  }
  if (replace_cmd->parsed()) {
    const int index = member_index(mountpoint, old_member);
    if (index < 0) return 1;
    const int code = control(mountpoint, "replace", "replace " + std::to_string(index) + " " +
                                                        std::to_string(rate) + " " + (force ? "1 " : "0 ") +
                                                        absolute(new_device));
    if (code != 0 || !wait) return code;
    return wait_for(mountpoint, "replace");
  }
  if (scrub_cmd->parsed()) {
    if (stop) {
      if (wait || rate) return die("scrub: --stop takes neither --wait nor --rate", 16);
      return control(mountpoint, "scrub", "scrub-stop");
    }
    const int code = control(mountpoint, "scrub", rate ? "scrub " + std::to_string(rate) : "scrub");
    if (code != 0 || !wait) return code;
    return wait_for(mountpoint, "scrub");
  }
  return 16;
}
