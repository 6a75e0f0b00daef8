// BindingService's group commit: binding changes are committed to the WAL unsynced, and their
// answers and notifications go out only after the hub loop's turn ends with one sync
// (Database::syncWal), in the order they were produced. Also the API for principals acting for
// an owner (controlAs, deviceInfo, detail providers and the bus events) and the loser of a WiFi
// setup race (refuseProvisionToken).

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "binding/service.h"
#include "config/config.h"
#include "control/router.h"
#include "loop/clock.h"
#include "loop/hub_loop.h"
#include "loop/logger.h"
#include "identity/identity.h"
#include "store/database.h"

namespace hearth {
namespace {

class RecordingPublisher : public Publisher {
 public:
  void publish(const std::string& topic, const std::string& payload, const std::string*) override {
    published.push_back(topic + " " + payload);
  }
  std::vector<std::string> published;
};

class NullTransport : public DeviceTransport {
 public:
  bool present(const std::string&) const override { return true; }
  void control(const std::string&, const std::string&, const std::string&, const std::string&,
               std::function<void(Result<std::string>)> done) override {
    done(std::string("{}"));
  }
};

class GroupCommitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hearth-bs-XXXXXX";
    dir_ = mkdtemp(tmpl);
    auto db = Database::open(dir_ + "/hearth.db");
    ASSERT_TRUE(db) << db.status().toString();
    db_ = std::move(db).value();
    identity_ = std::make_unique<IdentityService>(*db_, clock_);
    ASSERT_TRUE(identity_->addUser("alice"));
    bindings_ = std::make_unique<binding::BindingService>(binding::ServiceDeps{
        *db_, loop_, clock_, logger_, *identity_,
        [this](const std::string& user, const std::string& event, const std::string& data) {
          events_.push_back(user + " " + event);
          eventData_.push_back(data);
        }});
    auto cfg = config::loadString("hub: {}\n", "test.yaml");
    ASSERT_TRUE(cfg.config) << config::formatErrors(cfg.errors);
    ASSERT_TRUE(bindings_->load(*cfg.config));
    ASSERT_TRUE(bindings_->registerMethods(router_));
    ASSERT_TRUE(bindings_->registerTransport("ble", &transport_, "test"));
    for (const char* id : {"lock-1", "lock-2"}) {
      DeviceReport r;
      r.deviceId = id;
      r.transport = "ble";
      r.model = "lock";
      r.name = id;
      ASSERT_TRUE(bindings_->report(r));
    }
    loop_.runOnce();
  }
  void TearDown() override {
    bindings_.reset();
    std::filesystem::remove_all(dir_);
  }

  void request(const std::string& method, const std::string& id, const std::string& params) {
    MqttMessage m;
    m.topic = "hearth/v1/u/alice/phone/req/" + method;
    m.payload = "{\"id\":\"" + id + "\",\"params\":" + params + "}";
    router_.handle(m);
  }

  std::string dir_;
  ManualClock clock_;
  LogSink sink_;
  TaggedLogger logger_{sink_, "test"};
  HubLoop loop_{clock_};
  RecordingPublisher pub_;
  RequestRouter router_{pub_, logger_};
  NullTransport transport_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<IdentityService> identity_;
  std::unique_ptr<binding::BindingService> bindings_;
  std::vector<std::string> events_;
  std::vector<std::string> eventData_;
};

TEST_F(GroupCommitTest, AnswersWaitForTheTurnsSyncAndKeepTheirOrder) {
  // Three requests read in one turn: two changes and a read between them.
  request("bindDevice", "1", R"({"deviceId":"lock-1"})");
  request("getBoundDevices", "2", "{}");
  request("bindDevice", "3", R"({"deviceId":"lock-2"})");
  // Committed already (another connection sees both bindings) ...
  {
    SQLite::Database other(dir_ + "/hearth.db", SQLite::OPEN_READONLY);
    EXPECT_EQ(other.execAndGet("SELECT count(*) FROM bindings").getInt(), 2);
  }
  // ... but nothing is answered or notified before the sync at the end of the turn.
  EXPECT_TRUE(pub_.published.empty());
  EXPECT_TRUE(events_.empty());

  loop_.runOnce();
  ASSERT_EQ(pub_.published.size(), 3u);
  EXPECT_NE(pub_.published[0].find("\"id\":\"1\",\"ok\":true"), std::string::npos)
      << pub_.published[0];
  // The read waited behind the first change and shows it.
  EXPECT_NE(pub_.published[1].find("\"id\":\"2\""), std::string::npos) << pub_.published[1];
  EXPECT_NE(pub_.published[1].find("lock-1"), std::string::npos) << pub_.published[1];
  EXPECT_NE(pub_.published[2].find("\"id\":\"3\",\"ok\":true"), std::string::npos)
      << pub_.published[2];
  EXPECT_FALSE(events_.empty());
}

TEST_F(GroupCommitTest, WithNothingPendingAReadIsAnsweredAtOnce) {
  request("getBoundDevices", "1", "{}");
  ASSERT_EQ(pub_.published.size(), 1u);
  EXPECT_NE(pub_.published[0].find("\"ok\":true"), std::string::npos) << pub_.published[0];
}

// ---- for principals acting for an owner (home_assistant) -------------------------------------

TEST_F(GroupCommitTest, ControlAsFollowsTheBindingRulesAndIsAuditedWithItsPrincipal) {
  std::vector<std::string> bus;
  bindings_->setBusPublisher([&](const std::string& topic, const std::string& data) {
    bus.push_back(topic + " " + data);
  });
  auto run = [&](const std::string& user) {
    std::optional<Result<std::string>> got;
    bindings_->controlAs(user, "lock-1", "set", "{}", "Home Assistant",
                         [&](Result<std::string> r) { got = std::move(r); });
    EXPECT_TRUE(got.has_value());
    return got.value_or(Status::error(ErrorCode::kInternal, "no answer"));
  };
  EXPECT_EQ(run("alice").status().code(), ErrorCode::kForbidden);  // not bound yet
  EXPECT_FALSE(bindings_->deviceInfo("lock-1")->ownerId.size());
  request("bindDevice", "1", R"({"deviceId":"lock-1"})");
  loop_.runOnce();
  ASSERT_EQ(bindings_->deviceInfo("lock-1")->ownerId, "alice");
  EXPECT_EQ(bindings_->deviceInfo("lock-1")->bindMode, "share_required");
  EXPECT_FALSE(bindings_->deviceInfo("nope"));
  // The change is announced on the bus once durable.
  EXPECT_EQ(bus, (std::vector<std::string>{"binding.changed {\"deviceId\":\"lock-1\"}"}));
  EXPECT_TRUE(run("alice").isOk());
  EXPECT_EQ(run("mallory").status().code(), ErrorCode::kForbidden);
  bindings_->setOnline("lock-1", false);
  EXPECT_EQ(run("alice").status().code(), ErrorCode::kOffline);
  EXPECT_EQ(bus.back(), "device.offline {\"deviceId\":\"lock-1\"}");
  loop_.runOnce();
  SQLite::Database other(dir_ + "/hearth.db", SQLite::OPEN_READONLY);
  EXPECT_EQ(other
                .execAndGet("SELECT count(*) FROM audit_log WHERE action = 'control' AND "
                            "actor = 'alice' AND reason = 'via Home Assistant'")
                .getInt(),
            1);
}

TEST_F(GroupCommitTest, DetailProvidersAddKeysToGetDeviceDetailUntilTheirPluginStops) {
  ASSERT_TRUE(bindings_->addDetailProvider(
      "homeAssistant",
      [](const std::string& d, const std::string& u) {
        return d == "lock-1" ? "{\"exposed\":true,\"asker\":\"" + u + "\"}" : "";
      },
      "home_assistant"));
  EXPECT_EQ(bindings_
                ->addDetailProvider(
                    "homeAssistant", [](auto&, auto&) { return ""; }, "x")
                .code(),
            ErrorCode::kConflict);
  EXPECT_EQ(bindings_
                ->addDetailProvider(
                    "relAccounts", [](auto&, auto&) { return ""; }, "x")
                .code(),
            ErrorCode::kInvalidRequest);
  request("bindDevice", "1", R"({"deviceId":"lock-1"})");
  loop_.runOnce();
  request("getDeviceDetail", "2", R"({"deviceId":"lock-1"})");
  ASSERT_EQ(pub_.published.size(), 2u);
  EXPECT_NE(pub_.published[1].find(R"("homeAssistant":{"asker":"alice","exposed":true})"),
            std::string::npos)
      << pub_.published[1];
  bindings_->unregisterOwner("home_assistant");
  request("getDeviceDetail", "3", R"({"deviceId":"lock-1"})");
  ASSERT_EQ(pub_.published.size(), 3u);
  EXPECT_EQ(pub_.published[2].find("homeAssistant"), std::string::npos) << pub_.published[2];
}

// Two phones set up one WiFi device: alice's token reached it first and bound her; the
// device's announcement with bob's token is refused by the transport (not co-signed under the
// new key), which asks the core to tell bob.
TEST_F(GroupCommitTest, TheLoserOfASetupRaceHearsTakenAndNothingElseChanges) {
  ASSERT_TRUE(identity_->addUser("bob"));
  ASSERT_TRUE(bindings_->registerTransport("wifi", &transport_, "test"));
  DeviceReport r;
  r.deviceId = "lamp-1";
  r.transport = "wifi";
  r.model = "lamp";
  r.name = "Lamp";
  ASSERT_TRUE(bindings_->report(r));
  auto tokenOf = [&](const std::string& user) {
    MqttMessage m;
    m.topic = "hearth/v1/u/" + user + "/phone/req/provisionBegin";
    m.payload = R"({"id":"p","params":{}})";
    pub_.published.clear();
    router_.handle(m);
    loop_.runOnce();
    EXPECT_EQ(pub_.published.size(), 1u);
    const std::string& out = pub_.published.back();
    const size_t at = out.find("\"token\":\"") + 9;
    return out.substr(at, out.find('"', at) - at);
  };
  const std::string alice = tokenOf("alice"), bob = tokenOf("bob");
  ASSERT_EQ(bindings_->presentProvisionToken("lamp-1", alice).value(), "alice");
  loop_.runOnce();
  events_.clear();
  eventData_.clear();
  const int64_t changes = db_->sql().getTotalChanges();

  ASSERT_TRUE(bindings_->refuseProvisionToken("lamp-1", bob));
  ASSERT_EQ(events_, std::vector<std::string>{"bob provisionFailed"});
  EXPECT_NE(eventData_[0].find(R"("deviceId":"lamp-1")"), std::string::npos) << eventData_[0];
  EXPECT_NE(eventData_[0].find(R"("reason":"taken")"), std::string::npos) << eventData_[0];
  EXPECT_EQ(db_->sql().getTotalChanges(), changes);  // nothing stored, nothing spent

  // What cannot have bound the device tells nobody: an unknown token, alice's spent one, a
  // user who is bound already, an expired token.
  EXPECT_EQ(bindings_->refuseProvisionToken("lamp-1", "forged").code(), ErrorCode::kTokenInvalid);
  EXPECT_EQ(bindings_->refuseProvisionToken("lamp-1", alice).code(), ErrorCode::kTokenUsed);
  const std::string aliceAgain = tokenOf("alice");
  EXPECT_EQ(bindings_->refuseProvisionToken("lamp-1", aliceAgain).code(), ErrorCode::kConflict);
  EXPECT_EQ(events_.size(), 1u);

  // Bob's token was not spent: when he sets the device up again (now co-signed), he takes it
  // over (WiFi's preemptive default).
  ASSERT_EQ(bindings_->presentProvisionToken("lamp-1", bob).value(), "bob");
  loop_.runOnce();
  clock_.advance(std::chrono::minutes(11));  // past provision_ttl (10 min)
  EXPECT_EQ(bindings_->refuseProvisionToken("lamp-1", aliceAgain).code(), ErrorCode::kTokenExpired);
}

}  // namespace
}  // namespace hearth
