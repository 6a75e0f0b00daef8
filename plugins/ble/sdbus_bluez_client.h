#pragma once
// BluezClient over the system bus with sdbus-c++ (the bus address comes from
// DBUS_SYSTEM_BUS_ADDRESS when set, as sd-bus reads it).
//
// Threading: the sd-bus connection is dispatched by one I/O thread of ours running
// IConnection::enterEventLoop() — our own std::thread rather than enterEventLoopAsync() so that
// a dropped bus (which makes sdbus-c++ throw out of the loop) is caught and reported as
// Listener::onBusDisconnected() instead of terminating the process. That thread only decodes
// messages into the plain structs of bluez_client.h and posts them to the hub loop; it never
// touches plugin state. Method calls are sent from the hub loop (sdbus-c++ documents sending
// calls as thread-safe); the proxies map is hub-loop-only and is destroyed only after the I/O
// thread has been joined, so no reply handler can run on a destroyed proxy.
//
// What the I/O thread posts captures `this`: the plugin owns the client, and PluginContext::post
// drops work once the plugin has stopped. A session number (hub loop only) drops the replies
// and signals of an earlier start()..stop() session when one arrives after a reconnect.

#include <sdbus-c++/sdbus-c++.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bluez_client.h"
#include "hearth/host.h"

namespace hearth::ble {

class SdbusBluezClient : public BluezClient {
 public:
  // `post` hands a closure to the hub loop (PluginContext::post); `logger` is thread-safe.
  SdbusBluezClient(std::function<void(std::function<void()>)> post, Logger& logger);
  ~SdbusBluezClient() override;

  Status start(Listener* listener) override;
  void stop() override;

  void getManagedObjects(std::function<void(const MaybeError&, ObjectTree)> done) override;
  void setDiscoveryFilter(const std::string& adapter,
                          const std::optional<std::vector<std::string>>& uuids, Done done) override;
  void startDiscovery(const std::string& adapter, Done done) override;
  void stopDiscovery(const std::string& adapter, Done done) override;
  void connect(const std::string& device, std::chrono::milliseconds timeout, Done done) override;
  void disconnect(const std::string& device, Done done) override;
  void getDeviceProperties(const std::string& device,
                           std::function<void(const MaybeError&, DeviceProps)> done) override;
  void writeValue(const std::string& characteristic, const Bytes& value, bool withResponse,
                  std::chrono::milliseconds timeout, Done done) override;
  void readValue(const std::string& characteristic, std::chrono::milliseconds timeout,
                 std::function<void(const MaybeError&, Bytes)> done) override;
  void startNotify(const std::string& characteristic, Done done) override;
  void stopNotify(const std::string& characteristic, Done done) override;

 private:
  // Decodes a reply on the I/O thread into T (may throw; reported as an error).
  template <typename T>
  using Decoder = std::function<T(sdbus::MethodReply&)>;

  template <typename T>
  void call(const std::string& path, const std::string& interface, const std::string& method,
            const std::function<void(sdbus::MethodCall&)>& fill, Decoder<T> decode,
            std::chrono::milliseconds timeout, std::function<void(const MaybeError&, T)> done);
  void callVoid(const std::string& path, const std::string& interface, const std::string& method,
                const std::function<void(sdbus::MethodCall&)>& fill,
                std::chrono::milliseconds timeout, Done done);
  sdbus::IProxy& proxy(const std::string& path);
  void addMatch(const std::string& rule, std::function<void(sdbus::Message&)> handler);

  std::function<void(std::function<void()>)> post_;
  Logger& logger_;
  Listener* listener_ = nullptr;
  // Bumped by start() and stop(); read and written on the hub loop only. Work posted by a
  // session runs only while session_ still has the number it started with.
  uint64_t session_ = 0;
  std::unique_ptr<sdbus::IConnection> connection_;
  std::vector<sdbus::Slot> matches_;
  std::map<std::string, std::unique_ptr<sdbus::IProxy>> proxies_;
  std::thread loop_;
};

}  // namespace hearth::ble
