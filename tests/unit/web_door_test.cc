// Unit tests for the front door's pure parts (plugin web): the MQTT meter (packet sizes,
// CONNECT complete, the CONNACK code, across any split of the stream), the door guard (limit,
// lockout and its window), static path resolution (no escape), MIME types, the hub CA
// (creation, key modes, re-issue only when the names change), the Prometheus text with every
// plugin's counters, and the plugin over the fake context: its status timer re-arms itself and
// hands /metrics a fresh snapshot of the plugins' counters each time.
// TLS and real clients are in tests/integration/test_web*.py.

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "connection_registry.h"
#include "door_guard.h"
#include "door_metrics.h"
#include "hearth/sdk/fake_context.h"
#include "hub_ca.h"
#include "mqtt_meter.h"
#include "static_files.h"
#include "web_plugin.h"

namespace hearth::web {
namespace {

using std::chrono::milliseconds;

std::vector<uint8_t> packet(uint8_t header, size_t bodyLen, uint8_t fill = 0) {
  std::vector<uint8_t> p{header};
  size_t n = bodyLen;
  do {
    uint8_t b = n % 128;
    n /= 128;
    if (n) b |= 0x80;
    p.push_back(b);
  } while (n);
  p.insert(p.end(), bodyLen, fill);
  return p;
}

TEST(MqttMeter, SeesTheConnectCompleteHoweverTheStreamIsSplit) {
  std::vector<uint8_t> connect = packet(0x10, 300);
  for (size_t split = 1; split < connect.size(); split += 37) {
    MqttMeter m(256 * 1024, 1);
    EXPECT_EQ(m.feed(connect.data(), split), MqttMeter::Verdict::kOk);
    EXPECT_FALSE(m.firstComplete()) << split;
    EXPECT_EQ(m.feed(connect.data() + split, connect.size() - split), MqttMeter::Verdict::kOk);
    EXPECT_TRUE(m.firstComplete()) << split;
  }
}

TEST(MqttMeter, KnowsWhetherAPacketIsBegunAndUnfinished) {
  MqttMeter m(256 * 1024, 1);
  EXPECT_TRUE(m.atPacketBoundary());
  std::vector<uint8_t> connect = packet(0x10, 200);  // 1 + 2 length bytes + 200
  for (size_t split : {size_t{1}, size_t{2}, size_t{3}, size_t{100}}) {
    MqttMeter piecewise(256 * 1024, 1);
    ASSERT_EQ(piecewise.feed(connect.data(), split), MqttMeter::Verdict::kOk);
    EXPECT_FALSE(piecewise.atPacketBoundary()) << split;
    ASSERT_EQ(piecewise.feed(connect.data() + split, connect.size() - split),
              MqttMeter::Verdict::kOk);
    EXPECT_TRUE(piecewise.atPacketBoundary()) << split;
  }
  // Two whole packets and the first byte of a third.
  std::vector<uint8_t> stream = connect;
  for (int i = 0; i < 2; ++i) stream.insert(stream.end(), {0xC0, 0x00});
  stream.push_back(0xC0);
  ASSERT_EQ(m.feed(stream.data(), stream.size() - 1), MqttMeter::Verdict::kOk);
  EXPECT_TRUE(m.atPacketBoundary());
  ASSERT_EQ(m.feed(&stream.back(), 1), MqttMeter::Verdict::kOk);
  EXPECT_FALSE(m.atPacketBoundary());
}

TEST(MqttMeter, RefusesAPacketOverTheLimitFromItsHeader) {
  MqttMeter m(1024, 1);
  std::vector<uint8_t> connect = packet(0x10, 10);
  ASSERT_EQ(m.feed(connect.data(), connect.size()), MqttMeter::Verdict::kOk);
  std::vector<uint8_t> ok = packet(0x30, 1024 - 3);  // 1 + 2 length bytes + body = 1024
  EXPECT_EQ(m.feed(ok.data(), ok.size()), MqttMeter::Verdict::kOk);
  // Only the header of the big one: refused before its body arrives.
  std::vector<uint8_t> big = packet(0x30, 1024 - 2);
  EXPECT_EQ(m.feed(big.data(), 3), MqttMeter::Verdict::kTooLarge);
}

TEST(MqttMeter, RefusesAStreamThatIsNotMqtt) {
  MqttMeter notConnect(1024, 1);
  std::vector<uint8_t> publish = packet(0x30, 5);
  EXPECT_EQ(notConnect.feed(publish.data(), publish.size()), MqttMeter::Verdict::kMalformed);
  MqttMeter badLength(1 << 30, 1);
  const uint8_t five[] = {0x10, 0xff, 0xff, 0xff, 0xff, 0x01};
  EXPECT_EQ(badLength.feed(five, sizeof five), MqttMeter::Verdict::kMalformed);
  MqttMeter http(1024, 1);
  const std::string get = "GET / HTTP/1.1\r\n";
  EXPECT_EQ(http.feed(reinterpret_cast<const uint8_t*>(get.data()), get.size()),
            MqttMeter::Verdict::kMalformed);
}

TEST(MqttMeter, ReadsTheConnackCodeByteByByte) {
  for (int code : {0, 5, 0x86}) {
    MqttMeter m(SIZE_MAX, 2);
    const uint8_t connack[] = {0x20, 0x03, 0x00, static_cast<uint8_t>(code), 0x00};
    for (uint8_t b : connack) ASSERT_EQ(m.feed(&b, 1), MqttMeter::Verdict::kOk);
    EXPECT_EQ(m.connackCode(), code);
    EXPECT_TRUE(m.firstComplete());
  }
  EXPECT_TRUE(isLoginFailure(5));
  EXPECT_TRUE(isLoginFailure(0x86));
  EXPECT_FALSE(isLoginFailure(0));
  EXPECT_FALSE(isLoginFailure(3));  // server unavailable is not the client's fault
}

TEST(DoorGuard, RefusesBeyondMaxConnections) {
  DoorGuard g(2, 20, milliseconds(60000), milliseconds(60000));
  EXPECT_TRUE(g.enter("10.0.0.1"));
  EXPECT_TRUE(g.enter("10.0.0.2"));
  EXPECT_FALSE(g.enter("10.0.0.3"));
  EXPECT_EQ(g.counters().refusedFull.load(), 1);
  g.leave();
  EXPECT_TRUE(g.enter("10.0.0.3"));
  EXPECT_EQ(g.inside(), 2);
}

TEST(DoorGuard, LocksAnAddressOutAfterTooManyFailedLoginsThenLetsItBackIn) {
  DoorGuard g(100, 3, milliseconds(60000), milliseconds(150));
  g.loginResult("10.0.0.9", false);
  g.loginResult("10.0.0.9", false);
  g.loginResult("10.0.0.9", true);  // a success does not reset an attacker's count
  EXPECT_FALSE(g.lockedOut("10.0.0.9"));
  g.loginResult("10.0.0.9", false);
  EXPECT_TRUE(g.lockedOut("10.0.0.9"));
  EXPECT_FALSE(g.lockedOut("10.0.0.10"));
  EXPECT_FALSE(g.enter("10.0.0.9"));
  EXPECT_TRUE(g.enter("10.0.0.10"));
  EXPECT_EQ(g.counters().refusedLocked.load(), 1);
  EXPECT_EQ(g.counters().lockouts.load(), 1);
  EXPECT_EQ(g.lockedAddresses(), 1);
  std::this_thread::sleep_for(milliseconds(200));
  EXPECT_FALSE(g.lockedOut("10.0.0.9"));
  EXPECT_TRUE(g.enter("10.0.0.9"));
}

TEST(DoorGuard, CountsFailuresOnlyWithinTheWindow) {
  DoorGuard g(100, 3, milliseconds(100), milliseconds(60000));
  g.loginResult("10.0.0.9", false);
  g.loginResult("10.0.0.9", false);
  std::this_thread::sleep_for(milliseconds(150));
  g.loginResult("10.0.0.9", false);
  EXPECT_FALSE(g.lockedOut("10.0.0.9"));
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/hearth-web-test-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  void write(const std::string& rel, const std::string& text) const {
    std::ofstream(path_ + "/" + rel) << text;
  }

 private:
  std::string path_;
};

std::string resolve(const std::string& root, const std::string& raw, bool* refused,
                    bool* redirect = nullptr) {
  bool r = false;
  return resolveStaticPath(root, raw, refused, redirect ? redirect : &r);
}

TEST(StaticPath, ServesFilesInsideTheDirectoryOnly) {
  TempDir outer;
  ::mkdir((outer.path() + "/www").c_str(), 0755);
  ::mkdir((outer.path() + "/www/sub").c_str(), 0755);
  outer.write("www/index.html", "i");
  outer.write("www/sub/index.html", "s");
  outer.write("www/app.js", "a");
  outer.write("secret.txt", "x");
  ASSERT_EQ(
      ::symlink((outer.path() + "/secret.txt").c_str(), (outer.path() + "/www/out.txt").c_str()),
      0);
  ASSERT_EQ(::symlink("app.js", (outer.path() + "/www/in.js").c_str()), 0);
  const std::string root = outer.path() + "/www";
  bool refused = false;
  bool redirect = false;
  EXPECT_NE(resolve(root, "/", &refused).find("/www/index.html"), std::string::npos);
  EXPECT_NE(resolve(root, "/app.js", &refused).find("/www/app.js"), std::string::npos);
  EXPECT_NE(resolve(root, "/in.js", &refused).find("/www/app.js"), std::string::npos);
  EXPECT_NE(resolve(root, "/sub/", &refused).find("/www/sub/index.html"), std::string::npos);
  EXPECT_EQ(resolve(root, "/sub", &refused, &redirect), "");
  EXPECT_TRUE(redirect);
  EXPECT_EQ(resolve(root, "/missing.js", &refused), "");
  EXPECT_FALSE(refused);
  for (const char* bad :
       {"/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E%2Fsecret.txt", "/sub/../../secret.txt",
        "/out.txt", "/a\\b", "/%00", "/%zz", "relative"}) {
    EXPECT_EQ(resolve(root, bad, &refused), "") << bad;
    EXPECT_TRUE(refused) << bad;
  }
}

TEST(StaticPath, MimeTypes) {
  EXPECT_EQ(mimeType("/x/index.html"), "text/html; charset=utf-8");
  EXPECT_EQ(mimeType("/x/app.JS"), "text/javascript; charset=utf-8");
  EXPECT_EQ(mimeType("/x/app.css"), "text/css; charset=utf-8");
  EXPECT_EQ(mimeType("/x/font.woff2"), "font/woff2");
  EXPECT_EQ(mimeType("/x.d/noext"), "application/octet-stream");
  EXPECT_EQ(mimeType("/x/a.unknown"), "application/octet-stream");
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(HubCa, CreatesTheCaOnceAndReissuesTheServerCertificateOnlyWhenNamesChange) {
  TempDir d;
  HubCa ca(d.path() + "/web");
  ServerIdentity id{{"hub", "hub.local", "localhost"}, {"127.0.0.1", "192.168.1.20"}};
  bool reissued = false;
  ASSERT_TRUE(ca.ensure(id, &reissued).isOk());
  EXPECT_TRUE(reissued);
  CertFiles f = ca.files();
  struct stat st;
  ASSERT_EQ(::stat(f.keyFile.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((d.path() + "/web/ca.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto sans = certificateSans(f.certFile);
  ASSERT_TRUE(sans.isOk());
  EXPECT_EQ(sans.value().ipAddresses, id.ipAddresses);
  auto fp = certificateFingerprint(f.caFile);
  ASSERT_TRUE(fp.isOk());
  EXPECT_EQ(fp.value().size(), 7u + 64u);
  const std::string server = slurp(f.certFile);

  ASSERT_TRUE(ca.ensure(id, &reissued).isOk());  // same names: kept
  EXPECT_FALSE(reissued);
  EXPECT_EQ(slurp(f.certFile), server);

  id.ipAddresses.push_back("192.168.1.21");  // a new address: re-issued by the same CA
  ASSERT_TRUE(ca.ensure(id, &reissued).isOk());
  EXPECT_TRUE(reissued);
  EXPECT_NE(slurp(f.certFile), server);
  EXPECT_EQ(certificateFingerprint(f.caFile).value(), fp.value());
  EXPECT_EQ(certificateSans(f.certFile).value().ipAddresses.size(), 3u);
}

TEST(HubCa, ADamagedCaIsAnErrorNotANewCa) {
  TempDir d;
  HubCa ca(d.path());
  ASSERT_TRUE(ca.ensure({{"hub"}, {"127.0.0.1"}}).isOk());
  d.write("ca.key", "not a key");
  Status s = ca.ensure({{"hub"}, {"127.0.0.1"}});
  EXPECT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("unreadable"), std::string::npos) << s.message();
}

// True when the socket's peer shut it down within timeoutMs.
bool shutDown(int fd, int timeoutMs) {
  for (int waited = 0; waited < timeoutMs; waited += 10) {
    char c;
    ssize_t n = ::recv(fd, &c, 1, MSG_DONTWAIT);
    if (n == 0) return true;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return false;
}

TEST(ConnectionRegistry, CutsOffAConnectionAtItsDeadlineUnlessItMetIt) {
  ConnectionRegistry registry;
  int late[2];
  int met[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, late), 0);
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, met), 0);
  auto soon = ConnectionRegistry::Clock::now() + milliseconds(50);
  uint64_t a = registry.add(late[0], soon);
  uint64_t b = registry.add(met[0], soon);
  registry.clearDeadline(b);
  // The owner of `late` is blocked in a read: the deadline makes it return.
  char c;
  EXPECT_EQ(::recv(late[0], &c, 1, 0), 0);
  EXPECT_TRUE(registry.timedOut(a));
  EXPECT_FALSE(registry.timedOut(b));
  EXPECT_FALSE(shutDown(met[1], 200));
  // A new deadline (the next request of a kept-alive connection) is watched too.
  registry.setDeadline(b, ConnectionRegistry::Clock::now() + milliseconds(20));
  EXPECT_TRUE(shutDown(met[1], 2000));
  EXPECT_EQ(registry.size(), 2u);
  registry.remove(a);
  registry.remove(b);
  EXPECT_EQ(registry.size(), 0u);
  for (int fd : {late[0], late[1], met[0], met[1]}) ::close(fd);
}

TEST(DoorMetrics, PrometheusTextHasHelpTypeAndSamples) {
  DoorGuard g(7, 20, milliseconds(1000), milliseconds(1000));
  g.enter("10.0.0.1");
  g.loginResult("10.0.0.1", false);
  std::string text = prometheusText(g);
  EXPECT_NE(text.find("# TYPE hearth_web_max_connections gauge\nhearth_web_max_connections 7\n"),
            std::string::npos);
  EXPECT_NE(text.find("hearth_web_logins_total{result=\"failed\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("# HELP hearth_web_connections_refused_total "), std::string::npos);
  auto json = countersJson(g);
  EXPECT_EQ(json->getValue<int64_t>("loginsFailed"), 1);
  EXPECT_EQ(json->getValue<int>("maxConnections"), 7);
}

TEST(DoorMetrics, EveryPluginCounterOnceUnderOneHelpAndType) {
  DoorGuard g(7, 20, milliseconds(1000), milliseconds(1000));
  std::string empty = prometheusText(g);
  EXPECT_NE(empty.find("# TYPE hearth_plugin_counter counter\n"), std::string::npos);
  EXPECT_EQ(empty.find("hearth_plugin_counter{"), std::string::npos);

  std::string text = prometheusText(
      g, {{"ble", "commands_sent", 3}, {"hello_sdk", "greetings", 2}, {"odd", "a\"b\\c\nd", -1}});
  EXPECT_NE(text.find("\nhearth_plugin_counter{plugin=\"ble\",name=\"commands_sent\"} 3\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("\nhearth_plugin_counter{plugin=\"hello_sdk\",name=\"greetings\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("hearth_plugin_counter{plugin=\"odd\",name=\"a\\\"b\\\\c\\nd\"} -1\n"),
            std::string::npos)
      << text;
  auto occurrences = [&](const std::string& needle) {
    size_t n = 0;
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(occurrences("# HELP hearth_plugin_counter "), 1u);
  EXPECT_EQ(occurrences("# TYPE hearth_plugin_counter "), 1u);
}

int freePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    return 0;
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

std::string getMetrics(int port) {
  Poco::Net::HTTPClientSession session("127.0.0.1", static_cast<Poco::UInt16>(port));
  session.setTimeout(Poco::Timespan(10, 0));
  Poco::Net::HTTPRequest req(Poco::Net::HTTPRequest::HTTP_GET, "/metrics");
  session.sendRequest(req);
  Poco::Net::HTTPResponse res;
  std::string body;
  Poco::StreamCopier::copyToString(session.receiveResponse(res), body);
  EXPECT_EQ(res.getStatus(), Poco::Net::HTTPResponse::HTTP_OK);
  return body;
}

// The web plugin over the fake context, listening on loopback ports picked here, its hub CA
// in a temp state dir.
struct WebOverFake {
  WebOverFake() : ctx("web") {
    char tmpl[] = "/tmp/hearth-webfake-XXXXXX";
    dir = ::mkdtemp(tmpl);
    ctx.stateDirectory = dir;
    metricsPort = freePort();
    ctx.cfg.json["listen"] = "[\"127.0.0.1\"]";
    ctx.cfg.ints["https_port"] = 0;
    ctx.cfg.ints["mqtts_port"] = freePort();
    ctx.cfg.strings["www_dir"] = dir;
    ctx.cfg.ints["max_connections"] = 8;
    ctx.cfg.ints["max_packet_size"] = 65536;
    ctx.cfg.durations["connect_timeout"] = milliseconds(10000);
    ctx.cfg.ints["max_failed_logins"] = 20;
    ctx.cfg.durations["failed_login_window"] = milliseconds(900000);
    ctx.cfg.durations["lockout_duration"] = milliseconds(900000);
    ctx.cfg.strings["metrics_listen"] = "127.0.0.1:" + std::to_string(metricsPort);
    for (const char* k : {"cert_file", "key_file", "ca_file", "public_host"}) ctx.cfg.strings[k] = "";
  }
  ~WebOverFake() { std::filesystem::remove_all(dir); }
  fakes::FakeContext ctx;
  std::string dir;
  int metricsPort = 0;
};

TEST(WebPlugin, MetricsServesTheLatestSnapshotOfThePluginsCountersFromTheStatusTimer) {
  WebOverFake f;
  ASSERT_NE(f.metricsPort, 0);
  f.ctx.otherCounters = {{"hello_sdk", "greetings", 1}};
  f.ctx.count("own_counter", 5);
  WebPlugin plugin(f.ctx);
  Status s = plugin.start();
  ASSERT_TRUE(s) << s.toString();
  // start() took the first snapshot (the web plugin's own counters are among them).
  std::string m = getMetrics(f.metricsPort);
  EXPECT_NE(m.find("hearth_plugin_counter{plugin=\"hello_sdk\",name=\"greetings\"} 1\n"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("hearth_plugin_counter{plugin=\"web\",name=\"own_counter\"} 5\n"),
            std::string::npos);
  EXPECT_NE(m.find("hearth_web_max_connections 8\n"), std::string::npos);

  // Between two ticks of the status timer /metrics serves the snapshot it has.
  f.ctx.otherCounters = {{"hello_sdk", "greetings", 2}};
  f.ctx.advance(milliseconds(1999));
  EXPECT_NE(getMetrics(f.metricsPort).find("name=\"greetings\"} 1\n"), std::string::npos);
  // The tick re-arms the timer from its own callback and takes a new snapshot...
  f.ctx.advance(milliseconds(1));
  EXPECT_NE(getMetrics(f.metricsPort).find("name=\"greetings\"} 2\n"), std::string::npos);
  // ...and so does every later one.
  f.ctx.otherCounters = {{"hello_sdk", "greetings", 3}, {"zigbee", "joins", 4}};
  f.ctx.advance(milliseconds(2000));
  m = getMetrics(f.metricsPort);
  EXPECT_NE(m.find("name=\"greetings\"} 3\n"), std::string::npos) << m;
  EXPECT_NE(m.find("hearth_plugin_counter{plugin=\"zigbee\",name=\"joins\"} 4\n"),
            std::string::npos);

  // stop() cancels both timers: nothing fires afterwards (the fake would run it).
  plugin.stop();
  f.ctx.markStopped();
  f.ctx.advance(milliseconds(60000));
}

TEST(WebPlugin, StopCancelsTheTimersSoNoTickRunsAfterIt) {
  WebOverFake f;
  WebPlugin plugin(f.ctx);
  Status s = plugin.start();
  ASSERT_TRUE(s) << s.toString();
  EXPECT_EQ(f.ctx.pendingTimers(), 2u);  // status and (hub CA) addresses
  f.ctx.advance(milliseconds(30000));     // both fired and re-armed themselves
  EXPECT_EQ(f.ctx.pendingTimers(), 2u);
  plugin.stop();
  // Not markStopped(): a timer the plugin forgot to cancel would still be pending here.
  EXPECT_EQ(f.ctx.pendingTimers(), 0u);
}

}  // namespace
}  // namespace hearth::web
