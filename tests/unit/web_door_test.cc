// Unit tests for the front door's pure parts (plugin web): the MQTT meter (packet sizes,
// CONNECT complete, the CONNACK code, across any split of the stream), the door guard (limit,
// lockout and its window), static path resolution (no escape), MIME types, the hub CA
// (creation, key modes, re-issue only when the names change) and the Prometheus text.
// The sockets, TLS and real clients are in tests/integration/test_web*.py.

#include <gtest/gtest.h>
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
#include "hub_ca.h"
#include "mqtt_meter.h"
#include "static_files.h"

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

}  // namespace
}  // namespace hearth::web
