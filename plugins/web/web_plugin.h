#pragma once
// Plugin `web`, the front door (SPEC §7, docs/front-door.md): everything from the LAN enters
// hearth here, always over TLS. It owns the hub CA and the server certificate, the listeners
// (FrontDoor), the `pair` admin method and what hub/status shows about the door. The plugin
// object lives on the hub loop; the connections run on the front door's own threads.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "front_door.h"
#include "hearth/host.h"
#include "hearth/plugin.h"
#include "hub_ca.h"

namespace hearth::web {

class WebPlugin : public Plugin {
 public:
  explicit WebPlugin(PluginContext& ctx);
  ~WebPlugin() override;

  Status start() override;
  void stop() override;

  // --check-config and SIGHUP: listen addresses, ports, metrics_listen and the certificate
  // keys, by the code start() uses.
  static Status validate(const ConfigView& c);
  static const hearth_config_key* configKeys();
  static size_t configKeyCount();

 private:
  Status loadConfig(FrontDoorConfig* out);
  static Status readSettings(const ConfigView& c, FrontDoorConfig* out);
  static Status checkCertificateKeys(const ConfigView& c);
  Status prepareCertificates();
  void checkAddresses();
  void publishStatus(bool force);
  std::string pairingHost() const;
  std::string pairJson() const;

  PluginContext& ctx_;
  std::unique_ptr<FrontDoor> door_;
  std::unique_ptr<HubCa> ca_;  // null when the installer's certificate is used
  ServerIdentity identity_;
  CertFiles certs_;
  std::string fingerprint_;
  std::vector<std::string> listen_;
  int httpsPort_ = 0;
  int mqttsPort_ = 0;
  std::string publicHost_;
  Timer statusTimer_;   // every 2 s: hub/status detail and the /metrics plugin-counter snapshot
  Timer addressTimer_;  // every 30 s, hub CA only: re-issue the certificate on address changes
  std::string lastDetail_;
};

}  // namespace hearth::web
