// The pure half of the ble plugin (plugins/ble/ble_advert.h): product rules, advertisement
// matching, the hearth advertisement block, command payloads and BlueZ error mapping.

#include "ble_advert.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace hearth::ble {
namespace {

const char* kLockUuid = "0000fff0-0000-1000-8000-00805f9b34fb";

std::vector<ProductRule> rules(const std::string& json) {
  auto r = parseProductRules(json);
  EXPECT_TRUE(r.isOk()) << r.status().toString();
  return r.isOk() ? r.value() : std::vector<ProductRule>{};
}

std::string ruleError(const std::string& json) {
  auto r = parseProductRules(json);
  EXPECT_FALSE(r.isOk()) << json;
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidRequest);
  return r.status().message();
}

TEST(BleUuid, ShortFormsExpandWithTheBaseUuidAndCaseIsFolded) {
  EXPECT_EQ(canonicalUuid("fff0"), std::optional<std::string>(kLockUuid));
  EXPECT_EQ(canonicalUuid("FFF0"), std::optional<std::string>(kLockUuid));
  EXPECT_EQ(canonicalUuid("0000FFF0"), std::optional<std::string>(kLockUuid));
  EXPECT_EQ(canonicalUuid("0000FFF0-0000-1000-8000-00805F9B34FB"),
            std::optional<std::string>(kLockUuid));
  EXPECT_FALSE(canonicalUuid("fff"));
  EXPECT_FALSE(canonicalUuid("gggg"));
  EXPECT_FALSE(canonicalUuid("0000fff0-0000-1000-8000-00805f9b34f"));
  EXPECT_FALSE(canonicalUuid("0000fff0x0000-1000-8000-00805f9b34fb"));
}

TEST(BleDeviceId, IsBlePlusTheUpperCaseMacAndAValidIdentifier) {
  EXPECT_EQ(deviceIdForAddress("c0:ff:ee:00:00:01"), "ble:C0:FF:EE:00:00:01");
  EXPECT_TRUE(isValidIdentifier(deviceIdForAddress("C0:FF:EE:00:00:01")));
  EXPECT_EQ(deviceIdForAddress("C0-FF-EE-00-00-01"), "");
  EXPECT_EQ(deviceIdForAddress("C0:FF:EE:00:00"), "");
  EXPECT_EQ(deviceIdForAddress("C0:FF:EE:00:00:0G"), "");
  EXPECT_EQ(deviceIdForAddress("C0:FF:EE:00:00:01/#"), "");
}

TEST(BleGlob, StarAndQuestionMark) {
  EXPECT_TRUE(globMatch("ACME Bulb*", "ACME Bulb kitchen"));
  EXPECT_TRUE(globMatch("ACME Bulb*", "ACME Bulb"));
  EXPECT_FALSE(globMatch("ACME Bulb*", "ACME Lock"));
  EXPECT_TRUE(globMatch("L?ck-*-v2", "Lock-42-v2"));
  EXPECT_FALSE(globMatch("L?ck-*-v2", "Lock-42-v3"));
  EXPECT_TRUE(globMatch("*", ""));
  EXPECT_FALSE(globMatch("?", ""));
  EXPECT_TRUE(globMatch("*a*b*c", "xaxxbxxxc"));
  EXPECT_FALSE(globMatch("*a*b*c", "xaxxbxxx"));
  EXPECT_TRUE(globMatch("ACME*", "ACME*2"));  // a '*' in the name is just a character
}

TEST(BleHex, RoundTripsAndRejectsGarbage) {
  EXPECT_EQ(toHex({0x00, 0xA1, 0xFF}), "00a1ff");
  EXPECT_EQ(fromHex("00A1ff"), std::optional<Bytes>(Bytes{0x00, 0xA1, 0xFF}));
  EXPECT_EQ(fromHex(""), std::optional<Bytes>(Bytes{}));
  EXPECT_FALSE(fromHex("abc"));
  EXPECT_FALSE(fromHex("zz"));
  EXPECT_FALSE(fromHex("0x01"));
}

TEST(BleUtf8, TruncationNeverSplitsACharacter) {
  EXPECT_EQ(truncateUtf8("abc", 5), "abc");
  EXPECT_EQ(truncateUtf8("abcdef", 3), "abc");
  // "é" is two bytes: cutting after its first byte drops it whole.
  EXPECT_EQ(truncateUtf8("ab\xC3\xA9z", 3), "ab");
  EXPECT_EQ(truncateUtf8("ab\xC3\xA9z", 4), "ab\xC3\xA9");
}

TEST(BleRules, ParsesEveryFieldAndDefaults) {
  auto r = rules(R"([{
      "model": "acme.lock.v1", "service_uuid": "FFF0", "manufacturer_id": "0x004C",
      "name_pattern": "Lock*", "adv_offset": 2, "default_bind_window": -1,
      "control": {"service_uuid": "fff0", "characteristic": "fff1", "reply": "notify",
                  "reply_characteristic": "fff2", "write_type": "command",
                  "commands": {"unlock": "01", "raw": "*"}}},
    {"model": "acme.bulb", "manufacturer_id": 65535}])");
  ASSERT_EQ(r.size(), 2u);
  const ProductRule& lock = r[0];
  EXPECT_EQ(lock.model, "acme.lock.v1");
  EXPECT_EQ(lock.serviceUuid, std::optional<std::string>(kLockUuid));
  EXPECT_EQ(lock.manufacturerId, std::optional<uint16_t>(0x004C));
  EXPECT_EQ(lock.namePattern, std::optional<std::string>("Lock*"));
  EXPECT_EQ(lock.advOffset, 2u);
  EXPECT_EQ(lock.defaultBindWindowSec, -1);
  ASSERT_TRUE(lock.control);
  EXPECT_EQ(lock.control->serviceUuid, kLockUuid);
  EXPECT_EQ(lock.control->characteristicUuid, "0000fff1-0000-1000-8000-00805f9b34fb");
  EXPECT_EQ(lock.control->replyCharacteristicUuid, "0000fff2-0000-1000-8000-00805f9b34fb");
  EXPECT_EQ(lock.control->reply, ReplyMode::kNotify);
  EXPECT_FALSE(lock.control->withResponse);
  EXPECT_EQ(lock.control->commands.at("unlock"), std::optional<Bytes>(Bytes{0x01}));
  EXPECT_FALSE(lock.control->commands.at("raw"));

  const ProductRule& bulb = r[1];
  EXPECT_EQ(bulb.manufacturerId, std::optional<uint16_t>(0xFFFF));
  EXPECT_FALSE(bulb.serviceUuid);
  EXPECT_EQ(bulb.advOffset, 0u);
  EXPECT_EQ(bulb.defaultBindWindowSec, 0);
  EXPECT_FALSE(bulb.control);
}

TEST(BleRules, ControlDefaultsAreRequestWritesWithoutReply) {
  auto r = rules(R"([{"model": "m", "service_uuid": "fff0",
                      "control": {"characteristic": "fff1", "commands": {"on": "a101"}}}])");
  ASSERT_EQ(r.size(), 1u);
  ASSERT_TRUE(r[0].control);
  EXPECT_EQ(r[0].control->reply, ReplyMode::kNone);
  EXPECT_TRUE(r[0].control->withResponse);
  EXPECT_EQ(r[0].control->replyCharacteristicUuid, r[0].control->characteristicUuid);
}

TEST(BleRules, ErrorsNameTheRuleAndTheKey) {
  EXPECT_EQ(ruleError("{}"), "products: expected a list of rules");
  EXPECT_NE(ruleError("[1]").find("products[0]: expected a map"), std::string::npos);
  EXPECT_NE(ruleError(R"([{"service_uuid": "fff0"}])").find("products[0].model"),
            std::string::npos);
  EXPECT_NE(ruleError(R"([{"model": "m"}])").find("at least one of"), std::string::npos);
  EXPECT_NE(ruleError(R"([{"model": "m", "service_uuid": "xyz"}])")
                .find("products[0].service_uuid: not a UUID"),
            std::string::npos);
  EXPECT_NE(ruleError(R"([{"model": "m", "manufacturer_id": 70000}])")
                .find("products[0].manufacturer_id"),
            std::string::npos);
  EXPECT_NE(
      ruleError(R"([{"model": "m", "manufacturer_id": "76"}])").find("products[0].manufacturer_id"),
      std::string::npos);
  EXPECT_NE(ruleError(R"([{"model": "m", "name_pattern": "x", "colour": "red"}])")
                .find("products[0].colour: unknown key"),
            std::string::npos);
  EXPECT_NE(ruleError(R"([{"model": "a", "name_pattern": "x"},
                          {"model": "b", "name_pattern": "y", "adv_offset": 300}])")
                .find("products[1].adv_offset"),
            std::string::npos);
  EXPECT_NE(
      ruleError(R"([{"model": "m", "name_pattern": "x", "control": {"commands": {"a": "01"}}}])")
          .find("products[0].control.characteristic: required"),
      std::string::npos);
  EXPECT_NE(ruleError(R"([{"model": "m", "name_pattern": "x",
                           "control": {"characteristic": "fff1", "commands": {"a": 1}}}])")
                .find("products[0].control.commands.a: expected a hex string"),
            std::string::npos);
  EXPECT_NE(ruleError(R"([{"model": "m", "name_pattern": "x",
                           "control": {"characteristic": "fff1", "commands": {"a": "0g"}}}])")
                .find("not a hex payload"),
            std::string::npos);
  EXPECT_NE(ruleError(R"([{"model": "m", "name_pattern": "x",
                           "control": {"characteristic": "fff1", "commands": {}}}])")
                .find("control.commands: required"),
            std::string::npos);
  EXPECT_NE(ruleError(R"([{"model": "m", "name_pattern": "x",
                           "control": {"characteristic": "fff1", "reply": "email",
                                       "commands": {"a": "01"}}}])")
                .find("control.reply"),
            std::string::npos);
  EXPECT_NE(ruleError("[").find("not JSON"), std::string::npos);
}

TEST(BleRules, DiscoveryUuidsOnlyWhenEveryRuleHasOne) {
  auto both = rules(R"([{"model": "a", "service_uuid": "fff0"},
                        {"model": "b", "service_uuid": "ffe0"},
                        {"model": "c", "service_uuid": "FFF0", "name_pattern": "x"}])");
  EXPECT_EQ(discoveryUuids(both), std::optional<std::vector<std::string>>(
                                      {"0000ffe0-0000-1000-8000-00805f9b34fb", kLockUuid}));
  auto mixed = rules(R"([{"model": "a", "service_uuid": "fff0"},
                         {"model": "b", "name_pattern": "ACME*"}])");
  EXPECT_FALSE(discoveryUuids(mixed));
}

TEST(BleMatch, EveryCriterionOfARuleMustHoldAndTheFirstRuleWins) {
  auto r = rules(R"([{"model": "lock", "service_uuid": "fff0", "manufacturer_id": 65535},
                     {"model": "named", "name_pattern": "ACME *"},
                     {"model": "any-ffff", "manufacturer_id": 65535}])");
  Advertisement adv;
  adv.name = "Front door";
  adv.serviceUuids = {"0000FFF0-0000-1000-8000-00805F9B34FB"};
  adv.manufacturerData[0xFFFF] = {0x01};
  ASSERT_NE(matchRule(r, adv), nullptr);
  EXPECT_EQ(matchRule(r, adv)->model, "lock");

  // The service in the service data (and not in UUIDs) counts too.
  Advertisement viaServiceData = adv;
  viaServiceData.serviceUuids.clear();
  viaServiceData.serviceData["fff0"] = {0x00};
  EXPECT_EQ(matchRule(r, viaServiceData)->model, "lock");

  Advertisement noService = adv;
  noService.serviceUuids.clear();
  EXPECT_EQ(matchRule(r, noService)->model, "any-ffff");

  Advertisement named;
  named.name = "ACME Bulb";
  EXPECT_EQ(matchRule(r, named)->model, "named");

  Advertisement stranger;
  stranger.name = "Someone's headphones";
  stranger.manufacturerData[0x004C] = {0x02, 0x15};
  EXPECT_EQ(matchRule(r, stranger), nullptr);
}

TEST(BleBlock, LayoutVersionAndLength) {
  auto b = parseHearthBlock({0x01, 0x00, 0x2C, 0x01, 0x07}, 0);
  ASSERT_TRUE(b);
  EXPECT_FALSE(b->pairingClosed);
  EXPECT_EQ(b->bindWindowSec, 300);
  EXPECT_EQ(b->resetCounter, 7);
  b = parseHearthBlock({0xAA, 0xBB, 0x01, 0x01, 0xFF, 0xFF, 0x00}, 2);
  ASSERT_TRUE(b);
  EXPECT_TRUE(b->pairingClosed);
  EXPECT_EQ(b->bindWindowSec, 0xFFFF);
  EXPECT_EQ(b->resetCounter, 0);
  EXPECT_FALSE(parseHearthBlock({0x02, 0x00, 0x00, 0x00, 0x00}, 0));  // another version
  EXPECT_FALSE(parseHearthBlock({0x01, 0x00, 0x00, 0x00}, 0));        // too short
  EXPECT_FALSE(parseHearthBlock({0x01, 0x00, 0x00, 0x00, 0x00}, 1));  // offset leaves 4
  EXPECT_FALSE(parseHearthBlock({0x01}, 9));                          // offset past the end
}

TEST(BleBlock, BindWindowAndResetCounterFromManufacturerOrServiceData) {
  auto r = rules(R"([{"model": "lock", "manufacturer_id": 65535, "adv_offset": 1},
                     {"model": "tag", "service_uuid": "fff0", "default_bind_window": -1}])");
  Advertisement adv;
  adv.manufacturerData[0xFFFF] = {0x99, 0x01, 0x00, 0x3C, 0x00, 0x05};
  AdvertInfo info = advertInfo(r[0], adv);
  EXPECT_EQ(info.bindWindowSec, 60);
  EXPECT_EQ(info.resetCounter, std::optional<uint8_t>(5));

  adv.manufacturerData[0xFFFF] = {0x99, 0x01, 0x01, 0x3C, 0x00, 0x06};  // pairing closed
  info = advertInfo(r[0], adv);
  EXPECT_EQ(info.bindWindowSec, -1);
  EXPECT_EQ(info.resetCounter, std::optional<uint8_t>(6));

  adv.manufacturerData[0xFFFF] = {0x01, 0x00, 0x00, 0x00, 0x00, 0x00};  // always bindable
  EXPECT_EQ(advertInfo(r[0], adv).bindWindowSec, 0);

  // No block: the rule's default, no counter.
  Advertisement tag;
  tag.serviceUuids = {"fff0"};
  info = advertInfo(r[1], tag);
  EXPECT_EQ(info.bindWindowSec, -1);
  EXPECT_FALSE(info.resetCounter);
  // A rule without a company id reads the block from its service's data.
  tag.serviceData["0000fff0-0000-1000-8000-00805f9b34fb"] = {0x01, 0x00, 0x0A, 0x00, 0x01};
  info = advertInfo(r[1], tag);
  EXPECT_EQ(info.bindWindowSec, 10);
  EXPECT_EQ(info.resetCounter, std::optional<uint8_t>(1));
}

TEST(BleCommands, NamedPayloadsAndHexFromParams) {
  auto r = rules(R"([{"model": "m", "name_pattern": "x",
                      "control": {"characteristic": "fff1",
                                  "commands": {"unlock": "01", "raw": "*"}}}])");
  const ControlSpec& spec = *r[0].control;
  auto unlock = commandPayload(spec, "unlock", "{}");
  ASSERT_TRUE(unlock.isOk());
  EXPECT_EQ(unlock.value(), Bytes{0x01});
  auto raw = commandPayload(spec, "raw", R"({"value": "0A0b"})");
  ASSERT_TRUE(raw.isOk());
  EXPECT_EQ(raw.value(), (Bytes{0x0A, 0x0B}));

  auto unknown = commandPayload(spec, "open", "{}");
  EXPECT_EQ(unknown.status().code(), ErrorCode::kInvalidRequest);
  EXPECT_NE(unknown.status().message().find("raw, unlock"), std::string::npos);
  for (const char* params :
       {"{}", R"({"value": ""})", R"({"value": "xyz"})", R"({"value": 7})", "[1]", "not json"}) {
    EXPECT_EQ(commandPayload(spec, "raw", params).status().code(), ErrorCode::kInvalidRequest)
        << params;
  }
  EXPECT_FALSE(commandPayload(spec, "raw", "{\"value\": \"" + std::string(1026, 'a') + "\"}"));
}

TEST(BleCommands, BadParamsSayWhatIsWrong) {
  auto r = rules(R"([{"model": "m", "name_pattern": "x",
                      "control": {"characteristic": "fff1", "commands": {"raw": "*"}}}])");
  const ControlSpec& spec = *r[0].control;
  auto message = [&](const std::string& params) {
    auto p = commandPayload(spec, "raw", params);
    EXPECT_FALSE(p.isOk()) << params;
    return p.isOk() ? std::string() : p.status().message();
  };
  EXPECT_NE(message("not json").find("params: not JSON"), std::string::npos);
  EXPECT_NE(message("[1]").find("params: not a JSON object"), std::string::npos);
  for (const char* params : {"{}", R"({"value": 7})", R"({"value": "xyz"})"}) {
    EXPECT_NE(message(params).find("command 'raw' needs params.value: 1 to 512 bytes as hex"),
              std::string::npos)
        << params;
  }
  EXPECT_NE(message("{}").find("missing \"value\""), std::string::npos);
  EXPECT_NE(message(R"({"value": 7})").find("must be a string"), std::string::npos);
  EXPECT_NE(message(R"({"value": "xyz"})").find("not hex"), std::string::npos);
  auto most = commandPayload(spec, "raw", "{\"value\": \"" + std::string(1024, 'a') + "\"}");
  ASSERT_TRUE(most.isOk());
  EXPECT_EQ(most.value().size(), 512u);
}

TEST(BleErrors, BluezErrorsMapToTimeoutOfflineOrUnavailableKeepingTheMessage) {
  struct Case {
    const char* name;
    const char* message;
    ErrorCode code;
  };
  const Case cases[] = {
      {"org.bluez.Error.Failed", "le-connection-abort-by-local", ErrorCode::kOffline},
      {"org.bluez.Error.Failed", "Host is down", ErrorCode::kOffline},
      {"org.bluez.Error.Failed", "Timeout was reached", ErrorCode::kTimeout},
      {"org.bluez.Error.Failed", "Connection timed out", ErrorCode::kTimeout},
      {"org.bluez.Error.NotConnected", "Not Connected", ErrorCode::kOffline},
      {"org.bluez.Error.DoesNotExist", "", ErrorCode::kOffline},
      {"org.freedesktop.DBus.Error.UnknownObject", "", ErrorCode::kOffline},
      {"org.freedesktop.DBus.Error.NoReply", "Did not receive a reply", ErrorCode::kTimeout},
      {"org.freedesktop.DBus.Error.Timeout", "", ErrorCode::kTimeout},
      {"org.bluez.Error.NotReady", "Resource Not Ready", ErrorCode::kUnavailable},
      {"org.bluez.Error.NotPermitted", "Write not permitted", ErrorCode::kUnavailable},
      {"org.bluez.Error.NotSupported", "", ErrorCode::kUnavailable},
      {"org.bluez.Error.InProgress", "In Progress", ErrorCode::kUnavailable},
      {"org.freedesktop.DBus.Error.ServiceUnknown", "", ErrorCode::kUnavailable},
      {"org.freedesktop.DBus.Error.AccessDenied", "policy", ErrorCode::kUnavailable},
      {"com.example.Whatever", "", ErrorCode::kUnavailable},
  };
  for (const Case& c : cases) {
    Status s = mapBluezError(c.name, c.message);
    EXPECT_EQ(s.code(), c.code) << c.name << " " << c.message;
    EXPECT_NE(s.message().find(c.name), std::string::npos) << s.message();
    EXPECT_NE(s.message().find(c.message), std::string::npos) << s.message();
  }
}

}  // namespace
}  // namespace hearth::ble
