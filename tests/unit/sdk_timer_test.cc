// hearth::Timer (PluginContext::after): a handle that cancels its timer when it goes, says
// whether it is still pending, and may be re-armed from its own callback.

#include <gtest/gtest.h>

#include <chrono>
#include <utility>

#include "hearth/sdk/fake_context.h"

namespace hearth {
namespace {

using std::chrono::milliseconds;

TEST(SdkTimer, ArmedUntilItFiresOrIsCancelled) {
  fakes::FakeContext ctx("t");
  int fired = 0;
  Timer t = ctx.after(milliseconds(10), [&] { ++fired; });
  EXPECT_TRUE(t.armed());
  ctx.advance(milliseconds(9));
  EXPECT_TRUE(t.armed());
  ctx.advance(milliseconds(1));
  EXPECT_EQ(fired, 1);
  EXPECT_FALSE(t.armed()) << "a fired timer is no longer pending";

  t = ctx.after(milliseconds(10), [&] { ++fired; });
  t.cancel();
  EXPECT_FALSE(t.armed());
  ctx.advance(milliseconds(20));
  EXPECT_EQ(fired, 1);
  EXPECT_FALSE(Timer().armed());
}

TEST(SdkTimer, TheHandleGoingOrBeingReplacedCancels) {
  fakes::FakeContext ctx("t");
  int a = 0, b = 0;
  {
    Timer gone = ctx.after(milliseconds(5), [&] { ++a; });
  }
  Timer t = ctx.after(milliseconds(5), [&] { ++a; });
  t = ctx.after(milliseconds(5), [&] { ++b; });  // replaces (cancels) the first
  Timer moved = std::move(t);
  EXPECT_FALSE(t.armed());  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  EXPECT_TRUE(moved.armed());
  ctx.advance(milliseconds(10));
  EXPECT_EQ(a, 0);
  EXPECT_EQ(b, 1);
}

TEST(SdkTimer, ReArmedFromItsOwnCallback) {
  fakes::FakeContext ctx("t");
  int ticks = 0;
  Timer t;
  std::function<void()> tick = [&] {
    ++ticks;
    EXPECT_FALSE(t.armed()) << "inside its callback the handle is already free";
    if (ticks < 3) t = ctx.after(milliseconds(100), tick);
  };
  t = ctx.after(milliseconds(100), tick);
  ctx.advance(milliseconds(1000));
  EXPECT_EQ(ticks, 3);
  EXPECT_FALSE(t.armed());
}

TEST(SdkTimer, NothingRunsAfterTheHostDroppedThePlugin) {
  fakes::FakeContext ctx("t");
  int fired = 0;
  Timer t = ctx.after(milliseconds(5), [&] { ++fired; });
  ctx.post([&] { ++fired; });
  ctx.markStopped();
  ctx.post([&] { ++fired; });
  ctx.advance(milliseconds(10));
  EXPECT_EQ(fired, 0);
}

}  // namespace
}  // namespace hearth
