#include "mqtt_link.h"

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <system_error>

namespace hearth::cloud_bridge {
namespace {

std::once_flag gLibInit;

constexpr int kLoopTimeoutMs = 100;

std::string errnoText(int err) { return std::system_category().message(err); }

// A libmosquitto return code as text; errno-based codes use the errno saved right after the call.
std::string describe(int rc, int savedErrno) {
  if (rc == MOSQ_ERR_ERRNO) return errnoText(savedErrno);
  return mosquitto_strerror(rc);
}

// Frees a property list when it goes out of scope.
struct PropertyList {
  mosquitto_property* list = nullptr;
  ~PropertyList() { mosquitto_property_free_all(&list); }
};

}  // namespace

struct MqttLink::Shared {
  explicit Shared(LinkOptions o, LinkListener* l) : options(std::move(o)), listener(l) {}

  const LinkOptions options;

  // Guards the fields below up to `mosq` (inclusive). Never taken inside libmosquitto callbacks.
  std::mutex mutex;
  std::condition_variable cv;
  bool stopping = false;
  bool finished = false;
  uint64_t requested = 0;  // last attempt asked for
  uint64_t begun = 0;      // last attempt the I/O thread started
  mosquitto* mosq = nullptr;
  uint64_t mosqAttempt = 0;

  std::atomic<bool> stopFlag{false};
  std::atomic<bool> connected{false};

  // Taken around every listener call; shutdown() clears the listener under it.
  std::mutex listenerMutex;
  LinkListener* listener;

  // Per attempt, I/O thread only (libmosquitto calls back on the thread running mosquitto_loop).
  uint64_t attempt = 0;
  int connackRc = 0;
  bool disconnected = false;
  int disconnectRc = 0;
  std::map<int, std::string> subscribeMids;

  // libmosquitto may also log from a publishing thread.
  std::mutex logMutex;
  std::string lastLog;

  template <typename F>
  void notify(F&& f) {
    std::lock_guard<std::mutex> lock(listenerMutex);
    if (listener != nullptr) f(*listener);
  }

  std::string takeLastLog() {
    std::lock_guard<std::mutex> lock(logMutex);
    std::string s;
    s.swap(lastLog);
    return s;
  }

  static void onConnect(mosquitto* m, void* obj, int rc, int flags, const mosquitto_property*) {
    auto* self = static_cast<Shared*>(obj);
    if (rc != 0) {
      self->connackRc = rc;
      return;
    }
    self->connected = true;
    const LinkOptions& o = self->options;
    for (const auto& sub : o.subscriptions) {
      int mid = 0;
      int src;
      if (o.mqtt5) {
        PropertyList props;
        if (sub.subscriptionId != 0) {
          mosquitto_property_add_varint(&props.list, MQTT_PROP_SUBSCRIPTION_IDENTIFIER,
                                        sub.subscriptionId);
        }
        src = mosquitto_subscribe_v5(
            m, &mid, sub.filter.c_str(), sub.qos,
            MQTT_SUB_OPT_NO_LOCAL | MQTT_SUB_OPT_RETAIN_AS_PUBLISHED | MQTT_SUB_OPT_SEND_RETAIN_NEW,
            props.list);
      } else {
        src = mosquitto_subscribe(m, &mid, sub.filter.c_str(), sub.qos);
      }
      if (src == MOSQ_ERR_SUCCESS) {
        self->subscribeMids[mid] = sub.filter;
      } else {
        std::string w = "cannot subscribe to '" + sub.filter + "': " + mosquitto_strerror(src);
        uint64_t attempt = self->attempt;
        self->notify([&](LinkListener& l) { l.onLinkWarning(o.side, attempt, w); });
      }
    }
    bool sessionPresent = (flags & 1) != 0;
    uint64_t attempt = self->attempt;
    self->notify([&](LinkListener& l) { l.onLinkUp(o.side, attempt, sessionPresent); });
  }

  static void onSubscribe(mosquitto*, void* obj, int mid, int count, const int* granted,
                          const mosquitto_property*) {
    auto* self = static_cast<Shared*>(obj);
    auto it = self->subscribeMids.find(mid);
    std::string filter = it == self->subscribeMids.end() ? "?" : it->second;
    if (it != self->subscribeMids.end()) self->subscribeMids.erase(it);
    for (int i = 0; i < count; ++i) {
      if (granted[i] < 0x80) continue;
      std::string w = "the broker refused the subscription to '" + filter +
                      "': " + mosquitto_reason_string(granted[i]);
      uint64_t attempt = self->attempt;
      self->notify([&](LinkListener& l) { l.onLinkWarning(self->options.side, attempt, w); });
    }
  }

  static void onMessage(mosquitto*, void* obj, const mosquitto_message* msg,
                        const mosquitto_property* props) {
    auto* self = static_cast<Shared*>(obj);
    LinkMessage m;
    m.topic = msg->topic;
    if (msg->payloadlen > 0) {
      m.payload.assign(static_cast<const char*>(msg->payload),
                       static_cast<size_t>(msg->payloadlen));
    }
    m.qos = msg->qos;
    m.retain = msg->retain;
    bool skip = false;
    for (const mosquitto_property* p = props;;) {
      char* name = nullptr;
      char* value = nullptr;
      p = mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &name, &value, skip);
      if (p == nullptr) break;
      m.userProperties.emplace_back(name ? name : "", value ? value : "");
      std::free(name);
      std::free(value);
      skip = true;
    }
    skip = false;
    for (const mosquitto_property* p = props;;) {
      uint32_t id = 0;
      p = mosquitto_property_read_varint(p, MQTT_PROP_SUBSCRIPTION_IDENTIFIER, &id, skip);
      if (p == nullptr) break;
      m.subscriptionIds.push_back(id);
      skip = true;
    }
    uint64_t attempt = self->attempt;
    self->notify(
        [&](LinkListener& l) { l.onLinkMessage(self->options.side, attempt, std::move(m)); });
  }

  static void onPublish(mosquitto*, void* obj, int mid, int rc, const mosquitto_property*) {
    auto* self = static_cast<Shared*>(obj);
    uint64_t attempt = self->attempt;
    self->notify([&](LinkListener& l) { l.onLinkPublished(self->options.side, attempt, mid, rc); });
  }

  static void onDisconnect(mosquitto*, void* obj, int rc, const mosquitto_property*) {
    auto* self = static_cast<Shared*>(obj);
    self->connected = false;
    self->disconnected = true;
    self->disconnectRc = rc;
  }

  static void onLog(mosquitto*, void* obj, int level, const char* text) {
    if ((level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING)) == 0 || text == nullptr) return;
    auto* self = static_cast<Shared*>(obj);
    std::lock_guard<std::mutex> lock(self->logMutex);
    self->lastLog = text;
  }
};

MqttLink::MqttLink(LinkOptions options, LinkListener* listener)
    : shared_(std::make_shared<Shared>(std::move(options), listener)) {
  std::call_once(gLibInit, [] { mosquitto_lib_init(); });
}

MqttLink::~MqttLink() {
  if (thread_.joinable()) shutdown(std::chrono::seconds(2));
}

void MqttLink::start() { thread_ = std::thread(&MqttLink::run, shared_); }

uint64_t MqttLink::connect() {
  std::lock_guard<std::mutex> lock(shared_->mutex);
  ++shared_->requested;
  shared_->cv.notify_all();
  return shared_->requested;
}

PublishResult MqttLink::publish(uint64_t attempt, const std::string& topic,
                                const std::string& payload, int qos, bool retain,
                                const UserProperties& props, int* mid, std::string* error) {
  Shared& sh = *shared_;
  // Holding the mutex keeps the I/O thread from destroying the mosquitto object meanwhile;
  // libmosquitto's own locks make publishing from here safe while the I/O thread loops.
  std::lock_guard<std::mutex> lock(sh.mutex);
  if (sh.mosq == nullptr || sh.mosqAttempt != attempt || !sh.connected) {
    return PublishResult::kNotConnected;
  }
  PropertyList list;
  if (sh.options.mqtt5) {
    for (const auto& [name, value] : props) {
      mosquitto_property_add_string_pair(&list.list, MQTT_PROP_USER_PROPERTY, name.c_str(),
                                         value.c_str());
    }
  }
  int rc = mosquitto_publish_v5(sh.mosq, mid, topic.c_str(), static_cast<int>(payload.size()),
                                payload.data(), qos, retain, list.list);
  if (rc == MOSQ_ERR_SUCCESS) return PublishResult::kOk;
  if (error != nullptr) *error = mosquitto_strerror(rc);
  if (rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_CONN_LOST || rc == MOSQ_ERR_NOMEM ||
      rc == MOSQ_ERR_ERRNO) {
    return PublishResult::kNotConnected;
  }
  return PublishResult::kRefused;
}

bool MqttLink::shutdown(std::chrono::milliseconds grace) {
  Shared& sh = *shared_;
  {
    std::lock_guard<std::mutex> lock(sh.mutex);
    sh.stopping = true;
    sh.stopFlag = true;
  }
  sh.cv.notify_all();
  if (!thread_.joinable()) return true;
  bool finished;
  {
    std::unique_lock<std::mutex> lock(sh.mutex);
    finished = sh.cv.wait_for(lock, grace, [&] { return sh.finished; });
  }
  if (finished) {
    thread_.join();
    return true;
  }
  // Blocked in getaddrinfo() or connect(): it holds its own reference to the shared state and
  // exits when the call returns; from now on it reports nothing.
  {
    std::lock_guard<std::mutex> lock(sh.listenerMutex);
    sh.listener = nullptr;
  }
  thread_.detach();
  return false;
}

void MqttLink::run(std::shared_ptr<Shared> shared) {
  Shared& sh = *shared;
  for (;;) {
    uint64_t attempt;
    {
      std::unique_lock<std::mutex> lock(sh.mutex);
      sh.cv.wait(lock, [&] { return sh.stopping || sh.requested > sh.begun; });
      if (sh.stopping) break;
      attempt = sh.begun = sh.requested;
    }
    std::string error = runAttempt(sh, attempt);
    if (sh.stopFlag) break;
    sh.notify([&](LinkListener& l) { l.onLinkDown(sh.options.side, attempt, error); });
  }
  {
    std::lock_guard<std::mutex> lock(sh.mutex);
    sh.finished = true;
  }
  sh.cv.notify_all();
}

std::string MqttLink::runAttempt(Shared& sh, uint64_t attempt) {
  const LinkOptions& o = sh.options;
  sh.attempt = attempt;
  sh.connackRc = 0;
  sh.disconnected = false;
  sh.disconnectRc = 0;
  sh.subscribeMids.clear();
  sh.takeLastLog();
  sh.connected = false;

  mosquitto* m =
      mosquitto_new(o.clientId.empty() ? nullptr : o.clientId.c_str(), o.cleanStart, &sh);
  if (m == nullptr) return "cannot create a libmosquitto client: " + errnoText(errno);
  mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION,
                       o.mqtt5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
  // Nagle plus delayed ACKs adds ~40 ms to every QoS 1 round trip.
  mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
  if (o.mqtt5 && o.receiveMaximum > 0) {
    mosquitto_int_option(m, MOSQ_OPT_RECEIVE_MAXIMUM, o.receiveMaximum);
  }
  // Other threads publish while this one runs mosquitto_loop(): libmosquitto must lock, and must
  // leave all socket writes to this thread (it wakes it through its socket pair).
  mosquitto_threaded_set(m, true);
  mosquitto_connect_v5_callback_set(m, &Shared::onConnect);
  mosquitto_subscribe_v5_callback_set(m, &Shared::onSubscribe);
  mosquitto_message_v5_callback_set(m, &Shared::onMessage);
  mosquitto_publish_v5_callback_set(m, &Shared::onPublish);
  mosquitto_disconnect_v5_callback_set(m, &Shared::onDisconnect);
  mosquitto_log_callback_set(m, &Shared::onLog);

  std::string error;
  auto fail = [&](const std::string& what, int rc) {
    error = what + ": " + mosquitto_strerror(rc);
  };
  if (!o.username.empty()) {
    int rc = mosquitto_username_pw_set(m, o.username.c_str(),
                                       o.password.empty() ? nullptr : o.password.c_str());
    if (rc != MOSQ_ERR_SUCCESS) fail("username", rc);
  }
  if (error.empty() && o.tls.enabled) {
    int rc;
    if (o.tls.caFile.empty() && o.tls.caPath.empty()) {
      rc = mosquitto_int_option(m, MOSQ_OPT_TLS_USE_OS_CERTS, 1);
      if (rc == MOSQ_ERR_SUCCESS && !o.tls.certFile.empty()) {
        // mosquitto_tls_set needs a CA; the OS store is added on top of the system bundle.
        rc = mosquitto_tls_set(m, nullptr, "/etc/ssl/certs", o.tls.certFile.c_str(),
                               o.tls.keyFile.c_str(), nullptr);
      }
    } else {
      rc = mosquitto_tls_set(m, o.tls.caFile.empty() ? nullptr : o.tls.caFile.c_str(),
                             o.tls.caPath.empty() ? nullptr : o.tls.caPath.c_str(),
                             o.tls.certFile.empty() ? nullptr : o.tls.certFile.c_str(),
                             o.tls.keyFile.empty() ? nullptr : o.tls.keyFile.c_str(), nullptr);
    }
    if (rc != MOSQ_ERR_SUCCESS) {
      fail("TLS setup", rc);
      std::string detail = sh.takeLastLog();
      if (!detail.empty()) error += " (" + detail + ")";
    }
    if (error.empty()) {
      // Verify the server certificate and its host name, always.
      mosquitto_tls_opts_set(m, 1, nullptr, nullptr);
      mosquitto_tls_insecure_set(m, false);
      if (!o.tls.alpn.empty()) {
        rc = mosquitto_string_option(m, MOSQ_OPT_TLS_ALPN, o.tls.alpn.c_str());
        if (rc != MOSQ_ERR_SUCCESS) fail("TLS ALPN", rc);
      }
    }
  }
  if (!error.empty()) {
    mosquitto_destroy(m);
    return error;
  }

  {
    std::lock_guard<std::mutex> lock(sh.mutex);
    sh.mosq = m;
    sh.mosqAttempt = attempt;
  }
  PropertyList connectProps;
  if (o.mqtt5 && o.sessionExpirySec > 0) {
    mosquitto_property_add_int32(&connectProps.list, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
                                 o.sessionExpirySec);
  }
  // Blocking TCP connect (and name resolution) on this thread: the hub loop never waits for it.
  // The TLS handshake and CONNACK complete in mosquitto_loop() below.
  int rc = mosquitto_connect_bind_v5(m, o.host.c_str(), o.port, o.keepaliveSec, nullptr,
                                     connectProps.list);
  int savedErrno = errno;
  auto tlsDetail = [&]() {
    std::string detail = sh.takeLastLog();
    return detail.empty() ? std::string() : " (" + detail + ")";
  };
  if (rc != MOSQ_ERR_SUCCESS) {
    error = "connect to " + o.host + ":" + std::to_string(o.port) + ": " +
            describe(rc, savedErrno) + (rc == MOSQ_ERR_TLS ? tlsDetail() : "");
  } else {
    auto deadline = std::chrono::steady_clock::now() + o.connectTimeout;
    while (!sh.stopFlag) {
      rc = mosquitto_loop(m, kLoopTimeoutMs, 1);
      savedErrno = errno;
      if (sh.connackRc != 0) {
        error = std::string("the broker refused the connection: ") +
                (o.mqtt5 ? mosquitto_reason_string(sh.connackRc)
                         : mosquitto_connack_string(sh.connackRc));
        break;
      }
      if (sh.disconnected) {
        int d = sh.disconnectRc;
        error = d >= 0x80 ? std::string("the broker disconnected: ") + mosquitto_reason_string(d)
                          : describe(d, savedErrno);
        if (d == MOSQ_ERR_TLS) error += tlsDetail();
        break;
      }
      if (rc != MOSQ_ERR_SUCCESS) {
        error = (sh.connected ? std::string()
                              : "connect to " + o.host + ":" + std::to_string(o.port) + ": ") +
                describe(rc, savedErrno) + (rc == MOSQ_ERR_TLS ? tlsDetail() : "");
        break;
      }
      if (!sh.connected && std::chrono::steady_clock::now() > deadline) {
        error = "no CONNACK from " + o.host + ":" + std::to_string(o.port) + " within " +
                std::to_string(o.connectTimeout.count() / 1000) + "s";
        break;
      }
    }
    if (sh.stopFlag && sh.connected) {
      // A normal DISCONNECT keeps the session (and sends no Will); give the loop a moment to
      // write it.
      mosquitto_disconnect_v5(m, MQTT_RC_NORMAL_DISCONNECTION, nullptr);
      for (int i = 0; i < 10 && !sh.disconnected; ++i) {
        if (mosquitto_loop(m, 50, 1) != MOSQ_ERR_SUCCESS) break;
      }
    }
  }
  sh.connected = false;
  {
    std::lock_guard<std::mutex> lock(sh.mutex);
    sh.mosq = nullptr;
  }
  mosquitto_destroy(m);
  return error;
}

}  // namespace hearth::cloud_bridge
