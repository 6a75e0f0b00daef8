// hearth/util/json.h: the one JSON/params helper of the core and the plugins.

#include "hearth/util/json.h"

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace hearth::json {
namespace {

std::string messageOf(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const InvalidParam& e) {
    return e.what();
  }
  return "(no InvalidParam)";
}

TEST(JsonText, IsCompactAndRoundTrips) {
  Object o;
  o.set("a", 1);
  o.set("s", "x\"y");
  EXPECT_EQ(text(o), R"({"a":1,"s":"x\"y"})");
  Array::Ptr a = new Array;
  a->add(1);
  a->add("two");
  EXPECT_EQ(text(a), R"([1,"two"])");
  EXPECT_EQ(text(parseObject(text(o))), text(o));
}

TEST(JsonParse, SaysWhatIsWrongWithoutThrowingFromTry) {
  EXPECT_NE(messageOf([] { parseObject("{"); }).find("not JSON: JSON Exception: "), std::string::npos);
  EXPECT_EQ(messageOf([] { parseObject("[1]"); }), "not a JSON object");
  EXPECT_NE(messageOf([] { parseObject("3"); }).find("not JSON"), std::string::npos);
  auto bad = tryParseObject("nope");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidRequest);
  auto good = tryParseObject(R"({"k":true})");
  ASSERT_TRUE(good);
  EXPECT_TRUE(good.value()->getValue<bool>("k"));
}

TEST(JsonParams, RequiredOptionalAndNull) {
  Params p(R"({"id":"ab.c-1","n":null,"s":"","i":7,"f":1.5,"b":true})");
  EXPECT_EQ(p.identifier("id"), "ab.c-1");
  EXPECT_EQ(messageOf([&] { p.identifier("missing"); }), "missing \"missing\"");
  EXPECT_EQ(messageOf([&] { p.identifier("n"); }), "missing \"n\"");  // null counts as absent
  EXPECT_FALSE(p.optionalIdentifier("n"));
  EXPECT_EQ(p.optionalString("s").value(), "");
  EXPECT_EQ(messageOf([&] { p.string("s"); }), "\"s\" must be 1 to 256 characters");
  EXPECT_EQ(p.optionalInt("i").value(), 7);
  EXPECT_EQ(messageOf([&] { p.optionalInt("f"); }), "\"f\" must be an integer");
  EXPECT_TRUE(p.optionalBool("b", false));
  EXPECT_FALSE(p.optionalBool("absent", false));
  EXPECT_EQ(messageOf([&] { p.optionalBool("i", false); }), "\"i\" must be true or false");
}

TEST(JsonParams, IdentifiersRefuseTopicCharacters) {
  for (const char* bad : {R"({"u":"a/b"})", R"({"u":"a+"})", R"({"u":"#"})", R"({"u":7})"}) {
    Params p(bad);
    EXPECT_NE(messageOf([&] { p.identifier("u"); }), "(no InvalidParam)") << bad;
  }
  Params long65(std::string(R"({"u":")") + std::string(65, 'a') + "\"}");
  EXPECT_NE(messageOf([&] { long65.identifier("u"); }), "(no InvalidParam)");
}

TEST(JsonParams, ListsAndObjects) {
  Params p(R"({"l":["a","b","a"],"o":{"x":1},"bad":["a",3],"notObj":[1]})");
  EXPECT_EQ(p.identifierList("l", 3), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(p.identifierList("absent", 3).empty());
  EXPECT_EQ(messageOf([&] { p.identifierList("l", 2); }), "\"l\" has more than 2 items");
  EXPECT_EQ(messageOf([&] { p.identifierList("bad", 5); }), "\"bad[1]\" must be a string");
  EXPECT_EQ(p.objectJson("o"), R"({"x":1})");
  EXPECT_EQ(p.objectJson("absent"), "{}");
  EXPECT_EQ(messageOf([&] { p.objectParam("notObj"); }), "\"notObj\" must be an object");
}

// A Responder whose sink records the one answer.
struct Answer : ResponseSink {
  std::string ok, error;
  ErrorCode code = ErrorCode::kOk;
  void sendOk(std::string r) override { ok = std::move(r); }
  void sendError(ErrorCode c, std::string m) override {
    code = c;
    error = std::move(m);
  }
};

TEST(JsonWithParams, BadParamsAnswerInvalidRequestAndOtherThrowsGoOn) {
  auto sink = std::make_shared<Answer>();
  Responder res(sink);
  Request req;
  req.paramsJson = R"({"userId":"a/b"})";
  withParams(req, res, [&](const Params& p) { res.ok("{\"u\":\"" + p.identifier("userId") + "\"}"); });
  EXPECT_EQ(sink->code, ErrorCode::kInvalidRequest);
  EXPECT_EQ(sink->error, "\"userId\" must match [A-Za-z0-9._:-]{1,64}");
  EXPECT_TRUE(sink->ok.empty());

  auto sink2 = std::make_shared<Answer>();
  Responder res2(sink2);
  req.paramsJson = R"({"userId":"alice"})";
  withParams(req, res2, [&](const Params& p) { res2.ok("{\"u\":\"" + p.identifier("userId") + "\"}"); });
  EXPECT_EQ(sink2->ok, R"({"u":"alice"})");

  // A bug is not a bad param: it reaches the host's guard (which fails the plugin).
  EXPECT_THROW(withParams(req, res2, [](const Params&) { throw std::logic_error("bug"); }),
               std::logic_error);
}

}  // namespace
}  // namespace hearth::json
