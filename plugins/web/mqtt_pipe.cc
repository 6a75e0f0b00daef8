#include "mqtt_pipe.h"

#include <Poco/Net/NetException.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/Net/WebSocket.h>
#include <poll.h>

#include <memory>
#include <vector>

#include "mqtt_meter.h"

namespace hearth::web {
namespace {

constexpr size_t kChunk = 16 * 1024;

// WebSocket close codes (RFC 6455 §7.4.1).
constexpr int kWsGoingAway = 1001;
constexpr int kWsProtocolError = 1002;
constexpr int kWsTooBig = 1009;
constexpr int kWsInternal = 1011;

void sendAll(Poco::Net::StreamSocket& s, const uint8_t* data, size_t n) {
  size_t off = 0;
  while (off < n) {
    int k = s.sendBytes(data + off, static_cast<int>(n - off));
    if (k <= 0) throw Poco::IOException("broker write failed");
    off += static_cast<size_t>(k);
  }
}

}  // namespace

const char* pipeEndName(PipeEnd e) {
  switch (e) {
    case PipeEnd::kClientClosed:
      return "client closed";
    case PipeEnd::kBrokerClosed:
      return "broker closed";
    case PipeEnd::kTooLarge:
      return "packet over the size limit";
    case PipeEnd::kNotMqtt:
      return "not MQTT";
    case PipeEnd::kBrokerUnreachable:
      return "broker unreachable";
    case PipeEnd::kTimedOut:
      return "no CONNECT in time";
    case PipeEnd::kError:
      return "connection error";
    case PipeEnd::kStopped:
      return "front door stopping";
  }
  return "?";
}

PipeEnd runPipe(ClientEnd& client, const ConnectionScope& scope, const PipeSettings& settings,
                DoorGuard& guard) {
  DoorCounters& c = guard.counters();
  Poco::Net::StreamSocket broker;
  try {
    broker.connect(
        Poco::Net::SocketAddress(settings.brokerHost, static_cast<uint16_t>(settings.brokerPort)),
        Poco::Timespan(settings.brokerConnectTimeout.count() * 1000));
    broker.setNoDelay(true);
  } catch (const Poco::Exception&) {
    c.brokerUnreachable++;
    client.close(kWsInternal, "broker unreachable");
    return PipeEnd::kBrokerUnreachable;
  }

  MqttMeter fromClient(settings.maxPacket, 1);  // CONNECT first
  MqttMeter fromBroker(SIZE_MAX, 2);            // CONNACK first
  bool connectSeen = false;
  bool connackSeen = false;
  std::unique_ptr<uint8_t[]> buf(new uint8_t[kChunk]);
  // What the client sent of a packet it has not finished yet, and packets behind which more
  // has already arrived. A WebSocket client may send one MQTT packet in many small frames
  // (mqtt.js writes the fixed header, the topic and the payload as frames of their own);
  // passed on frame by frame, each piece would be a TCP segment of its own and a wake-up of
  // the broker. Held here until the packet is complete and nothing more is waiting (or kChunk
  // bytes are held), the broker gets what arrived together in one write.
  std::vector<uint8_t> pendingToBroker;
  auto flushToBroker = [&] {
    sendAll(broker, pendingToBroker.data(), pendingToBroker.size());
    pendingToBroker.clear();
    if (pendingToBroker.capacity() > kChunk) std::vector<uint8_t>().swap(pendingToBroker);
  };
  PipeEnd end = PipeEnd::kError;

  auto deadlineHit = [&] { return scope.registry && scope.registry->timedOut(scope.id); };

  try {
    for (;;) {
      bool clientReady = client.pending();
      bool brokerReady = false;
      if (!clientReady) {
        pollfd fds[3] = {{client.fd(), POLLIN, 0},
                         {broker.impl()->sockfd(), POLLIN, 0},
                         {settings.stopFd, POLLIN, 0}};
        int n = ::poll(fds, settings.stopFd >= 0 ? 3 : 2, -1);
        if (n < 0) {
          if (errno == EINTR) continue;
          end = PipeEnd::kError;
          break;
        }
        if (settings.stopFd >= 0 && (fds[2].revents & POLLIN)) {
          end = PipeEnd::kStopped;
          client.close(kWsGoingAway, "hub stopping");
          break;
        }
        clientReady = fds[0].revents & (POLLIN | POLLHUP | POLLERR);
        brokerReady = fds[1].revents & (POLLIN | POLLHUP | POLLERR);
      }
      if (clientReady) {
        const uint8_t* data = nullptr;
        int n = client.read(&data);
        if (n == 0) {
          end = deadlineHit() ? PipeEnd::kTimedOut : PipeEnd::kClientClosed;
          break;
        }
        if (n > 0) {
          MqttMeter::Verdict v = fromClient.feed(data, static_cast<size_t>(n));
          if (v == MqttMeter::Verdict::kTooLarge) {
            c.oversize++;
            client.close(kWsTooBig, "MQTT packet over the size limit");
            end = PipeEnd::kTooLarge;
            break;
          }
          if (v == MqttMeter::Verdict::kMalformed) {
            c.protocolErrors++;
            client.close(kWsProtocolError, "not MQTT");
            end = PipeEnd::kNotMqtt;
            break;
          }
          if (!connectSeen && fromClient.firstComplete()) {
            connectSeen = true;
            if (scope.registry) scope.registry->clearDeadline(scope.id);
          }
          c.bytesFromClients += n;
          bool whole = fromClient.atPacketBoundary() && !client.pending();
          if (whole && pendingToBroker.empty()) {
            sendAll(broker, data, static_cast<size_t>(n));  // whole packets: no copy
          } else {
            pendingToBroker.insert(pendingToBroker.end(), data, data + n);
            if (whole || pendingToBroker.size() >= kChunk) flushToBroker();
          }
        }
      }
      if (brokerReady) {
        int n = broker.receiveBytes(buf.get(), static_cast<int>(kChunk));
        if (n <= 0) {
          end = PipeEnd::kBrokerClosed;
          break;
        }
        if (fromBroker.feed(buf.get(), static_cast<size_t>(n)) != MqttMeter::Verdict::kOk) {
          end = PipeEnd::kError;  // the broker speaks MQTT; this is a broken invariant
          break;
        }
        if (!connackSeen && fromBroker.connackCode() >= 0) {
          connackSeen = true;
          int code = fromBroker.connackCode();
          if (code == 0) {
            guard.loginResult(scope.address, true);
          } else if (isLoginFailure(code)) {
            guard.loginResult(scope.address, false);
          }
        }
        c.bytesToClients += n;
        client.write(buf.get(), static_cast<size_t>(n));
      }
    }
  } catch (const Poco::Net::WebSocketException& e) {
    if (e.code() == Poco::Net::WebSocket::WS_ERR_PAYLOAD_TOO_BIG) {
      c.oversize++;
      client.close(kWsTooBig, "WebSocket frame over the size limit");
      end = PipeEnd::kTooLarge;
    } else {
      c.protocolErrors++;
      end = PipeEnd::kError;
    }
  } catch (const std::exception&) {
    end = deadlineHit() ? PipeEnd::kTimedOut : PipeEnd::kError;
  }
  if (end == PipeEnd::kTimedOut) c.connectTimeouts++;
  try {
    broker.close();
  } catch (const std::exception&) {
  }
  return end;
}

}  // namespace hearth::web
