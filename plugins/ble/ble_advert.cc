#include "ble_advert.h"

#include <fnmatch.h>

#include <Poco/DigestEngine.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/UUID.h>

#include <algorithm>
#include <cctype>
#include <set>

#include "hearth/util/json.h"

namespace hearth::ble {
namespace {

using Poco::JSON::Array;
using Poco::JSON::Object;

constexpr std::string_view kBaseUuidSuffix = "-0000-1000-8000-00805f9b34fb";
constexpr size_t kMaxModelLength = 128;
constexpr size_t kMaxAdvOffset = 255;
constexpr size_t kMaxWriteBytes = 512;  // params.value of a "*" command

bool isHexDigit(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool sameUuid(std::string_view a, std::string_view b) {
  auto ca = canonicalUuid(a);
  auto cb = canonicalUuid(b);
  return ca && cb && *ca == *cb;
}

Status ruleError(size_t index, const std::string& key, const std::string& problem) {
  return Status::error(
      ErrorCode::kInvalidRequest,
      "products[" + std::to_string(index) + "]" + (key.empty() ? "" : "." + key) + ": " + problem);
}

// Reads the JSON value at `key` as a string; error if present and not a string.
Result<std::optional<std::string>> optString(const Object& o, const std::string& key, size_t index,
                                             const std::string& path) {
  if (!o.has(key)) return std::optional<std::string>();
  Poco::Dynamic::Var v = o.get(key);
  if (!v.isString()) return ruleError(index, path, "expected a string");
  return std::optional<std::string>(v.extract<std::string>());
}

Result<std::optional<int64_t>> optInt(const Object& o, const std::string& key, size_t index,
                                      const std::string& path) {
  if (!o.has(key)) return std::optional<int64_t>();
  Poco::Dynamic::Var v = o.get(key);
  if (!v.isInteger()) return ruleError(index, path, "expected an integer");
  return std::optional<int64_t>(v.convert<int64_t>());
}

Status checkKeys(const Object& o, const std::set<std::string>& known, size_t index,
                 const std::string& prefix) {
  for (const auto& name : o.getNames()) {
    if (!known.count(name)) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      return ruleError(index, prefix + name, "unknown key (known here: " + list + ")");
    }
  }
  return Status::ok();
}

Result<std::string> requiredUuid(const Object& o, const std::string& key, size_t index,
                                 const std::string& path) {
  auto s = optString(o, key, index, path);
  if (!s.isOk()) return s.status();
  if (!s.value()) return ruleError(index, path, "required");
  auto uuid = canonicalUuid(*s.value());
  if (!uuid) return ruleError(index, path, "not a UUID: '" + *s.value() + "'");
  return *uuid;
}

Result<ControlSpec> parseControl(const Object& o, size_t index) {
  Status keys = checkKeys(
      o,
      {"service_uuid", "characteristic", "reply", "reply_characteristic", "write_type", "commands"},
      index, "control.");
  if (!keys.isOk()) return keys;
  ControlSpec spec;
  if (o.has("service_uuid")) {
    auto uuid = requiredUuid(o, "service_uuid", index, "control.service_uuid");
    if (!uuid.isOk()) return uuid.status();
    spec.serviceUuid = uuid.value();
  }
  auto characteristic = requiredUuid(o, "characteristic", index, "control.characteristic");
  if (!characteristic.isOk()) return characteristic.status();
  spec.characteristicUuid = characteristic.value();
  spec.replyCharacteristicUuid = spec.characteristicUuid;
  if (o.has("reply_characteristic")) {
    auto uuid = requiredUuid(o, "reply_characteristic", index, "control.reply_characteristic");
    if (!uuid.isOk()) return uuid.status();
    spec.replyCharacteristicUuid = uuid.value();
  }
  auto reply = optString(o, "reply", index, "control.reply");
  if (!reply.isOk()) return reply.status();
  const std::string replyMode = reply.value().value_or("none");
  if (replyMode == "none") {
    spec.reply = ReplyMode::kNone;
  } else if (replyMode == "read") {
    spec.reply = ReplyMode::kRead;
  } else if (replyMode == "notify") {
    spec.reply = ReplyMode::kNotify;
  } else {
    return ruleError(index, "control.reply", "expected none, read or notify");
  }
  auto writeType = optString(o, "write_type", index, "control.write_type");
  if (!writeType.isOk()) return writeType.status();
  const std::string type = writeType.value().value_or("request");
  if (type != "request" && type != "command") {
    return ruleError(index, "control.write_type", "expected request or command");
  }
  spec.withResponse = type == "request";

  Object::Ptr commands = o.getObject("commands");
  if (!commands || commands->size() == 0) {
    return ruleError(index, "control.commands", "required: a map of command -> hex payload");
  }
  for (const auto& name : commands->getNames()) {
    const std::string path = "control.commands." + name;
    if (!isValidIdentifier(name)) return ruleError(index, path, "not a valid command name");
    Poco::Dynamic::Var v = commands->get(name);
    if (!v.isString()) {
      return ruleError(index, path, "expected a hex string (quote it in YAML) or \"*\"");
    }
    const std::string text = v.extract<std::string>();
    if (text == "*") {
      spec.commands.emplace(name, std::nullopt);
      continue;
    }
    auto bytes = fromHex(text);
    if (!bytes || bytes->empty())
      return ruleError(index, path, "not a hex payload: '" + text + "'");
    spec.commands.emplace(name, std::move(*bytes));
  }
  return spec;
}

Result<ProductRule> parseRule(const Object& o, size_t index) {
  Status keys = checkKeys(o,
                          {"model", "service_uuid", "manufacturer_id", "name_pattern", "adv_offset",
                           "default_bind_window", "control"},
                          index, "");
  if (!keys.isOk()) return keys;
  ProductRule rule;
  auto model = optString(o, "model", index, "model");
  if (!model.isOk()) return model.status();
  if (!model.value() || model.value()->empty() || model.value()->size() > kMaxModelLength) {
    return ruleError(index, "model", "required, 1 to 128 characters");
  }
  rule.model = *model.value();

  if (o.has("service_uuid")) {
    auto uuid = requiredUuid(o, "service_uuid", index, "service_uuid");
    if (!uuid.isOk()) return uuid.status();
    rule.serviceUuid = uuid.value();
  }
  if (o.has("manufacturer_id")) {
    Poco::Dynamic::Var v = o.get("manufacturer_id");
    int64_t id = -1;
    if (v.isInteger()) {
      id = v.convert<int64_t>();
    } else if (v.isString()) {
      std::string s = lower(v.extract<std::string>());
      if (s.rfind("0x", 0) == 0 && s.size() > 2 && s.size() <= 6 &&
          std::all_of(s.begin() + 2, s.end(), isHexDigit)) {
        id = std::stoll(s.substr(2), nullptr, 16);
      }
    }
    if (id < 0 || id > 0xFFFF) {
      return ruleError(index, "manufacturer_id", "expected 0..65535 or a hex string like 0x004c");
    }
    rule.manufacturerId = static_cast<uint16_t>(id);
  }
  auto pattern = optString(o, "name_pattern", index, "name_pattern");
  if (!pattern.isOk()) return pattern.status();
  if (pattern.value()) {
    if (pattern.value()->empty()) return ruleError(index, "name_pattern", "must not be empty");
    rule.namePattern = *pattern.value();
  }
  if (!rule.serviceUuid && !rule.manufacturerId && !rule.namePattern) {
    return ruleError(index, "",
                     "needs at least one of service_uuid, manufacturer_id, name_pattern");
  }
  auto offset = optInt(o, "adv_offset", index, "adv_offset");
  if (!offset.isOk()) return offset.status();
  if (offset.value()) {
    if (*offset.value() < 0 || *offset.value() > static_cast<int64_t>(kMaxAdvOffset)) {
      return ruleError(index, "adv_offset", "expected 0..255");
    }
    rule.advOffset = static_cast<size_t>(*offset.value());
  }
  auto window = optInt(o, "default_bind_window", index, "default_bind_window");
  if (!window.isOk()) return window.status();
  if (window.value()) {
    if (*window.value() < -1 || *window.value() > 0xFFFF) {
      return ruleError(index, "default_bind_window", "expected -1 (never), 0 (always) or seconds");
    }
    rule.defaultBindWindowSec = static_cast<int32_t>(*window.value());
  }
  if (o.has("control")) {
    Object::Ptr control = o.getObject("control");
    if (!control) return ruleError(index, "control", "expected a map");
    auto spec = parseControl(*control, index);
    if (!spec.isOk()) return spec.status();
    rule.control = std::move(spec).value();
  }
  return rule;
}

// The bytes the hearth block is read from: manufacturer data of the rule's company id, or
// service data of its service UUID.
const Bytes* blockSource(const ProductRule& rule, const Advertisement& adv) {
  if (rule.manufacturerId) {
    auto it = adv.manufacturerData.find(*rule.manufacturerId);
    return it == adv.manufacturerData.end() ? nullptr : &it->second;
  }
  if (rule.serviceUuid) {
    for (const auto& [uuid, data] : adv.serviceData) {
      if (sameUuid(uuid, *rule.serviceUuid)) return &data;
    }
  }
  return nullptr;
}

bool ruleMatches(const ProductRule& rule, const Advertisement& adv) {
  if (rule.serviceUuid) {
    bool found = std::any_of(adv.serviceUuids.begin(), adv.serviceUuids.end(),
                             [&](const std::string& u) { return sameUuid(u, *rule.serviceUuid); });
    if (!found) {
      found = std::any_of(adv.serviceData.begin(), adv.serviceData.end(),
                          [&](const auto& e) { return sameUuid(e.first, *rule.serviceUuid); });
    }
    if (!found) return false;
  }
  if (rule.manufacturerId && !adv.manufacturerData.count(*rule.manufacturerId)) return false;
  if (rule.namePattern && !globMatch(*rule.namePattern, adv.name)) return false;
  return true;
}

}  // namespace

Result<std::vector<ProductRule>> parseProductRules(const std::string& json) {
  Poco::Dynamic::Var root;
  try {
    root = Poco::JSON::Parser().parse(json);
  } catch (const std::exception& e) {
    return Status::error(ErrorCode::kInvalidRequest,
                         std::string("products: not JSON: ") + e.what());
  }
  if (root.type() != typeid(Array::Ptr)) {
    return Status::error(ErrorCode::kInvalidRequest, "products: expected a list of rules");
  }
  Array::Ptr list = root.extract<Array::Ptr>();
  std::vector<ProductRule> rules;
  for (size_t i = 0; i < list->size(); ++i) {
    Object::Ptr o = list->getObject(static_cast<unsigned>(i));
    if (!o) return ruleError(i, "", "expected a map");
    auto rule = parseRule(*o, i);
    if (!rule.isOk()) return rule.status();
    rules.push_back(std::move(rule).value());
  }
  return rules;
}

std::optional<std::vector<std::string>> discoveryUuids(const std::vector<ProductRule>& rules) {
  std::set<std::string> uuids;
  for (const auto& r : rules) {
    if (!r.serviceUuid) return std::nullopt;
    uuids.insert(*r.serviceUuid);
  }
  return std::vector<std::string>(uuids.begin(), uuids.end());
}

const ProductRule* matchRule(const std::vector<ProductRule>& rules, const Advertisement& adv) {
  for (const auto& r : rules) {
    if (ruleMatches(r, adv)) return &r;
  }
  return nullptr;
}

std::optional<HearthBlock> parseHearthBlock(const Bytes& data, size_t offset) {
  if (offset > data.size() || data.size() - offset < kHearthBlockSize) return std::nullopt;
  const uint8_t* p = data.data() + offset;
  if (p[0] != kHearthBlockVersion) return std::nullopt;
  HearthBlock b;
  b.pairingClosed = (p[1] & kFlagPairingClosed) != 0;
  b.bindWindowSec = static_cast<uint16_t>(p[2] | (p[3] << 8));
  b.resetCounter = p[4];
  return b;
}

AdvertInfo advertInfo(const ProductRule& rule, const Advertisement& adv) {
  AdvertInfo info;
  info.bindWindowSec = rule.defaultBindWindowSec;
  const Bytes* source = blockSource(rule, adv);
  if (!source) return info;
  auto block = parseHearthBlock(*source, rule.advOffset);
  if (!block) return info;
  info.bindWindowSec = block->pairingClosed ? -1 : static_cast<int32_t>(block->bindWindowSec);
  info.resetCounter = block->resetCounter;
  return info;
}

Result<Bytes> commandPayload(const ControlSpec& spec, const std::string& command,
                             const std::string& paramsJson) {
  auto it = spec.commands.find(command);
  if (it == spec.commands.end()) {
    std::string known;
    for (const auto& [name, payload] : spec.commands) known += (known.empty() ? "" : ", ") + name;
    return Status::error(ErrorCode::kInvalidRequest,
                         "unknown command '" + command + "' (this product knows: " + known + ")");
  }
  if (it->second) return *it->second;
  const std::string needs = "command '" + command + "' needs params.value: 1 to " +
                            std::to_string(kMaxWriteBytes) + " bytes as hex";
  auto params = json::tryParseObject(paramsJson.empty() ? "{}" : paramsJson);
  if (!params.isOk()) {
    return Status::error(ErrorCode::kInvalidRequest, "params: " + params.status().message());
  }
  std::optional<Bytes> bytes;
  try {
    bytes = fromHex(json::Params(params.value()).string("value", 2 * kMaxWriteBytes, 2));
  } catch (const json::InvalidParam& e) {
    return Status::error(ErrorCode::kInvalidRequest, needs + " (" + e.what() + ")");
  }
  if (!bytes) return Status::error(ErrorCode::kInvalidRequest, needs + " (not hex)");
  return *bytes;
}

Status mapBluezError(std::string_view name, std::string_view message) {
  const std::string text =
      "BlueZ " + std::string(name) + (message.empty() ? "" : ": " + std::string(message));
  static const std::set<std::string, std::less<>> kTimeout = {
      "org.bluez.Error.Timeout",
      "org.bluez.Error.AuthenticationTimeout",
      "org.freedesktop.DBus.Error.NoReply",
      "org.freedesktop.DBus.Error.Timeout",
      "org.freedesktop.DBus.Error.TimedOut",
      "System.Error.ETIMEDOUT"};
  static const std::set<std::string, std::less<>> kOffline = {
      "org.bluez.Error.NotConnected",
      "org.bluez.Error.ConnectionAttemptFailed",
      "org.bluez.Error.DoesNotExist",
      "org.bluez.Error.AuthenticationFailed",
      "org.bluez.Error.AuthenticationCanceled",
      "org.bluez.Error.AuthenticationRejected",
      "org.freedesktop.DBus.Error.UnknownObject",
      "System.Error.EHOSTDOWN",
      "System.Error.ENOTCONN",
      "System.Error.ECONNREFUSED",
      "System.Error.ECONNABORTED",
      "System.Error.ECONNRESET"};
  if (kTimeout.count(name)) return Status::error(ErrorCode::kTimeout, text);
  if (name == "org.bluez.Error.Failed") {
    // BlueZ reports most connection failures as Failed with the kernel's reason as text
    // ("Timeout was reached", "le-connection-abort-by-local", "Host is down", ...).
    const std::string m = lower(message);
    if (m.find("timeout") != std::string::npos || m.find("timed out") != std::string::npos) {
      return Status::error(ErrorCode::kTimeout, text);
    }
    return Status::error(ErrorCode::kOffline, text);
  }
  if (kOffline.count(name)) return Status::error(ErrorCode::kOffline, text);
  // NotReady (adapter off), NotPermitted/NotAuthorized/NotSupported (characteristic flags),
  // InProgress, InvalidArguments, ServiceUnknown (bluetoothd gone), AccessDenied (policy), ...
  return Status::error(ErrorCode::kUnavailable, text);
}

std::string deviceIdForAddress(std::string_view address) {
  if (address.size() != 17) return "";
  std::string id = "ble:";
  for (size_t i = 0; i < address.size(); ++i) {
    const char c = address[i];
    if (i % 3 == 2) {
      if (c != ':') return "";
    } else if (!isHexDigit(c)) {
      return "";
    }
    id += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return id;
}

std::optional<std::string> canonicalUuid(std::string_view text) {
  auto allHex = [](std::string_view s) { return std::all_of(s.begin(), s.end(), isHexDigit); };
  std::string full;
  if (text.size() == 4 && allHex(text)) {
    full = "0000" + std::string(text) + std::string(kBaseUuidSuffix);
  } else if (text.size() == 8 && allHex(text)) {
    full = std::string(text) + std::string(kBaseUuidSuffix);
  } else if (text.size() == 36 && text[8] == '-' && text[13] == '-' && text[18] == '-' &&
             text[23] == '-') {
    full = std::string(text);
  } else {
    return std::nullopt;  // Poco::UUID also takes 32 digits without dashes, BlueZ never does
  }
  Poco::UUID uuid;
  if (!uuid.tryParse(full)) return std::nullopt;
  return uuid.toString();  // lowercase, 8-4-4-4-12
}

bool globMatch(std::string_view pattern, std::string_view text) {
  // fnmatch(3): the same glob syntax as binding.products.
  return fnmatch(std::string(pattern).c_str(), std::string(text).c_str(), 0) == 0;
}

std::string truncateUtf8(std::string_view text, size_t maxBytes) {
  if (text.size() <= maxBytes) return std::string(text);
  size_t end = maxBytes;
  // Back up over continuation bytes (top bits 10) to the start of the cut character.
  while (end > 0 && (static_cast<uint8_t>(text[end]) & 0xC0) == 0x80) --end;
  return std::string(text.substr(0, end));
}

std::string toHex(const Bytes& bytes) { return Poco::DigestEngine::digestToHex(bytes); }

std::optional<Bytes> fromHex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  Bytes out;
  out.reserve(hex.size() / 2);
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = nibble(hex[i]);
    const int lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<uint8_t>((hi << 4) | lo));
  }
  return out;
}

}  // namespace hearth::ble
