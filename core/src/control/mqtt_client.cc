#include "control/mqtt_client.h"

#include <mqtt_protocol.h>

#include <algorithm>
#include <mutex>

namespace hearth {
namespace {
std::once_flag gLibInit;
}

MqttClient::MqttClient(MqttOptions options)
    : options_(std::move(options)),
      reconnectBackoff_(std::chrono::seconds(options_.reconnectMinSec),
                        std::chrono::seconds(options_.reconnectMaxSec), 0,
                        util::Backoff::Jitter::kNone) {
  std::call_once(gLibInit, [] { mosquitto_lib_init(); });
  mosq_ = mosquitto_new(options_.clientId.empty() ? nullptr : options_.clientId.c_str(),
                        options_.cleanStart, this);
  mosquitto_int_option(mosq_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
  // Nagle plus delayed ACKs adds ~40 ms to every QoS 1 round trip.
  mosquitto_int_option(mosq_, MOSQ_OPT_TCP_NODELAY, 1);
  mosquitto_connect_v5_callback_set(mosq_, &MqttClient::connectCb);
  mosquitto_disconnect_v5_callback_set(mosq_, &MqttClient::disconnectCb);
  mosquitto_message_v5_callback_set(mosq_, &MqttClient::messageCb);
  mosquitto_publish_v5_callback_set(mosq_, &MqttClient::publishCb);
}

MqttClient::~MqttClient() {
  stop();
  mosquitto_destroy(mosq_);
}

std::string MqttClient::errorString(int rc) { return mosquitto_strerror(rc); }

template <class Call>
int MqttClient::library(Call call) {
  ++inLibrary_;
  int rc = call();
  --inLibrary_;
  deliverReports();
  return rc;
}

Status MqttClient::configure() {
  if (!options_.username.empty()) {
    mosquitto_username_pw_set(mosq_, options_.username.c_str(),
                              options_.password.empty() ? nullptr : options_.password.c_str());
  }
  if (!options_.willTopic.empty()) {
    int rc = mosquitto_will_set_v5(mosq_, options_.willTopic.c_str(),
                                   static_cast<int>(options_.willPayload.size()),
                                   options_.willPayload.data(), 1, options_.willRetain, nullptr);
    if (rc != MOSQ_ERR_SUCCESS) {
      return Status::error(ErrorCode::kInternal, "mqtt will: " + errorString(rc));
    }
  }
  return Status::ok();
}

Status MqttClient::start() {
  if (Status s = configure(); !s) return s;
  mosquitto_reconnect_delay_set(mosq_, options_.reconnectMinSec, options_.reconnectMaxSec, true);
  // A failed first attempt is fine: the network thread keeps retrying with backoff.
  mosquitto_connect_async(mosq_, options_.host.c_str(), options_.port, options_.keepaliveSec);
  int rc = mosquitto_loop_start(mosq_);
  if (rc != MOSQ_ERR_SUCCESS) {
    return Status::error(ErrorCode::kInternal, "mqtt loop: " + errorString(rc));
  }
  started_ = true;
  return Status::ok();
}

Status MqttClient::attach(HubLoop& loop) {
  if (Status s = configure(); !s) return s;
  loop_ = &loop;
  loop_->setIoSource(this);
  // Keepalive pings and timeouts are libmosquitto's loop_misc, due at least every second.
  tickTimer_ = loop_->startTimer(std::chrono::seconds(1), [this] { tick(); });
  // Non-blocking connect: EINPROGRESS completes in ioWritable(); an immediate refusal retries.
  int rc =
      mosquitto_connect_async(mosq_, options_.host.c_str(), options_.port, options_.keepaliveSec);
  if (rc != MOSQ_ERR_SUCCESS) scheduleReconnect();
  started_ = true;
  return Status::ok();
}

void MqttClient::tick() {
  tickTimer_ = loop_->startTimer(std::chrono::seconds(1), [this] { tick(); });
  if (ioFd() < 0) return;
  if (library([this] { return mosquitto_loop_misc(mosq_); }) != MOSQ_ERR_SUCCESS) {
    connectionLost();
  }
}

int MqttClient::ioFd() const { return mosquitto_socket(mosq_); }

bool MqttClient::ioWantWrite() const { return mosquitto_want_write(mosq_); }

void MqttClient::ioReadable() {
  if (library([this] { return mosquitto_loop_read(mosq_, 64); }) != MOSQ_ERR_SUCCESS) {
    connectionLost();
  }
}

void MqttClient::ioWritable() {
  if (library([this] { return mosquitto_loop_write(mosq_, 64); }) != MOSQ_ERR_SUCCESS) {
    connectionLost();
  }
}

void MqttClient::flush() {
  // libmosquitto queues a publish until the next write; this writes it now. It runs in a
  // handler of a message, never inside libmosquitto's callback (see library()): a write that
  // fails there locks libmosquitto's callback mutex to report the disconnect.
  if (loop_ == nullptr || ioFd() < 0 || !mosquitto_want_write(mosq_)) return;
  if (library([this] { return mosquitto_loop_write(mosq_, 64); }) != MOSQ_ERR_SUCCESS) {
    connectionLost();
  }
}

void MqttClient::report(std::function<void()> event) {
  // The network thread (start()) calls the handlers as before; the hub loop queues what comes
  // inside a libmosquitto call and handles it when that call returned.
  if (loop_ == nullptr) return event();
  reports_.push_back(std::move(event));
  deliverReports();
}

void MqttClient::deliverReports() {
  // Outside every libmosquitto call, and not again from inside a handler (a flush): the
  // running loop below takes what that added, in order, after the current handler.
  if (inLibrary_ > 0 || delivering_) return;
  delivering_ = true;
  struct Done {
    bool& flag;
    ~Done() { flag = false; }
  } done{delivering_};
  while (!reports_.empty()) {
    std::function<void()> event = std::move(reports_.front());
    reports_.pop_front();
    event();
  }
}

void MqttClient::connectionLost() {
  // libmosquitto has closed the socket and called the disconnect callback (if it was
  // connected); all that is left is to come back.
  connected_ = false;
  if (started_) scheduleReconnect();
}

void MqttClient::scheduleReconnect() {
  if (reconnectTimer_ != 0 || loop_ == nullptr) return;
  // Capped exponential backoff: min, 2·min, 4·min, ... max.
  reconnectTimer_ = loop_->startTimer(reconnectBackoff_.next(), [this] {
    reconnectTimer_ = 0;
    if (mosquitto_reconnect_async(mosq_) != MOSQ_ERR_SUCCESS) scheduleReconnect();
  });
}

void MqttClient::stop() {
  if (!started_) return;
  started_ = false;
  mosquitto_disconnect_v5(mosq_, MQTT_RC_NORMAL_DISCONNECTION, nullptr);
  if (loop_ != nullptr) {
    // Flush what is queued (the final status, the DISCONNECT) before detaching.
    for (int i = 0; i < 10 && ioFd() >= 0 && mosquitto_want_write(mosq_); ++i) {
      library([this] { return mosquitto_loop_write(mosq_, 64); });
    }
    loop_->cancelTimer(reconnectTimer_);
    loop_->cancelTimer(tickTimer_);
    loop_->setIoSource(nullptr);
    loop_ = nullptr;
  } else {
    mosquitto_loop_stop(mosq_, false);
  }
  connected_ = false;
}

bool MqttClient::publish(const std::string& topic, const std::string& payload, int qos, bool retain,
                         const std::string* correlationData, int* mid) {
  mosquitto_property* props = nullptr;
  if (correlationData != nullptr) {
    mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, correlationData->data(),
                                  static_cast<uint16_t>(correlationData->size()));
  }
  int rc = mosquitto_publish_v5(mosq_, mid, topic.c_str(), static_cast<int>(payload.size()),
                                payload.data(), qos, retain, props);
  mosquitto_property_free_all(&props);
  return rc == MOSQ_ERR_SUCCESS;
}

bool MqttClient::publishWithResponseTopic(const std::string& topic, const std::string& payload,
                                          const std::string& responseTopic,
                                          const std::string& correlationData) {
  mosquitto_property* props = nullptr;
  mosquitto_property_add_string(&props, MQTT_PROP_RESPONSE_TOPIC, responseTopic.c_str());
  mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, correlationData.data(),
                                static_cast<uint16_t>(correlationData.size()));
  int rc = mosquitto_publish_v5(mosq_, nullptr, topic.c_str(), static_cast<int>(payload.size()),
                                payload.data(), 1, false, props);
  mosquitto_property_free_all(&props);
  return rc == MOSQ_ERR_SUCCESS;
}

bool MqttClient::subscribe(const std::vector<std::string>& filters, int qos) {
  std::vector<char*> subs;
  for (const auto& f : filters) subs.push_back(const_cast<char*>(f.c_str()));
  int rc = mosquitto_subscribe_multiple(mosq_, nullptr, static_cast<int>(subs.size()), subs.data(),
                                        qos, 0, nullptr);
  return rc == MOSQ_ERR_SUCCESS;
}

void MqttClient::connectCb(mosquitto*, void* obj, int rc, int, const mosquitto_property*) {
  auto* self = static_cast<MqttClient*>(obj);
  self->connected_ = (rc == 0);
  if (rc == 0) self->reconnectBackoff_.reset();
  self->report([self, rc] {
    if (self->onConnect_) self->onConnect_(rc, rc == 0 ? "" : mosquitto_reason_string(rc));
  });
}

void MqttClient::disconnectCb(mosquitto*, void* obj, int rc, const mosquitto_property*) {
  auto* self = static_cast<MqttClient*>(obj);
  self->connected_ = false;
  self->report([self, rc] {
    if (self->onDisconnect_) self->onDisconnect_(rc);
  });
}

void MqttClient::messageCb(mosquitto*, void* obj, const mosquitto_message* m,
                           const mosquitto_property* props) {
  auto* self = static_cast<MqttClient*>(obj);
  if (!self->onMessage_) return;
  MqttMessage msg;
  msg.topic = m->topic;
  msg.payload.assign(static_cast<const char*>(m->payload), static_cast<size_t>(m->payloadlen));
  msg.retain = m->retain;
  char* rt = nullptr;
  if (mosquitto_property_read_string(props, MQTT_PROP_RESPONSE_TOPIC, &rt, false) != nullptr &&
      rt != nullptr) {
    msg.responseTopic = rt;
    free(rt);
  }
  void* cd = nullptr;
  uint16_t cdLen = 0;
  if (mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &cd, &cdLen, false) !=
      nullptr) {
    msg.hasCorrelation = true;
    if (cd != nullptr) {
      msg.correlationData.assign(static_cast<const char*>(cd), cdLen);
      free(cd);
    }
  }
  self->report([self, msg = std::move(msg)]() mutable {
    if (self->onMessage_) self->onMessage_(std::move(msg));
  });
}

void MqttClient::publishCb(mosquitto*, void* obj, int mid, int rc, const mosquitto_property*) {
  auto* self = static_cast<MqttClient*>(obj);
  self->report([self, mid, rc] {
    if (self->onPublished_) self->onPublished_(mid, rc);
  });
}

}  // namespace hearth
