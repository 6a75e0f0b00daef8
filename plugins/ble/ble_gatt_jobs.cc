// ble: commands (DeviceTransport::control) as jobs: the queue, one Connect at a time, the
// connections the plugin holds, the GATT write, the reply and the controlReply to bound users.
#include "ble_plugin.h"

#include <algorithm>
#include <cctype>
#include <utility>

#include "ble_shared.h"

namespace hearth::ble {

using namespace detail;

// ------------------------------------------------------------------------------------------
// Control

void BlePlugin::control(const std::string& deviceId, const std::string& userId,
                        const std::string& command, const std::string& paramsJson,
                        std::function<void(Result<std::string>)> done) {
  if (!started_) {
    done(Status::error(ErrorCode::kUnavailable, "the ble plugin is not running"));
    return;
  }
  // Every answer from here on is counted, refusals as well as the device's answers.
  auto answer = [this, done = std::move(done)](Result<std::string> result) {
    countResult(result);
    done(std::move(result));
  };
  auto kit = known_.find(deviceId);
  if (kit == known_.end() || kit->second.rule == nullptr) {
    answer(
        Status::error(ErrorCode::kOffline, deviceId + " has not been seen since the hub started"));
    return;
  }
  const ProductRule& rule = *kit->second.rule;
  if (!rule.control) {
    answer(Status::error(ErrorCode::kInvalidRequest,
                         "model " + rule.model + " has no control characteristic configured"));
    return;
  }
  auto payload = commandPayload(*rule.control, command, paramsJson);
  if (!payload.isOk()) {
    answer(payload.status());
    return;
  }
  if (link_ != Link::kReady) {
    const char* why = link_ == Link::kPoweredOff  ? "the Bluetooth adapter is powered off"
                      : link_ == Link::kNoAdapter ? "no Bluetooth adapter"
                                                  : "BlueZ is not reachable";
    answer(Status::error(ErrorCode::kUnavailable, why));
    return;
  }
  if (jobs_.size() >= maxQueue_) {
    answer(Status::error(ErrorCode::kUnavailable,
                         "too many commands waiting (" + std::to_string(maxQueue_) + ")"));
    return;
  }
  const uint64_t id = nextJobId_++;
  Job job;
  job.id = id;
  job.deviceId = deviceId;
  job.command = command;
  job.userId = userId;
  job.rule = &rule;
  job.payload = std::move(payload).value();
  job.done = std::move(answer);
  job.timer = ctx_.after(controlTimeout_, [this, id] {
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return;
    std::string what;
    switch (it->second.phase) {
      case Job::Phase::kQueued:
        what = "still waiting for its turn";
        break;
      case Job::Phase::kConnecting:
        what = "Device1.Connect did not complete";
        break;
      case Job::Phase::kResolving:
        what = "GATT services were not resolved";
        break;
      case Job::Phase::kWriting:
        what = "the write was not acknowledged";
        break;
      case Job::Phase::kReplying:
        what = "the device sent no reply";
        break;
    }
    finishJob(id, Status::error(ErrorCode::kTimeout, what + " within " + seconds(controlTimeout_)));
  });
  ctx_.logger().debug("command " + command + " for " + deviceId + " from " + userId + " queued");
  jobs_.emplace(id, std::move(job));
  pump();
}

void BlePlugin::pump() {
  // finishJob() pumps, and pumping can finish jobs: run one pass at a time.
  if (pumping_) {
    pumpAgain_ = true;
    return;
  }
  pumping_ = true;
  do {
    pumpAgain_ = false;
    pumpOnce();
  } while (pumpAgain_);
  pumping_ = false;
}

void BlePlugin::pumpOnce() {
  if (!started_ || link_ != Link::kReady) return;
  std::vector<uint64_t> queued;
  for (const auto& [id, job] : jobs_) {
    if (job.phase == Job::Phase::kQueued) queued.push_back(id);
  }
  for (uint64_t id : queued) {
    auto it = jobs_.find(id);
    if (it == jobs_.end() || it->second.phase != Job::Phase::kQueued) continue;
    Job& job = it->second;
    if (deviceBusy(job.deviceId)) continue;
    auto k = known_.find(job.deviceId);
    const std::string path = k == known_.end() ? "" : k->second.path;
    auto d = devices_.find(path);
    if (path.empty() || d == devices_.end()) {
      finishJob(id, Status::error(ErrorCode::kOffline,
                                  job.deviceId + " is not in range (BlueZ does not list it)"));
      continue;
    }
    job.path = path;
    if (d->second.connected.value_or(false) && d->second.servicesResolved.value_or(false)) {
      job.phase = Job::Phase::kWriting;
      auto h = held_.find(job.deviceId);
      if (h != held_.end()) h->second.idleTimer.cancel();
      beginWrite(id);
      continue;
    }
    if (connectPending_ || resolvingJob_ != 0) continue;  // connects are serialised
    if (!held_.count(job.deviceId) && !makeRoomForConnection()) continue;
    startConnect(job);
  }
}

bool BlePlugin::deviceBusy(const std::string& deviceId) const {
  return std::any_of(jobs_.begin(), jobs_.end(), [&](const auto& e) {
    return e.second.deviceId == deviceId && e.second.phase != Job::Phase::kQueued;
  });
}

bool BlePlugin::makeRoomForConnection() {
  if (held_.size() < maxConnections_) return true;
  std::string victim;
  TimePoint oldest = TimePoint::max();
  for (const auto& [id, h] : held_) {
    if (!deviceBusy(id) && h.lastUsed < oldest) {
      oldest = h.lastUsed;
      victim = id;
    }
  }
  if (victim.empty()) return false;  // every connection is in use: wait for one to finish
  ctx_.logger().debug("closing the idle connection to " + victim + " to make room");
  closeHeld(victim);
  return true;
}

void BlePlugin::startConnect(Job& job) {
  job.phase = Job::Phase::kConnecting;
  Held& h = held_[job.deviceId];
  h.path = job.path;
  h.idleTimer.cancel();
  connectPending_ = true;
  ctx_.count("connects");
  const uint64_t token = ++connectToken_;
  const uint64_t id = job.id;
  const std::string deviceId = job.deviceId;
  const std::string path = job.path;
  client_->connect(path, connectTimeout_, [this, id, token, deviceId, path](const MaybeError& err) {
    if (token != connectToken_) return;  // from a dropped BlueZ session
    connectPending_ = false;
    auto it = jobs_.find(id);
    if (it == jobs_.end()) {
      // The command timed out meanwhile. A connection nobody holds any more (it was closed
      // while connecting, e.g. with connection_idle 0) is given back.
      if (!err && !held_.count(deviceId)) client_->disconnect(path, ignoreReply);
      pump();
      return;
    }
    if (err && err->name != "org.bluez.Error.AlreadyConnected") {
      held_.erase(deviceId);
      finishJob(id, mapBluezError(err->name, err->message));
      return;
    }
    afterConnect(id);
  });
}

void BlePlugin::afterConnect(uint64_t id) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  Job& job = it->second;
  job.phase = Job::Phase::kResolving;
  resolvingJob_ = id;
  resolveTimer_ = ctx_.after(connectTimeout_, [this, id] {
    auto it = jobs_.find(id);
    if (it == jobs_.end() || it->second.phase != Job::Phase::kResolving) return;
    finishJob(id, Status::error(ErrorCode::kTimeout,
                                "connected, but BlueZ did not resolve the GATT services within " +
                                    seconds(connectTimeout_)));
  });
  auto d = devices_.find(job.path);
  if (d != devices_.end() && d->second.servicesResolved.value_or(false)) {
    servicesReady(id);
    return;
  }
  // ServicesResolved may have flipped before our cache saw it (e.g. someone else connected
  // the device); ask once, and otherwise wait for the PropertiesChanged signal.
  client_->getDeviceProperties(job.path, [this, id](const MaybeError& err, DeviceProps props) {
    auto it = jobs_.find(id);
    if (it == jobs_.end() || it->second.phase != Job::Phase::kResolving || err) return;
    auto d = devices_.find(it->second.path);
    if (d != devices_.end()) mergeDevice(d->second, props);
    if (props.servicesResolved.value_or(false)) servicesReady(id);
  });
}

void BlePlugin::servicesReady(uint64_t id) {
  if (resolvingJob_ == id) {
    resolvingJob_ = 0;
    resolveTimer_.cancel();
  }
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  it->second.phase = Job::Phase::kWriting;
  beginWrite(id);
  pump();  // the connect slot is free for the next device
}

std::string BlePlugin::findCharacteristic(const std::string& devicePath,
                                          const std::string& serviceUuid,
                                          const std::string& uuid) const {
  for (const auto& [path, c] : characteristics_) {
    if (c.uuid != uuid || !under(path, devicePath)) continue;
    auto s = services_.find(c.service);
    if (!serviceUuid.empty() && (s == services_.end() || s->second.uuid != serviceUuid)) continue;
    return path;
  }
  return "";
}

void BlePlugin::beginWrite(uint64_t id) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  Job& job = it->second;
  const ControlSpec& spec = *job.rule->control;
  job.charPath = findCharacteristic(job.path, spec.serviceUuid, spec.characteristicUuid);
  job.replyPath = spec.reply == ReplyMode::kNone ? ""
                                                 : findCharacteristic(job.path, spec.serviceUuid,
                                                                      spec.replyCharacteristicUuid);
  if (job.charPath.empty() || (spec.reply != ReplyMode::kNone && job.replyPath.empty())) {
    if (!job.refreshedGatt) {
      // Signals for GATT objects may have been missed (e.g. resolved before a resync): read
      // the tree once more before giving up.
      job.refreshedGatt = true;
      client_->getManagedObjects([this, id](const MaybeError& err, ObjectTree tree) {
        auto it = jobs_.find(id);
        if (it == jobs_.end() || it->second.phase != Job::Phase::kWriting) return;
        if (!err) {
          for (const auto& [path, object] : tree) {
            if (!object.service && !object.characteristic) continue;
            BluezObject gatt;
            gatt.service = object.service;
            gatt.characteristic = object.characteristic;
            storeObject(path, gatt);
          }
        }
        beginWrite(id);
      });
      return;
    }
    const std::string missing =
        job.charPath.empty() ? spec.characteristicUuid : spec.replyCharacteristicUuid;
    finishJob(id, Status::error(ErrorCode::kUnavailable,
                                "characteristic " + missing + " not found on " + job.deviceId +
                                    " (check the product rule of model " + job.rule->model + ")"));
    return;
  }
  if (spec.reply != ReplyMode::kNotify) {
    writeNow(id);
    return;
  }
  const std::string replyPath = job.replyPath;
  client_->startNotify(replyPath, [this, id, replyPath](const MaybeError& err) {
    auto it = jobs_.find(id);
    if (it == jobs_.end()) {
      if (!err) client_->stopNotify(replyPath, ignoreReply);
      return;
    }
    if (err) {
      finishJob(id, mapBluezError(err->name, err->message));
      return;
    }
    it->second.notifying = true;
    writeNow(id);
  });
}

void BlePlugin::writeNow(uint64_t id) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  const Job& job = it->second;
  ctx_.count("gatt_writes");
  client_->writeValue(
      job.charPath, job.payload, job.rule->control->withResponse, controlTimeout_,
      [this, id](const MaybeError& err) {
        auto it = jobs_.find(id);
        if (it == jobs_.end()) return;
        Job& job = it->second;
        if (err) {
          finishJob(id, mapBluezError(err->name, err->message), kFromDevice);
          return;
        }
        job.written = true;
        switch (job.rule->control->reply) {
          case ReplyMode::kNone:
            finishJob(id, resultJson(job, std::nullopt), kFromDevice);
            return;
          case ReplyMode::kRead:
            ctx_.count("gatt_reads");
            client_->readValue(
                job.replyPath, controlTimeout_, [this, id](const MaybeError& err, Bytes value) {
                  auto it = jobs_.find(id);
                  if (it == jobs_.end()) return;
                  if (err) {
                    finishJob(id, mapBluezError(err->name, err->message), kFromDevice);
                  } else {
                    finishJob(id, resultJson(it->second, value), kFromDevice);
                  }
                });
            return;
          case ReplyMode::kNotify:
            if (job.notified) {
              finishJob(id, resultJson(job, job.notified), kFromDevice);
            } else {
              job.phase = Job::Phase::kReplying;
            }
            return;
        }
      });
}

void BlePlugin::onNotification(const std::string& path, const Bytes& value) {
  for (auto& [id, job] : jobs_) {
    if (!job.notifying || job.replyPath != path) continue;
    if (job.phase != Job::Phase::kWriting && job.phase != Job::Phase::kReplying) continue;
    ctx_.count("gatt_notifications");
    if (job.written) {
      finishJob(id, resultJson(job, value), kFromDevice);
    } else if (!job.notified) {
      job.notified = value;
    }
    return;  // one active command per device, so one per characteristic
  }
}

void BlePlugin::onDeviceDisconnected(const std::string& deviceId) {
  held_.erase(deviceId);
  for (const auto& [id, job] : jobs_) {
    if (job.deviceId != deviceId) continue;
    if (job.phase == Job::Phase::kQueued || job.phase == Job::Phase::kConnecting) continue;
    finishJob(id, Status::error(ErrorCode::kOffline,
                                deviceId + " disconnected before the command completed"));
    return;  // one active command per device; the iterator is invalid now
  }
  pump();  // a connection slot may have freed up
}

std::string BlePlugin::resultJson(const Job& job, const std::optional<Bytes>& reply) const {
  Object o;
  o.set("deviceId", job.deviceId);
  o.set("command", job.command);
  o.set("written", toHex(job.payload));
  if (reply) o.set("reply", toHex(*reply));
  return json::text(o);
}

void BlePlugin::finishJob(uint64_t id, Result<std::string> result, bool fromDevice) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  Job job = std::move(it->second);
  jobs_.erase(it);
  job.timer.cancel();
  if (resolvingJob_ == id) {
    resolvingJob_ = 0;
    resolveTimer_.cancel();
  }
  if (job.notifying && busUp_) client_->stopNotify(job.replyPath, ignoreReply);
  if (job.phase != Job::Phase::kQueued) releaseHeld(job.deviceId);
  if (result.isOk()) {
    ctx_.logger().debug("command " + job.command + " for " + job.deviceId + " done");
  } else {
    ctx_.logger().info("command " + job.command + " for " + job.deviceId +
                       " failed: " + result.status().toString());
  }
  if (fromDevice) notifyControlReply(job, result);
  job.done(std::move(result));
  pump();
}

// Bound users hear every answer a device gave (controlReply, as from wifi_lan): the command's
// result, or the error the device itself answered a write or read of its characteristic with.
// No answer — TIMEOUT, OFFLINE (it disconnected), a command that never reached the device — is
// controlDevice's answer alone.
void BlePlugin::notifyControlReply(const Job& job, const Result<std::string>& result) {
  if (!result.isOk() && (result.status().code() == ErrorCode::kTimeout ||
                         result.status().code() == ErrorCode::kOffline)) {
    return;
  }
  Object data(Poco::JSON_PRESERVE_KEY_ORDER);
  data.set("deviceId", job.deviceId);
  data.set("userId", job.userId);
  data.set("command", job.command);
  data.set("ok", result.isOk());
  if (result.isOk()) {
    auto parsed = json::tryParseObject(result.value());
    if (!parsed.isOk()) return;  // resultJson() made it, so this does not happen
    data.set("result", parsed.value());
  } else {
    Object::Ptr error = new Object;
    error->set("code", errorCodeName(result.status().code()));
    error->set("message", result.status().message());
    data.set("error", error);
  }
  ctx_.devices().notifyBoundUsers(job.deviceId, "controlReply", json::text(data));
}

void BlePlugin::countResult(const Result<std::string>& result) {
  if (result.isOk()) {
    ctx_.count("commands_ok");
    return;
  }
  std::string name = "command_errors_";
  for (const char* c = errorCodeName(result.status().code()); *c != '\0'; ++c) {
    name += static_cast<char>(std::tolower(static_cast<unsigned char>(*c)));
  }
  ctx_.count(name);
}

void BlePlugin::failAllJobs(ErrorCode code, const std::string& why) {
  // Nothing may start while the queue is being emptied.
  const bool wasPumping = pumping_;
  pumping_ = true;
  std::vector<uint64_t> ids;
  for (const auto& [id, job] : jobs_) ids.push_back(id);
  for (uint64_t id : ids) finishJob(id, Status::error(code, why));
  pumping_ = wasPumping;
  pumpAgain_ = false;
}

void BlePlugin::releaseHeld(const std::string& deviceId) {
  auto it = held_.find(deviceId);
  if (it == held_.end() || deviceBusy(deviceId)) return;
  Held& h = it->second;
  h.lastUsed = now();
  h.idleTimer.cancel();
  if (connectionIdle_.count() == 0) {
    closeHeld(deviceId);
    return;
  }
  h.idleTimer = ctx_.after(connectionIdle_, [this, deviceId] {
    if (!held_.count(deviceId) || deviceBusy(deviceId)) return;
    closeHeld(deviceId);
    pump();
  });
}

void BlePlugin::closeHeld(const std::string& deviceId) {
  auto it = held_.find(deviceId);
  if (it == held_.end()) return;
  if (busUp_) client_->disconnect(it->second.path, ignoreReply);
  held_.erase(it);  // and its idle timer
}

}  // namespace hearth::ble
