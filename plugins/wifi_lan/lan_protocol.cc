#include "lan_protocol.h"

#include <Poco/DigestEngine.h>
#include <Poco/Dynamic/Var.h>
#include <Poco/Exception.h>
#include <Poco/HMACEngine.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/SHA2Engine.h>

#include <exception>
#include <limits>

#include "hearth/status.h"
#include "hearth/util/json.h"

namespace hearth::lan {
namespace {

// HMACEngine needs the block and digest sizes as compile-time constants, which SHA2Engine (one
// class for all SHA-2 widths) does not declare.
class Sha256Engine : public Poco::SHA2Engine {
 public:
  enum { BLOCK_SIZE = 64, DIGEST_SIZE = 32 };
  Sha256Engine() : Poco::SHA2Engine(Poco::SHA2Engine::SHA_256) {}
};

constexpr std::string_view kMagic = "HLAN/";
constexpr std::string_view kKeyLabel = "hearth-lan-key/1:";
constexpr size_t kMacHexLen = 64;
constexpr size_t kMaxModel = 128;
constexpr size_t kMaxName = 128;
constexpr size_t kMaxFirmware = 64;
constexpr size_t kMaxCommand = 64;
constexpr size_t kMaxErrorCode = 64;
constexpr size_t kMaxErrorMessage = 256;
// Nesting beyond this is not a plausible command or state and costs parser work.
constexpr size_t kMaxJsonDepth = 16;

bool isLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

using Obj = Poco::JSON::Object;

// Field readers: false when the field is absent or ill-typed (the caller decides whether
// absence is allowed by checking has() first).
bool getString(const Obj& o, const char* key, size_t minLen, size_t maxLen, std::string* out) {
  if (!o.has(key)) return false;
  Poco::Dynamic::Var v = o.get(key);
  if (!v.isString()) return false;
  std::string s = v.extract<std::string>();
  if (s.size() < minLen || s.size() > maxLen) return false;
  if (s.find('\0') != std::string::npos) return false;
  *out = std::move(s);
  return true;
}

bool getInt(const Obj& o, const char* key, int64_t minValue, int64_t maxValue, int64_t* out) {
  if (!o.has(key)) return false;
  Poco::Dynamic::Var v = o.get(key);
  if (!v.isInteger() || v.isBoolean()) return false;
  int64_t n = 0;
  try {
    n = v.convert<Poco::Int64>();
  } catch (const Poco::Exception&) {
    return false;  // out of Int64 range
  }
  if (n < minValue || n > maxValue) return false;
  *out = n;
  return true;
}

bool getBool(const Obj& o, const char* key, bool* out) {
  if (!o.has(key)) return false;
  Poco::Dynamic::Var v = o.get(key);
  if (!v.isBoolean()) return false;
  *out = v.extract<bool>();
  return true;
}

// A JSON-object field as compact text; absent = "{}" when optional.
bool getObject(const Obj& o, const char* key, bool required, std::string* out) {
  if (!o.has(key)) {
    if (required) return false;
    *out = "{}";
    return true;
  }
  Poco::Dynamic::Var v = o.get(key);
  if (v.type() != typeid(Obj::Ptr)) return false;
  Obj::Ptr p = v.extract<Obj::Ptr>();
  if (p.isNull()) return false;
  *out = json::text(*p);
  return true;
}

Obj::Ptr parseObject(std::string_view text) {
  Poco::JSON::Parser parser;
  parser.setDepth(kMaxJsonDepth);
  Poco::Dynamic::Var v = parser.parse(std::string(text));
  if (v.type() != typeid(Obj::Ptr)) return nullptr;
  return v.extract<Obj::Ptr>();
}

bool parseType(const std::string& s, MessageType* out) {
  static const MessageType kAll[] = {
      MessageType::kAnnounce, MessageType::kProbe, MessageType::kControl,    MessageType::kReply,
      MessageType::kState,    MessageType::kReset, MessageType::kProvisioned};
  for (MessageType t : kAll) {
    if (s == messageTypeName(t)) {
      *out = t;
      return true;
    }
  }
  return false;
}

// Parses the header line into the two MACs. Returns kCount on success.
DropReason parseHeader(std::string_view line, std::string* mac, std::string* prev) {
  if (line.substr(0, kMagic.size()) != kMagic) return DropReason::kHeader;
  line.remove_prefix(kMagic.size());
  size_t sp = line.find(' ');
  std::string_view version = line.substr(0, sp);
  if (version.empty() || version.size() > 4) return DropReason::kHeader;
  for (char c : version) {
    if (c < '0' || c > '9') return DropReason::kHeader;
  }
  if (version != "1") return DropReason::kVersion;
  line = sp == std::string_view::npos ? std::string_view() : line.substr(sp);
  while (!line.empty()) {
    if (line[0] != ' ') return DropReason::kHeader;
    line.remove_prefix(1);
    size_t next = line.find(' ');
    std::string_view attr = line.substr(0, next);
    line = next == std::string_view::npos ? std::string_view() : line.substr(next);
    std::string* target = nullptr;
    std::string_view value;
    if (attr.substr(0, 4) == "mac=") {
      target = mac;
      value = attr.substr(4);
    } else if (attr.substr(0, 5) == "prev=") {
      target = prev;
      value = attr.substr(5);
    } else {
      return DropReason::kHeader;
    }
    if (!target->empty() || value.size() != kMacHexLen || !isLowerHex(value)) {
      return DropReason::kHeader;
    }
    *target = std::string(value);
  }
  return DropReason::kCount;
}

bool needsMac(MessageType t) { return t != MessageType::kAnnounce && t != MessageType::kProbe; }

// Validates the body fields for the message's type.
bool readFields(const Obj& o, Message* m) {
  std::string type;
  if (!getString(o, "type", 1, 32, &type) || !parseType(type, &m->type)) return false;
  if (m->type == MessageType::kProbe) return true;
  if (!getString(o, "id", 1, 64, &m->id) || !isValidIdentifier(m->id)) return false;

  int64_t n = 0;
  bool hasCtr = o.has("ctr");
  if (hasCtr) {
    if (!getInt(o, "ctr", 1, static_cast<int64_t>(kMaxCounter), &n)) return false;
    m->ctr = static_cast<uint64_t>(n);
  }
  if (needsMac(m->type) && !hasCtr) return false;

  switch (m->type) {
    case MessageType::kAnnounce:
      if (!getString(o, "model", 1, kMaxModel, &m->model)) return false;
      if (o.has("name") && !getString(o, "name", 0, kMaxName, &m->name)) return false;
      if (o.has("fw") && !getString(o, "fw", 0, kMaxFirmware, &m->firmware)) return false;
      if (!getInt(o, "port", 1, 65535, &n)) return false;
      m->port = static_cast<uint16_t>(n);
      if (o.has("bindWindow")) {
        if (!getInt(o, "bindWindow", std::numeric_limits<int32_t>::min(),
                    std::numeric_limits<int32_t>::max(), &n)) {
          return false;
        }
        m->bindWindow = static_cast<int32_t>(n);
      }
      if (o.has("token")) {
        if (!getString(o, "token", 1, 128, &m->token) || !isValidToken(m->token)) return false;
        if (!hasCtr) return false;  // a provisioning announcement is counted and signed
      }
      return true;
    case MessageType::kControl:
      if (!getString(o, "req", 1, 32, &m->req) || !isValidRequestId(m->req)) return false;
      if (!getString(o, "cmd", 1, kMaxCommand, &m->command)) return false;
      return getObject(o, "params", false, &m->json);
    case MessageType::kReply:
      if (!getString(o, "req", 1, 32, &m->req) || !isValidRequestId(m->req)) return false;
      if (!getBool(o, "ok", &m->ok)) return false;
      if (m->ok) return getObject(o, "result", false, &m->json);
      {
        if (!o.has("error") || o.get("error").type() != typeid(Obj::Ptr)) return false;
        Obj::Ptr e = o.getObject("error");
        if (e.isNull() || !getString(*e, "code", 1, kMaxErrorCode, &m->errorCode)) return false;
        if (e->has("message") && !getString(*e, "message", 0, kMaxErrorMessage, &m->errorMessage)) {
          return false;
        }
      }
      return true;
    case MessageType::kState:
      return getObject(o, "state", true, &m->json);
    case MessageType::kReset:
    case MessageType::kProvisioned:
    case MessageType::kProbe:
      return true;
  }
  return false;
}

}  // namespace

const char* dropReasonName(DropReason reason) {
  switch (reason) {
    case DropReason::kOversize:
      return "oversize";
    case DropReason::kHeader:
      return "header";
    case DropReason::kVersion:
      return "version";
    case DropReason::kJson:
      return "json";
    case DropReason::kMessage:
      return "message";
    case DropReason::kMac:
      return "mac";
    case DropReason::kReplay:
      return "replay";
    case DropReason::kDuplicate:
      return "duplicate";
    case DropReason::kUnsolicited:
      return "unsolicited";
    case DropReason::kUnauthorized:
      return "unauthorized";
    case DropReason::kUnknownDevice:
      return "unknownDevice";
    case DropReason::kOverLimit:
      return "overLimit";
    case DropReason::kBacklog:
      return "backlog";
    case DropReason::kCount:
      break;
  }
  return "unknown";
}

const char* messageTypeName(MessageType type) {
  switch (type) {
    case MessageType::kAnnounce:
      return "announce";
    case MessageType::kProbe:
      return "probe";
    case MessageType::kControl:
      return "control";
    case MessageType::kReply:
      return "reply";
    case MessageType::kState:
      return "state";
    case MessageType::kReset:
      return "reset";
    case MessageType::kProvisioned:
      return "provisioned";
  }
  return "unknown";
}

bool decode(std::string_view datagram, Message* out, DropReason* why) {
  if (datagram.size() > kMaxDatagramBytes) {
    *why = DropReason::kOversize;
    return false;
  }
  size_t nl = datagram.find('\n');
  if (nl == std::string_view::npos) {
    *why = DropReason::kHeader;
    return false;
  }
  Message m;
  DropReason header = parseHeader(datagram.substr(0, nl), &m.mac, &m.prevMac);
  if (header != DropReason::kCount) {
    *why = header;
    return false;
  }
  m.body = std::string(datagram.substr(nl + 1));
  Obj::Ptr body;
  try {
    body = parseObject(m.body);
  } catch (const Poco::Exception&) {
    body = nullptr;
  } catch (const std::exception&) {
    body = nullptr;
  }
  if (body.isNull()) {
    *why = DropReason::kJson;
    return false;
  }
  bool valid = false;
  try {
    valid = readFields(*body, &m);
  } catch (const Poco::Exception&) {
    valid = false;
  } catch (const std::exception&) {
    valid = false;
  }
  if (!valid) {
    *why = DropReason::kMessage;
    return false;
  }
  bool macRequired = needsMac(m.type) || !m.token.empty();
  if (macRequired && m.mac.empty()) {
    *why = DropReason::kMac;
    return false;
  }
  if ((!m.mac.empty() || !m.prevMac.empty()) && m.type != MessageType::kProbe && m.ctr == 0) {
    // A signed message without a counter could be replayed forever.
    *why = DropReason::kMessage;
    return false;
  }
  if (!m.prevMac.empty() && m.token.empty()) {
    *why = DropReason::kMessage;  // the previous-key MAC exists only for provisioning
    return false;
  }
  *out = std::move(m);
  return true;
}

std::string encode(const Message& m, std::string_view key, std::string_view prevKey) {
  Obj o(Poco::JSON_PRESERVE_KEY_ORDER);
  o.set("type", messageTypeName(m.type));
  auto object = [](const std::string& text) -> Obj::Ptr {
    if (text.empty()) return new Obj;
    return parseObject(text);
  };
  try {
    if (m.type != MessageType::kProbe) o.set("id", m.id);
    switch (m.type) {
      case MessageType::kAnnounce:
        o.set("model", m.model);
        o.set("name", m.name);
        o.set("fw", m.firmware);
        o.set("port", static_cast<int>(m.port));
        o.set("bindWindow", m.bindWindow);
        if (m.ctr != 0) o.set("ctr", static_cast<Poco::UInt64>(m.ctr));
        if (!m.token.empty()) o.set("token", m.token);
        break;
      case MessageType::kControl: {
        o.set("req", m.req);
        o.set("ctr", static_cast<Poco::UInt64>(m.ctr));
        o.set("cmd", m.command);
        Obj::Ptr params = object(m.json);
        if (params.isNull()) return {};
        o.set("params", params);
        break;
      }
      case MessageType::kReply: {
        o.set("req", m.req);
        o.set("ctr", static_cast<Poco::UInt64>(m.ctr));
        o.set("ok", m.ok);
        if (m.ok) {
          Obj::Ptr result = object(m.json);
          if (result.isNull()) return {};
          o.set("result", result);
        } else {
          Obj::Ptr e = new Obj(Poco::JSON_PRESERVE_KEY_ORDER);
          e->set("code", m.errorCode);
          e->set("message", m.errorMessage);
          o.set("error", e);
        }
        break;
      }
      case MessageType::kState: {
        o.set("ctr", static_cast<Poco::UInt64>(m.ctr));
        Obj::Ptr state = object(m.json);
        if (state.isNull()) return {};
        o.set("state", state);
        break;
      }
      case MessageType::kReset:
      case MessageType::kProvisioned:
        o.set("ctr", static_cast<Poco::UInt64>(m.ctr));
        break;
      case MessageType::kProbe:
        break;
    }
  } catch (const Poco::Exception&) {
    return {};  // params/result/state text that is not JSON
  }
  std::string body = json::text(o);
  std::string out = "HLAN/1";
  if (!key.empty()) out += " mac=" + macHex(key, body);
  if (!prevKey.empty()) out += " prev=" + macHex(prevKey, body);
  out += '\n';
  out += body;
  if (out.size() > kMaxDatagramBytes) return {};
  // What we send must be what we accept: the same validation as a receiver.
  Message check;
  DropReason why;
  if (!decode(out, &check, &why)) return {};
  return out;
}

std::string deriveKey(std::string_view token, std::string_view deviceId) {
  Poco::HMACEngine<Sha256Engine> hmac(token.data(), token.size());
  hmac.update(kKeyLabel.data(), kKeyLabel.size());
  hmac.update(deviceId.data(), deviceId.size());
  const Poco::DigestEngine::Digest& d = hmac.digest();
  return std::string(d.begin(), d.end());
}

std::string macHex(std::string_view key, std::string_view data) {
  Poco::HMACEngine<Sha256Engine> hmac(key.data(), key.size());
  hmac.update(data.data(), data.size());
  return Poco::DigestEngine::digestToHex(hmac.digest());
}

bool verifyMac(std::string_view key, std::string_view data, std::string_view macHexValue) {
  if (key.empty() || macHexValue.size() != kMacHexLen) return false;
  std::string expected = macHex(key, data);
  unsigned char diff = 0;
  for (size_t i = 0; i < kMacHexLen; ++i) {
    diff |= static_cast<unsigned char>(expected[i] ^ macHexValue[i]);
  }
  return diff == 0;
}

std::string sha256Hex(std::string_view data) {
  Sha256Engine sha;
  sha.update(data.data(), data.size());
  return Poco::DigestEngine::digestToHex(sha.digest());
}

std::string toHex(std::string_view bytes) {
  return Poco::DigestEngine::digestToHex(Poco::DigestEngine::Digest(bytes.begin(), bytes.end()));
}

std::string fromHex(std::string_view hex) {
  if (hex.size() % 2 != 0) return {};
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = nibble(hex[i]);
    int lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return {};
    out += static_cast<char>((hi << 4) | lo);
  }
  return out;
}

CounterVerdict checkCounter(uint64_t highWater, uint64_t counter) {
  if (counter > highWater) return CounterVerdict::kFresh;
  if (counter == highWater) return CounterVerdict::kDuplicate;
  return CounterVerdict::kReplay;
}

bool isValidToken(std::string_view token) {
  if (token.size() < 16 || token.size() > 128) return false;
  for (char c : token) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '~' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool isValidRequestId(std::string_view req) {
  return req.size() >= 8 && req.size() <= 32 && isLowerHex(req);
}

}  // namespace hearth::lan
