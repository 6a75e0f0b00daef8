// Unit tests of the coop_relay plugin against a fake PluginContext: the shared fakes of
// fake_context.h (an in-memory KvStore with real transaction semantics, a manual clock driving
// the timers) plus the control plane, the event bus and terminals whose presence the test
// flips. The plugin sources are compiled into this test.

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "../../plugins/coop_relay/coop_relay_plugin.h"
#include "fake_context.h"

// The plugin's entry point, defined by HEARTH_PLUGIN in coop_relay_plugin.cc.
extern "C" const hearth_plugin* hearth_plugin_entry(int version);

namespace hearth::coop {
namespace {

using Poco::JSON::Array;
using Poco::JSON::Object;

Object::Ptr parse(const std::string& json) {
  return Poco::JSON::Parser().parse(json).extract<Object::Ptr>();
}

std::string text(const Object& o) {
  std::ostringstream out;
  o.stringify(out);
  return out.str();
}

// ------------------------------------------------------------------------------------------
// The fake core: the shared fakes (fake_context.h) with what coop_relay needs beyond them.

struct SentEvent {
  std::string userId;
  std::string clientId;
  std::string event;
  Object::Ptr data;
};

// fakes::FakeContext (in-memory store, manual clock and timers, config, logger) plus a method
// table the test calls into, terminals the test says hello with and flips on and off line, an
// event bus, and a record of every event sent to a terminal.
class CoopContext : public fakes::FakeContext {
 public:
  CoopContext() : FakeContext("coop_relay") {
    // The shipped defaults.
    cfg.ints = {{"max_queued_per_terminal", 1000}, {"delivery_window", 50}};
    cfg.durations = {{"command_ttl", std::chrono::hours(24)},
                     {"reply_timeout", std::chrono::seconds(30)},
                     {"access_request_ttl", std::chrono::minutes(10)}};
  }

  Status registerMethod(const std::string& method, MethodScope, RequestHandler handler) override {
    if (methods.count(method)) return Status::error(ErrorCode::kConflict, method);
    methods[method] = std::move(handler);
    return Status::ok();
  }

  size_t sendEvent(const std::string& userId, const std::string& clientId, const std::string& event,
                   const std::string& dataJson) override {
    size_t n = 0;
    for (const auto& [key, t] : knownTerminals) {
      if (key.first != userId || !t.online) continue;
      if (!clientId.empty() && key.second != clientId) continue;
      sent.push_back({userId, key.second, event, parse(dataJson)});
      ++n;
    }
    return n;
  }

  std::optional<TerminalInfo> terminal(const std::string& userId,
                                       const std::string& clientId) const override {
    auto it = knownTerminals.find({userId, clientId});
    if (it == knownTerminals.end()) return std::nullopt;
    return it->second;
  }
  std::optional<TerminalInfo> terminalByOpenId(const std::string& openId) const override {
    for (const auto& [k, t] : knownTerminals) {
      if (t.openId == openId) return t;
    }
    return std::nullopt;
  }
  std::vector<TerminalInfo> terminals(const std::string& userId) const override {
    std::vector<TerminalInfo> out;
    for (const auto& [k, t] : knownTerminals) {
      if (k.first == userId) out.push_back(t);
    }
    return out;
  }
  bool userExists(const std::string& userId) const override { return !terminals(userId).empty(); }

  void subscribe(const std::string& topic, EventHandler handler) override {
    subscribers[topic].push_back(std::move(handler));
  }
  void publish(const std::string& topic, const std::string& dataJson) override {
    for (auto& h : subscribers[topic]) h(topic, dataJson);
  }

  // coop_relay has no devices; reaching for them would be a bug.
  Devices& devices() override { throw std::logic_error("coop_relay must not use devices()"); }

  // --- test controls ---
  void hello(const std::string& user, const std::string& client, const std::string& app,
             const std::string& model = "Phone", const std::string& name = "My phone") {
    TerminalInfo t{user, client, app, model, name, "open-" + user + "-" + client, true};
    knownTerminals[{user, client}] = t;
    Object o;
    o.set("userId", user);
    o.set("clientId", client);
    o.set("appId", app);
    publish(events::kTerminalHello, text(o));
  }
  void setOnline(const std::string& user, const std::string& client, bool online) {
    knownTerminals.at({user, client}).online = online;
    Object o;
    o.set("userId", user);
    o.set("clientId", client);
    publish(online ? events::kTerminalOnline : events::kTerminalOffline, text(o));
  }
  // The core's terminal.seen: a request from the terminal, or its presence `online` repeated.
  void seen(const std::string& user, const std::string& client, const std::string& via) {
    Object o;
    o.set("userId", user);
    o.set("clientId", client);
    o.set("via", via);
    publish(events::kTerminalSeen, text(o));
  }
  void removeUser(const std::string& user) {
    std::erase_if(knownTerminals, [&](const auto& kv) { return kv.first.first == user; });
    Object o;
    o.set("userId", user);
    publish(events::kUserRemoved, text(o));
  }
  // Simulates a restart: the plugin is gone, its handlers and subscriptions with it.
  void dropPlugin() {
    methods.clear();
    subscribers.clear();
    clearTimers();
  }

  std::map<std::string, RequestHandler> methods;
  std::map<std::pair<std::string, std::string>, TerminalInfo> knownTerminals;  // by (user, client)
  std::map<std::string, std::vector<EventHandler>> subscribers;
  std::vector<SentEvent> sent;
};

struct Reply {
  int answers = 0;
  size_t eventsBefore = 0;  // how many events had been sent when the answer came
  bool ok = false;
  std::string code;
  std::string message;
  Object::Ptr result;
};

// Records the answer; the Reply is shared because an answer may come after the call returned.
class RecordingSink : public ResponseSink {
 public:
  RecordingSink(std::shared_ptr<Reply> r, const CoopContext& ctx) : r_(std::move(r)), ctx_(ctx) {}
  void sendOk(std::string resultJson) override {
    ++r_->answers;
    r_->eventsBefore = ctx_.sent.size();
    r_->ok = true;
    r_->result = parse(resultJson);
  }
  void sendError(ErrorCode code, std::string message) override {
    ++r_->answers;
    r_->eventsBefore = ctx_.sent.size();
    r_->code = errorCodeName(code);
    r_->message = std::move(message);
  }

 private:
  std::shared_ptr<Reply> r_;
  const CoopContext& ctx_;
};

// ------------------------------------------------------------------------------------------
// Fixture: alice has terminals a1 (appA) and a2 (appA); bob has b1 (appB); carol has c1.

class CoopRelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ctx_.hello("alice", "a1", "appA", "Pixel", "Alice phone");
    ctx_.hello("alice", "a2", "appA", "TV", "Alice TV");
    ctx_.hello("bob", "b1", "appB", "iPad", "Bob tablet");
    ctx_.hello("carol", "c1", "appC");
    startPlugin();
  }

  void startPlugin() {
    plugin_ = std::make_unique<CoopRelayPlugin>(ctx_);
    ASSERT_TRUE(plugin_->start().isOk());
  }
  void restartPlugin() {
    plugin_->stop();
    plugin_.reset();
    ctx_.dropPlugin();
    startPlugin();
  }

  // Calls a method and returns at once; the answer may come later.
  std::shared_ptr<Reply> callAsync(const std::string& user, const std::string& client,
                                   const std::string& method, const std::string& params = "{}") {
    auto r = std::make_shared<Reply>();
    auto it = ctx_.methods.find(method);
    EXPECT_NE(it, ctx_.methods.end()) << method;
    if (it == ctx_.methods.end()) return r;
    Request req{method, "req-1", user, client, params, false};
    it->second(req, Responder(std::make_shared<RecordingSink>(r, ctx_)));
    ctx_.drain();  // the broker's acknowledgements of the events it sent (unless held)
    return r;
  }
  // Calls a method and waits for its answer: a sendCommand delivered at once is answered when
  // its record is written, within the plugin's write-behind window (50 ms).
  Reply call(const std::string& user, const std::string& client, const std::string& method,
             const std::string& params = "{}") {
    auto r = callAsync(user, client, method, params);
    if (r->answers == 0) ctx_.advance(std::chrono::milliseconds(100));
    EXPECT_EQ(r->answers, 1) << method << " must answer exactly once";
    return *r;
  }

  static std::string to(const std::string& user, const std::string& client,
                        const std::string& app) {
    return R"({"appId":")" + app + R"(","userId":")" + user + R"(","clientIdentify":")" + client +
           R"("})";
  }
  static std::string aliceA1() { return to("alice", "a1", "appA"); }
  static std::string bobB1() { return to("bob", "b1", "appB"); }

  // Events of one kind received by one terminal, in order.
  std::vector<Object::Ptr> events(const std::string& user, const std::string& client,
                                  const std::string& name) const {
    std::vector<Object::Ptr> out;
    for (const auto& e : ctx_.sent) {
      if (e.userId == user && e.clientId == client && e.event == name) out.push_back(e.data);
    }
    return out;
  }

  // alice/a1 asks bob/b1 for access; returns the commandId.
  std::string requestAccess(const std::string& permissions = R"(["light"])", bool all = false) {
    Reply r = call("alice", "a1", "requestAccessTo",
                   R"({"to":)" + bobB1() + R"(,"permissions":)" + permissions +
                       R"(,"allPermissions":)" + (all ? "true" : "false") + "}");
    EXPECT_TRUE(r.ok) << r.code << " " << r.message;
    return r.ok ? r.result->getValue<std::string>("commandId") : "";
  }
  // bob/b1 grants alice/a1 the given permissions.
  void grant(const std::string& permissions = R"(["light"])", bool all = false) {
    std::string id = requestAccess(permissions, all);
    Reply r = call("bob", "b1", "agreeAccessRequest",
                   R"({"commandId":")" + id + R"(","to":)" + aliceA1() + "}");
    ASSERT_TRUE(r.ok) << r.code << " " << r.message;
  }
  Reply send(const std::string& type, const std::string& target = bobB1(),
             const std::string& params = R"({"n":1})", const std::string& user = "alice",
             const std::string& client = "a1") {
    return call(user, client, "sendCommand",
                R"({"commandType":")" + type + R"(","to":)" + target + R"(,"commandParams":)" +
                    params + "}");
  }
  std::string sendOk(const std::string& type, const std::string& params = R"({"n":1})") {
    Reply r = send(type, bobB1(), params);
    EXPECT_TRUE(r.ok) << r.code << " " << r.message;
    return r.ok ? r.result->getValue<std::string>("commandId") : "";
  }
  // alice/a1 sends bob/b1 a command and returns at once; the answer may come later.
  std::shared_ptr<Reply> sendAsync(const std::string& type) {
    return callAsync("alice", "a1", "sendCommand",
                     R"({"commandType":")" + type + R"(","to":)" + bobB1() + "}");
  }
  // The target (bob/b1 by default) replies to a command from `sender`; asserts it worked.
  void replyTo(const std::string& commandId, const std::string& sender = aliceA1(),
               const std::string& user = "bob", const std::string& client = "b1") {
    Reply r = call(user, client, "replyCommand",
                   R"({"commandId":")" + commandId + R"(","to":)" + sender + "}");
    EXPECT_TRUE(r.ok) << commandId << ": " << r.code << " " << r.message;
  }
  // Restarts the plugin with another delivery window.
  void useDeliveryWindow(int64_t window) {
    ctx_.cfg.ints["delivery_window"] = window;
    restartPlugin();
  }
  // commandIds of the `command` events bob/b1 received, in first-arrival order, each once: what
  // the app sees after the client library drops commands offered again (SPEC §4a).
  std::vector<std::string> deliveredToBob() const {
    std::vector<std::string> out;
    std::set<std::string> seen;
    for (const auto& e : events("bob", "b1", "command")) {
      std::string id = e->getValue<std::string>("commandId");
      if (seen.insert(id).second) out.push_back(id);
    }
    return out;
  }
  // The target (bob/b1 by default) confirms it received commands; asserts it worked.
  Reply ack(const std::vector<std::string>& ids, const std::string& user = "bob",
            const std::string& client = "b1") {
    std::string list;
    for (const auto& id : ids) list += (list.empty() ? "\"" : ",\"") + id + "\"";
    Reply r = call(user, client, "ackCommand", R"({"commandIds":[)" + list + "]}");
    EXPECT_TRUE(r.ok) << r.code << " " << r.message;
    return r;
  }
  // State names of the commandState events alice/a1 got for one command, in order.
  // The states alice/a1 heard of: commandState events, and the commandResponse, which carries
  // the final state "replied" (no commandState goes with it).
  std::vector<std::string> statesOf(const std::string& commandId) const {
    std::vector<std::string> out;
    for (const auto& e : ctx_.sent) {
      if (e.userId != "alice" || e.clientId != "a1") continue;
      if (e.event != "commandState" && e.event != "commandResponse") continue;
      if (e.data->getValue<std::string>("commandId") == commandId) {
        out.push_back(e.data->getValue<std::string>("state"));
      }
    }
    return out;
  }

  CoopContext ctx_;
  std::unique_ptr<CoopRelayPlugin> plugin_;
};

std::vector<std::string> clientIds(const Array::Ptr& devices) {
  std::vector<std::string> out;
  for (size_t i = 0; i < devices->size(); ++i) {
    out.push_back(devices->getObject(i)->getValue<std::string>("clientIdentify"));
  }
  return out;
}

// ------------------------------------------------------------------------------------------

TEST_F(CoopRelayTest, StartRegistersEveryCoopMethodAndRuns) {
  for (const char* m :
       {"getOpenId", "getDeviceInfo", "requestAccessTo", "agreeAccessRequest",
        "rejectAccessRequest", "getMyDevices", "getAuthorizedDevices", "getAccessibleDevices",
        "getAllDevices", "removeAuthorizedDevice", "removeAccessibleDevice", "removeMyDevice",
        "sendCommand", "replyCommand", "ackCommand"}) {
    EXPECT_EQ(ctx_.methods.count(m), 1u) << m;
  }
  EXPECT_EQ(ctx_.state, PluginState::kRunning);
}

TEST_F(CoopRelayTest, DescriptorDeclaresTheConfigKeysWithDefaults) {
  const hearth_plugin* d = hearth_plugin_entry(HEARTH_ABI_VERSION);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->abi_version, static_cast<uint32_t>(HEARTH_ABI_VERSION));
  EXPECT_STREQ(d->name, "coop_relay");
  std::map<std::string, std::string> defaults;
  std::map<std::string, const hearth_config_key*> keys;
  for (size_t i = 0; i < d->config_key_count; ++i) {
    defaults[d->config_keys[i].name] = d->config_keys[i].default_value;
    keys[d->config_keys[i].name] = &d->config_keys[i];
  }
  EXPECT_EQ(defaults["command_ttl"], "24h");
  EXPECT_EQ(defaults["reply_timeout"], "30s");
  EXPECT_EQ(defaults["access_request_ttl"], "10m");
  EXPECT_EQ(defaults["max_queued_per_terminal"], "1000");
  // The core refuses a window outside [1, 10000] with "must be between 1 and 10000".
  EXPECT_EQ(defaults["delivery_window"], "50");
  ASSERT_EQ(keys.count("delivery_window"), 1u);
  EXPECT_EQ(keys["delivery_window"]->type, HEARTH_CFG_INT);
  EXPECT_EQ(keys["delivery_window"]->min, 1);
  EXPECT_EQ(keys["delivery_window"]->max, 10000);
}

TEST_F(CoopRelayTest, GetOpenIdReturnsTheCoreOpenIdAndNeedsHello) {
  Reply r = call("alice", "a1", "getOpenId");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.result->getValue<std::string>("openId"), "open-alice-a1");
  EXPECT_EQ(call("alice", "nohello", "getOpenId").code, "NOT_FOUND");
}

TEST_F(CoopRelayTest, GetDeviceInfoResolvesAnOpenIdWithMyPermissions) {
  Reply r = call("alice", "a1", "getDeviceInfo", R"({"openId":"open-bob-b1"})");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.result->getValue<std::string>("userId"), "bob");
  EXPECT_EQ(r.result->getValue<std::string>("clientIdentify"), "b1");
  EXPECT_EQ(r.result->getValue<std::string>("appId"), "appB");
  EXPECT_FALSE(r.result->getValue<bool>("allPermissions"));
  EXPECT_EQ(r.result->getArray("permissions")->size(), 0u);

  grant(R"(["light","lock"])");
  r = call("alice", "a1", "getDeviceInfo", R"({"openId":"open-bob-b1"})");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.result->getArray("permissions")->size(), 2u);
  // A terminal of the same user needs no grant, which the answer says.
  r = call("alice", "a1", "getDeviceInfo", R"({"openId":"open-alice-a2"})");
  EXPECT_TRUE(r.result->getValue<bool>("allPermissions"));

  EXPECT_EQ(call("alice", "a1", "getDeviceInfo", R"({"openId":"nope"})").code, "NOT_FOUND");
  EXPECT_EQ(call("alice", "a1", "getDeviceInfo", R"({"openId":"a/b"})").code, "INVALID_REQUEST");
  EXPECT_EQ(call("alice", "a1", "getDeviceInfo", R"({"openId":5})").code, "INVALID_REQUEST");
}

TEST_F(CoopRelayTest, SeedFlowRequestAgreeCommandReply) {
  std::string reqId = requestAccess(R"(["light"])");
  auto got = events("bob", "b1", "accessRequest");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0]->getValue<std::string>("commandId"), reqId);
  EXPECT_EQ(got[0]->getObject("from")->getValue<std::string>("clientIdentify"), "a1");
  EXPECT_EQ(got[0]->getObject("from")->getValue<std::string>("appId"), "appA");
  EXPECT_FALSE(got[0]->getObject("commandParams")->getValue<bool>("allPermissions"));
  EXPECT_EQ(got[0]->getObject("commandParams")->getArray("permissions")->getElement<std::string>(0),
            "light");

  Reply agree = call("bob", "b1", "agreeAccessRequest",
                     R"({"commandId":")" + reqId + R"(","to":)" + aliceA1() + "}");
  ASSERT_TRUE(agree.ok) << agree.code;
  auto resp = events("alice", "a1", "accessResponse");
  ASSERT_EQ(resp.size(), 1u);
  EXPECT_EQ(resp[0]->getValue<int>("code"), 0);
  EXPECT_EQ(resp[0]->getValue<std::string>("commandId"), reqId);
  EXPECT_EQ(resp[0]->getObject("from")->getValue<std::string>("userId"), "bob");
  // Both lists changed: each side is told to re-fetch.
  bool aliceSync = false, bobSync = false;
  for (auto& s : events("alice", "a1", "sync")) {
    aliceSync |= s->getValue<std::string>("type") == "accessibleDevices";
  }
  for (auto& s : events("bob", "b1", "sync")) {
    bobSync |= s->getValue<std::string>("type") == "authorizedDevices";
  }
  EXPECT_TRUE(aliceSync);
  EXPECT_TRUE(bobSync);

  Reply sent = send("light", bobB1(), R"({"on":true})");
  ASSERT_TRUE(sent.ok) << sent.code;
  std::string cmdId = sent.result->getValue<std::string>("commandId");
  // Sent to bob's session; delivered once bob confirms it (SPEC §4a).
  EXPECT_EQ(sent.result->getValue<std::string>("state"), "offered");
  EXPECT_EQ(sent.result->getValue<int>("stateCode"), 6);
  auto cmds = events("bob", "b1", "command");
  ASSERT_EQ(cmds.size(), 1u);
  EXPECT_EQ(cmds[0]->getValue<std::string>("commandId"), cmdId);
  EXPECT_EQ(cmds[0]->getValue<std::string>("commandType"), "light");
  EXPECT_TRUE(cmds[0]->getObject("commandParams")->getValue<bool>("on"));
  EXPECT_EQ(cmds[0]->getObject("from")->getValue<std::string>("userId"), "alice");
  Reply acked = ack({cmdId});
  ASSERT_EQ(acked.result->getArray("acknowledged")->size(), 1u);
  EXPECT_EQ(acked.result->getArray("acknowledged")->getElement<std::string>(0), cmdId);
  EXPECT_EQ(statesOf(cmdId), std::vector<std::string>{"delivered"});

  Reply reply =
      call("bob", "b1", "replyCommand",
           R"({"commandId":")" + cmdId + R"(","commandParams":{"ok":1},"to":)" + aliceA1() + "}");
  ASSERT_TRUE(reply.ok) << reply.code;
  auto back = events("alice", "a1", "commandResponse");
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0]->getValue<std::string>("commandId"), cmdId);
  EXPECT_EQ(back[0]->getValue<std::string>("commandType"), "light");
  EXPECT_EQ(back[0]->getValue<std::string>("state"), "replied");
  EXPECT_EQ(back[0]->getObject("commandParams")->getValue<int>("ok"), 1);
  EXPECT_EQ(back[0]->getObject("from")->getValue<std::string>("clientIdentify"), "b1");
  // Nothing of the command remains to be tracked.
  EXPECT_EQ(ctx_.kv.size("commands"), 0u);
}

TEST_F(CoopRelayTest, RejectionReachesTheRequesterAndGrantsNothing) {
  std::string id = requestAccess();
  Reply r = call("bob", "b1", "rejectAccessRequest",
                 R"({"commandId":")" + id + R"(","to":)" + aliceA1() + "}");
  ASSERT_TRUE(r.ok);
  auto resp = events("alice", "a1", "accessResponse");
  ASSERT_EQ(resp.size(), 1u);
  EXPECT_NE(resp[0]->getValue<int>("code"), 0);
  EXPECT_EQ(resp[0]->getValue<std::string>("message"), "rejected");
  EXPECT_EQ(send("light").code, "FORBIDDEN");
  // A decided request cannot be decided again.
  EXPECT_EQ(call("bob", "b1", "agreeAccessRequest",
                 R"({"commandId":")" + id + R"(","to":)" + aliceA1() + "}")
                .code,
            "NOT_FOUND");
}

TEST_F(CoopRelayTest, OnlyTheAddressedTerminalMayAnswerARequest) {
  std::string id = requestAccess();
  std::string body = R"({"commandId":")" + id + R"(","to":)" + aliceA1() + "}";
  // Another user, another terminal of the right user, and the requester itself.
  EXPECT_EQ(call("carol", "c1", "agreeAccessRequest", body).code, "FORBIDDEN");
  EXPECT_EQ(call("alice", "a1", "agreeAccessRequest", body).code, "FORBIDDEN");
  // The right terminal naming the wrong requester.
  EXPECT_EQ(call("bob", "b1", "agreeAccessRequest",
                 R"({"commandId":")" + id + R"(","to":)" + to("carol", "c1", "appC") + "}")
                .code,
            "FORBIDDEN");
  EXPECT_EQ(
      call("bob", "b1", "agreeAccessRequest", R"({"commandId":"forged-id","to":)" + aliceA1() + "}")
          .code,
      "NOT_FOUND");
  EXPECT_EQ(ctx_.kv.size("grants"), 0u);
  EXPECT_TRUE(events("alice", "a1", "accessResponse").empty());
  // Replay after the real answer.
  ASSERT_TRUE(call("bob", "b1", "agreeAccessRequest", body).ok);
  EXPECT_EQ(call("bob", "b1", "agreeAccessRequest", body).code, "NOT_FOUND");
  EXPECT_EQ(call("bob", "b1", "rejectAccessRequest", body).code, "NOT_FOUND");
  EXPECT_EQ(events("alice", "a1", "accessResponse").size(), 1u);
}

TEST_F(CoopRelayTest, AccessRequestExpiresAndTellsTheRequester) {
  std::string id = requestAccess();
  ctx_.advance(std::chrono::minutes(9));
  EXPECT_TRUE(events("alice", "a1", "accessResponse").empty());
  ctx_.advance(std::chrono::minutes(2));
  auto resp = events("alice", "a1", "accessResponse");
  ASSERT_EQ(resp.size(), 1u);
  EXPECT_EQ(resp[0]->getValue<std::string>("message"), "expired");
  EXPECT_NE(resp[0]->getValue<int>("code"), 0);
  EXPECT_EQ(call("bob", "b1", "agreeAccessRequest",
                 R"({"commandId":")" + id + R"(","to":)" + aliceA1() + "}")
                .code,
            "NOT_FOUND");
  EXPECT_EQ(ctx_.kv.size("requests"), 0u);
}

TEST_F(CoopRelayTest, AccessRequestToAnOfflineTerminalArrivesWhenItComesOnline) {
  ctx_.setOnline("bob", "b1", false);
  std::string id = requestAccess();
  EXPECT_TRUE(events("bob", "b1", "accessRequest").empty());
  ctx_.setOnline("bob", "b1", true);
  auto got = events("bob", "b1", "accessRequest");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0]->getValue<std::string>("commandId"), id);
}

TEST_F(CoopRelayTest, RequestAccessRefusesDuplicatesSelfAndSameUser) {
  requestAccess();
  EXPECT_EQ(
      call("alice", "a1", "requestAccessTo", R"({"to":)" + bobB1() + R"(,"allPermissions":true})")
          .code,
      "CONFLICT");
  EXPECT_EQ(call("alice", "a1", "requestAccessTo",
                 R"({"to":)" + to("alice", "a2", "appA") + R"(,"allPermissions":true})")
                .code,
            "CONFLICT");
  EXPECT_EQ(
      call("alice", "a1", "requestAccessTo", R"({"to":)" + aliceA1() + R"(,"allPermissions":true})")
          .code,
      "INVALID_REQUEST");
  // Unknown terminal, and a known terminal under the wrong appId.
  EXPECT_EQ(call("alice", "a1", "requestAccessTo",
                 R"({"to":)" + to("bob", "b9", "appB") + R"(,"allPermissions":true})")
                .code,
            "NOT_FOUND");
  EXPECT_EQ(call("alice", "a1", "requestAccessTo",
                 R"({"to":)" + to("bob", "b1", "appX") + R"(,"allPermissions":true})")
                .code,
            "NOT_FOUND");
  EXPECT_EQ(ctx_.kv.size("requests"), 1u);
}

TEST_F(CoopRelayTest, CommandsNeedAGrantCoveringTheirType) {
  EXPECT_EQ(send("light").code, "FORBIDDEN");
  grant(R"(["light"])");
  EXPECT_TRUE(send("light").ok);
  EXPECT_EQ(send("lock").code, "FORBIDDEN");
  // A grant runs from the granter to the grantee only.
  EXPECT_EQ(send("light", aliceA1(), "{}", "bob", "b1").code, "FORBIDDEN");
  // A second agreement widens the grant.
  grant(R"(["lock"])");
  EXPECT_TRUE(send("lock").ok);
  EXPECT_TRUE(send("light").ok);
  EXPECT_EQ(send("door").code, "FORBIDDEN");
  grant("[]", true);
  EXPECT_TRUE(send("door").ok);
  // Grants are per terminal: alice's other terminal has none.
  EXPECT_EQ(send("light", bobB1(), "{}", "alice", "a2").code, "FORBIDDEN");
}

TEST_F(CoopRelayTest, TerminalsOfOneUserNeedNoGrant) {
  Reply r = send("anything", to("alice", "a2", "appA"));
  ASSERT_TRUE(r.ok) << r.code;
  EXPECT_EQ(events("alice", "a2", "command").size(), 1u);
}

TEST_F(CoopRelayTest, RemovingAGrantForbidsTheNextCommand) {
  grant();
  ASSERT_TRUE(send("light").ok);
  Reply r = call("bob", "b1", "removeAuthorizedDevice",
                 R"({"clientIdentify":"a1","appId":"appA","userId":"alice"})");
  ASSERT_TRUE(r.ok) << r.code;
  EXPECT_EQ(send("light").code, "FORBIDDEN");
  EXPECT_EQ(call("bob", "b1", "removeAuthorizedDevice",
                 R"({"clientIdentify":"a1","appId":"appA","userId":"alice"})")
                .code,
            "NOT_FOUND");
  Reply lists = call("alice", "a1", "getAllDevices");
  EXPECT_EQ(lists.result->getArray("accessibleDevices")->size(), 0u);
}

TEST_F(CoopRelayTest, TheGranteeCanDropAGrantToo) {
  grant();
  EXPECT_EQ(call("alice", "a1", "removeAccessibleDevice",
                 R"({"clientIdentify":"b1","appId":"appX","userId":"bob"})")
                .code,
            "NOT_FOUND");
  ASSERT_TRUE(call("alice", "a1", "removeAccessibleDevice",
                   R"({"clientIdentify":"b1","appId":"appB","userId":"bob"})")
                  .ok);
  EXPECT_EQ(send("light").code, "FORBIDDEN");
  EXPECT_EQ(call("bob", "b1", "getAuthorizedDevices").result->getArray("devices")->size(), 0u);
}

TEST_F(CoopRelayTest, RevokingAGrantCancelsCommandsStillQueuedUnderIt) {
  grant();
  ctx_.setOnline("bob", "b1", false);
  std::string id = sendOk("light");
  ASSERT_TRUE(call("bob", "b1", "removeAuthorizedDevice",
                   R"({"clientIdentify":"a1","appId":"appA","userId":"alice"})")
                  .ok);
  auto states = events("alice", "a1", "commandState");
  ASSERT_FALSE(states.empty());
  EXPECT_EQ(states.back()->getValue<std::string>("commandId"), id);
  EXPECT_EQ(states.back()->getValue<std::string>("state"), "expired");
  EXPECT_EQ(states.back()->getValue<std::string>("reason"), "revoked");
  ctx_.setOnline("bob", "b1", true);
  EXPECT_TRUE(events("bob", "b1", "command").empty());
}

TEST_F(CoopRelayTest, DeviceListsCarryTheSeedFieldsAndPresence) {
  grant();
  Reply mine = call("alice", "a1", "getMyDevices");
  ASSERT_TRUE(mine.ok);
  Array::Ptr devices = mine.result->getArray("devices");
  EXPECT_EQ(clientIds(devices), (std::vector<std::string>{"a1", "a2"}));
  Object::Ptr tv = devices->getObject(1);
  EXPECT_EQ(tv->getValue<std::string>("appId"), "appA");
  EXPECT_EQ(tv->getValue<std::string>("deviceModel"), "TV");
  EXPECT_EQ(tv->getValue<std::string>("deviceName"), "Alice TV");
  EXPECT_EQ(tv->getValue<std::string>("userId"), "alice");
  EXPECT_TRUE(tv->getValue<bool>("online"));

  Reply all = call("alice", "a1", "getAllDevices");
  Array::Ptr accessible = all.result->getArray("accessibleDevices");
  ASSERT_EQ(accessible->size(), 1u);
  EXPECT_EQ(accessible->getObject(0)->getValue<std::string>("deviceName"), "Bob tablet");
  EXPECT_EQ(all.result->getArray("authorizedDevices")->size(), 0u);
  Reply authorized = call("bob", "b1", "getAuthorizedDevices");
  EXPECT_EQ(clientIds(authorized.result->getArray("devices")), std::vector<std::string>{"a1"});

  size_t syncsBefore = events("bob", "b1", "sync").size();
  ctx_.setOnline("alice", "a1", false);
  authorized = call("bob", "b1", "getAuthorizedDevices");
  EXPECT_FALSE(authorized.result->getArray("devices")->getObject(0)->getValue<bool>("online"));
  // bob's list changed (alice's terminal went offline): bob is told to re-fetch.
  EXPECT_GT(events("bob", "b1", "sync").size(), syncsBefore);
  mine = call("alice", "a2", "getMyDevices");
  EXPECT_FALSE(mine.result->getArray("devices")->getObject(0)->getValue<bool>("online"));
}

TEST_F(CoopRelayTest, RemoveMyDeviceHidesItDropsItsGrantsAndHelloBringsItBack) {
  grant();
  Reply r = call("bob", "b1", "removeMyDevice", R"({"clientIdentify":"b1"})");
  ASSERT_TRUE(r.ok) << r.code;
  EXPECT_TRUE(call("bob", "b1", "getMyDevices").result->getArray("devices")->size() == 0);
  EXPECT_EQ(call("alice", "a1", "getAccessibleDevices").result->getArray("devices")->size(), 0u);
  EXPECT_EQ(send("light").code, "NOT_FOUND");
  restartPlugin();  // removal is durable
  EXPECT_EQ(call("bob", "b1", "getMyDevices").result->getArray("devices")->size(), 0u);
  // Only the user's own terminals can be removed.
  EXPECT_EQ(call("alice", "a1", "removeMyDevice", R"({"clientIdentify":"b1"})").code, "NOT_FOUND");
  ctx_.hello("bob", "b1", "appB", "iPad", "Bob tablet");
  EXPECT_EQ(clientIds(call("bob", "b1", "getMyDevices").result->getArray("devices")),
            std::vector<std::string>{"b1"});
  // The grant does not come back with it.
  EXPECT_EQ(send("light").code, "FORBIDDEN");
}

TEST_F(CoopRelayTest, RemoveMyDeviceExpiresCommandsWaitingForIt) {
  ctx_.setOnline("alice", "a2", false);
  Reply r = send("x", to("alice", "a2", "appA"));
  ASSERT_EQ(r.result->getValue<std::string>("state"), "queued");
  ASSERT_TRUE(call("alice", "a1", "removeMyDevice", R"({"clientIdentify":"a2"})").ok);
  auto states = events("alice", "a1", "commandState");
  ASSERT_EQ(states.size(), 1u);
  EXPECT_EQ(states[0]->getValue<std::string>("state"), "expired");
  EXPECT_EQ(states[0]->getValue<std::string>("reason"), "removed");
  EXPECT_EQ(ctx_.kv.size("commands"), 0u);
}

TEST_F(CoopRelayTest, OfflineTargetGetsQueuedCommandsInSendOrder) {
  grant();
  ctx_.setOnline("bob", "b1", false);
  std::vector<std::string> ids;
  for (int i = 0; i < 100; ++i) {
    Reply r = send("light", bobB1(), R"({"i":)" + std::to_string(i) + "}");
    ASSERT_TRUE(r.ok);
    EXPECT_EQ(r.result->getValue<std::string>("state"), "queued");
    EXPECT_EQ(r.result->getValue<int>("stateCode"), 1);
    ids.push_back(r.result->getValue<std::string>("commandId"));
  }
  EXPECT_TRUE(events("bob", "b1", "command").empty());
  ctx_.setOnline("bob", "b1", true);
  // The first window (50 by default) goes out; each reply lets the next one follow.
  ASSERT_EQ(events("bob", "b1", "command").size(), 50u);
  for (int i = 0; i < 100; ++i) replyTo(ids[i]);
  auto cmds = events("bob", "b1", "command");
  ASSERT_EQ(cmds.size(), 100u);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(cmds[i]->getValue<std::string>("commandId"), ids[i]);
    EXPECT_EQ(cmds[i]->getObject("commandParams")->getValue<int>("i"), i);
  }
  auto states = events("alice", "a1", "commandState");
  ASSERT_EQ(states.size(), 100u);  // offered, for each (the commandResponse says replied)
  EXPECT_EQ(states[0]->getValue<std::string>("state"), "offered");
  EXPECT_EQ(states[0]->getValue<int>("stateCode"), 6);
  EXPECT_EQ(events("alice", "a1", "commandResponse").size(), 100u);
  EXPECT_EQ(ctx_.kv.size("commands"), 0u);
  // With the backlog gone, a new command goes straight out again.
  Reply r = send("light");
  EXPECT_EQ(r.result->getValue<std::string>("state"), "offered");
  EXPECT_EQ(events("bob", "b1", "command").size(), 101u);
}

// The core marks a terminal online before its terminal.online event reaches plugins; a command
// sent in between must still go out after the ones queued before it.
TEST_F(CoopRelayTest, CommandSentBeforeTheOnlineEventKeepsSendOrder) {
  grant();
  ctx_.setOnline("bob", "b1", false);
  std::string first = sendOk("light");
  std::string second = sendOk("light");
  ctx_.knownTerminals.at({"bob", "b1"}).online = true;  // no event yet
  Reply third = send("light");
  ASSERT_TRUE(third.ok);
  auto cmds = events("bob", "b1", "command");
  ASSERT_EQ(cmds.size(), 3u);
  EXPECT_EQ(cmds[0]->getValue<std::string>("commandId"), first);
  EXPECT_EQ(cmds[1]->getValue<std::string>("commandId"), second);
  EXPECT_EQ(cmds[2]->getValue<std::string>("commandId"),
            third.result->getValue<std::string>("commandId"));
  EXPECT_EQ(third.result->getValue<std::string>("state"), "offered");
  // The late event offers the three unconfirmed commands again, same ids, same order; the
  // client drops the repeats, so the app still sees each once, in send order.
  ctx_.setOnline("bob", "b1", true);
  cmds = events("bob", "b1", "command");
  ASSERT_EQ(cmds.size(), 6u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(cmds[3 + i]->getValue<std::string>("commandId"),
              cmds[i]->getValue<std::string>("commandId"));
  }
  EXPECT_EQ(deliveredToBob().size(), 3u);
}

// ------------------------------------------------------------------------------------------
// Delivery window: at most delivery_window commands to one target await their reply.

TEST_F(CoopRelayTest, FullWindowAnswersQueuedAndSendsNothingMore) {
  useDeliveryWindow(3);
  grant();
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    Reply r = send("light", bobB1(), R"({"i":)" + std::to_string(i) + "}");
    ASSERT_TRUE(r.ok) << r.code;
    EXPECT_EQ(r.result->getValue<std::string>("state"), i < 3 ? "offered" : "queued") << i;
    EXPECT_EQ(r.result->getValue<int>("stateCode"), i < 3 ? 6 : 1) << i;
    ids.push_back(r.result->getValue<std::string>("commandId"));
  }
  EXPECT_EQ(deliveredToBob(), std::vector<std::string>(ids.begin(), ids.begin() + 3));
  // The queued ones are in custody like any queued command.
  EXPECT_EQ(ctx_.kv.size("commands"), 5u);
  ctx_.advance(std::chrono::seconds(10));
  EXPECT_EQ(deliveredToBob().size(), 3u);
}

TEST_F(CoopRelayTest, EachReplyLetsTheNextQueuedCommandOutInSendOrder) {
  useDeliveryWindow(3);
  grant();
  // carol/c1 gets a grant from bob/b1 too: the window is per target, shared by its senders.
  Reply req =
      call("carol", "c1", "requestAccessTo", R"({"to":)" + bobB1() + R"(,"allPermissions":true})");
  ASSERT_TRUE(req.ok);
  std::string carol = to("carol", "c1", "appC");
  ASSERT_TRUE(call("bob", "b1", "agreeAccessRequest",
                   R"({"commandId":")" + req.result->getValue<std::string>("commandId") +
                       R"(","to":)" + carol + "}")
                  .ok);
  ctx_.setOnline("bob", "b1", false);
  std::vector<std::string> ids;
  std::map<std::string, std::string> senderOf;
  for (int i = 0; i < 10; ++i) {
    bool fromCarol = i % 3 == 1;
    Reply r = fromCarol
                  ? send("light", bobB1(), R"({"i":)" + std::to_string(i) + "}", "carol", "c1")
                  : send("light", bobB1(), R"({"i":)" + std::to_string(i) + "}");
    ASSERT_TRUE(r.ok) << r.code;
    ids.push_back(r.result->getValue<std::string>("commandId"));
    senderOf[ids.back()] = fromCarol ? carol : aliceA1();
  }
  ctx_.setOnline("bob", "b1", true);
  ASSERT_EQ(deliveredToBob(), std::vector<std::string>(ids.begin(), ids.begin() + 3));

  // Replies in another order than delivery: each frees one slot, and the oldest queued command
  // takes it. Never more than 3 outstanding.
  std::set<std::string> replied;
  auto outstanding = [&] {
    size_t n = 0;
    for (const auto& id : deliveredToBob()) n += replied.count(id) == 0;
    return n;
  };
  std::vector<size_t> replyOrder = {1, 0, 2, 4, 3, 5, 6, 8, 7, 9};
  for (size_t k = 0; k < replyOrder.size(); ++k) {
    const std::string& id = ids[replyOrder[k]];
    auto got = deliveredToBob();
    ASSERT_NE(std::find(got.begin(), got.end(), id), got.end()) << "not delivered yet: " << k;
    replyTo(id, senderOf[id]);
    replied.insert(id);
    EXPECT_LE(outstanding(), 3u);
    size_t expected = std::min<size_t>(ids.size(), 3 + replied.size());
    EXPECT_EQ(deliveredToBob().size(), expected) << "after " << replied.size() << " replies";
  }
  EXPECT_EQ(deliveredToBob(), ids);  // every one, once, in send order
  // Each sender heard "offered" for each of its queued commands, then got its response.
  size_t aliceDelivered = 0;
  for (const auto& st : events("alice", "a1", "commandState")) {
    aliceDelivered += st->getValue<std::string>("state") == "offered";
  }
  EXPECT_EQ(aliceDelivered, 7u);
  EXPECT_EQ(events("alice", "a1", "commandResponse").size(), 7u);
  EXPECT_EQ(events("carol", "c1", "commandResponse").size(), 3u);
  EXPECT_EQ(ctx_.kv.size("commands"), 0u);
}

TEST_F(CoopRelayTest, ReplyTimeoutFreesTheSlotForTheNextQueuedCommand) {
  useDeliveryWindow(2);
  grant();
  ctx_.setOnline("bob", "b1", false);
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(sendOk("light"));
  ctx_.setOnline("bob", "b1", true);
  ASSERT_EQ(deliveredToBob(), std::vector<std::string>(ids.begin(), ids.begin() + 2));
  ack({ids[0], ids[1]});  // bob confirms each command as it arrives; reply_timeout runs from then
  ctx_.advance(std::chrono::seconds(20));
  replyTo(ids[1]);  // one is answered, the other will time out
  ASSERT_EQ(deliveredToBob(), std::vector<std::string>(ids.begin(), ids.begin() + 3));
  ack({ids[2]});
  ctx_.advance(std::chrono::seconds(10));  // ids[0] reaches reply_timeout (30 s)
  ASSERT_EQ(deliveredToBob(), std::vector<std::string>(ids.begin(), ids.begin() + 4));
  ack({ids[3]});
  ctx_.advance(std::chrono::seconds(1));
  auto states = events("alice", "a1", "commandState");
  bool timedOut = false;
  for (const auto& st : states) {
    timedOut |= st->getValue<std::string>("commandId") == ids[0] &&
                st->getValue<std::string>("state") == "timeout";
  }
  EXPECT_TRUE(timedOut);
  ASSERT_EQ(deliveredToBob(), std::vector<std::string>(ids.begin(), ids.begin() + 4));
  // A command's reply_timeout runs from its own delivery, not from when it was queued:
  // ids[2] went out at t=20 s and times out at t=50 s, ids[3] (t=30 s) at t=60 s.
  ctx_.advance(std::chrono::seconds(18));  // t=49 s
  EXPECT_EQ(deliveredToBob().size(), 4u);
  ctx_.advance(std::chrono::seconds(2));  // t=51 s
  ASSERT_EQ(deliveredToBob(), ids);
  replyTo(ids[3]);
  replyTo(ids[4]);
  EXPECT_EQ(ctx_.kv.size("commands"), 0u);
}

TEST_F(CoopRelayTest, RestartWithAPartlyDeliveredBacklogKeepsTheWindow) {
  useDeliveryWindow(3);
  grant();
  ctx_.setOnline("bob", "b1", false);
  std::vector<std::string> ids;
  for (int i = 0; i < 7; ++i) ids.push_back(sendOk("light", R"({"i":)" + std::to_string(i) + "}"));
  ctx_.setOnline("bob", "b1", true);
  ASSERT_EQ(deliveredToBob().size(), 3u);
  // The first three are on disk as offered, the other four as queued.
  size_t deliveredOnDisk = 0;
  for (const auto& [key, json] : ctx_.kv.data["commands"]) {
    deliveredOnDisk += commandFromJson(json).state == CommandState::kOffered;
  }
  EXPECT_EQ(deliveredOnDisk, 3u);

  restartPlugin();  // bob stays online throughout
  // The three offered commands still hold the window: nothing new goes out (they are offered
  // again, unconfirmed as they are, and the client drops the repeats).
  EXPECT_EQ(deliveredToBob(), std::vector<std::string>(ids.begin(), ids.begin() + 3));
  ctx_.setOnline("bob", "b1", true);  // a fresh online event changes nothing either
  EXPECT_EQ(deliveredToBob().size(), 3u);

  replyTo(ids[0]);  // the reload kept the reply path, and the reply makes room
  ASSERT_EQ(deliveredToBob(), std::vector<std::string>(ids.begin(), ids.begin() + 4));
  // A smaller window after a restart: no new delivery until the backlog is within it.
  useDeliveryWindow(1);
  replyTo(ids[1]);
  EXPECT_EQ(deliveredToBob().size(), 4u);  // ids[2] and ids[3] still outstanding
  replyTo(ids[2]);
  EXPECT_EQ(deliveredToBob().size(), 4u);  // ids[3] still outstanding
  replyTo(ids[3]);
  ASSERT_EQ(deliveredToBob(), std::vector<std::string>(ids.begin(), ids.begin() + 5));
  replyTo(ids[4]);
  replyTo(ids[5]);
  replyTo(ids[6]);
  EXPECT_EQ(deliveredToBob(), ids);
}

TEST_F(CoopRelayTest, RestartWhileOfflineDeliversOnlyAWindowWhenTheTargetReturns) {
  useDeliveryWindow(4);
  grant();
  ctx_.setOnline("bob", "b1", false);
  std::vector<std::string> ids;
  for (int i = 0; i < 9; ++i) ids.push_back(sendOk("light"));
  restartPlugin();
  ctx_.setOnline("bob", "b1", true);
  ASSERT_EQ(deliveredToBob(), std::vector<std::string>(ids.begin(), ids.begin() + 4));
  for (const auto& id : ids) replyTo(id);
  EXPECT_EQ(deliveredToBob(), ids);
}

TEST_F(CoopRelayTest, CommandsDeliveredAtOnceCountAgainstTheWindow) {
  useDeliveryWindow(2);
  grant();
  // Two go out at once (their answers wait for the write-behind); the third finds the window
  // full and is answered queued straight away.
  auto first = sendAsync("light");
  auto second = sendAsync("light");
  auto third = sendAsync("light");
  ASSERT_EQ(third->answers, 1);
  ASSERT_TRUE(third->ok) << third->code;
  EXPECT_EQ(third->result->getValue<std::string>("state"), "queued");
  EXPECT_EQ(first->answers + second->answers, 0);
  auto got = deliveredToBob();
  ASSERT_EQ(got.size(), 2u);
  // bob replies to the first before its record reached the disk: its sender is answered, and
  // the slot goes to the queued third command.
  replyTo(got[0]);
  ASSERT_TRUE(first->ok);
  EXPECT_EQ(first->result->getValue<std::string>("commandId"), got[0]);
  std::string thirdId = third->result->getValue<std::string>("commandId");
  ASSERT_EQ(deliveredToBob().size(), 3u);
  EXPECT_EQ(deliveredToBob()[2], thirdId);
  bool thirdDelivered = false;
  for (const auto& st : events("alice", "a1", "commandState")) {
    thirdDelivered |= st->getValue<std::string>("commandId") == thirdId &&
                      st->getValue<std::string>("state") == "offered";
  }
  EXPECT_TRUE(thirdDelivered);
  ctx_.advance(std::chrono::milliseconds(100));
  ASSERT_TRUE(second->ok);
  // Window full again (second, third): the next one waits.
  EXPECT_EQ(send("light").result->getValue<std::string>("state"), "queued");
}

TEST_F(CoopRelayTest, FailedWriteBehindFreesTheSlotsOfTheCommandsItDrops) {
  useDeliveryWindow(1);
  grant();
  auto first = sendAsync("light");
  auto second = sendAsync("light");
  ASSERT_TRUE(second->ok) << second->code;
  EXPECT_EQ(second->result->getValue<std::string>("state"), "queued");
  // The first one's record cannot be written: its sender hears INTERNAL, the hub stops
  // tracking it, and its slot goes to the second (sent, then recorded when the disk is back:
  // at least once).
  ctx_.kv.failWritesAfter = 0;
  ctx_.advance(std::chrono::milliseconds(60));
  ctx_.kv.failWritesAfter = -1;
  EXPECT_EQ(first->code, "INTERNAL");
  ASSERT_EQ(deliveredToBob().size(), 2u);
  EXPECT_EQ(deliveredToBob()[1], second->result->getValue<std::string>("commandId"));
  replyTo(deliveredToBob()[1]);
  // The dropped command holds no slot either: a new one goes straight out.
  Reply r = send("light");
  ASSERT_TRUE(r.ok) << r.code;
  EXPECT_EQ(r.result->getValue<std::string>("state"), "offered");
}

TEST_F(CoopRelayTest, CommandsWaitingBehindAFullWindowStillExpireAndCanBeRevoked) {
  ctx_.cfg.durations["command_ttl"] = std::chrono::seconds(60);
  ctx_.cfg.durations["reply_timeout"] = std::chrono::hours(1);
  useDeliveryWindow(1);
  grant();
  ctx_.setOnline("bob", "b1", false);
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(sendOk("light"));
  ctx_.advance(std::chrono::seconds(30));
  ctx_.setOnline("bob", "b1", true);
  ASSERT_EQ(deliveredToBob(), std::vector<std::string>{ids[0]});
  ack({ids[0]});
  // ids[1] and ids[2] are still queued at command_ttl: expired, never delivered.
  ctx_.advance(std::chrono::seconds(31));
  std::map<std::string, std::string> finalState;
  for (const auto& st : events("alice", "a1", "commandState")) {
    finalState[st->getValue<std::string>("commandId")] = st->getValue<std::string>("state");
  }
  EXPECT_EQ(finalState[ids[0]], "delivered");  // a delivered command does not expire
  EXPECT_EQ(finalState[ids[1]], "expired");
  EXPECT_EQ(finalState[ids[2]], "expired");
  replyTo(ids[0]);
  EXPECT_EQ(deliveredToBob(), std::vector<std::string>{ids[0]});

  // Revocation: queued behind the window under a grant that is then removed.
  std::string held = sendOk("light");  // takes the window
  std::string waiting = sendOk("light");
  ASSERT_TRUE(call("bob", "b1", "removeAuthorizedDevice",
                   R"({"clientIdentify":"a1","appId":"appA","userId":"alice"})")
                  .ok);
  auto states = events("alice", "a1", "commandState");
  ASSERT_FALSE(states.empty());
  EXPECT_EQ(states.back()->getValue<std::string>("commandId"), waiting);
  EXPECT_EQ(states.back()->getValue<std::string>("reason"), "revoked");
  replyTo(held);  // the delivered one can still be answered; nothing follows it
  EXPECT_EQ(deliveredToBob(), (std::vector<std::string>{ids[0], held}));
  EXPECT_EQ(ctx_.kv.size("commands"), 0u);
}

TEST_F(CoopRelayTest, RemovingTheSenderFreesItsSlotsForOtherSenders) {
  useDeliveryWindow(1);
  // carol/c1 (with a grant from alice/a2) and alice/a1 (same user) both command alice/a2.
  // carol's command holds the window; when carol's user is removed, her commands go with it
  // and alice's command queued behind hers goes out.
  Reply req = call("carol", "c1", "requestAccessTo",
                   R"({"to":)" + to("alice", "a2", "appA") + R"(,"allPermissions":true})");
  ASSERT_TRUE(req.ok);
  ASSERT_TRUE(call("alice", "a2", "agreeAccessRequest",
                   R"({"commandId":")" + req.result->getValue<std::string>("commandId") +
                       R"(","to":)" + to("carol", "c1", "appC") + "}")
                  .ok);
  std::string a2 = to("alice", "a2", "appA");
  Reply fromCarol = send("x", a2, "{}", "carol", "c1");
  ASSERT_EQ(fromCarol.result->getValue<std::string>("state"), "offered");
  Reply fromA1 = send("x", a2);
  ASSERT_EQ(fromA1.result->getValue<std::string>("state"), "queued");
  ctx_.removeUser("carol");
  auto cmds = events("alice", "a2", "command");
  ASSERT_EQ(cmds.size(), 2u);
  EXPECT_EQ(cmds[1]->getValue<std::string>("commandId"),
            fromA1.result->getValue<std::string>("commandId"));
}

TEST_F(CoopRelayTest, QueuedCommandPastTtlIsExpiredAndNeverDelivered) {
  grant();
  ctx_.setOnline("bob", "b1", false);
  std::string id = sendOk("light");
  ctx_.advance(std::chrono::hours(23));
  EXPECT_TRUE(events("alice", "a1", "commandState").empty());
  ctx_.advance(std::chrono::hours(2));
  auto states = events("alice", "a1", "commandState");
  ASSERT_EQ(states.size(), 1u);
  EXPECT_EQ(states[0]->getValue<std::string>("commandId"), id);
  EXPECT_EQ(states[0]->getValue<std::string>("state"), "expired");
  EXPECT_EQ(states[0]->getValue<int>("stateCode"), 4);
  ctx_.setOnline("bob", "b1", true);
  EXPECT_TRUE(events("bob", "b1", "command").empty());
  EXPECT_EQ(
      call("bob", "b1", "replyCommand", R"({"commandId":")" + id + R"(","to":)" + aliceA1() + "}")
          .code,
      "NOT_FOUND");
}

TEST_F(CoopRelayTest, DeliveredCommandWithoutReplyTimesOut) {
  grant();
  std::string id = sendOk("light");
  ack({id});
  EXPECT_EQ(statesOf(id), std::vector<std::string>{"delivered"});
  ctx_.advance(std::chrono::seconds(29));
  EXPECT_EQ(statesOf(id), std::vector<std::string>{"delivered"});
  ctx_.advance(std::chrono::seconds(2));
  auto states = events("alice", "a1", "commandState");
  ASSERT_EQ(states.size(), 2u);
  EXPECT_EQ(states[1]->getValue<std::string>("state"), "timeout");
  EXPECT_EQ(states[1]->getValue<int>("stateCode"), 5);
  EXPECT_EQ(
      call("bob", "b1", "replyCommand", R"({"commandId":")" + id + R"(","to":)" + aliceA1() + "}")
          .code,
      "NOT_FOUND");
  EXPECT_TRUE(events("alice", "a1", "commandResponse").empty());
}

// ------------------------------------------------------------------------------------------
// Delivery confirmed by the target (SPEC §4a): offered -> delivered on ackCommand/replyCommand.

TEST_F(CoopRelayTest, UnconfirmedCommandNeverTimesOutAndExpiresAtCommandTtl) {
  ctx_.cfg.durations["command_ttl"] = std::chrono::minutes(5);
  restartPlugin();
  grant();
  std::string id = sendOk("light");
  // Offered into a session that may be gone (a plain DISCONNECT fires no Will): no reply is
  // owed yet, so no timeout; it waits to be confirmed until command_ttl.
  ctx_.advance(std::chrono::minutes(4));
  EXPECT_TRUE(statesOf(id).empty());
  ctx_.advance(std::chrono::minutes(2));
  EXPECT_EQ(statesOf(id), std::vector<std::string>{"expired"});
  EXPECT_EQ(ctx_.kv.size("commands"), 0u);
}

TEST_F(CoopRelayTest, AckCommandConfirmsOnlyOfferedCommandsToTheCaller) {
  grant();
  std::string id = sendOk("light");
  // carol cannot confirm bob's command, nor can an unknown id be confirmed: listed as unknown.
  Reply byCarol = call("carol", "c1", "ackCommand", R"({"commandIds":[")" + id + R"("]})");
  ASSERT_TRUE(byCarol.ok);
  EXPECT_EQ(byCarol.result->getArray("acknowledged")->size(), 0u);
  EXPECT_EQ(byCarol.result->getArray("unknown")->getElement<std::string>(0), id);
  EXPECT_TRUE(statesOf(id).empty());
  Reply first = ack({id, "no-such-command"});
  EXPECT_EQ(first.result->getArray("acknowledged")->size(), 1u);
  EXPECT_EQ(first.result->getArray("unknown")->getElement<std::string>(0), "no-such-command");
  // Confirming again (the answer got lost, say) is neither news nor an error.
  Reply again = ack({id});
  EXPECT_EQ(again.result->getArray("acknowledged")->size(), 0u);
  EXPECT_EQ(again.result->getArray("unknown")->size(), 0u);
  EXPECT_EQ(statesOf(id), std::vector<std::string>{"delivered"});
  // The confirmation is durable: on disk as delivered, with its reply deadline.
  ASSERT_EQ(ctx_.kv.size("commands"), 1u);
  EXPECT_EQ(commandFromJson(ctx_.kv.data["commands"].begin()->second).state,
            CommandState::kDelivered);
  // Bad input changes nothing.
  for (const char* bad : {R"({})", R"({"commandIds":[]})", R"({"commandIds":"x"})",
                          R"({"commandIds":[1]})", R"({"commandIds":["a/b"]})"}) {
    EXPECT_EQ(call("bob", "b1", "ackCommand", bad).code, "INVALID_REQUEST") << bad;
  }
  std::string many;
  for (int i = 0; i < 1001; ++i)
    many += std::string(i ? "," : "") + "\"id" + std::to_string(i) + "\"";
  EXPECT_EQ(call("bob", "b1", "ackCommand", R"({"commandIds":[)" + many + "]}").code,
            "INVALID_REQUEST");
  ctx_.knownTerminals.erase({"carol", "c1"});
  EXPECT_EQ(call("carol", "c1", "ackCommand", R"({"commandIds":["x"]})").code, "NOT_FOUND");
}

TEST_F(CoopRelayTest, AckBeforeTheWriteBehindRecordsItDelivered) {
  grant();
  auto sent = sendAsync("light");
  ASSERT_EQ(sent->answers, 0);  // waits for the write-behind
  std::string id = deliveredToBob().at(0);
  ack({id});
  // The sender's answer went out with the record, saying what the record says.
  ASSERT_EQ(sent->answers, 1);
  EXPECT_EQ(sent->result->getValue<std::string>("state"), "offered");
  EXPECT_EQ(commandFromJson(ctx_.kv.data["commands"].begin()->second).state,
            CommandState::kDelivered);
  replyTo(id);
  EXPECT_EQ(ctx_.kv.size("commands"), 0u);
}

TEST_F(CoopRelayTest, UnconfirmedCommandsAreOfferedAgainWhenTheTargetIsNextSeen) {
  grant();
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(sendOk("light", R"({"i":)" + std::to_string(i) + "}"));
  ack({ids[0]});  // confirmed: never offered again
  auto offers = [&] { return events("bob", "b1", "command").size(); };
  ASSERT_EQ(offers(), 3u);
  // bob's app went away with a plain DISCONNECT and comes back: presence `online` again.
  ctx_.seen("bob", "b1", "presence");
  auto cmds = events("bob", "b1", "command");
  ASSERT_EQ(cmds.size(), 5u);
  EXPECT_EQ(cmds[3]->getValue<std::string>("commandId"), ids[1]);  // same ids, send order
  EXPECT_EQ(cmds[4]->getValue<std::string>("commandId"), ids[2]);
  EXPECT_EQ(cmds[4]->getObject("commandParams")->getValue<int>("i"), 2);
  // hello starts a session too.
  ctx_.hello("bob", "b1", "appB", "iPad", "Bob tablet");
  ASSERT_EQ(offers(), 7u);
  // A request right after an offer does not repeat it (it may well be the ackCommand for it);
  // one a second later does.
  ctx_.seen("bob", "b1", "request");
  EXPECT_EQ(offers(), 7u);
  ctx_.advance(std::chrono::milliseconds(1000));
  ctx_.seen("bob", "b1", "request");
  EXPECT_EQ(offers(), 9u);
  // Another terminal being seen changes nothing for bob; a reply confirms as well as an ack.
  ctx_.seen("carol", "c1", "presence");
  EXPECT_EQ(offers(), 9u);
  replyTo(ids[1]);
  ack({ids[2]});
  ctx_.seen("bob", "b1", "presence");
  ctx_.hello("bob", "b1", "appB", "iPad", "Bob tablet");
  EXPECT_EQ(offers(), 9u);
  EXPECT_EQ(deliveredToBob(), ids);
  EXPECT_EQ(statesOf(ids[1]), (std::vector<std::string>{"replied"}));
}

TEST_F(CoopRelayTest, AccessRequestsAreShownAgainToANewSession) {
  std::string id = requestAccess();
  ASSERT_EQ(events("bob", "b1", "accessRequest").size(), 1u);
  ctx_.seen("bob", "b1", "request");  // the same session: shown already
  EXPECT_EQ(events("bob", "b1", "accessRequest").size(), 1u);
  ctx_.hello("bob", "b1", "appB");  // a new session may not have seen it
  auto got = events("bob", "b1", "accessRequest");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1]->getValue<std::string>("commandId"), id);
}

TEST_F(CoopRelayTest, RestartKeepsOfferedAndDeliveredApart) {
  grant();
  std::string confirmed = sendOk("light");
  std::string unconfirmed = sendOk("light");
  ack({confirmed});
  restartPlugin();
  // Offered again at start (bob's session may be a new one by now); the confirmed one is not.
  auto cmds = events("bob", "b1", "command");
  ASSERT_EQ(cmds.size(), 3u);
  EXPECT_EQ(cmds[2]->getValue<std::string>("commandId"), unconfirmed);
  // The confirmed one still times out 30 s after its confirmation; the other does not.
  ctx_.advance(std::chrono::seconds(31));
  EXPECT_EQ(statesOf(confirmed), (std::vector<std::string>{"delivered", "timeout"}));
  EXPECT_TRUE(statesOf(unconfirmed).empty());
  ack({unconfirmed});
  replyTo(unconfirmed);
  EXPECT_EQ(statesOf(unconfirmed), (std::vector<std::string>{"delivered", "replied"}));
  EXPECT_EQ(ctx_.kv.size("commands"), 0u);
}

TEST_F(CoopRelayTest, RemovingTheTargetExpiresItsUnconfirmedCommands) {
  std::string a2 = to("alice", "a2", "appA");
  Reply r = send("x", a2);
  ASSERT_EQ(r.result->getValue<std::string>("state"), "offered");
  ASSERT_TRUE(call("alice", "a1", "removeMyDevice", R"({"clientIdentify":"a2"})").ok);
  std::string id = r.result->getValue<std::string>("commandId");
  auto states = events("alice", "a1", "commandState");
  ASSERT_FALSE(states.empty());
  EXPECT_EQ(states.back()->getValue<std::string>("commandId"), id);
  EXPECT_EQ(states.back()->getValue<std::string>("state"), "expired");
  EXPECT_EQ(states.back()->getValue<std::string>("reason"), "removed");
}

TEST_F(CoopRelayTest, OnlyTheAddressedTerminalMayReply) {
  grant();
  std::string id = sendOk("light");
  std::string body = R"({"commandId":")" + id + R"(","to":)" + aliceA1() + "}";
  EXPECT_EQ(call("carol", "c1", "replyCommand", body).code, "FORBIDDEN");
  EXPECT_EQ(call("alice", "a1", "replyCommand", body).code, "FORBIDDEN");
  // The addressee trying to aim the response at someone else.
  EXPECT_EQ(call("bob", "b1", "replyCommand",
                 R"({"commandId":")" + id + R"(","to":)" + to("carol", "c1", "appC") + "}")
                .code,
            "FORBIDDEN");
  EXPECT_TRUE(events("carol", "c1", "commandResponse").empty());
  ASSERT_TRUE(call("bob", "b1", "replyCommand", body).ok);
  EXPECT_EQ(call("bob", "b1", "replyCommand", body).code, "NOT_FOUND");
  EXPECT_EQ(events("alice", "a1", "commandResponse").size(), 1u);
}

TEST_F(CoopRelayTest, ReplyToAnOfflineSenderWaitsForIt) {
  grant();
  std::string id = sendOk("light");
  ctx_.setOnline("alice", "a1", false);
  ASSERT_TRUE(
      call("bob", "b1", "replyCommand", R"({"commandId":")" + id + R"(","to":)" + aliceA1() + "}")
          .ok);
  EXPECT_TRUE(events("alice", "a1", "commandResponse").empty());
  restartPlugin();  // the reply was acknowledged to bob: it must survive a restart
  ctx_.setOnline("alice", "a1", true);
  auto back = events("alice", "a1", "commandResponse");
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0]->getValue<std::string>("commandId"), id);
  EXPECT_EQ(ctx_.kv.size("outbox"), 0u);
}

TEST_F(CoopRelayTest, FastReplyNeverTouchesTheDiskAndSendsTheResponseBeforeTheAnswer) {
  grant();
  int writesBefore = ctx_.kv.writesTo["commands"];
  auto sent = sendAsync("light");
  EXPECT_EQ(sent->answers, 0);  // waits for the record or the reply, whichever comes first
  auto cmds = events("bob", "b1", "command");
  ASSERT_EQ(cmds.size(), 1u);
  std::string id = cmds[0]->getValue<std::string>("commandId");
  ctx_.advance(std::chrono::milliseconds(10));
  Reply reply =
      call("bob", "b1", "replyCommand", R"({"commandId":")" + id + R"(","to":)" + aliceA1() + "}");
  ASSERT_TRUE(reply.ok);
  ASSERT_EQ(sent->answers, 1);
  ASSERT_TRUE(sent->ok);
  EXPECT_EQ(sent->result->getValue<std::string>("commandId"), id);
  EXPECT_EQ(sent->result->getValue<std::string>("state"), "offered");
  // The commandResponse leaves before the sendCommand answer: on one broker connection, a
  // sender that got the answer got the response too, whatever a crash cut off.
  ASSERT_EQ(events("alice", "a1", "commandResponse").size(), 1u);
  bool responseBefore = false;
  for (size_t i = 0; i < sent->eventsBefore; ++i) {
    responseBefore |= ctx_.sent[i].event == "commandResponse";
  }
  EXPECT_TRUE(responseBefore);
  EXPECT_EQ(ctx_.kv.writesTo["commands"], writesBefore);
  ctx_.advance(std::chrono::seconds(1));
  EXPECT_EQ(ctx_.kv.size("commands"), 0u);
  EXPECT_TRUE(events("alice", "a1", "commandState").empty());  // the response said replied
}

TEST_F(CoopRelayTest, ACommandEndsOnlyOnceTheBrokerHasItsResponse) {
  grant();
  std::string id = sendOk("light");  // on disk, offered to bob
  ASSERT_EQ(ctx_.kv.size("commands"), 1u);
  ctx_.holdConfirmations = true;
  auto reply = callAsync("bob", "b1", "replyCommand",
                         R"({"commandId":")" + id + R"(","to":)" + aliceA1() + "}");
  // Relayed at once, but the command is still there, and the target not yet answered: a hub
  // that died now would offer the command again and the target would reply again.
  EXPECT_EQ(events("alice", "a1", "commandResponse").size(), 1u);
  EXPECT_EQ(reply->answers, 0);
  EXPECT_EQ(ctx_.kv.size("commands"), 1u);
  ctx_.advance(std::chrono::seconds(1));
  EXPECT_EQ(reply->answers, 0);
  EXPECT_EQ(ctx_.kv.size("commands"), 1u);
  ASSERT_EQ(ctx_.heldConfirmations.size(), 1u);
  ctx_.confirmHeld(Status::ok());
  ASSERT_EQ(reply->answers, 1);
  EXPECT_TRUE(reply->ok);
  EXPECT_EQ(ctx_.kv.size("commands"), 0u);
  EXPECT_EQ(ctx_.kv.size("outbox"), 0u);
}

TEST_F(CoopRelayTest, AResponseTheBrokerDidNotAcknowledgeIsKeptForTheSender) {
  grant();
  std::string id = sendOk("light");
  ctx_.holdConfirmations = true;
  auto reply = callAsync("bob", "b1", "replyCommand",
                         R"({"commandId":")" + id + R"(","to":)" + aliceA1() + "}");
  ASSERT_EQ(events("alice", "a1", "commandResponse").size(), 1u);
  // The broker connection went before its PUBACK: it may or may not have reached alice.
  ctx_.confirmHeld(Status::error(ErrorCode::kUnavailable, "connection lost"));
  ASSERT_EQ(reply->answers, 1);
  EXPECT_TRUE(reply->ok);
  EXPECT_EQ(ctx_.kv.size("commands"), 0u);
  EXPECT_EQ(ctx_.kv.size("outbox"), 1u);  // kept, though alice still looks online
  EXPECT_EQ(ctx_.counters["replies_unconfirmed"], 1);
  // Given again when alice is next seen; her client drops the repeat if it had the first.
  ctx_.holdConfirmations = false;
  ctx_.seen("alice", "a1", "request");
  ctx_.drain();
  EXPECT_EQ(events("alice", "a1", "commandResponse").size(), 2u);
  EXPECT_EQ(ctx_.kv.size("outbox"), 0u);
}

TEST_F(CoopRelayTest, EachCommandIsWrittenBehindOnItsOwnDeadline) {
  grant();
  auto first = sendAsync("light");
  std::string firstId = events("bob", "b1", "command").back()->getValue<std::string>("commandId");
  ctx_.advance(std::chrono::milliseconds(30));
  auto second = sendAsync("light");
  replyTo(firstId);                             // the first is done before its turn: never written
  ctx_.advance(std::chrono::milliseconds(25));  // 55 ms: the first's turn, not the second's
  EXPECT_EQ(second->answers, 0);
  EXPECT_EQ(ctx_.kv.size("commands"), 0u);
  EXPECT_EQ(ctx_.kv.writesTo["commands"], 0);
  ctx_.advance(std::chrono::milliseconds(30));  // 85 ms: 55 after the second went out
  ASSERT_EQ(second->answers, 1);
  EXPECT_TRUE(second->ok);
  EXPECT_EQ(ctx_.kv.size("commands"), 1u);
  EXPECT_TRUE(first->ok);
}

TEST_F(CoopRelayTest, CommandIdsAreRandomVersion4UuidsNeverRepeated) {
  grant();
  std::set<std::string> seen;
  const std::regex v4("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  for (int i = 0; i < 200; ++i) {
    auto sent = sendAsync("light");
    ctx_.advance(std::chrono::milliseconds(60));
    ASSERT_TRUE(sent->ok);
    std::string id = sent->result->getValue<std::string>("commandId");
    EXPECT_TRUE(std::regex_match(id, v4)) << id;
    EXPECT_TRUE(seen.insert(id).second) << id;
  }
}

TEST_F(CoopRelayTest, UnrepliedDeliveredCommandIsOnDiskWithinTheWriteBehindWindow) {
  grant();
  auto first = sendAsync("light");
  auto second = sendAsync("light");
  ctx_.advance(std::chrono::milliseconds(40));
  EXPECT_EQ(first->answers + second->answers, 0);
  EXPECT_EQ(ctx_.kv.size("commands"), 0u);
  ctx_.advance(std::chrono::milliseconds(20));
  ASSERT_TRUE(first->ok && second->ok);
  EXPECT_EQ(ctx_.kv.size("commands"), 2u);
  // Acknowledged, so it survives a restart: the reply still reaches the sender.
  restartPlugin();
  std::string id = first->result->getValue<std::string>("commandId");
  ASSERT_TRUE(
      call("bob", "b1", "replyCommand", R"({"commandId":")" + id + R"(","to":)" + aliceA1() + "}")
          .ok);
  EXPECT_EQ(events("alice", "a1", "commandResponse").size(), 1u);
}

TEST_F(CoopRelayTest, WriteBehindFailureIsInternalAndTheCommandIsNotTracked) {
  grant();
  ctx_.kv.failWritesAfter = 0;
  auto sent = sendAsync("light");
  std::string id = events("bob", "b1", "command").at(0)->getValue<std::string>("commandId");
  ctx_.advance(std::chrono::milliseconds(60));
  ctx_.kv.failWritesAfter = -1;
  EXPECT_EQ(sent->code, "INTERNAL");
  EXPECT_EQ(
      call("bob", "b1", "replyCommand", R"({"commandId":")" + id + R"(","to":)" + aliceA1() + "}")
          .code,
      "NOT_FOUND");
}

TEST_F(CoopRelayTest, StopAnswersSendersWaitingForTheWriteBehind) {
  grant();
  auto sent = sendAsync("light");
  plugin_->stop();
  EXPECT_TRUE(sent->ok);
  EXPECT_EQ(ctx_.kv.size("commands"), 1u);
}

TEST_F(CoopRelayTest, QueueLimitIsLimitReachedAndNothingIsDropped) {
  ctx_.cfg.ints["max_queued_per_terminal"] = 3;
  restartPlugin();
  grant();
  ctx_.setOnline("bob", "b1", false);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(send("light").ok);
  Reply r = send("light");
  EXPECT_EQ(r.code, "LIMIT_REACHED");
  EXPECT_EQ(ctx_.kv.size("commands"), 3u);
  ctx_.setOnline("bob", "b1", true);
  EXPECT_EQ(events("bob", "b1", "command").size(), 3u);
  // Once delivered, the queue has room again.
  ctx_.setOnline("bob", "b1", false);
  EXPECT_TRUE(send("light").ok);
}

TEST_F(CoopRelayTest, RestartKeepsGrantsQueuesAndRequests) {
  grant();
  ctx_.setOnline("bob", "b1", false);
  std::string c1 = sendOk("light");
  std::string c2 = sendOk("light");
  Reply pending =
      call("carol", "c1", "requestAccessTo", R"({"to":)" + bobB1() + R"(,"allPermissions":true})");
  ASSERT_TRUE(pending.ok);
  restartPlugin();
  EXPECT_TRUE(send("light").ok);  // the grant survived
  ctx_.setOnline("bob", "b1", true);
  auto cmds = events("bob", "b1", "command");
  ASSERT_EQ(cmds.size(), 3u);
  EXPECT_EQ(cmds[0]->getValue<std::string>("commandId"), c1);
  EXPECT_EQ(cmds[1]->getValue<std::string>("commandId"), c2);
  // alice's request (answered before the restart) and carol's pending one, offered once.
  auto reqs = events("bob", "b1", "accessRequest");
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[1]->getValue<std::string>("commandId"),
            pending.result->getValue<std::string>("commandId"));
  EXPECT_EQ(reqs[1]->getObject("from")->getValue<std::string>("userId"), "carol");
}

TEST_F(CoopRelayTest, WhatExpiredWhileDownIsSettledAtStart) {
  grant();
  ctx_.setOnline("bob", "b1", false);
  std::string id = sendOk("light");
  plugin_->stop();
  plugin_.reset();
  ctx_.dropPlugin();
  ctx_.advance(std::chrono::hours(25));  // the hub was down past command_ttl
  startPlugin();
  auto states = events("alice", "a1", "commandState");
  ASSERT_EQ(states.size(), 1u);
  EXPECT_EQ(states[0]->getValue<std::string>("commandId"), id);
  EXPECT_EQ(states[0]->getValue<std::string>("state"), "expired");
  ctx_.setOnline("bob", "b1", true);
  EXPECT_TRUE(events("bob", "b1", "command").empty());
}

TEST_F(CoopRelayTest, DeadlinesAreReArmedAfterRestart) {
  grant();
  std::string reqId;
  {
    Reply r = call("carol", "c1", "requestAccessTo",
                   R"({"to":)" + bobB1() + R"(,"allPermissions":true})");
    reqId = r.result->getValue<std::string>("commandId");
  }
  restartPlugin();
  ctx_.advance(std::chrono::minutes(11));
  auto resp = events("carol", "c1", "accessResponse");
  ASSERT_EQ(resp.size(), 1u);
  EXPECT_EQ(resp[0]->getValue<std::string>("commandId"), reqId);
  EXPECT_EQ(resp[0]->getValue<std::string>("message"), "expired");
}

TEST_F(CoopRelayTest, StoreFailureIsInternalAndChangesNothing) {
  std::string id = requestAccess();
  ctx_.kv.failWritesAfter = 0;
  Reply r = call("bob", "b1", "agreeAccessRequest",
                 R"({"commandId":")" + id + R"(","to":)" + aliceA1() + "}");
  EXPECT_EQ(r.code, "INTERNAL");
  EXPECT_TRUE(events("alice", "a1", "accessResponse").empty());
  EXPECT_EQ(send("light").code, "FORBIDDEN");
  ctx_.kv.failWritesAfter = -1;
  // The request is still pending and can be agreed now.
  EXPECT_TRUE(call("bob", "b1", "agreeAccessRequest",
                   R"({"commandId":")" + id + R"(","to":)" + aliceA1() + "}")
                  .ok);
  EXPECT_TRUE(send("light").ok);
}

TEST_F(CoopRelayTest, StoreFailureDuringExpiryRetriesLater) {
  grant();
  ctx_.setOnline("bob", "b1", false);
  sendOk("light");
  ctx_.kv.failWritesAfter = 0;
  ctx_.advance(std::chrono::hours(25));
  EXPECT_TRUE(events("alice", "a1", "commandState").empty());
  ctx_.kv.failWritesAfter = -1;
  ctx_.advance(std::chrono::seconds(2));
  ASSERT_EQ(events("alice", "a1", "commandState").size(), 1u);
  EXPECT_EQ(ctx_.kv.size("commands"), 0u);
}

struct BadCase {
  const char* method;
  const char* params;
};

TEST_F(CoopRelayTest, MalformedParamsAreInvalidRequestAndChangeNothing) {
  grant();
  std::string bob = bobB1();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"sendCommand", R"({"to":)" + bob + "}"},
      {"sendCommand", R"({"commandType":"a/b","to":)" + bob + "}"},
      {"sendCommand", R"({"commandType":"light#","to":)" + bob + "}"},
      {"sendCommand", R"({"commandType":"","to":)" + bob + "}"},
      {"sendCommand", R"({"commandType":7,"to":)" + bob + "}"},
      {"sendCommand", R"({"commandType":"light","to":"bob"})"},
      {"sendCommand", R"({"commandType":"light","to":{"userId":"bob","clientIdentify":"b1"}})"},
      {"sendCommand",
       R"({"commandType":"light","to":{"appId":"appB","userId":"bo+b","clientIdentify":"b1"}})"},
      {"sendCommand", R"({"commandType":"light","to":)" + bob + R"(,"commandParams":[1]})"},
      {"sendCommand", R"({"commandType":"light","to":)" + bob + R"(,"commandParams":"x"})"},
      {"sendCommand", R"({"commandType":")" + std::string(65, 'x') + R"(","to":)" + bob + "}"},
      {"requestAccessTo", R"({"to":)" + bob + "}"},
      {"requestAccessTo", R"({"to":)" + bob + R"(,"allPermissions":"yes"})"},
      {"requestAccessTo", R"({"to":)" + bob + R"(,"allPermissions":1})"},
      {"requestAccessTo", R"({"to":)" + bob + R"(,"permissions":"light"})"},
      {"requestAccessTo", R"({"to":)" + bob + R"(,"permissions":["li ght"]})"},
      {"requestAccessTo", R"({"to":)" + bob + R"(,"permissions":[1]})"},
      {"agreeAccessRequest", R"({"to":)" + aliceA1() + "}"},
      {"agreeAccessRequest", R"({"commandId":"x"})"},
      {"rejectAccessRequest", R"({"commandId":["x"],"to":)" + aliceA1() + "}"},
      {"replyCommand", R"({"commandId":"x","to":)" + aliceA1() + R"(,"commandParams":3})"},
      {"replyCommand", R"({"commandParams":{}})"},
      {"removeAuthorizedDevice", R"({"clientIdentify":"a1","userId":"alice"})"},
      {"removeAccessibleDevice", R"({"clientIdentify":"b1","appId":"appB","userId":"#"})"},
      {"removeMyDevice", R"({})"},
      {"removeMyDevice", R"({"clientIdentify":"a/1"})"},
      {"getDeviceInfo", R"({})"},
  };
  fakes::MemoryKvStore::Data before = ctx_.kv.data;
  size_t eventsBefore = ctx_.sent.size();
  for (const auto& [method, params] : cases) {
    Reply r = call("alice", "a1", method, params);
    EXPECT_EQ(r.code, "INVALID_REQUEST") << method << " " << params;
    EXPECT_FALSE(r.message.empty());
  }
  EXPECT_EQ(ctx_.kv.data, before);
  EXPECT_EQ(ctx_.sent.size(), eventsBefore);
  // The grant still works: nothing above touched it.
  EXPECT_TRUE(send("light").ok);
}

TEST_F(CoopRelayTest, CallsFromATerminalThatNeverSaidHelloAreNotFound) {
  EXPECT_EQ(send("light", bobB1(), "{}", "alice", "ghost").code, "NOT_FOUND");
  EXPECT_EQ(call("alice", "ghost", "requestAccessTo",
                 R"({"to":)" + bobB1() + R"(,"allPermissions":true})")
                .code,
            "NOT_FOUND");
}

TEST_F(CoopRelayTest, RemovedUserLeavesNoGrantsOrQueues) {
  grant();
  ctx_.setOnline("bob", "b1", false);
  sendOk("light");
  ctx_.removeUser("alice");
  EXPECT_EQ(ctx_.kv.size("grants"), 0u);
  EXPECT_EQ(ctx_.kv.size("commands"), 0u);
  ctx_.setOnline("bob", "b1", true);
  EXPECT_TRUE(events("bob", "b1", "command").empty());
  EXPECT_EQ(call("bob", "b1", "getAuthorizedDevices").result->getArray("devices")->size(), 0u);
}

TEST_F(CoopRelayTest, StoppedPluginAnswersUnavailable) {
  plugin_->stop();
  EXPECT_EQ(call("alice", "a1", "getMyDevices").code, "UNAVAILABLE");
}

// The deadline timer is re-armed from its own callback (hearth::Timer reassigned while it
// fires): each of three commands, due an hour apart, expires on time.
TEST_F(CoopRelayTest, DeadlineTimerReArmsFromItsOwnCallback) {
  grant();
  ctx_.setOnline("bob", "b1", false);
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    ids.push_back(sendOk("light"));
    ctx_.advance(std::chrono::hours(1));
  }
  ctx_.advance(std::chrono::hours(21) + std::chrono::seconds(1));  // ids[0] is 24 h old
  EXPECT_EQ(statesOf(ids[0]), std::vector<std::string>{"expired"});
  EXPECT_TRUE(statesOf(ids[1]).empty());
  ctx_.advance(std::chrono::hours(1));
  EXPECT_EQ(statesOf(ids[1]), std::vector<std::string>{"expired"});
  EXPECT_TRUE(statesOf(ids[2]).empty());
  ctx_.advance(std::chrono::hours(1));
  EXPECT_EQ(statesOf(ids[2]), std::vector<std::string>{"expired"});
  EXPECT_EQ(ctx_.kv.size("commands"), 0u);
}

// The write-behind timer fires, and the next command delivered at once arms a new one (a fired
// hearth::Timer says it is no longer armed).
TEST_F(CoopRelayTest, WriteBehindTimerIsArmedAgainAfterItFired) {
  grant();
  for (int i = 0; i < 3; ++i) {
    auto sent = sendAsync("light");
    EXPECT_EQ(sent->answers, 0);
    ctx_.advance(std::chrono::milliseconds(60));
    ASSERT_TRUE(sent->ok) << "round " << i << ": " << sent->code;
    EXPECT_EQ(ctx_.kv.size("commands"), static_cast<size_t>(i + 1));
  }
}

// stop() cancels the deadline timer: nothing expires while the plugin is stopped, and what
// fell due is settled by the next start().
TEST_F(CoopRelayTest, StopCancelsTheDeadlineTimer) {
  grant();
  ctx_.setOnline("bob", "b1", false);
  std::string id = sendOk("light");
  plugin_->stop();  // the fake keeps the plugin's timers: only stop() can cancel this one
  ctx_.advance(std::chrono::hours(25));
  EXPECT_TRUE(statesOf(id).empty());
  EXPECT_EQ(ctx_.kv.size("commands"), 1u);
}

// Plain counters for a dashboard (hub/status details.coop_relay.counters, /metrics).
TEST_F(CoopRelayTest, CountsRelayedCommandsRepliesExpiryAndAccessRequests) {
  grant();                                // one access request
  std::string replied = sendOk("light");  // delivered at once
  replyTo(replied);
  std::string unanswered = sendOk("light");  // delivered at once, confirmed, never replied
  ack({unanswered});
  ctx_.setOnline("bob", "b1", false);
  std::string queued = sendOk("light");  // queued; delivered when bob is back
  std::string expires = sendOk("light");
  ctx_.setOnline("bob", "b1", true);
  ack({queued});
  replyTo(queued);
  ctx_.advance(std::chrono::seconds(31));  // `unanswered` (confirmed) times out
  ctx_.setOnline("bob", "b1", false);
  sendOk("light");                       // queued, then expires at command_ttl
  ctx_.advance(std::chrono::hours(25));  // `expires` was offered, never confirmed: expired too
  EXPECT_EQ(ctx_.counters["access_requests"], 1);
  EXPECT_EQ(ctx_.counters["commands_relayed"], 4);
  EXPECT_EQ(ctx_.counters["replies_relayed"], 2);
  EXPECT_EQ(ctx_.counters["commands_timed_out"], 1);
  EXPECT_EQ(ctx_.counters["commands_expired"], 2);
  // Refused calls count nothing.
  EXPECT_EQ(
      call("carol", "c1", "sendCommand", R"({"commandType":"light","to":)" + bobB1() + "}").code,
      "FORBIDDEN");
  EXPECT_EQ(call("alice", "a1", "requestAccessTo", R"({"to":)" + bobB1() + "}").code,
            "INVALID_REQUEST");
  EXPECT_EQ(ctx_.counters["access_requests"], 1);
  EXPECT_EQ(ctx_.counters["commands_relayed"], 4);
}

// Bad params answer INVALID_REQUEST naming the field, never a throw (which would fail the
// whole plugin in the host).
TEST_F(CoopRelayTest, InvalidParamMessagesNameTheField) {
  auto message = [&](const std::string& method, const std::string& params) {
    Reply r = call("alice", "a1", method, params);
    EXPECT_EQ(r.code, "INVALID_REQUEST") << method << " " << params;
    return r.message;
  };
  EXPECT_EQ(message("sendCommand", R"({"commandType":"light"})"), "missing \"to\"");
  EXPECT_EQ(message("sendCommand", R"({"commandType":"light","to":"bob"})"),
            "\"to\" must be an object");
  EXPECT_EQ(message("sendCommand", R"({"commandType":"light","to":{"userId":"bob"}})"),
            "missing \"to.appId\"");
  EXPECT_EQ(message("rejectAccessRequest",
                    R"({"commandId":"x","to":{"appId":"a","userId":"b+","clientIdentify":"c"}})"),
            "\"to.userId\" must match [A-Za-z0-9._:-]{1,64}");
  EXPECT_EQ(message("requestAccessTo", R"({"to":)" + bobB1() + R"(,"allPermissions":1})"),
            "\"allPermissions\" must be true or false");
  EXPECT_EQ(message("ackCommand", R"({"commandIds":[]})"), "commandIds: at least one commandId");
}

}  // namespace
}  // namespace hearth::coop
