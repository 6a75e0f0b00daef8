// The hearth LAN protocol codec (plugins/wifi_lan/lan_protocol.h) and the SSDP parser: what a
// hostile LAN can send must be refused with the right reason and must never crash the hub.

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "lan_protocol.h"
#include "ssdp.h"

namespace hearth::lan {
namespace {

const std::string kToken = "0123456789abcdef0123456789abcdef";

Message announce(std::string id = "lamp-1") {
  Message m;
  m.type = MessageType::kAnnounce;
  m.id = std::move(id);
  m.model = "acme-lamp";
  m.name = "Kitchen lamp";
  m.firmware = "2.1.0";
  m.port = 47801;
  m.bindWindow = 300;
  return m;
}

Message control(uint64_t ctr = 1000) {
  Message m;
  m.type = MessageType::kControl;
  m.id = "lamp-1";
  m.req = "0011223344556677";
  m.ctr = ctr;
  m.command = "set";
  m.json = R"({"on":true,"level":40})";
  return m;
}

DropReason why(std::string_view datagram) {
  Message m;
  DropReason reason = DropReason::kCount;
  EXPECT_FALSE(decode(datagram, &m, &reason)) << datagram;
  return reason;
}

Message ok(std::string_view datagram) {
  Message m;
  DropReason reason = DropReason::kCount;
  EXPECT_TRUE(decode(datagram, &m, &reason)) << dropReasonName(reason) << ": " << datagram;
  return m;
}

TEST(LanProtocol, UnauthenticatedAnnouncementRoundTrips) {
  std::string d = encode(announce());
  ASSERT_FALSE(d.empty());
  EXPECT_EQ(d.rfind("HLAN/1\n{", 0), 0u) << d;
  Message m = ok(d);
  EXPECT_EQ(m.type, MessageType::kAnnounce);
  EXPECT_EQ(m.id, "lamp-1");
  EXPECT_EQ(m.model, "acme-lamp");
  EXPECT_EQ(m.name, "Kitchen lamp");
  EXPECT_EQ(m.firmware, "2.1.0");
  EXPECT_EQ(m.port, 47801);
  EXPECT_EQ(m.bindWindow, 300);
  EXPECT_TRUE(m.mac.empty());
  EXPECT_EQ(m.ctr, 0u);
}

TEST(LanProtocol, ProvisioningAnnouncementCarriesBothMacs) {
  std::string oldKey = deriveKey("old-token-0123456789", "lamp-1");
  std::string newKey = deriveKey(kToken, "lamp-1");
  Message a = announce();
  a.token = kToken;
  a.ctr = 42;
  Message m = ok(encode(a, newKey, oldKey));
  EXPECT_EQ(m.token, kToken);
  EXPECT_EQ(m.ctr, 42u);
  EXPECT_TRUE(verifyMac(newKey, m.body, m.mac));
  EXPECT_TRUE(verifyMac(oldKey, m.body, m.prevMac));
  EXPECT_FALSE(verifyMac(oldKey, m.body, m.mac));
}

TEST(LanProtocol, EveryMessageTypeRoundTrips) {
  std::string key = deriveKey(kToken, "lamp-1");
  Message c = ok(encode(control(), key));
  EXPECT_EQ(c.command, "set");
  EXPECT_EQ(c.req, "0011223344556677");
  EXPECT_EQ(c.json, R"({"level":40,"on":true})");  // re-serialised; the MAC covers the body
  EXPECT_TRUE(verifyMac(key, c.body, c.mac));

  Message r;
  r.type = MessageType::kReply;
  r.id = "lamp-1";
  r.req = "0011223344556677";
  r.ctr = 1000;
  r.json = R"({"state":{"on":true}})";
  Message rr = ok(encode(r, key));
  EXPECT_TRUE(rr.ok);
  EXPECT_EQ(rr.json, R"({"state":{"on":true}})");

  r.ok = false;
  r.errorCode = "UNSUPPORTED";
  r.errorMessage = "no such command";
  Message re = ok(encode(r, key));
  EXPECT_FALSE(re.ok);
  EXPECT_EQ(re.errorCode, "UNSUPPORTED");
  EXPECT_EQ(re.errorMessage, "no such command");

  Message s;
  s.type = MessageType::kState;
  s.id = "lamp-1";
  s.ctr = 5;
  s.json = R"({"on":false})";
  EXPECT_EQ(ok(encode(s, key)).json, R"({"on":false})");

  for (MessageType t : {MessageType::kReset, MessageType::kProvisioned}) {
    Message x;
    x.type = t;
    x.id = "lamp-1";
    x.ctr = 9;
    Message y = ok(encode(x, key));
    EXPECT_EQ(y.type, t);
    EXPECT_EQ(y.ctr, 9u);
  }
  Message p;
  p.type = MessageType::kProbe;
  EXPECT_EQ(ok(encode(p)).type, MessageType::kProbe);
}

TEST(LanProtocol, KeyDerivationAndMacMatchTheDocumentedConstruction) {
  // Computed independently (Python hmac): HMAC-SHA256(token, "hearth-lan-key/1:" + id).
  std::string key = deriveKey(kToken, "lamp-1");
  EXPECT_EQ(toHex(key), "04bc9886dabab63a9103be45685f5007416058ffc5815816b23ca81c30414df8");
  EXPECT_EQ(macHex(key, R"({"type":"reset","id":"lamp-1","ctr":7})"),
            "7a6cc332ebd1925572d9061d246777eaea5db61d9e2fc735df90d68a4d2ccb57");
  Message reset;
  reset.type = MessageType::kReset;
  reset.id = "lamp-1";
  reset.ctr = 7;
  EXPECT_EQ(encode(reset, key),
            "HLAN/1 mac=7a6cc332ebd1925572d9061d246777eaea5db61d9e2fc735df90d68a4d2ccb57\n"
            R"({"type":"reset","id":"lamp-1","ctr":7})");
  EXPECT_NE(deriveKey(kToken, "lamp-2"), key);
  EXPECT_NE(deriveKey("another-token-0123456789", "lamp-1"), key);
  EXPECT_EQ(fromHex(toHex(key)), key);
  EXPECT_EQ(fromHex("abc"), "");
  EXPECT_EQ(fromHex("zz"), "");
}

TEST(LanProtocol, OversizeIsDropped) {
  std::string d = encode(announce());
  d += std::string(kMaxDatagramBytes + 1 - d.size(), ' ');
  EXPECT_EQ(d.size(), kMaxDatagramBytes + 1);
  EXPECT_EQ(why(d), DropReason::kOversize);
  EXPECT_EQ(why(std::string(65507, 'x')), DropReason::kOversize);
  // The encoder refuses what a receiver would drop.
  Message big = control();
  big.json = R"({"blob":")" + std::string(1400, 'a') + R"("})";
  EXPECT_EQ(encode(big, deriveKey(kToken, "lamp-1")), "");
}

TEST(LanProtocol, MalformedHeadersAreDropped) {
  std::string body = R"({"type":"probe"})";
  EXPECT_EQ(why(""), DropReason::kHeader);
  EXPECT_EQ(why(body), DropReason::kHeader);  // no header line
  EXPECT_EQ(why("XLAN/1\n" + body), DropReason::kHeader);
  EXPECT_EQ(why("HLAN/\n" + body), DropReason::kHeader);
  EXPECT_EQ(why("HLAN/x\n" + body), DropReason::kHeader);
  EXPECT_EQ(why("HLAN/1 \n" + body), DropReason::kHeader);  // empty attribute
  EXPECT_EQ(why("HLAN/1 foo=1\n" + body), DropReason::kHeader);
  EXPECT_EQ(why("HLAN/1 mac=abc\n" + body), DropReason::kHeader);
  EXPECT_EQ(why("HLAN/1 mac=" + std::string(64, 'A') + "\n" + body), DropReason::kHeader);
  std::string mac = " mac=" + std::string(64, 'a');
  EXPECT_EQ(why("HLAN/1" + mac + mac + "\n" + body), DropReason::kHeader);  // twice
  EXPECT_EQ(why("HLAN/2\n" + body), DropReason::kVersion);
  EXPECT_EQ(why("HLAN/10 mac=1\n" + body), DropReason::kVersion);
  EXPECT_EQ(why(std::string("\x00\x01\x02\n\xff", 5)), DropReason::kHeader);
}

TEST(LanProtocol, MalformedBodiesAreDropped) {
  EXPECT_EQ(why("HLAN/1\n"), DropReason::kJson);
  EXPECT_EQ(why("HLAN/1\n{\"type\":"), DropReason::kJson);
  EXPECT_EQ(why("HLAN/1\n[1,2]"), DropReason::kJson);
  EXPECT_EQ(why("HLAN/1\n\"probe\""), DropReason::kJson);
  EXPECT_EQ(why("HLAN/1\n{} trailing"), DropReason::kJson);
  std::string deep = std::string(40, '[') + std::string(40, ']');
  EXPECT_EQ(why("HLAN/1\n{\"type\":\"probe\",\"x\":" + deep + "}"), DropReason::kJson);

  auto field = [](const std::string& fields) {
    return "HLAN/1\n{\"type\":\"announce\"," + fields + "}";
  };
  const std::string good = R"("id":"lamp-1","model":"m","port":47801)";
  ok(field(good));
  EXPECT_EQ(why("HLAN/1\n{}"), DropReason::kMessage);                     // no type
  EXPECT_EQ(why("HLAN/1\n{\"type\":\"launch\"}"), DropReason::kMessage);  // unknown type
  EXPECT_EQ(why("HLAN/1\n{\"type\":7}"), DropReason::kMessage);
  EXPECT_EQ(why(field(R"("model":"m","port":47801)")), DropReason::kMessage);  // no id
  EXPECT_EQ(why(field(R"("id":"a/b","model":"m","port":47801)")), DropReason::kMessage);
  EXPECT_EQ(why(field(R"("id":"a+#","model":"m","port":47801)")), DropReason::kMessage);
  EXPECT_EQ(why(field("\"id\":\"" + std::string(65, 'a') + R"(","model":"m","port":1)")),
            DropReason::kMessage);
  EXPECT_EQ(why(field(R"("id":"lamp-1","port":47801)")), DropReason::kMessage);  // no model
  EXPECT_EQ(why(field(R"("id":"lamp-1","model":"m")")), DropReason::kMessage);   // no port
  EXPECT_EQ(why(field(R"("id":"lamp-1","model":"m","port":0)")), DropReason::kMessage);
  EXPECT_EQ(why(field(R"("id":"lamp-1","model":"m","port":65536)")), DropReason::kMessage);
  EXPECT_EQ(why(field(R"("id":"lamp-1","model":"m","port":"47801")")), DropReason::kMessage);
  EXPECT_EQ(why(field(R"("id":"lamp-1","model":"m","port":47801.5)")), DropReason::kMessage);
  EXPECT_EQ(why(field(R"("id":"lamp-1","model":"m","port":true)")), DropReason::kMessage);
  EXPECT_EQ(why(field(good + R"(,"bindWindow":4294967296)")), DropReason::kMessage);
  EXPECT_EQ(why(field(good + R"(,"ctr":0)")), DropReason::kMessage);
  EXPECT_EQ(why(field(good + R"(,"ctr":-5)")), DropReason::kMessage);
  EXPECT_EQ(why(field(good + R"(,"ctr":9007199254740992)")), DropReason::kMessage);
  EXPECT_EQ(why(field(good + R"(,"ctr":18446744073709551616)")), DropReason::kMessage);
  EXPECT_EQ(why(field(good + R"(,"name":null)")), DropReason::kMessage);
  EXPECT_EQ(why(field(good + ",\"name\":\"" + std::string(129, 'n') + "\"")), DropReason::kMessage);
  EXPECT_EQ(why(field(good + R"(,"ctr":3,"token":"short")")), DropReason::kMessage);
  EXPECT_EQ(why(field(good + R"(,"ctr":3,"token":"has spaces in it 0123")")), DropReason::kMessage);
  // A token without a counter could be replayed; without a MAC it proves nothing.
  EXPECT_EQ(why(field(good + ",\"token\":\"" + kToken + "\"")), DropReason::kMessage);
  EXPECT_EQ(why(field(good + ",\"ctr\":3,\"token\":\"" + kToken + "\"")), DropReason::kMac);

  auto withMac = [](const std::string& body) {
    return "HLAN/1 mac=" + std::string(64, '0') + "\n" + body;
  };
  // Signed messages need a counter; control-plane messages need a MAC.
  EXPECT_EQ(why(withMac(R"({"type":"announce","id":"lamp-1","model":"m","port":1})")),
            DropReason::kMessage);
  EXPECT_EQ(why(withMac(R"({"type":"reset","id":"lamp-1"})")), DropReason::kMessage);
  EXPECT_EQ(why(R"(HLAN/1
{"type":"reset","id":"lamp-1","ctr":4})"),
            DropReason::kMac);
  EXPECT_EQ(why(withMac(R"({"type":"control","id":"lamp-1","ctr":4,"cmd":"x"})")),
            DropReason::kMessage);  // no req
  EXPECT_EQ(why(withMac(R"({"type":"control","id":"lamp-1","ctr":4,"req":"XYZ12345","cmd":"x"})")),
            DropReason::kMessage);
  EXPECT_EQ(
      why(withMac(
          R"({"type":"control","id":"lamp-1","ctr":4,"req":"00112233","cmd":"x","params":[]})")),
      DropReason::kMessage);
  EXPECT_EQ(why(withMac(R"({"type":"reply","id":"lamp-1","ctr":4,"req":"00112233"})")),
            DropReason::kMessage);  // no ok
  EXPECT_EQ(why(withMac(R"({"type":"reply","id":"lamp-1","ctr":4,"req":"00112233","ok":false})")),
            DropReason::kMessage);  // no error
  EXPECT_EQ(why(withMac(R"({"type":"state","id":"lamp-1","ctr":4})")), DropReason::kMessage);
  // The previous-key MAC belongs to provisioning announcements only.
  EXPECT_EQ(why("HLAN/1 mac=" + std::string(64, '0') + " prev=" + std::string(64, '0') + "\n" +
                R"({"type":"reset","id":"lamp-1","ctr":4})"),
            DropReason::kMessage);
}

TEST(LanProtocol, BadHmacIsDetected) {
  std::string key = deriveKey(kToken, "lamp-1");
  std::string d = encode(control(), key);
  Message m = ok(d);
  EXPECT_TRUE(verifyMac(key, m.body, m.mac));
  // Another key (a spoofer's guess), a tampered body, a tampered or truncated MAC.
  EXPECT_FALSE(verifyMac(deriveKey("guess-guess-guess-guess", "lamp-1"), m.body, m.mac));
  std::string tampered = m.body;
  tampered.replace(tampered.find("true"), 4, "1   ");
  EXPECT_FALSE(verifyMac(key, tampered, m.mac));
  std::string flipped = m.mac;
  flipped[10] = flipped[10] == '0' ? '1' : '0';
  EXPECT_FALSE(verifyMac(key, m.body, flipped));
  EXPECT_FALSE(verifyMac(key, m.body, m.mac.substr(0, 63)));
  EXPECT_FALSE(verifyMac(key, m.body, ""));
  EXPECT_FALSE(verifyMac("", m.body, m.mac));
  // Signing a reply with a device key for another device does not verify either.
  EXPECT_FALSE(verifyMac(deriveKey(kToken, "lamp-2"), m.body, m.mac));
}

TEST(LanProtocol, ReplayedCountersAreRefused) {
  EXPECT_EQ(checkCounter(0, 1), CounterVerdict::kFresh);
  EXPECT_EQ(checkCounter(100, 101), CounterVerdict::kFresh);
  EXPECT_EQ(checkCounter(100, 100), CounterVerdict::kDuplicate);
  EXPECT_EQ(checkCounter(100, 99), CounterVerdict::kReplay);
  EXPECT_EQ(checkCounter(100, 1), CounterVerdict::kReplay);

  // A receiver keeping the high-water mark accepts each signed message once, in order.
  std::string key = deriveKey(kToken, "lamp-1");
  std::vector<std::string> sent;
  for (uint64_t c = 10; c < 15; ++c) {
    Message s;
    s.type = MessageType::kState;
    s.id = "lamp-1";
    s.ctr = c;
    s.json = "{\"n\":" + std::to_string(c) + "}";
    sent.push_back(encode(s, key));
  }
  uint64_t highWater = 0;
  int accepted = 0;
  auto receive = [&](const std::string& d) {
    Message m = ok(d);
    if (!verifyMac(key, m.body, m.mac)) return;
    if (checkCounter(highWater, m.ctr) != CounterVerdict::kFresh) return;
    highWater = m.ctr;
    ++accepted;
  };
  for (const auto& d : sent) receive(d);
  EXPECT_EQ(accepted, 5);
  for (const auto& d : sent) receive(d);  // the same five again: all replays
  receive(sent[2]);
  EXPECT_EQ(accepted, 5);
  EXPECT_EQ(highWater, 14u);
}

TEST(LanProtocol, RandomMutationsNeverCrashAndAreClassified) {
  std::string key = deriveKey(kToken, "lamp-1");
  Message a = announce();
  a.token = kToken;
  a.ctr = 77;
  std::vector<std::string> seeds = {encode(announce()), encode(control(), key),
                                    encode(a, key, key)};
  std::mt19937 rng(20240501);
  int decoded = 0, dropped = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string d = seeds[i % seeds.size()];
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      size_t at = rng() % (d.size() + 1);
      switch (rng() % 3) {
        case 0:
          if (at < d.size()) d[at] = static_cast<char>(rng() % 256);
          break;
        case 1:
          d.insert(at, 1, static_cast<char>(rng() % 256));
          break;
        default:
          if (at < d.size()) d.erase(at, 1 + rng() % 8);
      }
    }
    Message m;
    DropReason reason = DropReason::kCount;
    if (decode(d, &m, &reason)) {
      ++decoded;
      // Whatever survives decoding and claims to be signed still has to pass the MAC.
      if (!m.mac.empty() && m.body != ok(seeds[i % seeds.size()]).body) {
        EXPECT_FALSE(verifyMac(key, m.body, m.mac));
      }
    } else {
      ++dropped;
      EXPECT_LT(reason, DropReason::kCount);
    }
  }
  EXPECT_GT(dropped, 10000);
  EXPECT_EQ(decoded + dropped, 20000);
}

TEST(LanProtocol, TokenAndRequestIdSyntax) {
  EXPECT_TRUE(isValidToken(kToken));
  EXPECT_TRUE(isValidToken("A-b_c.d~0123456789"));
  EXPECT_FALSE(isValidToken("short"));
  EXPECT_FALSE(isValidToken(std::string(129, 'a')));
  EXPECT_FALSE(isValidToken("0123456789abcdef/"));
  EXPECT_TRUE(isValidRequestId("00aa11bb"));
  EXPECT_FALSE(isValidRequestId("00AA11BB"));
  EXPECT_FALSE(isValidRequestId("0011223"));
}

TEST(Ssdp, NotifyAliveAndByebye) {
  SsdpSighting s;
  ASSERT_EQ(parseSsdp("NOTIFY * HTTP/1.1\r\n"
                      "HOST: 239.255.255.250:1900\r\n"
                      "CACHE-CONTROL: max-age = 120\r\n"
                      "LOCATION: http://10.0.0.5:8080/desc.xml\r\n"
                      "NT: urn:schemas-upnp-org:device:MediaRenderer:1\r\n"
                      "NTS: ssdp:alive\r\n"
                      "SERVER: Linux/6.1 UPnP/1.1 AcmeTV/3.2\r\n"
                      "USN: uuid:2f402f80-da50-11e1-9b23-001788255acc::urn:schemas-upnp-org:"
                      "device:MediaRenderer:1\r\n\r\n",
                      &s),
            SsdpKind::kSighting);
  EXPECT_EQ(s.uuid, "2f402f80-da50-11e1-9b23-001788255acc");
  EXPECT_EQ(s.kind, "urn:schemas-upnp-org:device:MediaRenderer:1");
  EXPECT_EQ(s.server, "Linux/6.1 UPnP/1.1 AcmeTV/3.2");
  EXPECT_EQ(s.location, "http://10.0.0.5:8080/desc.xml");
  EXPECT_EQ(s.maxAgeSec, 120);
  EXPECT_FALSE(s.byebye);
  EXPECT_EQ(ssdpDeviceId(s), "ssdp-2f402f80-da50-11e1-9b23-001788255acc");

  ASSERT_EQ(parseSsdp("NOTIFY * HTTP/1.1\r\nNT: upnp:rootdevice\r\nNTS: ssdp:byebye\r\n"
                      "USN: uuid:abc-1::upnp:rootdevice\r\n\r\n",
                      &s),
            SsdpKind::kSighting);
  EXPECT_TRUE(s.byebye);
  EXPECT_EQ(s.uuid, "abc-1");
}

TEST(Ssdp, SearchAnswersAndGarbage) {
  SsdpSighting s;
  ASSERT_EQ(parseSsdp("HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nEXT:\r\n"
                      "ST: upnp:rootdevice\r\nUSN: uuid:dev-9::upnp:rootdevice\r\n\r\n",
                      &s),
            SsdpKind::kSighting);
  EXPECT_EQ(s.kind, "upnp:rootdevice");
  EXPECT_EQ(parseSsdp("M-SEARCH * HTTP/1.1\r\nST: ssdp:all\r\n\r\n", &s), SsdpKind::kIgnored);
  EXPECT_EQ(parseSsdp("", &s), SsdpKind::kInvalid);
  EXPECT_EQ(parseSsdp("GET / HTTP/1.1\r\n\r\n", &s), SsdpKind::kInvalid);
  // No USN, a USN that is not a uuid, an identifier-breaking uuid, no NTS, an oversize datagram.
  EXPECT_EQ(parseSsdp("HTTP/1.1 200 OK\r\nST: x\r\n\r\n", &s), SsdpKind::kInvalid);
  EXPECT_EQ(parseSsdp("HTTP/1.1 200 OK\r\nST: x\r\nUSN: urn:foo\r\n\r\n", &s), SsdpKind::kInvalid);
  EXPECT_EQ(parseSsdp("HTTP/1.1 200 OK\r\nST: x\r\nUSN: uuid:a/b#c\r\n\r\n", &s),
            SsdpKind::kInvalid);
  EXPECT_EQ(parseSsdp("NOTIFY * HTTP/1.1\r\nNT: x\r\nUSN: uuid:a\r\n\r\n", &s), SsdpKind::kInvalid);
  EXPECT_EQ(parseSsdp("HTTP/1.1 200 OK\r\nST: x\r\nUSN: uuid:a\r\nSERVER: \x01\r\n\r\n", &s),
            SsdpKind::kInvalid);
  EXPECT_EQ(parseSsdp(std::string(kMaxSsdpBytes + 1, 'a'), &s), SsdpKind::kInvalid);
  EXPECT_NE(ssdpSearchRequest(2).find("MAN: \"ssdp:discover\""), std::string::npos);
}

}  // namespace
}  // namespace hearth::lan
