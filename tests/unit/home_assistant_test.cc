// Tests of the home_assistant plugin's pure parts: the mapping table, the device id -> HA object
// id mapping, the discovery payloads, HA state and HA commands (docs/home-assistant.md); and of
// the plugin itself on the SDK's fake context, as far as it goes without its broker link.

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <string>

#include "exposures.h"
#include "fake_context.h"
#include "ha_mapping.h"
#include "ha_payloads.h"
#include "home_assistant_plugin.h"

namespace hearth::home_assistant {
namespace {

using Poco::JSON::Object;

Object::Ptr parse(const std::string& json) {
  return Poco::JSON::Parser().parse(json).extract<Object::Ptr>();
}

DeviceInfo lamp() {
  DeviceInfo d;
  d.deviceId = "lamp-0001";
  d.transport = "wifi";
  d.model = "hearth-sim-lamp";
  d.name = "Desk lamp";
  d.firmware = "1.0.0";
  d.ownerId = "alice";
  d.online = true;
  return d;
}

Origin origin() {
  Origin o;
  o.hubNode = "hearth-hub-box";
  o.hubName = "hearth box";
  o.version = "0.9.0";
  o.url = "https://box.local:8443/";
  return o;
}

TEST(HaIds, KeepsSafeCharactersAndEscapesTheRest) {
  EXPECT_EQ(objectId("lamp-0001"), "lamp-0001");
  EXPECT_EQ(objectId("aa:bb.cc_dd"), "aa_3abb_2ecc_5fdd");
  EXPECT_EQ(nodeId("Lamp-1"), "hearth_Lamp-1");
  for (char c : nodeId("x.y:z_w")) {
    EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-') << c;
  }
}

TEST(HaIds, NoTwoDeviceIdsShareANodeAndTheMappingInverts) {
  // Ids that a naive "replace by _" would merge.
  const std::vector<std::string> ids = {"a.b",  "a:b",   "a_b", "a_2eb", "a-b",
                                        "a__b", "a_5fb", "A.B", "a.b.",  "_"};
  std::set<std::string> nodes;
  for (const auto& id : ids) {
    std::string node = nodeId(id);
    EXPECT_TRUE(nodes.insert(node).second) << id << " collides at " << node;
    EXPECT_EQ(deviceIdOfNode(node), id);
  }
  // Random identifiers over the whole alphabet.
  std::mt19937 rng(7);
  const std::string alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-";
  std::map<std::string, std::string> seen;
  for (int i = 0; i < 20000; ++i) {
    std::string id;
    int len = 1 + static_cast<int>(rng() % 6);
    for (int k = 0; k < len; ++k) id += alphabet[rng() % alphabet.size()];
    std::string node = nodeId(id);
    auto [it, fresh] = seen.emplace(node, id);
    EXPECT_TRUE(fresh || it->second == id) << id << " and " << it->second << " -> " << node;
    EXPECT_EQ(deviceIdOfNode(node), id);
  }
}

TEST(HaIds, ForeignNodesAreNotDevices) {
  EXPECT_FALSE(deviceIdOfNode("zigbee2mqtt_0x1234"));
  EXPECT_FALSE(deviceIdOfNode("hearth-hub-box"));
  EXPECT_FALSE(deviceIdOfNode("hearth_"));
  EXPECT_FALSE(deviceIdOfNode("hearth_a_zz"));
  EXPECT_FALSE(deviceIdOfNode("hearth_a_2"));
  EXPECT_FALSE(deviceIdOfNode("hearth_a_41"));  // "A" is never escaped: not objectId's output
}

TEST(HaMapping, BuiltInTableAndConfiguredRulesFirst) {
  EXPECT_EQ(mapModel({}, "hearth-sim-lamp")->kind, Kind::kLamp);
  EXPECT_EQ(mapModel({}, "acme-plug-2")->kind, Kind::kPlug);
  EXPECT_EQ(mapModel({}, "acme-lock-1")->kind, Kind::kLock);
  EXPECT_EQ(mapModel({}, "acme-door-contact")->kind, Kind::kContact);
  EXPECT_EQ(mapModel({}, "acme-button")->kind, Kind::kButton);
  auto thermo = mapModel({}, "acme-thermometer");
  ASSERT_TRUE(thermo);
  EXPECT_EQ(thermo->kind, Kind::kSensor);
  EXPECT_EQ(thermo->readings, (std::vector<std::string>{"temperature", "humidity", "battery"}));
  EXPECT_FALSE(mapModel({}, "mystery-box"));

  auto rules = parseRules(
      R"([{"model":"mystery-*","kind":"plug","readings":["power"],"manufacturer":"Acme"},
          {"model":"*lamp*","kind":"sensor","readings":["illuminance"]}])");
  ASSERT_TRUE(rules) << rules.status().toString();
  auto m = mapModel(rules.value(), "mystery-box");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->kind, Kind::kPlug);
  EXPECT_EQ(m->manufacturer, "Acme");
  EXPECT_EQ(mapModel(rules.value(), "hearth-sim-lamp")->kind, Kind::kSensor);
}

TEST(HaMapping, BadRulesAreRefusedWithTheReason) {
  for (const char* bad : {R"({"model":"x"})", R"([{"kind":"lamp"}])", R"([{"model":"x"}])",
                          R"([{"model":"x","kind":"toaster"}])",
                          R"([{"model":"x","kind":"lamp","readings":["smell"]}])",
                          R"([{"model":"x","kind":"lamp","colour":"red"}])",
                          R"([{"model":"","kind":"lamp"}])", R"([7])"}) {
    auto r = parseRules(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.status().code(), ErrorCode::kInvalidRequest);
    }
  }
}

TEST(HaDiscovery, LampConfigIsDeviceBasedWithJsonSchemaAndBrightnessMode) {
  Topics t;
  auto cfg = parse(deviceConfig(lamp(), *mapModel({}, "hearth-sim-lamp"), t, origin(), {}));
  auto dev = cfg->getObject("dev");
  ASSERT_TRUE(dev);
  EXPECT_EQ(dev->getArray("ids")->getElement<std::string>(0), "hearth_lamp-0001");
  EXPECT_EQ(dev->getValue<std::string>("name"), "Desk lamp");
  EXPECT_EQ(dev->getValue<std::string>("mdl"), "hearth-sim-lamp");
  EXPECT_EQ(dev->getValue<std::string>("mf"), "hearth wifi device");
  EXPECT_EQ(dev->getValue<std::string>("sw"), "1.0.0");
  EXPECT_EQ(dev->getValue<std::string>("via_device"), "hearth-hub-box");
  auto o = cfg->getObject("o");
  EXPECT_EQ(o->getValue<std::string>("name"), "hearth");
  EXPECT_EQ(o->getValue<std::string>("sw"), "0.9.0");
  EXPECT_EQ(o->getValue<std::string>("url"), "https://box.local:8443/");
  EXPECT_EQ(cfg->getValue<std::string>("avty_mode"), "all");
  auto avty = cfg->getArray("avty");
  ASSERT_EQ(avty->size(), 2u);
  EXPECT_EQ(avty->getObject(0)->getValue<std::string>("t"), "hearth/v1/hub/status");
  EXPECT_EQ(avty->getObject(0)->getValue<std::string>("val_tpl"), "{{ value_json.state }}");
  EXPECT_EQ(avty->getObject(1)->getValue<std::string>("t"),
            "hearth/v1/ha/hearth_lamp-0001/availability");
  auto cmps = cfg->getObject("cmps");
  ASSERT_EQ(cmps->size(), 1u);
  auto light = cmps->getObject("light");
  EXPECT_EQ(light->getValue<std::string>("p"), "light");
  EXPECT_EQ(light->getValue<std::string>("schema"), "json");
  EXPECT_EQ(light->getValue<std::string>("uniq_id"), "hearth_lamp-0001_light");
  EXPECT_EQ(light->getValue<std::string>("cmd_t"), "hearth/v1/ha/hearth_lamp-0001/light/set");
  EXPECT_EQ(light->getValue<std::string>("stat_t"), "hearth/v1/ha/hearth_lamp-0001/state");
  ASSERT_EQ(light->getArray("sup_clrm")->size(), 1u);
  EXPECT_EQ(light->getArray("sup_clrm")->getElement<std::string>(0), "brightness");
  // The removed color_mode flag (and its long form) is never sent.
  EXPECT_FALSE(light->has("color_mode"));
  EXPECT_FALSE(light->has("clrm"));
  EXPECT_FALSE(light->has("brightness"));
}

TEST(HaDiscovery, ComponentsByKindWithReadingsAndExpireAfterForBle) {
  Topics t;
  DiscoveryOptions opt;
  opt.bleExpireAfterSec = 600;
  DeviceInfo d = lamp();
  d.deviceId = "th.1";
  d.transport = "ble";
  d.model = "acme-thermometer";
  auto cfg = parse(deviceConfig(d, *mapModel({}, d.model), t, origin(), opt));
  auto cmps = cfg->getObject("cmps");
  EXPECT_EQ(cmps->size(), 3u);
  auto temp = cmps->getObject("temperature");
  EXPECT_EQ(temp->getValue<std::string>("p"), "sensor");
  EXPECT_EQ(temp->getValue<std::string>("dev_cla"), "temperature");
  EXPECT_EQ(temp->getValue<std::string>("unit_of_meas"), "°C");
  EXPECT_EQ(temp->getValue<std::string>("val_tpl"), "{{ value_json.temperature }}");
  EXPECT_EQ(temp->getValue<int>("exp_aft"), 600);
  EXPECT_EQ(temp->getValue<std::string>("uniq_id"), "hearth_th_2e1_temperature");
  EXPECT_EQ(cmps->getObject("humidity")->getValue<std::string>("unit_of_meas"), "%");

  // The same sensor over WiFi reports on its own: no expire_after.
  d.transport = "wifi";
  cfg = parse(deviceConfig(d, *mapModel({}, d.model), t, origin(), opt));
  EXPECT_FALSE(cfg->getObject("cmps")->getObject("temperature")->has("exp_aft"));

  struct Case {
    const char* model;
    const char* key;
    const char* platform;
    bool commands;
  };
  for (const Case& c :
       {Case{"acme-plug", "switch", "switch", true}, Case{"acme-lock", "lock", "lock", true},
        Case{"acme-contact", "contact", "binary_sensor", false},
        Case{"acme-button", "button", "button", true}}) {
    d.model = c.model;
    auto x = parse(deviceConfig(d, *mapModel({}, d.model), t, origin(), opt));
    auto comp = x->getObject("cmps")->getObject(c.key);
    ASSERT_TRUE(comp) << c.model;
    EXPECT_EQ(comp->getValue<std::string>("p"), c.platform) << c.model;
    EXPECT_EQ(comp->has("cmd_t"), c.commands) << c.model;
  }
}

TEST(HaState, DeviceStateInHaJson) {
  auto lampMap = *mapModel({}, "lamp");
  EXPECT_EQ(*haState(lampMap, R"({"on":true,"brightness":42,"colour":"red"})"),
            R"({"brightness":42,"state":"ON"})");
  EXPECT_EQ(*haState(lampMap, R"({"on":false})"), R"({"state":"OFF"})");
  EXPECT_EQ(*haState(lampMap, R"({"brightness":250})"), R"({"brightness":100})");
  EXPECT_EQ(*haState(*mapModel({}, "lock"), R"({"locked":true,"battery":80})"),
            R"({"battery":80,"lock":"LOCKED"})");
  EXPECT_EQ(*haState(*mapModel({}, "contact"), R"({"open":true})"), R"({"contact":"ON"})");
  EXPECT_EQ(*haState(*mapModel({}, "thermo"), R"({"temperature":21.5,"humidity":"wet"})"),
            R"({"temperature":21.5})");
  EXPECT_FALSE(haState(lampMap, "[1]"));
  EXPECT_FALSE(haState(lampMap, "not json"));
}

TEST(HaCommands, HaCommandsBecomeControlDeviceCalls) {
  auto lampMap = *mapModel({}, "lamp");
  auto on = deviceCommand(lampMap, "light", R"({"state":"ON","brightness":55})");
  ASSERT_TRUE(on) << on.status().toString();
  EXPECT_EQ(on.value().command, "set");
  EXPECT_EQ(on.value().paramsJson, R"({"brightness":55,"on":true})");
  EXPECT_EQ(deviceCommand(lampMap, "light", R"({"state":"OFF"})").value().paramsJson,
            R"({"on":false})");
  EXPECT_EQ(deviceCommand(*mapModel({}, "plug"), "switch", "ON").value().paramsJson,
            R"({"on":true})");
  EXPECT_EQ(deviceCommand(*mapModel({}, "lock"), "lock", "UNLOCK").value().paramsJson,
            R"({"locked":false})");
  auto press = deviceCommand(*mapModel({}, "button"), "button", "PRESS");
  EXPECT_EQ(press.value().command, "press");

  for (auto [component, payload] : std::vector<std::pair<std::string, std::string>>{
           {"light", "ON"},
           {"light", R"({"state":"DIM"})"},
           {"light", R"({"state":"ON","brightness":101})"},
           {"light", R"({"state":"ON","brightness":"max"})"},
           {"switch", R"({"state":"ON"})"},
           {"temperature", "1"}}) {
    auto r = deviceCommand(lampMap, component, payload);
    EXPECT_FALSE(r) << component << " " << payload;
  }
  EXPECT_FALSE(deviceCommand(*mapModel({}, "plug"), "switch", "on"));
  EXPECT_FALSE(deviceCommand(*mapModel({}, "contact"), "contact", "ON"));
}

TEST(HaExposures, DurableAndReloaded) {
  fakes::MemoryKvStore kv;
  Exposures a(kv);
  ASSERT_TRUE(a.expose("lamp-1", Exposure{"alice", 5}));
  ASSERT_TRUE(a.expose("lock-1", Exposure{"bob", 6}));
  ASSERT_TRUE(a.withdraw("lock-1"));
  ASSERT_TRUE(kv.put("exposed", "broken", "{not json"));
  Exposures b(kv);
  size_t bad = 0;
  ASSERT_TRUE(b.load(&bad));
  EXPECT_EQ(bad, 1u);
  ASSERT_EQ(b.all().size(), 1u);
  EXPECT_EQ(b.find("lamp-1")->owner, "alice");
  EXPECT_EQ(b.find("lock-1"), nullptr);
  // A failed write changes nothing in memory either.
  kv.failWritesAfter = 0;
  EXPECT_FALSE(b.expose("plug-1", Exposure{"alice", 7}));
  EXPECT_EQ(b.find("plug-1"), nullptr);
}

// --- the plugin on the fake context --------------------------------------------------------

// The fake context with the plugin's methods callable and setBrokerAccount answered when the
// test says (the host answers later, on the hub loop).
class HaContext : public fakes::FakeContext {
 public:
  HaContext() : FakeContext("home_assistant") {
    cfg.strings = {{"discovery_prefix", "homeassistant"},
                   {"base_topic", "hearth/v1/ha"},
                   {"hub_name", "box"},
                   {"support_url", ""},
                   {"broker_host", ""},
                   {"broker_username", ""},
                   {"broker_password_file", ""},
                   {"broker_ca_file", ""},
                   {"ha_username", "homeassistant"},
                   {"bridge_username", "hearth-ha-bridge"}};
    cfg.json = {{"models", "[]"}};
    cfg.durations = {{"ble_expire_after", std::chrono::minutes(10)},
                     {"resend_delay_max", std::chrono::seconds(5)}};
    cfg.bools = {{"broker_tls", false}};
    cfg.ints = {{"broker_port", 0}};
  }
  Status registerMethod(const std::string& method, MethodScope, RequestHandler h) override {
    methods[method] = std::move(h);
    return Status::ok();
  }
  void setBrokerAccount(const std::string& username, const std::string& password,
                        const std::vector<BrokerAcl>& acls,
                        std::function<void(Status)> done) override {
    accounts[username] = {password, acls};
    if (deferAccounts) {
      pendingAccounts.push_back(std::move(done));
    } else {
      done(Status::ok());
    }
  }

  struct Answer {
    bool ok = false;
    ErrorCode code = ErrorCode::kOk;
    std::string text;  // the result JSON or the error message
  };
  Answer call(const std::string& method, const std::string& params,
              const std::string& user = "alice") {
    struct Sink : ResponseSink {
      Answer* a;
      explicit Sink(Answer* to) : a(to) {}
      void sendOk(std::string r) override { *a = {true, ErrorCode::kOk, std::move(r)}; }
      void sendError(ErrorCode c, std::string m) override { *a = {false, c, std::move(m)}; }
    };
    Answer a;
    Request req;
    req.method = method;
    req.id = "1";
    req.userId = user;
    req.clientId = "phone";
    req.paramsJson = params;
    methods.at(method)(req, Responder(std::make_shared<Sink>(&a)));
    return a;
  }
  bool logged(const std::string& part) const {
    return std::any_of(log.lines.begin(), log.lines.end(),
                       [&](const std::string& l) { return l.find(part) != std::string::npos; });
  }

  std::map<std::string, RequestHandler> methods;
  bool deferAccounts = false;
  std::vector<std::function<void(Status)>> pendingAccounts;
};

TEST(HaPlugin, ExposeAndAccountParamsAreCheckedAndNothingChangesOnBadInput) {
  HaContext ctx;
  ctx.devs.infos["lamp-0001"] = lamp();
  HomeAssistantPlugin plugin(ctx);
  ASSERT_TRUE(plugin.start().isOk());

  struct Bad {
    const char* params;
    const char* message;
  };
  for (const Bad& b : {Bad{"{}", "missing \"deviceId\""},
                       Bad{R"({"deviceId":"lamp 1","enabled":true})", "\"deviceId\" must match"},
                       Bad{R"({"deviceId":7,"enabled":true})", "\"deviceId\" must be a string"},
                       Bad{R"({"deviceId":"lamp-0001"})", "missing \"enabled\""},
                       Bad{R"({"deviceId":"lamp-0001","enabled":1})", "must be true or false"},
                       Bad{R"({"deviceId":"lamp-0001","enabled":null})", "missing \"enabled\""}}) {
    auto a = ctx.call("haExpose", b.params);
    EXPECT_FALSE(a.ok) << b.params;
    EXPECT_EQ(a.code, ErrorCode::kInvalidRequest) << b.params;
    EXPECT_NE(a.text.find(b.message), std::string::npos) << b.params << " -> " << a.text;
  }
  EXPECT_TRUE(ctx.kv.data["exposed"].empty());
  EXPECT_EQ(ctx.call("haExpose", R"({"deviceId":"lamp-0001","enabled":true})", "bob").code,
            ErrorCode::kNotOwner);
  EXPECT_EQ(ctx.call("haExpose", R"({"deviceId":"lamp-9999","enabled":true})").code,
            ErrorCode::kNotFound);
  EXPECT_TRUE(ctx.kv.data["exposed"].empty());

  auto a = ctx.call("haExpose", R"({"deviceId":"lamp-0001","enabled":true})");
  ASSERT_TRUE(a.ok) << a.text;
  auto r = parse(a.text);
  EXPECT_TRUE(r->getValue<bool>("exposed"));
  EXPECT_EQ(r->getValue<std::string>("kind"), "lamp");
  EXPECT_EQ(ctx.kv.data["exposed"].count("lamp-0001"), 1u);
  auto detail = parse(ctx.devs.details.at("homeAssistant")("lamp-0001", "alice"));
  EXPECT_EQ(detail->getValue<std::string>("by"), "alice");

  for (const char* bad : {"{}", R"({"password":12345678})", R"({"password":"short"})"}) {
    auto b = ctx.call("haAccount", bad, "");
    EXPECT_EQ(b.code, ErrorCode::kInvalidRequest) << bad;
  }
  EXPECT_EQ(ctx.call("haAccount", R"({"password":"short"})", "").text,
            "\"password\" must be 8 to 256 characters");
  EXPECT_EQ(ctx.accounts.count("homeassistant"), 0u);
  auto ok = ctx.call("haAccount", R"({"password":"correct horse"})", "");
  ASSERT_TRUE(ok.ok) << ok.text;
  EXPECT_EQ(parse(ok.text)->getValue<std::string>("username"), "homeassistant");
  EXPECT_EQ(ctx.accounts.at("homeassistant").password, "correct horse");
  plugin.stop();
}

// The answer to the plugin's own account request comes back on the hub loop, later: a refusal
// degrades the plugin and names the account, and the next broker connect asks again. (An answer
// after stop is dropped by the host: plugin_host_test's AnAnswerThatComesAfterThePluginStopped-
// IsDropped; there is nothing of the plugin's to test there.)
TEST(HaPlugin, ALateAccountRefusalDegradesAndTheNextConnectAsksAgain) {
  HaContext ctx;
  ctx.deferAccounts = true;
  HomeAssistantPlugin plugin(ctx);
  ASSERT_TRUE(plugin.start().isOk());
  ASSERT_EQ(ctx.busHandlers.count(events::kBrokerConnected), 1u);

  ctx.emit(events::kBrokerConnected, "{}");
  ASSERT_EQ(ctx.pendingAccounts.size(), 1u);
  EXPECT_EQ(ctx.accounts.count("hearth-ha-bridge"), 1u);
  ctx.pendingAccounts[0](Status::error(ErrorCode::kUnavailable, "no answer"));
  EXPECT_EQ(ctx.state, PluginState::kDegraded);
  EXPECT_TRUE(ctx.logged("broker account hearth-ha-bridge: no answer"));

  ctx.emit(events::kBrokerConnected, "{}");  // the next connect tries again
  ASSERT_EQ(ctx.pendingAccounts.size(), 2u);
  plugin.stop();
}

}  // namespace
}  // namespace hearth::home_assistant
