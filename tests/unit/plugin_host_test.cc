// The plugin host refuses modules with another ABI before reading anything else (naming the
// reason), reports a plugin whose start fails, and keeps the others running; a plugin that
// throws is marked failed and stopped; a plugin's validate refuses a bad subtree; every
// plugin's counters reach a plugin through the table, and the SDK asks an older, shorter host
// table for none.

#include "plugin_host/plugin_host.h"

#include <Poco/JSON/Object.h>
#include <gtest/gtest.h>
#include <dlfcn.h>
#include <unistd.h>

#include <filesystem>

#include "hearth/sdk/c_context.h"
#include "hearth/sdk/fake_context.h"
#include "loop/clock.h"
#include "plugin_host/plugin_context.h"

namespace hearth {
namespace {

class FakeCore : public CoreServices {
 public:
  FakeCore() : logger_(sink_, "test"), loop_(clock_), bus_(loop_), router_(pub_, logger_) {
    sink_.setLevel(LogLevel::kError);
    char tmpl[] = "/tmp/hearth-ph-XXXXXX";
    dir_ = mkdtemp(tmpl);
    db_ = std::move(Database::open(dir_ + "/db").value());
    identity_ = std::make_unique<IdentityService>(*db_, clock_);
    bindings_ = std::make_unique<binding::BindingService>(
        binding::ServiceDeps{*db_, loop_, clock_, logger_, *identity_,
                             [](const std::string&, const std::string&, const std::string&) {}});
  }
  ~FakeCore() override { std::filesystem::remove_all(dir_); }
  HubLoop& loop() override { return loop_; }
  const Clock& clock() const override { return clock_; }
  LogSink& logSink() override { return sink_; }
  Database& database() override { return *db_; }
  RequestRouter& router() override { return router_; }
  IdentityService& identity() override { return *identity_; }
  EventBus& bus() override { return bus_; }
  binding::BindingService& bindings() override { return *bindings_; }
  // Sent to `eventTerminals` terminals; a confirmation callback waits in `confirmations`.
  size_t sendEvent(const std::string&, const std::string&, const std::string& event,
                   const std::string&, std::function<void(Status)> confirmed) override {
    sentEvents.push_back(event);
    if (confirmed && eventTerminals > 0) confirmations.push_back(std::move(confirmed));
    return eventTerminals;
  }
  size_t eventTerminals = 0;
  std::vector<std::string> sentEvents;
  std::vector<std::function<void(Status)>> confirmations;
  void statusChanged() override { ++statusChanges; }
  // Holds every setBrokerAccount answer until the test gives it.
  void setBrokerAccount(const std::string&, const std::string&, const std::vector<BrokerAcl>&,
                        std::function<void(Status)> done) override {
    heldAccountAnswers.push_back(std::move(done));
  }
  std::vector<std::function<void(Status)>> heldAccountAnswers;

  // Keeps what the router answered last.
  struct NullPublisher : Publisher {
    void publish(const std::string& topic, const std::string& payload,
                 const std::string*) override {
      lastTopic = topic;
      lastPayload = payload;
    }
    std::string lastTopic;
    std::string lastPayload;
  };
  int statusChanges = 0;
  std::string dir_;
  ManualClock clock_;
  LogSink sink_;
  TaggedLogger logger_;
  HubLoop loop_;
  EventBus bus_;
  NullPublisher pub_;
  RequestRouter router_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<IdentityService> identity_;
  std::unique_ptr<binding::BindingService> bindings_;
};

config::HubConfig configFor(const std::string& yaml) {
  auto r = config::loadString(yaml, "test.yaml");
  EXPECT_TRUE(r.config) << config::formatErrors(r.errors);
  return *r.config;
}

// Finds the test plugins and starts each with its defaults.
void startEveryTestPlugin(PluginHost& host) {
  host.discover(HEARTH_TEST_PLUGIN_DIR);
  std::map<std::string, config::PluginConfigResult> cfgs;
  ASSERT_TRUE(host.validate(configFor("plugins: {}\n"), &cfgs).empty());
  host.startAll(std::move(cfgs));
}

TEST(PluginHost, RefusesOtherAbiAndReportsFailedStartOthersRun) {
  FakeCore core;
  PluginHost host(core, core.logger_);
  host.discover(HEARTH_TEST_PLUGIN_DIR);
  // badabi picks ABI 999: refused, never created.
  EXPECT_FALSE(host.hasPlugin("badabi"));
  EXPECT_FALSE(host.hasPlugin("oldabi"));
  EXPECT_FALSE(host.hasPlugin("shorttable"));
  EXPECT_FALSE(host.hasPlugin("nosym"));
  ASSERT_TRUE(host.hasPlugin("echo"));
  ASSERT_TRUE(host.hasPlugin("failstart"));

  std::map<std::string, config::PluginConfigResult> cfgs;
  auto errors = host.validate(configFor("plugins: {echo: {greeting: hi}}\n"), &cfgs);
  ASSERT_TRUE(errors.empty()) << config::formatErrors(errors);
  host.startAll(std::move(cfgs));

  Poco::JSON::Object status;
  host.fillStatus(status);
  auto plugins = status.getObject("plugins");
  auto details = status.getObject("details");
  EXPECT_EQ(plugins->getValue<std::string>("echo"), "running");
  EXPECT_EQ(plugins->getValue<std::string>("failstart"), "failed");
  EXPECT_EQ(plugins->getValue<std::string>("badabi_plugin"), "refused");
  std::string refusal = details->getObject("badabi_plugin")->getValue<std::string>("error");
  EXPECT_NE(refusal.find("999"), std::string::npos) << refusal;
  EXPECT_NE(refusal.find("hearthd supports ABI version " + std::to_string(HEARTH_ABI_VERSION)),
            std::string::npos)
      << refusal;
  auto reason = [&](const std::string& file) {
    return details->getObject(file)->getValue<std::string>("error");
  };
  // Built against the C++ boundary of ABI 1.
  EXPECT_EQ(plugins->getValue<std::string>("oldabi_plugin"), "refused");
  EXPECT_NE(reason("oldabi_plugin").find("built for plugin ABI version 1"), std::string::npos)
      << reason("oldabi_plugin");
  // A table shorter than the required members.
  EXPECT_NE(reason("shorttable_plugin").find("plugin table has"), std::string::npos)
      << reason("shorttable_plugin");
  // RTLD_NOW: the missing symbol is named at load.
  EXPECT_NE(reason("nosym_plugin").find("hearth_test_symbol_nobody_defines"), std::string::npos)
      << reason("nosym_plugin");
  EXPECT_NE(
      details->getObject("badabi_plugin")->getValue<std::string>("file").find("badabi_plugin.so"),
      std::string::npos);
  EXPECT_NE(details->getObject("failstart")->getValue<std::string>("error").find("no hardware"),
            std::string::npos);
  EXPECT_EQ(details->getObject("echo")->getValue<std::string>("greeting"), "hi");
  host.stopAll();
}

TEST(PluginHost, ConfigOfUnknownPluginAndBadPluginKeysAreErrors) {
  FakeCore core;
  PluginHost host(core, core.logger_);
  host.discover(HEARTH_TEST_PLUGIN_DIR);
  auto errors = host.validate(
      configFor("plugins:\n  nosuch: {}\n  echo:\n    limit: 50\n    colour: red\n"), nullptr);
  std::string all = config::formatErrors(errors);
  EXPECT_NE(all.find("plugins.nosuch"), std::string::npos) << all;
  EXPECT_NE(all.find("plugins.echo.limit"), std::string::npos) << all;
  EXPECT_NE(all.find("plugins.echo.colour"), std::string::npos) << all;
}

TEST(PluginHost, DisabledPluginIsNotStarted) {
  FakeCore core;
  PluginHost host(core, core.logger_);
  host.discover(HEARTH_TEST_PLUGIN_DIR);
  std::map<std::string, config::PluginConfigResult> cfgs;
  ASSERT_TRUE(host.validate(configFor("plugins: {echo: {enabled: false}}\n"), &cfgs).empty());
  host.startAll(std::move(cfgs));
  Poco::JSON::Object status;
  host.fillStatus(status);
  EXPECT_EQ(status.getObject("plugins")->getValue<std::string>("echo"), "stopped");
}

// Runs the loop until nothing is due (posted work, the stop of a failed plugin).
void settle(FakeCore& core) {
  for (int i = 0; i < 5; ++i) core.loop_.runOnce();
}

TEST(PluginHost, ValidateRefusesABadSubtreeAndAcceptsAGoodOne) {
  FakeCore core;
  PluginHost host(core, core.logger_);
  host.discover(HEARTH_TEST_PLUGIN_DIR);
  ASSERT_TRUE(host.hasPlugin("guarded"));
  auto errors = host.validate(configFor("plugins: {guarded: {word: 'x#y'}}\n"), nullptr);
  std::string all = config::formatErrors(errors);
  EXPECT_NE(all.find("plugins.guarded"), std::string::npos) << all;
  EXPECT_NE(all.find("letters only"), std::string::npos) << all;
  EXPECT_TRUE(host.validate(configFor("plugins: {guarded: {word: fine}}\n"), nullptr).empty());
  // ENUM keys take one of their choices only.
  all = config::formatErrors(
      host.validate(configFor("plugins: {guarded: {mode: shouty}}\n"), nullptr));
  EXPECT_NE(all.find("plugins.guarded.mode"), std::string::npos) << all;
  EXPECT_NE(all.find("calm"), std::string::npos) << all;
}

TEST(PluginHost, AThrowFromATimerMarksThePluginFailedAndTheOthersRun) {
  FakeCore core;
  PluginHost host(core, core.logger_);
  ASSERT_NO_FATAL_FAILURE(startEveryTestPlugin(host));
  ASSERT_EQ(host.state("guarded"), PluginState::kRunning);
  ASSERT_EQ(host.state("echo"), PluginState::kRunning);

  // The timer the plugin starts throws when it fires.
  MqttMessage m;
  m.topic = "hearth/v1/u/u1/c1/req/throwInTimer";
  m.payload = "{\"id\":\"1\",\"params\":{}}";
  core.router_.handle(m);
  core.clock_.advance(std::chrono::milliseconds(5));
  settle(core);
  EXPECT_EQ(host.state("guarded"), PluginState::kFailed);
  EXPECT_EQ(host.state("echo"), PluginState::kRunning);
  Poco::JSON::Object status;
  host.fillStatus(status);
  const std::string error =
      status.getObject("details")->getObject("guarded")->getValue<std::string>("error");
  EXPECT_NE(error.find("threw in timer"), std::string::npos) << error;
  EXPECT_NE(error.find("thrown from a timer on purpose"), std::string::npos) << error;
  host.stopAll();
}

// A user request through the router; the payload the router answered.
std::string request(FakeCore& core, const std::string& method) {
  MqttMessage m;
  m.topic = "hearth/v1/u/u1/c1/req/" + method;
  m.payload = "{\"id\":\"1\",\"params\":{}}";
  core.router_.handle(m);
  settle(core);
  return core.pub_.lastPayload;
}

TEST(PluginHost, EveryPluginsCountersReachAPluginThroughTheTable) {
  FakeCore core;
  PluginHost host(core, core.logger_);
  ASSERT_NO_FATAL_FAILURE(startEveryTestPlugin(host));
  ASSERT_EQ(host.state("echo"), PluginState::kRunning);
  EXPECT_NE(request(core, "pluginCounters").find("\"counters\":[]"), std::string::npos)
      << core.pub_.lastPayload;

  request(core, "guardedWord");
  request(core, "guardedWord");
  const std::string answer = request(core, "pluginCounters");
  EXPECT_NE(answer.find("\"counters\":[[\"guarded\",\"words\",2]]"), std::string::npos) << answer;
  // The same numbers as hub/status.
  Poco::JSON::Object status;
  host.fillStatus(status);
  EXPECT_EQ(status.getObject("details")
                ->getObject("guarded")
                ->getObject("counters")
                ->getValue<int64_t>("words"),
            2);
  std::vector<std::string> seen;
  host.forEachCounter([&](const std::string& p, const std::string& n, int64_t v) {
    seen.push_back(p + "." + n + "=" + std::to_string(v));
  });
  EXPECT_EQ(seen, std::vector<std::string>{"guarded.words=2"});
  host.stopAll();
}

TEST(PluginHost, TheSdkAsksAnOlderShorterHostTableForNoCounters) {
  // A host table as a hearthd released before plugin_counters fills it: the SDK must see
  // from `size` that the member is absent and not read past the end.
  FakeCore core;
  PluginHost host(core, core.logger_);
  hearth_host_api older = *PluginHost::Context::api();
  older.size = offsetof(hearth_host_api, plugin_counters);
  older.plugin_counters = [](hearth_ctx*, hearth_counter_fn, void*) {
    ADD_FAILURE() << "called past the table's size";
  };
  auto view = std::make_unique<fakes::FakeConfig>();
  PluginHost::Context context(core, host, "old", std::move(view));
  sdk::detail::CContext ctx(&older, context.handle(), "old");
  EXPECT_TRUE(ctx.pluginCounters().empty());

  // The full table has it.
  hearth_host_api current = *PluginHost::Context::api();
  EXPECT_GE(current.size, offsetof(hearth_host_api, plugin_counters) + sizeof(void*));
  EXPECT_NE(current.plugin_counters, nullptr);
}

TEST(PluginHost, AConfirmedEventReportsTheBrokersAnswerAndAnOlderHostReportsOk) {
  FakeCore core;
  core.eventTerminals = 1;
  PluginHost host(core, core.logger_);
  ASSERT_NO_FATAL_FAILURE(startEveryTestPlugin(host));
  // The host runs a callback only for a running plugin: a second context under the name of one.
  auto view = std::make_unique<fakes::FakeConfig>();
  auto context = std::make_shared<PluginHost::Context>(core, host, "guarded", std::move(view));
  std::vector<Status> got;
  {
    sdk::detail::CContext ctx(PluginHost::Context::api(), context->handle(), "guarded");
    EXPECT_EQ(ctx.sendEventConfirmed("alice", "", "ping", "{}", [&](Status s) { got.push_back(s); }),
              1u);
    ASSERT_EQ(core.confirmations.size(), 1u);
    EXPECT_TRUE(got.empty());  // not before the broker's answer
    core.confirmations[0](Status::error(ErrorCode::kUnavailable, "connection lost"));
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].code(), ErrorCode::kUnavailable);
  }
  {
    // A table from before send_event_confirmed: sent as send_event, ok on the loop's next turn.
    hearth_host_api older = *PluginHost::Context::api();
    older.size = offsetof(hearth_host_api, send_event_confirmed);
    older.send_event_confirmed = [](hearth_ctx*, hearth_str, hearth_str, hearth_str, hearth_str,
                                    hearth_result_fn, void*, hearth_release_fn) -> uint64_t {
      ADD_FAILURE() << "called past the table's size";
      return 0;
    };
    sdk::detail::CContext ctx(&older, context->handle(), "guarded");
    EXPECT_EQ(ctx.sendEventConfirmed("alice", "", "pong", "{}", [&](Status s) { got.push_back(s); }),
              1u);
    EXPECT_EQ(core.sentEvents.back(), "pong");
    EXPECT_EQ(got.size(), 1u);
    for (int i = 0; i < 5 && got.size() < 2; ++i) core.loop_.runOnce();
    ASSERT_EQ(got.size(), 2u);
    EXPECT_TRUE(got[1].isOk());
  }
  host.stopAll();
}

TEST(PluginHost, AnAnswerThatComesAfterThePluginStoppedIsDropped) {
  FakeCore core;
  PluginHost host(core, core.logger_);
  ASSERT_NO_FATAL_FAILURE(startEveryTestPlugin(host));
  ASSERT_EQ(host.state("guarded"), PluginState::kRunning);
  void* module = dlopen(HEARTH_TEST_PLUGIN_DIR "/guarded_plugin.so", RTLD_NOW | RTLD_NOLOAD);
  ASSERT_NE(module, nullptr) << "the host has guarded_plugin.so loaded";
  auto* answers = static_cast<int*>(dlsym(module, "guarded_account_answers"));
  ASSERT_NE(answers, nullptr);
  const int before = *answers;

  MqttMessage m;
  m.topic = "hearth/v1/u/u1/c1/req/accountLater";
  m.payload = "{\"id\":\"1\",\"params\":{}}";
  core.router_.handle(m);
  m.payload = "{\"id\":\"2\",\"params\":{}}";
  core.router_.handle(m);
  settle(core);
  ASSERT_EQ(core.heldAccountAnswers.size(), 2u);
  // While the plugin runs, the answer reaches it.
  core.heldAccountAnswers[0](Status::ok());
  EXPECT_EQ(*answers, before + 1);
  // Once it has stopped (its context and instance are gone), the late answer is dropped: it
  // must not run the old instance's closure (ASan: heap-use-after-free before the fix).
  host.stopAll();
  core.heldAccountAnswers[1](Status::ok());
  EXPECT_EQ(*answers, before + 1);
  dlclose(module);
}

}  // namespace
}  // namespace hearth
