// UserId: one shared copy per distinct id; a value that compares by its text.

#include "binding/user_id.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace hearth::binding {
namespace {

TEST(UserId, EqualTextIsOneSharedCopy) {
  std::string text = "user-" + std::to_string(12345);
  UserId a(text);
  UserId b("user-12345");
  UserId c = a;
  EXPECT_EQ(a, b);
  EXPECT_EQ(&a.str(), &b.str());  // the same copy
  EXPECT_EQ(&c.str(), &a.str());
  EXPECT_EQ(a, std::string("user-12345"));
  EXPECT_EQ(a, "user-12345");
  EXPECT_NE(a, UserId("user-12346"));
  EXPECT_NE(a, "user-1234");
  EXPECT_EQ(sizeof(UserId), sizeof(void*));
}

TEST(UserId, OrdersByText) {
  EXPECT_LT(UserId("alice"), UserId("bob"));
  EXPECT_GT(UserId("bob"), UserId("alice"));
  EXPECT_EQ(UserId("bob") <=> UserId("bob"), std::strong_ordering::equal);
}

TEST(UserId, DefaultIsEmptyAndReadsAsAString) {
  UserId none;
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(none, UserId(""));
  UserId id("8f14e45f-ceea-467f-a8f4-0b7c2e1d3a6b");  // longer than a short string holds
  const std::string& s = id;
  EXPECT_EQ(s, "8f14e45f-ceea-467f-a8f4-0b7c2e1d3a6b");
  EXPECT_STREQ(id.c_str(), s.c_str());
  std::ostringstream out;
  out << id;
  EXPECT_EQ(out.str(), s);
}

TEST(UserId, FindAddsNothing) {
  EXPECT_FALSE(UserId::find("never-made-a-userid-of-this"));
  EXPECT_FALSE(UserId::find("never-made-a-userid-of-this"));
  UserId made("made-one-now");
  auto found = UserId::find("made-one-now");
  ASSERT_TRUE(found);
  EXPECT_EQ(&found->str(), &made.str());
}

TEST(UserId, ThreadsMakingTheSameIdsGetTheSameCopies) {
  std::vector<const std::string*> seen(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&seen, t] {
      const std::string* last = nullptr;
      for (int i = 0; i < 2000; ++i) last = &UserId("shared-" + std::to_string(i)).str();
      seen[t] = last;
    });
  }
  for (auto& th : threads) th.join();
  for (auto* p : seen) EXPECT_EQ(p, seen[0]);
}

}  // namespace
}  // namespace hearth::binding
