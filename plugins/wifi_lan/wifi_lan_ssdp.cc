// wifi_lan: SSDP discovery on the hub loop (the codec is ssdp.cc).
#include "wifi_lan_plugin.h"
#include "wifi_lan_shared.h"

namespace hearth::wifi_lan {

using namespace detail;

// ------------------------------------------------------------------------------------------
// SSDP (hub loop)

void WifiLanPlugin::handleSsdp(std::string_view datagram, const std::string& host) {
  if (!running_) return;
  lan::SsdpSighting s;
  lan::SsdpKind kind = lan::parseSsdp(datagram, &s);
  if (kind == lan::SsdpKind::kIgnored) return;
  if (kind == lan::SsdpKind::kInvalid) {
    count(ssdpInvalid_, "ssdp_invalid");
    return;
  }
  std::string id = lan::ssdpDeviceId(s);
  auto it = ssdp_.find(id);
  if (s.byebye) {
    if (it != ssdp_.end() && it->second.online) {
      it->second.online = false;
      ctx_.devices().setOnline(id, false);
    }
    return;
  }
  if (it == ssdp_.end()) {
    if (devices_.size() + ssdp_.size() >= settings_.maxDevices) {
      count(DropReason::kOverLimit);
      return;
    }
    it = ssdp_.emplace(id, SsdpDevice{}).first;
  }
  SsdpDevice& d = it->second;
  SteadyTime now = ctx_.clock().steadyNow();
  // A root device sends one NOTIFY per device and service type; its device type names it best.
  std::string model = d.kind;
  if (model.empty() || (s.kind.find(":device:") != std::string::npos &&
                        model.find(":device:") == std::string::npos)) {
    model = s.kind;
  }
  std::string server = s.server.empty() ? d.server : s.server;
  bool changed = model != d.kind || server != d.server;
  bool stale = now - d.lastReport >= settings_.io.probePeriod;
  d.kind = model;
  d.server = server;
  d.lastSeen = now;
  d.maxAge = std::chrono::seconds(s.maxAgeSec);
  if (d.online && !changed && !stale) return;
  d.lastReport = now;
  DeviceReport r;
  r.deviceId = id;
  r.transport = kSsdpTransport;
  r.model = model;
  r.name = server.empty() ? host : server;
  r.bindWindowSec = -1;
  r.inventoryOnly = true;
  Status st = ctx_.devices().report(r);
  if (!st) {
    count(reportErrors_, "report_errors");
    ctx_.logger().debug("the core refused the SSDP record " + id + ": " + st.toString());
    return;
  }
  d.online = true;
}

}  // namespace hearth::wifi_lan
