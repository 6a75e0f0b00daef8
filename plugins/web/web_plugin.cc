#include "web_plugin.h"

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/IPAddress.h>
#include <Poco/Net/NetSSL.h>
#include <Poco/URI.h>
#include <sys/stat.h>

#include "door_metrics.h"
#include "hearth/util/json.h"

namespace hearth::web {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds kStatusPeriod{2000};
constexpr milliseconds kAddressPeriod{30000};

const hearth_config_key kConfigKeys[] = {
    {"listen", HEARTH_CFG_JSON, "[\"0.0.0.0\", \"::\"]", 1, 0,
     "Addresses the front door listens on (IPv4 or IPv6 literals). 0.0.0.0 and :: = every "
     "interface; [127.0.0.1] keeps it on this machine."},
    {"https_port", HEARTH_CFG_INT, "8443", 0, 65535,
     "Port of https:// (the web app) and wss://HOST:PORT/mqtt (MQTT over WebSocket). 0 = off."},
    {"mqtts_port", HEARTH_CFG_INT, "8883", 0, 65535, "Port of mqtts:// (MQTT over TLS). 0 = off."},
    {"www_dir", HEARTH_CFG_STRING, "/usr/share/hearth/www", 1, 0,
     "Directory of the web app's static files, served at https://HOST:https_port/."},
    {"max_connections", HEARTH_CFG_INT, "256", 1, 10000,
     "Clients inside the front door at once (mqtts, wss and https together); more are refused."},
    {"max_packet_size", HEARTH_CFG_INT, "262144", 1024, 268435455,
     "Largest MQTT packet or WebSocket frame a client may send, in bytes; a larger one closes "
     "that connection."},
    {"connect_timeout", HEARTH_CFG_DURATION, "10s", 1, 600,
     "A client must complete its TLS handshake and MQTT CONNECT (or HTTP request) within this; "
     "then it is closed."},
    {"max_failed_logins", HEARTH_CFG_INT, "20", 1, 100000,
     "Failed logins (the broker's CONNACK refuses the password) from one address within "
     "failed_login_window that lock the address out."},
    {"failed_login_window", HEARTH_CFG_DURATION, "15m", 1, 86400,
     "The window max_failed_logins is counted in."},
    {"lockout_duration", HEARTH_CFG_DURATION, "15m", 1, 86400,
     "How long a locked-out address is refused at the door."},
    {"metrics_listen", HEARTH_CFG_STRING, "\"127.0.0.1:9883\"", 1, 0,
     "host:port of the plain-HTTP GET /metrics (Prometheus text). Loopback by default; \"\" = "
     "off."},
    {"cert_file", HEARTH_CFG_STRING, "\"\"", 1, 0,
     "PEM certificate chain (server first) to present instead of the hub CA's certificate. "
     "\"\" = the hub CA's, created in hub.state_dir/web."},
    {"key_file", HEARTH_CFG_STRING, "\"\"", 1, 0, "PEM private key of cert_file."},
    {"ca_file", HEARTH_CFG_STRING, "\"\"", 1, 0,
     "With cert_file: the CA certificate clients pin (its fingerprint goes into the pairing "
     "link). \"\" = pin the server certificate itself."},
    {"public_host", HEARTH_CFG_STRING, "\"\"", 1, 0,
     "Host name or address the pairing link names. \"\" = the listen address when it is one "
     "address, else the first LAN IPv4 address, else <hostname>.local."},
};

bool isWildcard(const std::string& a) { return a == "0.0.0.0" || a == "::"; }

// An IPv4 or IPv6 address in text. Not IPAddress::tryParse: POCO 1.11's refuses "::" (the IPv6
// wildcard of the default listen list) while its constructor takes it.
bool parseAddress(const std::string& text, Poco::Net::IPAddress* out) {
  try {
    *out = Poco::Net::IPAddress(text);
    return true;
  } catch (const Poco::Exception&) {
    return false;
  }
}

std::string hostForUrl(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

bool isDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

const hearth_config_key* WebPlugin::configKeys() { return kConfigKeys; }
size_t WebPlugin::configKeyCount() { return sizeof(kConfigKeys) / sizeof(kConfigKeys[0]); }

WebPlugin::WebPlugin(PluginContext& ctx) : ctx_(ctx) { Poco::Net::initializeSSL(); }

WebPlugin::~WebPlugin() {
  stop();
  Poco::Net::uninitializeSSL();
}

Status WebPlugin::validate(const ConfigView& c) {
  FrontDoorConfig scratch;
  if (Status s = readSettings(c, &scratch); !s) return s;
  return checkCertificateKeys(c);
}

Status WebPlugin::loadConfig(FrontDoorConfig* out) {
  const ConfigView& c = ctx_.config();
  if (Status s = readSettings(c, out); !s) return s;
  out->brokerHost = ctx_.localBroker().host;
  out->brokerPort = ctx_.localBroker().port;
  publicHost_ = c.getString("public_host");
  listen_ = out->listen;
  httpsPort_ = out->httpsPort;
  mqttsPort_ = out->mqttsPort;
  return Status::ok();
}

Status WebPlugin::readSettings(const ConfigView& c, FrontDoorConfig* out) {
  try {
    Poco::Dynamic::Var v = Poco::JSON::Parser().parse(c.getJson("listen"));
    auto list = v.extract<Poco::JSON::Array::Ptr>();
    if (!list || list->size() == 0) {
      return Status::error(ErrorCode::kInvalidRequest,
                           "plugins.web.listen must be a non-empty list of addresses");
    }
    for (const auto& e : *list) {
      std::string a = e.toString();
      Poco::Net::IPAddress ip;
      if (!parseAddress(a, &ip)) {
        return Status::error(ErrorCode::kInvalidRequest,
                             "plugins.web.listen: \"" + a +
                                 "\" is not an IPv4 or IPv6 address (e.g. 0.0.0.0, ::, "
                                 "192.168.1.2, 127.0.0.1)");
      }
      out->listen.push_back(a);
    }
  } catch (const Poco::Exception& e) {
    return Status::error(ErrorCode::kInvalidRequest,
                         "plugins.web.listen must be a list of addresses: " + e.displayText());
  }
  out->httpsPort = static_cast<int>(c.getInt("https_port"));
  out->mqttsPort = static_cast<int>(c.getInt("mqtts_port"));
  if (out->httpsPort == 0 && out->mqttsPort == 0) {
    return Status::error(ErrorCode::kInvalidRequest,
                         "plugins.web: https_port and mqtts_port are both 0 (nothing to serve); "
                         "disable the plugin with enabled: false instead");
  }
  if (out->httpsPort != 0 && out->httpsPort == out->mqttsPort) {
    return Status::error(ErrorCode::kInvalidRequest,
                         "plugins.web: https_port and mqtts_port must differ");
  }
  out->wwwDir = c.getString("www_dir");
  out->maxConnections = static_cast<int>(c.getInt("max_connections"));
  out->maxPacket = static_cast<size_t>(c.getInt("max_packet_size"));
  out->connectTimeout = c.getDuration("connect_timeout");
  out->maxFailedLogins = static_cast<int>(c.getInt("max_failed_logins"));
  out->failedLoginWindow = c.getDuration("failed_login_window");
  out->lockoutDuration = c.getDuration("lockout_duration");
  out->metricsListen = c.getString("metrics_listen");
  if (!out->metricsListen.empty()) {
    try {
      Poco::Net::SocketAddress sa(out->metricsListen);
      (void)sa;
    } catch (const Poco::Exception& e) {
      return Status::error(ErrorCode::kInvalidRequest,
                           "plugins.web.metrics_listen: \"" + out->metricsListen +
                               "\" is not host:port (e.g. 127.0.0.1:9883): " + e.displayText());
    }
  }
  return Status::ok();
}

Status WebPlugin::checkCertificateKeys(const ConfigView& c) {
  const bool cert = !c.getString("cert_file").empty();
  const bool key = !c.getString("key_file").empty();
  if (cert != key) {
    return Status::error(ErrorCode::kInvalidRequest,
                         "plugins.web: cert_file and key_file go together (set both, or "
                         "neither to use the hub CA)");
  }
  if (!cert && !c.getString("ca_file").empty()) {
    return Status::error(ErrorCode::kInvalidRequest,
                         "plugins.web.ca_file needs cert_file and key_file");
  }
  return Status::ok();
}

Status WebPlugin::prepareCertificates() {
  const ConfigView& c = ctx_.config();
  if (Status s = checkCertificateKeys(c); !s) return s;
  std::string certFile = c.getString("cert_file");
  std::string keyFile = c.getString("key_file");
  std::string caFile = c.getString("ca_file");
  if (!certFile.empty()) {
    ca_.reset();
    certs_ = {certFile, keyFile, caFile};
  } else {
    std::string state = ctx_.stateDir();
    if (state.empty()) {
      return Status::error(ErrorCode::kUnavailable, "the hub did not say where its state is");
    }
    ca_ = std::make_unique<HubCa>(state + "/web");
    identity_ = currentServerIdentity();
    bool reissued = false;
    Status s = ca_->ensure(identity_, &reissued);
    if (!s) return s;
    if (reissued) ctx_.logger().info("server certificate issued by the hub CA");
    certs_ = ca_->files();
  }
  auto fp = certificateFingerprint(certs_.caFile.empty() ? certs_.certFile : certs_.caFile);
  if (!fp) return fp.status();
  fingerprint_ = fp.value();
  return Status::ok();
}

Status WebPlugin::start() {
  FrontDoorConfig cfg;
  Status s = loadConfig(&cfg);
  if (s) s = prepareCertificates();
  if (!s) {
    ctx_.logger().error(s.message());
    return s;
  }
  cfg.caFile = certs_.caFile;
  if (!isDirectory(cfg.wwwDir)) {
    ctx_.logger().warn("www_dir " + cfg.wwwDir +
                       " is not a directory: https:// answers 404 until it exists");
  }
  door_ = std::make_unique<FrontDoor>(cfg);
  s = door_->tls().load(certs_.certFile, certs_.keyFile);
  if (s) s = door_->start();
  if (!s) {
    door_.reset();
    ctx_.logger().error(s.message());
    return s;
  }
  for (const auto& w : door_->warnings()) ctx_.logger().warn(w);
  std::string list;
  for (const auto& e : door_->endpoints()) list += (list.empty() ? "" : ", ") + e;
  ctx_.logger().info("front door open: " + list + "; CA " + fingerprint_);

  s = ctx_.registerMethod("pair", MethodScope::kAdmin,
                          [this](const Request&, Responder r) { r.ok(pairJson()); });
  if (!s) return s;
  statusTimer_ = ctx_.after(kStatusPeriod, [this] { publishStatus(false); });
  if (ca_) addressTimer_ = ctx_.after(kAddressPeriod, [this] { checkAddresses(); });
  publishStatus(true);
  return Status::ok();
}

void WebPlugin::stop() {
  statusTimer_.cancel();
  addressTimer_.cancel();
  if (door_) {
    door_->stop();
    door_.reset();
  }
}

void WebPlugin::checkAddresses() {
  addressTimer_ = ctx_.after(kAddressPeriod, [this] { checkAddresses(); });
  ServerIdentity now = currentServerIdentity();
  if (now.dnsNames == identity_.dnsNames && now.ipAddresses == identity_.ipAddresses) return;
  bool reissued = false;
  Status s = ca_->ensure(now, &reissued);
  if (!s) {
    ctx_.logger().error("cannot re-issue the server certificate: " + s.message());
    return;
  }
  identity_ = now;
  if (!reissued) return;
  s = door_->tls().load(certs_.certFile, certs_.keyFile);
  if (!s) {
    ctx_.logger().error("cannot load the re-issued server certificate: " + s.message());
    return;
  }
  std::string addrs;
  for (const auto& a : now.ipAddresses) addrs += (addrs.empty() ? "" : ", ") + a;
  ctx_.logger().info("addresses changed (" + addrs + "): server certificate re-issued");
}

std::string WebPlugin::pairingHost() const {
  if (!publicHost_.empty()) return publicHost_;
  if (listen_.size() == 1 && !isWildcard(listen_.front())) return listen_.front();
  ServerIdentity id = currentServerIdentity();
  for (const auto& a : id.ipAddresses) {
    Poco::Net::IPAddress ip;
    if (parseAddress(a, &ip) && ip.family() == Poco::Net::IPAddress::IPv4 &&
        !ip.isLoopback()) {
      return a;
    }
  }
  for (const auto& d : id.dnsNames) {
    if (d.size() > 6 && d.compare(d.size() - 6, 6, ".local") == 0) return d;
  }
  return "localhost";
}

std::string WebPlugin::pairJson() const {
  std::string host = pairingHost();
  int port = httpsPort_ ? httpsPort_ : mqttsPort_;
  std::string encodedHost;
  Poco::URI::encode(host, ":/?#[]@!$&'()*+,;=", encodedHost);
  Poco::JSON::Object o;
  o.set("url", "hearth://pair?host=" + encodedHost + "&port=" + std::to_string(port) +
                   "&ca=" + fingerprint_);
  o.set("host", host);
  o.set("port", port);
  o.set("ca", fingerprint_);
  if (httpsPort_) {
    o.set("web", "https://" + hostForUrl(host) + ":" + std::to_string(httpsPort_) + "/");
    o.set("wss", "wss://" + hostForUrl(host) + ":" + std::to_string(httpsPort_) + "/mqtt");
  }
  if (mqttsPort_) {
    o.set("mqtts", "mqtts://" + hostForUrl(host) + ":" + std::to_string(mqttsPort_));
    o.set("mqttsPort", mqttsPort_);
  }
  return json::text(o);
}

void WebPlugin::publishStatus(bool force) {
  if (!force) statusTimer_ = ctx_.after(kStatusPeriod, [this] { publishStatus(false); });
  if (!door_) return;
  door_->housekeep();
  // /metrics is served on the door's threads, which may not call the context: they serve this
  // snapshot, taken here on the hub loop (so at most kStatusPeriod old).
  door_->setPluginCounters(ctx_.pluginCounters());
  Poco::JSON::Object o;
  Poco::JSON::Array::Ptr endpoints = new Poco::JSON::Array;
  for (const auto& e : door_->endpoints()) endpoints->add(e);
  o.set("endpoints", endpoints);
  o.set("ca", fingerprint_);
  o.set("certificate", ca_ ? "hub CA" : "installer");
  o.set("counters", countersJson(door_->guard()));
  std::string detail = json::text(o);
  // hub/status is a retained publish: only when something changed.
  if (!force && detail == lastDetail_) return;
  lastDetail_ = detail;
  ctx_.setState(PluginState::kRunning, detail);
}

}  // namespace hearth::web
