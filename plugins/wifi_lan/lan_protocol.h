#pragma once
// The hearth LAN protocol, version 1 (docs/lan-protocol.md): codec, message authentication and
// replay checks. Pure functions and values: no sockets, no clock, no PluginContext, so the
// plugin (hub side) and hearth-devsim (device side) compile this one file and tests drive it
// directly.
//
// A datagram is one header line and a JSON object:
//
//   HLAN/1[ mac=<64 hex>][ prev=<64 hex>]\n{"type":"announce","id":"lamp-1",...}
//
// `mac` is HMAC-SHA256(device key, body bytes); `prev` (provisioning announcements only) is the
// same MAC under the device's previous key. The MACs cover the body exactly as sent, so no JSON
// canonicalisation is needed. Thread-safe: everything here is reentrant.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace hearth::lan {

inline constexpr size_t kMaxDatagramBytes = 1400;
inline constexpr int kProtocolVersion = 1;
inline constexpr uint16_t kDefaultPort = 47800;
inline constexpr const char* kDefaultGroup = "239.255.72.1";
// Counters are JSON numbers; keep them exact in every JSON implementation (2^53 - 1).
inline constexpr uint64_t kMaxCounter = 9007199254740991ull;
inline constexpr size_t kKeyBytes = 32;

// Why a datagram was dropped. Each has a stable name used in the plugin's status details.
enum class DropReason {
  kOversize = 0,   // larger than kMaxDatagramBytes
  kHeader,         // not a hearth LAN datagram (no "HLAN/" line, bad MAC syntax)
  kVersion,        // "HLAN/<n>" with n != 1
  kJson,           // body is not a JSON object
  kMessage,        // a field is missing, ill-typed, out of range, or the type is unknown
  kMac,            // a MAC is missing where required or does not verify
  kReplay,         // counter below the device's high-water mark
  kDuplicate,      // counter equal to the high-water mark (a repeat of the last message)
  kUnsolicited,    // a reply that answers no pending request
  kUnauthorized,   // a provisioning announcement that would take a bound device without
                   // proving possession of its current key
  kUnknownDevice,  // a message that needs a device key for a device without one
  kOverLimit,      // a new device beyond max_devices
  kBacklog,        // the hub loop is too far behind; the datagram was shed unread
  kCount,
};
const char* dropReasonName(DropReason reason);

enum class MessageType {
  kAnnounce,     // device → group (periodic) or → prober (answer): who and where it is
  kProbe,        // hub → group: "everyone announce to me now"
  kControl,      // hub → device: a command, authenticated
  kReply,        // device → hub: the command's result, authenticated
  kState,        // device → group: a state change, authenticated
  kReset,        // device → group: factory reset, authenticated with the key being wiped
  kProvisioned,  // hub → device: provisioning accepted, authenticated with the new key
};
const char* messageTypeName(MessageType type);

// One decoded message. A flat record: which fields are meaningful depends on `type` (see
// docs/lan-protocol.md). JSON sub-objects (params, result, state) are kept as compact JSON text.
struct Message {
  MessageType type = MessageType::kProbe;
  std::string id;          // device id (all but probe)
  std::string model;       // announce
  std::string name;        // announce
  std::string firmware;    // announce ("fw")
  uint16_t port = 0;       // announce: the device's control port
  int32_t bindWindow = 0;  // announce: 0 always bindable, > 0 seconds left, < 0 closed
  std::string token;       // announce: provisioning token, right after WiFi provisioning
  uint64_t ctr = 0;       // counter: device's (announce/state/reset) or hub's (control/provisioned,
                          // echoed in reply); 0 = absent (unauthenticated announcements only)
  std::string req;        // control/reply: request id chosen by the hub
  std::string command;    // control ("cmd")
  std::string json;       // control: params; reply: result; state: state (a JSON object)
  bool ok = true;         // reply
  std::string errorCode;  // reply when !ok
  std::string errorMessage;  // reply when !ok

  // Filled by decode(): the body bytes the MACs cover, and the MACs as sent (hex, may be empty).
  std::string body;
  std::string mac;
  std::string prevMac;
};

// Decodes and validates a datagram. On failure returns false and sets *why; never throws.
bool decode(std::string_view datagram, Message* out, DropReason* why);

// Encodes a message (ignoring its body/mac fields). `key` signs it (empty = unauthenticated);
// `prevKey` adds the previous-key MAC. Returns an empty string if the message is invalid or the
// datagram would exceed kMaxDatagramBytes.
std::string encode(const Message& message, std::string_view key = {},
                   std::string_view prevKey = {});

// The per-device key both sides derive from the provisioning token the app gave the device:
// HMAC-SHA256(token, "hearth-lan-key/1:" + deviceId), 32 raw bytes.
std::string deriveKey(std::string_view token, std::string_view deviceId);

// HMAC-SHA256(key, data) as 64 lowercase hex digits.
std::string macHex(std::string_view key, std::string_view data);

// Whether macHexValue is the MAC of data under key; constant time in the MAC's contents.
bool verifyMac(std::string_view key, std::string_view data, std::string_view macHexValue);

// SHA-256 of a secret as hex (tokens are remembered only by hash).
std::string sha256Hex(std::string_view data);

// Key storage form.
std::string toHex(std::string_view bytes);
// Empty on bad input (odd length, non-hex digit).
std::string fromHex(std::string_view hex);

// Replay check of a counter against a high-water mark (the last accepted counter).
enum class CounterVerdict { kFresh, kDuplicate, kReplay };
CounterVerdict checkCounter(uint64_t highWater, uint64_t counter);

// Syntax of the string fields (exposed for the simulator's command line).
bool isValidToken(std::string_view token);    // [A-Za-z0-9._~-]{16,128}
bool isValidRequestId(std::string_view req);  // [0-9a-f]{8,32}

}  // namespace hearth::lan
