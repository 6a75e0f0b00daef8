#include "binding/shared_text.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <thread>
#include <vector>

namespace hearth::binding {
namespace {

TEST(SharedText, ReadsAndComparesLikeItsText) {
  SharedText a = "acme-lamp-2";
  SharedText b = std::string("acme-lamp-2");
  SharedText c = std::string_view("acme-lock");
  EXPECT_EQ(a, b);
  EXPECT_EQ(&a.str(), &b.str());  // one copy of the text
  EXPECT_NE(a, c);
  EXPECT_EQ(a, "acme-lamp-2");
  EXPECT_EQ(a, std::string("acme-lamp-2"));
  EXPECT_TRUE(a == std::string_view("acme-lamp-2"));
  EXPECT_TRUE(a < c);
  EXPECT_EQ(a.size(), 11u);
  EXPECT_EQ("model " + a, "model acme-lamp-2");
  EXPECT_EQ(std::string("model ") + a + "!", "model acme-lamp-2!");
  const std::string& ref = a;
  EXPECT_EQ(ref, "acme-lamp-2");
  SharedText empty;
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(empty, "");
  EXPECT_EQ(empty, SharedText(""));
  EXPECT_NE(empty, a);
}

// A text goes with its last holder: a device reporting ever new models does not grow the pool.
TEST(SharedText, ATextGoesWithItsLastHolder) {
  const size_t before = SharedText::distinct();
  {
    SharedText a = "shared-text-test-only-1";
    SharedText copy = a;
    SharedText moved = std::move(copy);
    EXPECT_EQ(SharedText::distinct(), before + 1);
    a = "shared-text-test-only-2";  // the first one is still held by `moved`
    EXPECT_EQ(SharedText::distinct(), before + 2);
    EXPECT_EQ(moved, "shared-text-test-only-1");
  }
  EXPECT_EQ(SharedText::distinct(), before);
  SharedText model;
  for (int i = 0; i < 1000; ++i) model = "shared-text-test-model-" + std::to_string(i);
  EXPECT_EQ(SharedText::distinct(), before + 1);
  EXPECT_EQ(model, "shared-text-test-model-999");
}

TEST(SharedText, HoldersOnManyThreads) {
  const size_t before = SharedText::distinct();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([] {
      std::vector<SharedText> held;
      for (int i = 0; i < 2000; ++i) {
        held.push_back(SharedText("shared-text-thread-" + std::to_string(i % 7)));
        SharedText copy = held[static_cast<size_t>(i) / 2];
        if (i % 3 == 0) held.pop_back();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(SharedText::distinct(), before);
}

}  // namespace
}  // namespace hearth::binding
