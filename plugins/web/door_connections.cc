#include "door_connections.h"

#include <Poco/Buffer.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/SecureStreamSocket.h>
#include <Poco/Net/TCPServerConnection.h>
#include <Poco/Net/WebSocket.h>
#include <Poco/StringTokenizer.h>
#include <sys/socket.h>

#include <memory>

#include "server_tls.h"

namespace hearth::web {
namespace {

using Poco::Net::HTTPResponse;
using Poco::Net::WebSocket;

Poco::Timespan span(std::chrono::milliseconds ms) { return Poco::Timespan(ms.count() * 1000); }

// mqtts://: the TLS stream itself.
class TlsEnd : public ClientEnd {
 public:
  TlsEnd(Poco::Net::SecureStreamSocket& s, void* ssl)
      : s_(s), ssl_(ssl), buf_(new uint8_t[kChunk]) {
    if (ssl_) readAhead(ssl_);
  }
  int fd() const override { return s_.impl()->sockfd(); }
  bool pending() override { return s_.available() > 0 || (ssl_ && tlsHasPending(ssl_)); }
  int read(const uint8_t** data) override {
    int n = s_.receiveBytes(buf_.get(), static_cast<int>(kChunk));
    *data = buf_.get();
    return n < 0 ? -1 : n;
  }
  void write(const uint8_t* buf, size_t n) override {
    size_t off = 0;
    while (off < n) {
      int k = s_.sendBytes(buf + off, static_cast<int>(n - off));
      if (k <= 0) throw Poco::IOException("TLS write failed");
      off += static_cast<size_t>(k);
    }
  }
  void close(int, const std::string&) override {}

 private:
  static constexpr size_t kChunk = 16 * 1024;
  Poco::Net::SecureStreamSocket& s_;
  void* ssl_;
  std::unique_ptr<uint8_t[]> buf_;
};

// wss://.../mqtt: WebSocket frames, each carrying MQTT bytes (binary frames).
class WsEnd : public ClientEnd {
 public:
  // Reading ahead starts with the WebSocket: POCO's HTTP server waits for a kept-alive
  // connection's next request with poll(2), which would not see one OpenSSL read ahead.
  WsEnd(WebSocket& ws, void* ssl) : ws_(ws), ssl_(ssl), buf_(0) {
    if (ssl_) readAhead(ssl_);
  }
  int fd() const override { return ws_.impl()->sockfd(); }
  // Frames already read ahead by OpenSSL count: a client's packet in many frames is then read
  // without a poll(2) and a read(2) for each.
  bool pending() override { return ws_.available() > 0 || (ssl_ && tlsHasPending(ssl_)); }
  int read(const uint8_t** data) override {
    int flags = 0;
    buf_.resize(0);
    int n = ws_.receiveFrame(buf_, flags);
    *data = reinterpret_cast<const uint8_t*>(buf_.begin());
    int op = flags & WebSocket::FRAME_OP_BITMASK;
    if (n == 0 && flags == 0) return 0;  // the connection closed
    switch (op) {
      case WebSocket::FRAME_OP_CLOSE:
        try {
          ws_.sendFrame(buf_.begin(), n,
                        static_cast<int>(WebSocket::FRAME_FLAG_FIN) |
                            static_cast<int>(WebSocket::FRAME_OP_CLOSE));
        } catch (const std::exception&) {
        }
        closed_ = true;
        return 0;
      case WebSocket::FRAME_OP_PING:
        ws_.sendFrame(buf_.begin(), n,
                      static_cast<int>(WebSocket::FRAME_FLAG_FIN) |
                          static_cast<int>(WebSocket::FRAME_OP_PONG));
        return -1;
      case WebSocket::FRAME_OP_PONG:
        return -1;
      default:
        return n > 0 ? n : -1;
    }
  }
  void write(const uint8_t* buf, size_t n) override {
    ws_.sendFrame(buf, static_cast<int>(n), WebSocket::FRAME_BINARY);
  }
  void close(int status, const std::string& reason) override {
    if (closed_) return;
    closed_ = true;
    try {
      ws_.shutdown(static_cast<Poco::UInt16>(status), reason);
    } catch (const std::exception&) {
    }
  }

 private:
  WebSocket& ws_;
  void* ssl_;
  Poco::Buffer<char> buf_;
  bool closed_ = false;
};

std::atomic<int64_t>& gaugeFor(DoorCounters& c, DoorProtocol p) {
  return p == DoorProtocol::kMqtts ? c.connectionsMqtts : c.connectionsHttps;
}

class GuardedConnection : public Poco::Net::TCPServerConnection {
 public:
  GuardedConnection(const Poco::Net::StreamSocket& socket, DoorShared& shared,
                    DoorProtocol protocol, Poco::Net::TCPServerConnectionFactory::Ptr inner)
      : TCPServerConnection(socket), shared_(shared), protocol_(protocol), inner_(inner) {}

  void run() override {
    ConnectionScope scope;
    try {
      scope.address = clientAddress(socket());
    } catch (const std::exception&) {
      return;  // gone before we looked
    }
    if (!shared_.guard->enter(scope.address)) {
      // Refused before any TLS is spent on it: the client sees the connection closed.
      ::shutdown(socket().impl()->sockfd(), SHUT_RDWR);
      return;
    }
    DoorCounters& c = shared_.guard->counters();
    scope.registry = shared_.registry;
    scope.id = shared_.registry->add(socket().impl()->sockfd(),
                                     ConnectionRegistry::Clock::now() + shared_.connectTimeout);
    ConnectionScope::current() = &scope;
    gaugeFor(c, protocol_)++;
    try {
      socket().setNoDelay(true);
      socket().setSendTimeout(span(shared_.ioTimeout));
      if (handshake(scope)) {
        if (protocol_ == DoorProtocol::kMqtts) {
          Poco::Net::SecureStreamSocket tls(socket());
          TlsEnd end(tls, scope.ssl);
          runPipe(end, scope, shared_.pipe, *shared_.guard);
        } else {
          std::unique_ptr<Poco::Net::TCPServerConnection> http(inner_->createConnection(socket()));
          http->run();
        }
      }
    } catch (const std::exception&) {
      // A client that went away mid-way; the counters already say what happened.
    }
    gaugeFor(c, protocol_)--;
    ConnectionScope::current() = nullptr;
    shared_.registry->remove(scope.id);
    shared_.guard->leave();
  }

 private:
  // The TLS handshake, before anything else, within the connection's deadline (the registry
  // cuts off a client that dribbles it).
  bool handshake(ConnectionScope& scope) {
    DoorCounters& c = shared_.guard->counters();
    Poco::Net::SecureStreamSocket tls(socket());
    tls.setReceiveTimeout(span(shared_.connectTimeout));
    takeThreadHandshake();  // forget another connection's
    try {
      if (tls.completeHandshake() <= 0) throw Poco::IOException("handshake did not complete");
    } catch (const std::exception&) {
      takeThreadHandshake();
      if (shared_.registry->timedOut(scope.id)) {
        c.connectTimeouts++;
      } else {
        c.tlsFailures++;
      }
      return false;
    }
    tls.setReceiveTimeout(span(shared_.ioTimeout));
    scope.ssl = takeThreadHandshake();
    return true;
  }

  DoorShared& shared_;
  DoorProtocol protocol_;
  Poco::Net::TCPServerConnectionFactory::Ptr inner_;
};

class WebSocketHandler : public Poco::Net::HTTPRequestHandler {
 public:
  explicit WebSocketHandler(DoorShared& shared) : shared_(shared) {}

  void handleRequest(Poco::Net::HTTPServerRequest& request,
                     Poco::Net::HTTPServerResponse& response) override {
    DoorCounters& c = shared_.guard->counters();
    c.httpRequests++;
    ConnectionScope* scope = ConnectionScope::current();
    if (!scope) {
      sendText(response, HTTPResponse::HTTP_INTERNAL_SERVER_ERROR, "no connection scope");
      return;
    }
    bool upgrade = Poco::icompare(request.get("Upgrade", ""), "websocket") == 0;
    if (request.getMethod() != "GET" || !upgrade) {
      c.protocolErrors++;
      response.set("Upgrade", "websocket");
      sendText(response, HTTPResponse::HTTP_UPGRADE_REQUIRED,
               "/mqtt is MQTT over WebSocket (subprotocol mqtt): connect with an MQTT client to "
               "wss://<this host>:<port>/mqtt");
      return;
    }
    bool mqtt = false;
    Poco::StringTokenizer protocols(
        request.get("Sec-WebSocket-Protocol", ""), ",",
        Poco::StringTokenizer::TOK_TRIM | Poco::StringTokenizer::TOK_IGNORE_EMPTY);
    for (const auto& p : protocols) mqtt = mqtt || p == "mqtt";
    if (!mqtt) {
      c.protocolErrors++;
      sendText(response, HTTPResponse::HTTP_BAD_REQUEST,
               "the WebSocket subprotocol must be mqtt (Sec-WebSocket-Protocol: mqtt)");
      return;
    }
    response.set("Sec-WebSocket-Protocol", "mqtt");
    std::unique_ptr<WebSocket> ws;
    try {
      ws = std::make_unique<WebSocket>(request, response);
    } catch (const Poco::Net::WebSocketException& e) {
      c.protocolErrors++;
      response.setKeepAlive(false);
      sendText(response, HTTPResponse::HTTP_BAD_REQUEST,
               "not a WebSocket handshake: " + e.message());
      return;
    }
    ws->setMaxPayloadSize(static_cast<int>(shared_.pipe.maxPacket));
    ws->setReceiveTimeout(span(shared_.ioTimeout));
    c.connectionsHttps--;
    c.connectionsWss++;
    WsEnd end(*ws, scope->ssl);
    runPipe(end, *scope, shared_.pipe, *shared_.guard);
    c.connectionsWss--;
    c.connectionsHttps++;
  }

 private:
  DoorShared& shared_;
};

class FileHandler : public StaticFileHandler {
 public:
  explicit FileHandler(DoorShared& shared)
      : StaticFileHandler(shared.files, shared.guard->counters()), shared_(shared) {}
  void handleRequest(Poco::Net::HTTPServerRequest& request,
                     Poco::Net::HTTPServerResponse& response) override {
    // A request was read in full: the connection met its deadline while it is answered...
    ConnectionScope* scope = ConnectionScope::current();
    if (scope) scope->registry->clearDeadline(scope->id);
    StaticFileHandler::handleRequest(request, response);
    // ...and the next request on the kept-alive connection must come in full in time too
    // (however slowly it dribbles): the keep-alive wait (after which POCO's HTTP server
    // closes an idle connection itself) plus the CONNECT deadline.
    if (scope) {
      scope->registry->setDeadline(
          scope->id, ConnectionRegistry::Clock::now() + shared_.keepAlive + shared_.connectTimeout);
    }
  }

 private:
  DoorShared& shared_;
};

}  // namespace

std::string clientAddress(const Poco::Net::StreamSocket& socket) {
  Poco::Net::IPAddress host = socket.peerAddress().host();
  std::string s = host.toString();
  if (host.family() == Poco::Net::IPAddress::IPv6 && host.isIPv4Mapped()) {
    auto colon = s.rfind(':');
    if (colon != std::string::npos) s = s.substr(colon + 1);
  }
  return s;
}

Poco::Net::TCPServerConnection* GuardedConnectionFactory::createConnection(
    const Poco::Net::StreamSocket& socket) {
  return new GuardedConnection(socket, shared_, protocol_, inner_);
}

Poco::Net::HTTPRequestHandler* DoorRequestHandlerFactory::createRequestHandler(
    const Poco::Net::HTTPServerRequest& request) {
  std::string uri = request.getURI();
  std::string path = uri.substr(0, uri.find_first_of("?#"));
  if (path == "/mqtt") return new WebSocketHandler(shared_);
  return new FileHandler(shared_);
}

}  // namespace hearth::web
