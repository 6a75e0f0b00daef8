#pragma once
// The connections of the front door, as POCO's TCPServer hands them to its worker threads:
// every accepted socket first passes the DoorGuard (limit, lockout) and gets its deadline in
// the ConnectionRegistry, before one byte of TLS is spent on it; then it is served as
// mqtts:// (TLS stream piped to the broker) or as https:// (POCO's HTTPServerConnection, whose
// handlers serve /mqtt as a WebSocket pipe and everything else as static files).

#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/TCPServerConnectionFactory.h>

#include <chrono>
#include <string>

#include "connection_registry.h"
#include "door_guard.h"
#include "mqtt_pipe.h"
#include "static_files.h"

namespace hearth::web {

// What every connection of one front door shares. Outlives every connection (the front door
// joins its threads before destroying it).
struct DoorShared {
  DoorGuard* guard = nullptr;
  ConnectionRegistry* registry = nullptr;
  PipeSettings pipe;
  StaticSettings files;
  std::chrono::milliseconds connectTimeout{10000};
  std::chrono::milliseconds ioTimeout{30000};  // one read or write that has begun
  std::chrono::seconds keepAlive{10};          // an HTTPS connection waiting for a request
};

enum class DoorProtocol { kMqtts, kHttps };

// Wraps each accepted socket in the guard and registry; for kHttps, inner makes the HTTP
// connection (HTTPServerConnectionFactory).
class GuardedConnectionFactory : public Poco::Net::TCPServerConnectionFactory {
 public:
  GuardedConnectionFactory(DoorShared& shared, DoorProtocol protocol,
                           Poco::Net::TCPServerConnectionFactory::Ptr inner)
      : shared_(shared), protocol_(protocol), inner_(std::move(inner)) {}
  Poco::Net::TCPServerConnection* createConnection(const Poco::Net::StreamSocket& socket) override;

 private:
  DoorShared& shared_;
  DoorProtocol protocol_;
  Poco::Net::TCPServerConnectionFactory::Ptr inner_;
};

// /mqtt → WebSocket pipe; anything else → static files.
class DoorRequestHandlerFactory : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit DoorRequestHandlerFactory(DoorShared& shared) : shared_(shared) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(
      const Poco::Net::HTTPServerRequest& request) override;

 private:
  DoorShared& shared_;
};

// The client's address as the lockout keys it (an IPv4-mapped IPv6 address as plain IPv4).
std::string clientAddress(const Poco::Net::StreamSocket& socket);

}  // namespace hearth::web
