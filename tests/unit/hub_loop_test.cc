#include "loop/hub_loop.h"

#include <gtest/gtest.h>

#include <thread>

#include "loop/clock.h"

namespace hearth {
namespace {

TEST(HubLoop, TimersFireInDeadlineOrderOnTheInjectedClock) {
  ManualClock clock;
  HubLoop loop(clock);
  std::vector<int> fired;
  loop.startTimer(std::chrono::milliseconds(200), [&] { fired.push_back(2); });
  loop.startTimer(std::chrono::milliseconds(100), [&] { fired.push_back(1); });
  TimerId cancelled = loop.startTimer(std::chrono::milliseconds(150), [&] { fired.push_back(9); });
  loop.cancelTimer(cancelled);
  loop.runOnce();
  EXPECT_TRUE(fired.empty());
  clock.advance(std::chrono::milliseconds(150));
  loop.runOnce();
  EXPECT_EQ(fired, std::vector<int>{1});
  clock.advance(std::chrono::milliseconds(100));
  loop.runOnce();
  EXPECT_EQ(fired, (std::vector<int>{1, 2}));
}

TEST(HubLoop, PostFromOtherThreadsRunsOnTheLoopInOrder) {
  SystemClock clock;
  HubLoop loop(clock);
  std::vector<int> seen;
  std::thread::id loopThread;
  std::thread producer([&] {
    for (int i = 0; i < 1000; ++i) loop.post([&, i] { seen.push_back(i); });
    loop.post([&] {
      loopThread = std::this_thread::get_id();
      loop.stop();
    });
  });
  loop.run();
  producer.join();
  ASSERT_EQ(seen.size(), 1000u);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(seen[i], i);
  EXPECT_EQ(loopThread, std::this_thread::get_id());
}

}  // namespace
}  // namespace hearth
