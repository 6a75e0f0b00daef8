#pragma once
// BluezClient: the seam between the ble plugin and BlueZ. The plugin's logic talks to this
// interface only; SdbusBluezClient (sdbus_bluez_client.h) implements it over the system bus,
// and the unit tests drive the plugin with a fake.
//
// Threading contract: every method is called on the hub loop, and every callback (method
// replies and the Listener's signals) runs on the hub loop too — the implementation hands them
// over with PluginContext::post(). After stop() returns, no callback of this client runs.
// Every method call gets exactly one reply callback unless the client is stopped first.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ble_advert.h"
#include "hearth/status.h"

namespace hearth::ble {

inline constexpr const char* kBluezService = "org.bluez";
inline constexpr const char* kAdapterInterface = "org.bluez.Adapter1";
inline constexpr const char* kDeviceInterface = "org.bluez.Device1";
inline constexpr const char* kGattServiceInterface = "org.bluez.GattService1";
inline constexpr const char* kGattCharacteristicInterface = "org.bluez.GattCharacteristic1";

// A D-Bus error reply: its name (org.bluez.Error.*, org.freedesktop.DBus.Error.*) and text.
struct BluezError {
  std::string name;
  std::string message;
};
using MaybeError = std::optional<BluezError>;

// Properties of the org.bluez interfaces the plugin uses. In a PropertiesChanged update only
// the changed ones are set.
struct AdapterProps {
  std::optional<bool> powered;
  std::optional<bool> discovering;
};

struct DeviceProps {
  std::optional<std::string> address;
  std::optional<std::string> name;
  std::optional<std::string> alias;
  std::optional<std::string> adapter;  // object path
  std::optional<int16_t> rssi;
  std::optional<int16_t> txPower;
  std::optional<std::vector<std::string>> uuids;
  std::optional<std::map<uint16_t, Bytes>> manufacturerData;
  std::optional<std::map<std::string, Bytes>> serviceData;
  std::optional<bool> connected;
  std::optional<bool> servicesResolved;
};

struct GattServiceProps {
  std::optional<std::string> uuid;
  std::optional<std::string> device;  // object path
};

struct GattCharacteristicProps {
  std::optional<std::string> uuid;
  std::optional<std::string> service;  // object path
  std::optional<Bytes> value;
};

// The interfaces of one BlueZ object that the plugin cares about.
struct BluezObject {
  std::optional<AdapterProps> adapter;
  std::optional<DeviceProps> device;
  std::optional<GattServiceProps> service;
  std::optional<GattCharacteristicProps> characteristic;
};
using ObjectTree = std::map<std::string, BluezObject>;  // by object path

class BluezClient {
 public:
  // Signals, delivered on the hub loop in the order the bus delivered them.
  class Listener {
   public:
    virtual ~Listener() = default;
    // org.bluez got an owner (bluetoothd started) or lost it (bluetoothd exited).
    virtual void onBluezOwnerChanged(bool present) = 0;
    // The connection to the system bus itself is gone; the client must be stopped and started
    // again to recover.
    virtual void onBusDisconnected() = 0;
    virtual void onInterfacesAdded(const std::string& path, const BluezObject& object) = 0;
    virtual void onInterfacesRemoved(const std::string& path,
                                     const std::vector<std::string>& interfaces) = 0;
    // `changed` has the one interface `interface` set, with the changed properties only;
    // `invalidated` names properties that no longer have a value (RSSI after discovery ends).
    virtual void onPropertiesChanged(const std::string& path, const std::string& interface,
                                     const BluezObject& changed,
                                     const std::vector<std::string>& invalidated) = 0;
  };

  using Done = std::function<void(const MaybeError&)>;

  virtual ~BluezClient() = default;

  // Connects to the system bus and subscribes to BlueZ's signals (NameOwnerChanged for
  // org.bluez, InterfacesAdded/Removed, PropertiesChanged). UNAVAILABLE if the bus is not
  // reachable. The listener must outlive the client's started state.
  virtual Status start(Listener* listener) = 0;
  // Unsubscribes, stops the bus thread and drops pending calls; idempotent.
  virtual void stop() = 0;

  virtual void getManagedObjects(std::function<void(const MaybeError&, ObjectTree)> done) = 0;
  // Transport "le", DuplicateData on (every advertisement refreshes presence), and the UUIDs
  // when given.
  virtual void setDiscoveryFilter(const std::string& adapter,
                                  const std::optional<std::vector<std::string>>& uuids,
                                  Done done) = 0;
  virtual void startDiscovery(const std::string& adapter, Done done) = 0;
  virtual void stopDiscovery(const std::string& adapter, Done done) = 0;
  virtual void connect(const std::string& device, std::chrono::milliseconds timeout, Done done) = 0;
  virtual void disconnect(const std::string& device, Done done) = 0;
  virtual void getDeviceProperties(const std::string& device,
                                   std::function<void(const MaybeError&, DeviceProps)> done) = 0;
  virtual void writeValue(const std::string& characteristic, const Bytes& value, bool withResponse,
                          std::chrono::milliseconds timeout, Done done) = 0;
  virtual void readValue(const std::string& characteristic, std::chrono::milliseconds timeout,
                         std::function<void(const MaybeError&, Bytes)> done) = 0;
  virtual void startNotify(const std::string& characteristic, Done done) = 0;
  virtual void stopNotify(const std::string& characteristic, Done done) = 0;
};

}  // namespace hearth::ble
