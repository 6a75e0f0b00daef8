// The ble plugin's logic (plugins/ble/ble_plugin.h) against a fake BlueZ client and a fake
// plugin context with a manual clock: reporting, presence, bind windows and reset counters, the
// waiting states, BlueZ restarts, and the command queue (serialised connects, the connection
// limit, timeouts, error mapping, notify replies). The real D-Bus path is covered by
// tests/integration/test_ble.py.

#include "ble_plugin.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "fake_context.h"

namespace hearth::ble {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr const char* kAdapter = "/org/bluez/hci0";
constexpr const char* kLockUuid = "0000fff0-0000-1000-8000-00805f9b34fb";
constexpr const char* kControlUuid = "0000fff1-0000-1000-8000-00805f9b34fb";
constexpr const char* kStatusUuid = "0000fff2-0000-1000-8000-00805f9b34fb";
constexpr uint16_t kCompany = 0xFFFF;

// The fake plugin context (manual clock, timers, posted work, recording Devices, in-memory
// store) is shared with the other plugin tests.
using fakes::FakeConfig;
using fakes::FakeContext;

// ---- fake BlueZ --------------------------------------------------------------------------------

// Discovery calls, Disconnect and StopNotify are answered at once (through post, as the real
// client does); everything else waits in `pending` until the test answers it. GetManagedObjects
// is answered from `tree` unless holdTree is set.
class FakeBluez : public BluezClient {
 public:
  struct Call {
    std::string method;
    std::string path;
    Bytes value;
    std::optional<std::vector<std::string>> uuids;
    Done done;
    std::function<void(const MaybeError&, ObjectTree)> treeDone;
    std::function<void(const MaybeError&, DeviceProps)> propsDone;
    std::function<void(const MaybeError&, Bytes)> bytesDone;
  };

  explicit FakeBluez(FakeContext& ctx) : ctx_(ctx) {}
  ~FakeBluez() override { ++*session_; }

  Status start(Listener* l) override {
    ++starts;
    if (!startStatus.isOk()) return startStatus;
    listener = l;
    ++*session_;
    return Status::ok();
  }
  void stop() override {
    listener = nullptr;
    ++*session_;
    pending.clear();
  }
  void getManagedObjects(std::function<void(const MaybeError&, ObjectTree)> done) override {
    Call c = record("GetManagedObjects", "/");
    if (holdTree) {
      c.treeDone = std::move(done);
      pending.push_back(std::move(c));
      return;
    }
    answer([done, tree = tree] { done(std::nullopt, tree); });
  }
  void setDiscoveryFilter(const std::string& adapter,
                          const std::optional<std::vector<std::string>>& uuids,
                          Done done) override {
    record("SetDiscoveryFilter", adapter);
    lastFilter = uuids;
    answerOk(std::move(done));
  }
  void startDiscovery(const std::string& adapter, Done done) override {
    record("StartDiscovery", adapter);
    answerOk(std::move(done));
  }
  void stopDiscovery(const std::string& adapter, Done done) override {
    record("StopDiscovery", adapter);
    answerOk(std::move(done));
  }
  void connect(const std::string& device, milliseconds, Done done) override {
    Call c = record("Connect", device);
    c.done = std::move(done);
    pending.push_back(std::move(c));
  }
  void disconnect(const std::string& device, Done done) override {
    record("Disconnect", device);
    answerOk(std::move(done));
  }
  void getDeviceProperties(const std::string& device,
                           std::function<void(const MaybeError&, DeviceProps)> done) override {
    Call c = record("GetAll", device);
    c.propsDone = std::move(done);
    pending.push_back(std::move(c));
  }
  void writeValue(const std::string& characteristic, const Bytes& value, bool, milliseconds,
                  Done done) override {
    Call c = record("WriteValue", characteristic);
    c.value = value;
    c.done = std::move(done);
    pending.push_back(std::move(c));
  }
  void readValue(const std::string& characteristic, milliseconds,
                 std::function<void(const MaybeError&, Bytes)> done) override {
    Call c = record("ReadValue", characteristic);
    c.bytesDone = std::move(done);
    pending.push_back(std::move(c));
  }
  void startNotify(const std::string& characteristic, Done done) override {
    Call c = record("StartNotify", characteristic);
    c.done = std::move(done);
    pending.push_back(std::move(c));
  }
  void stopNotify(const std::string& characteristic, Done done) override {
    record("StopNotify", characteristic);
    answerOk(std::move(done));
  }

  // The oldest pending call of `method`; the test fails if there is none.
  Call take(const std::string& method) {
    auto it = std::find_if(pending.begin(), pending.end(),
                           [&](const Call& c) { return c.method == method; });
    if (it == pending.end()) throw std::runtime_error("no pending " + method);
    Call c = std::move(*it);
    pending.erase(it);
    return c;
  }
  size_t pendingCount(const std::string& method) const {
    return std::count_if(pending.begin(), pending.end(),
                         [&](const Call& c) { return c.method == method; });
  }
  size_t count(const std::string& method) const {
    return std::count_if(log.begin(), log.end(), [&](const std::string& l) {
      return l.compare(0, method.size() + 1, method + " ") == 0;
    });
  }
  size_t indexOf(const std::string& entry) const {
    return std::find(log.begin(), log.end(), entry) - log.begin();
  }

  Listener* listener = nullptr;
  Status startStatus;
  int starts = 0;
  ObjectTree tree;
  bool holdTree = false;
  std::deque<Call> pending;
  std::vector<std::string> log;
  std::optional<std::vector<std::string>> lastFilter;

 private:
  Call record(const std::string& method, const std::string& path) {
    log.push_back(method + " " + path);
    Call c;
    c.method = method;
    c.path = path;
    return c;
  }
  // Like the real client: a reply posted before stop() is dropped when it reaches the front of
  // the queue. So is one posted before the fake's destruction: the host drops a stopped
  // plugin's posts, but this context lives on across the restarts of one test.
  void answer(std::function<void()> fn) {
    ctx_.post([session = session_, current = *session_, fn = std::move(fn)] {
      if (*session == current) fn();
    });
  }
  void answerOk(Done done) {
    answer([done = std::move(done)] { done(std::nullopt); });
  }

  FakeContext& ctx_;
  std::shared_ptr<uint64_t> session_ = std::make_shared<uint64_t>(0);
};

// ---- BlueZ objects -----------------------------------------------------------------------------

std::string pathOf(const std::string& address) {
  std::string p = std::string(kAdapter) + "/dev_" + address;
  std::replace(p.begin(), p.end(), ':', '_');
  return p;
}

BluezObject adapterObject(bool powered) {
  BluezObject o;
  o.adapter = AdapterProps{powered, false};
  return o;
}

Bytes block(uint16_t window = 0, bool closed = false, uint8_t reset = 0) {
  return {0x01, static_cast<uint8_t>(closed ? 1 : 0), static_cast<uint8_t>(window & 0xFF),
          static_cast<uint8_t>(window >> 8), reset};
}

// A lock's advertisement (as a PropertiesChanged update).
DeviceProps lockAdvert(const Bytes& mfr = block(), int16_t rssi = -50) {
  DeviceProps d;
  d.rssi = rssi;
  d.uuids = std::vector<std::string>{kLockUuid};
  d.manufacturerData = std::map<uint16_t, Bytes>{{kCompany, mfr}};
  return d;
}

BluezObject lockObject(const std::string& address, const std::string& name = "Lock",
                       bool advertising = true, bool connected = false) {
  BluezObject o;
  DeviceProps d = lockAdvert();
  if (!advertising) d.rssi.reset();
  d.address = address;
  d.name = name;
  d.alias = name;
  d.adapter = std::string(kAdapter);
  d.connected = connected;
  d.servicesResolved = connected;
  o.device = d;
  return o;
}

// The lock's GATT service with its control and status characteristics.
void addGatt(ObjectTree& tree, const std::string& address) {
  const std::string service = pathOf(address) + "/service0010";
  tree[service].service = GattServiceProps{kLockUuid, pathOf(address)};
  tree[service + "/char0011"].characteristic =
      GattCharacteristicProps{kControlUuid, service, std::nullopt};
  tree[service + "/char0013"].characteristic =
      GattCharacteristicProps{kStatusUuid, service, std::nullopt};
}

std::string controlPath(const std::string& address) {
  return pathOf(address) + "/service0010/char0011";
}
std::string statusPath(const std::string& address) {
  return pathOf(address) + "/service0010/char0013";
}

BluezObject only(const DeviceProps& d) {
  BluezObject o;
  o.device = d;
  return o;
}

// ---- fixture -----------------------------------------------------------------------------------

struct Outcome {
  bool done = false;
  Result<std::string> result = Status::error(ErrorCode::kInternal, "not answered");
};

class BlePluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FakeConfig& c = ctx.cfg;
    c.strings["adapter"] = "auto";
    c.json["products"] = R"([{"model": "acme.lock", "service_uuid": "fff0",
        "manufacturer_id": 65535,
        "control": {"characteristic": "fff1", "commands": {"unlock": "01", "lock": "02"}}}])";
    c.durations["scan_window"] = seconds(10);
    c.durations["scan_interval"] = seconds(10);
    c.durations["present_within"] = seconds(30);
    c.durations["offline_after"] = seconds(120);
    c.durations["connect_timeout"] = seconds(15);
    c.durations["control_timeout"] = seconds(30);
    c.durations["connection_idle"] = seconds(60);
    c.durations["retry_interval"] = seconds(5);
    c.ints["max_connections"] = 3;
    c.ints["max_queue"] = 32;
  }

  void TearDown() override {
    if (plugin) plugin->stop();
  }

  void startPlugin() {
    auto client = std::make_unique<FakeBluez>(ctx);
    bluez = client.get();
    bluez->tree = tree;
    plugin = std::make_unique<BlePlugin>(ctx, std::move(client));
    Status s = plugin->start();
    ASSERT_TRUE(s.isOk()) << s.toString();
    ctx.drain();
  }

  BluezClient::Listener& bus() { return *bluez->listener; }

  void advertise(const std::string& address, const DeviceProps& props = lockAdvert()) {
    bus().onPropertiesChanged(pathOf(address), kDeviceInterface, only(props), {});
    ctx.drain();
  }

  std::shared_ptr<Outcome> control(const std::string& address,
                                   const std::string& command = "unlock") {
    auto out = std::make_shared<Outcome>();
    plugin->control("ble:" + address, "alice", command, "{}", [out](Result<std::string> r) {
      EXPECT_FALSE(out->done) << "answered twice";
      out->done = true;
      out->result = std::move(r);
    });
    ctx.drain();
    return out;
  }

  // Answers the pending Connect of `address` and then reports ServicesResolved.
  void connectAndResolve(const std::string& address) {
    auto c = bluez->take("Connect");
    ASSERT_EQ(c.path, pathOf(address));
    DeviceProps connected;
    connected.connected = true;
    bus().onPropertiesChanged(pathOf(address), kDeviceInterface, only(connected), {});
    c.done(std::nullopt);
    ctx.drain();
    if (bluez->pendingCount("GetAll") > 0) {
      bluez->take("GetAll").propsDone(std::nullopt, DeviceProps{});
      ctx.drain();
    }
    DeviceProps resolved;
    resolved.servicesResolved = true;
    bus().onPropertiesChanged(pathOf(address), kDeviceInterface, only(resolved), {});
    ctx.drain();
  }

  void withLocks(std::initializer_list<std::string> addresses) {
    tree[kAdapter] = adapterObject(true);
    for (const auto& a : addresses) {
      tree[pathOf(a)] = lockObject(a);
      addGatt(tree, a);
    }
  }

  FakeContext ctx{"ble"};
  ObjectTree tree;
  FakeBluez* bluez = nullptr;
  std::unique_ptr<BlePlugin> plugin;
};

const std::string kA = "AA:00:00:00:00:01";
const std::string kB = "AA:00:00:00:00:02";
const std::string kC = "AA:00:00:00:00:03";

// ---- reporting and presence --------------------------------------------------------------------

TEST_F(BlePluginTest, ReportsAdvertisingDevicesThatMatchARuleAndScansWithTheFilter) {
  withLocks({kA});
  tree[pathOf(kB)] = lockObject(kB, "Cached lock", /*advertising=*/false);
  BluezObject stranger;
  stranger.device = DeviceProps{};
  stranger.device->address = "BB:00:00:00:00:09";
  stranger.device->name = "Headphones";
  stranger.device->rssi = -40;
  tree[pathOf("BB:00:00:00:00:09")] = stranger;
  startPlugin();

  EXPECT_EQ(ctx.state, PluginState::kRunning);
  EXPECT_EQ(ctx.detail("adapter"), "hci0");
  EXPECT_EQ(ctx.devs.transports.at("ble"), plugin.get());
  ASSERT_EQ(ctx.devs.reports.size(), 1u);
  const DeviceReport& r = ctx.devs.reports[0];
  EXPECT_EQ(r.deviceId, "ble:" + kA);
  EXPECT_EQ(r.transport, "ble");
  EXPECT_EQ(r.model, "acme.lock");
  EXPECT_EQ(r.name, "Lock");
  EXPECT_EQ(r.bindWindowSec, 0);
  EXPECT_TRUE(plugin->present("ble:" + kA));
  EXPECT_FALSE(plugin->present("ble:" + kB));  // in BlueZ's cache, but not advertising
  EXPECT_FALSE(plugin->present("ble:BB:00:00:00:00:09"));
  EXPECT_EQ(bluez->lastFilter, std::optional<std::vector<std::string>>({kLockUuid}));
  EXPECT_EQ(bluez->count("StartDiscovery"), 1u);

  advertise(kB);
  EXPECT_EQ(ctx.devs.reportsOf("ble:" + kB), 1u);
  EXPECT_TRUE(plugin->present("ble:" + kB));
}

TEST_F(BlePluginTest, ANamePatternMatchesTheAliasOfADeviceWithoutAName) {
  ctx.cfg.json["products"] = R"([{"model": "acme.tag", "name_pattern": "Tag-*"}])";
  tree[kAdapter] = adapterObject(true);
  auto tagged = [](const std::string& address, std::optional<std::string> name, std::string alias) {
    BluezObject o;
    o.device = DeviceProps{};
    o.device->address = address;
    o.device->name = std::move(name);
    o.device->alias = std::move(alias);
    o.device->adapter = std::string(kAdapter);
    o.device->rssi = -60;
    return o;
  };
  tree[pathOf(kA)] = tagged(kA, std::nullopt, "Tag-7");         // no Name: the Alias counts
  tree[pathOf(kB)] = tagged(kB, std::string("Lamp"), "Tag-8");  // a Name wins over the Alias
  tree[pathOf(kC)] = tagged(kC, std::nullopt, "AA-00-00-00-00-03");
  startPlugin();
  ASSERT_EQ(ctx.devs.reports.size(), 1u);
  EXPECT_EQ(ctx.devs.reports[0].deviceId, "ble:" + kA);
  EXPECT_EQ(ctx.devs.reports[0].model, "acme.tag");
  EXPECT_EQ(ctx.devs.reports[0].name, "Tag-7");
}

TEST_F(BlePluginTest, PresenceExpiresAndSilenceTurnsTheDeviceOffline) {
  ctx.cfg.durations["present_within"] = seconds(5);
  ctx.cfg.durations["offline_after"] = seconds(20);
  withLocks({kA});
  startPlugin();
  const std::string id = "ble:" + kA;
  EXPECT_TRUE(plugin->present(id));
  ctx.advance(seconds(6));
  EXPECT_FALSE(plugin->present(id));
  EXPECT_TRUE(ctx.devs.onlineChanges.empty());
  ctx.advance(seconds(14));  // 20 s: silent exactly offline_after, not longer
  EXPECT_TRUE(ctx.devs.onlineChanges.empty());
  ctx.advance(seconds(5));  // the sweep runs every offline_after / 4
  ASSERT_EQ(ctx.devs.onlineChanges.size(), 1u);
  EXPECT_EQ(ctx.devs.onlineChanges[0], std::make_pair(id, false));

  advertise(kA);  // back in range: reported (and so online) again
  EXPECT_EQ(ctx.devs.reportsOf(id), 2u);
  EXPECT_TRUE(plugin->present(id));
  ctx.advance(seconds(10));
  EXPECT_EQ(ctx.devs.onlineChanges.size(), 1u);
}

TEST_F(BlePluginTest, ReportsTheBindWindowWhenItMovesNotOnEveryAdvertisement) {
  withLocks({kA});
  startPlugin();
  auto& reports = ctx.devs.reports;
  ASSERT_EQ(reports.size(), 1u);
  advertise(kA, lockAdvert(block(60)));
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(reports.back().bindWindowSec, 60);
  ctx.advance(seconds(10));
  advertise(kA, lockAdvert(block(50)));  // counting down on the device: same end
  EXPECT_EQ(reports.size(), 2u);
  advertise(kA, lockAdvert(block(50, /*closed=*/true)));
  ASSERT_EQ(reports.size(), 3u);
  EXPECT_EQ(reports.back().bindWindowSec, -1);
  advertise(kA, lockAdvert(block(0)));
  ASSERT_EQ(reports.size(), 4u);
  EXPECT_EQ(reports.back().bindWindowSec, 0);
  advertise(kA, lockAdvert(block(0)));
  EXPECT_EQ(reports.size(), 4u);
}

TEST_F(BlePluginTest, AChangedResetCounterReportsOneResetAndSurvivesARestart) {
  withLocks({kA});
  tree[pathOf(kA)].device->manufacturerData =
      std::map<uint16_t, Bytes>{{kCompany, block(0, false, 3)}};
  startPlugin();
  const std::string id = "ble:" + kA;
  EXPECT_TRUE(ctx.devs.resets.empty());  // first sighting: nothing to compare with
  EXPECT_EQ(ctx.kv.data["reset_counters"][id], "3");
  advertise(kA, lockAdvert(block(0, false, 3)));
  EXPECT_TRUE(ctx.devs.resets.empty());
  advertise(kA, lockAdvert(block(0, false, 4)));
  EXPECT_EQ(ctx.devs.resets, std::vector<std::string>{id});
  advertise(kA, lockAdvert(block(0, false, 4)));
  EXPECT_EQ(ctx.devs.resets.size(), 1u);

  // A hub restart: the counter comes from the store, not from a fresh first sighting.
  plugin->stop();
  plugin.reset();
  tree[pathOf(kA)].device->manufacturerData =
      std::map<uint16_t, Bytes>{{kCompany, block(0, false, 4)}};
  startPlugin();
  EXPECT_EQ(ctx.devs.resets.size(), 1u);
  advertise(kA, lockAdvert(block(0, false, 5)));
  EXPECT_EQ(ctx.devs.resets.size(), 2u);
  EXPECT_EQ(ctx.kv.data["reset_counters"][id], "5");
}

// ---- waiting states and recovery ---------------------------------------------------------------

TEST_F(BlePluginTest, WaitsForAnAdapterAndForPowerThenScans) {
  startPlugin();  // empty tree
  EXPECT_EQ(ctx.state, PluginState::kWaiting);
  EXPECT_EQ(ctx.detail("reason"), "waiting_for_adapter");
  EXPECT_EQ(bluez->count("StartDiscovery"), 0u);

  bus().onInterfacesAdded(kAdapter, adapterObject(false));
  ctx.drain();
  EXPECT_EQ(ctx.detail("reason"), "adapter_powered_off");
  EXPECT_EQ(bluez->count("StartDiscovery"), 0u);

  bluez->tree[kAdapter] = adapterObject(true);
  BluezObject on;
  on.adapter = AdapterProps{true, std::nullopt};
  bus().onPropertiesChanged(kAdapter, kAdapterInterface, on, {});
  ctx.drain();
  EXPECT_EQ(bluez->count("GetManagedObjects"), 2u);  // powered on: the tree is read again
  EXPECT_EQ(ctx.state, PluginState::kRunning);
  EXPECT_EQ(bluez->count("StartDiscovery"), 1u);

  on.adapter->powered = false;
  bus().onPropertiesChanged(kAdapter, kAdapterInterface, on, {});
  ctx.drain();
  EXPECT_EQ(ctx.state, PluginState::kWaiting);
  EXPECT_EQ(ctx.detail("reason"), "adapter_powered_off");
}

TEST_F(BlePluginTest, NoSystemBusIsWaitingAndRetried) {
  auto client = std::make_unique<FakeBluez>(ctx);
  bluez = client.get();
  bluez->startStatus = Status::error(ErrorCode::kUnavailable, "cannot reach the system bus");
  plugin = std::make_unique<BlePlugin>(ctx, std::move(client));
  ASSERT_TRUE(plugin->start().isOk());
  EXPECT_EQ(ctx.state, PluginState::kWaiting);
  EXPECT_EQ(ctx.detail("reason"), "waiting_for_system_bus");
  ctx.advance(seconds(5));
  EXPECT_EQ(bluez->starts, 2);
  bluez->startStatus = Status::ok();
  bluez->tree[kAdapter] = adapterObject(true);
  ctx.advance(seconds(5));
  EXPECT_EQ(bluez->starts, 3);
  EXPECT_EQ(ctx.state, PluginState::kRunning);
}

TEST_F(BlePluginTest, BluezVanishingFailsCommandsAndItsReturnIsPickedUp) {
  withLocks({kA});
  startPlugin();
  auto inFlight = control(kA);
  auto staleConnect = bluez->take("Connect");

  bus().onBluezOwnerChanged(false);
  ctx.drain();
  ASSERT_TRUE(inFlight->done);
  EXPECT_EQ(inFlight->result.status().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(ctx.detail("reason"), "waiting_for_bluez");
  EXPECT_FALSE(plugin->present("ble:" + kA));
  auto refused = control(kA);
  ASSERT_TRUE(refused->done);
  EXPECT_EQ(refused->result.status().code(), ErrorCode::kUnavailable);

  const size_t reportsBefore = ctx.devs.reports.size();
  bus().onBluezOwnerChanged(true);
  ctx.drain();
  EXPECT_EQ(ctx.state, PluginState::kRunning);
  EXPECT_EQ(bluez->count("StartDiscovery"), 2u);
  EXPECT_EQ(ctx.devs.reports.size(), reportsBefore + 1);  // reported again

  // The old session's Connect reply arrives late: it must not free the new connect slot.
  auto fresh = control(kA);
  EXPECT_EQ(bluez->pendingCount("Connect"), 1u);
  staleConnect.done(BluezError{"org.freedesktop.DBus.Error.NoReply", "gone"});
  ctx.drain();
  EXPECT_FALSE(fresh->done);
  connectAndResolve(kA);
  bluez->take("WriteValue").done(std::nullopt);
  ctx.drain();
  ASSERT_TRUE(fresh->done);
  EXPECT_TRUE(fresh->result.isOk()) << fresh->result.status().toString();
}

TEST_F(BlePluginTest, BluezIsPolledForEvenWithoutItsOwnerSignal) {
  withLocks({kA});
  startPlugin();
  bus().onBluezOwnerChanged(false);
  ctx.drain();
  EXPECT_EQ(ctx.detail("reason"), "waiting_for_bluez");
  ctx.advance(seconds(5));  // retry_interval; no NameOwnerChanged arrives
  EXPECT_EQ(bluez->count("GetManagedObjects"), 2u);
  EXPECT_EQ(ctx.state, PluginState::kRunning);
}

TEST_F(BlePluginTest, ObjectTreeErrorsAreRetried) {
  withLocks({kA});
  auto client = std::make_unique<FakeBluez>(ctx);
  bluez = client.get();
  bluez->holdTree = true;
  plugin = std::make_unique<BlePlugin>(ctx, std::move(client));
  ASSERT_TRUE(plugin->start().isOk());
  bluez->take("GetManagedObjects")
      .treeDone(BluezError{"org.freedesktop.DBus.Error.ServiceUnknown", "no org.bluez"}, {});
  ctx.drain();
  EXPECT_EQ(ctx.detail("reason"), "waiting_for_bluez");
  ctx.advance(seconds(5));
  bluez->take("GetManagedObjects").treeDone(std::nullopt, tree);
  ctx.drain();
  EXPECT_EQ(ctx.state, PluginState::kRunning);
}

TEST_F(BlePluginTest, DiscoveryRunsTheConfiguredDutyCycle) {
  ctx.cfg.durations["scan_window"] = seconds(2);
  ctx.cfg.durations["scan_interval"] = seconds(5);
  withLocks({});
  startPlugin();
  EXPECT_EQ(bluez->count("StartDiscovery"), 1u);
  ctx.advance(milliseconds(1999));
  EXPECT_EQ(bluez->count("StopDiscovery"), 0u);
  ctx.advance(milliseconds(1));
  EXPECT_EQ(bluez->count("StopDiscovery"), 1u);
  ctx.advance(seconds(3));
  EXPECT_EQ(bluez->count("StartDiscovery"), 2u);
  EXPECT_EQ(bluez->count("SetDiscoveryFilter"), 2u);
  ctx.advance(seconds(10));
  EXPECT_EQ(bluez->count("StartDiscovery"), 4u);
  EXPECT_EQ(bluez->count("StopDiscovery"), 3u);
}

TEST_F(BlePluginTest, BadProductRulesFailTheStartNamingTheKey) {
  ctx.cfg.json["products"] = R"([{"model": "x", "service_uuid": "nope"}])";
  plugin = std::make_unique<BlePlugin>(ctx, std::make_unique<FakeBluez>(ctx));
  Status s = plugin->start();
  EXPECT_EQ(s.code(), ErrorCode::kInvalidRequest);
  EXPECT_NE(s.message().find("plugins.ble.products[0].service_uuid"), std::string::npos)
      << s.message();
  plugin.reset();
}

// ---- control -----------------------------------------------------------------------------------

TEST_F(BlePluginTest, ControlConnectsWaitsForServicesAndWritesTheCommand) {
  withLocks({kA});
  startPlugin();
  auto out = control(kA, "lock");
  EXPECT_EQ(bluez->pendingCount("WriteValue"), 0u);
  connectAndResolve(kA);
  auto write = bluez->take("WriteValue");
  EXPECT_EQ(write.path, controlPath(kA));
  EXPECT_EQ(write.value, Bytes{0x02});
  EXPECT_FALSE(out->done);
  write.done(std::nullopt);
  ctx.drain();
  ASSERT_TRUE(out->done);
  ASSERT_TRUE(out->result.isOk());
  EXPECT_EQ(out->result.value(),
            R"({"command":"lock","deviceId":"ble:AA:00:00:00:00:01","written":"02"})");

  // The connection is kept for the next command, then closed when idle.
  auto again = control(kA, "unlock");
  EXPECT_EQ(bluez->count("Connect"), 1u);
  bluez->take("WriteValue").done(std::nullopt);
  ctx.drain();
  EXPECT_TRUE(again->result.isOk());
  ctx.advance(seconds(60));
  EXPECT_EQ(bluez->count("Disconnect"), 1u);
}

TEST_F(BlePluginTest, ConnectsAreSerialisedAndIdleConnectionsMakeRoom) {
  ctx.cfg.ints["max_connections"] = 2;
  withLocks({kA, kB, kC});
  startPlugin();
  auto a = control(kA);
  auto b = control(kB);
  EXPECT_EQ(bluez->pendingCount("Connect"), 1u);  // one Connect at a time
  connectAndResolve(kA);
  EXPECT_EQ(bluez->pendingCount("Connect"), 1u);  // A resolved: B may connect now
  bluez->take("WriteValue").done(std::nullopt);
  ctx.drain();
  EXPECT_TRUE(a->done);
  ctx.advance(seconds(1));
  connectAndResolve(kB);
  bluez->take("WriteValue").done(std::nullopt);
  ctx.drain();
  EXPECT_TRUE(b->done);

  // Two connections held, the limit: C's connect first closes A, the least recently used.
  auto c = control(kC);
  ASSERT_EQ(bluez->pendingCount("Connect"), 1u);
  EXPECT_LT(bluez->indexOf("Disconnect " + pathOf(kA)), bluez->indexOf("Connect " + pathOf(kC)));
  EXPECT_EQ(bluez->count("Disconnect"), 1u);
  connectAndResolve(kC);
  bluez->take("WriteValue").done(std::nullopt);
  ctx.drain();
  EXPECT_TRUE(c->result.isOk());
}

TEST_F(BlePluginTest, ABusyConnectionIsNeverClosedToMakeRoom) {
  ctx.cfg.ints["max_connections"] = 1;
  withLocks({kA, kB});
  startPlugin();
  auto a = control(kA);
  connectAndResolve(kA);
  auto write = bluez->take("WriteValue");  // A is mid-command
  auto b = control(kB);
  EXPECT_EQ(bluez->pendingCount("Connect"), 0u);
  EXPECT_EQ(bluez->count("Disconnect"), 0u);
  write.done(std::nullopt);
  ctx.drain();
  EXPECT_TRUE(a->done);
  EXPECT_EQ(bluez->count("Disconnect"), 1u);
  EXPECT_EQ(bluez->pendingCount("Connect"), 1u);
  connectAndResolve(kB);
  bluez->take("WriteValue").done(std::nullopt);
  ctx.drain();
  EXPECT_TRUE(b->result.isOk());
}

TEST_F(BlePluginTest, ATimedOutCommandKeepsTheConnectSlotUntilBluezAnswers) {
  ctx.cfg.durations["control_timeout"] = seconds(5);
  withLocks({kA, kB});
  startPlugin();
  auto a = control(kA);
  ctx.advance(seconds(5));
  ASSERT_TRUE(a->done);
  EXPECT_EQ(a->result.status().code(), ErrorCode::kTimeout);
  auto b = control(kB);
  EXPECT_EQ(bluez->pendingCount("Connect"), 1u);  // still A's
  bluez->take("Connect").done(BluezError{"org.freedesktop.DBus.Error.NoReply", "late"});
  ctx.drain();
  ASSERT_EQ(bluez->pendingCount("Connect"), 1u);
  EXPECT_EQ(bluez->pending.front().path, pathOf(kB));
  EXPECT_FALSE(b->done);
}

TEST_F(BlePluginTest, AConnectionThatCompletesAfterItsCommandTimedOutIsGivenBack) {
  ctx.cfg.durations["control_timeout"] = seconds(5);
  ctx.cfg.durations["connection_idle"] = seconds(0);
  withLocks({kA});
  startPlugin();
  auto a = control(kA);
  ctx.advance(seconds(5));
  ASSERT_TRUE(a->done);
  EXPECT_EQ(bluez->count("Disconnect"), 1u);  // hung up on the attempt at once
  bluez->take("Connect").done(std::nullopt);  // ... which BlueZ completed anyway
  ctx.drain();
  EXPECT_EQ(bluez->count("Disconnect"), 2u);
}

TEST_F(BlePluginTest, ServicesThatNeverResolveTimeOut) {
  ctx.cfg.durations["connect_timeout"] = seconds(4);
  withLocks({kA});
  startPlugin();
  auto a = control(kA);
  bluez->take("Connect").done(std::nullopt);
  ctx.drain();
  bluez->take("GetAll").propsDone(std::nullopt, DeviceProps{});
  ctx.advance(seconds(4));
  ASSERT_TRUE(a->done);
  EXPECT_EQ(a->result.status().code(), ErrorCode::kTimeout);
  EXPECT_NE(a->result.status().message().find("GATT"), std::string::npos);
}

TEST_F(BlePluginTest, BluezErrorsAreMappedWithTheirMessage) {
  withLocks({kA});
  startPlugin();
  auto a = control(kA);
  bluez->take("Connect").done(BluezError{"org.bluez.Error.Failed", "le-connection-abort-by-local"});
  ctx.drain();
  ASSERT_TRUE(a->done);
  EXPECT_EQ(a->result.status().code(), ErrorCode::kOffline);
  EXPECT_NE(a->result.status().message().find("le-connection-abort-by-local"), std::string::npos);

  auto b = control(kA);
  connectAndResolve(kA);
  bluez->take("WriteValue").done(BluezError{"org.bluez.Error.NotPermitted", "Write not permitted"});
  ctx.drain();
  ASSERT_TRUE(b->done);
  EXPECT_EQ(b->result.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(b->result.status().message().find("org.bluez.Error.NotPermitted"), std::string::npos);
}

TEST_F(BlePluginTest, BoundUsersHearEveryAnswerOfTheDeviceAsControlReply) {
  withLocks({kA, kB});
  startPlugin();
  ctx.devs.notified.clear();
  auto ok = control(kA, "lock");
  connectAndResolve(kA);
  bluez->take("WriteValue").done(std::nullopt);
  ctx.drain();
  ASSERT_TRUE(ok->result.isOk());
  ASSERT_EQ(ctx.devs.notified.size(), 1u);
  EXPECT_EQ(ctx.devs.notified[0].deviceId, "ble:" + kA);
  EXPECT_EQ(ctx.devs.notified[0].event, "controlReply");
  EXPECT_EQ(ctx.devs.notified[0].data,
            R"({"deviceId":"ble:AA:00:00:00:00:01","userId":"alice","command":"lock","ok":true,)"
            R"("result":{"command":"lock","deviceId":"ble:AA:00:00:00:00:01","written":"02"}})");

  // The device refused the write: its error goes out too.
  auto refused = control(kA, "unlock");
  bluez->take("WriteValue").done(BluezError{"org.bluez.Error.NotPermitted", "Write not permitted"});
  ctx.drain();
  ASSERT_FALSE(refused->result.isOk());
  ASSERT_EQ(ctx.devs.notified.size(), 2u);
  EXPECT_EQ(ctx.devs.notified[1].data,
            R"({"deviceId":"ble:AA:00:00:00:00:01","userId":"alice","command":"unlock","ok":false,)"
            R"("error":{"code":"UNAVAILABLE","message":"BlueZ org.bluez.Error.NotPermitted: )"
            R"(Write not permitted"}})");

  // No answer is no controlReply: a write that timed out, a connection that failed.
  auto silent = control(kA, "lock");
  bluez->take("WriteValue").done(BluezError{"org.bluez.Error.Timeout", ""});
  ctx.drain();
  EXPECT_EQ(silent->result.status().code(), ErrorCode::kTimeout);
  auto unreachable = control(kB, "lock");
  bluez->take("Connect").done(BluezError{"org.bluez.Error.Failed", "Host is down"});
  ctx.drain();
  EXPECT_EQ(unreachable->result.status().code(), ErrorCode::kOffline);
  EXPECT_EQ(ctx.devs.notified.size(), 2u);
}

TEST_F(BlePluginTest, RefusesWhatCannotWork) {
  withLocks({kA});
  startPlugin();
  auto unknownDevice = control("AA:00:00:00:00:99");
  EXPECT_EQ(unknownDevice->result.status().code(), ErrorCode::kOffline);
  auto unknownCommand = control(kA, "explode");
  EXPECT_EQ(unknownCommand->result.status().code(), ErrorCode::kInvalidRequest);
  EXPECT_EQ(bluez->count("Connect"), 0u);

  ctx.cfg.ints["max_queue"] = 1;  // read at construction: build a second plugin
  plugin->stop();
  plugin.reset();
  startPlugin();
  auto first = control(kA);
  auto second = control(kA);
  EXPECT_FALSE(first->done);
  ASSERT_TRUE(second->done);
  EXPECT_EQ(second->result.status().code(), ErrorCode::kUnavailable);
}

TEST_F(BlePluginTest, NotifyRepliesAndGattObjectsMissingFromTheCache) {
  ctx.cfg.json["products"] = R"([{"model": "acme.lock", "service_uuid": "fff0",
      "control": {"characteristic": "fff1", "reply": "notify", "reply_characteristic": "fff2",
                  "commands": {"unlock": "01"}}}])";
  tree[kAdapter] = adapterObject(true);
  tree[pathOf(kA)] = lockObject(kA, "Lock", true, /*connected=*/true);  // already connected
  startPlugin();
  ObjectTree withGatt = tree;
  addGatt(withGatt, kA);
  bluez->tree = withGatt;
  bluez->holdTree = true;

  auto out = control(kA);
  EXPECT_EQ(bluez->count("Connect"), 0u);
  bluez->take("GetManagedObjects").treeDone(std::nullopt, withGatt);  // the GATT refresh
  ctx.drain();
  auto notify = bluez->take("StartNotify");
  EXPECT_EQ(notify.path, statusPath(kA));
  notify.done(std::nullopt);
  ctx.drain();
  auto write = bluez->take("WriteValue");
  // The notification may beat the write's reply.
  BluezObject value;
  value.characteristic = GattCharacteristicProps{std::nullopt, std::nullopt, Bytes{0xA0, 0x01}};
  bus().onPropertiesChanged(statusPath(kA), kGattCharacteristicInterface, value, {});
  ctx.drain();
  EXPECT_FALSE(out->done);
  write.done(std::nullopt);
  ctx.drain();
  ASSERT_TRUE(out->done);
  ASSERT_TRUE(out->result.isOk()) << out->result.status().toString();
  EXPECT_NE(out->result.value().find(R"("reply":"a001")"), std::string::npos);
  EXPECT_EQ(bluez->count("StopNotify"), 1u);
  EXPECT_EQ(ctx.counters["gatt_notifications"], 1);
}

TEST_F(BlePluginTest, AMissingCharacteristicIsUnavailableAfterOneRefresh) {
  tree[kAdapter] = adapterObject(true);
  tree[pathOf(kA)] = lockObject(kA, "Lock", true, /*connected=*/true);  // no GATT objects
  startPlugin();
  auto out = control(kA);
  ASSERT_TRUE(out->done);
  EXPECT_EQ(out->result.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(out->result.status().message().find(kControlUuid), std::string::npos);
  EXPECT_EQ(bluez->count("GetManagedObjects"), 2u);
}

TEST_F(BlePluginTest, ADisconnectMidCommandIsOffline) {
  withLocks({kA});
  startPlugin();
  auto out = control(kA);
  connectAndResolve(kA);
  auto write = bluez->take("WriteValue");
  DeviceProps gone;
  gone.connected = false;
  bus().onPropertiesChanged(pathOf(kA), kDeviceInterface, only(gone), {});
  ctx.drain();
  ASSERT_TRUE(out->done);
  EXPECT_EQ(out->result.status().code(), ErrorCode::kOffline);
  write.done(std::nullopt);  // a late reply changes nothing
  ctx.drain();
}

TEST_F(BlePluginTest, StopFailsCommandsClosesConnectionsAndStopsDiscovery) {
  withLocks({kA, kB});
  startPlugin();
  auto a = control(kA);
  connectAndResolve(kA);
  bluez->take("WriteValue").done(std::nullopt);
  ctx.drain();
  auto b = control(kB);
  plugin->stop();
  ASSERT_TRUE(b->done);
  EXPECT_EQ(b->result.status().code(), ErrorCode::kUnavailable);
  // A's idle connection, and B's connection attempt.
  EXPECT_EQ(bluez->count("Disconnect"), 2u);
  EXPECT_EQ(bluez->count("StopDiscovery"), 1u);
  EXPECT_EQ(bluez->listener, nullptr);
}

// ---- timers (hearth::Timer handles) -------------------------------------------------------------

TEST_F(BlePluginTest, ARetryArmedAgainReplacesTheEarlierOne) {
  withLocks({kA});
  startPlugin();
  EXPECT_EQ(bluez->count("GetManagedObjects"), 1u);
  bus().onBluezOwnerChanged(false);  // retry at 5 s
  ctx.drain();
  ctx.advance(seconds(2));
  bus().onBluezOwnerChanged(false);  // re-armed: retry at 7 s, the one at 5 s is gone
  ctx.drain();
  ctx.advance(seconds(4));  // 6 s
  EXPECT_EQ(bluez->count("GetManagedObjects"), 1u);
  ctx.advance(seconds(1));  // 7 s
  EXPECT_EQ(bluez->count("GetManagedObjects"), 2u);
  EXPECT_EQ(ctx.state, PluginState::kRunning);
}

TEST_F(BlePluginTest, TimersReArmedFromTheirOwnCallbacksKeepRunning) {
  // The duty cycle and the offline sweep re-arm their member Timer from its own callback, and
  // the retry re-arms itself while the bus stays away.
  ctx.cfg.durations["scan_window"] = seconds(1);
  ctx.cfg.durations["scan_interval"] = seconds(2);
  ctx.cfg.durations["offline_after"] = seconds(4);  // sweep every second
  withLocks({kA});
  startPlugin();
  ctx.advance(seconds(20));
  EXPECT_EQ(bluez->count("StartDiscovery"), 11u);
  EXPECT_EQ(bluez->count("StopDiscovery"), 10u);
  EXPECT_EQ(ctx.devs.onlineChanges.size(), 1u);  // the sweep ran after 4 s of silence
  EXPECT_EQ(ctx.counters["devices_offline"], 1);

  bluez->startStatus = Status::error(ErrorCode::kUnavailable, "no bus");
  bus().onBusDisconnected();
  ctx.drain();
  const int starts = bluez->starts;
  ctx.advance(seconds(25));  // retry_interval 5 s
  EXPECT_EQ(bluez->starts, starts + 5);
  EXPECT_EQ(ctx.detail("reason"), "waiting_for_system_bus");
}

TEST_F(BlePluginTest, StopCancelsEveryTimer) {
  ctx.cfg.durations["scan_window"] = seconds(2);
  ctx.cfg.durations["scan_interval"] = seconds(5);
  withLocks({kA, kB});
  startPlugin();
  auto a = control(kA);
  connectAndResolve(kA);
  bluez->take("WriteValue").done(std::nullopt);
  ctx.drain();           // A's connection is held: its idle timer runs
  auto b = control(kB);  // B's command timer and connect
  plugin->stop();
  ASSERT_TRUE(b->done);
  const size_t calls = bluez->log.size();
  const size_t offline = ctx.devs.onlineChanges.size();
  ctx.advance(std::chrono::hours(1));
  EXPECT_EQ(bluez->log.size(), calls) << bluez->log.back();
  EXPECT_EQ(ctx.devs.onlineChanges.size(), offline);
}

// ---- counters -----------------------------------------------------------------------------------

TEST_F(BlePluginTest, CountsAdvertsCommandsAndReconnects) {
  ctx.cfg.durations["control_timeout"] = seconds(5);
  withLocks({kA, kB});
  startPlugin();
  auto& n = ctx.counters;
  EXPECT_EQ(n["device_reports"], 2);
  EXPECT_EQ(n["adverts_seen"], 0);  // BlueZ's cached tree is not an advertisement
  advertise(kA);
  advertise(kA);
  EXPECT_EQ(n["adverts_seen"], 2);

  auto ok = control(kA);
  connectAndResolve(kA);
  bluez->take("WriteValue").done(std::nullopt);
  ctx.drain();
  ASSERT_TRUE(ok->result.isOk());
  EXPECT_EQ(n["connects"], 1);
  EXPECT_EQ(n["gatt_writes"], 1);
  EXPECT_EQ(n["commands_ok"], 1);

  control(kA, "explode");
  control("AA:00:00:00:00:99");
  auto late = control(kB);
  ctx.advance(seconds(5));
  ASSERT_TRUE(late->done);
  EXPECT_EQ(n["command_errors_invalid_request"], 1);
  EXPECT_EQ(n["command_errors_offline"], 1);
  EXPECT_EQ(n["command_errors_timeout"], 1);
  EXPECT_EQ(n["connects"], 2);

  bus().onBluezOwnerChanged(true);
  ctx.drain();
  EXPECT_EQ(n["bluez_restarts"], 1);
  EXPECT_EQ(n["bus_reconnects"], 0);
  bus().onBusDisconnected();
  ctx.drain();
  ctx.advance(seconds(5));
  EXPECT_EQ(n["bus_disconnects"], 1);
  EXPECT_EQ(n["bus_reconnects"], 1);
  EXPECT_EQ(ctx.state, PluginState::kRunning);
}

TEST_F(BlePluginTest, ReadRepliesAreReadAndCounted) {
  ctx.cfg.json["products"] = R"([{"model": "acme.lock", "service_uuid": "fff0",
      "control": {"characteristic": "fff1", "reply": "read", "reply_characteristic": "fff2",
                  "commands": {"unlock": "01"}}}])";
  withLocks({kA});
  startPlugin();
  auto out = control(kA);
  connectAndResolve(kA);
  bluez->take("WriteValue").done(std::nullopt);
  ctx.drain();
  auto read = bluez->take("ReadValue");
  EXPECT_EQ(read.path, statusPath(kA));
  read.bytesDone(std::nullopt, Bytes{0xA0});
  ctx.drain();
  ASSERT_TRUE(out->done);
  ASSERT_TRUE(out->result.isOk()) << out->result.status().toString();
  EXPECT_NE(out->result.value().find(R"("reply":"a0")"), std::string::npos);
  EXPECT_EQ(ctx.counters["gatt_writes"], 1);
  EXPECT_EQ(ctx.counters["gatt_reads"], 1);
  EXPECT_EQ(ctx.counters["commands_ok"], 1);
}

}  // namespace
}  // namespace hearth::ble
