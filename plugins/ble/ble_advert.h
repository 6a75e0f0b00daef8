#pragma once
// The pure half of the ble plugin: product rules from the config, what an advertisement says
// (model match, bind window, reset counter), control payloads, and how BlueZ errors map onto
// hearth error codes. No D-Bus, no clock, no I/O — everything here is a function of its
// arguments, so it is unit-tested on its own (tests/unit/ble_advert_test.cc).
//
// The hearth advertisement block (docs/ble.md) is 5 bytes at a product's `adv_offset` inside the
// manufacturer data of its `manufacturer_id` (or, for a rule without one, inside the service
// data of its `service_uuid`):
//
//   byte 0     version, 0x01
//   byte 1     flags: bit 0 = pairing closed (not bindable now); other bits reserved (0)
//   bytes 2-3  bind window in seconds, unsigned little endian; 0 = always bindable
//   byte 4     reset counter: the device increments it (mod 256) on every factory reset
//
// A counter rather than a "was reset" flag: a flag stays set until something clears it on the
// device, so every advertisement (and every hub restart) would clear the bindings again,
// including the ones made after the reset. A changed counter is one reset, exactly once.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hearth/status.h"

namespace hearth::ble {

using Bytes = std::vector<uint8_t>;

inline constexpr uint8_t kHearthBlockVersion = 0x01;
inline constexpr size_t kHearthBlockSize = 5;
inline constexpr uint8_t kFlagPairingClosed = 0x01;

// What a controlDevice write is answered with.
enum class ReplyMode {
  kNone,    // the write's success is the result
  kRead,    // ReadValue on the reply characteristic after the write
  kNotify,  // StartNotify on the reply characteristic, then the first value it notifies
};

// How commands reach one product: a GATT characteristic and named payloads.
struct ControlSpec {
  std::string serviceUuid;              // optional: only characteristics of this service
  std::string characteristicUuid;       // the one WriteValue goes to
  std::string replyCharacteristicUuid;  // read/notify source; defaults to characteristicUuid
  ReplyMode reply = ReplyMode::kNone;
  bool withResponse = true;  // WriteValue type "request" (acknowledged) or "command"
  // command -> payload; nullopt ("*" in the config) = the bytes come from params.value (hex).
  std::map<std::string, std::optional<Bytes>> commands;
};

// One entry of the `products` config list. Every criterion given must match (AND); a rule
// needs at least one. The first matching rule in list order wins.
struct ProductRule {
  std::string model;                       // reported to the core; binding.products globs on it
  std::optional<std::string> serviceUuid;  // canonical 128-bit form
  std::optional<uint16_t> manufacturerId;
  std::optional<std::string> namePattern;  // glob: * and ?
  size_t advOffset = 0;                    // where the hearth block starts
  int32_t defaultBindWindowSec = 0;        // when the advertisement carries no hearth block
  std::optional<ControlSpec> control;      // absent: the product is listed and bound only
};

// Parses the `products` config value (a JSON list). Errors name the rule index and key.
Result<std::vector<ProductRule>> parseProductRules(const std::string& json);

// The service UUIDs for Adapter1.SetDiscoveryFilter, sorted and unique; nullopt when a rule
// has no service UUID (a UUID filter would hide its devices, so discovery stays unfiltered).
std::optional<std::vector<std::string>> discoveryUuids(const std::vector<ProductRule>& rules);

// What BlueZ currently knows of a device's advertisements.
struct Advertisement {
  std::string name;
  std::vector<std::string> serviceUuids;       // any form; compared canonically
  std::map<uint16_t, Bytes> manufacturerData;  // company id -> data after the id
  std::map<std::string, Bytes> serviceData;    // service UUID (any form) -> data
};

// The first rule the advertisement matches, or nullptr.
const ProductRule* matchRule(const std::vector<ProductRule>& rules, const Advertisement& adv);

struct HearthBlock {
  bool pairingClosed = false;
  uint16_t bindWindowSec = 0;
  uint8_t resetCounter = 0;
};

// The block at `offset` of `data`; nullopt if it is too short or has another version.
std::optional<HearthBlock> parseHearthBlock(const Bytes& data, size_t offset);

// What a matched advertisement means for the core.
struct AdvertInfo {
  // DeviceReport::bindWindowSec: -1 pairing closed, 0 always, > 0 seconds from now.
  int32_t bindWindowSec = 0;
  std::optional<uint8_t> resetCounter;  // absent without a hearth block
};
AdvertInfo advertInfo(const ProductRule& rule, const Advertisement& adv);

// The bytes a command writes: the rule's payload, or params.value (hex) for a "*" command.
// INVALID_REQUEST for an unknown command or a bad params.value.
Result<Bytes> commandPayload(const ControlSpec& spec, const std::string& command,
                             const std::string& paramsJson);

// Maps a D-Bus error from BlueZ (org.bluez.Error.*) or the bus onto TIMEOUT / OFFLINE /
// UNAVAILABLE; the message keeps the BlueZ error name and text.
Status mapBluezError(std::string_view name, std::string_view message);

// "ble:" + the upper-case MAC, e.g. ble:AA:BB:CC:DD:EE:FF; empty if `address` is not a MAC.
std::string deviceIdForAddress(std::string_view address);

// Canonical lower-case 128-bit form; 16- and 32-bit short forms are expanded with the
// Bluetooth base UUID. nullopt if `text` is not a UUID.
std::optional<std::string> canonicalUuid(std::string_view text);

bool globMatch(std::string_view pattern, std::string_view text);
// At most maxBytes bytes of `text`, cut at a UTF-8 character boundary (device names can be
// longer than the core accepts).
std::string truncateUtf8(std::string_view text, size_t maxBytes);
std::string toHex(const Bytes& bytes);
std::optional<Bytes> fromHex(std::string_view hex);

}  // namespace hearth::ble
