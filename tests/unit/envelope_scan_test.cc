// scanEnvelope: what a plugin's method gets from a request, read without building a document,
// must be what the parsed document says: the same id, the same params, the same refusals.

#include "control/envelope_scan.h"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

namespace hearth {
namespace {

// The params as a parsed document would give them, as compact text (keys in Poco's order).
std::string viaDocument(const std::string& paramsJson) {
  Poco::Dynamic::Var v = Poco::JSON::Parser().parse(paramsJson);
  std::ostringstream out;
  v.extract<Poco::JSON::Object::Ptr>()->stringify(out);
  return out.str();
}

TEST(EnvelopeScan, ParamsAreTheSameObjectAsTheParsedDocumentSays) {
  const std::vector<std::string> params = {
      R"({})",
      R"({"a":1})",
      R"({"to":{"appId":"a","userId":"u","clientIdentify":"c"},"commandType":"x",)"
      R"("commandParams":{"seq":7,"list":[1,2,[3,{}],[]],"deep":{"e":{}}}})",
      R"({"n":-12,"big":18446744073709551615,"neg":-9223372036854775808,"d":0.1,)"
      R"("e":1.5e300,"t":true,"f":false,"z":null})",
      R"({"s":"quote \" backslash \\ slash \/ tab \t nl \n uni \u00e9 \u2603 emoji 😀"})",
      R"({"a":[{"b":[{"c":[]}]}],"":"empty key"})",
  };
  for (const auto& p : params) {
    std::string payload = R"({"id":"r1","params":)" + p + "}";
    ScannedEnvelope e = scanEnvelope(payload);
    ASSERT_TRUE(e.idIsString) << payload;
    EXPECT_EQ(e.id, "r1");
    ASSERT_TRUE(e.hasParams);
    ASSERT_TRUE(e.paramsIsObject);
    EXPECT_EQ(viaDocument(e.paramsJson), viaDocument(p)) << e.paramsJson;
  }
}

TEST(EnvelopeScan, OtherKeysAndTheirValuesAreSkipped) {
  ScannedEnvelope e = scanEnvelope(
      R"({"x":{"id":"inner","params":[1]},"id":"outer","y":[{"params":{}}],"params":{"k":"v"},"z":3})");
  EXPECT_TRUE(e.idIsString);
  EXPECT_EQ(e.id, "outer");
  EXPECT_TRUE(e.paramsIsObject);
  EXPECT_EQ(viaDocument(e.paramsJson), R"({"k":"v"})");
}

TEST(EnvelopeScan, TheLastOfARepeatedKeyCountsAsInADocument) {
  ScannedEnvelope e = scanEnvelope(R"({"id":"a","id":"b","params":{"x":1},"params":{"y":2}})");
  EXPECT_EQ(e.id, "b");
  EXPECT_EQ(viaDocument(e.paramsJson), R"({"y":2})");
  e = scanEnvelope(R"({"id":"a","id":{"no":1},"params":{"x":1},"params":[1]})");
  EXPECT_FALSE(e.idIsString);
  EXPECT_TRUE(e.hasParams);
  EXPECT_FALSE(e.paramsIsObject);
  e = scanEnvelope(R"({"id":7,"id":"ok","params":"text","params":{"x":1}})");
  EXPECT_TRUE(e.idIsString);
  EXPECT_EQ(e.id, "ok");
  EXPECT_TRUE(e.paramsIsObject);
}

TEST(EnvelopeScan, WrongTypesAreReportedNotGuessed) {
  for (const char* payload :
       {R"({"id":5})", R"({"id":null})", R"({"id":["a"]})", R"({"id":{"a":"b"}})", R"({})"}) {
    EXPECT_FALSE(scanEnvelope(payload).idIsString) << payload;
  }
  for (const char* payload : {R"({"id":"a","params":null})", R"({"id":"a","params":[]})",
                              R"({"id":"a","params":"{}"})", R"({"id":"a","params":1})"}) {
    ScannedEnvelope e = scanEnvelope(payload);
    EXPECT_TRUE(e.hasParams) << payload;
    EXPECT_FALSE(e.paramsIsObject) << payload;
  }
  EXPECT_FALSE(scanEnvelope(R"({"id":"a"})").hasParams);
}

TEST(EnvelopeScan, ATopValueThatIsNoObjectOrNoJsonIsRefused) {
  for (const char* payload : {"[]", "[{\"id\":\"a\"}]", "\"text\"", "5", "true", "null"}) {
    EXPECT_THROW(scanEnvelope(payload), NotAnObject) << payload;
  }
  for (const char* payload : {"", "{", "{\"id\":\"a\",}", "{\"id\" \"a\"}", "{'id':'a'}",
                              "{\"id\":\"a\"} trailing", "\xff\xfe"}) {
    EXPECT_ANY_THROW(scanEnvelope(payload)) << payload;
  }
}

TEST(EnvelopeScan, ParamsAreHandedOnAsTheyCameWithoutTheSpaceBetweenTokens) {
  ScannedEnvelope e = scanEnvelope(
      "{ \"id\" : \"r\\u0031\" ,\n \"params\" : { \"a b\" : [ 1 , \"c \\\" d\" ] , \"e\":1.50 } }\n");
  EXPECT_EQ(e.id, "r1");  // escapes resolved
  EXPECT_EQ(e.paramsJson, R"({"a b":[1,"c \" d"],"e":1.50})");
}

TEST(EnvelopeScan, MalformedJsonSaysWhatAndWhere) {
  try {
    scanEnvelope(R"({"id":"a","params":{"x":[1,]}})");
    FAIL() << "accepted";
  } catch (const MalformedJson& e) {
    EXPECT_STREQ(e.what(), "expected a value at byte 27") << e.what();
  }
  EXPECT_THROW(scanEnvelope(R"({"id":"a","params":{"x":1}} {})"), MalformedJson);
  EXPECT_THROW(scanEnvelope("{\"id\":\"\xc0\x80\"}"), MalformedJson);  // overlong UTF-8
  EXPECT_THROW(scanEnvelope(std::string("{\"id\":\"a\",\"params\":") + std::string(128, '[') +
                            std::string(128, ']') + "}"),
               MalformedJson);  // 129 levels with the envelope's own
}

}  // namespace
}  // namespace hearth
