// FuseMount: see fuse_mount.h.
#define FUSE_USE_VERSION 314
#include "fs/fuse_mount.h"

#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "base/log.h"

namespace raidfs::fs {
namespace {

// libfuse reports why a mount failed only by logging it. While mount() runs, this thread's
// libfuse messages are collected so the Result can say what libfuse objected to; at any other
// time they go to raidfs's log. (Logging is the one global state fs/ has.)
thread_local std::string* collected = nullptr;

void log_from_libfuse(enum fuse_log_level level, const char* format, va_list args) {
  char line[512];
  std::vsnprintf(line, sizeof line, format, args);
  if (collected != nullptr) {
    *collected += line;  // one message may come in pieces: tidy() joins and splits them
    return;
  }
  std::string_view text(line);
  if (text.starts_with("fuse: ")) text.remove_prefix(6);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  if (text.empty()) return;
  const int n = static_cast<int>(text.size());
  if (level <= FUSE_LOG_ERR)
    RAIDFS_LOG(kError, "libfuse: %.*s", n, text.data());
  else if (level == FUSE_LOG_WARNING)
    RAIDFS_LOG(kWarning, "libfuse: %.*s", n, text.data());
  else
    RAIDFS_LOG(kDebug, "libfuse: %.*s", n, text.data());
}

// Collected libfuse output as one line: "fuse: " prefixes dropped, lines joined with "; ".
std::string tidy(const std::string& collected_text) {
  std::string out;
  size_t start = 0;
  while (start < collected_text.size()) {
    size_t end = collected_text.find('\n', start);
    if (end == std::string::npos) end = collected_text.size();
    std::string_view line(collected_text.data() + start, end - start);
    if (line.starts_with("fuse: ")) line.remove_prefix(6);
    while (!line.empty() && line.back() == ' ') line.remove_suffix(1);
    if (!line.empty()) {
      if (!out.empty()) out += "; ";
      out += line;
    }
    start = end + 1;
  }
  return out;
}

// libfuse splits -o arguments at commas and unescapes "\,": escape so each option stays whole.
std::string escape_option(const std::string& option) {
  std::string out;
  for (char c : option) {
    if (c == ',' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

bool has_option(const std::vector<std::string>& options, std::string_view name) {
  for (const std::string& o : options)
    if (o == name || (name.ends_with('=') && o.starts_with(name))) return true;
  return false;
}

// A libfuse session for `options` (with raidfs's defaults added), not mounted yet. EINVAL with
// libfuse's complaint when it refuses the options. `messages` collects libfuse's log meanwhile.
Result<fuse_session*> new_session(const std::vector<std::string>& options, bool debug,
                                  std::string& messages) {
  std::vector<std::string> all = options;
  if (!has_option(all, "default_permissions")) all.push_back("default_permissions");
  if (!has_option(all, "subtype=")) all.push_back("subtype=raidfs");
  std::vector<std::string> words = {"raidfs"};
  if (debug) words.push_back("-d");
  for (const std::string& o : all) {
    words.push_back("-o");
    words.push_back(escape_option(o));
  }
  std::vector<char*> argv;
  for (std::string& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(words.size()), argv.data());

  fuse_set_log_func(log_from_libfuse);
  collected = &messages;
  const fuse_lowlevel_ops no_ops{};  // requests are read by raidfs's transports, not libfuse
  fuse_session* session = fuse_session_new(&args, &no_ops, sizeof no_ops, nullptr);
  fuse_opt_free_args(&args);
  collected = nullptr;
  if (session == nullptr)
    return fail(EINVAL,
                "FUSE mount options: " +
                    (messages.empty() ? std::string("refused by libfuse") : tidy(messages)));
  return session;
}

}  // namespace

Result<void> FuseMount::check_options(const std::vector<std::string>& options) {
  std::string messages;
  RAIDFS_TRY(fuse_session * session, new_session(options, false, messages));
  fuse_session_destroy(session);
  return {};
}

Result<std::unique_ptr<FuseMount>> FuseMount::mount(const std::string& mountpoint,
                                                    const std::vector<std::string>& options,
                                                    bool debug) {
  struct stat st;
  if (::stat(mountpoint.c_str(), &st) != 0) {
    const int e = errno;
    return fail(e, mountpoint + ": " + std::strerror(e) +
                       (e == ENOTCONN ? " (a stale FUSE mount: fusermount3 -u it first)" : ""));
  }
  if (!S_ISDIR(st.st_mode)) return fail(ENOTDIR, mountpoint + ": not a directory");

  std::string messages;
  RAIDFS_TRY(fuse_session * session, new_session(options, debug, messages));
  collected = &messages;
  errno = 0;
  if (fuse_session_mount(session, mountpoint.c_str()) != 0) {
    const int e = errno != 0 ? errno : EIO;
    collected = nullptr;
    fuse_session_destroy(session);
    return fail(e, mountpoint + ": cannot mount: " +
                       (messages.empty() ? std::string(std::strerror(e)) : tidy(messages)));
  }
  collected = nullptr;

  std::unique_ptr<FuseMount> m(new FuseMount());
  m->mountpoint_ = mountpoint;
  m->session_ = session;
  m->mounted_ = true;
  m->fd_ = ::fcntl(fuse_session_fd(session), F_DUPFD_CLOEXEC, 3);
  if (m->fd_ < 0) {
    const int e = errno;  // m's destructor unmounts
    return fail(e, std::string("cannot duplicate the FUSE descriptor: ") + std::strerror(e));
  }
  return m;
}

void FuseMount::unmount() {
  std::lock_guard lock(mu_);
  if (!mounted_) return;
  mounted_ = false;
  fuse_session_unmount(session_);
}

FuseMount::~FuseMount() {
  unmount();
  if (session_ != nullptr) fuse_session_destroy(session_);
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace raidfs::fs
