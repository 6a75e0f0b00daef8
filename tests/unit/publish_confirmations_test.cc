// PublishConfirmations: an event sent to some terminals is confirmed once the broker has
// acknowledged every copy, fails on a copy not handed over, refused or cut off by a lost
// connection, and never answers inside the call that sent it.

#include "control/publish_confirmations.h"

#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <optional>
#include <vector>

namespace hearth {
namespace {

class PublishConfirmationsTest : public ::testing::Test {
 protected:
  void run() {
    while (!posted_.empty()) {
      auto fn = std::move(posted_.front());
      posted_.pop_front();
      fn();
    }
  }
  PublishConfirmations::GroupPtr open(size_t copies) {
    return confirmations_.open(copies, [this](Status s) { answers_.push_back(s); });
  }

  std::deque<std::function<void()>> posted_;
  PublishConfirmations confirmations_{[this](std::function<void()> fn) {
    posted_.push_back(std::move(fn));
  }};
  std::vector<Status> answers_;
};

TEST_F(PublishConfirmationsTest, ConfirmedOnceEveryCopyIsAcknowledged) {
  auto g = open(2);
  confirmations_.sent(g, true, 7);
  confirmations_.sent(g, true, 8);
  confirmations_.acknowledged(7, 0x00);
  run();
  EXPECT_TRUE(answers_.empty());
  confirmations_.acknowledged(8, 0x10);  // "no matching subscribers" is a success
  EXPECT_TRUE(answers_.empty());         // posted, not run inside the acknowledgement
  run();
  ASSERT_EQ(answers_.size(), 1u);
  EXPECT_TRUE(answers_[0].isOk());
  EXPECT_EQ(confirmations_.waiting(), 0u);
  confirmations_.acknowledged(8, 0x00);  // a repeat changes nothing
  run();
  EXPECT_EQ(answers_.size(), 1u);
}

TEST_F(PublishConfirmationsTest, ARefusedOrUnhandedCopyFailsTheGroup) {
  auto refused = open(1);
  confirmations_.sent(refused, true, 1);
  confirmations_.acknowledged(1, 0x87);  // not authorized
  auto unhanded = open(2);
  confirmations_.sent(unhanded, false, 0);
  confirmations_.sent(unhanded, true, 2);
  confirmations_.acknowledged(2, 0x00);
  run();
  ASSERT_EQ(answers_.size(), 2u);
  EXPECT_EQ(answers_[0].code(), ErrorCode::kUnavailable);
  EXPECT_EQ(answers_[1].code(), ErrorCode::kUnavailable);
}

TEST_F(PublishConfirmationsTest, ALostConnectionFailsWhatWaitsAndLateAcknowledgementsAreIgnored) {
  auto g = open(1);
  confirmations_.sent(g, true, 5);
  confirmations_.connectionLost();
  confirmations_.acknowledged(5, 0x00);  // resent by the library after the reconnect
  run();
  ASSERT_EQ(answers_.size(), 1u);
  EXPECT_EQ(answers_[0].code(), ErrorCode::kUnavailable);
}

TEST_F(PublishConfirmationsTest, ACancelledGroupNeverAnswers) {
  auto g = open(1);
  confirmations_.sent(g, false, 0);  // failed at once, inside the sender's call
  PublishConfirmations::cancel(g);   // which then says it went to nobody
  run();
  EXPECT_TRUE(answers_.empty());
}

}  // namespace
}  // namespace hearth
