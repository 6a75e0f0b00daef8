// hearth-devsim: simulates WiFi devices speaking the hearth LAN protocol (docs/lan-protocol.md)
// so that the wifi_lan plugin can be tried and tested without hardware.
//
// Every simulated device announces itself on the multicast group, answers probes, can be given
// a provisioning token (as the phone app would during WiFi setup), answers authenticated
// control commands (set / get / ping), reports state changes, can be reset, silenced or muted.
// It is scripted through stdin, one command per line; it writes one JSON object per line to
// stdout (command replies and events). See tools/hearth-devsim/README.md.
//
// Single-threaded: one poll() loop over stdin and the two sockets.

#include <Poco/Exception.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/IPAddress.h>
#include <Poco/Net/MulticastSocket.h>
#include <Poco/Net/NetworkInterface.h>
#include <Poco/Net/SocketAddress.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "hearth/status.h"
#include "lan_protocol.h"

namespace {

using Clock = std::chrono::steady_clock;
using Poco::Net::IPAddress;
using Poco::Net::MulticastSocket;
using Poco::Net::NetworkInterface;
using Poco::Net::SocketAddress;
using Obj = Poco::JSON::Object;
namespace lan = hearth::lan;

volatile sig_atomic_t gStop = 0;
void onSignal(int) { gStop = 1; }

struct Options {
  int count = 1;
  std::string prefix = "sim-";
  std::string model = "hearth-sim-lamp";
  std::string name;  // empty: "Simulated <id>"
  std::string firmware = "1.0.0";
  std::string group = lan::kDefaultGroup;
  uint16_t port = lan::kDefaultPort;
  std::string interface;
  uint16_t controlPort = 0;
  std::chrono::milliseconds period{5000};
  std::chrono::milliseconds provisionWindow{120000};
  int bindWindow = 0;
  bool silent = false;
  std::vector<std::pair<std::string, std::string>> provisions;
};

struct Device {
  std::string id;
  std::string name;
  bool silent = false;  // powered off: says nothing, hears nothing
  bool muted = false;   // hears commands (and reports them) but does not answer
  // Bind window: 0 always; > 0 open until windowEnd; < 0 closed.
  int bindWindow = 0;
  Clock::time_point windowEnd{};
  std::string confirmedKey;  // the key the hub acknowledged (empty = never provisioned)
  std::string pendingToken;  // announced until the hub acknowledges or the window ends
  std::string pendingKey;
  Clock::time_point pendingUntil{};
  uint64_t counter = 0;   // this device's message counter
  uint64_t hubFloor = 0;  // highest hub counter accepted
  std::string lastReq;
  std::string lastReply;
  Clock::time_point nextAnnounce{};
  Obj::Ptr state;
};

void emit(const Obj& o) {
  std::ostringstream out;
  o.stringify(out);
  std::cout << out.str() << std::endl;  // flushed: tests read line by line
}

void reply(const std::string& cmd, bool ok, const std::string& error = {}) {
  Obj o(Poco::JSON_PRESERVE_KEY_ORDER);
  o.set("reply", cmd);
  o.set("ok", ok);
  if (!ok) o.set("error", error);
  emit(o);
}

std::string stringify(const Obj& o) {
  std::ostringstream out;
  o.stringify(out);
  return out.str();
}

bool parseDuration(const std::string& text, std::chrono::milliseconds* out) {
  try {
    size_t used = 0;
    double v = std::stod(text, &used);
    std::string unit = text.substr(used);
    double ms = unit == "ms"                  ? v
                : unit == "s" || unit.empty() ? v * 1000
                : unit == "m"                 ? v * 60000
                                              : -1;
    if (ms < 0) return false;
    *out = std::chrono::milliseconds(static_cast<int64_t>(ms));
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

void usage() {
  std::cerr
      << "usage: hearth-devsim [options]\n"
         "  --count N              devices to simulate (default 1), ids PREFIX0001...\n"
         "  --prefix P             device id prefix (default sim-)\n"
         "  --model M              model of every device (default hearth-sim-lamp)\n"
         "  --name N               name of every device (default \"Simulated <id>\")\n"
         "  --firmware F           firmware version (default 1.0.0)\n"
         "  --group ADDR           multicast group (default 239.255.72.1)\n"
         "  --port N               multicast port (default 47800)\n"
         "  --interface NAME       interface for multicast (default: first up non-loopback)\n"
         "  --control-port N       UDP port for commands (default: any free port)\n"
         "  --period D             announce period, e.g. 5s, 500ms (default 5s)\n"
         "  --bind-window S        0 always bindable, >0 open S seconds from start, <0 closed\n"
         "  --provision-window D   how long a token is announced without an ack (default 120s)\n"
         "  --provision DEV=TOKEN  provision a device at start (repeatable)\n"
         "  --silent               start every device silent\n"
         "stdin commands: provision DEV TOKEN | silence DEV|all | wake DEV|all | mute DEV |\n"
         "  unmute DEV | reset DEV | window DEV SECONDS | state DEV JSON | announce DEV|all |\n"
         "  list | quit\n";
}

class Simulator {
 public:
  explicit Simulator(Options o) : opt_(std::move(o)), rng_(std::random_device{}()) {}

  int run() {
    if (!open()) return 1;
    Clock::time_point start = Clock::now();
    uint64_t base = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                              std::chrono::system_clock::now().time_since_epoch())
                                              .count());
    for (int i = 0; i < opt_.count; ++i) {
      Device d;
      char id[80];
      std::snprintf(id, sizeof(id), "%s%04d", opt_.prefix.c_str(), i + 1);
      d.id = id;
      d.name = opt_.name.empty() ? "Simulated " + d.id : opt_.name;
      d.silent = opt_.silent;
      setWindow(d, opt_.bindWindow);
      // Wall-clock microseconds: a restarted simulator stays above what the hub has seen.
      d.counter = base;
      d.state = new Obj;
      d.state->set("on", false);
      // Spread announcements over the period rather than sending them in one burst.
      d.nextAnnounce = start + opt_.period * i / std::max(1, opt_.count);
      index_[d.id] = devices_.size();
      devices_.push_back(std::move(d));
    }
    for (const auto& [id, token] : opt_.provisions) {
      std::string error = provision(id, token);
      if (!error.empty()) {
        std::cerr << "hearth-devsim: --provision " << id << ": " << error << "\n";
        return 2;
      }
    }
    Obj ready(Poco::JSON_PRESERVE_KEY_ORDER);
    ready.set("event", "ready");
    ready.set("devices", opt_.count);
    ready.set("port", static_cast<int>(unicast_->address().port()));
    ready.set("interface", interface_ ? interface_->name() : "");
    emit(ready);
    loop();
    return 0;
  }

 private:
  bool open() {
    try {
      IPAddress group(opt_.group);
      if (!opt_.interface.empty()) {
        interface_ = NetworkInterface::forName(opt_.interface, NetworkInterface::IPv4_ONLY);
      } else {
        for (const auto& ifc : NetworkInterface::list(true, true)) {
          if (!ifc.isLoopback() && ifc.supportsIPv4() && ifc.supportsMulticast()) {
            interface_ = ifc;
            break;
          }
        }
      }
      groupSocket_.emplace(SocketAddress(group, opt_.port), true);
      if (interface_) {
        groupSocket_->joinGroup(group, *interface_);
      } else {
        groupSocket_->joinGroup(group);
      }
      unicast_.emplace(SocketAddress(IPAddress("0.0.0.0"), opt_.controlPort), false);
      if (interface_) unicast_->setInterface(*interface_);
      unicast_->setLoopback(true);
      groupSocket_->setBlocking(false);
      unicast_->setBlocking(false);
      groupAddress_ = SocketAddress(group, opt_.port);
    } catch (const Poco::Exception& e) {
      std::cerr << "hearth-devsim: cannot open the sockets: " << e.displayText() << "\n";
      return false;
    }
    return true;
  }

  void setWindow(Device& d, int seconds) {
    d.bindWindow = seconds;
    d.windowEnd = Clock::now() + std::chrono::seconds(std::max(0, seconds));
  }

  int currentWindow(const Device& d) const {
    if (d.bindWindow <= 0) return d.bindWindow;
    auto left = std::chrono::duration_cast<std::chrono::seconds>(d.windowEnd - Clock::now());
    return left.count() > 0 ? static_cast<int>(left.count()) : -1;
  }

  Device* find(const std::string& id) {
    auto it = index_.find(id);
    return it == index_.end() ? nullptr : &devices_[it->second];
  }

  void send(const std::string& datagram, const SocketAddress& to) {
    if (datagram.empty()) return;
    try {
      unicast_->sendTo(datagram.data(), static_cast<int>(datagram.size()), to);
    } catch (const Poco::Exception& e) {
      std::cerr << "hearth-devsim: send to " << to.toString() << " failed: " << e.displayText()
                << "\n";
    }
  }

  std::string announcement(Device& d) {
    lan::Message a;
    a.type = lan::MessageType::kAnnounce;
    a.id = d.id;
    a.model = opt_.model;
    a.name = d.name;
    a.firmware = opt_.firmware;
    a.port = unicast_->address().port();
    a.bindWindow = currentWindow(d);
    if (!d.pendingToken.empty() && Clock::now() >= d.pendingUntil) {
      // The hub never acknowledged: the phone app would report a failed setup. Keep the old key.
      d.pendingToken.clear();
      d.pendingKey.clear();
    }
    if (!d.pendingToken.empty()) {
      a.token = d.pendingToken;
      a.ctr = ++d.counter;
      return lan::encode(a, d.pendingKey, d.confirmedKey);
    }
    if (!d.confirmedKey.empty()) {
      a.ctr = ++d.counter;
      return lan::encode(a, d.confirmedKey);
    }
    return lan::encode(a);
  }

  std::string provision(const std::string& id, const std::string& token) {
    Device* d = find(id);
    if (d == nullptr) return "no device " + id;
    if (!lan::isValidToken(token)) return "invalid token";
    d->pendingToken = token;
    d->pendingKey = lan::deriveKey(token, d->id);
    d->pendingUntil = Clock::now() + opt_.provisionWindow;
    // Announce right away, as a device does when it joins the network after setup.
    if (!d->silent && unicast_) send(announcement(*d), groupAddress_);
    return {};
  }

  void sendState(Device& d) {
    const std::string& key = d.confirmedKey.empty() ? d.pendingKey : d.confirmedKey;
    if (key.empty()) return;
    lan::Message s;
    s.type = lan::MessageType::kState;
    s.id = d.id;
    s.ctr = ++d.counter;
    s.json = stringify(*d.state);
    send(lan::encode(s, key), groupAddress_);
  }

  void dropped(const std::string& reason, const std::string& id, const SocketAddress& from) {
    Obj o(Poco::JSON_PRESERVE_KEY_ORDER);
    o.set("event", "dropped");
    o.set("reason", reason);
    o.set("id", id);
    o.set("from", from.toString());
    emit(o);
  }

  void onHubMessage(const lan::Message& m, const SocketAddress& from) {
    Device* d = find(m.id);
    if (d == nullptr) return dropped("unknownDevice", m.id, from);
    if (d->silent) return;
    std::string key;
    for (const std::string* k : {&d->confirmedKey, &d->pendingKey}) {
      if (!k->empty() && lan::verifyMac(*k, m.body, m.mac)) key = *k;
    }
    if (key.empty()) return dropped("mac", m.id, from);
    if (m.type == lan::MessageType::kControl && m.ctr == d->hubFloor && m.req == d->lastReq) {
      // The hub retransmitted: our reply was lost. Answer again without executing again.
      if (!d->muted && !d->lastReply.empty()) send(d->lastReply, from);
      return;
    }
    if (lan::checkCounter(d->hubFloor, m.ctr) != lan::CounterVerdict::kFresh) {
      return dropped("replay", m.id, from);
    }
    d->hubFloor = m.ctr;
    if (m.type == lan::MessageType::kProvisioned) {
      if (key == d->pendingKey && !d->pendingKey.empty()) {
        d->confirmedKey = d->pendingKey;
        d->pendingKey.clear();
        d->pendingToken.clear();
        Obj o(Poco::JSON_PRESERVE_KEY_ORDER);
        o.set("event", "provisioned");
        o.set("id", d->id);
        emit(o);
      }
      return;
    }
    Obj ev(Poco::JSON_PRESERVE_KEY_ORDER);
    ev.set("event", "control");
    ev.set("id", d->id);
    ev.set("req", m.req);
    ev.set("ctr", static_cast<Poco::UInt64>(m.ctr));
    ev.set("cmd", m.command);
    ev.set("params", Poco::JSON::Parser().parse(m.json));
    ev.set("from", from.toString());
    ev.set("answered", !d->muted);
    emit(ev);
    if (d->muted) return;

    lan::Message r;
    r.type = lan::MessageType::kReply;
    r.id = d->id;
    r.req = m.req;
    r.ctr = m.ctr;
    bool changed = false;
    Obj::Ptr params = Poco::JSON::Parser().parse(m.json).extract<Obj::Ptr>();
    if (m.command == "set") {
      for (const auto& [name, value] : *params) d->state->set(name, value);
      changed = true;
      Obj result;
      result.set("state", d->state);
      r.json = stringify(result);
    } else if (m.command == "get") {
      Obj result;
      result.set("state", d->state);
      r.json = stringify(result);
    } else if (m.command == "ping") {
      r.json = "{}";
    } else {
      r.ok = false;
      r.errorCode = "UNSUPPORTED";
      r.errorMessage = "unknown command " + m.command;
    }
    d->lastReq = m.req;
    d->lastReply = lan::encode(r, key);
    send(d->lastReply, from);
    if (changed) sendState(*d);
  }

  void readSocket(MulticastSocket& socket) {
    char buffer[lan::kMaxDatagramBytes + 1];
    for (int i = 0; i < 512; ++i) {
      SocketAddress from;
      int n = -1;
      try {
        n = socket.receiveFrom(buffer, sizeof(buffer), from);
      } catch (const Poco::TimeoutException&) {
        return;
      } catch (const Poco::Exception&) {
        continue;  // e.g. ICMP port unreachable from an earlier send
      }
      if (n < 0) return;
      lan::Message m;
      lan::DropReason why;
      if (!lan::decode(std::string_view(buffer, static_cast<size_t>(n)), &m, &why)) continue;
      if (m.type == lan::MessageType::kProbe) {
        onProbe(from);
      } else if (m.type == lan::MessageType::kControl || m.type == lan::MessageType::kProvisioned) {
        onHubMessage(m, from);
      }
      // Announcements and state reports of other devices (and our own, looped back): ignored.
    }
  }

  void onProbe(const SocketAddress& from) {
    // Answer within a random delay, as SSDP's MX does, so N devices do not answer at once.
    auto spread = std::min<std::chrono::milliseconds>(opt_.period, std::chrono::milliseconds(1000));
    std::uniform_int_distribution<int64_t> jitter(0, std::max<int64_t>(0, spread.count()));
    Clock::time_point now = Clock::now();
    for (size_t i = 0; i < devices_.size(); ++i) {
      if (devices_[i].silent) continue;
      answers_.emplace(now + std::chrono::milliseconds(jitter(rng_)), std::make_pair(i, from));
    }
  }

  void command(const std::string& line) {
    std::istringstream in(line);
    std::string cmd, id;
    in >> cmd >> id;
    if (cmd.empty()) return;
    auto forEach = [&](auto fn) -> bool {
      if (id == "all") {
        for (auto& d : devices_) fn(d);
        return true;
      }
      Device* d = find(id);
      if (d == nullptr) return false;
      fn(*d);
      return true;
    };
    bool ok = true;
    std::string error;
    if (cmd == "provision") {
      std::string token;
      in >> token;
      error = provision(id, token);
      ok = error.empty();
    } else if (cmd == "silence") {
      ok = forEach([](Device& d) { d.silent = true; });
    } else if (cmd == "wake") {
      ok = forEach([&](Device& d) {
        d.silent = false;
        d.nextAnnounce = Clock::now();
      });
    } else if (cmd == "mute" || cmd == "unmute") {
      ok = forEach([&](Device& d) { d.muted = cmd == "mute"; });
    } else if (cmd == "reset") {
      ok = forEach([&](Device& d) {
        if (!d.confirmedKey.empty() && !d.silent) {
          lan::Message r;
          r.type = lan::MessageType::kReset;
          r.id = d.id;
          r.ctr = ++d.counter;
          send(lan::encode(r, d.confirmedKey), groupAddress_);
        }
        d.confirmedKey.clear();
        d.pendingKey.clear();
        d.pendingToken.clear();
        d.state = new Obj;
        d.state->set("on", false);
        d.nextAnnounce = Clock::now();
      });
    } else if (cmd == "window") {
      int seconds = 0;
      if (!(in >> seconds)) {
        ok = false;
        error = "usage: window DEV SECONDS";
      } else {
        ok = forEach([&](Device& d) {
          setWindow(d, seconds);
          d.nextAnnounce = Clock::now();
        });
      }
    } else if (cmd == "state") {
      std::string json;
      std::getline(in, json);
      try {
        Obj::Ptr patch = Poco::JSON::Parser().parse(json).extract<Obj::Ptr>();
        ok = forEach([&](Device& d) {
          for (const auto& [name, value] : *patch) d.state->set(name, value);
          if (!d.silent) sendState(d);
        });
      } catch (const Poco::Exception& e) {
        ok = false;
        error = "state needs a JSON object: " + e.displayText();
      }
    } else if (cmd == "announce") {
      ok = forEach([](Device& d) { d.nextAnnounce = Clock::now(); });
    } else if (cmd == "list") {
      Poco::JSON::Array::Ptr list = new Poco::JSON::Array;
      for (const auto& d : devices_) {
        Obj::Ptr o = new Obj(Poco::JSON_PRESERVE_KEY_ORDER);
        o->set("id", d.id);
        o->set("provisioned", !d.confirmedKey.empty());
        o->set("pending", !d.pendingToken.empty());
        o->set("silent", d.silent);
        o->set("muted", d.muted);
        o->set("bindWindow", currentWindow(d));
        o->set("state", d.state);
        list->add(o);
      }
      Obj o(Poco::JSON_PRESERVE_KEY_ORDER);
      o.set("reply", "list");
      o.set("ok", true);
      o.set("devices", list);
      emit(o);
      return;
    } else if (cmd == "quit") {
      reply(cmd, true);
      gStop = 1;
      return;
    } else {
      ok = false;
      error = "unknown command";
    }
    if (!ok && error.empty()) error = "no device " + id;
    reply(cmd, ok, error);
  }

  void tick() {
    Clock::time_point now = Clock::now();
    for (auto& d : devices_) {
      if (d.silent || now < d.nextAnnounce) continue;
      send(announcement(d), groupAddress_);
      d.nextAnnounce = std::max(d.nextAnnounce + opt_.period, now);
    }
    while (!answers_.empty() && answers_.begin()->first <= now) {
      auto [index, to] = answers_.begin()->second;
      answers_.erase(answers_.begin());
      if (!devices_[index].silent) send(announcement(devices_[index]), to);
    }
  }

  void loop() {
    std::string pendingInput;
    bool stdinOpen = true;
    while (!gStop) {
      tick();
      pollfd fds[3] = {{groupSocket_->impl()->sockfd(), POLLIN, 0},
                       {unicast_->impl()->sockfd(), POLLIN, 0},
                       {STDIN_FILENO, POLLIN, 0}};
      int n = ::poll(fds, stdinOpen ? 3 : 2, 20);
      if (n < 0) {
        if (errno == EINTR) continue;
        std::perror("hearth-devsim: poll");
        return;
      }
      if (fds[0].revents & POLLIN) readSocket(*groupSocket_);
      if (fds[1].revents & POLLIN) readSocket(*unicast_);
      if (stdinOpen && (fds[2].revents & (POLLIN | POLLHUP))) {
        char buf[4096];
        ssize_t got = ::read(STDIN_FILENO, buf, sizeof(buf));
        if (got <= 0) {
          stdinOpen = false;  // keep simulating (e.g. started in the background)
          continue;
        }
        pendingInput.append(buf, static_cast<size_t>(got));
        size_t nl;
        while ((nl = pendingInput.find('\n')) != std::string::npos) {
          std::string line = pendingInput.substr(0, nl);
          pendingInput.erase(0, nl + 1);
          command(line);
        }
      }
    }
  }

  Options opt_;
  std::mt19937_64 rng_;
  std::vector<Device> devices_;
  std::map<std::string, size_t> index_;
  std::multimap<Clock::time_point, std::pair<size_t, SocketAddress>> answers_;
  std::optional<NetworkInterface> interface_;
  std::optional<MulticastSocket> groupSocket_;
  std::optional<MulticastSocket> unicast_;
  SocketAddress groupAddress_;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= args.size()) {
        std::cerr << "hearth-devsim: " << a << " needs a value\n";
        std::exit(2);
      }
      return args[++i];
    };
    try {
      if (a == "--count") {
        o.count = std::stoi(value());
        if (o.count < 1 || o.count > 100000) throw std::out_of_range("count");
      } else if (a == "--prefix") {
        o.prefix = value();
      } else if (a == "--model") {
        o.model = value();
      } else if (a == "--name") {
        o.name = value();
        if (o.name.size() > 128) throw std::out_of_range("name");
      } else if (a == "--firmware") {
        o.firmware = value();
      } else if (a == "--group") {
        o.group = value();
      } else if (a == "--port") {
        o.port = static_cast<uint16_t>(std::stoi(value()));
      } else if (a == "--interface") {
        o.interface = value();
      } else if (a == "--control-port") {
        o.controlPort = static_cast<uint16_t>(std::stoi(value()));
      } else if (a == "--period" || a == "--provision-window") {
        std::chrono::milliseconds d;
        std::string v = value();
        if (!parseDuration(v, &d) || d.count() < 10) throw std::invalid_argument(v);
        (a == "--period" ? o.period : o.provisionWindow) = d;
      } else if (a == "--bind-window") {
        o.bindWindow = std::stoi(value());
      } else if (a == "--provision") {
        std::string v = value();
        size_t eq = v.find('=');
        if (eq == std::string::npos) throw std::invalid_argument(v);
        o.provisions.emplace_back(v.substr(0, eq), v.substr(eq + 1));
      } else if (a == "--silent") {
        o.silent = true;
      } else if (a == "--help" || a == "-h") {
        usage();
        return 0;
      } else {
        std::cerr << "hearth-devsim: unknown option " << a << "\n";
        usage();
        return 2;
      }
    } catch (const std::exception&) {
      std::cerr << "hearth-devsim: bad value for " << a << "\n";
      return 2;
    }
  }
  if (!hearth::isValidIdentifier(o.prefix + "0001")) {
    std::cerr << "hearth-devsim: --prefix must make identifiers [A-Za-z0-9._:-]\n";
    return 2;
  }
  signal(SIGINT, onSignal);
  signal(SIGTERM, onSignal);
  signal(SIGPIPE, SIG_IGN);
  return Simulator(std::move(o)).run();
}
