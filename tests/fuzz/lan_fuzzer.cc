// Fuzzes the wifi_lan protocol codec (plugins/wifi_lan/lan_protocol.h) with raw datagrams, as
// any host on the LAN can send them.
//
// Checked: decode never throws and names a reason when it drops; what it accepts re-encodes
// (signed with a test key) into a datagram that decodes to the same message, whose MAC
// verifies, and whose encoding is stable (encode(decode(encode(m))) == encode(m)).

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "lan_protocol.h"

namespace {

namespace lan = hearth::lan;

[[noreturn]] void fail(const std::string& what, std::string_view input) {
  std::fprintf(stderr, "lan_fuzzer: %s\n  datagram: %.*s\n", what.c_str(),
               static_cast<int>(std::min<size_t>(input.size(), 400)), input.data());
  std::abort();
}

bool sameMessage(const lan::Message& a, const lan::Message& b) {
  return a.type == b.type && a.id == b.id && a.model == b.model && a.name == b.name &&
         a.firmware == b.firmware && a.port == b.port && a.bindWindow == b.bindWindow &&
         a.token == b.token && a.ctr == b.ctr && a.req == b.req && a.command == b.command &&
         a.json == b.json && a.ok == b.ok && a.errorCode == b.errorCode &&
         a.errorMessage == b.errorMessage;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view datagram(reinterpret_cast<const char*>(data), size);
  lan::Message m;
  lan::DropReason why = lan::DropReason::kCount;
  if (!lan::decode(datagram, &m, &why)) {
    if (why == lan::DropReason::kCount) fail("dropped without a reason", datagram);
    (void)lan::dropReasonName(why);
    return 0;
  }
  (void)lan::messageTypeName(m.type);

  // The MACs as sent are checked against a key the sender cannot know: never valid by chance.
  const std::string key = lan::deriveKey("fuzz-token-0123456789", m.id.empty() ? "x" : m.id);
  const std::string prevKey = lan::deriveKey("fuzz-token-previous-1", "x");
  if (!m.mac.empty() && lan::verifyMac(key, m.body, m.mac) && m.mac != lan::macHex(key, m.body)) {
    fail("verifyMac accepted a MAC that is not the MAC", datagram);
  }

  const std::string encoded = lan::encode(m, key, m.prevMac.empty() ? "" : prevKey);
  if (encoded.empty()) return 0;  // e.g. too large once signed
  lan::Message again;
  if (!lan::decode(encoded, &again, &why)) {
    fail(std::string("re-encoded message dropped: ") + lan::dropReasonName(why), datagram);
  }
  if (!sameMessage(m, again)) fail("re-encoded message differs", datagram);
  if (!lan::verifyMac(key, again.body, again.mac)) fail("own MAC does not verify", datagram);
  if (!m.prevMac.empty() && !lan::verifyMac(prevKey, again.body, again.prevMac)) {
    fail("own previous-key MAC does not verify", datagram);
  }
  if (lan::encode(again, key, m.prevMac.empty() ? "" : prevKey) != encoded) {
    fail("encoding is not stable", datagram);
  }
  if (lan::fromHex(lan::toHex(m.body)) != m.body) fail("hex round trip", datagram);
  return 0;
}
