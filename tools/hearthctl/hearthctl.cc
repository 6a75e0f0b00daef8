// hearthctl: the admin command line for hearthd, over the local MQTT broker with the admin
// account from the configuration (broker.username and its password file).
//
//   hearthctl [--config FILE] [--set key=value]... [--json] [--timeout SECONDS] COMMAND
//     status                     hub state, plugins, counters
//     plugins                    plugin states and details
//     devices                    the device inventory (bound and discovered-only devices)
//     user add NAME [--password P]   create a broker account confined to hearth/v1/u/NAME/#
//     user remove NAME
//     user list
//     pair                       the pairing link of the front door, as text and QR code
//     call METHOD [JSON]         any admin method with raw JSON params
//     backup FILE [--no-broker]  write a backup of the whole hub state to FILE, while it runs
//     restore FILE               replace the hub state with FILE's (hearthd must be stopped;
//                                waits --timeout seconds for one that is stopping)
//     verify FILE                check a backup's checksums and versions
//
// Exit codes: 0 ok, 1 the hub answered with an error (its code is printed), 2 usage or
// configuration error, 3 no answer (hub or broker not reachable).

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <qrencode.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.h"
#include "control/mqtt_client.h"
#include "hearthctl/backup_commands.h"
#include "identity/random.h"

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: hearthctl [--config FILE] [--set key=value]... [--json] [--timeout S] CMD\n"
               "  status | plugins | devices | backup FILE [--no-broker] | restore FILE |\n"
               "  verify FILE | user add NAME [--password P] |\n"
               "  user remove NAME |"
               "  user list | pair | call METHOD [JSON-PARAMS]\n");
  return 2;
}

std::string toJson(const Poco::Dynamic::Var& v) {
  std::ostringstream out;
  if (v.type() == typeid(Poco::JSON::Object::Ptr)) {
    v.extract<Poco::JSON::Object::Ptr>()->stringify(out, 2);
  } else if (v.type() == typeid(Poco::JSON::Array::Ptr)) {
    v.extract<Poco::JSON::Array::Ptr>()->stringify(out, 2);
  } else {
    out << v.toString();
  }
  return out.str();
}

struct Call {
  std::mutex mutex;
  std::condition_variable cv;
  std::optional<std::string> answer;
};

// Sends one admin request and waits for its response.
std::optional<std::string> request(const hearth::config::HubConfig& cfg, const std::string& method,
                                   const Poco::JSON::Object& params, int timeoutSec) {
  hearth::MqttOptions mo;
  mo.host = cfg.brokerHost;
  mo.port = cfg.brokerPort;
  mo.clientId = "hearthctl-" + std::to_string(getpid());
  mo.username = cfg.brokerUsername;
  mo.password = cfg.brokerPassword;
  if (mo.password.empty() && !cfg.brokerPasswordFile.empty()) {
    std::ifstream in(cfg.brokerPasswordFile);
    std::getline(in, mo.password);
  }
  mo.reconnectMaxSec = 1;
  hearth::MqttClient client(mo);
  Call call;
  const std::string id = hearth::randomHex(8);
  // A reply topic of our own, so concurrent hearthctl runs never read each other's answers.
  const std::string replyTopic = "hearth/v1/admin/res/" + mo.clientId + "/" + method;
  Poco::JSON::Object env;
  env.set("id", id);
  env.set("params", params);
  std::ostringstream payload;
  env.stringify(payload);
  client.onConnect([&](int rc, const std::string& reason) {
    if (rc != 0) {
      std::fprintf(stderr, "hearthctl: broker refused %s: %s\n", mo.username.c_str(),
                   reason.c_str());
      return;
    }
    // The broker handles our SUBSCRIBE before our PUBLISH, and the hub answers only after it
    // sees the PUBLISH, so the answer cannot overtake the subscription.
    client.subscribe({replyTopic}, 1);
    client.publishWithResponseTopic("hearth/v1/admin/req/" + method, payload.str(), replyTopic, id);
  });
  client.onMessage([&](hearth::MqttMessage msg) {
    if (msg.correlationData != id) return;
    std::lock_guard<std::mutex> lock(call.mutex);
    call.answer = msg.payload;
    call.cv.notify_all();
  });
  if (!client.start()) return std::nullopt;
  std::unique_lock<std::mutex> lock(call.mutex);
  call.cv.wait_for(lock, std::chrono::seconds(timeoutSec), [&] { return call.answer.has_value(); });
  auto answer = call.answer;
  lock.unlock();
  client.stop();
  return answer;
}

// Draws text as a QR code with Unicode half blocks, two modules per character cell. Light
// modules are drawn (a terminal's light foreground on its dark background), with the quiet zone
// of 2 modules around the code that scanners need.
bool printQr(const std::string& text) {
  QRcode* qr = QRcode_encodeString(text.c_str(), 0, QR_ECLEVEL_M, QR_MODE_8, 1);
  if (!qr) return false;
  const int quiet = 2;
  const int size = qr->width + 2 * quiet;
  auto dark = [&](int x, int y) {
    x -= quiet;
    y -= quiet;
    if (x < 0 || y < 0 || x >= qr->width || y >= qr->width) return false;
    return (qr->data[y * qr->width + x] & 1) != 0;
  };
  for (int y = 0; y < size; y += 2) {
    std::string line;
    for (int x = 0; x < size; ++x) {
      bool top = !dark(x, y);
      bool bottom = y + 1 < size && !dark(x, y + 1);
      line += top && bottom ? "\u2588" : top ? "\u2580" : bottom ? "\u2584" : " ";
    }
    std::printf("  %s\n", line.c_str());
  }
  QRcode_free(qr);
  return true;
}

void printPair(const Poco::JSON::Object::Ptr& r) {
  const std::string url = r->optValue<std::string>("url", "");
  std::printf("Pair a phone, TV or browser with this hub: scan the code with the hearth app\n"
              "or enter the link. ca= is the fingerprint of the hub's own CA.\n\n");
  if (!printQr(url)) std::printf("  (the link is too long for a QR code)\n");
  std::printf("\n%s\n\n", url.c_str());
  if (r->has("web")) std::printf("  web app     %s\n", r->getValue<std::string>("web").c_str());
  if (r->has("wss")) std::printf("  MQTT (wss)  %s\n", r->getValue<std::string>("wss").c_str());
  if (r->has("mqtts")) {
    std::printf("  MQTT (TLS)  %s\n", r->getValue<std::string>("mqtts").c_str());
  }
}

// A plugin's counters that are not zero (details.<plugin>.counters), "name value" pairs in
// name order, on indented lines of at most 100 columns; nothing when it has none.
void printCounters(const Poco::JSON::Object::Ptr& detail) {
  auto counters = detail ? detail->getObject("counters") : nullptr;
  if (!counters) return;
  std::string line;
  for (const auto& key : counters->getNames()) {  // sorted
    const std::string value = counters->get(key).toString();
    if (value == "0") continue;
    const std::string item = key + " " + value;
    if (!line.empty() && 4 + line.size() + 2 + item.size() > 100) {
      std::printf("    %s\n", line.c_str());
      line.clear();
    }
    line += (line.empty() ? "" : ", ") + item;
  }
  if (!line.empty()) std::printf("    %s\n", line.c_str());
}

void printHuman(const std::string& method, const Poco::JSON::Object::Ptr& r) {
  if (method == "pair") {
    printPair(r);
    return;
  }
  if (method == "status" || method == "plugins") {
    if (r->has("state")) {
      std::printf("hearthd %s: %s (user management: %s)\n",
                  r->optValue<std::string>("version", "?").c_str(),
                  r->optValue<std::string>("state", "?").c_str(),
                  r->optValue<std::string>("userManagement", "?").c_str());
    }
    auto plugins = r->getObject("plugins");
    auto details = r->getObject("details");
    std::printf("plugins:%s\n", plugins && plugins->size() ? "" : " none");
    for (const auto& name : plugins ? plugins->getNames() : std::vector<std::string>{}) {
      std::string error;
      if (details && details->getObject(name) && details->getObject(name)->has("error")) {
        error = " — " + details->getObject(name)->getValue<std::string>("error");
      }
      std::printf("  %-16s %s%s\n", name.c_str(), plugins->getValue<std::string>(name).c_str(),
                  error.c_str());
      printCounters(details ? details->getObject(name) : nullptr);
    }
    if (auto c = r->getObject("counters")) {
      std::printf("users: %s, terminals: %s, requests: %s, errors: %s\n",
                  r->get("users").toString().c_str(), r->get("terminals").toString().c_str(),
                  c->get("requests").toString().c_str(), c->get("errors").toString().c_str());
    }
    return;
  }
  if (method == "devices") {
    auto devices = r->getArray("devices");
    if (!devices || devices->size() == 0) std::printf("no devices\n");
    for (size_t i = 0; devices && i < devices->size(); ++i) {
      auto d = devices->getObject(static_cast<unsigned>(i));
      std::string owner = d->optValue<std::string>("owner", "-");
      std::printf("%-24s %-6s %-16s %-8s %-15s owner: %s (%s bound)\n",
                  d->getValue<std::string>("deviceId").c_str(),
                  d->getValue<std::string>("transport").c_str(),
                  d->getValue<std::string>("model").c_str(),
                  d->getValue<bool>("online") ? "online" : "offline",
                  d->getValue<bool>("inventoryOnly") ? "discovered"
                                                     : d->getValue<std::string>("bindMode").c_str(),
                  owner.c_str(), d->get("bindings").toString().c_str());
    }
    return;
  }
  if (method == "userList") {
    auto users = r->getArray("users");
    if (!users || users->size() == 0) std::printf("no users\n");
    for (size_t i = 0; users && i < users->size(); ++i) {
      auto u = users->getObject(static_cast<unsigned>(i));
      std::printf("%-24s terminals: %s (online: %s)\n", u->getValue<std::string>("userId").c_str(),
                  u->get("terminals").toString().c_str(), u->get("online").toString().c_str());
    }
    return;
  }
  std::printf("%s\n", toJson(r).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  std::string configPath = "/etc/hearth/hearth.yaml";
  std::vector<std::string> overrides;
  std::vector<std::string> args;
  bool json = false;
  int timeoutSec = 10;
  std::string password;
  bool noBroker = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) std::exit(usage());
      return argv[++i];
    };
    if (a == "--config" || a == "-c")
      configPath = next();
    else if (a == "--set")
      overrides.push_back(next());
    else if (a == "--json")
      json = true;
    else if (a == "--timeout")
      timeoutSec = std::atoi(next().c_str());
    else if (a == "--password")
      password = next();
    else if (a == "--no-broker")
      noBroker = true;
    else if (a == "--help" || a == "-h")
      return usage();
    else
      args.push_back(a);
  }
  if (args.empty()) return usage();
  // Backups work on the files, not through hearthd.
  if ((args[0] == "backup" || args[0] == "restore" || args[0] == "verify") && args.size() == 2) {
    if (args[0] == "verify") return hearthctl::runVerify(args[1]);
    auto loaded = hearth::config::loadFile(configPath, overrides);
    if (!loaded.config) {
      std::fprintf(stderr, "%s\n", hearth::config::formatErrors(loaded.errors).c_str());
      return 2;
    }
    if (args[0] == "backup") return hearthctl::runBackup(*loaded.config, args[1], noBroker);
    return hearthctl::runRestore(*loaded.config, args[1], timeoutSec);
  }

  std::string method;
  Poco::JSON::Object params;
  bool generatedPassword = false;
  if (args[0] == "status" && args.size() == 1) {
    method = "status";
  } else if (args[0] == "plugins" && args.size() == 1) {
    method = "plugins";
  } else if (args[0] == "devices" && args.size() == 1) {
    method = "devices";
  } else if (args[0] == "user" && args.size() == 3 && args[1] == "add") {
    method = "userAdd";
    if (password.empty()) {
      password = hearth::randomHex(12);
      generatedPassword = true;
    }
    params.set("userId", args[2]);
    params.set("password", password);
  } else if (args[0] == "user" && args.size() == 3 && args[1] == "remove") {
    method = "userRemove";
    params.set("userId", args[2]);
  } else if (args[0] == "user" && args.size() == 2 && args[1] == "list") {
    method = "userList";
  } else if (args[0] == "pair" && args.size() == 1) {
    method = "pair";
  } else if (args[0] == "call" && (args.size() == 2 || args.size() == 3)) {
    method = args[1];
    if (args.size() == 3) {
      try {
        params = *Poco::JSON::Parser().parse(args[2]).extract<Poco::JSON::Object::Ptr>();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "hearthctl: params must be a JSON object: %s\n", e.what());
        return 2;
      }
    }
  } else {
    return usage();
  }

  auto loaded = hearth::config::loadFile(configPath, overrides);
  if (!loaded.config) {
    std::fprintf(stderr, "%s\n", hearth::config::formatErrors(loaded.errors).c_str());
    return 2;
  }
  auto answer = request(*loaded.config, method, params, timeoutSec);
  if (!answer) {
    std::fprintf(stderr,
                 "hearthctl: no answer from hearthd within %d s (is it running, and "
                 "is mqtt://%s:%d reachable?)\n",
                 timeoutSec, loaded.config->brokerHost.c_str(), loaded.config->brokerPort);
    return 3;
  }
  Poco::JSON::Object::Ptr res;
  try {
    res = Poco::JSON::Parser().parse(*answer).extract<Poco::JSON::Object::Ptr>();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hearthctl: unreadable answer: %s\n", e.what());
    return 3;
  }
  if (!res->optValue<bool>("ok", false)) {
    auto err = res->getObject("error");
    std::string code = err ? err->optValue<std::string>("code", "INTERNAL") : "INTERNAL";
    std::string message = err ? err->optValue<std::string>("message", "") : "";
    if (json) {
      std::printf("%s\n", toJson(res).c_str());
    }
    std::fprintf(stderr, "error: %s: %s\n", code.c_str(), message.c_str());
    if (method == "pair" && code == "UNKNOWN_METHOD") {
      std::fprintf(stderr, "hearthctl: the front door (plugin web) is not running; see "
                           "hearthctl plugins\n");
    }
    return 1;
  }
  auto result = res->getObject("result");
  if (json) {
    std::printf("%s\n", toJson(result).c_str());
  } else if (method == "userAdd") {
    std::printf("user %s added%s\n", args[2].c_str(),
                generatedPassword ? (" with password " + password).c_str() : "");
  } else if (method == "userRemove") {
    std::printf("user %s removed\n", args[2].c_str());
  } else {
    printHuman(method, result);
  }
  return 0;
}
