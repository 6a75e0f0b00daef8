#include "ha_link.h"

#include <mqtt_protocol.h>

#include <mutex>

namespace hearth::home_assistant {
namespace {
std::once_flag gLibInit;
}

HaLink::HaLink(LinkOptions options, Handlers handlers)
    : options_(std::move(options)), handlers_(std::move(handlers)) {
  std::call_once(gLibInit, [] { mosquitto_lib_init(); });
  mosq_ = mosquitto_new(options_.clientId.c_str(), true, this);
  if (mosq_ == nullptr) return;
  mosquitto_int_option(mosq_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
  // Nagle plus delayed ACKs add ~40 ms to every QoS 1 round trip.
  mosquitto_int_option(mosq_, MOSQ_OPT_TCP_NODELAY, 1);
  mosquitto_connect_v5_callback_set(mosq_, &HaLink::onConnect);
  mosquitto_disconnect_v5_callback_set(mosq_, &HaLink::onDisconnect);
  mosquitto_message_v5_callback_set(mosq_, &HaLink::onMessage);
}

HaLink::~HaLink() {
  stop();
  if (mosq_ != nullptr) mosquitto_destroy(mosq_);
}

Status HaLink::start() {
  if (mosq_ == nullptr) return Status::error(ErrorCode::kInternal, "mosquitto_new failed");
  if (!options_.username.empty()) {
    mosquitto_username_pw_set(mosq_, options_.username.c_str(),
                              options_.password.empty() ? nullptr : options_.password.c_str());
  }
  if (options_.tls) {
    int rc = options_.caFile.empty() ? mosquitto_int_option(mosq_, MOSQ_OPT_TLS_USE_OS_CERTS, 1)
                                     : mosquitto_tls_set(mosq_, options_.caFile.c_str(), nullptr,
                                                         nullptr, nullptr, nullptr);
    if (rc != MOSQ_ERR_SUCCESS) {
      return Status::error(ErrorCode::kInvalidRequest,
                           std::string("broker TLS: ") + mosquitto_strerror(rc));
    }
  }
  if (!options_.willTopic.empty()) {
    int rc = mosquitto_will_set_v5(mosq_, options_.willTopic.c_str(),
                                   static_cast<int>(options_.willPayload.size()),
                                   options_.willPayload.data(), 1, true, nullptr);
    if (rc != MOSQ_ERR_SUCCESS) {
      return Status::error(ErrorCode::kInternal, std::string("will: ") + mosquitto_strerror(rc));
    }
  }
  mosquitto_reconnect_delay_set(mosq_, 1, 30, true);
  // A refused first attempt is fine: the network thread keeps trying with backoff.
  mosquitto_connect_async(mosq_, options_.host.c_str(), options_.port, options_.keepaliveSec);
  int rc = mosquitto_loop_start(mosq_);
  if (rc != MOSQ_ERR_SUCCESS) {
    return Status::error(ErrorCode::kInternal, std::string("mqtt loop: ") + mosquitto_strerror(rc));
  }
  started_ = true;
  return Status::ok();
}

void HaLink::stop() {
  if (!started_) return;
  started_ = false;
  mosquitto_disconnect_v5(mosq_, MQTT_RC_NORMAL_DISCONNECTION, nullptr);
  mosquitto_loop_stop(mosq_, false);
}

bool HaLink::publish(const std::string& topic, const std::string& payload, bool retain) {
  return mosquitto_publish_v5(mosq_, nullptr, topic.c_str(), static_cast<int>(payload.size()),
                              payload.data(), 1, retain, nullptr) == MOSQ_ERR_SUCCESS;
}

bool HaLink::subscribe(const std::vector<std::string>& filters, bool noLocal) {
  std::vector<char*> subs;
  for (const auto& f : filters) subs.push_back(const_cast<char*>(f.c_str()));
  return mosquitto_subscribe_multiple(mosq_, nullptr, static_cast<int>(subs.size()), subs.data(), 1,
                                      noLocal ? MQTT_SUB_OPT_NO_LOCAL : 0,
                                      nullptr) == MOSQ_ERR_SUCCESS;
}

bool HaLink::unsubscribe(const std::vector<std::string>& filters) {
  std::vector<char*> subs;
  for (const auto& f : filters) subs.push_back(const_cast<char*>(f.c_str()));
  return mosquitto_unsubscribe_multiple(mosq_, nullptr, static_cast<int>(subs.size()), subs.data(),
                                        nullptr) == MOSQ_ERR_SUCCESS;
}

void HaLink::onConnect(mosquitto*, void* obj, int rc, int, const mosquitto_property*) {
  auto* self = static_cast<HaLink*>(obj);
  if (rc == 0) {
    if (self->handlers_.connected) self->handlers_.connected();
  } else if (self->handlers_.refused) {
    self->handlers_.refused(mosquitto_reason_string(rc));
  }
}

void HaLink::onDisconnect(mosquitto*, void* obj, int, const mosquitto_property*) {
  auto* self = static_cast<HaLink*>(obj);
  if (self->handlers_.disconnected) self->handlers_.disconnected();
}

void HaLink::onMessage(mosquitto*, void* obj, const mosquitto_message* m,
                       const mosquitto_property*) {
  auto* self = static_cast<HaLink*>(obj);
  if (!self->handlers_.message) return;
  self->handlers_.message(
      m->topic,
      std::string(static_cast<const char*>(m->payload), static_cast<size_t>(m->payloadlen)),
      m->retain);
}

}  // namespace hearth::home_assistant
