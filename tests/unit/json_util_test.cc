// hearth/util/json.h: the one JSON/params helper of the core and the plugins.

#include "hearth/util/json.h"

#include <Poco/JSON/Handler.h>
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "hearth/util/json_scan.h"

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

// What Poco's parser says of a text, with a handler that keeps nothing (the check isJson
// replaced): the reference the scanner must agree with.
class Discard : public Poco::JSON::Handler {
 public:
  void reset() override {}
  void startObject() override {}
  void endObject() override {}
  void startArray() override {}
  void endArray() override {}
  void key(const std::string&) override {}
  void null() override {}
  void value(int) override {}
  void value(unsigned) override {}
  void value(Poco::Int64) override {}
  void value(Poco::UInt64) override {}
  void value(const std::string&) override {}
  void value(double) override {}
  void value(bool) override {}
};
bool pocoAccepts(const std::string& text) {
  try {
    Poco::JSON::Parser(new Discard).parse(text);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

const std::vector<std::string>& cases() {
  static const std::vector<std::string> all = {
      // accepted
      R"({})", R"([])", " [1] ", "5", "-0", "0.5", "1E5", "1.5e-3", "0e0", "1e-999", "1e308",
      R"("x")", R"(" \/ ")", "true", "null", R"({"a":1,"a":null})", R"([[[[]]]])",
      R"({"s":"quote \" backslash \\ slash \/ \b\f\n\r\t \u00e9 \u2603 \ud83d\ude00 😀"})",
      "[\"\x7f\"]", "[\"\xf0\x9f\x98\x80\"]", "[\"\xf4\x8f\xbf\xbf\"]", "[\"\xe0\xa0\x80\"]",
      R"(["a\u0000b"])", "[9223372036854775807]", "[9223372036854775808]",
      "[-9223372036854775808]", "[18446744073709551615]", "[18446744073709551616]",
      "[-9223372036854775809]", "[1.7976931348623157e308]",
      "{ \"a\" : [ 1 , { \"b\" : null } ] , \"c\" : \"d e\" }\n",
      // refused
      "", " ", "{", "[", "]", "{]", "[}", "{\"a\"}", "{\"a\":}", "{\"a\" 1}", "{1:2}", "{'a':1}",
      "[1,]", "{\"a\":1,}", "[,1]", "[1 2]", "[true false]", "[truex]", "[tru]", "nul", "[nulll]",
      "[-]", "[1.]", "[.5]", "[01]", "[-01]", "[1e]", "[1e+]", "[+1]", "[Infinity]", "[NaN]",
      "[0x10]", "[1e999]", "[-1e999]", "[2e308]", "[12345678901234567890123]",
      "[99999999999999999999]", "[-18446744073709551615]", "/*c*/[1]", "[1]//x", "[1] x",
      "{\"a\":1}{}", "\f[1]", "[1]\v", "\xef\xbb\xbf[1]", "[\"\\x\"]", "[\"\\u12\"]",
      "[\"\\U0041\"]", "[\"\\ud800\"]", "[\"\\udc00\"]", "[\"\\ud800\\u0041\"]",
      "[\"\\ud800x\"]", "[\"\x01\"]", "[\"\t\"]", "[\"\xc0\x80\"]", "[\"\xc1\xbf\"]",
      "[\"\xed\xa0\x80\"]", "[\"\xf4\x90\x80\x80\"]", "[\"\xf5\x80\x80\x80\"]", "[\"\xe2\x82\"]",
      "[\"\xff\"]", "[\"\x80\"]", "[1\xff]", "[\"abc", "[\"abc\\", "\"a\"\"b\"", "[\"a\"]]",
  };
  return all;
}

TEST(JsonScan, AcceptsExactlyWhatPocosParserAccepts) {
  for (const auto& text : cases()) {
    EXPECT_EQ(isJson(text), pocoAccepts(text)) << "[" << text << "]";
  }
}

TEST(JsonScan, AgreesWithPocoOnMutationsOfEveryCase) {
  // Bytes that change what a JSON text means: structure, escapes, digits, bad UTF-8.
  const std::string alphabet = "{}[]:,\"\\/ \t\n-+.eE0123456789ubtnfr\x01\x7f\x80\xbf\xc3\xed\xf0\xff";
  std::mt19937 rng(18);  // fixed: the same inputs every run
  size_t accepted = 0, refused = 0;
  for (const auto& seed : cases()) {
    for (int round = 0; round < 300; ++round) {
      std::string t = seed;
      int edits = 1 + static_cast<int>(rng() % 3);
      for (int e = 0; e < edits; ++e) {
        size_t at = t.empty() ? 0 : rng() % (t.size() + 1);
        char c = alphabet[rng() % alphabet.size()];
        switch (rng() % 4) {
          case 0: t.insert(t.begin() + static_cast<ptrdiff_t>(at), c); break;
          case 1: if (at < t.size()) t[at] = c; break;
          case 2: if (at < t.size()) t.erase(at, 1); break;
          default: t = t.substr(0, at); break;
        }
      }
      if (t.find('\xff') != std::string::npos) {
        // Poco's parser (pdjson) reads a 0xFF byte as the end of the text, and so takes
        // `{}\xff junk` for `{}`. 0xFF is never UTF-8: refused, unlike Poco.
        ASSERT_FALSE(isJson(t)) << "[" << t << "]";
      } else {
        ASSERT_EQ(isJson(t), pocoAccepts(t)) << "[" << t << "] from [" << seed << "]";
        // Params reads an object member by member: the same verdict as the parsed document.
        bool params = messageOf([&] { Params p(t); }) == "(no InvalidParam)";
        bool document = messageOf([&] { parseObject(t); }) == "(no InvalidParam)";
        ASSERT_EQ(params, document) << "[" << t << "] from [" << seed << "]";
      }
      ++(isJson(t) ? accepted : refused);
    }
  }
  // Both sides are exercised, not only the obvious refusals.
  EXPECT_GT(accepted, 2000u);
  EXPECT_GT(refused, 3000u);
}

TEST(JsonScan, NestingDeeperThanPocoAllowsIsRefusedWithoutRecursion) {
  for (int depth : {127, 128, 129, 100000}) {
    std::string arrays = std::string(depth, '[') + std::string(depth, ']');
    std::string objects;
    for (int i = 0; i < depth; ++i) objects += "{\"a\":";
    objects += "1" + std::string(depth, '}');
    EXPECT_EQ(isJson(arrays), depth <= 128) << depth;
    EXPECT_EQ(isJson(objects), depth <= 128) << depth;
    if (depth < 1000) {
      EXPECT_EQ(isJson(arrays), pocoAccepts(arrays)) << depth;
      EXPECT_EQ(isJson(objects), pocoAccepts(objects)) << depth;
    }
  }
}

TEST(JsonScan, StringsDecodeAsPocoDecodesThem) {
  for (const std::string s :
       {R"("plain")", R"("")", R"("\" \\ \/ \b \f \n \r \t")", R"("\u0041\u00e9\u2603\ud83d\ude00")",
        R"("a\u0000b")", "\"\xf0\x9f\x98\x80 raw\"", R"("\uD83D\uDE00 upper hex")"}) {
    Scanner sc(s);
    Token t;
    ASSERT_TRUE(sc.value(t)) << s;
    Poco::Dynamic::Var v = Poco::JSON::Parser().parse("[" + s + "]").extract<Array::Ptr>()->get(0);
    EXPECT_EQ(decodeString(t), v.toString()) << s;
  }
}

TEST(JsonScan, CompactTextDropsOnlyTheSpaceBetweenTokens) {
  Scanner sc(" { \"a b\" : [ 1 ,\n\t2 ] , \"c\":\" \\\" x \" } ");
  Token t;
  ASSERT_TRUE(sc.value(t));
  EXPECT_TRUE(t.spaced);
  EXPECT_EQ(compactText(t), R"({"a b":[1,2],"c":" \" x "})");
  Scanner tight(R"({"a":[1,{"b":"c d"}]})");
  ASSERT_TRUE(tight.value(t));
  EXPECT_FALSE(t.spaced);
}

// Every accessor on a scanned Params says what one on the parsed document would say.
TEST(JsonParams, ReadsEveryMemberAsTheParsedDocumentDoes) {
  const std::string params =
      R"({"s":"x\u00e9\"y","i":-42,"big":9223372036854775807,"f":2.5,"t":true,"n":null,)"
      R"("o":{"k":[1,{"z":null}],"e":"\/"},"l":["a","b","a"],"e":"","s":"last"})";
  Params p(params);
  Object::Ptr doc = parseObject(params);
  for (const std::string name : {"s", "i", "big", "f", "t", "n", "o", "l", "e", "absent"}) {
    EXPECT_EQ(p.has(name), doc->has(name) && !doc->isNull(name)) << name;
  }
  EXPECT_EQ(p.string("s"), doc->getValue<std::string>("s"));  // the last "s" counts
  EXPECT_EQ(p.string("s"), "last");
  EXPECT_EQ(p.optionalInt("i").value(), doc->getValue<int64_t>("i"));
  EXPECT_EQ(p.optionalInt("big").value(), INT64_MAX);
  EXPECT_TRUE(p.optionalBool("t", false));
  EXPECT_EQ(text(p.objectParam("o")), text(doc->getObject("o")));
  EXPECT_EQ(text(parseObject(p.objectJson("o"))), text(doc->getObject("o")));
  EXPECT_EQ(p.objectJson("o"), R"({"k":[1,{"z":null}],"e":"\/"})");  // as it came
  EXPECT_EQ(text(p.object()), text(doc));
  EXPECT_EQ(p.identifierList("l", 3), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(p.optionalString("e").value(), "");
}

TEST(JsonParams, HostileParamsAreRefusedWithTheirName) {
  EXPECT_EQ(messageOf([] { Params p("{\"a\":"); }).rfind("not JSON: ", 0), 0u);
  EXPECT_EQ(messageOf([] { Params p("{\"a\":1} {}"); }).rfind("not JSON: ", 0), 0u);
  EXPECT_EQ(messageOf([] { Params p("{\"a\":\"\xff\"}"); }).rfind("not JSON: ", 0), 0u);
  EXPECT_EQ(messageOf([] { Params p("[1]"); }), "not a JSON object");
  EXPECT_EQ(messageOf([] { Params p("\"text\""); }), "not a JSON object");
  EXPECT_EQ(messageOf([] { Params p(""); }).rfind("not JSON: ", 0), 0u);

  // A repeated name: the last counts, also when it is null (then it is absent).
  Params dup(R"({"u":"first","u":null,"v":null,"v":"second"})");
  EXPECT_FALSE(dup.has("u"));
  EXPECT_EQ(messageOf([&] { dup.identifier("u"); }), "missing \"u\"");
  EXPECT_EQ(dup.identifier("v"), "second");

  // Wrong types, each with the accessor's own message.
  Params p(R"({"n":1,"s":"x","b":true,"o":{},"a":[],"f":1.0,"u":18446744073709551615})");
  EXPECT_EQ(messageOf([&] { p.string("n"); }), "\"n\" must be a string");
  EXPECT_EQ(messageOf([&] { p.identifier("o"); }), "\"o\" must be a string");
  EXPECT_EQ(messageOf([&] { p.optionalInt("s"); }), "\"s\" must be an integer");
  EXPECT_EQ(messageOf([&] { p.optionalInt("f"); }), "\"f\" must be an integer");
  EXPECT_EQ(messageOf([&] { p.optionalInt("u"); }), "\"u\" is out of range");
  EXPECT_EQ(messageOf([&] { p.optionalBool("n", true); }), "\"n\" must be true or false");
  EXPECT_EQ(messageOf([&] { p.objectJson("a"); }), "\"a\" must be an object");
  EXPECT_EQ(messageOf([&] { p.objectParams("s"); }), "\"s\" must be an object");
  EXPECT_EQ(messageOf([&] { p.identifierList("o", 3); }), "\"o\" must be an array");
  EXPECT_EQ(messageOf([&] { p.objectParam("missing"); }), "missing \"missing\"");

  // A huge string is read and measured, not truncated; deep nesting inside a member is only
  // skipped over until it is asked for.
  std::string huge(60000, 'a');
  Params big("{\"h\":\"" + huge + "\\n\",\"d\":" + std::string(127, '[') + std::string(127, ']') +
             ",\"id\":\"ok\"}");
  EXPECT_EQ(big.string("h", 70000).size(), 60001u);
  EXPECT_EQ(messageOf([&] { big.string("h"); }), "\"h\" must be 1 to 256 characters");
  EXPECT_EQ(big.identifier("id"), "ok");
  // 128 levels in all, the params object's own included, as Poco counts them.
  EXPECT_EQ(messageOf([] { Params p("{\"d\":" + std::string(128, '[') + std::string(128, ']') + "}"); })
                .rfind("not JSON: nesting deeper than 128 levels", 0),
            0u);
}

TEST(JsonParams, ManyNamesAreReadAndTheLastOfARepeatedOneCounts) {
  // Past a few members repeated names are found through an index (a 64 KiB object of 9,000
  // names once took 40 million comparisons): the same answers as one by one, on both sides of
  // where the index starts, and for a name repeated across it.
  for (int n : {3, 16, 17, 18, 40, 9000}) {
    std::string text = "{";
    for (int i = 0; i < n; ++i) text += "\"k" + std::to_string(i) + "\":\"v" + std::to_string(i) + "\",";
    text += "\"k0\":\"last\",\"k" + std::to_string(n - 1) + "\":null}";
    Params p(text);
    EXPECT_EQ(p.identifier("k0"), "last") << n;
    EXPECT_FALSE(p.has("k" + std::to_string(n - 1))) << n;
    EXPECT_EQ(p.identifier("k1"), "v1") << n;
    EXPECT_FALSE(p.has("k" + std::to_string(n))) << n;
  }
}

TEST(JsonParams, ANestedObjectReadAsParamsNamesItsMembersWithTheirPath) {
  Params p(R"({"to":{"appId":"app","userId":"u/1","clientIdentify":null},"x":{"y":{"z":"deep"}}})");
  Params to = p.objectParams("to");
  EXPECT_EQ(to.identifier("appId"), "app");
  EXPECT_EQ(messageOf([&] { to.identifier("userId"); }), "\"to.userId\" must match [A-Za-z0-9._:-]{1,64}");
  EXPECT_EQ(messageOf([&] { to.identifier("clientIdentify"); }), "missing \"to.clientIdentify\"");
  EXPECT_EQ(p.objectParams("x").objectParams("y").identifier("z"), "deep");
  EXPECT_EQ(messageOf([&] { p.objectParams("x").objectParams("y").identifier("w"); }),
            "missing \"x.y.w\"");
  EXPECT_EQ(messageOf([&] { p.objectParams("absent"); }), "missing \"absent\"");
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
