// MountOptions: see mount_options.h.
#include "utils/mount_options.h"

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "utils/size_option.h"

namespace raidfs::utils {
namespace {

Result<double> parse_seconds(const std::string& key, const std::string& value) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(value.c_str(), &end);
  if (value.empty() || *end != '\0' || errno != 0 || !std::isfinite(v) || v < 0)
    return fail(EINVAL, key + "=" + value + ": not a number of seconds");
  return v;
}

// A whole number in [min, max], or EINVAL saying what is expected.
Result<unsigned> parse_count(const std::string& key, const std::string& value, unsigned min,
                             unsigned max) {
  char* end = nullptr;
  errno = 0;
  const unsigned long n = std::strtoul(value.c_str(), &end, 10);
  if (value.empty() || value[0] == '-' || *end != '\0' || errno != 0 || n < min || n > max)
    return fail(EINVAL, key + "=" + value + ": expected a whole number from " +
                            std::to_string(min) + " to " + std::to_string(max));
  return static_cast<unsigned>(n);
}

// mount(8) options that only mean something to mount(8) or fstab, not to a FUSE filesystem.
bool dropped_option(const std::string& key) {
  static const char* const kDropped[] = {"defaults", "auto",  "noauto", "user",    "users",
                                         "nouser",   "owner", "group",  "_netdev", "nofail",
                                         "comment",  "loop",  "sw",     "helper"};
  for (const char* d : kDropped)
    if (key == d) return true;
  return key.starts_with("x-");
}

}  // namespace

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string part; std::getline(ss, part, separator);) out.push_back(part);
  return out;
}

std::string absolute_if_exists(const std::string& path) {
  std::error_code ec;
  if (path.empty() || ::access(path.c_str(), F_OK) != 0) return path;
  auto abs = std::filesystem::absolute(path, ec);
  return ec ? path : abs.lexically_normal().string();
}

Result<void> MountOptions::parse(const std::string& list) {
  for (const std::string& option : split(list, ','))
    if (!option.empty()) RAIDFS_CHECK(apply(option));
  return {};
}

Result<void> MountOptions::apply(const std::string& option) {
  const size_t eq = option.find('=');
  const std::string key = option.substr(0, eq);
  const std::string value = eq == std::string::npos ? "" : option.substr(eq + 1);
  if (key == "members") {
    if (value.empty()) return fail(EINVAL, "members= needs PATH:PATH:...");
    members.clear();
    for (const std::string& p : split(value, ':')) {
      if (p.empty()) return fail(EINVAL, "members=" + value + ": empty path");
      members.push_back(absolute_if_exists(p));
    }
  } else if (key == "transport") {
    if (value != "uring" && value != "classic")
      return fail(EINVAL, "transport=" + value + ": expected classic or uring");
    uring = value == "uring";
  } else if (key == "uring_entries") {
    RAIDFS_TRY(uring_entries, parse_count(key, value, 1, fs::UringTransport::kEntriesMax));
  } else if (key == "uring_threads") {
    RAIDFS_TRY(uring_threads, parse_count(key, value, 1, fs::UringTransport::kThreadsPerQueueMax));
  } else if (key == "threads") {
    RAIDFS_TRY(threads, parse_count(key, value, 1, fs::ClassicTransport::kThreadsMax));
  } else if (key == "commit") {
    RAIDFS_TRY(commit_interval_s, parse_count(key, value, 0, kCommitIntervalMax));
    if (commit_interval_s == 0) commit_interval_s = kCommitIntervalDefault;  // as ext4
  } else if (key == "log") {
    if (value != "syslog" && !value.starts_with("/"))
      return fail(EINVAL, "log=" + value + ": expected syslog or an absolute path");
    log = value;
  } else if (key == "copy_below") {
    std::string bytes = value;
    if (std::string what = size_option()(bytes); !what.empty())
      return fail(EINVAL, "copy_below=" + value + ": " + what);
    const uint64_t n = std::stoull(bytes);
    if (n < kBlockBytes || n > kCopyBelowMax)
      return fail(EINVAL, "copy_below=" + value + ": expected 4K to 1G");
    copy_below = static_cast<uint32_t>(n);
  } else if (option == "cleaner" || option == "nocleaner") {
    cleaner = option == "cleaner";
  } else if (option == "discard" || option == "nodiscard") {
    discard = option == "discard";
  } else if (option == "acl" || option == "noacl") {
    dispatcher.posix_acl = option == "acl";
  } else if (option == "async_dio") {
    dispatcher.async_dio = true;
  } else if (option == "no_async_dio") {
    dispatcher.async_dio = false;
  } else if (option == "writeback_cache") {
    dispatcher.writeback_cache = true;
  } else if (option == "no_writeback_cache") {
    dispatcher.writeback_cache = false;
  } else if (key == "attr_timeout" || key == "entry_timeout") {
    RAIDFS_TRY(const double v, parse_seconds(key, value));
    (key == "attr_timeout" ? dispatcher.attr_timeout : dispatcher.entry_timeout) = v;
  } else if (option == "remount") {
    remount = true;
  } else if (dropped_option(key)) {
    // mount(8)'s business
  } else {
    if (option == "ro") read_only = true;
    if (option == "rw") read_only = false;
    fuse_options.push_back(option);
  }
  return {};
}

}  // namespace raidfs::utils
