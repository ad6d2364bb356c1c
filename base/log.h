// log: one line per event, to stderr (foreground) or syslog (a detached daemon).
//
// Libraries return errors as values and do not log, except fs/, which runs inside the daemon and
// reports events nobody asked about: a member failing, a block healed, a degraded mount. Those
// go through here so that they reach the user whether the daemon is attached or not.
//
//   log_to_syslog("raidfs");          // once, after detaching
//   RAIDFS_LOG(kWarning, "member %s failed: %s", path, why);
#pragma once

#include <syslog.h>
#include <time.h>

#include <atomic>
#include <cstdint>
#include <cstdarg>
#include <cstdio>

namespace raidfs {

enum class LogLevel { kError = LOG_ERR, kWarning = LOG_WARNING, kInfo = LOG_INFO, kDebug = LOG_DEBUG };

namespace detail {
inline std::atomic<bool> log_syslog{false};
inline std::atomic<int> log_max_level{static_cast<int>(LogLevel::kInfo)};
}  // namespace detail

inline void log_to_syslog(const char* ident) {
  ::openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
  detail::log_syslog = true;
}
inline void set_log_level(LogLevel max) { detail::log_max_level = static_cast<int>(max); }

[[gnu::format(printf, 2, 3)]] inline void log_message(LogLevel level, const char* format, ...) {
  if (static_cast<int>(level) > detail::log_max_level) return;
  va_list args;
  va_start(args, format);
  if (detail::log_syslog) {
    ::vsyslog(static_cast<int>(level), format, args);
  } else {
    static constexpr const char* kNames[] = {"", "", "", "error", "warning", "", "info", "debug"};
    char line[1024];
    std::vsnprintf(line, sizeof line, format, args);
    std::fprintf(stderr, "raidfs: %s: %s\n", kNames[static_cast<int>(level)], line);
  }
  va_end(args);
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
