// fsck_internal (internal to fs/fsck*.cc): the problem log that every pass reports to, and the
// passes that live in their own files.
#pragma once

#include <string>

#include "fs/fsck.h"
#include "meta/store.h"
#include "raid/array.h"

namespace raidfs::fs::fsck_detail {

// Counts and prints what the passes find and do. Lines: "problem: ...", "fixed: ...",
// "left: ...", "warning: ...", "note: ..." (verbose only).
class FsckLog {
 public:
  FsckLog(const FsckOptions& options, FsckSummary& summary)
      : options_(options), summary_(summary) {}

  bool repairing() const { return options_.mode != FsckMode::kCheck; }
  bool preening() const { return options_.mode == FsckMode::kPreen; }
  bool verbose() const { return options_.verbose; }

  // A problem found; `count` of them (e.g. blocks) in one line.
  void problem(const std::string& text, uint64_t count = 1) {
    summary_.problems_found += count;
    line("problem: " + text);
  }
  // A fix made, of `count` problems.
  void fixed(const std::string& text, uint64_t count = 1) {
    summary_.problems_fixed += count;
    line("fixed: " + text);
  }
  // A problem that stays (-n, or beyond repair).
  void left(const std::string& text, uint64_t count = 1) {
    summary_.problems_left += count;
    line("left: " + text);
  }
  // A problem found and, depending on the mode, fixed (`done` says whether the fix worked).
  void found_and_fixed(const std::string& text, bool done, uint64_t count = 1) {
    if (!repairing()) {
      problem(text, count);
      summary_.problems_left += count;
    } else if (done) {
      summary_.problems_found += count;
      fixed(text, count);
    } else {
      summary_.problems_found += count;
      left(text, count);
    }
  }
  void warning(const std::string& text) { line("warning: " + text); }
  void note(const std::string& text) {
    if (options_.verbose) line(text);
  }
  void line(const std::string& text) {
    if (options_.output) options_.output(text);
  }
  void progress(uint64_t done, uint64_t total) {
    if (options_.progress) options_.progress(done, total);
  }

 private:
  const FsckOptions& options_;
  FsckSummary& summary_;
};

// Pass 3 (fsck_stripes.cc): every stripe record's blocks and parity.
Result<void> check_stripes(Array& array, meta::Store& store, FsckLog& log, FsckSummary& summary);

}  // namespace raidfs::fs::fsck_detail
