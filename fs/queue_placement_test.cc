// QueuePlacement: the verdicts on request patterns, the margins, and that nothing moves
// mid-window.
#include "fs/queue_placement.h"

#include <gtest/gtest.h>

#include <optional>

namespace raidfs::fs {
namespace {

using Where = QueuePlacement::Where;

// Feeds one window: `requests` requests of which `reads` are READs (the reads first), with a
// sleep before every `per_sleep`-th request. Returns what the window's last request returned.
std::optional<Where> window(QueuePlacement& p, unsigned reads, double per_sleep) {
  std::optional<Where> last;
  double next_sleep = 0;
  for (unsigned i = 0; i < QueuePlacement::kWindow; ++i) {
    if (i >= next_sleep) {
      p.on_sleep();
      next_sleep += per_sleep;
    }
    const auto r = p.on_request(i < reads);
    if (i + 1 < QueuePlacement::kWindow) {
      EXPECT_FALSE(r.has_value()) << "moved mid-window at " << i;
    }
    last = r;
  }
  return last;
}

constexpr unsigned kAll = QueuePlacement::kWindow;

TEST(QueuePlacement, StartsPinned) {
  QueuePlacement p;
  EXPECT_EQ(p.where(), Where::kPinned);
  EXPECT_EQ(p.moves(), 0u);
}

TEST(QueuePlacement, BlockingReadersKeepItPinned) {
  QueuePlacement p;
  for (int w = 0; w < 4; ++w) EXPECT_FALSE(window(p, kAll, 1).has_value());
  EXPECT_EQ(p.where(), Where::kPinned);
}

TEST(QueuePlacement, DeepReadsSpreadItAndBlockingReadsBringItBack) {
  QueuePlacement p;
  EXPECT_EQ(window(p, kAll, 8), Where::kSpread);
  EXPECT_EQ(p.where(), Where::kSpread);
  EXPECT_FALSE(window(p, kAll, 8).has_value());  // still deep: stays
  EXPECT_EQ(window(p, kAll, 1), Where::kPinned);
  EXPECT_EQ(p.moves(), 2u);
}

TEST(QueuePlacement, DeepWritesStayPinnedAndEndASpread) {
  QueuePlacement p;
  EXPECT_FALSE(window(p, 0, 16).has_value());
  EXPECT_EQ(window(p, kAll, 16), Where::kSpread);
  // 80% reads is below the 90% bar: back to the CPU, deep or not.
  EXPECT_EQ(window(p, kAll * 8 / 10, 16), Where::kPinned);
}

TEST(QueuePlacement, MarginsKeepABorderlineLoadWhereItIs) {
  // 1.75 requests per sleep: not deep enough to spread, not shallow enough to come back.
  QueuePlacement pinned;
  EXPECT_FALSE(window(pinned, kAll, 1.75).has_value());
  EXPECT_EQ(pinned.where(), Where::kPinned);

  QueuePlacement spread;
  ASSERT_EQ(window(spread, kAll, 4), Where::kSpread);
  EXPECT_FALSE(window(spread, kAll, 1.75).has_value());
  EXPECT_EQ(spread.where(), Where::kSpread);
  // Exactly at the edges: 2 per sleep spreads; below 1.5 per sleep pins.
  QueuePlacement edge;
  EXPECT_EQ(window(edge, kAll, 2), Where::kSpread);
  EXPECT_EQ(window(edge, kAll, 1.4), Where::kPinned);
}

TEST(QueuePlacement, SleepsOfOneWindowDoNotCountInTheNext) {
  QueuePlacement p;
  for (int i = 0; i < 1000; ++i) p.on_sleep();  // a long idle spell
  EXPECT_FALSE(window(p, kAll, 8).has_value());  // judged with those sleeps: shallow
  EXPECT_EQ(window(p, kAll, 8), Where::kSpread);  // a fresh window: deep
}

}  // namespace
}  // namespace raidfs::fs
