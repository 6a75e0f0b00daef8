#pragma once
// A thin owner of one libmosquitto connection: MQTT 5, TCP_NODELAY, capped exponential
// reconnect backoff, a Last Will, and Response Topic / Correlation Data.
//
// Two ways to run it:
// - start(): libmosquitto's own network thread (hearthctl). Callbacks run on that thread;
//   publish()/subscribe() are safe from any thread.
// - attach(loop): the socket is serviced on the hub loop (hearthd), so messages and responses
//   cross no thread. Callbacks, publish() and subscribe() all run on the hub loop; reconnects
//   are hub-loop timers with capped exponential backoff.

#include <mosquitto.h>

#include <atomic>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "hearth/status.h"
#include "hearth/util/backoff.h"
#include "loop/hub_loop.h"

namespace hearth {

struct MqttMessage {
  std::string topic;
  std::string payload;
  std::string responseTopic;    // MQTT 5 Response Topic, empty if absent
  std::string correlationData;  // MQTT 5 Correlation Data, empty if absent
  bool hasCorrelation = false;
  bool retain = false;
};

struct MqttOptions {
  std::string host = "127.0.0.1";
  int port = 1883;
  std::string clientId;
  std::string username;
  std::string password;
  int keepaliveSec = 30;
  unsigned reconnectMinSec = 1;
  unsigned reconnectMaxSec = 30;
  bool cleanStart = true;
  std::string willTopic;  // empty = no will
  std::string willPayload;
  bool willRetain = false;
};

class MqttClient : private IoSource {
 public:
  using ConnectHandler = std::function<void(int reasonCode, const std::string& reason)>;
  using DisconnectHandler = std::function<void(int reasonCode)>;
  using MessageHandler = std::function<void(MqttMessage msg)>;
  using PublishedHandler = std::function<void(int mid, int reasonCode)>;

  explicit MqttClient(MqttOptions options);
  ~MqttClient();
  MqttClient(const MqttClient&) = delete;
  MqttClient& operator=(const MqttClient&) = delete;

  void onConnect(ConnectHandler h) { onConnect_ = std::move(h); }
  void onDisconnect(DisconnectHandler h) { onDisconnect_ = std::move(h); }
  void onMessage(MessageHandler h) { onMessage_ = std::move(h); }
  void onPublished(PublishedHandler h) { onPublished_ = std::move(h); }

  // Starts the network thread; connection failures are retried with backoff forever.
  Status start();
  // Connects from the hub loop and services the socket there; retries forever with backoff.
  Status attach(HubLoop& loop);
  // Sends DISCONNECT (the Will is not published) and joins the network thread / detaches.
  void stop();

  // Hub loop only, attached mode: writes what is queued to the socket now (a message the hub
  // relays at once must be in the kernel before a later commit can reach the disk).
  void flush();
  // Returns false when libmosquitto refused the message (e.g. not connected and the queue is
  // not accepting); *mid receives the message id for QoS > 0.
  bool publish(const std::string& topic, const std::string& payload, int qos, bool retain,
               const std::string* correlationData = nullptr, int* mid = nullptr);
  // Publishes a QoS 1 request carrying MQTT 5 Response Topic and Correlation Data.
  bool publishWithResponseTopic(const std::string& topic, const std::string& payload,
                                const std::string& responseTopic,
                                const std::string& correlationData);
  bool subscribe(const std::vector<std::string>& filters, int qos);
  bool connected() const { return connected_.load(); }
  static std::string errorString(int rc);

 private:
  static void connectCb(mosquitto*, void*, int, int, const mosquitto_property*);
  static void disconnectCb(mosquitto*, void*, int, const mosquitto_property*);
  static void messageCb(mosquitto*, void*, const mosquitto_message*, const mosquitto_property*);
  static void publishCb(mosquitto*, void*, int, int, const mosquitto_property*);

  Status configure();
  // IoSource (attach mode)
  int ioFd() const override;
  bool ioWantWrite() const override;
  void ioReadable() override;
  void ioWritable() override;
  void connectionLost();
  void scheduleReconnect();
  void tick();
  // Attach mode: libmosquitto runs its callbacks holding its callback mutex, which it locks
  // again when a write fails (to call on_disconnect). A handler that writes (flush) inside
  // on_message would then wait on itself for good. So what libmosquitto reports while one of
  // its calls runs is queued, in order, and handled once that call returned (library()).
  template <class Call>
  int library(Call call);
  void report(std::function<void()> event);
  void deliverReports();

  MqttOptions options_;
  mosquitto* mosq_ = nullptr;
  HubLoop* loop_ = nullptr;  // attach mode
  TimerId reconnectTimer_ = 0;
  TimerId tickTimer_ = 0;
  // min, 2·min, 4·min, ... max, without jitter (one hub, one broker, usually on the same host).
  util::Backoff reconnectBackoff_;
  std::atomic<bool> connected_{false};
  bool started_ = false;
  int inLibrary_ = 0;        // attach mode: libmosquitto calls under way (nested: flush)
  bool delivering_ = false;  // deliverReports() is running
  std::deque<std::function<void()>> reports_;
  ConnectHandler onConnect_;
  DisconnectHandler onDisconnect_;
  MessageHandler onMessage_;
  PublishedHandler onPublished_;
};

}  // namespace hearth
