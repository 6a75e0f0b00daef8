// Durability off the hub loop: Database's background sync (the WalSyncer thread) and the hub's
// OutputGate. A message that follows its unit's own commit waits for the flush that covers it,
// one sent before it goes at once, a terminal's messages keep their order, and outside a unit
// anything unsynced holds a message back.

#include "daemon/output_gate.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "store/database.h"

namespace hearth {
namespace {

class OutputGateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hearth-gate-XXXXXX";
    dir_ = mkdtemp(tmpl);
    auto db = Database::open(dir_ + "/hearth.db");
    ASSERT_TRUE(db) << db.status().toString();
    db_ = std::move(db).value();
    db_->sql().exec("CREATE TABLE t (v INTEGER)");
    // The syncer's completions arrive here, as the hub loop's post() would carry them.
    ASSERT_TRUE(db_->startBackgroundSync([this](std::function<void()> fn) {
      std::lock_guard<std::mutex> l(m_);
      posted_.push_back(std::move(fn));
      cv_.notify_all();
    }));
    gate_ = std::make_unique<OutputGate>(*db_);
    db_->setCallbackScope([this](const std::function<void()>& fn) {
      OutputGate::Unit unit(*gate_);
      fn();
    });
  }
  void TearDown() override {
    gate_.reset();
    db_.reset();
    std::filesystem::remove_all(dir_);
  }
  void commit() {
    ASSERT_TRUE(db_->transaction([&] {
      db_->sql().exec("INSERT INTO t VALUES (1)");
      return Status::ok();
    }));
  }
  OutputGate::Publish record(std::string what) {
    return [this, what] {
      sent_.push_back(what);
      return true;
    };
  }
  // Runs what the syncer posted until everything committed is on disk.
  void drain() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!db_->allSynced() && std::chrono::steady_clock::now() < deadline) {
      std::deque<std::function<void()>> batch;
      {
        std::unique_lock<std::mutex> l(m_);
        cv_.wait_for(l, std::chrono::milliseconds(50), [&] { return !posted_.empty(); });
        batch.swap(posted_);
      }
      for (auto& fn : batch) fn();
    }
    ASSERT_TRUE(db_->allSynced());
  }

  std::string dir_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<OutputGate> gate_;
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> posted_;
  std::vector<std::string> sent_;
};

TEST_F(OutputGateTest, CommitsAreFlushedOffTheCallingThreadAndTheLoopConnectionNeverSyncs) {
  EXPECT_EQ(db_->sql().execAndGet("PRAGMA synchronous").getInt(), 1);  // NORMAL
  EXPECT_EQ(db_->sql().execAndGet("PRAGMA wal_autocheckpoint").getInt(), 0);
  commit();
  EXPECT_EQ(db_->committedGen(), db_->syncedGen() + 1);  // not on disk when commit returns
  bool ran = false;
  db_->afterSynced([&](bool ok) { ran = ok; });
  EXPECT_FALSE(ran);
  drain();
  EXPECT_TRUE(ran);
  EXPECT_GE(db_->flushes(), 1u);
}

TEST_F(OutputGateTest, AMessageAfterItsUnitsCommitWaitsForTheFlush) {
  {
    OutputGate::Unit unit(*gate_);
    EXPECT_EQ(gate_->send("u/forwarded", record("forwarded")), std::optional<bool>(true));
    commit();
    EXPECT_FALSE(gate_->send("u/answer", record("answer")).has_value());
  }
  EXPECT_EQ(sent_, std::vector<std::string>{"forwarded"});
  drain();
  EXPECT_EQ(sent_, (std::vector<std::string>{"forwarded", "answer"}));
}

TEST_F(OutputGateTest, AnotherUnitsUnsyncedCommitDoesNotHoldAMessage) {
  {
    OutputGate::Unit unit(*gate_);
    commit();
    gate_->send("u/a", record("a-answer"));
  }
  {
    OutputGate::Unit unit(*gate_);  // a read by another terminal, no commit of its own
    EXPECT_EQ(gate_->send("u/b", record("b-answer")), std::optional<bool>(true));
  }
  EXPECT_EQ(sent_, std::vector<std::string>{"b-answer"});
  drain();
  EXPECT_EQ(sent_, (std::vector<std::string>{"b-answer", "a-answer"}));
}

TEST_F(OutputGateTest, ATerminalsMessagesNeverOvertakeEachOther) {
  {
    OutputGate::Unit unit(*gate_);
    commit();
    gate_->send("u/a", record("first"));
  }
  {
    OutputGate::Unit unit(*gate_);  // would go at once, but "first" to the same terminal waits
    EXPECT_FALSE(gate_->send("u/a", record("second")).has_value());
  }
  EXPECT_TRUE(sent_.empty());
  drain();
  EXPECT_EQ(sent_, (std::vector<std::string>{"first", "second"}));
}

TEST_F(OutputGateTest, OutsideAUnitAnythingUnsyncedHoldsAMessage) {
  commit();
  EXPECT_FALSE(gate_->send("u/x", record("timer")).has_value());
  drain();
  EXPECT_EQ(sent_, std::vector<std::string>{"timer"});
  EXPECT_EQ(gate_->send("u/x", record("later")), std::optional<bool>(true));  // all synced
}

}  // namespace
}  // namespace hearth
