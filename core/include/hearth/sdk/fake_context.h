#pragma once
// A fake PluginContext and fake host pieces for plugin unit tests (not a test itself: the unit
// test glob in tests/CMakeLists.txt only builds *_test.cc). Everything runs on the test's
// thread: posted work and timers wait until the test calls drain() or advance().
//
//   fakes::FakeContext ctx("ble");
//   ctx.cfg.durations["scan_window"] = std::chrono::seconds(10);  // every key the plugin reads
//   ... start the plugin ...
//   ctx.drain();                             // runs posted work
//   ctx.advance(std::chrono::seconds(5));    // moves the clock, firing due timers in order
//   EXPECT_EQ(ctx.devs.reports.size(), 1u);  // what the plugin told the core

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hearth/host.h"

namespace hearth::fakes {

// Wall and steady time that move only when the test moves them (FakeContext::advance).
class ManualClock : public Clock {
 public:
  int64_t nowMs() const override { return wallMs; }
  std::chrono::steady_clock::time_point steadyNow() const override { return steady; }

  std::chrono::steady_clock::time_point steady{std::chrono::hours(1000)};
  int64_t wallMs = 1'700'000'000'000;
};

class RecordingLogger : public Logger {
 public:
  void log(LogLevel, std::string_view message) override { lines.emplace_back(message); }
  std::vector<std::string> lines;
};

// A plugin's configuration, one map per type. Like the real ConfigView, asking for a key the
// test did not set throws std::out_of_range.
class FakeConfig : public ConfigView {
 public:
  bool getBool(std::string_view key) const override { return at(bools, key); }
  int64_t getInt(std::string_view key) const override { return at(ints, key); }
  double getDouble(std::string_view key) const override { return at(doubles, key); }
  std::string getString(std::string_view key) const override { return at(strings, key); }
  std::chrono::milliseconds getDuration(std::string_view key) const override {
    return at(durations, key);
  }
  std::string getJson(std::string_view key) const override { return at(json, key); }

  std::map<std::string, bool, std::less<>> bools;
  std::map<std::string, int64_t, std::less<>> ints;
  std::map<std::string, double, std::less<>> doubles;
  std::map<std::string, std::string, std::less<>> strings;
  std::map<std::string, std::chrono::milliseconds, std::less<>> durations;
  std::map<std::string, std::string, std::less<>> json;

 private:
  template <typename M>
  static typename M::mapped_type at(const M& m, std::string_view key) {
    auto it = m.find(key);
    if (it == m.end()) throw std::out_of_range("undeclared key " + std::string(key));
    return it->second;
  }
};

// The KvStore contract in memory: ordered keys, transactions that commit together or roll
// back, a switch to make writes fail, and counters of what the plugin did.
class MemoryKvStore : public KvStore {
 public:
  using Data = std::map<std::string, std::map<std::string, std::string>>;

  Status put(std::string_view c, std::string_view k, std::string_view v) override {
    if (Status s = write(c); !s) return s;
    data[std::string(c)][std::string(k)] = std::string(v);
    return Status::ok();
  }
  Result<std::optional<std::string>> get(std::string_view c, std::string_view k) override {
    auto& col = data[std::string(c)];
    auto it = col.find(std::string(k));
    if (it == col.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  Status erase(std::string_view c, std::string_view k) override {
    if (Status s = write(c); !s) return s;
    data[std::string(c)].erase(std::string(k));
    return Status::ok();
  }
  Status scan(std::string_view c, std::string_view from, size_t limit,
              const std::function<bool(const std::string&, const std::string&)>& fn) override {
    ++scans;
    auto& col = data[std::string(c)];
    size_t n = 0;
    for (auto it = col.lower_bound(std::string(from)); it != col.end(); ++it) {
      if (limit != 0 && n++ >= limit) break;
      if (!fn(it->first, it->second)) break;
    }
    return Status::ok();
  }
  Result<int64_t> count(std::string_view c) override {
    return static_cast<int64_t>(data[std::string(c)].size());
  }
  Status transaction(const std::function<Status()>& body) override {
    Data snapshot = data;
    ++transactions;
    Status s = body();
    if (!s) data = std::move(snapshot);
    return s;
  }

  // How many keys collection c holds (0 for one never written).
  size_t size(const std::string& c) const {
    auto it = data.find(c);
    return it == data.end() ? 0 : it->second.size();
  }

  Data data;
  int failWritesAfter = -1;  // -1 = never; n = the n+1-th write fails
  int writes = 0;
  std::map<std::string, int, std::less<>> writesTo;  // `writes` by collection
  int transactions = 0;
  int scans = 0;

 private:
  Status write(std::string_view c) {
    if (failWritesAfter == 0) return Status::error(ErrorCode::kInternal, "disk full");
    if (failWritesAfter > 0) --failWritesAfter;
    ++writes;
    ++writesTo[std::string(c)];
    return Status::ok();
  }
};

// The core's Devices as a transport sees it, recording every call. Provisioning tokens the
// test registers in `tokens` bind their user; bound users are reached by notifyBoundUsers.
class FakeDevices : public Devices {
 public:
  Status registerTransport(const std::string& transport, DeviceTransport* t) override {
    transports[transport] = t;
    return Status::ok();
  }
  Status report(const DeviceReport& r) override {
    reports.push_back(r);
    online[r.deviceId] = true;
    return Status::ok();
  }
  void setOnline(const std::string& deviceId, bool on) override {
    online[deviceId] = on;
    onlineChanges.emplace_back(deviceId, on);
  }
  Result<std::string> presentProvisionToken(const std::string& deviceId,
                                            const std::string& token) override {
    presented.emplace_back(deviceId, token);
    auto it = tokens.find(token);
    if (it == tokens.end()) return Status::error(ErrorCode::kTokenInvalid, "unknown token");
    if (!it->second.isOk()) return it->second.status();
    bound[deviceId] = {it->second.value()};
    return it->second.value();
  }
  Status reportReset(const std::string& deviceId) override {
    resets.push_back(deviceId);
    bound.erase(deviceId);
    return Status::ok();
  }
  size_t notifyBoundUsers(const std::string& deviceId, const std::string& event,
                          const std::string& data) override {
    notified.push_back({deviceId, event, data});
    auto it = bound.find(deviceId);
    return it == bound.end() ? 0 : it->second.size();
  }
  std::vector<std::string> boundUsers(const std::string& deviceId) const override {
    auto it = bound.find(deviceId);
    return it == bound.end() ? std::vector<std::string>{} : it->second;
  }
  Status refuseProvisionToken(const std::string& deviceId, const std::string& token) override {
    refused.emplace_back(deviceId, token);
    return tokens.count(token) ? Status::ok()
                               : Status::error(ErrorCode::kTokenInvalid, "unknown token");
  }

  std::optional<DeviceInfo> deviceInfo(const std::string& deviceId) const override {
    auto it = infos.find(deviceId);
    if (it == infos.end()) return std::nullopt;
    return it->second;
  }
  // Records the command and answers with controlResult (ok "{}" unless the test sets one).
  void controlAs(const std::string& userId, const std::string& deviceId, const std::string& command,
                 const std::string& paramsJson, const std::string& via,
                 std::function<void(Result<std::string>)> done) override {
    controlled.push_back({userId, deviceId, command, paramsJson, via});
    done(controlResult);
  }
  Status addDetailProvider(
      const std::string& key,
      std::function<std::string(const std::string&, const std::string&)> fn) override {
    details[key] = std::move(fn);
    return Status::ok();
  }

  size_t reportsOf(const std::string& deviceId) const {
    return std::count_if(reports.begin(), reports.end(),
                         [&](const DeviceReport& r) { return r.deviceId == deviceId; });
  }

  struct Note {
    std::string deviceId, event, data;
  };
  std::map<std::string, DeviceTransport*> transports;
  std::vector<DeviceReport> reports;
  std::map<std::string, bool> online;
  std::vector<std::pair<std::string, bool>> onlineChanges;
  std::map<std::string, Result<std::string>> tokens;           // token -> user or error
  std::vector<std::pair<std::string, std::string>> presented;  // (deviceId, token)
  std::map<std::string, std::vector<std::string>> bound;       // deviceId -> users
  std::vector<std::string> resets;
  std::vector<Note> notified;
  struct Control {
    std::string userId, deviceId, command, params, via;
  };
  std::map<std::string, DeviceInfo> infos;  // what deviceInfo answers
  std::vector<Control> controlled;
  Result<std::string> controlResult = std::string("{}");
  std::map<std::string, std::function<std::string(const std::string&, const std::string&)>> details;
  std::vector<std::pair<std::string, std::string>> refused;  // refuseProvisionToken (id, token)
};

// A PluginContext whose parts are the fakes above, public for the test to set up and inspect.
// The control plane, terminals and the event bus are inert: no method is called, no terminal
// or user exists (unless added to `users`), events go nowhere.
class FakeContext : public PluginContext {
 public:
  explicit FakeContext(std::string pluginName) : name_(std::move(pluginName)) {}

  const std::string& pluginName() const override { return name_; }
  Logger& logger() override { return log; }
  const Clock& clock() const override { return clk; }
  const ConfigView& config() const override { return cfg; }
  KvStore& store() override { return kv; }
  Status registerMethod(const std::string&, MethodScope, RequestHandler) override {
    return Status::ok();
  }
  size_t sendEvent(const std::string&, const std::string&, const std::string&,
                   const std::string&) override {
    return 0;
  }
  // Sent as by sendEvent (a subclass's own). The broker's acknowledgement (ok) comes as posted
  // work (drain()), or, with holdConfirmations set, waits in `heldConfirmations` until the test
  // gives it with confirmHeld().
  size_t sendEventConfirmed(const std::string& userId, const std::string& clientId,
                            const std::string& event, const std::string& dataJson,
                            std::function<void(Status)> confirmed) override {
    const size_t n = sendEvent(userId, clientId, event, dataJson);
    if (n == 0) return 0;
    if (holdConfirmations) {
      heldConfirmations.push_back(std::move(confirmed));
    } else {
      post([confirmed = std::move(confirmed)] { confirmed(Status::ok()); });
    }
    return n;
  }
  // Gives every held confirmation its answer, in send order.
  void confirmHeld(const Status& s) {
    auto held = std::move(heldConfirmations);
    heldConfirmations.clear();
    for (auto& fn : held) post([fn = std::move(fn), s] { fn(s); });
    drain();
  }
  std::optional<TerminalInfo> terminal(const std::string&, const std::string&) const override {
    return std::nullopt;
  }
  std::optional<TerminalInfo> terminalByOpenId(const std::string&) const override {
    return std::nullopt;
  }
  std::vector<TerminalInfo> terminals(const std::string&) const override { return {}; }
  bool userExists(const std::string& userId) const override { return users.count(userId) > 0; }
  void subscribe(const std::string& topic, EventHandler h) override {
    busHandlers.emplace(topic, std::move(h));
  }
  void publish(const std::string&, const std::string&) override {}
  TimerId startTimer(std::chrono::milliseconds delay, std::function<void()> fn) override {
    TimerId id = nextTimer_++;
    timers_[id] = {clk.steady + delay, std::move(fn)};
    return id;
  }
  void cancelTimer(TimerId id) override { timers_.erase(id); }
  Devices& devices() override { return devs; }
  void post(std::function<void()> fn) override {
    if (!stopped_) posted_.push_back(std::move(fn));
  }
  void count(std::string_view name, int64_t delta) override { counters[std::string(name)] += delta; }
  // The host's list: this plugin's `counters` merged with `otherCounters` (other plugins'),
  // in order of plugin, then name.
  std::vector<PluginCounter> pluginCounters() const override {
    std::map<std::pair<std::string, std::string>, int64_t> all;
    for (const auto& c : otherCounters) all[{c.plugin, c.name}] = c.value;
    for (const auto& [n, v] : counters) all[{name_, n}] = v;
    std::vector<PluginCounter> out;
    for (const auto& [key, v] : all) out.push_back(PluginCounter{key.first, key.second, v});
    return out;
  }
  void setState(PluginState s, const std::string& detailJson) override {
    state = s;
    details = detailJson;
  }
  LocalBrokerInfo localBroker() const override { return broker; }
  std::string stateDir() const override { return stateDirectory; }
  void setBrokerAccount(const std::string& username, const std::string& password,
                        const std::vector<BrokerAcl>& acls,
                        std::function<void(Status)> done) override {
    accounts[username] = {password, acls};
    done(broker.dynsec ? Status::ok()
                       : Status::error(ErrorCode::kUnavailable, "external user management"));
  }

  // Runs posted work (including work posted while running) until none is left.
  void drain() {
    while (!posted_.empty()) {
      auto fn = std::move(posted_.front());
      posted_.pop_front();
      fn();
    }
  }
  // Moves both clocks forward by d, firing due timers in order (by due time, then by start
  // order) and draining posted work before and after each.
  void advance(std::chrono::milliseconds d) {
    using std::chrono::duration_cast;
    using std::chrono::milliseconds;
    const auto target = clk.steady + d;
    drain();
    while (true) {
      auto next = std::min_element(timers_.begin(), timers_.end(), [](auto& a, auto& b) {
        return a.second.due < b.second.due || (a.second.due == b.second.due && a.first < b.first);
      });
      if (next == timers_.end() || next->second.due > target) break;
      clk.wallMs += duration_cast<milliseconds>(next->second.due - clk.steady).count();
      clk.steady = std::max(clk.steady, next->second.due);
      auto fn = std::move(next->second.fn);
      timers_.erase(next);
      fn();
      drain();
    }
    clk.wallMs += duration_cast<milliseconds>(target - clk.steady).count();
    clk.steady = target;
  }
  // What the host does once the plugin's stop() has returned (or it was marked failed): work
  // posted before or after is dropped and pending timers are forgotten. Call it after stop().
  void markStopped() {
    stopped_ = true;
    posted_.clear();
    timers_.clear();
  }
  // Forgets every pending timer (as if the hub had dropped them with the plugin).
  void clearTimers() { timers_.clear(); }
  // Timers started and neither fired nor cancelled yet.
  size_t pendingTimers() const { return timers_.size(); }

  // One string field of the last setState detail JSON ("" if absent).
  std::string detail(const std::string& key) const {
    if (details.empty()) return "";
    auto o = Poco::JSON::Parser().parse(details).extract<Poco::JSON::Object::Ptr>();
    return o->optValue<std::string>(key, "");
  }

  RecordingLogger log;
  ManualClock clk;
  FakeConfig cfg;
  MemoryKvStore kv;
  FakeDevices devs;
  std::set<std::string> users;
  PluginState state = PluginState::kStarting;
  std::string details;  // the last setState detail JSON
  LocalBrokerInfo broker{"127.0.0.1", 1883, true};
  std::string stateDirectory;  // what stateDir() answers ("" = the hub did not say)
  struct Account {
    std::string password;
    std::vector<BrokerAcl> acls;
  };
  std::map<std::string, Account> accounts;               // setBrokerAccount calls
  std::multimap<std::string, EventHandler> busHandlers;  // subscribe() records, emit() calls
  std::map<std::string, int64_t> counters;               // count() adds here
  std::vector<PluginCounter> otherCounters;  // other plugins' counters, for pluginCounters()
  // sendEventConfirmed: hold the broker's acknowledgements for the test (confirmHeld).
  bool holdConfirmations = false;
  std::vector<std::function<void(Status)>> heldConfirmations;
  void emit(const std::string& topic, const std::string& data) {
    auto range = busHandlers.equal_range(topic);
    for (auto it = range.first; it != range.second; ++it) it->second(topic, data);
  }

 private:
  struct Timer {
    std::chrono::steady_clock::time_point due;
    std::function<void()> fn;
  };
  std::string name_;
  std::map<TimerId, Timer> timers_;
  TimerId nextTimer_ = 1;
  std::deque<std::function<void()>> posted_;
  bool stopped_ = false;
};

}  // namespace hearth::fakes
