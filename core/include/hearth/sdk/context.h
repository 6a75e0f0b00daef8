#pragma once
// The C++ SDK: what the core offers a plugin, as C++. Everything reaches the core through the
// one PluginContext a plugin is handed at creation (no globals, no singletons). In hearthd the
// context is hearth/sdk/c_context.h, a header-only layer over the C table of
// hearth/plugin_api.h, so none of these C++ types crosses the module boundary; in unit tests
// it is hearth/sdk/fake_context.h.
//
// Threading contract: the core runs one hub loop thread that owns all core state. Every
// callback the core makes into a plugin (request handlers, timers, event handlers, start/stop)
// runs on the hub loop. Every PluginContext method must be called on the hub loop, except
// post(), logger() and Responder, which are safe from any thread. A plugin with its own I/O
// thread hands work to the hub loop with post().
//
// JSON crosses this boundary as UTF-8 text so that the SDK headers carry no library types;
// plugins parse it with the library of their choice (POCO JSON in the shipped plugins).

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hearth/sdk/events.h"
#include "hearth/sdk/status.h"

namespace hearth {

enum class LogLevel { kDebug = 0, kInfo, kWarn, kError };

// A logger whose lines carry the plugin's name as a tag. Thread-safe.
class Logger {
 public:
  virtual ~Logger() = default;
  virtual void log(LogLevel level, std::string_view message) = 0;
  void debug(std::string_view m) { log(LogLevel::kDebug, m); }
  void info(std::string_view m) { log(LogLevel::kInfo, m); }
  void warn(std::string_view m) { log(LogLevel::kWarn, m); }
  void error(std::string_view m) { log(LogLevel::kError, m); }
};

// Time source. Tests inject a manual clock; production uses the system clock.
class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time in milliseconds since the Unix epoch (for expiry stored on disk).
  virtual int64_t nowMs() const = 0;
  // Monotonic time for timers.
  virtual std::chrono::steady_clock::time_point steadyNow() const = 0;
};

// A request as the router hands it to a handler. userId/clientId come from the topic, which
// the broker's ACL ties to the authenticated account; for admin requests userId is empty and
// isAdmin is true.
struct Request {
  std::string method;
  std::string id;          // the envelope id (1..64 chars)
  std::string userId;      // validated identifier
  std::string clientId;    // validated identifier
  std::string paramsJson;  // always a JSON object ("{}" when params was absent)
  bool isAdmin = false;
};

// Where a response goes. Implemented by the core.
class ResponseSink {
 public:
  virtual ~ResponseSink() = default;
  virtual void sendOk(std::string resultJson) = 0;
  virtual void sendError(ErrorCode code, std::string message) = 0;
};

// A handle to answer one request exactly once. Copyable; the first answer wins and later
// ones are dropped (and logged by the core). If every copy is destroyed without an answer
// the core answers INTERNAL, so a request always gets exactly one response. Thread-safe.
class Responder {
 public:
  explicit Responder(std::shared_ptr<ResponseSink> sink) : sink_(std::move(sink)) {}
  void ok(std::string resultJson = "{}") const { sink_->sendOk(std::move(resultJson)); }
  void error(ErrorCode code, std::string message) const {
    sink_->sendError(code, std::move(message));
  }
  void status(const Status& s, std::string resultJsonIfOk = "{}") const {
    if (s.isOk()) {
      ok(std::move(resultJsonIfOk));
    } else {
      error(s.code(), s.message());
    }
  }

 private:
  std::shared_ptr<ResponseSink> sink_;
};

using RequestHandler = std::function<void(const Request&, Responder)>;

enum class MethodScope {
  kUser,   // hearth/v1/u/<user>/<client>/req/<method>
  kAdmin,  // hearth/v1/admin/req/<method>
};

// The plugin's validated configuration subtree (plugins.<name> in the YAML file). Every key
// the plugin declared is present (the default fills a missing key), so getters never fail for
// declared keys; asking for an undeclared key is a broken invariant and throws
// std::out_of_range inside the plugin.
class ConfigView {
 public:
  virtual ~ConfigView() = default;
  virtual bool getBool(std::string_view key) const = 0;
  virtual int64_t getInt(std::string_view key) const = 0;
  virtual double getDouble(std::string_view key) const = 0;
  // STRING, ENUM (one of the declared choices) and PATH (absolute: a relative path in the file
  // is resolved against the config file's directory, like the core's paths).
  virtual std::string getString(std::string_view key) const = 0;
  virtual std::chrono::milliseconds getDuration(std::string_view key) const = 0;
  // Lists and maps (HEARTH_CFG_JSON keys) as JSON text.
  virtual std::string getJson(std::string_view key) const = 0;
};

// A durable, ordered key/value namespace private to one plugin, stored in the hub database.
// Keys within a collection are ordered bytewise, so zero-padded sequence numbers give FIFO
// order. Every write outside transaction() is its own durable commit; inside transaction()
// the writes commit together when the body returns ok (and roll back otherwise).
class KvStore {
 public:
  virtual ~KvStore() = default;
  virtual Status put(std::string_view collection, std::string_view key, std::string_view value) = 0;
  virtual Result<std::optional<std::string>> get(std::string_view collection,
                                                 std::string_view key) = 0;
  virtual Status erase(std::string_view collection, std::string_view key) = 0;
  // Calls fn(key, value) for keys >= fromKey in order until fn returns false or limit rows
  // have been visited (limit 0 = no limit).
  virtual Status scan(std::string_view collection, std::string_view fromKey, size_t limit,
                      const std::function<bool(const std::string&, const std::string&)>& fn) = 0;
  virtual Result<int64_t> count(std::string_view collection) = 0;
  virtual Status transaction(const std::function<Status()>& body) = 0;
};

// A terminal (one app install) as the core knows it from `hello` and its presence topic.
struct TerminalInfo {
  std::string userId;
  std::string clientId;
  std::string appId;
  std::string deviceModel;
  std::string deviceName;
  std::string openId;
  bool online = false;
};

using TimerId = uint64_t;

// A device as a transport plugin reports it (wifi_lan from LAN announcements, ble from BlueZ).
struct DeviceReport {
  std::string deviceId;   // identifier, unique across transports
  std::string transport;  // "wifi" | "ble" | another inventory-only source such as "ssdp"
  std::string model;      // matched against binding.products globs
  std::string name;
  std::string firmware;
  // Bind window (seed 004 §3.1): 0 = always bindable; > 0 = bindable for this many seconds from
  // this report; < 0 = not bindable now.
  int32_t bindWindowSec = 0;
  // Seen on the network but not a hearth device (e.g. a UPnP TV): listed, never bindable.
  bool inventoryOnly = false;
};

// A device record as the core knows it (Devices::deviceInfo).
struct DeviceInfo {
  std::string deviceId;
  std::string transport;
  std::string model;
  std::string name;
  std::string firmware;
  std::string bindMode;  // preemptive | share_required | share_free | owner_on_share
  std::string ownerId;   // the user whose role is owner; empty when the device has none
  bool online = false;
};

// One access rule of a broker account made by PluginContext::setBrokerAccount: a mosquitto
// Dynamic Security ACL (acltype publishClientSend, publishClientReceive, subscribePattern, ...).
struct BrokerAcl {
  std::string type;
  std::string topic;
  bool allow = true;
};

// The control plane's own broker, as hearthd connects to it.
struct LocalBrokerInfo {
  std::string host;
  int port = 0;
  bool dynsec = false;  // broker.user_management: dynsec (accounts through setBrokerAccount)
};

// Implemented by a transport plugin for the devices it reports. Called on the hub loop.
class DeviceTransport {
 public:
  virtual ~DeviceTransport() = default;
  // Whether the device was seen recently enough for a direct bind (BLE presence check).
  virtual bool present(const std::string& deviceId) const = 0;
  // Sends a command to the device; calls done exactly once, on the hub loop, with the device's
  // result as a JSON object or an error (OFFLINE, TIMEOUT, UNAVAILABLE, ...).
  virtual void control(const std::string& deviceId, const std::string& userId,
                       const std::string& command, const std::string& paramsJson,
                       std::function<void(Result<std::string>)> done) = 0;
};

// The core's device inventory and binding engine as transports see it. The core applies the
// binding policy (SPEC §3); transports only report what they observe.
class Devices {
 public:
  virtual ~Devices() = default;
  // Routes controlDevice for devices of this transport to t (owned by the plugin, which must
  // outlive its registration; stopping the plugin drops it).
  virtual Status registerTransport(const std::string& transport, DeviceTransport* t) = 0;
  // Creates or updates the device record and marks it online. The binding mode is resolved at
  // the first report and then fixed in the record.
  virtual Status report(const DeviceReport& report) = 0;
  // Presence changes; bound users get deviceOnline / deviceOffline.
  virtual void setOnline(const std::string& deviceId, bool online) = 0;
  // WiFi provisioning: the device announced the token it was given. On success the token's
  // user is bound (preemptively in preemptive mode) and returned; on failure nothing is bound
  // and the token's user, if known, gets provisionFailed{deviceId, reason}.
  virtual Result<std::string> presentProvisionToken(const std::string& deviceId,
                                                    const std::string& token) = 0;
  // The device was reset (seed 004 §3.3): every binding and share is cleared.
  virtual Status reportReset(const std::string& deviceId) = 0;
  // Sends an event about a device (state report, control reply) to its bound users' online
  // terminals; returns how many terminals it reached.
  virtual size_t notifyBoundUsers(const std::string& deviceId, const std::string& event,
                                  const std::string& dataJson) = 0;
  virtual std::vector<std::string> boundUsers(const std::string& deviceId) const = 0;

  // -- added for principals that act for an owner (home_assistant) -------------------------
  // The device record as the core knows it, or nullopt for an unknown device.
  virtual std::optional<DeviceInfo> deviceInfo(const std::string& deviceId) const = 0;
  // controlDevice run for `userId` through the same rules as that user's own request (bound,
  // else FORBIDDEN; transport running; device online), recorded in the audit log as `command`
  // by `userId` with reason "via <via>". done is called exactly once, on the hub loop — or never,
  // if the plugin has stopped before the answer came (it is dropped then, like post()).
  virtual void controlAs(const std::string& userId, const std::string& deviceId,
                         const std::string& command, const std::string& paramsJson,
                         const std::string& via, std::function<void(Result<std::string>)> done) = 0;
  // getDeviceDetail answers gain "<key>": fn(deviceId, userId) for every device where fn
  // returns non-empty JSON text. Dropped when the plugin stops.
  virtual Status addDetailProvider(
      const std::string& key,
      std::function<std::string(const std::string& deviceId, const std::string& userId)> fn) = 0;
  // WiFi provisioning lost a race: the device announced this token, but it is bound to someone
  // else who set it up first, and the transport refuses to let the token take it. Tells the
  // token's user provisionFailed{deviceId, reason:"taken", message}; nothing else changes (the
  // token stays unspent). A token that is unknown, used, expired or for another device tells
  // nobody: TOKEN_INVALID / TOKEN_USED / TOKEN_EXPIRED. The transport calls this once per token.
  virtual Status refuseProvisionToken(const std::string& deviceId, const std::string& token) {
    (void)deviceId;
    (void)token;
    return Status::error(ErrorCode::kUnavailable, "not supported by this host");
  }
};

// One counter of one plugin (PluginContext::count), as PluginContext::pluginCounters lists it.
struct PluginCounter {
  std::string plugin;
  std::string name;
  int64_t value = 0;
};

enum class PluginState { kStarting, kRunning, kWaiting, kDegraded, kFailed, kStopped };

inline const char* pluginStateName(PluginState s) {
  switch (s) {
    case PluginState::kStarting:
      return "starting";
    case PluginState::kRunning:
      return "running";
    case PluginState::kWaiting:
      return "waiting";
    case PluginState::kDegraded:
      return "degraded";
    case PluginState::kFailed:
      return "failed";
    case PluginState::kStopped:
      return "stopped";
  }
  return "failed";
}

class PluginContext;

// A timer that is cancelled when the handle goes (PluginContext::after). Movable, not copyable.
// armed() is true from after() until the timer fired or was cancelled, so a callback may test
// or re-arm its own handle (`t_ = ctx.after(...)` inside t_'s callback is safe).
class [[nodiscard]] Timer {
 public:
  Timer() = default;
  Timer(PluginContext* ctx, TimerId id, std::shared_ptr<bool> fired)
      : ctx_(ctx), id_(id), fired_(std::move(fired)) {}
  Timer(Timer&& o) noexcept : ctx_(o.ctx_), id_(o.id_), fired_(std::move(o.fired_)) {
    o.ctx_ = nullptr;
  }
  Timer& operator=(Timer&& o) noexcept {
    if (this != &o) {
      cancel();
      ctx_ = o.ctx_;
      id_ = o.id_;
      fired_ = std::move(o.fired_);
      o.ctx_ = nullptr;
    }
    return *this;
  }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  ~Timer() { cancel(); }
  inline void cancel();
  bool armed() const { return ctx_ != nullptr && !(fired_ && *fired_); }

 private:
  PluginContext* ctx_ = nullptr;
  TimerId id_ = 0;
  std::shared_ptr<bool> fired_;  // set by the callback's wrapper just before it runs
};

class PluginContext {
 public:
  virtual ~PluginContext() = default;

  virtual const std::string& pluginName() const = 0;
  virtual Logger& logger() = 0;
  virtual const Clock& clock() const = 0;
  virtual const ConfigView& config() const = 0;
  virtual KvStore& store() = 0;

  // Requests: registers a method on the control plane. Fails with CONFLICT if the name is
  // taken (core methods and other plugins' methods).
  virtual Status registerMethod(const std::string& method, MethodScope scope,
                                RequestHandler handler) = 0;

  // Events to terminals on hearth/v1/u/<user>/<client>/evt/<event>. An empty clientId sends
  // to every online terminal of the user. Returns the number of terminals it was sent to.
  virtual size_t sendEvent(const std::string& userId, const std::string& clientId,
                           const std::string& event, const std::string& dataJson) = 0;
  // The same, and `confirmed` runs once, on the hub loop and never inside this call, when the
  // broker has acknowledged (PUBACK) every terminal's copy: ok; or UNAVAILABLE when the broker
  // connection went first or a copy could not be handed over (it may or may not have arrived).
  // Not run when the event went to no terminal (returns 0).
  virtual size_t sendEventConfirmed(const std::string& userId, const std::string& clientId,
                                    const std::string& event, const std::string& dataJson,
                                    std::function<void(Status)> confirmed) = 0;

  // Terminals known to the hub (from hello and presence).
  virtual std::optional<TerminalInfo> terminal(const std::string& userId,
                                               const std::string& clientId) const = 0;
  virtual std::optional<TerminalInfo> terminalByOpenId(const std::string& openId) const = 0;
  virtual std::vector<TerminalInfo> terminals(const std::string& userId) const = 0;
  virtual bool userExists(const std::string& userId) const = 0;

  // The in-process event bus (see events.h for the core's topics).
  virtual void subscribe(const std::string& topic, EventHandler handler) = 0;
  virtual void publish(const std::string& topic, const std::string& dataJson) = 0;

  // Timers on the hub loop. A cancelled or fired timer id is never reused.
  virtual TimerId startTimer(std::chrono::milliseconds delay, std::function<void()> fn) = 0;
  virtual void cancelTimer(TimerId id) = 0;
  // The same as a handle: the timer is cancelled when the Timer goes (no TimerId bookkeeping).
  Timer after(std::chrono::milliseconds delay, std::function<void()> fn) {
    auto fired = std::make_shared<bool>(false);
    TimerId id = startTimer(delay, [fired, fn = std::move(fn)] {
      *fired = true;
      fn();
    });
    return Timer(this, id, std::move(fired));
  }

  // The device inventory and binding engine, for transport plugins.
  virtual Devices& devices() = 0;

  // Hands work to the hub loop. Safe from any thread. Work that arrives once the plugin has
  // stopped (stop() returned, or it was marked failed) is dropped, so a closure may capture
  // `this` of the plugin without a liveness guard of its own.
  virtual void post(std::function<void()> fn) = 0;

  // Adds delta to the plugin's counter `name` ([a-z0-9_]+), shown in hub/status under
  // details.<plugin>.counters and on /metrics as hearth_plugin_counter{plugin,name}.
  virtual void count(std::string_view name, int64_t delta = 1) {
    (void)name;
    (void)delta;
  }

  // What hub/status shows for this plugin; detailJson (an object, may be empty) appears
  // under "details".<plugin> in hub/status.
  virtual void setState(PluginState state, const std::string& detailJson = "") = 0;

  // -- added for plugins with broker connections of their own (home_assistant) ------------
  virtual LocalBrokerInfo localBroker() const = 0;
  // dynsec mode: creates broker account `username` with `password`, or sets the password of
  // the existing one, confined by a role "hearth-p-<username>" holding `acls` (added to it).
  // Refused (CONFLICT) for hearth users, the hub's own and admin accounts; UNAVAILABLE in external
  // mode or when the broker does not answer. done runs once, on the hub loop — or never, if the
  // plugin has stopped before the answer came (dropped, like post()).
  virtual void setBrokerAccount(const std::string& username, const std::string& password,
                                const std::vector<BrokerAcl>& acls,
                                std::function<void(Status)> done) = 0;
  // Where the hub keeps its state (hub.state_dir), for a plugin that keeps files of its own (in
  // a subdirectory named after it). The default serves contexts that do not know it (fakes).
  virtual std::string stateDir() const { return {}; }

  // -- added for /metrics (web) -----------------------------------------------------------
  // Every plugin's counters as hub/status shows them (this plugin's own included), in order of
  // plugin, then name: a snapshot taken now, on the hub loop. Empty from a host that does not
  // offer them (an older hearthd) and from contexts that do not know them.
  virtual std::vector<PluginCounter> pluginCounters() const { return {}; }
};

inline void Timer::cancel() {
  if (ctx_ != nullptr && !(fired_ && *fired_)) ctx_->cancelTimer(id_);
  ctx_ = nullptr;
  fired_.reset();
}

// A loaded plugin instance. start() and stop() run on the hub loop. start() returning an
// error marks the plugin failed (shown in hub/status); the rest of the hub keeps running.
// A throw from any call into the plugin (start, stop, handlers, timers, posted work, bus
// handlers, validate) does the same: the plugin is marked failed and stopped, and the log names
// the plugin and the call.
//
// A plugin class may also declare
//   static hearth::Status validate(const hearth::ConfigView& config);
// which `hearthd --check-config` and SIGHUP run on a subtree that passed the declared types,
// before anything is stopped: an error refuses the file (the running plugin keeps its old
// configuration). Parse list/map settings there with the same code start() uses.
class Plugin {
 public:
  virtual ~Plugin() = default;
  virtual Status start() = 0;
  virtual void stop() = 0;
};

}  // namespace hearth
