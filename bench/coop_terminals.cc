// The two terminals of bench/coop_roundtrip.py, compiled, in one process that does the whole
// measurement: A sends commands, B answers them, on two paths over the same broker —
//
//   hub:       A req/sendCommand -> hearthd (coop_relay) -> B evt/command,
//              B req/replyCommand -> hearthd -> A evt/commandResponse
//   forwarder: A bench/cmd -> coop-forwarder -> B bench/cmdin,
//              B bench/reply -> coop-forwarder -> A bench/resp
//
// with the same bodies and the same parse/build work at A and B on both paths, so what is left
// between the two is the hub's own work. Python terminals (paho) were the bottleneck: on the hub
// path each handles three messages per command (A: the sendCommand answer and the
// commandResponse; B: the command and the replyCommand answer) against two on the forwarder's.
//
// Each terminal is what a correct hearth client is (docs/coop-api.md): its own MQTT 5
// connection (QoS 1, TCP_NODELAY, its own network thread), a retained `presence` of `online`
// with a Will of `offline`, subscribed to its `res/#` and `evt/#`, and `hello` before anything
// else. The client ids are those of the terminals the harness registered (the Python clients
// disconnect first: the broker lets one connection per client id).
//
//   coop-terminals --port N --a-user U --a-password P --a-client C --a-base TOPIC --a-app ID
//                  --b-user U --b-password P --b-client C --b-base TOPIC --b-app ID
//                  --b-endpoint JSON [--rounds 1000] [--commands 3000] [--window 32]
//                  [--warmup 50] [--hub-pid PID] [--fwd-pid PID] [--broker-pid PID]
//
// Interleaved latency rounds (hub and forwarder, the order alternating each round) after a
// warm-up, then the sustained rate with --window round trips in flight on each path. Prints one
// JSON line: p50/p99 of each path (ms), both rates (commands/s), and the CPU seconds of the hub
// (--hub-pid) and the forwarder (--fwd-pid) over their sustained runs, and of the broker
// (--broker-pid) and this process over each. Exits 1
// with a message if a round trip does not come back within 10 s, 2 on bad arguments.
#include <mosquitto.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kTimeout = std::chrono::seconds(10);
enum Path { kHub = 0, kFwd = 1 };
const char* const kPathName[] = {"hub", "forwarder"};

// --- JSON scanning: the raw text of an object's members, nothing built --------------------

size_t skipWs(std::string_view s, size_t i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) ++i;
  return i;
}

// The end of the string starting at s[i] == '"' (one past its closing quote), or npos.
size_t skipString(std::string_view s, size_t i) {
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\') ++i;
    else if (s[i] == '"') return i + 1;
  }
  return std::string_view::npos;
}

// The end of the JSON value starting at s[i], or npos.
size_t skipValue(std::string_view s, size_t i) {
  if (i >= s.size()) return std::string_view::npos;
  if (s[i] == '"') return skipString(s, i);
  if (s[i] == '{' || s[i] == '[') {
    int depth = 0;
    while (i < s.size()) {
      char c = s[i];
      if (c == '"') {
        i = skipString(s, i);
        if (i == std::string_view::npos) return i;
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      else if ((c == '}' || c == ']') && --depth == 0) return i + 1;
      ++i;
    }
    return std::string_view::npos;
  }
  size_t j = i;
  while (j < s.size() && s[j] != ',' && s[j] != '}' && s[j] != ']' && s[j] != ' ' &&
         s[j] != '\n' && s[j] != '\r' && s[j] != '\t')
    ++j;
  return j == i ? std::string_view::npos : j;
}

// The raw text of member `key` of the object `obj` (its top level only).
bool member(std::string_view obj, std::string_view key, std::string_view& out) {
  size_t i = skipWs(obj, 0);
  if (i >= obj.size() || obj[i] != '{') return false;
  i = skipWs(obj, i + 1);
  while (i < obj.size() && obj[i] == '"') {
    size_t keyEnd = skipString(obj, i);
    if (keyEnd == std::string_view::npos) return false;
    std::string_view k = obj.substr(i + 1, keyEnd - i - 2);
    i = skipWs(obj, keyEnd);
    if (i >= obj.size() || obj[i] != ':') return false;
    i = skipWs(obj, i + 1);
    size_t end = skipValue(obj, i);
    if (end == std::string_view::npos) return false;
    if (k == key) {
      out = obj.substr(i, end - i);
      return true;
    }
    i = skipWs(obj, end);
    if (i < obj.size() && obj[i] == ',') i = skipWs(obj, i + 1);
  }
  return false;
}

bool toLong(std::string_view s, long& v) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// --- arguments ---------------------------------------------------------------------------

const char kUsage[] =
    "usage: coop-terminals --port N --a-user U --a-password P --a-client C --a-base TOPIC\n"
    "                      --a-app ID --b-user U --b-password P --b-client C --b-base TOPIC\n"
    "                      --b-app ID --b-endpoint JSON [--rounds 1000] [--commands 3000]\n"
    "                      [--window 32] [--warmup 50] [--hub-pid PID] [--fwd-pid PID]\n"
    "                      [--broker-pid PID]\n";

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "coop-terminals: %s\n%s", why.c_str(), kUsage);
  std::exit(2);
}

struct Args {
  std::map<std::string, std::string> v{{"rounds", "1000"}, {"commands", "3000"},
                                       {"window", "32"},   {"warmup", "50"},
                                       {"hub-pid", "0"},   {"fwd-pid", "0"},
                                       {"broker-pid", "0"}};

  Args(int argc, char** argv) {
    static const char* const known[] = {
        "port",   "a-user",   "a-password", "a-client", "a-base",  "a-app",    "b-user",
        "b-password", "b-client", "b-base", "b-app", "b-endpoint", "rounds", "commands",
        "window", "warmup",   "hub-pid",    "fwd-pid",  "broker-pid"};
    for (int i = 1; i < argc; i += 2) {
      std::string_view opt = argv[i];
      if (opt.substr(0, 2) != "--") usage("unexpected argument '" + std::string(opt) + "'");
      std::string name(opt.substr(2));
      if (std::find(std::begin(known), std::end(known), name) == std::end(known))
        usage("unknown option '" + std::string(opt) + "'");
      if (i + 1 >= argc) usage("option '" + std::string(opt) + "' needs a value");
      v[name] = argv[i + 1];
    }
    for (const char* name : known)
      if (v.find(name) == v.end() || v[name].empty()) usage(std::string("--") + name + " is required");
    std::string_view ep, dummy;
    ep = v["b-endpoint"];
    if (!member(ep, "appId", dummy) || !member(ep, "userId", dummy) ||
        !member(ep, "clientIdentify", dummy))
      usage("--b-endpoint must be a JSON object with appId, userId and clientIdentify");
  }

  const std::string& str(const char* name) { return v[name]; }

  long num(const char* name, long min, long max) {
    long n = 0;
    if (!toLong(v[name], n) || n < min || n > max)
      usage(std::string("--") + name + " must be a whole number from " + std::to_string(min) +
            " to " + std::to_string(max) + ", not '" + v[name] + "'");
    return n;
  }
};

// --- the two terminals -------------------------------------------------------------------

struct Bench;

struct Terminal {
  Bench* bench = nullptr;
  bool isA = false;
  std::string user, password, client, base, app;
  std::string reqSendCommand, reqReplyCommand, benchOut;  // where this terminal publishes
  std::string evtCommand, evtCommandResponse, benchIn;    // what it reads
  std::string resPrefix;
  mosquitto* m = nullptr;
  bool subscribed = false, helloDone = false;
};

struct Bench {
  std::mutex mu;
  std::condition_variable cv;
  std::string fatal;
  std::unordered_map<long, Clock::time_point> arrived[2];
  // The sustained run: A's callback sends the next command as each one comes back.
  bool sustained = false;
  Path sPath = kHub;
  long sNext = 0, sEnd = 0, sDone = 0, sTotal = 0;
  Clock::time_point sLast;
  std::string bEndpoint;
  Terminal a, b;

  void fail(std::string why) {
    std::lock_guard<std::mutex> lock(mu);
    if (fatal.empty()) fatal = std::move(why);
    cv.notify_all();
  }

  // A's command, the same body on both paths.
  void send(Path path, long seq) {
    std::string body;
    body.reserve(160 + bEndpoint.size());
    body += "{\"id\":\"c";
    body += std::to_string(seq);
    body += "\",\"params\":{\"commandType\":\"bench\",\"to\":";
    body += bEndpoint;
    body += ",\"commandParams\":{\"seq\":";
    body += std::to_string(seq);
    body += "}}}";
    const std::string& topic = path == kHub ? a.reqSendCommand : a.benchOut;
    int rc = mosquitto_publish_v5(a.m, nullptr, topic.c_str(), static_cast<int>(body.size()),
                                  body.data(), 1, false, nullptr);
    if (rc != MOSQ_ERR_SUCCESS) fail(std::string("A cannot publish: ") + mosquitto_strerror(rc));
  }
};

void onConnect(mosquitto* m, void* arg, int rc, int, const mosquitto_property*) {
  auto* t = static_cast<Terminal*>(arg);
  if (rc != 0) {
    t->bench->fail("terminal " + t->client + " refused by the broker: " +
                   mosquitto_reason_string(rc));
    return;
  }
  std::string res = t->base + "/res/#", evt = t->base + "/evt/#";
  char* subs[] = {res.data(), evt.data(), t->benchIn.data()};
  int src = mosquitto_subscribe_multiple(m, nullptr, 3, subs, 1, 0, nullptr);
  if (src != MOSQ_ERR_SUCCESS)
    t->bench->fail("terminal " + t->client + " cannot subscribe: " + mosquitto_strerror(src));
}

void onSubscribe(mosquitto*, void* arg, int, int count, const int* granted,
                 const mosquitto_property*) {
  auto* t = static_cast<Terminal*>(arg);
  for (int i = 0; i < count; ++i)
    if (granted[i] > 1) {
      t->bench->fail("terminal " + t->client + ": subscription " + std::to_string(i) +
                     " refused by the broker (" + std::to_string(granted[i]) + ")");
      return;
    }
  std::lock_guard<std::mutex> lock(t->bench->mu);
  t->subscribed = true;
  t->bench->cv.notify_all();
}

// An answer from the hub (res/METHOD): a correct terminal reads whether it is ok.
void onAnswer(Terminal* t, std::string_view method, std::string_view body) {
  std::string_view ok;
  if (!member(body, "ok", ok) || ok != "true") {
    t->bench->fail("terminal " + t->client + ": " + std::string(method) + " failed: " +
                   std::string(body));
    return;
  }
  if (method == "hello") {
    std::lock_guard<std::mutex> lock(t->bench->mu);
    t->helloDone = true;
    t->bench->cv.notify_all();
  }
}

// B: parse the command, build the reply (the same four lookups and body on both paths).
void onB(Terminal* t, Path path, std::string_view body) {
  std::string_view outer, commandId, to, params;
  bool ok = path == kHub
                ? member(body, "data", outer) && member(outer, "commandId", commandId) &&
                      member(outer, "from", to) && member(outer, "commandParams", params)
                : member(body, "id", commandId) && member(body, "params", outer) &&
                      member(outer, "to", to) && member(outer, "commandParams", params);
  if (!ok) {
    t->bench->fail("B cannot read the command: " + std::string(body));
    return;
  }
  std::string reply;
  reply.reserve(64 + commandId.size() + to.size() + params.size());
  reply += "{\"id\":\"r\",\"params\":{\"commandId\":";
  reply += commandId;
  reply += ",\"to\":";
  reply += to;
  reply += ",\"commandParams\":";
  reply += params;
  reply += "}}";
  const std::string& topic = path == kHub ? t->reqReplyCommand : t->benchOut;
  int rc = mosquitto_publish_v5(t->m, nullptr, topic.c_str(), static_cast<int>(reply.size()),
                                reply.data(), 1, false, nullptr);
  if (rc != MOSQ_ERR_SUCCESS) t->bench->fail(std::string("B cannot publish: ") + mosquitto_strerror(rc));
}

// A: the response's seq, then either the next command of a sustained run or the arrival.
void onA(Terminal* t, Path path, std::string_view body) {
  auto now = Clock::now();
  std::string_view outer, params, seqText;
  long seq = 0;
  if (!member(body, path == kHub ? "data" : "params", outer) ||
      !member(outer, "commandParams", params) || !member(params, "seq", seqText) ||
      !toLong(seqText, seq)) {
    t->bench->fail("A cannot read the response: " + std::string(body));
    return;
  }
  Bench* bench = t->bench;
  long next = -1;
  {
    std::lock_guard<std::mutex> lock(bench->mu);
    if (bench->sustained && path == bench->sPath) {
      ++bench->sDone;
      bench->sLast = now;
      if (bench->sNext < bench->sEnd) next = bench->sNext++;
      if (bench->sDone == bench->sTotal) bench->cv.notify_all();  // only the end wakes main
    } else {
      bench->arrived[path][seq] = now;
      bench->cv.notify_all();
    }
  }
  if (next >= 0) bench->send(path, next);
}

void onMessage(mosquitto*, void* arg, const mosquitto_message* msg, const mosquitto_property*) {
  auto* t = static_cast<Terminal*>(arg);
  std::string_view topic = msg->topic;
  std::string_view body(static_cast<const char*>(msg->payload),
                        static_cast<size_t>(std::max(msg->payloadlen, 0)));
  if (topic.substr(0, t->resPrefix.size()) == t->resPrefix) {
    onAnswer(t, topic.substr(t->resPrefix.size()), body);
  } else if (t->isA) {
    if (topic == t->evtCommandResponse) onA(t, kHub, body);
    else if (topic == t->benchIn) onA(t, kFwd, body);
  } else {
    if (topic == t->evtCommand) onB(t, kHub, body);
    else if (topic == t->benchIn) onB(t, kFwd, body);
  }
  // Other events (sync, commandState, ...) need nothing from a bench terminal.
}

void setUp(Terminal& t, Bench& bench, bool isA, Args& args, int port) {
  const char* p = isA ? "a-" : "b-";
  auto opt = [&](const char* name) { return args.str((std::string(p) + name).c_str()); };
  t.bench = &bench;
  t.isA = isA;
  t.user = opt("user");
  t.password = opt("password");
  t.client = opt("client");
  t.base = opt("base");
  t.app = opt("app");
  t.reqSendCommand = t.base + "/req/sendCommand";
  t.reqReplyCommand = t.base + "/req/replyCommand";
  t.benchOut = t.base + (isA ? "/bench/cmd" : "/bench/reply");
  t.benchIn = t.base + (isA ? "/bench/resp" : "/bench/cmdin");
  t.evtCommand = t.base + "/evt/command";
  t.evtCommandResponse = t.base + "/evt/commandResponse";
  t.resPrefix = t.base + "/res/";
  t.m = mosquitto_new(t.client.c_str(), true, &t);
  if (!t.m) {
    std::fprintf(stderr, "coop-terminals: mosquitto_new failed\n");
    std::exit(1);
  }
  mosquitto_int_option(t.m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
  mosquitto_int_option(t.m, MOSQ_OPT_TCP_NODELAY, 1);
  mosquitto_username_pw_set(t.m, t.user.c_str(), t.password.c_str());
  std::string presence = t.base + "/presence";
  if (mosquitto_will_set_v5(t.m, presence.c_str(), 7, "offline", 1, true, nullptr) !=
      MOSQ_ERR_SUCCESS) {
    std::fprintf(stderr, "coop-terminals: bad Will topic %s\n", presence.c_str());
    std::exit(2);
  }
  mosquitto_connect_v5_callback_set(t.m, onConnect);
  mosquitto_subscribe_v5_callback_set(t.m, onSubscribe);
  mosquitto_message_v5_callback_set(t.m, onMessage);
  int rc = mosquitto_connect_bind_v5(t.m, "127.0.0.1", port, 30, nullptr, nullptr);
  if (rc != MOSQ_ERR_SUCCESS) {
    std::fprintf(stderr, "coop-terminals: %s cannot reach the broker on port %d: %s\n",
                 t.client.c_str(), port, mosquitto_strerror(rc));
    std::exit(1);
  }
  rc = mosquitto_loop_start(t.m);
  if (rc != MOSQ_ERR_SUCCESS) {
    std::fprintf(stderr, "coop-terminals: no network thread: %s\n", mosquitto_strerror(rc));
    std::exit(1);
  }
}

// Waits (at most 10 s) until pred() holds; exits with `what` if it does not or a callback failed.
template <typename Pred>
void waitFor(Bench& bench, std::unique_lock<std::mutex>& lock, const std::string& what, Pred pred) {
  bool ok = bench.cv.wait_for(lock, kTimeout, [&] { return !bench.fatal.empty() || pred(); });
  if (!bench.fatal.empty()) {
    std::fprintf(stderr, "coop-terminals: %s\n", bench.fatal.c_str());
    std::exit(1);
  }
  if (!ok) {
    std::fprintf(stderr, "coop-terminals: %s within %lld s\n", what.c_str(),
                 static_cast<long long>(kTimeout.count()));
    std::exit(1);
  }
}

void publishOrDie(Terminal& t, const std::string& topic, const std::string& body, bool retain) {
  int rc = mosquitto_publish_v5(t.m, nullptr, topic.c_str(), static_cast<int>(body.size()),
                                body.data(), 1, retain, nullptr);
  if (rc != MOSQ_ERR_SUCCESS) {
    std::fprintf(stderr, "coop-terminals: %s cannot publish: %s\n", t.client.c_str(),
                 mosquitto_strerror(rc));
    std::exit(1);
  }
}

double roundTripMs(Bench& bench, Path path, long seq) {
  auto t0 = Clock::now();
  bench.send(path, seq);
  std::unique_lock<std::mutex> lock(bench.mu);
  waitFor(bench, lock,
          std::string("round trip ") + std::to_string(seq) + " on the " + kPathName[path] +
              " path did not come back",
          [&] { return bench.arrived[path].count(seq) != 0; });
  auto t1 = bench.arrived[path][seq];
  bench.arrived[path].erase(seq);
  return std::chrono::duration<double, std::milli>(t1 - t0).count();
}

// CPU seconds (user + system) of a process so far, 0 for pid 0.
double cpuSeconds(long pid) {
  if (pid == 0) return 0;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  size_t close = stat.rfind(')');
  if (close == std::string::npos) {
    std::fprintf(stderr, "coop-terminals: no process %ld\n", pid);
    std::exit(1);
  }
  std::istringstream fields(stat.substr(close + 1));
  std::string field;
  double ticks = 0;
  for (int i = 0; i < 13 && fields >> field; ++i)
    if (i == 11 || i == 12) ticks += std::stod(field);
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double selfCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

struct Rate {
  double perSecond, cpuRelay, cpuBroker, cpuSelf;
};

// `commands` round trips on `path`, `window` in flight; the clock runs from the first command
// to the last response.
Rate sustained(Bench& bench, Path path, long base, long commands, long window, long relayPid,
               long brokerPid) {
  double relay0 = cpuSeconds(relayPid), broker0 = cpuSeconds(brokerPid), self0 = selfCpuSeconds();
  {
    std::lock_guard<std::mutex> lock(bench.mu);
    bench.sustained = true;
    bench.sPath = path;
    bench.sNext = base + std::min(window, commands);
    bench.sEnd = base + commands;
    bench.sDone = 0;
    bench.sTotal = commands;
  }
  auto start = Clock::now();
  for (long seq = base; seq < base + std::min(window, commands); ++seq) bench.send(path, seq);
  std::unique_lock<std::mutex> lock(bench.mu);
  // Woken only at the end (or on a failure); every 10 s, there must have been progress.
  for (long seen = -1; bench.sDone < commands;) {
    if (bench.sDone == seen) {
      std::fprintf(stderr,
                   "coop-terminals: sustained run on the %s path: no round trip came back "
                   "within %lld s (%ld of %ld done)\n",
                   kPathName[path], static_cast<long long>(kTimeout.count()), seen, commands);
      std::exit(1);
    }
    seen = bench.sDone;
    bench.cv.wait_for(lock, kTimeout,
                      [&] { return !bench.fatal.empty() || bench.sDone >= commands; });
    if (!bench.fatal.empty()) {
      std::fprintf(stderr, "coop-terminals: %s\n", bench.fatal.c_str());
      std::exit(1);
    }
  }
  bench.sustained = false;
  double seconds = std::chrono::duration<double>(bench.sLast - start).count();
  lock.unlock();
  return {static_cast<double>(commands) / seconds, cpuSeconds(relayPid) - relay0,
          cpuSeconds(brokerPid) - broker0, selfCpuSeconds() - self0};
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  auto i = static_cast<size_t>(std::nearbyint(p / 100.0 * static_cast<double>(v.size() - 1)));
  return v[std::min(v.size() - 1, i)];
}

}  // namespace

int main(int argc, char** argv) {
  Args args(argc, argv);
  int port = static_cast<int>(args.num("port", 1, 65535));
  long rounds = args.num("rounds", 1, 10'000'000);
  long commands = args.num("commands", 1, 10'000'000);
  long window = args.num("window", 1, 65535);
  long warmup = args.num("warmup", 0, 1'000'000);
  long hubPid = args.num("hub-pid", 0, 1L << 30);
  long fwdPid = args.num("fwd-pid", 0, 1L << 30);
  long brokerPid = args.num("broker-pid", 0, 1L << 30);

  mosquitto_lib_init();
  static Bench bench;  // the network threads use it until the end of the process
  bench.bEndpoint = args.str("b-endpoint");
  setUp(bench.a, bench, true, args, port);
  setUp(bench.b, bench, false, args, port);

  // Online and hello, as every session of a hearth client starts.
  {
    std::unique_lock<std::mutex> lock(bench.mu);
    waitFor(bench, lock, "the terminals did not connect and subscribe",
            [] { return bench.a.subscribed && bench.b.subscribed; });
  }
  for (Terminal* t : {&bench.b, &bench.a}) {
    publishOrDie(*t, t->base + "/presence", "online", true);
    publishOrDie(*t, t->base + "/req/hello",
                 "{\"id\":\"hello\",\"params\":{\"appId\":\"" + t->app +
                     "\",\"deviceModel\":\"model\",\"deviceName\":\"" + t->client + "\"}}",
                 false);
  }
  {
    std::unique_lock<std::mutex> lock(bench.mu);
    waitFor(bench, lock, "the hub did not answer the terminals' hello",
            [] { return bench.a.helloDone && bench.b.helloDone; });
  }

  // Warm-up, then interleaved latency: one round trip at a time, the order alternating.
  for (long i = 0; i < warmup; ++i) {
    roundTripMs(bench, kHub, -1 - i);
    roundTripMs(bench, kFwd, -1 - i);
  }
  std::vector<double> lat[2];
  for (long seq = 0; seq < rounds; ++seq) {
    Path order[2] = {kHub, kFwd};
    if (seq % 2 != 0) std::swap(order[0], order[1]);
    for (Path p : order) lat[p].push_back(roundTripMs(bench, p, seq));
  }

  Rate hub = sustained(bench, kHub, 1'000'000, commands, window, hubPid, brokerPid);
  Rate fwd = sustained(bench, kFwd, 2'000'000, commands, window, fwdPid, brokerPid);

  std::printf(
      "{\"terminals\":\"compiled\",\"hub_p50_ms\":%.4f,\"hub_p99_ms\":%.4f,"
      "\"forwarder_p50_ms\":%.4f,\"forwarder_p99_ms\":%.4f,"
      "\"hub_commands_per_s\":%.1f,\"forwarder_commands_per_s\":%.1f,"
      "\"hub_cpu_s\":%.3f,\"forwarder_cpu_s\":%.3f,"
      "\"broker_cpu_s_hub\":%.3f,\"broker_cpu_s_forwarder\":%.3f,"
      "\"terminals_cpu_s_hub\":%.3f,\"terminals_cpu_s_forwarder\":%.3f,"
      "\"rounds\":%ld,\"commands\":%ld,\"window\":%ld}\n",
      percentile(lat[kHub], 50), percentile(lat[kHub], 99), percentile(lat[kFwd], 50),
      percentile(lat[kFwd], 99), hub.perSecond, fwd.perSecond, hub.cpuRelay, fwd.cpuRelay,
      hub.cpuBroker, fwd.cpuBroker, hub.cpuSelf, fwd.cpuSelf, rounds, commands, window);
  std::fflush(stdout);

  for (Terminal* t : {&bench.a, &bench.b}) {
    mosquitto_disconnect_v5(t->m, 0, nullptr);
    mosquitto_loop_stop(t->m, false);
    mosquitto_destroy(t->m);
  }
  mosquitto_lib_cleanup();
  return 0;
}
