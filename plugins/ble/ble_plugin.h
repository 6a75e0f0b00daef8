#pragma once
// ble: BLE devices through BlueZ (SPEC §3, §5; issue 6).
//
// The plugin mirrors the part of BlueZ's object tree it needs (adapters, devices, GATT services
// and characteristics), keeps it current from InterfacesAdded/Removed and PropertiesChanged,
// and re-reads it whenever bluetoothd comes back (NameOwnerChanged) or the adapter is powered
// on again. Devices whose advertisements match a product rule are reported to the core with
// model, name and bind window; the core owns binding (share_required by default for BLE) and
// asks this plugin whether a device is present (DeviceTransport::present) and to run commands
// (DeviceTransport::control).
//
// Commands are queued and run with: one Connect at a time (connects are serialised, including
// the wait for ServicesResolved), at most max_connections connections opened by the plugin
// (idle ones are closed least recently used first, or after connection_idle), one command per
// device at a time, and a control_timeout over the whole command.
//
// Threading: everything here runs on the hub loop. BlueZ is reached through BluezClient, whose
// replies and signals arrive on the hub loop too (see bluez_client.h); no locks.
//
// One class, its member functions in one file per seam: ble_plugin.cc (lifecycle), ble_mirror.cc
// (link and BlueZ mirror), ble_discovery.cc (duty cycle), ble_reporting.cc (devices to the
// core), ble_gatt_jobs.cc (commands); ble_shared.h holds what they share.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ble_advert.h"
#include "bluez_client.h"
#include "hearth/host.h"
#include "hearth/plugin.h"

namespace hearth::ble {

class BlePlugin : public Plugin, public DeviceTransport, private BluezClient::Listener {
 public:
  // The production plugin: BlueZ on the system bus through sdbus-c++.
  explicit BlePlugin(PluginContext& ctx);
  // With another BlueZ client (tests).
  BlePlugin(PluginContext& ctx, std::unique_ptr<BluezClient> client);
  ~BlePlugin() override;

  // Parses the product rules (a bad rule fails the start with its index and key), registers the
  // "ble" transport and starts talking to BlueZ. Not finding the bus, bluetoothd or an adapter
  // is not a failure: the plugin reports "waiting" with the reason and recovers by itself.
  Status start() override;
  static Status validate(const ConfigView& c);
  // Fails queued commands with UNAVAILABLE, closes the connections it opened, stops discovery
  // and joins the bus thread.
  void stop() override;

  // DeviceTransport.
  bool present(const std::string& deviceId) const override;
  void control(const std::string& deviceId, const std::string& userId, const std::string& command,
               const std::string& paramsJson,
               std::function<void(Result<std::string>)> done) override;

  static const hearth_config_key* configKeys();
  static size_t configKeyCount();

 private:
  static Result<std::vector<ProductRule>> readRules(const ConfigView& c);
  using TimePoint = std::chrono::steady_clock::time_point;
  using Ms = std::chrono::milliseconds;

  // How far the plugin got towards a usable adapter (what hub/status shows).
  enum class Link { kNoBus, kNoBluez, kNoAdapter, kPoweredOff, kReady };

  // A device some product rule matched, by device id. Survives BlueZ restarts (paths do not).
  struct Known {
    std::string path;  // current Device1 object path; empty while BlueZ has none
    const ProductRule* rule = nullptr;
    std::optional<TimePoint> lastSeen;  // last advertisement or connection
    bool online = false;                // as last told to the core
    bool reported = false;              // reported since the tree was last (re)read
    std::string reportedName;
    std::string reportedModel;
    int32_t reportedWindow = 0;
    TimePoint reportedWindowEnd{};
  };

  struct GattService {
    std::string uuid;
    std::string device;  // path
  };
  struct GattCharacteristic {
    std::string uuid;
    std::string service;  // path
  };

  struct Job {
    enum class Phase { kQueued, kConnecting, kResolving, kWriting, kReplying };
    uint64_t id = 0;
    std::string deviceId;
    std::string command;
    std::string userId;  // who sent it, for controlReply
    const ProductRule* rule = nullptr;
    Bytes payload;
    std::function<void(Result<std::string>)> done;
    Timer timer;  // control_timeout over the whole command
    Phase phase = Phase::kQueued;
    std::string path;       // device object
    std::string charPath;   // written characteristic
    std::string replyPath;  // read/notify characteristic
    bool refreshedGatt = false;
    bool notifying = false;
    bool written = false;
    std::optional<Bytes> notified;  // a notification that beat the write reply
  };

  // A connection this plugin opened (and so must close), by device id.
  struct Held {
    std::string path;
    TimePoint lastUsed{};
    Timer idleTimer;  // connection_idle after its last command
  };

  // BluezClient::Listener.
  void onBluezOwnerChanged(bool present) override;
  void onBusDisconnected() override;
  void onInterfacesAdded(const std::string& path, const BluezObject& object) override;
  void onInterfacesRemoved(const std::string& path,
                           const std::vector<std::string>& interfaces) override;
  void onPropertiesChanged(const std::string& path, const std::string& interface,
                           const BluezObject& changed,
                           const std::vector<std::string>& invalidated) override;

  // --- link: bus, bluetoothd, adapter ---
  void connectBus();
  void resync();
  void applyTree(const ObjectTree& tree);
  void chooseAdapter();
  // Forgets everything tied to the current BlueZ session (objects, connections, commands).
  void dropSession(const std::string& why);
  // Ends discovery, the plugin's connections and every command (UNAVAILABLE: why).
  void resetConnections(const std::string& why);
  void setLink(Link link);
  void armRetry(std::function<void()> fn);

  // --- discovery duty cycle ---
  void startScanning();
  void stopScanning(bool tellBluez);
  void scanOn(uint64_t gen);
  void scanOff(uint64_t gen);

  // --- devices ---
  void storeObject(const std::string& path, const BluezObject& object);
  void observeDevice(const std::string& path, bool seenNow);
  void sweepOffline();
  void armSweep();
  Status loadResetCounters();
  void checkResetCounter(const std::string& deviceId, uint8_t counter);
  std::string deviceIdAt(const std::string& path) const;

  // --- control ---
  void pump();
  void pumpOnce();
  bool deviceBusy(const std::string& deviceId) const;
  bool makeRoomForConnection();
  void startConnect(Job& job);
  void afterConnect(uint64_t id);
  void servicesReady(uint64_t id);
  void beginWrite(uint64_t id);
  void writeNow(uint64_t id);
  void onDeviceDisconnected(const std::string& deviceId);
  void onNotification(const std::string& path, const Bytes& value);
  // fromDevice: the result is the device's own answer (sent to bound users as controlReply).
  static constexpr bool kFromDevice = true;
  void finishJob(uint64_t id, Result<std::string> result, bool fromDevice = false);
  void notifyControlReply(const Job& job, const Result<std::string>& result);
  // Counts a controlDevice answer: commands_ok, or command_errors_<code> (timeout, offline, ...).
  void countResult(const Result<std::string>& result);
  void failAllJobs(ErrorCode code, const std::string& why);
  void releaseHeld(const std::string& deviceId);
  void closeHeld(const std::string& deviceId);
  std::string findCharacteristic(const std::string& devicePath, const std::string& serviceUuid,
                                 const std::string& uuid) const;
  std::string resultJson(const Job& job, const std::optional<Bytes>& reply) const;

  TimePoint now() const { return ctx_.clock().steadyNow(); }

  PluginContext& ctx_;
  std::unique_ptr<BluezClient> client_;
  bool started_ = false;

  // Config.
  std::string adapterName_;  // "auto" or hci0, hci1, ...
  std::vector<ProductRule> rules_;
  std::optional<std::vector<std::string>> filterUuids_;
  Ms scanWindow_, scanInterval_, presentWithin_, offlineAfter_, connectTimeout_, controlTimeout_,
      connectionIdle_, retryInterval_;
  size_t maxConnections_, maxQueue_;

  // Link.
  Link link_ = Link::kNoBus;
  bool linkReported_ = false;
  bool busUp_ = false;
  bool busConnectedBefore_ = false;  // a later successful start() counts as a bus reconnect
  uint64_t treeGen_ = 0;  // bumped by every resync/drop; stale tree replies are ignored
  // The next attempt at the bus or BlueZ while waiting for them.
  Timer retryTimer_;
  std::string adapterPath_;

  // Mirror of BlueZ's objects (current session only).
  std::map<std::string, AdapterProps> adapters_;
  std::map<std::string, DeviceProps> devices_;
  std::map<std::string, GattService> services_;
  std::map<std::string, GattCharacteristic> characteristics_;

  // Discovery.
  bool scanning_ = false;
  uint64_t scanGen_ = 0;
  // The next switch of the duty cycle (or a StartDiscovery retry).
  Timer scanTimer_;

  // Devices.
  std::map<std::string, Known> known_;
  std::map<std::string, uint8_t> resetCounters_;  // by device id, persisted
  // The offline sweep, re-armed by itself.
  Timer sweepTimer_;

  // Control.
  std::map<uint64_t, Job> jobs_;  // by id = arrival order
  uint64_t nextJobId_ = 1;
  bool connectPending_ = false;  // a Device1.Connect call is in flight
  uint64_t connectToken_ = 0;    // identifies that call; bumped when a session is dropped
  uint64_t resolvingJob_ = 0;    // the job whose fresh connection waits for ServicesResolved
  // connect_timeout for ServicesResolved of resolvingJob_.
  Timer resolveTimer_;
  std::map<std::string, Held> held_;
  bool pumping_ = false;
  bool pumpAgain_ = false;
};

}  // namespace hearth::ble
