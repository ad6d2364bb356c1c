// raidfs-fsck: checks (and repairs) an unmounted raidfs array offline — superblocks, metadata,
// every block's checksum, every stripe's parity. The work is fs::run_fsck (fs/fsck.h).
//
//   raidfs-fsck [-n|-y|-p] [-v] [--progress|--no-progress] SPEC | MEMBER...
//
// Exit codes, as e2fsck (bits, OR-ed): 0 clean, 1 problems fixed, 4 problems left uncorrected,
// 8 operational error (cannot open or read the array, in use), 16 usage error.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "fs/fsck.h"
#include "utils/progress.h"

namespace {

constexpr int kExitOperational = 8;
constexpr int kExitUsage = 16;

int die(const std::string& message, int code) {
  std::fprintf(stderr, "raidfs-fsck: %s\n", message.c_str());
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace raidfs;
  CLI::App app{
      "raidfs-fsck: check an unmounted raidfs array (superblocks, metadata, block checksums, "
      "parity)\n"
      "and repair it. Exit codes: 0 clean, 1 fixed, 4 left uncorrected, 8 operational error, 16 "
      "usage."};
  bool no_changes = false, yes = false, preen = false, verbose = false;
  bool progress = ::isatty(STDERR_FILENO);
  std::vector<std::string> targets;
  auto* n = app.add_flag("-n,--no-changes", no_changes, "check only, change nothing (the default)");
  auto* y = app.add_flag("-y,--yes", yes, "repair everything that can be repaired");
  auto* p =
      app.add_flag("-p,--preen", preen,
                   "repair only what loses nothing (parity, rebuilt blocks, counts, lost+found); "
                   "leave the rest");
  n->excludes(y)->excludes(p);
  y->excludes(p);
  app.add_flag("-v,--verbose", verbose, "also per-pass details");
  app.add_flag("--progress,!--no-progress", progress,
               "progress bar on a terminal (default: when stderr is one)");
  app.add_option("spec", targets,
                 "the metadata directory, a comma-separated member list, or the members one by one")
      ->required();
  app.set_version_flag("-V,--version", std::string("raidfs-fsck ") + RAIDFS_VERSION);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    return die(e.what() + std::string(" (see --help)"), kExitUsage);
  }

  std::string spec;
  for (const std::string& t : targets) spec += (spec.empty() ? "" : ",") + t;
  fs::FsckOptions options;
  options.mode = yes ? fs::FsckMode::kRepair : preen ? fs::FsckMode::kPreen : fs::FsckMode::kCheck;
  options.verbose = verbose;
  std::unique_ptr<ProgressBar> stripes_bar;
  options.output = [&](const std::string& line) {
    if (stripes_bar) stripes_bar->finish();
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  };
  if (progress)
    options.progress = [&](uint64_t done, uint64_t total) {
      if (!stripes_bar) stripes_bar = std::make_unique<ProgressBar>("checking stripes", total);
      stripes_bar->update(done);
    };

  auto summary = fs::run_fsck(spec, options);
  if (stripes_bar) stripes_bar->finish();
  if (!summary) return die(summary.error().message, kExitOperational);
  const int code = summary->exit_code();
  std::printf("%s: %llu problem(s) found, %llu fix(es) made, %llu left%s\n",
              code == 0    ? "clean"
              : (code & 4) ? "NOT CLEAN"
                           : "repaired",
              static_cast<unsigned long long>(summary->problems_found),
              static_cast<unsigned long long>(summary->problems_fixed),
              static_cast<unsigned long long>(summary->problems_left),
              (code & 4) && options.mode == fs::FsckMode::kCheck ? " (run raidfs-fsck -y to repair)"
              : (code & 4) && options.mode == fs::FsckMode::kPreen ? " (run raidfs-fsck -y by hand)"
                                                                   : "");
  return code;
}
