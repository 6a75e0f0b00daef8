// wifi_lan: devices on the LAN: announcements, provisioning, what is reported to the core,
// state and reset messages, and presence.
#include "wifi_lan_plugin.h"

#include <algorithm>

#include "wifi_lan_shared.h"

namespace hearth::wifi_lan {

using namespace detail;

void WifiLanPlugin::handleAnnounce(const Message& m, const std::string& host) {
  auto it = devices_.find(m.id);
  LanDevice* d = it == devices_.end() ? nullptr : &it->second;
  if (!m.token.empty()) return handleProvisioning(m, host, d);
  if (d != nullptr && !d->key.empty()) {
    // A device provisioned through this hub must sign everything it says.
    if (!lan::verifyMac(d->key, m.body, m.mac)) {
      count(DropReason::kMac);
      return;
    }
    if (!acceptCounter(*d, m.ctr)) return;
    d->counterHighWater = m.ctr;
    d->counterDirty = true;
  } else if (d == nullptr) {
    if (devices_.size() + ssdp_.size() >= settings_.maxDevices) {
      count(DropReason::kOverLimit);
      return;
    }
    d = &devices_[m.id];
  }
  // Not provisioned here: discovery is unauthenticated by nature (anyone can claim to exist);
  // nothing a bound user relies on comes from such a device.
  refresh(m.id, *d, m, host);
}

void WifiLanPlugin::handleProvisioning(const Message& m, const std::string& host, LanDevice* d) {
  // The device signs a provisioning announcement with the key derived from the token it was
  // given: proof that the sender holds the token (and that the token arrived intact).
  std::string candidate = lan::deriveKey(m.token, m.id);
  if (!lan::verifyMac(candidate, m.body, m.mac)) {
    count(DropReason::kMac);
    return;
  }
  std::string tokenHash = lan::sha256Hex(m.token);
  bool keyed = d != nullptr && !d->key.empty();
  bool coSigned = keyed && !m.prevMac.empty() && lan::verifyMac(d->key, m.body, m.prevMac);

  if (keyed && d->keyTokenHash == tokenHash) {
    // A repeat of the announcement we accepted: the device has not seen our ack yet.
    if (!acceptCounter(*d, m.ctr)) return;
    d->counterHighWater = m.ctr;
    d->counterDirty = true;
    refresh(m.id, *d, m, host);
    sendProvisioned(m.id, *d);
    return;
  }
  if (keyed && lan::checkCounter(d->counterHighWater, m.ctr) != lan::CounterVerdict::kFresh) {
    acceptCounter(*d, m.ctr);  // counts it
    return;
  }
  if (d != nullptr && d->refusedTokenHash == tokenHash) {
    // The core refused this token; the device repeats it until its provisioning window ends.
    // The announcement still counts as one when the current key vouches for it, or when the
    // device has no key here (its plain announcements are accepted as discovery anyway).
    if (coSigned) {
      d->counterHighWater = m.ctr;
      d->counterDirty = true;
    }
    if (coSigned || !keyed) refresh(m.id, *d, m, host);
    return;
  }
  if (keyed && !coSigned && !ctx_.devices().boundUsers(m.id).empty()) {
    // Preemption is justified by physically re-provisioning the device (seed 003 §一). The
    // real device still holds its current key and co-signs; a LAN host that merely has a hub
    // account and a token of its own does not, and must not take a bound device.
    count(DropReason::kUnauthorized);
    ctx_.logger().warn("refused a provisioning announcement for bound device " + m.id + " from " +
                       host + " without its current key");
    // Two setups raced and this one lost (or a host with a token of its own tried): the token's
    // user hears provisionFailed{reason:"taken"} once, so the app stops waiting. Nothing else
    // happens: the token stays unspent, the device and its bindings are untouched.
    if (d->takenTokenHash != tokenHash) {
      d->takenTokenHash = tokenHash;
      Status told = ctx_.devices().refuseProvisionToken(m.id, m.token);
      if (!told.isOk()) ctx_.logger().debug("nobody told about " + m.id + ": " + told.toString());
    }
    return;
  }
  if (keyed && coSigned) {
    d->counterHighWater = m.ctr;
    d->counterDirty = true;
  }
  if (d == nullptr) {
    if (devices_.size() + ssdp_.size() >= settings_.maxDevices) {
      count(DropReason::kOverLimit);
      return;
    }
    d = &devices_[m.id];
  }
  // The core binds only devices it knows, and checks the bind window of this very report.
  refresh(m.id, *d, m, host);
  if (!d->reported) return;
  Result<std::string> bound = ctx_.devices().presentProvisionToken(m.id, m.token);
  if (!bound) {
    // The core told the token's user (provisionFailed); remember the token so that the
    // device's repeats do not trigger the same failure again.
    d->refusedTokenHash = tokenHash;
    count(provisionRefused_, "provision_refused");
    ctx_.logger().info("provisioning of " + m.id + " refused: " + bound.status().toString());
    return;
  }
  d->key = candidate;
  d->keyTokenHash = tokenHash;
  d->refusedTokenHash.clear();
  d->counterHighWater = m.ctr;
  d->counterDirty = false;
  saveKey(m.id, *d);
  count(provisionAccepted_, "provision_accepted");
  ctx_.logger().info("device " + m.id + " provisioned by " + bound.value() +
                     "; its LAN key was replaced");
  sendProvisioned(m.id, *d);
}

void WifiLanPlugin::sendProvisioned(const std::string& deviceId, const LanDevice& d) {
  Message ack;
  ack.type = MessageType::kProvisioned;
  ack.id = deviceId;
  ack.ctr = nextHubCounter();
  std::string datagram = lan::encode(ack, d.key);
  if (!datagram.empty() && !d.host.empty()) io_->sendTo(datagram, d.host, d.port);
}

void WifiLanPlugin::refresh(const std::string& deviceId, LanDevice& d, const Message& m,
                            const std::string& host) {
  SteadyTime now = ctx_.clock().steadyNow();
  int64_t nowMs = ctx_.clock().nowMs();
  bool metaChanged = d.model != m.model || d.name != m.name || d.firmware != m.firmware;
  d.model = m.model;
  d.name = m.name;
  d.firmware = m.firmware;
  d.bindWindow = m.bindWindow;
  d.host = host;
  d.port = m.port;
  d.lastSeen = now;
  bool windowChanged;
  if (m.bindWindow > 0) {
    int64_t end = nowMs + int64_t{m.bindWindow} * 1000;
    windowChanged =
        d.reportedWindow <= 0 || std::llabs(end - d.reportedWindowEndMs) > kWindowSlackMs;
  } else {
    windowChanged = d.reportedWindow != m.bindWindow;
  }
  bool stale = now - d.lastReport >= settings_.io.probePeriod;
  if (d.reported && d.online && !metaChanged && !windowChanged && !stale) return;
  if (!d.reported && d.lastReport != SteadyTime{} && !stale && !metaChanged) {
    return;  // the core refused this record recently; retried once per probe_period
  }
  if (!d.reported && !admitNewDevice(now)) {
    count(deferredReports_, "deferred_reports");
    return;
  }
  d.lastReport = now;
  DeviceReport r;
  r.deviceId = deviceId;
  r.transport = kTransport;
  r.model = m.model;
  r.name = m.name;
  r.firmware = m.firmware;
  r.bindWindowSec = m.bindWindow;
  Status s = ctx_.devices().report(r);
  if (!s) {
    count(reportErrors_, "report_errors");
    d.reported = false;
    ctx_.logger().debug("the core refused the record of " + deviceId + ": " + s.toString());
    return;
  }
  d.reported = true;
  d.online = true;
  d.reportedWindow = m.bindWindow;
  d.reportedWindowEndMs = m.bindWindow > 0 ? nowMs + int64_t{m.bindWindow} * 1000 : 0;
}

bool WifiLanPlugin::admitNewDevice(SteadyTime now) {
  double elapsed = std::chrono::duration<double>(now - newDeviceRefill_).count();
  newDeviceRefill_ = now;
  newDeviceTokens_ =
      std::min(kNewDevicesPerSecond, newDeviceTokens_ + elapsed * kNewDevicesPerSecond);
  if (newDeviceTokens_ < 1) return false;
  newDeviceTokens_ -= 1;
  return true;
}

void WifiLanPlugin::markSeen(const std::string& deviceId, LanDevice& d, const std::string& host) {
  d.lastSeen = ctx_.clock().steadyNow();
  if (!host.empty()) d.host = host;
  if (!d.online) {
    d.online = true;
    ctx_.devices().setOnline(deviceId, true);
  }
}

void WifiLanPlugin::handleState(const Message& m, const std::string& host) {
  LanDevice* d = authenticate(m);
  if (d == nullptr) return;
  markSeen(m.id, *d, host);
  count(stateReports_, "state_reports");
  Result<json::Object::Ptr> state = json::tryParseObject(m.json);
  if (!state) return;  // decode() produced m.json, an object, so this does not happen
  json::Object data(Poco::JSON_PRESERVE_KEY_ORDER);
  data.set("deviceId", m.id);
  data.set("state", state.value());
  ctx_.devices().notifyBoundUsers(m.id, "deviceState", json::text(data));
}

void WifiLanPlugin::handleReset(const Message& m) {
  // Signed with the key the device is about to wipe: only the device (or this hub) has it.
  LanDevice* d = authenticate(m);
  if (d == nullptr) return;
  count(resets_, "resets");
  Status s = ctx_.devices().reportReset(m.id);
  if (!s) ctx_.logger().warn("reset of " + m.id + " not applied: " + s.toString());
  ctx_.logger().info("device " + m.id + " was reset; its LAN key is forgotten");
  d->key.clear();
  d->keyTokenHash.clear();
  d->refusedTokenHash.clear();
  d->counterDirty = false;
  eraseKey(m.id);
}

// ------------------------------------------------------------------------------------------
// Presence (hub loop)

bool WifiLanPlugin::present(const std::string& deviceId) const {
  auto it = devices_.find(deviceId);
  return it != devices_.end() && it->second.online;
}

void WifiLanPlugin::checkPresence() {
  if (!running_) return;
  SteadyTime now = ctx_.clock().steadyNow();
  for (auto& [id, d] : devices_) {
    if (d.online && now - d.lastSeen > settings_.offlineAfter) {
      d.online = false;
      ctx_.devices().setOnline(id, false);
    }
  }
  for (auto& [id, d] : ssdp_) {
    if (d.online &&
        now - d.lastSeen > std::max<std::chrono::milliseconds>(d.maxAge, settings_.offlineAfter)) {
      d.online = false;
      ctx_.devices().setOnline(id, false);
    }
  }
}

}  // namespace hearth::wifi_lan
