#include "sdbus_bluez_client.h"

#include <exception>
#include <utility>

namespace hearth::ble {
namespace {

using PropMap = std::map<std::string, sdbus::Variant>;
using InterfaceMap = std::map<std::string, PropMap>;
using ManagedObjects = std::map<sdbus::ObjectPath, InterfaceMap>;

constexpr const char* kObjectManager = "org.freedesktop.DBus.ObjectManager";
constexpr const char* kProperties = "org.freedesktop.DBus.Properties";
constexpr std::chrono::milliseconds kDefaultCallTimeout{10000};

// Match rules. dbus-daemon resolves sender='org.bluez' to whoever owns the name at the time,
// so the subscriptions survive bluetoothd restarts.
constexpr const char* kNameOwnerRule =
    "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
    "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='org.bluez'";
constexpr const char* kInterfacesAddedRule =
    "type='signal',sender='org.bluez',interface='org.freedesktop.DBus.ObjectManager',"
    "member='InterfacesAdded'";
constexpr const char* kInterfacesRemovedRule =
    "type='signal',sender='org.bluez',interface='org.freedesktop.DBus.ObjectManager',"
    "member='InterfacesRemoved'";
constexpr const char* kPropertiesChangedRule =
    "type='signal',sender='org.bluez',interface='org.freedesktop.DBus.Properties',"
    "member='PropertiesChanged',path_namespace='/org/bluez'";
// sd-bus synthesises this locally when the bus connection drops.
constexpr const char* kDisconnectedRule =
    "type='signal',path='/org/freedesktop/DBus/Local',interface='org.freedesktop.DBus.Local',"
    "member='Disconnected'";

template <typename T>
std::optional<T> prop(const PropMap& props, const char* key) {
  auto it = props.find(key);
  if (it == props.end() || !it->second.template containsValueOfType<T>()) return std::nullopt;
  return it->second.template get<T>();
}

std::optional<std::string> pathProp(const PropMap& props, const char* key) {
  auto p = prop<sdbus::ObjectPath>(props, key);
  if (!p) return std::nullopt;
  return std::string(*p);
}

std::optional<Bytes> bytesOf(const sdbus::Variant& v) {
  if (!v.containsValueOfType<Bytes>()) return std::nullopt;
  return v.get<Bytes>();
}

DeviceProps decodeDevice(const PropMap& p) {
  DeviceProps d;
  d.address = prop<std::string>(p, "Address");
  d.name = prop<std::string>(p, "Name");
  d.alias = prop<std::string>(p, "Alias");
  d.adapter = pathProp(p, "Adapter");
  d.rssi = prop<int16_t>(p, "RSSI");
  d.txPower = prop<int16_t>(p, "TxPower");
  d.uuids = prop<std::vector<std::string>>(p, "UUIDs");
  d.connected = prop<bool>(p, "Connected");
  d.servicesResolved = prop<bool>(p, "ServicesResolved");
  if (auto m = prop<std::map<uint16_t, sdbus::Variant>>(p, "ManufacturerData")) {
    std::map<uint16_t, Bytes> out;
    for (const auto& [id, v] : *m) {
      if (auto b = bytesOf(v)) out.emplace(id, std::move(*b));
    }
    d.manufacturerData = std::move(out);
  }
  if (auto m = prop<std::map<std::string, sdbus::Variant>>(p, "ServiceData")) {
    std::map<std::string, Bytes> out;
    for (const auto& [uuid, v] : *m) {
      if (auto b = bytesOf(v)) out.emplace(uuid, std::move(*b));
    }
    d.serviceData = std::move(out);
  }
  return d;
}

void decodeInterface(const std::string& interface, const PropMap& p, BluezObject& out) {
  if (interface == kAdapterInterface) {
    AdapterProps a;
    a.powered = prop<bool>(p, "Powered");
    a.discovering = prop<bool>(p, "Discovering");
    out.adapter = a;
  } else if (interface == kDeviceInterface) {
    out.device = decodeDevice(p);
  } else if (interface == kGattServiceInterface) {
    GattServiceProps s;
    s.uuid = prop<std::string>(p, "UUID");
    s.device = pathProp(p, "Device");
    out.service = s;
  } else if (interface == kGattCharacteristicInterface) {
    GattCharacteristicProps c;
    c.uuid = prop<std::string>(p, "UUID");
    c.service = pathProp(p, "Service");
    c.value = prop<Bytes>(p, "Value");
    out.characteristic = c;
  }
}

BluezObject decodeObject(const InterfaceMap& interfaces) {
  BluezObject o;
  for (const auto& [name, props] : interfaces) decodeInterface(name, props, o);
  return o;
}

bool isBluezObject(const BluezObject& o) {
  return o.adapter || o.device || o.service || o.characteristic;
}

}  // namespace

SdbusBluezClient::SdbusBluezClient(std::function<void(std::function<void()>)> post, Logger& logger)
    : post_(std::move(post)), logger_(logger) {}

SdbusBluezClient::~SdbusBluezClient() { stop(); }

void SdbusBluezClient::addMatch(const std::string& rule,
                                std::function<void(sdbus::Message&)> handler) {
  // Runs on the I/O thread: decode, then hand over. An exception must not unwind into sd-bus.
  matches_.push_back(
      connection_->addMatch(rule, [this, handler = std::move(handler)](sdbus::Message& msg) {
        try {
          handler(msg);
        } catch (const std::exception& e) {
          logger_.warn(std::string("ignored a malformed BlueZ signal: ") + e.what());
        }
      }));
}

Status SdbusBluezClient::start(Listener* listener) {
  stop();
  listener_ = listener;
  const uint64_t session = ++session_;
  // Hands a signal to the listener on the hub loop, unless this session ended by then. `this`
  // is safe there: the plugin owns this client, and post() drops work once the plugin stopped.
  auto deliver = [this, session](std::function<void(Listener&)> fn) {
    post_([this, session, fn = std::move(fn)] {
      if (session == session_) fn(*listener_);
    });
  };
  try {
    connection_ = sdbus::createSystemBusConnection();
    addMatch(kNameOwnerRule, [deliver](sdbus::Message& msg) {
      std::string name, oldOwner, newOwner;
      msg >> name >> oldOwner >> newOwner;
      const bool present = !newOwner.empty();
      deliver([present](Listener& l) { l.onBluezOwnerChanged(present); });
    });
    addMatch(kInterfacesAddedRule, [deliver](sdbus::Message& msg) {
      sdbus::ObjectPath path;
      InterfaceMap interfaces;
      msg >> path >> interfaces;
      BluezObject object = decodeObject(interfaces);
      if (!isBluezObject(object)) return;
      deliver([path = std::string(path), object = std::move(object)](Listener& l) {
        l.onInterfacesAdded(path, object);
      });
    });
    addMatch(kInterfacesRemovedRule, [deliver](sdbus::Message& msg) {
      sdbus::ObjectPath path;
      std::vector<std::string> interfaces;
      msg >> path >> interfaces;
      deliver([path = std::string(path), interfaces = std::move(interfaces)](Listener& l) {
        l.onInterfacesRemoved(path, interfaces);
      });
    });
    addMatch(kPropertiesChangedRule, [deliver](sdbus::Message& msg) {
      std::string interface;
      PropMap changed;
      std::vector<std::string> invalidated;
      msg >> interface >> changed >> invalidated;
      BluezObject object;
      decodeInterface(interface, changed, object);
      if (!isBluezObject(object)) return;
      deliver([path = msg.getPath(), interface, object = std::move(object),
               invalidated = std::move(invalidated)](Listener& l) {
        l.onPropertiesChanged(path, interface, object, invalidated);
      });
    });
    addMatch(kDisconnectedRule,
             [deliver](sdbus::Message&) { deliver([](Listener& l) { l.onBusDisconnected(); }); });
  } catch (const sdbus::Error& e) {
    matches_.clear();
    connection_.reset();
    listener_ = nullptr;
    ++session_;
    return Status::error(ErrorCode::kUnavailable,
                         "cannot reach the system bus: " + e.getName() + ": " + e.getMessage());
  }
  sdbus::IConnection* connection = connection_.get();
  Logger& logger = logger_;
  loop_ = std::thread([connection, deliver, &logger] {
    try {
      connection->enterEventLoop();
    } catch (const std::exception& e) {
      // sdbus-c++ throws out of the loop when the bus connection fails.
      logger.warn(std::string("system bus connection lost: ") + e.what());
      deliver([](Listener& l) { l.onBusDisconnected(); });
    }
  });
  return Status::ok();
}

void SdbusBluezClient::stop() {
  if (!connection_) return;
  ++session_;  // what this session's I/O thread posted is dropped on the hub loop
  try {
    connection_->leaveEventLoop();
  } catch (const std::exception& e) {
    logger_.warn(std::string("leaving the D-Bus event loop: ") + e.what());
  }
  if (loop_.joinable()) loop_.join();
  // The I/O thread is gone: nothing can run a reply handler while the proxies go away.
  proxies_.clear();
  matches_.clear();
  connection_.reset();
  listener_ = nullptr;
}

sdbus::IProxy& SdbusBluezClient::proxy(const std::string& path) {
  auto it = proxies_.find(path);
  if (it == proxies_.end()) {
    it = proxies_.emplace(path, sdbus::createProxy(*connection_, kBluezService, path)).first;
  }
  return *it->second;
}

template <typename T>
void SdbusBluezClient::call(const std::string& path, const std::string& interface,
                            const std::string& method,
                            const std::function<void(sdbus::MethodCall&)>& fill, Decoder<T> decode,
                            std::chrono::milliseconds timeout,
                            std::function<void(const MaybeError&, T)> done) {
  // Not started (or stopped): by the contract no callback runs, and the caller's own timeout
  // ends whatever waited for this reply.
  if (!connection_) return;
  const uint64_t session = session_;
  // Runs done on the hub loop, unless the session ended by then (`this`: as in start()).
  auto deliver = [this, session, done](MaybeError err, T value) {
    post_([this, session, done, err = std::move(err), value = std::move(value)]() mutable {
      if (session == session_) done(err, std::move(value));
    });
  };
  try {
    sdbus::IProxy& p = proxy(path);
    sdbus::MethodCall msg = p.createMethodCall(interface, method);
    fill(msg);
    const auto usec = std::chrono::duration_cast<std::chrono::microseconds>(timeout).count();
    p.callMethod(
        msg,
        [deliver, decode = std::move(decode)](sdbus::MethodReply& reply,
                                              const sdbus::Error* error) {
          MaybeError err;
          T value{};
          if (error != nullptr) {
            err = BluezError{error->getName(), error->getMessage()};
          } else {
            try {
              value = decode(reply);
            } catch (const std::exception& e) {
              err = BluezError{"org.freedesktop.DBus.Error.InvalidSignature", e.what()};
            }
          }
          deliver(std::move(err), std::move(value));
        },
        static_cast<uint64_t>(usec));
  } catch (const sdbus::Error& e) {
    deliver(BluezError{e.getName(), e.getMessage()}, T{});
  }
}

void SdbusBluezClient::callVoid(const std::string& path, const std::string& interface,
                                const std::string& method,
                                const std::function<void(sdbus::MethodCall&)>& fill,
                                std::chrono::milliseconds timeout, Done done) {
  call<bool>(
      path, interface, method, fill, [](sdbus::MethodReply&) { return true; }, timeout,
      [done = std::move(done)](const MaybeError& err, bool) { done(err); });
}

void SdbusBluezClient::getManagedObjects(std::function<void(const MaybeError&, ObjectTree)> done) {
  call<ObjectTree>(
      "/", kObjectManager, "GetManagedObjects", [](sdbus::MethodCall&) {},
      [](sdbus::MethodReply& reply) {
        ManagedObjects objects;
        reply >> objects;
        ObjectTree tree;
        for (const auto& [path, interfaces] : objects) {
          BluezObject o = decodeObject(interfaces);
          if (isBluezObject(o)) tree.emplace(path, std::move(o));
        }
        return tree;
      },
      kDefaultCallTimeout, std::move(done));
}

void SdbusBluezClient::setDiscoveryFilter(const std::string& adapter,
                                          const std::optional<std::vector<std::string>>& uuids,
                                          Done done) {
  PropMap filter;
  filter.emplace("Transport", sdbus::Variant(std::string("le")));
  filter.emplace("DuplicateData", sdbus::Variant(true));
  if (uuids) filter.emplace("UUIDs", sdbus::Variant(*uuids));
  callVoid(
      adapter, kAdapterInterface, "SetDiscoveryFilter",
      [filter](sdbus::MethodCall& m) { m << filter; }, kDefaultCallTimeout, std::move(done));
}

void SdbusBluezClient::startDiscovery(const std::string& adapter, Done done) {
  callVoid(
      adapter, kAdapterInterface, "StartDiscovery", [](sdbus::MethodCall&) {}, kDefaultCallTimeout,
      std::move(done));
}

void SdbusBluezClient::stopDiscovery(const std::string& adapter, Done done) {
  callVoid(
      adapter, kAdapterInterface, "StopDiscovery", [](sdbus::MethodCall&) {}, kDefaultCallTimeout,
      std::move(done));
}

void SdbusBluezClient::connect(const std::string& device, std::chrono::milliseconds timeout,
                               Done done) {
  callVoid(
      device, kDeviceInterface, "Connect", [](sdbus::MethodCall&) {}, timeout, std::move(done));
}

void SdbusBluezClient::disconnect(const std::string& device, Done done) {
  callVoid(
      device, kDeviceInterface, "Disconnect", [](sdbus::MethodCall&) {}, kDefaultCallTimeout,
      std::move(done));
}

void SdbusBluezClient::getDeviceProperties(
    const std::string& device, std::function<void(const MaybeError&, DeviceProps)> done) {
  call<DeviceProps>(
      device, kProperties, "GetAll",
      [](sdbus::MethodCall& m) { m << std::string(kDeviceInterface); },
      [](sdbus::MethodReply& reply) {
        PropMap props;
        reply >> props;
        return decodeDevice(props);
      },
      kDefaultCallTimeout, std::move(done));
}

void SdbusBluezClient::writeValue(const std::string& characteristic, const Bytes& value,
                                  bool withResponse, std::chrono::milliseconds timeout, Done done) {
  PropMap options;
  options.emplace("type", sdbus::Variant(std::string(withResponse ? "request" : "command")));
  callVoid(
      characteristic, kGattCharacteristicInterface, "WriteValue",
      [value, options](sdbus::MethodCall& m) { m << value << options; }, timeout, std::move(done));
}

void SdbusBluezClient::readValue(const std::string& characteristic,
                                 std::chrono::milliseconds timeout,
                                 std::function<void(const MaybeError&, Bytes)> done) {
  call<Bytes>(
      characteristic, kGattCharacteristicInterface, "ReadValue",
      [](sdbus::MethodCall& m) { m << PropMap{}; },
      [](sdbus::MethodReply& reply) {
        Bytes value;
        reply >> value;
        return value;
      },
      timeout, std::move(done));
}

void SdbusBluezClient::startNotify(const std::string& characteristic, Done done) {
  callVoid(
      characteristic, kGattCharacteristicInterface, "StartNotify", [](sdbus::MethodCall&) {},
      kDefaultCallTimeout, std::move(done));
}

void SdbusBluezClient::stopNotify(const std::string& characteristic, Done done) {
  callVoid(
      characteristic, kGattCharacteristicInterface, "StopNotify", [](sdbus::MethodCall&) {},
      kDefaultCallTimeout, std::move(done));
}

}  // namespace hearth::ble
