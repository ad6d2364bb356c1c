// mount.raidfs: mounts a raidfs array and serves it (the daemon), detached unless -f.
//
//   mount.raidfs SPEC MOUNTPOINT [-o OPTION[,OPTION...]] [-f] [-d] [--threads N]
//
// SPEC is the metadata directory or a comma-separated member list (fs/array_spec.h). This is
// the `mount -t raidfs` helper: mount(8) runs /sbin/mount.raidfs SPEC DIR [-sfnv] [-o opts];
// -n, -s and -v are accepted and ignored (there is no mtab to skip writing).
//
// Detaching happens first, before anything is opened (RocksDB's and io_uring's threads do not
// survive fork): the child starts a new session and does all the work, and tells the waiting
// parent over a pipe "mounted" or the error, so `mount` returns only once the filesystem is there
// and fails with the daemon's own error line. SIGTERM, SIGINT or SIGHUP unmount; the daemon then
// writes everything out (sync_all) and exits.
//
// Exit codes: 0 mounted (detached) or served and unmounted (-f); 1 error; 16 usage.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/log.h"
#include "fs/array_spec.h"
#include "fs/classic_transport.h"
#include "fs/filesystem.h"
#include "fs/fuse_dispatcher.h"
#include "fs/fuse_mount.h"
#include "fs/uring_transport.h"
#include "utils/mount_options.h"
#include "utils/remount.h"

namespace {

using namespace raidfs;
using utils::absolute_if_exists;
using utils::split;
using namespace std::chrono_literals;

constexpr int kExitError = 1;
constexpr int kExitUsage = 16;
constexpr auto kBusyRetryTime = 10s;  // an earlier daemon may still be writing out at unmount

struct Settings {
  std::string spec;        // absolute where it names existing paths
  std::string mountpoint;  // absolute
  bool foreground = false;
  bool debug = false;
  utils::MountOptions o;
};

// Blocks SIGTERM, SIGINT and SIGHUP in every thread (this one and all made after) and waits for
// them on a thread of its own, which unmounts: the transport's workers then see the connection
// end, and the main thread writes everything out. A signal before the mount exists is kept and
// acted on as soon as the mount is attached.
class SignalWatcher {
 public:
  SignalWatcher() {
    sigemptyset(&set_);
    for (int s : {SIGTERM, SIGINT, SIGHUP, kQuitSignal}) sigaddset(&set_, s);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
    thread_ = std::thread([this] { wait(); });
  }
  ~SignalWatcher() {
    quitting_ = true;
    pthread_kill(thread_.native_handle(), kQuitSignal);
    thread_.join();
  }
  void attach(fs::FuseMount* mount) {
    std::lock_guard lock(mu_);
    mount_ = mount;
    if (signalled_ && mount_ != nullptr) mount_->unmount();
  }
  bool signalled() const { return signalled_; }

 private:
  static constexpr int kQuitSignal = SIGUSR2;
  void wait() {
    for (;;) {
      int signal = 0;
      if (sigwait(&set_, &signal) != 0) continue;
      if (signal == kQuitSignal) {
        if (quitting_) return;
        continue;
      }
      RAIDFS_LOG(kInfo, "signal %d: unmounting", signal);
      std::lock_guard lock(mu_);
      signalled_ = true;
      if (mount_ != nullptr) mount_->unmount();
    }
  }

  sigset_t set_;
  std::mutex mu_;  // guards mount_
  fs::FuseMount* mount_ = nullptr;
  std::atomic<bool> signalled_{false};
  std::atomic<bool> quitting_{false};
  std::thread thread_;
};

// How the daemon tells the parent waiting in the foreground that it mounted, or why not.
class Reporter {
 public:
  explicit Reporter(int fd) : fd_(fd) {}
  ~Reporter() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool detached() const { return detached_; }
  // Prints (foreground) or sends (detached) the error line; returns the exit code.
  int error(const std::string& message) {
    if (fd_ < 0) {
      std::fprintf(stderr, "mount.raidfs: %s\n", message.c_str());
    } else {
      send("error: " + message);
    }
    RAIDFS_LOG(kDebug, "%s", message.c_str());
    return kExitError;
  }
  // The filesystem is mounted: leave the terminal and log to `log_file` (empty: syslog) from
  // now on. The parent is released by release_parent(), once the log has the mount's lines.
  void detach_log(const std::string& log_file, const std::string& mountpoint) {
    if (fd_ < 0) return;
    const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
      for (int target : {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO}) ::dup2(null, target);
      ::close(null);
    }
    if (log_file.empty() ||
        !log_to_file(log_file, "raidfs[" + std::to_string(::getpid()) + "] " + mountpoint))
      log_to_syslog("raidfs");
    detached_ = true;
  }
  // `mount` returns: whatever reads the log after it finds the "mounted" line.
  void release_parent() {
    if (fd_ >= 0) send("mounted");
  }

 private:
  void send(const std::string& line) {
    const std::string text = line + "\n";
    (void)!::write(fd_, text.data(), text.size());  // the parent may be gone: nothing to do
    ::close(fd_);
    fd_ = -1;
  }
  int fd_;
  bool detached_ = false;
};

// Which transport serves, and why: the status line and the one log line of a fallback.
class TransportChoice {
 public:
  void set_uring() {
    std::lock_guard lock(mu_);
    line_ = "transport: uring\n";
  }
  void set_classic(const std::string& why) {
    std::lock_guard lock(mu_);
    line_ = "transport: classic (" + why + ")\n";
  }
  // io_uring was asked for and is not used: said once in the log, and in the status.
  void fall_back(const std::string& why) {
    RAIDFS_LOG(kWarning, "FUSE-over-io_uring not used: %s; serving over classic /dev/fuse",
               why.c_str());
    set_classic("io_uring not used: " + why);
  }
  std::string status_line() const {
    std::lock_guard lock(mu_);
    return line_;
  }

 private:
  mutable std::mutex mu_;  // guards line_
  std::string line_ = "transport: classic\n";
};

// The daemon: opens, mounts, serves until unmounted, writes everything out.
int serve(const Settings& s, Reporter& reporter) {
  ::signal(SIGPIPE, SIG_IGN);  // a reply or report to a vanished reader is an error, not a death
  SignalWatcher signals;

  // A member still held by an earlier daemon finishing its unmount (EBUSY) frees up shortly.
  const auto deadline = std::chrono::steady_clock::now() + kBusyRetryTime;
  Result<fs::OpenedArray> opened = fs::open_array(s.spec, s.o.members, s.o.read_only);
  while (!opened && opened.error().code == EBUSY && std::chrono::steady_clock::now() < deadline &&
         !signals.signalled()) {
    std::this_thread::sleep_for(200ms);
    opened = fs::open_array(s.spec, s.o.members, s.o.read_only);
  }
  if (!opened) return reporter.error(opened.error().message);
  for (const std::string& w : opened->warnings) {
    std::fprintf(stderr, "mount.raidfs: warning: %s\n", w.c_str());
    if (s.foreground) RAIDFS_LOG(kWarning, "%s", w.c_str());
  }

  fs::FilesystemOptions fo;
  fo.read_only = s.o.read_only;
  fo.commit_interval_ms = s.o.commit_interval_s * 1000;
  fo.cleaner = s.o.cleaner;
  fo.discard = s.o.discard;
  fo.copy_below = s.o.copy_below;
  auto filesystem = fs::Filesystem::open(std::move(opened->array), std::move(opened->meta), fo);
  if (!filesystem) return reporter.error(filesystem.error().message);
  if (signals.signalled()) return reporter.error("interrupted before mounting");

  // The io_uring queues are made before the mount: INIT asks for FUSE_OVER_IO_URING only if
  // they exist, because once the kernel grants it, it holds every request back until the rings
  // register — a daemon that asked and then could not would hang its users.
  fs::RequestDispatcher dispatcher(**filesystem, s.o.dispatcher);
  TransportChoice choice;
  std::unique_ptr<fs::UringTransport> uring;
  if (s.o.uring) {
    Result<void> ready = fs::enable_fuse_over_io_uring();
    if (ready) {
      fs::UringOptions uo;
      uo.threads_per_queue = s.o.uring_threads;
      uo.entries_per_ring = s.o.uring_entries;
      uo.max_write = dispatcher.options().max_write;
      uring = std::make_unique<fs::UringTransport>(**filesystem, dispatcher, uo);
      ready = uring->prepare();
      if (!ready) uring.reset();
    }
    if (!ready) choice.fall_back(ready.error().message);
  } else {
    choice.set_classic("-o transport=classic");
  }
  dispatcher.set_over_io_uring(uring != nullptr);

  // Where the detached daemon logs: syslog (the journal) when the machine has it, else a file —
  // checked before mounting, so that a log nobody could read is an error, not a silence.
  std::string log_file;
  if (!s.foreground) {
    if (s.o.log != "syslog" && !(s.o.log.empty() && syslog_available()))
      log_file = s.o.log.empty() ? utils::MountOptions::kLogFileDefault : s.o.log;
    if (!log_file.empty()) {
      const int fd = ::open(log_file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
      if (fd < 0)
        return reporter.error("cannot open the log file " + log_file + ": " +
                              std::strerror(errno) + " (choose another with -o log=PATH)");
      ::close(fd);
    }
  }

  auto mount = fs::FuseMount::mount(s.mountpoint, s.o.fuse_options, s.debug);
  if (!mount) return reporter.error(mount.error().message);
  const int fuse_fd = (*mount)->fd();
  dispatcher.set_notifier([fuse_fd](std::span<const uint8_t> message) -> Result<void> {
    if (::write(fuse_fd, message.data(), message.size()) < 0)
      return fail(errno, std::string("notification to /dev/fuse: ") + std::strerror(errno));
    return {};
  });
  // With io_uring, one /dev/fuse worker carries INIT, FORGET and INTERRUPT; the full count
  // serves if the kernel keeps everything on /dev/fuse.
  fs::ClassicTransport transport(**filesystem, dispatcher, fuse_fd, uring ? 1 : s.o.threads);
  if (uring) {
    uring->set_on_refused([&](const Error& e) {
      choice.fall_back(e.message);
      transport.grow(s.o.threads);
    });
    transport.set_after_init([&] {
      if (dispatcher.connection().over_io_uring()) {
        choice.set_uring();
        uring->start(fuse_fd);
        return;
      }
      uring->abandon();
      choice.fall_back("the kernel did not grant FUSE_OVER_IO_URING at INIT");
      transport.grow(s.o.threads);
    });
  }
  dispatcher.set_transport_status([&] {
    std::string text = choice.status_line();
    if (uring && uring->started()) text += uring->status_lines();
    text += "classic_requests: " + std::to_string(transport.requests()) + " (" +
            std::to_string(transport.threads()) + " /dev/fuse workers)\n";
    return text;
  });
  signals.attach(mount->get());
  reporter.detach_log(log_file, s.mountpoint);
  if (reporter.detached()) {
    (void)!::chdir("/");  // keep no directory busy; every path in use is absolute
    for (const std::string& w : opened->warnings) RAIDFS_LOG(kWarning, "%s", w.c_str());
  }
  if (uring) {
    RAIDFS_LOG(kInfo, "mounted %s on %s (io_uring: %u queues x %u threads x %u entries%s)",
               s.spec.c_str(), s.mountpoint.c_str(), uring->queue_count(),
               uring->threads_per_queue(), uring->entries_per_ring(),
               s.o.read_only ? ", read-only" : "");
  } else {
    RAIDFS_LOG(kInfo, "mounted %s on %s (classic /dev/fuse: %u threads%s)", s.spec.c_str(),
               s.mountpoint.c_str(), s.o.threads, s.o.read_only ? ", read-only" : "");
  }
  reporter.release_parent();

  const Result<void> served = transport.run();
  // The connection ended: the kernel completed the ring commands with ENOTCONN and the queues
  // end by themselves (bounded: then they are stopped), closing their rings. Queues still
  // waiting for INIT (the connection ended before it) just end.
  if (uring) {
    uring->abandon();
    uring->join(std::chrono::seconds(5));
  }
  signals.attach(nullptr);
  (*mount)->unmount();  // already done unless the transport failed
  int code = 0;
  if (!served) {
    RAIDFS_LOG(kError, "%s", served.error().message.c_str());
    code = kExitError;
  }
  // Whatever the kernel sent before the connection ended is in; write out the open stripes and
  // record the clean unmount.
  auto ctx = (*filesystem)->make_io_context();
  Result<void> synced =
      ctx ? (*filesystem)->unmount(**ctx) : Result<void>(std::unexpected(ctx.error()));
  if (!synced) {
    RAIDFS_LOG(kError, "writing out at unmount failed: %s", synced.error().message.c_str());
    code = kExitError;
  } else {
    RAIDFS_LOG(kInfo, "unmounted %s; everything written out", s.mountpoint.c_str());
  }
  return code;
}

// Forks; the parent waits for the child's report and returns the exit code; the child returns
// -1 and the write end of the report pipe in `report_fd`.
int detach(int& report_fd) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    std::fprintf(stderr, "mount.raidfs: pipe: %s\n", std::strerror(errno));
    return kExitError;
  }
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    std::fprintf(stderr, "mount.raidfs: fork: %s\n", std::strerror(errno));
    return kExitError;
  }
  if (pid == 0) {
    ::close(pipe_fds[0]);
    ::setsid();
    report_fd = pipe_fds[1];
    return -1;
  }
  ::close(pipe_fds[1]);
  std::string text;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(pipe_fds[0], buf, sizeof buf);
    if (n > 0) {
      text.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;
  }
  ::close(pipe_fds[0]);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  if (text == "mounted") return 0;
  if (text.starts_with("error: ")) {
    std::fprintf(stderr, "mount.raidfs: %s\n", text.c_str() + 7);
  } else {
    std::fprintf(stderr,
                 "mount.raidfs: the daemon exited before mounting (run with -f to see why)\n");
  }
  return kExitError;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mount.raidfs: mount a raidfs array (the mount -t raidfs helper)"};
  Settings s;
  std::vector<std::string> option_args;
  bool ignored = false;
  std::string ignored_type;
  app.add_option("spec", s.spec, "metadata directory, or member paths separated by commas")
      ->required();
  app.add_option("mountpoint", s.mountpoint, "directory to mount on")->required();
  app.add_option("-o", option_args,
                 "mount options, comma-separated: FUSE/mount ones (ro, allow_other, noatime ...) "
                 "and raidfs ones: members=PATH:PATH:..., transport=uring|classic, "
                 "uring_threads=N, uring_entries=N, threads=N, writeback_cache, "
                 "no_writeback_cache, noacl, nocleaner, discard, async_dio, attr_timeout=SECONDS, entry_timeout=SECONDS, commit=SECONDS, "
                 "log=syslog|PATH (default: syslog if /dev/log exists, else /var/log/raidfs.log)")
      ->expected(1)
      ->allow_extra_args(false)
      ->take_all();
  app.add_flag("-f,--foreground", s.foreground, "stay in the foreground (do not detach)");
  app.add_flag("-d,--debug", s.debug, "log every request (implies -f)");
  app.add_option("--threads", s.o.threads,
                 "classic /dev/fuse worker threads (with io_uring: used only if it falls back)")
      ->capture_default_str()
      ->check(CLI::Range(1u, fs::ClassicTransport::kThreadsMax));
  app.add_flag("-n,-s,-v", ignored, "accepted from mount(8) and ignored");
  app.add_option("-t", ignored_type, "accepted from mount(8) and ignored");
  app.set_version_flag("-V,--version", std::string("mount.raidfs ") + RAIDFS_VERSION);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fprintf(stderr, "mount.raidfs: %s (see --help)\n", e.what());
    return kExitUsage;
  }
  if (s.debug) {
    s.foreground = true;
    set_log_level(LogLevel::kDebug);
  }

  for (const std::string& arg : option_args) {
    if (auto r = s.o.parse(arg); !r) {
      std::fprintf(stderr, "mount.raidfs: %s (see --help)\n", r.error().message.c_str());
      return kExitUsage;
    }
  }
  if (s.o.remount) {  // mount -o remount,...: the running daemon's mount changes its flags
    if (auto r = utils::remount(s.mountpoint, s.o.fuse_options); !r) {
      std::fprintf(stderr, "mount.raidfs: %s\n", r.error().message.c_str());
      return kExitError;
    }
    return 0;
  }
  // Paths become absolute: the daemon leaves its working directory once everything is open.
  std::vector<std::string> spec_parts;
  for (const std::string& part : split(s.spec, ',')) spec_parts.push_back(absolute_if_exists(part));
  std::string spec;
  for (const std::string& part : spec_parts) spec += (spec.empty() ? "" : ",") + part;
  s.spec = spec.empty() ? s.spec : spec;
  char resolved[PATH_MAX];
  if (::realpath(s.mountpoint.c_str(), resolved) == nullptr) {
    std::fprintf(stderr, "mount.raidfs: %s: %s\n", s.mountpoint.c_str(), std::strerror(errno));
    return kExitError;
  }
  s.mountpoint = resolved;
  bool has_fsname = false;
  for (const std::string& o : s.o.fuse_options) has_fsname |= o.starts_with("fsname=");
  if (!has_fsname) s.o.fuse_options.push_back("fsname=" + s.spec);
  // Root mounts are system mounts: every user may use them, the kernel checking permissions.
  bool has_allow = false;
  for (const std::string& o : s.o.fuse_options) has_allow |= o == "allow_other" || o == "allow_root";
  if (::geteuid() == 0 && !has_allow) s.o.fuse_options.push_back("allow_other");
  if (auto r = fs::FuseMount::check_options(s.o.fuse_options); !r) {
    std::fprintf(stderr, "mount.raidfs: %s (see --help)\n", r.error().message.c_str());
    return kExitUsage;
  }

  int report_fd = -1;
  if (!s.foreground) {
    const int parent_code = detach(report_fd);
    if (parent_code >= 0) return parent_code;
  }
  Reporter reporter(report_fd);
  return serve(s, reporter);
}
