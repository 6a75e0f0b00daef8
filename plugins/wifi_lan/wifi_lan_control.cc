// wifi_lan: commands to devices (DeviceTransport::control): the hub's counter, attempts,
// timeouts and the devices' replies.
#include "wifi_lan_plugin.h"

#include <Poco/RandomStream.h>

#include <algorithm>

#include "wifi_lan_shared.h"

namespace hearth::wifi_lan {

using namespace detail;

// ------------------------------------------------------------------------------------------
// Control (hub loop)

uint64_t WifiLanPlugin::nextHubCounter() {
  // Wall-clock microseconds keep the counter increasing across hub restarts; +1 keeps it
  // increasing within a microsecond or when the clock steps back.
  uint64_t floor = static_cast<uint64_t>(std::max<int64_t>(0, ctx_.clock().nowMs())) * 1000;
  hubCounter_ = std::min(lan::kMaxCounter, std::max(hubCounter_ + 1, floor));
  return hubCounter_;
}

std::string WifiLanPlugin::newRequestId() {
  char bytes[8];
  Poco::RandomInputStream random;
  random.read(bytes, sizeof(bytes));
  return lan::toHex(std::string_view(bytes, sizeof(bytes)));
}

void WifiLanPlugin::control(const std::string& deviceId, const std::string& userId,
                            const std::string& command, const std::string& paramsJson,
                            std::function<void(Result<std::string>)> done) {
  if (!running_) {
    return done(Status::error(ErrorCode::kUnavailable, "the wifi_lan plugin is not running"));
  }
  auto it = devices_.find(deviceId);
  if (it == devices_.end() || !it->second.online || it->second.host.empty()) {
    return done(Status::error(ErrorCode::kOffline, deviceId + " is not present on the LAN"));
  }
  LanDevice& d = it->second;
  if (d.key.empty()) {
    return done(Status::error(ErrorCode::kUnavailable,
                              deviceId + " has no LAN key on this hub; provision it again"));
  }
  if (pending_.size() >= settings_.maxPendingControls) {
    return done(Status::error(ErrorCode::kRateLimited, "too many commands in flight"));
  }
  Message c;
  c.type = MessageType::kControl;
  c.id = deviceId;
  c.req = newRequestId();
  c.ctr = nextHubCounter();
  c.command = command;
  c.json = paramsJson;
  std::string datagram = lan::encode(c, d.key);
  if (datagram.empty()) {
    return done(Status::error(ErrorCode::kInvalidRequest,
                              "the command does not fit one LAN datagram (" +
                                  std::to_string(lan::kMaxDatagramBytes) + " bytes)"));
  }
  PendingControl p;
  p.deviceId = deviceId;
  p.userId = userId;
  p.command = command;
  p.counter = c.ctr;
  p.datagram = std::move(datagram);
  p.host = d.host;
  p.port = d.port;
  p.attemptsLeft = settings_.controlRetries + 1;
  p.done = std::move(done);
  std::string req = c.req;
  pending_.emplace(req, std::move(p));
  count(controlSent_, "control_sent");
  sendAttempt(req);
}

void WifiLanPlugin::sendAttempt(const std::string& req) {
  PendingControl& p = pending_.at(req);
  --p.attemptsLeft;
  // A retransmission is the identical datagram: the device answers a repeat of the request it
  // last executed from its cache instead of executing it twice.
  io_->sendTo(p.datagram, p.host, p.port);
  p.timer = ctx_.after(settings_.controlTimeout, [this, req] { onControlTimeout(req); });
}

void WifiLanPlugin::onControlTimeout(const std::string& req) {
  auto it = pending_.find(req);
  if (it == pending_.end()) return;
  // The fired timer is forgotten; sendAttempt() re-arms the slot from inside its own callback.
  if (it->second.attemptsLeft > 0) {
    count(controlRetries_, "control_retries");
    sendAttempt(req);
    return;
  }
  count(controlTimeouts_, "control_timeouts");
  std::string deviceId = it->second.deviceId;
  int attempts = settings_.controlRetries + 1;
  finishControl(req,
                Status::error(ErrorCode::kTimeout, "no reply from " + deviceId + " after " +
                                                       std::to_string(attempts) + " attempts"));
}

void WifiLanPlugin::finishControl(const std::string& req, Result<std::string> result) {
  auto it = pending_.find(req);
  if (it == pending_.end()) return;
  PendingControl p = std::move(it->second);
  pending_.erase(it);
  p.timer.cancel();
  p.done(std::move(result));
}

void WifiLanPlugin::handleReply(const Message& m) {
  auto it = pending_.find(m.req);
  if (it == pending_.end() || it->second.deviceId != m.id || it->second.counter != m.ctr) {
    count(DropReason::kUnsolicited);
    return;
  }
  auto dev = devices_.find(m.id);
  if (dev == devices_.end() || !lan::verifyMac(dev->second.key, m.body, m.mac)) {
    count(DropReason::kMac);
    return;
  }
  markSeen(m.id, dev->second, "");
  count(controlReplies_, "control_replies");
  const PendingControl& p = it->second;
  json::Object data(Poco::JSON_PRESERVE_KEY_ORDER);
  data.set("deviceId", p.deviceId);
  data.set("userId", p.userId);
  data.set("command", p.command);
  data.set("ok", m.ok);
  if (m.ok) {
    // decode() produced m.json, an object, so the fallback does not happen.
    Result<json::Object::Ptr> result = json::tryParseObject(m.json);
    data.set("result", result ? result.value() : json::Object::Ptr(new json::Object));
  } else {
    json::Object::Ptr e = new json::Object;
    e->set("code", m.errorCode);
    e->set("message", m.errorMessage);
    data.set("error", e);
  }
  ctx_.devices().notifyBoundUsers(p.deviceId, "controlReply", json::text(data));
  if (m.ok) {
    finishControl(m.req, m.json);
  } else {
    finishControl(m.req,
                  Status::error(ErrorCode::kInvalidRequest,
                                "device " + m.id + " refused " + p.command + ": " + m.errorCode +
                                    (m.errorMessage.empty() ? "" : " " + m.errorMessage)));
  }
}

}  // namespace hearth::wifi_lan
