// The wifi_lan plugin's hub-side logic with a fake PluginContext, fake core Devices and a fake
// LanIo: provisioning and key replacement, the co-signature that stops remote takeovers,
// authenticated control with retries, replay protection, presence and reset. The same paths
// over real sockets and the real core are in tests/integration/test_wifi_lan.py.

#include "wifi_lan_plugin.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "fake_context.h"
#include "lan_io.h"
#include "lan_protocol.h"

namespace hearth::wifi_lan {
namespace {

using lan::DropReason;
using lan::Message;
using lan::MessageType;
using std::chrono::milliseconds;

const std::string kDevice = "lamp-1";
const std::string kDeviceHost = "10.0.0.7";
const uint16_t kDevicePort = 47801;
const std::string kAliceToken = "alice-token-0123456789abcdef";
const std::string kBobToken = "bob-token-0123456789abcdef00";

// The fake PluginContext (with recording Devices that bind provisioning tokens registered in
// devs.tokens) is shared with the other plugin tests.
using fakes::FakeConfig;
using fakes::FakeContext;

class FakeLanIo : public LanIo {
 public:
  struct Sent {
    std::string datagram, host;
    uint16_t port;
  };
  // handlers (optional) receives what the plugin gives the I/O thread, so that a test can play
  // that thread: its calls post to the hub loop as the real one's do.
  explicit FakeLanIo(std::vector<Sent>* sent, LanIoHandlers* handlers = nullptr)
      : sent_(sent), handlers_(handlers) {}
  Status open(const LanIoConfig&, LanIoHandlers h) override {
    if (h.onInterfaces) h.onInterfaces({"eth0"});
    if (handlers_ != nullptr) *handlers_ = std::move(h);
    return Status::ok();
  }
  void close() override {}
  void sendTo(const std::string& d, const std::string& host, uint16_t port) override {
    sent_->push_back({d, host, port});
  }
  uint16_t localPort() const override { return 40000; }

 private:
  std::vector<Sent>* sent_;
  LanIoHandlers* handlers_;
};

// The device side of the protocol, as hearth-devsim implements it.
struct SimDevice {
  std::string id = kDevice;
  std::string key;
  uint64_t counter = 5000;

  Message announce(const std::string& name = "Lamp") {
    Message a;
    a.type = MessageType::kAnnounce;
    a.id = id;
    a.model = "acme-lamp";
    a.name = name;
    a.firmware = "1.0";
    a.port = kDevicePort;
    if (!key.empty()) a.ctr = ++counter;
    return a;
  }
  std::string signedAnnounce(const std::string& name = "Lamp") {
    return lan::encode(announce(name), key);
  }
  std::string provisioning(const std::string& token, bool coSign = true) {
    Message a = announce();
    a.token = token;
    a.ctr = ++counter;
    return lan::encode(a, lan::deriveKey(token, id), coSign ? key : std::string());
  }
  std::string reply(const Message& control, const std::string& resultJson,
                    const std::string& withKey = {}) {
    Message r;
    r.type = MessageType::kReply;
    r.id = id;
    r.req = control.req;
    r.ctr = control.ctr;
    r.json = resultJson;
    return lan::encode(r, withKey.empty() ? key : withKey);
  }
  std::string signedOf(MessageType type, const std::string& json = {}) {
    Message m;
    m.type = type;
    m.id = id;
    m.ctr = ++counter;
    m.json = json;
    return lan::encode(m, key);
  }
};

class WifiLanPluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FakeConfig& c = ctx_.cfg;
    c.strings["multicast_group"] = "239.255.72.1";
    c.ints["multicast_port"] = 47800;
    c.ints["listen_port"] = 0;
    c.durations["probe_period"] = milliseconds(1000);
    c.bools["ssdp"] = false;
    c.durations["ssdp_period"] = milliseconds(60000);
    c.durations["offline_after"] = milliseconds(3000);
    c.durations["control_timeout"] = milliseconds(500);
    c.ints["control_retries"] = 2;
    c.ints["max_devices"] = 100;
    c.json["interfaces"] = "[]";
    startPlugin();
  }

  void startPlugin() {
    plugin_ = std::make_unique<WifiLanPlugin>(ctx_, std::make_unique<FakeLanIo>(&sent_, &io_));
    ASSERT_TRUE(plugin_->start().isOk());
    ctx_.drain();
  }

  void receive(const std::string& datagram) {
    ASSERT_FALSE(datagram.empty());
    plugin_->handleDatagram(datagram, kDeviceHost, 53000);
  }

  // Provisions the simulated device with token for user; returns the hub's ack.
  Message provision(SimDevice& dev, const std::string& token, const std::string& user) {
    ctx_.devs.tokens.emplace(token, Result<std::string>(user));
    sent_.clear();
    receive(dev.provisioning(token));
    EXPECT_EQ(sent_.size(), 1u);
    Message ack;
    DropReason why;
    if (sent_.empty() || !lan::decode(sent_.back().datagram, &ack, &why)) return ack;
    dev.key = lan::deriveKey(token, dev.id);
    return ack;
  }

  struct Outcome {
    bool called = false;
    Result<std::string> result = Status::error(ErrorCode::kInternal, "unset");
  };

  // Sends a command; returns the control message the device received.
  Message command(Outcome* out, const std::string& params = R"({"on":true})") {
    sent_.clear();
    plugin_->control(kDevice, "alice", "set", params, [out](Result<std::string> r) {
      out->called = true;
      out->result = std::move(r);
    });
    Message c;
    DropReason why;
    if (sent_.size() != 1 || !lan::decode(sent_.back().datagram, &c, &why)) {
      ADD_FAILURE() << "no control request was sent";
    }
    return c;
  }

  FakeContext ctx_{"wifi_lan"};
  std::vector<FakeLanIo::Sent> sent_;
  LanIoHandlers io_;  // the plugin's I/O thread callbacks
  std::unique_ptr<WifiLanPlugin> plugin_;
};

TEST_F(WifiLanPluginTest, RegistersTheWifiTransportAndReportsAnnouncedDevices) {
  EXPECT_EQ(ctx_.devs.transports.count("wifi"), 1u);
  SimDevice dev;
  receive(dev.signedAnnounce());
  ASSERT_EQ(ctx_.devs.reports.size(), 1u);
  EXPECT_EQ(ctx_.devs.reports[0].deviceId, kDevice);
  EXPECT_EQ(ctx_.devs.reports[0].transport, "wifi");
  EXPECT_EQ(ctx_.devs.reports[0].model, "acme-lamp");
  EXPECT_FALSE(ctx_.devs.reports[0].inventoryOnly);
  EXPECT_TRUE(plugin_->present(kDevice));
  // Repeats within a probe period change nothing in the core.
  receive(dev.signedAnnounce());
  EXPECT_EQ(ctx_.devs.reports.size(), 1u);
  receive(dev.signedAnnounce("Renamed"));
  EXPECT_EQ(ctx_.devs.reports.size(), 2u);
}

TEST_F(WifiLanPluginTest, ProvisioningStoresTheDerivedKeyAndAcknowledges) {
  SimDevice dev;
  Message ack = provision(dev, kAliceToken, "alice");
  ASSERT_EQ(ctx_.devs.presented.size(), 1u);
  EXPECT_EQ(ctx_.devs.presented[0], std::make_pair(kDevice, kAliceToken));
  EXPECT_EQ(ack.type, MessageType::kProvisioned);
  EXPECT_TRUE(lan::verifyMac(lan::deriveKey(kAliceToken, kDevice), ack.body, ack.mac));
  EXPECT_EQ(sent_.back().host, kDeviceHost);
  EXPECT_EQ(sent_.back().port, kDevicePort);
  const std::string& stored = ctx_.kv.data["keys"][kDevice];
  EXPECT_NE(stored.find(lan::toHex(lan::deriveKey(kAliceToken, kDevice))), std::string::npos);
  EXPECT_EQ(stored.find(kAliceToken), std::string::npos);  // the token itself is not kept

  // The device repeats the token until it sees the ack: acked again, not presented again.
  sent_.clear();
  Message again = dev.announce();
  again.token = kAliceToken;
  again.ctr = ++dev.counter;
  receive(lan::encode(again, dev.key));
  EXPECT_EQ(ctx_.devs.presented.size(), 1u);
  EXPECT_EQ(sent_.size(), 1u);
}

TEST_F(WifiLanPluginTest, ControlIsSignedAndOnlyTheKeyedReplyCompletesIt) {
  SimDevice dev;
  provision(dev, kAliceToken, "alice");
  Outcome out;
  Message c = command(&out);
  EXPECT_EQ(c.type, MessageType::kControl);
  EXPECT_EQ(c.command, "set");
  EXPECT_EQ(c.json, R"({"on":true})");
  EXPECT_TRUE(lan::verifyMac(dev.key, c.body, c.mac));

  // A reply signed with another key, and one for a request nobody made: dropped.
  receive(dev.reply(c, R"({"state":{"on":false}})", lan::deriveKey(kBobToken, kDevice)));
  Message other = c;
  other.req = "ffffffffffffffff";
  receive(dev.reply(other, "{}"));
  EXPECT_FALSE(out.called);
  EXPECT_EQ(plugin_->dropped(DropReason::kMac), 1u);
  EXPECT_EQ(plugin_->dropped(DropReason::kUnsolicited), 1u);

  receive(dev.reply(c, R"({"state":{"on":true}})"));
  ASSERT_TRUE(out.called);
  ASSERT_TRUE(out.result.isOk()) << out.result.status().toString();
  EXPECT_EQ(out.result.value(), R"({"state":{"on":true}})");
  ASSERT_FALSE(ctx_.devs.notified.empty());
  EXPECT_EQ(ctx_.devs.notified.back().event, "controlReply");
  // A replay of the genuine reply answers nothing any more.
  receive(dev.reply(c, R"({"state":{"on":true}})"));
  EXPECT_EQ(plugin_->dropped(DropReason::kUnsolicited), 2u);
}

TEST_F(WifiLanPluginTest, UnansweredControlIsRetransmittedThenTimesOut) {
  SimDevice dev;
  provision(dev, kAliceToken, "alice");
  Outcome out;
  Message c = command(&out);
  std::string first = sent_.back().datagram;
  ctx_.advance(milliseconds(500));
  ASSERT_EQ(sent_.size(), 2u);
  EXPECT_EQ(sent_[1].datagram, first);  // identical: the device answers it from its cache
  ctx_.advance(milliseconds(500));
  ASSERT_EQ(sent_.size(), 3u);
  EXPECT_FALSE(out.called);
  ctx_.advance(milliseconds(500));
  ASSERT_TRUE(out.called);
  EXPECT_EQ(out.result.status().code(), ErrorCode::kTimeout);
  EXPECT_EQ(sent_.size(), 3u);  // 1 + control_retries
  // A late reply finds nothing pending.
  receive(dev.reply(c, "{}"));
  EXPECT_EQ(plugin_->dropped(DropReason::kUnsolicited), 1u);
}

TEST_F(WifiLanPluginTest, SilentDevicesGoOfflineAndControlFailsFast) {
  SimDevice dev;
  provision(dev, kAliceToken, "alice");
  ctx_.advance(milliseconds(2500));
  EXPECT_TRUE(ctx_.devs.onlineChanges.empty());
  ctx_.advance(milliseconds(2000));  // past offline_after (3 s) plus a check period
  ASSERT_EQ(ctx_.devs.onlineChanges.size(), 1u);
  EXPECT_EQ(ctx_.devs.onlineChanges[0], std::make_pair(kDevice, false));
  EXPECT_FALSE(plugin_->present(kDevice));
  Outcome out;
  sent_.clear();
  plugin_->control(kDevice, "alice", "get", "{}", [&](Result<std::string> r) {
    out.called = true;
    out.result = std::move(r);
  });
  ASSERT_TRUE(out.called);
  EXPECT_EQ(out.result.status().code(), ErrorCode::kOffline);
  EXPECT_TRUE(sent_.empty());
  size_t reports = ctx_.devs.reports.size();
  receive(dev.signedAnnounce());
  EXPECT_EQ(ctx_.devs.reports.size(), reports + 1);  // the core marks it online again
  EXPECT_TRUE(plugin_->present(kDevice));
}

TEST_F(WifiLanPluginTest, ABoundDeviceIsTakenOverOnlyWithItsCurrentKey) {
  SimDevice dev;
  provision(dev, kAliceToken, "alice");
  ctx_.devs.tokens.emplace(kBobToken, Result<std::string>("bob"));

  // A LAN host with a token of its own but without the device key: refused, core untouched.
  SimDevice spoofer;
  spoofer.counter = 1ull << 50;  // a forged counter must not raise the high-water mark
  receive(spoofer.provisioning(kBobToken, false));
  EXPECT_EQ(plugin_->dropped(DropReason::kUnauthorized), 1u);
  EXPECT_EQ(ctx_.devs.presented.size(), 1u);
  // The token's user is told the device is taken (the loser of a setup race stops waiting),
  // once however often the announcement repeats; nothing is presented or bound.
  EXPECT_EQ(ctx_.devs.refused,
            (std::vector<std::pair<std::string, std::string>>{{kDevice, kBobToken}}));
  receive(spoofer.provisioning(kBobToken, false));
  EXPECT_EQ(plugin_->dropped(DropReason::kUnauthorized), 2u);
  EXPECT_EQ(ctx_.devs.refused.size(), 1u);
  EXPECT_EQ(ctx_.devs.presented.size(), 1u);
  EXPECT_EQ(ctx_.devs.bound[kDevice], std::vector<std::string>{"alice"});
  receive(dev.signedAnnounce());
  EXPECT_EQ(plugin_->dropped(DropReason::kReplay), 0u);

  // The real device, set up again by bob's phone, co-signs with the key it still holds.
  Message ack = provision(dev, kBobToken, "bob");
  EXPECT_EQ(ctx_.devs.presented.back(), std::make_pair(kDevice, kBobToken));
  EXPECT_TRUE(lan::verifyMac(lan::deriveKey(kBobToken, kDevice), ack.body, ack.mac));
  // Commands now go out under bob's key only.
  Outcome out;
  Message c = command(&out);
  EXPECT_TRUE(lan::verifyMac(lan::deriveKey(kBobToken, kDevice), c.body, c.mac));
  EXPECT_FALSE(lan::verifyMac(lan::deriveKey(kAliceToken, kDevice), c.body, c.mac));
  EXPECT_NE(ctx_.kv.data["keys"][kDevice].find(lan::toHex(lan::deriveKey(kBobToken, kDevice))),
            std::string::npos);
  plugin_->stop();  // ends the pending command while `out` is still alive
}

TEST_F(WifiLanPluginTest, UnboundDevicesNeedNoCoSignature) {
  SimDevice dev;
  provision(dev, kAliceToken, "alice");
  ctx_.devs.bound.erase(kDevice);  // e.g. the owner unbound it
  SimDevice newcomer;
  newcomer.counter = dev.counter;
  ctx_.devs.tokens.emplace(kBobToken, Result<std::string>("bob"));
  receive(newcomer.provisioning(kBobToken, false));
  EXPECT_EQ(ctx_.devs.presented.back(), std::make_pair(kDevice, kBobToken));
  EXPECT_EQ(plugin_->dropped(DropReason::kUnauthorized), 0u);
}

TEST_F(WifiLanPluginTest, RefusedTokensAreNotPresentedAgain) {
  SimDevice dev;
  ctx_.devs.tokens.emplace(kAliceToken,
                           Result<std::string>(Status::error(ErrorCode::kTokenExpired, "old")));
  receive(dev.provisioning(kAliceToken));
  receive(dev.provisioning(kAliceToken));
  receive(dev.provisioning(kAliceToken));
  EXPECT_EQ(ctx_.devs.presented.size(), 1u);
  EXPECT_TRUE(sent_.empty());  // no ack
  EXPECT_TRUE(ctx_.kv.data["keys"].empty());
}

TEST_F(WifiLanPluginTest, KeyedDevicesMustSignAndCannotBeReplayed) {
  SimDevice dev;
  provision(dev, kAliceToken, "alice");
  std::string genuine = dev.signedAnnounce("Lamp");
  receive(genuine);
  receive(genuine);  // the same datagram again
  EXPECT_EQ(plugin_->dropped(DropReason::kDuplicate), 1u);
  SimDevice past = dev;
  past.counter -= 10;
  receive(past.signedAnnounce("Lamp"));
  EXPECT_EQ(plugin_->dropped(DropReason::kReplay), 1u);
  size_t reports = ctx_.devs.reports.size();
  SimDevice unsigned_ = dev;
  unsigned_.key.clear();
  receive(unsigned_.signedAnnounce("Evil twin"));
  EXPECT_EQ(plugin_->dropped(DropReason::kMac), 1u);
  EXPECT_EQ(ctx_.devs.reports.size(), reports);
  for (const auto& r : ctx_.devs.reports) EXPECT_NE(r.name, "Evil twin");
}

TEST_F(WifiLanPluginTest, StateReportsReachBoundUsersAndResetForgetsTheKey) {
  SimDevice dev;
  provision(dev, kAliceToken, "alice");
  receive(dev.signedOf(MessageType::kState, R"({"on":true})"));
  ASSERT_FALSE(ctx_.devs.notified.empty());
  EXPECT_EQ(ctx_.devs.notified.back().event, "deviceState");
  EXPECT_EQ(ctx_.devs.notified.back().data, R"({"deviceId":"lamp-1","state":{"on":true}})");

  SimDevice forger = dev;
  forger.key = lan::deriveKey(kBobToken, kDevice);
  receive(forger.signedOf(MessageType::kReset));
  EXPECT_TRUE(ctx_.devs.resets.empty());
  receive(dev.signedOf(MessageType::kReset));
  ASSERT_EQ(ctx_.devs.resets.size(), 1u);
  EXPECT_TRUE(ctx_.kv.data["keys"].empty());
  Outcome out;
  plugin_->control(kDevice, "alice", "get", "{}", [&](Result<std::string> r) {
    out.called = true;
    out.result = std::move(r);
  });
  EXPECT_EQ(out.result.status().code(), ErrorCode::kUnavailable);
}

TEST_F(WifiLanPluginTest, KeysSurviveARestartAndPendingCommandsEndOnStop) {
  SimDevice dev;
  provision(dev, kAliceToken, "alice");
  std::string last = dev.signedAnnounce();
  receive(last);
  Outcome out;
  command(&out);
  plugin_->stop();
  ASSERT_TRUE(out.called);
  EXPECT_EQ(out.result.status().code(), ErrorCode::kUnavailable);
  plugin_.reset();
  ctx_.clearTimers();

  startPlugin();
  // The counter high-water mark was stored at stop: a replay is refused after the restart too.
  receive(last);
  EXPECT_EQ(plugin_->dropped(DropReason::kDuplicate), 1u);
  receive(dev.signedAnnounce());  // accepted: the key came back from the store
  EXPECT_EQ(plugin_->dropped(DropReason::kMac), 0u);
  EXPECT_TRUE(plugin_->present(kDevice));
  Outcome again;
  Message c = command(&again);
  EXPECT_TRUE(lan::verifyMac(dev.key, c.body, c.mac));
  plugin_->stop();  // ends the pending command while `again` is still alive
}

TEST_F(WifiLanPluginTest, GarbageIsCountedInTheStatus) {
  plugin_->handleDatagram("not hearth", kDeviceHost, 1);
  plugin_->handleDatagram(std::string(2000, 'x'), kDeviceHost, 1);
  plugin_->handleDatagram("HLAN/1\n{", kDeviceHost, 1);
  EXPECT_EQ(plugin_->dropped(DropReason::kHeader), 1u);
  EXPECT_EQ(plugin_->dropped(DropReason::kOversize), 1u);
  EXPECT_EQ(plugin_->dropped(DropReason::kJson), 1u);
  ctx_.advance(milliseconds(1000));
  EXPECT_EQ(ctx_.state, PluginState::kRunning);
  EXPECT_NE(ctx_.details.find(R"("header":1)"), std::string::npos) << ctx_.details;
  EXPECT_NE(ctx_.details.find(R"("interfaces":["eth0"])"), std::string::npos) << ctx_.details;
}

TEST_F(WifiLanPluginTest, EventsAreCountedInThePluginCounters) {
  SimDevice dev;
  provision(dev, kAliceToken, "alice");
  // Drops on the I/O thread's path (decode) and on the hub loop's (a bad MAC).
  io_.onLan("not hearth", kDeviceHost, 1);
  io_.onLan(std::string(2000, 'x'), kDeviceHost, 1);
  SimDevice forger = dev;
  forger.key = lan::deriveKey(kBobToken, kDevice);
  receive(forger.signedOf(MessageType::kState, "{}"));
  receive(dev.signedOf(MessageType::kState, R"({"on":true})"));
  Outcome ok;
  Message c = command(&ok);
  ctx_.advance(milliseconds(500));  // one retransmission
  receive(dev.reply(c, "{}"));
  ASSERT_TRUE(ok.called);
  Outcome lost;
  command(&lost);
  ctx_.advance(milliseconds(1000));  // the status check hands the atomic counts over
  EXPECT_EQ(ctx_.counters["dropped_header"], 1);
  EXPECT_EQ(ctx_.counters["dropped_oversize"], 1);
  EXPECT_EQ(ctx_.counters["dropped_mac"], 1);
  EXPECT_EQ(ctx_.counters["provision_accepted"], 1);
  EXPECT_EQ(ctx_.counters["state_reports"], 1);
  EXPECT_EQ(ctx_.counters["control_sent"], 2);
  EXPECT_EQ(ctx_.counters["control_replies"], 1);
  EXPECT_EQ(ctx_.counters.count("control_timeouts"), 0u);
  // received counts what passed decode: the provisioning, two state reports, the reply.
  EXPECT_EQ(ctx_.counters["received"], 4);
  ctx_.advance(milliseconds(1500));
  ASSERT_TRUE(lost.called);
  EXPECT_EQ(ctx_.counters["control_retries"], 3);  // 1 + control_retries
  EXPECT_EQ(ctx_.counters["control_timeouts"], 1);
  // The details keep their own keys, with the same figures.
  EXPECT_NE(ctx_.details.find(R"("header":1)"), std::string::npos) << ctx_.details;
  EXPECT_NE(ctx_.details.find(R"("timeouts":1)"), std::string::npos) << ctx_.details;

  // The status timer re-arms itself from its own callback: later drops still arrive, each once.
  for (int i = 0; i < 5; ++i) {
    io_.onLan("not hearth", kDeviceHost, 1);
    ctx_.advance(milliseconds(1000));
    EXPECT_EQ(ctx_.counters["dropped_header"], 2 + i);
  }
  // What was dropped since the last status check is handed over by stop().
  io_.onLan("not hearth", kDeviceHost, 1);
  plugin_->stop();
  EXPECT_EQ(ctx_.counters["dropped_header"], 7);
  EXPECT_EQ(plugin_->dropped(DropReason::kHeader), 7u);
}

TEST_F(WifiLanPluginTest, AReplyAfterARetransmissionCancelsTheRearmedTimeout) {
  SimDevice dev;
  provision(dev, kAliceToken, "alice");
  int calls = 0;
  Result<std::string> result = Status::error(ErrorCode::kInternal, "unset");
  sent_.clear();
  plugin_->control(kDevice, "alice", "set", "{}", [&](Result<std::string> r) {
    ++calls;
    result = std::move(r);
  });
  ASSERT_EQ(sent_.size(), 1u);
  Message c;
  DropReason why;
  ASSERT_TRUE(lan::decode(sent_.back().datagram, &c, &why));
  ctx_.advance(milliseconds(500));  // the timeout re-arms its own slot for the second attempt
  ASSERT_EQ(sent_.size(), 2u);
  receive(dev.reply(c, R"({"on":true})"));
  ASSERT_EQ(calls, 1);
  ASSERT_TRUE(result.isOk()) << result.status().toString();
  ctx_.advance(milliseconds(5000));  // the second attempt's timeout was cancelled with the reply
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(sent_.size(), 2u);
  EXPECT_EQ(ctx_.counters.count("control_timeouts"), 0u);
}

TEST_F(WifiLanPluginTest, WorkTheIoThreadPostsIsDroppedOnceThePluginStopped) {
  SimDevice dev;
  // Posted and run while the plugin runs: the device is reported.
  io_.onLan(dev.signedAnnounce(), kDeviceHost, 53000);
  EXPECT_TRUE(ctx_.devs.reports.empty());  // not before the hub loop runs it
  ctx_.drain();
  ASSERT_EQ(ctx_.devs.reports.size(), 1u);

  // Posted before stop() and still queued: if it runs before the host drops it, it finds the
  // plugin stopped and changes nothing; stop() cancelled the timers (no presence check fires).
  dev.id = "lamp-2";
  io_.onLan(dev.signedAnnounce(), kDeviceHost, 53000);
  io_.onInterfaces({"eth1"});
  plugin_->stop();
  ctx_.advance(milliseconds(10000));
  EXPECT_EQ(ctx_.devs.reports.size(), 1u);
  EXPECT_TRUE(ctx_.devs.onlineChanges.empty());
  EXPECT_EQ(ctx_.details.find("eth1"), std::string::npos) << ctx_.details;

  // Posted once the host has dropped the plugin's work: never runs.
  ctx_.markStopped();
  dev.id = "lamp-3";
  io_.onLan(dev.signedAnnounce(), kDeviceHost, 53000);
  io_.onSsdp("NOTIFY * HTTP/1.1\r\n\r\n", kDeviceHost);
  io_.onInterfaces({"eth2"});
  ctx_.drain();
  EXPECT_EQ(ctx_.devs.reports.size(), 1u);
  EXPECT_EQ(ctx_.details.find("eth2"), std::string::npos) << ctx_.details;
}

TEST_F(WifiLanPluginTest, ValidateRefusesWhatStartWould) {
  // validate (--check-config, SIGHUP) and start() run the same checks.
  EXPECT_TRUE(WifiLanPlugin::validate(ctx_.cfg).isOk());
  ctx_.cfg.json["interfaces"] = R"(["eth0", "wlan0"])";
  EXPECT_TRUE(WifiLanPlugin::validate(ctx_.cfg).isOk());
  const std::pair<const char*, const char*> badInterfaces[] = {
      {R"({"eth0": 1})", "list of names"},
      {"[1]", "interface names"},
      {R"([""])", "interface names"},
      {R"(["an-interface-name-too-long"])", "interface names"},
  };
  plugin_->stop();
  for (const auto& [list, message] : badInterfaces) {
    ctx_.cfg.json["interfaces"] = list;
    Status s = WifiLanPlugin::validate(ctx_.cfg);
    EXPECT_EQ(s.code(), ErrorCode::kInvalidRequest) << list;
    EXPECT_NE(s.message().find(message), std::string::npos) << list << ": " << s.message();
    WifiLanPlugin plugin(ctx_, std::make_unique<FakeLanIo>(&sent_));
    EXPECT_EQ(plugin.start().message(), s.message()) << list;
  }
  ctx_.cfg.json["interfaces"] = "[]";
  for (const char* group : {"224.0.0.300", "10.0.0.1", "ff02::1", "lan"}) {
    ctx_.cfg.strings["multicast_group"] = group;
    Status s = WifiLanPlugin::validate(ctx_.cfg);
    EXPECT_EQ(s.code(), ErrorCode::kInvalidRequest) << group;
    EXPECT_NE(s.message().find(std::string("multicast_group ") + group), std::string::npos)
        << s.message();
    WifiLanPlugin plugin(ctx_, std::make_unique<FakeLanIo>(&sent_));
    EXPECT_EQ(plugin.start().message(), s.message()) << group;
  }
}

}  // namespace
}  // namespace hearth::wifi_lan
