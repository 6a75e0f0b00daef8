// The header-only utilities of the SDK (core/include/hearth/util): the back-off and the deadline
// queue that the core and the plugins share.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "hearth/util/backoff.h"
#include "hearth/util/deadline_queue.h"

namespace hearth::util {
namespace {

// --- back-off --------------------------------------------------------------------------------

TEST(Backoff, DoublesUpToTheCapWithJitterInTheUpperHalf) {
  using std::chrono::milliseconds;
  Backoff b(milliseconds(1000), milliseconds(30000), 42);
  const int64_t ceilings[] = {1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000};
  for (int64_t c : ceilings) {
    EXPECT_EQ(b.ceiling().count(), c);
    int64_t d = b.next().count();
    EXPECT_GE(d, c / 2);
    EXPECT_LE(d, c);
  }
  EXPECT_EQ(b.failures(), 8u);
  b.reset();
  EXPECT_EQ(b.ceiling().count(), 1000);
}

TEST(Backoff, JitterSpreadsHubsApart) {
  using std::chrono::milliseconds;
  std::set<int64_t> firsts;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    Backoff b(milliseconds(10000), milliseconds(60000), seed);
    firsts.insert(b.next().count());
  }
  EXPECT_GT(firsts.size(), 10u);
  // Deterministic for a seed.
  Backoff a(milliseconds(10000), milliseconds(60000), 7),
      c(milliseconds(10000), milliseconds(60000), 7);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(a.next(), c.next());
}

TEST(Backoff, NeverOverflowsAfterManyFailures) {
  using std::chrono::milliseconds;
  Backoff b(milliseconds(100), milliseconds(86400000), 1);
  for (int i = 0; i < 1000; ++i) {
    int64_t d = b.next().count();
    ASSERT_GT(d, 0);
    ASSERT_LE(d, 86400000);
  }
}

TEST(Backoff, WithoutJitterDoublesExactlyUpToTheCap) {
  using std::chrono::milliseconds;
  // The control plane's broker connection: min, 2·min, 4·min, ... max, no randomness.
  Backoff b(milliseconds(1000), milliseconds(30000), 0, Backoff::Jitter::kNone);
  const int64_t delays[] = {1000, 2000, 4000, 8000, 16000, 30000, 30000};
  for (int64_t d : delays) EXPECT_EQ(b.next().count(), d);
  b.reset();
  EXPECT_EQ(b.next().count(), 1000);
}

TEST(Backoff, BoundsAreSane) {
  using std::chrono::milliseconds;
  Backoff zero(milliseconds(0), milliseconds(0), 0, Backoff::Jitter::kNone);
  EXPECT_EQ(zero.next().count(), 1);  // never a busy loop
  Backoff inverted(milliseconds(5000), milliseconds(1000), 0, Backoff::Jitter::kNone);
  EXPECT_EQ(inverted.next().count(), 5000);  // max is at least min
  EXPECT_EQ(inverted.next().count(), 5000);
}

// --- deadline queue --------------------------------------------------------------------------

TEST(DeadlineQueue, EarliestFirstWithTiesByKey) {
  DeadlineQueue<std::string> q;
  EXPECT_TRUE(q.empty());
  q.set("b", 20);
  q.set("c", 10);
  q.set("a", 20);
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(q.earliest(), 10);
  EXPECT_EQ(q.earliestKey(), "c");
  EXPECT_EQ(q.due(9), std::vector<std::string>{});
  EXPECT_EQ(q.due(10), std::vector<std::string>{"c"});
  EXPECT_EQ(q.due(20), (std::vector<std::string>{"c", "a", "b"}));
  EXPECT_EQ(q.size(), 3u);  // due() takes nothing out
}

TEST(DeadlineQueue, OneDeadlinePerKeyMovedBySet) {
  DeadlineQueue<std::string> q;
  q.set("x", 50);
  q.set("x", 5);
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.earliest(), 5);
  EXPECT_EQ(q.deadlineOf("x"), 5);
  EXPECT_EQ(q.deadlineOf("missing", -1), -1);
  q.set("x", 5);  // unchanged
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.due(49), std::vector<std::string>{"x"});
}

TEST(DeadlineQueue, EraseAndPop) {
  DeadlineQueue<uint64_t, int64_t> q;
  q.set(1, 30);
  q.set(2, 10);
  q.set(3, 20);
  EXPECT_TRUE(q.erase(3));
  EXPECT_FALSE(q.erase(3));
  EXPECT_FALSE(q.contains(3));
  EXPECT_EQ(q.pop(), 2u);
  EXPECT_EQ(q.pop(), 1u);
  EXPECT_TRUE(q.empty());
  q.set(4, 1);
  q.clear();
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.contains(4));
}

TEST(DeadlineQueue, SteadyClockTimePoints) {
  using Time = std::chrono::steady_clock::time_point;
  DeadlineQueue<int, Time> q;
  const Time t0{};
  q.set(7, t0 + std::chrono::seconds(2));
  q.set(8, t0 + std::chrono::seconds(1));
  EXPECT_EQ(q.due(t0 + std::chrono::seconds(1)), std::vector<int>{8});
  EXPECT_EQ(q.earliest(), t0 + std::chrono::seconds(1));
}

}  // namespace
}  // namespace hearth::util
