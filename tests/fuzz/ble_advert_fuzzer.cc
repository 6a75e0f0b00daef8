// Fuzzes the ble plugin's advertisement parsing (plugins/ble/ble_advert.h): what any BLE device
// in radio range can make BlueZ report — its name, service UUIDs, manufacturer data and service
// data — matched against product rules like the documented ones; plus the command payloads
// built from a request's params and the mapping of BlueZ error names.
//
// The first input byte picks what the rest is: an advertisement (structured with
// FuzzedDataProvider), a product-rules JSON list, or controlDevice params.
//
// Checked: nothing throws; the bind window and reset counter come only from a well-formed
// hearth block; ids, UUIDs and truncations keep their documented shape.

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "ble_advert.h"

namespace {

namespace ble = hearth::ble;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "ble_advert_fuzzer: %s\n", what.c_str());
  std::abort();
}

const char* kRules = R"json([
  {"model": "acme.lock.v1", "service_uuid": "fff0", "manufacturer_id": 65535,
   "control": {"characteristic": "fff1", "reply": "notify", "reply_characteristic": "fff2",
               "commands": {"unlock": "01", "lock": "02", "raw": "*"}}},
  {"model": "acme.bulb.v2", "name_pattern": "ACME Bulb*",
   "control": {"service_uuid": "ffe0", "characteristic": "ffe1", "reply": "read",
               "commands": {"on": "a101", "off": "a100"}}},
  {"model": "acme.plug", "manufacturer_id": 76, "adv_offset": 2, "default_bind_window": 60},
  {"model": "acme.tag", "service_uuid": "0000feaa-0000-1000-8000-00805f9b34fb", "adv_offset": 1}
])json";

const std::vector<ble::ProductRule>& rules() {
  static const std::vector<ble::ProductRule> kParsed = [] {
    auto r = ble::parseProductRules(kRules);
    if (!r) fail("the fixed rules do not parse: " + r.status().message());
    return r.value();
  }();
  return kParsed;
}

void checkUuid(const std::string& text) {
  auto uuid = ble::canonicalUuid(text);
  if (!uuid) return;
  if (uuid->size() != 36) fail("canonical UUID of length " + std::to_string(uuid->size()));
  if (ble::canonicalUuid(*uuid) != uuid) fail("canonicalUuid is not idempotent: " + *uuid);
}

void checkStrings(const std::string& text, size_t cut) {
  std::string id = ble::deviceIdForAddress(text);
  if (!id.empty() && (id.size() != 21 || id.rfind("ble:", 0) != 0)) fail("device id " + id);
  checkUuid(text);
  std::string t = ble::truncateUtf8(text, cut);
  if (t.size() > cut || text.compare(0, t.size(), t) != 0) {
    fail("truncateUtf8 is not a prefix within the limit");
  }
  // A cut is at a character start; only a text that starts with stray continuation bytes
  // (not UTF-8) may be cut to nothing.
  if (!t.empty() && t.size() < text.size() &&
      (static_cast<uint8_t>(text[t.size()]) & 0xC0) == 0x80) {
    fail("truncateUtf8 cut inside a character");
  }
  // fnmatch(3) syntax: *, ?, [...] and \ are special; a NUL ends a C string.
  if (text.find_first_of(std::string("*?[\\\0", 5)) == std::string::npos &&
      !ble::globMatch(text, text)) {
    fail("a pattern without wildcards does not match itself");
  }
  if (!ble::globMatch("*", text)) fail("* does not match everything");
  auto bytes = ble::fromHex(text);
  if (bytes && ble::fromHex(ble::toHex(*bytes)) != bytes) fail("hex round trip");
  hearth::Status s = ble::mapBluezError(text, text);
  if (s.isOk()) fail("a BlueZ error mapped to ok");
}

void advertisement(FuzzedDataProvider& in) {
  ble::Advertisement adv;
  adv.name = in.ConsumeRandomLengthString(64);
  for (int n = in.ConsumeIntegralInRange(0, 3); n > 0; --n) {
    adv.serviceUuids.push_back(in.ConsumeRandomLengthString(40));
  }
  for (int n = in.ConsumeIntegralInRange(0, 3); n > 0; --n) {
    uint16_t company = in.ConsumeBool() ? 0xFFFF : in.ConsumeIntegral<uint16_t>();
    adv.manufacturerData[company] = in.ConsumeBytes<uint8_t>(in.ConsumeIntegralInRange(0, 32));
  }
  for (int n = in.ConsumeIntegralInRange(0, 3); n > 0; --n) {
    std::string uuid = in.ConsumeBool() ? "fff0" : in.ConsumeRandomLengthString(40);
    adv.serviceData[uuid] = in.ConsumeBytes<uint8_t>(in.ConsumeIntegralInRange(0, 32));
  }

  const ble::ProductRule* rule = ble::matchRule(rules(), adv);
  if (rule) {
    ble::AdvertInfo info = ble::advertInfo(*rule, adv);
    if (!info.resetCounter && info.bindWindowSec != rule->defaultBindWindowSec) {
      fail("a bind window without a hearth block");
    }
    if (info.bindWindowSec < -1 || info.bindWindowSec > 65535) fail("bind window out of range");
  }
  for (const auto& [company, data] : adv.manufacturerData) {
    const size_t offset = in.ConsumeIntegralInRange<size_t>(0, 40);
    auto block = ble::parseHearthBlock(data, offset);
    if (block && (offset + ble::kHearthBlockSize > data.size() ||
                  data[offset] != ble::kHearthBlockVersion)) {
      fail("a hearth block parsed from bytes that cannot hold one");
    }
  }
  (void)ble::discoveryUuids(rules());
  checkStrings(adv.name, in.ConsumeIntegralInRange<size_t>(0, 80));
  for (const auto& u : adv.serviceUuids) checkUuid(u);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  FuzzedDataProvider in(data + 1, size - 1);
  switch (data[0] % 3) {
    case 0:
      advertisement(in);
      break;
    case 1: {
      // Product rules come from the config; a bad list must be an error, never a crash.
      auto parsed = ble::parseProductRules(in.ConsumeRemainingBytesAsString());
      if (parsed) (void)ble::discoveryUuids(parsed.value());
      break;
    }
    case 2: {
      const ble::ProductRule& lock = rules().front();
      std::string command = in.ConsumeBool() ? "raw" : in.ConsumeRandomLengthString(16);
      auto payload =
          ble::commandPayload(*lock.control, command, in.ConsumeRemainingBytesAsString());
      if (payload && (payload.value().empty() || payload.value().size() > 512)) {
        fail("a command payload outside 1..512 bytes");
      }
      break;
    }
  }
  return 0;
}
