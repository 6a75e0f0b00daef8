#pragma once
// MqttLink: one libmosquitto connection (MQTT 5, TCP_NODELAY, optional TLS) on its own I/O
// thread, which connects only when its owner asks.
//
// Unlike libmosquitto's own loop (mosquitto_loop_start), a link never reconnects by itself: the
// owner asks for every attempt with connect() and chooses the delay before it (the bridge drives
// reconnects from hub-loop timers with jittered backoff). Every attempt uses a fresh mosquitto
// object, so nothing of an old connection (libmosquitto's private queue of unacknowledged
// messages) is resent behind the owner's back: after a reconnect the owner resends from its
// outbox, in order.
//
// Subscriptions are (re)made after every CONNACK with the MQTT 5 options no-local (our own
// publications never come back to us), retain-as-published (the retain flag is forwarded as it
// was set) and send-retained-only-for-new-subscriptions (a resumed session does not replay
// retained messages).
//
// Threading: listener callbacks run on the link's I/O thread and must only hand work over (the
// bridge queues it and post()s to the hub loop). connect(), publish() and shutdown() may be
// called from any thread. Every attempt ends with exactly one onLinkDown, except the one that
// shutdown() ends.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "topic_rules.h"

namespace hearth::cloud_bridge {

enum class LinkSide { kLocal, kCloud };

struct LinkTls {
  bool enabled = false;
  std::string caFile;  // both empty: the operating system's CA store
  std::string caPath;
  std::string certFile;  // client certificate and key (both or neither)
  std::string keyFile;
  std::string alpn;  // e.g. "x-amzn-mqtt-ca" for AWS IoT Core on port 443
};

struct LinkSubscription {
  std::string filter;
  int qos = 1;
  uint32_t subscriptionId = 0;  // MQTT 5 subscription identifier; 0 = none
};

struct LinkOptions {
  LinkSide side = LinkSide::kCloud;
  std::string host;
  int port = 0;
  std::string clientId;
  std::string username;  // empty: no username/password
  std::string password;
  int keepaliveSec = 30;
  bool mqtt5 = true;  // false: MQTT 3.1.1 (no properties)
  bool cleanStart = true;
  uint32_t sessionExpirySec = 0;  // MQTT 5 only; with cleanStart false keeps the session
  int receiveMaximum = 0;         // MQTT 5 Receive Maximum we announce; 0 = libmosquitto default
  LinkTls tls;
  // An attempt that has no CONNACK this long after it started is given up.
  std::chrono::milliseconds connectTimeout{15000};
  std::vector<LinkSubscription> subscriptions;
};

struct LinkMessage {
  std::string topic;
  std::string payload;
  int qos = 0;
  bool retain = false;
  UserProperties userProperties;
  std::vector<uint32_t> subscriptionIds;
};

// Called on the link's I/O thread; `attempt` is the number connect() returned.
class LinkListener {
 public:
  virtual ~LinkListener() = default;
  virtual void onLinkUp(LinkSide side, uint64_t attempt, bool sessionPresent) = 0;
  virtual void onLinkDown(LinkSide side, uint64_t attempt, std::string error) = 0;
  virtual void onLinkMessage(LinkSide side, uint64_t attempt, LinkMessage message) = 0;
  // PUBACK (QoS 1), PUBCOMP (QoS 2) or sent (QoS 0) for message id `mid`; reasonCode >= 0x80
  // means the broker refused the message.
  virtual void onLinkPublished(LinkSide side, uint64_t attempt, int mid, int reasonCode) = 0;
  virtual void onLinkWarning(LinkSide side, uint64_t attempt, std::string warning) = 0;
};

enum class PublishResult {
  kOk,
  kNotConnected,  // the attempt is not (or no longer) connected; its onLinkDown follows
  kRefused,       // libmosquitto refused this message (e.g. QoS above the broker's maximum)
};

class MqttLink {
 public:
  // The listener must outlive the link or shutdown() must have returned.
  MqttLink(LinkOptions options, LinkListener* listener);
  ~MqttLink();
  MqttLink(const MqttLink&) = delete;
  MqttLink& operator=(const MqttLink&) = delete;

  // Starts the I/O thread, idle until connect().
  void start();
  // Asks for one connection attempt (after the current one, if any, has ended) and returns its
  // number, which every event of that attempt carries.
  uint64_t connect();
  // Publishes on attempt `attempt` if it is connected. *mid receives the message id.
  PublishResult publish(uint64_t attempt, const std::string& topic, const std::string& payload,
                        int qos, bool retain, const UserProperties& props, int* mid,
                        std::string* error = nullptr);
  // Sends DISCONNECT if connected and joins the I/O thread. An I/O thread blocked in name
  // resolution or a TCP connect to an unreachable host for longer than `grace` is detached
  // instead (it exits on its own once the call returns; the listener is no longer called).
  // Returns whether the thread was joined.
  bool shutdown(std::chrono::milliseconds grace);

 private:
  struct Shared;
  static void run(std::shared_ptr<Shared> shared);
  static std::string runAttempt(Shared& shared, uint64_t attempt);

  std::shared_ptr<Shared> shared_;
  std::thread thread_;
};

}  // namespace hearth::cloud_bridge
