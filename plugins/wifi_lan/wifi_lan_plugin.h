#pragma once
// wifi_lan: finds WiFi devices on the LAN (hearth LAN protocol, docs/lan-protocol.md, plus SSDP
// for the inventory), turns provisioning announcements into core provisioning calls (the core
// applies the preemptive binding policy, SPEC §3), tracks presence, and relays controlDevice to
// the device over a channel authenticated with the per-device key set at provisioning.
//
// Threading: one I/O thread (lan_io.h) reads the sockets, decodes datagrams and hands them to
// the hub loop with post(); everything else — device table, keys, pending commands, counters
// other than the I/O thread's atomic drop counts — lives on the hub loop, so there are no locks.
// Closures posted by the I/O thread capture `this`: the host drops posted work once the plugin
// has stopped, and stop() joins the I/O thread before anything it uses goes.
//
// One class, its member functions in one file per seam: wifi_lan_plugin.cc (lifecycle, I/O
// hand-over, dispatch, status), wifi_lan_keys.cc (keys), wifi_lan_devices.cc (devices),
// wifi_lan_control.cc (control), wifi_lan_ssdp.cc (SSDP); wifi_lan_shared.h holds what they share.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "hearth/sdk/context.h"
#include "hearth/sdk/plugin.h"
#include "lan_io.h"
#include "lan_protocol.h"
#include "ssdp.h"

namespace hearth::wifi_lan {

inline constexpr const char* kTransport = "wifi";
inline constexpr const char* kSsdpTransport = "ssdp";
inline constexpr const char* kKeyCollection = "keys";

struct Settings {
  LanIoConfig io;
  std::chrono::milliseconds offlineAfter{90000};
  std::chrono::milliseconds controlTimeout{2000};
  int controlRetries = 2;
  size_t maxDevices = 20000;
  size_t maxPendingControls = 1024;
  size_t maxBacklog = 20000;  // decoded datagrams waiting for the hub loop
};

class WifiLanPlugin : public Plugin, public DeviceTransport {
 public:
  // Production: real sockets.
  explicit WifiLanPlugin(PluginContext& ctx);
  // Tests: any LanIo.
  WifiLanPlugin(PluginContext& ctx, std::unique_ptr<LanIo> io);
  ~WifiLanPlugin() override;

  // What the declared types cannot check: the interfaces list and the multicast group. Run by
  // `hearthd --check-config` and before a SIGHUP stops anything; start() runs the same checks.
  static Status validate(const ConfigView& config);
  // Reads the settings and the stored device keys, registers the "wifi" transport, opens the
  // sockets and starts the presence and status timers.
  Status start() override;
  // Answers pending commands with UNAVAILABLE, joins the I/O thread, stores counters.
  void stop() override;

  // DeviceTransport (hub loop).
  bool present(const std::string& deviceId) const override;
  void control(const std::string& deviceId, const std::string& userId, const std::string& command,
               const std::string& paramsJson,
               std::function<void(Result<std::string>)> done) override;

  // Hub loop: one datagram as received (the I/O thread decodes before posting; tests call this).
  void handleDatagram(std::string_view datagram, const std::string& host, uint16_t port);
  void handleMessage(const lan::Message& m, const std::string& host, uint16_t port);
  void handleSsdp(std::string_view datagram, const std::string& host);
  // Hub loop: marks devices silent past offline_after as offline (run every probe_period).
  void checkPresence();

  // The status details object (counters, device counts) as JSON.
  std::string detailsJson() const;
  uint64_t dropped(lan::DropReason reason) const;

  static const hearth_config_key* configKeys();
  static size_t configKeyCount();

 private:
  using SteadyTime = std::chrono::steady_clock::time_point;

  struct LanDevice {
    std::string model;
    std::string name;
    std::string firmware;
    int32_t bindWindow = 0;
    std::string host;   // where control requests go: source of its last accepted message
    uint16_t port = 0;  // its control port (announce)
    SteadyTime lastSeen{};
    SteadyTime lastReport{};
    int32_t reportedWindow = 0;
    int64_t reportedWindowEndMs = 0;
    bool reported = false;  // reported to the core since start
    bool online = false;
    // Security state (persisted in the KvStore, collection "keys").
    std::string key;           // raw 32 bytes; empty = not provisioned through this hub
    std::string keyTokenHash;  // SHA-256 of the token the key came from
    uint64_t counterHighWater = 0;
    bool counterDirty = false;
    std::string refusedTokenHash;  // a token the core refused: not presented again
    std::string takenTokenHash;    // lost a setup race; its user was told (provisionFailed)
  };

  struct SsdpDevice {
    std::string kind;
    std::string server;
    SteadyTime lastSeen{};
    SteadyTime lastReport{};
    std::chrono::seconds maxAge{1800};
    bool online = false;
  };

  struct PendingControl {
    std::string deviceId;
    std::string userId;
    std::string command;
    uint64_t counter = 0;
    std::string datagram;
    std::string host;
    uint16_t port = 0;
    int attemptsLeft = 0;
    Timer timer;  // the current attempt's timeout
    std::function<void(Result<std::string>)> done;
  };

  static Status readSettings(const ConfigView& c, Settings* out);
  Status loadKeys();
  void saveKey(const std::string& deviceId, const LanDevice& d);
  void eraseKey(const std::string& deviceId);
  void flushCounters();

  // I/O thread → hub loop.
  void onLanDatagram(std::string datagram, std::string host, uint16_t port);
  void onSsdpDatagram(std::string datagram, std::string host);

  void handleAnnounce(const lan::Message& m, const std::string& host);
  void handleProvisioning(const lan::Message& m, const std::string& host, LanDevice* existing);
  void handleReply(const lan::Message& m);
  void handleState(const lan::Message& m, const std::string& host);
  void handleReset(const lan::Message& m);

  // Verifies a message that needs the device key and advances its counter. Counts the drop
  // and returns nullptr when it fails.
  LanDevice* authenticate(const lan::Message& m);
  // Advances the counter high-water mark; counts and returns false for replays/duplicates.
  bool acceptCounter(LanDevice& d, uint64_t counter);
  // Updates metadata and presence from an accepted announcement; reports to the core when the
  // record changed, the device came back, or the last report is a probe_period old.
  void refresh(const std::string& deviceId, LanDevice& d, const lan::Message& m,
               const std::string& host);
  void markSeen(const std::string& deviceId, LanDevice& d, const std::string& host);
  // Token bucket for first reports of devices (see kNewDevicesPerSecond).
  bool admitNewDevice(SteadyTime now);

  void sendProvisioned(const std::string& deviceId, const LanDevice& d);
  // Runs fn every period while the plugin runs (slot holds the next firing).
  void repeat(Timer& slot, std::chrono::milliseconds period, void (WifiLanPlugin::*fn)());
  void sendAttempt(const std::string& req);
  void onControlTimeout(const std::string& req);
  void finishControl(const std::string& req, Result<std::string> result);
  uint64_t nextHubCounter();
  std::string newRequestId();

  // Any thread: one dropped datagram (shown in details.dropped; reportCounts() passes it on).
  void count(lan::DropReason reason);
  // Hub loop: one event of a plain counter (its details key) and of the plugin counter `name`.
  void count(uint64_t& counter, std::string_view name);
  // Hub loop: hands what the atomic counts gained since the last call to ctx_.count().
  void reportCounts();
  void publishStatus();

  PluginContext& ctx_;
  std::unique_ptr<LanIo> io_;
  Settings settings_;
  bool running_ = false;

  std::map<std::string, LanDevice> devices_;
  std::map<std::string, SsdpDevice> ssdp_;
  std::map<std::string, PendingControl> pending_;  // by request id
  uint64_t hubCounter_ = 0;
  std::vector<std::string> interfaces_;

  double newDeviceTokens_ = 200;
  SteadyTime newDeviceRefill_{};

  Timer presenceTimer_;
  Timer statusTimer_;
  std::string lastDetails_;
  PluginState lastState_ = PluginState::kStarting;

  // Drop counts: the I/O thread (decode failures) and the hub loop (the rest) both add, so they
  // are atomics; nothing else is shared. ctx_.count() is for the hub loop only, so these reach
  // the plugin counters by reportCounts() (with every status check and at stop), the hub-loop
  // counters below directly.
  static constexpr size_t kDropReasons = static_cast<size_t>(lan::DropReason::kCount);
  std::array<std::atomic<uint64_t>, kDropReasons> dropped_{};
  std::atomic<uint64_t> received_{0};
  std::atomic<uint64_t> backlog_{0};
  std::array<uint64_t, kDropReasons> droppedReported_{};
  uint64_t receivedReported_ = 0;
  uint64_t ssdpInvalid_ = 0;
  uint64_t provisionAccepted_ = 0;
  uint64_t provisionRefused_ = 0;
  uint64_t controlSent_ = 0;
  uint64_t controlRetries_ = 0;
  uint64_t controlTimeouts_ = 0;
  uint64_t controlReplies_ = 0;
  uint64_t stateReports_ = 0;
  uint64_t resets_ = 0;
  uint64_t reportErrors_ = 0;
  uint64_t deferredReports_ = 0;  // first reports postponed by the new-device rate limit
};

}  // namespace hearth::wifi_lan
