#include "door_metrics.h"

#include <sstream>
#include <vector>

namespace hearth::web {
namespace {

struct Sample {
  const char* labels;  // "" or {key="value"}
  int64_t value;
};

struct Metric {
  const char* name;
  const char* type;  // counter | gauge
  const char* help;
  std::vector<Sample> samples;
};

std::vector<Metric> metrics(DoorGuard& g) {
  DoorCounters& c = g.counters();
  return {
      {"hearth_web_connections",
       "gauge",
       "Clients inside the front door now, by protocol.",
       {{"{protocol=\"mqtts\"}", c.connectionsMqtts.load()},
        {"{protocol=\"wss\"}", c.connectionsWss.load()},
        {"{protocol=\"https\"}", c.connectionsHttps.load()}}},
      {"hearth_web_max_connections",
       "gauge",
       "The max_connections limit.",
       {{"", g.maxConnections()}}},
      {"hearth_web_connections_accepted_total",
       "counter",
       "Connections let in.",
       {{"", c.accepted.load()}}},
      {"hearth_web_connections_refused_total",
       "counter",
       "Connections refused at the door: full (max_connections) or the address locked out.",
       {{"{reason=\"full\"}", c.refusedFull.load()},
        {"{reason=\"locked_out\"}", c.refusedLocked.load()}}},
      {"hearth_web_tls_handshake_failures_total",
       "counter",
       "TLS handshakes that failed (not TLS, plain HTTP, a client refusing the certificate).",
       {{"", c.tlsFailures.load()}}},
      {"hearth_web_connect_timeouts_total",
       "counter",
       "Connections closed for not completing TLS and the MQTT CONNECT in time.",
       {{"", c.connectTimeouts.load()}}},
      {"hearth_web_oversize_closed_total",
       "counter",
       "Connections closed for an MQTT packet or WebSocket frame over the size limit.",
       {{"", c.oversize.load()}}},
      {"hearth_web_protocol_errors_total",
       "counter",
       "Requests refused for not speaking MQTT, a WebSocket without subprotocol mqtt, ...",
       {{"", c.protocolErrors.load()}}},
      {"hearth_web_logins_total",
       "counter",
       "MQTT CONNECTs the broker answered, by result.",
       {{"{result=\"ok\"}", c.loginsOk.load()}, {"{result=\"failed\"}", c.loginsFailed.load()}}},
      {"hearth_web_lockouts_total",
       "counter",
       "Times an address was locked out after too many failed logins.",
       {{"", c.lockouts.load()}}},
      {"hearth_web_locked_out_addresses",
       "gauge",
       "Addresses locked out now.",
       {{"", g.lockedAddresses()}}},
      {"hearth_web_broker_unreachable_total",
       "counter",
       "Client connections that found the local broker unreachable.",
       {{"", c.brokerUnreachable.load()}}},
      {"hearth_web_bytes_total",
       "counter",
       "MQTT bytes piped, by direction.",
       {{"{direction=\"from_clients\"}", c.bytesFromClients.load()},
        {"{direction=\"to_clients\"}", c.bytesToClients.load()}}},
      {"hearth_web_http_requests_total",
       "counter",
       "HTTP requests on the https:// port.",
       {{"", c.httpRequests.load()}}},
      {"hearth_web_http_not_found_total",
       "counter",
       "Static file requests answered 404.",
       {{"", c.httpNotFound.load()}}},
      {"hearth_web_http_refused_total",
       "counter",
       "HTTP requests refused (a method other than GET/HEAD, a path escaping the directory).",
       {{"", c.httpRefused.load()}}},
  };
}

// A label value of the text format: backslash, double quote and newline escaped. (Plugin and
// counter names are [a-z0-9_] today; the format's rule holds whatever they become.)
std::string labelValue(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

Poco::JSON::Object::Ptr countersJson(DoorGuard& g) {
  DoorCounters& c = g.counters();
  Poco::JSON::Object::Ptr o = new Poco::JSON::Object;
  Poco::JSON::Object::Ptr conns = new Poco::JSON::Object;
  conns->set("mqtts", c.connectionsMqtts.load());
  conns->set("wss", c.connectionsWss.load());
  conns->set("https", c.connectionsHttps.load());
  o->set("connections", conns);
  o->set("maxConnections", g.maxConnections());
  o->set("accepted", c.accepted.load());
  o->set("refusedFull", c.refusedFull.load());
  o->set("refusedLockedOut", c.refusedLocked.load());
  o->set("tlsHandshakeFailures", c.tlsFailures.load());
  o->set("connectTimeouts", c.connectTimeouts.load());
  o->set("oversizeClosed", c.oversize.load());
  o->set("protocolErrors", c.protocolErrors.load());
  o->set("loginsOk", c.loginsOk.load());
  o->set("loginsFailed", c.loginsFailed.load());
  o->set("lockouts", c.lockouts.load());
  o->set("lockedOutAddresses", g.lockedAddresses());
  o->set("brokerUnreachable", c.brokerUnreachable.load());
  o->set("bytesFromClients", c.bytesFromClients.load());
  o->set("bytesToClients", c.bytesToClients.load());
  o->set("httpRequests", c.httpRequests.load());
  o->set("httpNotFound", c.httpNotFound.load());
  o->set("httpRefused", c.httpRefused.load());
  return o;
}

std::string prometheusText(DoorGuard& g, const std::vector<PluginCounter>& plugins) {
  std::ostringstream out;
  for (const auto& m : metrics(g)) {
    out << "# HELP " << m.name << ' ' << m.help << '\n';
    out << "# TYPE " << m.name << ' ' << m.type << '\n';
    for (const auto& s : m.samples) out << m.name << s.labels << ' ' << s.value << '\n';
  }
  out << "# HELP hearth_plugin_counter A plugin's counter (hub/status details.<plugin>.counters), "
         "by plugin and name; starts again at 0 when the plugin restarts.\n"
         "# TYPE hearth_plugin_counter counter\n";
  for (const auto& c : plugins) {
    out << "hearth_plugin_counter{plugin=\"" << labelValue(c.plugin) << "\",name=\""
        << labelValue(c.name) << "\"} " << c.value << '\n';
  }
  return out.str();
}

}  // namespace hearth::web
