// log: one line per event, to stderr (foreground), or once detached to syslog (the journal, when
// the machine has one) or a file (a machine without a syslog daemon: /dev/log missing).
//
// Libraries return errors as values and do not log, except fs/, which runs inside the daemon and
// reports events nobody asked about: a member failing, a block healed, a degraded mount. Those
// go through here so that they reach the user whether the daemon is attached or not. The last
// warnings and errors are also kept in memory for `raidfs status` (recent_warnings()).
//
//   log_to_syslog("raidfs");          // once, after detaching; or log_to_file(path, tag)
//   RAIDFS_LOG(kWarning, "member %s failed: %s", path, why);
#pragma once

#include <fcntl.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdarg>
#include <cstdio>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

namespace raidfs {

enum class LogLevel { kError = LOG_ERR, kWarning = LOG_WARNING, kInfo = LOG_INFO, kDebug = LOG_DEBUG };

namespace detail {
inline std::atomic<bool> log_syslog{false};
inline std::atomic<int> log_fd{-1};  // a log file, once detached without syslog
inline std::string log_tag;          // "raidfs[PID] MOUNTPOINT", set before log_fd
inline std::string log_path;          // the file's path, set before log_fd
inline std::atomic<int> log_max_level{static_cast<int>(LogLevel::kInfo)};
inline std::mutex recent_mu;
inline std::deque<std::string> recent;  // the last warnings and errors, "TIME level: text"
inline constexpr size_t kRecentMax = 16;

inline std::string local_time_text() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  tm local{};
  ::localtime_r(&ts.tv_sec, &local);
  char text[40];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &local);
  return text;
}
}  // namespace detail

// Whether the machine has a syslog socket (a syslog daemon or the journal listens there).
inline bool syslog_available() { return ::access("/dev/log", W_OK) == 0; }
inline void log_to_syslog(const char* ident) {
  ::openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
  detail::log_syslog = true;
}
// Appends every line to `path` (created 0640), each "TIME TAG level: text". False (errno set)
// when it cannot be opened; logging then stays where it was.
inline bool log_to_file(const std::string& path, const std::string& tag) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) return false;
  detail::log_tag = tag;
  detail::log_path = path;
  detail::log_fd = fd;
  return true;
}
// Where lines go now: "stderr", "syslog" or the file's path.
inline std::string log_destination() {
  if (detail::log_fd.load() >= 0) return detail::log_path;
  return detail::log_syslog ? "syslog" : "stderr";
}
inline void set_log_level(LogLevel max) { detail::log_max_level = static_cast<int>(max); }

// The last warnings and errors logged (at most 16, oldest first), each with its local time.
inline std::vector<std::string> recent_warnings() {
  std::lock_guard lock(detail::recent_mu);
  return {detail::recent.begin(), detail::recent.end()};
}

[[gnu::format(printf, 2, 3)]] inline void log_message(LogLevel level, const char* format, ...) {
  if (static_cast<int>(level) > detail::log_max_level) return;
  static constexpr const char* kNames[] = {"", "", "", "error", "warning", "", "info", "debug"};
  const char* name = kNames[static_cast<int>(level)];
  char line[1024];
  va_list args;
  va_start(args, format);
  std::vsnprintf(line, sizeof line, format, args);
  va_end(args);
  if (level == LogLevel::kError || level == LogLevel::kWarning) {
    std::lock_guard lock(detail::recent_mu);
    detail::recent.push_back(detail::local_time_text() + " " + name + ": " + line);
    if (detail::recent.size() > detail::kRecentMax) detail::recent.pop_front();
  }
  if (const int fd = detail::log_fd.load(); fd >= 0) {
    const std::string text =
        detail::local_time_text() + " " + detail::log_tag + " " + name + ": " + line + "\n";
    (void)!::write(fd, text.data(), text.size());  // one write: lines of threads never mix
  } else if (detail::log_syslog) {
    ::syslog(static_cast<int>(level), "%s", line);
  } else {
    std::fprintf(stderr, "raidfs: %s: %s\n", name, line);
  }
}

// At most `per_second` events a second pass allow(): for errors that can repeat with every
// request (a failing member, a full host filesystem) and must not flood the log. Thread-safe.
class LogRateLimit {
 public:
  explicit LogRateLimit(uint32_t per_second) : per_second_(per_second) {}
  bool allow() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    int64_t window = window_s_.load(std::memory_order_relaxed);
    if (window != ts.tv_sec &&
        window_s_.compare_exchange_strong(window, ts.tv_sec, std::memory_order_relaxed))
      count_.store(0, std::memory_order_relaxed);
    return count_.fetch_add(1, std::memory_order_relaxed) < per_second_;
  }

 private:
  const uint32_t per_second_;
  std::atomic<int64_t> window_s_{0};
  std::atomic<uint32_t> count_{0};
};

}  // namespace raidfs

#define RAIDFS_LOG(level, ...) ::raidfs::log_message(::raidfs::LogLevel::level, __VA_ARGS__)
