#pragma once
// Pipes one client connection to the loopback broker as one TCP connection, byte for byte, on
// the calling I/O thread (a front door worker, never the hub loop): poll(2) on the client, the
// broker and the stop signal; what the client sends goes to the broker unchanged and the other
// way round. On the way the MqttMeters enforce the packet size limit, see the client's CONNECT
// complete (its deadline is then cleared) and read the CONNACK's code for the lockout.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "connection_registry.h"
#include "door_guard.h"

namespace hearth::web {

// The client end of a pipe: a TLS stream (mqtts://) or a WebSocket (wss://).
class ClientEnd {
 public:
  virtual ~ClientEnd() = default;
  virtual int fd() const = 0;
  // Bytes already received and decrypted but not yet read (poll(2) does not see them).
  virtual bool pending() = 0;
  // Reads what is there (blocking until some arrives) into a buffer of its own, pointed to by
  // *data until the next read. Returns the byte count, 0 when the client closed the
  // connection, or -1 when what arrived carried no MQTT bytes (a WebSocket ping, answered).
  // Throws on errors (oversized frame, TLS error).
  virtual int read(const uint8_t** data) = 0;
  virtual void write(const uint8_t* buf, size_t n) = 0;
  // Says goodbye in the client's protocol (WebSocket close frame with a status) where it has
  // one; best effort.
  virtual void close(int wsStatus, const std::string& reason) = 0;
};

struct PipeSettings {
  std::string brokerHost;
  int brokerPort = 1883;
  size_t maxPacket = 256 * 1024;
  std::chrono::milliseconds brokerConnectTimeout{5000};
  int stopFd = -1;  // readable once the plugin stops
};

enum class PipeEnd {
  kClientClosed,
  kBrokerClosed,
  kTooLarge,
  kNotMqtt,
  kBrokerUnreachable,
  kTimedOut,
  kError,
  kStopped,
};

const char* pipeEndName(PipeEnd e);

// Runs until either side closes. scope: the connection's registry entry (its deadline is
// cleared once the CONNECT has passed).
PipeEnd runPipe(ClientEnd& client, const ConnectionScope& scope, const PipeSettings& settings,
                DoorGuard& guard);

}  // namespace hearth::web
