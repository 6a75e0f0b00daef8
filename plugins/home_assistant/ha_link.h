#pragma once
// HaLink: the plugin's one connection to the broker Home Assistant uses (MQTT 5, TCP_NODELAY,
// optional TLS, a retained Will), on libmosquitto's own network thread, which reconnects with
// capped exponential backoff by itself.
//
// Threading: the callbacks run on the network thread and must only hand work to the hub loop
// (the plugin post()s). publish(), subscribe() and unsubscribe() are safe from any thread.

#include <mosquitto.h>

#include <functional>
#include <string>
#include <vector>

#include "hearth/status.h"

namespace hearth::home_assistant {

struct LinkOptions {
  std::string host = "127.0.0.1";
  int port = 1883;
  std::string clientId;
  std::string username;  // empty: no username
  std::string password;
  bool tls = false;
  std::string caFile;  // empty with tls: the operating system's CA store
  int keepaliveSec = 30;
  std::string willTopic;  // empty: no Will
  std::string willPayload;
};

class HaLink {
 public:
  struct Handlers {
    std::function<void()> connected;                      // CONNACK accepted
    std::function<void(const std::string& why)> refused;  // CONNACK refused
    std::function<void()> disconnected;
    std::function<void(std::string topic, std::string payload, bool retained)> message;
  };

  HaLink(LinkOptions options, Handlers handlers);
  ~HaLink();
  HaLink(const HaLink&) = delete;
  HaLink& operator=(const HaLink&) = delete;

  // Starts the network thread; a failed first attempt is retried like a lost connection.
  Status start();
  // Sends DISCONNECT (no Will) and joins the network thread.
  void stop();

  bool publish(const std::string& topic, const std::string& payload, bool retain);
  // noLocal: what this link publishes is not delivered back to it on these filters.
  bool subscribe(const std::vector<std::string>& filters, bool noLocal = true);
  bool unsubscribe(const std::vector<std::string>& filters);

 private:
  static void onConnect(mosquitto*, void*, int, int, const mosquitto_property*);
  static void onDisconnect(mosquitto*, void*, int, const mosquitto_property*);
  static void onMessage(mosquitto*, void*, const mosquitto_message*, const mosquitto_property*);

  LinkOptions options_;
  Handlers handlers_;
  mosquitto* mosq_ = nullptr;
  bool started_ = false;
};

}  // namespace hearth::home_assistant
