// The request envelope: every malformed input gets exactly one documented error, and valid
// requests reach their handler with validated identities.

#include "control/router.h"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "loop/logger.h"

namespace hearth {
namespace {

struct Sent {
  std::string topic;
  std::string payload;
  std::optional<std::string> correlation;
  Poco::JSON::Object::Ptr body() const {
    return Poco::JSON::Parser().parse(payload).extract<Poco::JSON::Object::Ptr>();
  }
  std::string errorCode() const {
    auto e = body()->getObject("error");
    return e ? e->getValue<std::string>("code") : "";
  }
};

class RecordingPublisher : public Publisher {
 public:
  void publish(const std::string& topic, const std::string& payload,
               const std::string* correlation) override {
    sent.push_back(
        {topic, payload, correlation ? std::optional<std::string>(*correlation) : std::nullopt});
  }
  std::vector<Sent> sent;
};

class RouterTest : public ::testing::Test {
 protected:
  RouterTest() : logger_(sink_, "test"), router_(pub_, logger_) {
    sink_.setLevel(LogLevel::kError);
    EXPECT_TRUE(router_.registerMethod(
        "echo", MethodScope::kUser,
        [this](const Request& req, Responder res) {
          seen_.push_back(req);
          res.ok(req.paramsJson);
        },
        "test"));
    EXPECT_TRUE(router_.registerMethod(
        "status", MethodScope::kAdmin, [](const Request&, Responder res) { res.ok("{}"); }, "test"));
  }

  void send(const std::string& topic, const std::string& payload, std::string responseTopic = "",
            std::optional<std::string> correlation = std::nullopt) {
    MqttMessage m;
    m.topic = topic;
    m.payload = payload;
    m.responseTopic = std::move(responseTopic);
    if (correlation) {
      m.hasCorrelation = true;
      m.correlationData = *correlation;
    }
    router_.handle(m);
  }

  LogSink sink_;
  TaggedLogger logger_;
  RecordingPublisher pub_;
  RequestRouter router_;
  std::vector<Request> seen_;
};

const char* kEcho = "hearth/v1/u/alice/phone/req/echo";

TEST_F(RouterTest, ValidRequestIsAnsweredOkOnTheDefaultTopic) {
  send(kEcho, R"({"id":"7","params":{"a":1}})");
  ASSERT_EQ(pub_.sent.size(), 1u);
  EXPECT_EQ(pub_.sent[0].topic, "hearth/v1/u/alice/phone/res/echo");
  auto b = pub_.sent[0].body();
  EXPECT_EQ(b->getValue<std::string>("id"), "7");
  EXPECT_TRUE(b->getValue<bool>("ok"));
  EXPECT_EQ(b->getObject("result")->getValue<int>("a"), 1);
  ASSERT_EQ(seen_.size(), 1u);
  EXPECT_EQ(seen_[0].userId, "alice");
  EXPECT_EQ(seen_[0].clientId, "phone");
}

TEST_F(RouterTest, MissingParamsBecomeEmptyObject) {
  send(kEcho, R"({"id":"1"})");
  ASSERT_EQ(seen_.size(), 1u);
  EXPECT_EQ(seen_[0].paramsJson, "{}");
}

TEST_F(RouterTest, MalformedJsonIsInvalidRequestWithNullId) {
  send(kEcho, R"({"id":"1",)");
  ASSERT_EQ(pub_.sent.size(), 1u);
  EXPECT_EQ(pub_.sent[0].errorCode(), "INVALID_REQUEST");
  EXPECT_TRUE(pub_.sent[0].body()->isNull("id"));
  EXPECT_TRUE(seen_.empty());
}

TEST_F(RouterTest, NonObjectJsonIsInvalidRequest) {
  send(kEcho, R"([1,2])");
  ASSERT_EQ(pub_.sent.size(), 1u);
  EXPECT_EQ(pub_.sent[0].errorCode(), "INVALID_REQUEST");
}

TEST_F(RouterTest, OversizePayloadIsRejectedBeforeParsing) {
  std::string big = R"({"id":"1","params":{"x":")" + std::string(65 * 1024, 'a') + "\"}}";
  send(kEcho, big);
  ASSERT_EQ(pub_.sent.size(), 1u);
  EXPECT_EQ(pub_.sent[0].errorCode(), "INVALID_REQUEST");
  EXPECT_NE(pub_.sent[0].body()->getObject("error")->getValue<std::string>("message").find("limit"),
            std::string::npos);
  EXPECT_TRUE(seen_.empty());
}

TEST_F(RouterTest, PayloadAtTheLimitIsAccepted) {
  std::string prefix = R"({"id":"1","params":{"x":")";
  std::string suffix = "\"}}";
  std::string exact =
      prefix + std::string(kMaxPayloadBytes - prefix.size() - suffix.size(), 'a') + suffix;
  ASSERT_EQ(exact.size(), kMaxPayloadBytes);
  send(kEcho, exact);
  EXPECT_EQ(seen_.size(), 1u);
}

TEST_F(RouterTest, MissingOrBadIdIsInvalidRequest) {
  for (const char* p :
       {R"({"params":{}})", R"({"id":5})", R"({"id":""})",
        R"({"id":"0123456789012345678901234567890123456789012345678901234567890123456789"})"}) {
    pub_.sent.clear();
    send(kEcho, p);
    ASSERT_EQ(pub_.sent.size(), 1u) << p;
    EXPECT_EQ(pub_.sent[0].errorCode(), "INVALID_REQUEST") << p;
  }
  EXPECT_TRUE(seen_.empty());
}

TEST_F(RouterTest, ParamsMustBeAnObject) {
  send(kEcho, R"({"id":"1","params":[1]})");
  ASSERT_EQ(pub_.sent.size(), 1u);
  EXPECT_EQ(pub_.sent[0].errorCode(), "INVALID_REQUEST");
  EXPECT_EQ(pub_.sent[0].body()->getValue<std::string>("id"), "1");
}

TEST_F(RouterTest, UnknownMethod) {
  send("hearth/v1/u/alice/phone/req/nope", R"({"id":"1"})");
  ASSERT_EQ(pub_.sent.size(), 1u);
  EXPECT_EQ(pub_.sent[0].errorCode(), "UNKNOWN_METHOD");
}

TEST_F(RouterTest, AdminMethodIsUnknownInTheUserTree) {
  send("hearth/v1/u/alice/phone/req/status", R"({"id":"1"})");
  ASSERT_EQ(pub_.sent.size(), 1u);
  EXPECT_EQ(pub_.sent[0].errorCode(), "UNKNOWN_METHOD");
  pub_.sent.clear();
  send("hearth/v1/admin/req/status", R"({"id":"1"})");
  ASSERT_EQ(pub_.sent.size(), 1u);
  EXPECT_EQ(pub_.sent[0].topic, "hearth/v1/admin/res/status");
  EXPECT_TRUE(pub_.sent[0].body()->getValue<bool>("ok"));
}

TEST_F(RouterTest, BadClientIdentifierIsInvalidRequest) {
  send("hearth/v1/u/alice/ph one/req/echo", R"({"id":"1"})");
  ASSERT_EQ(pub_.sent.size(), 1u);
  EXPECT_EQ(pub_.sent[0].errorCode(), "INVALID_REQUEST");
  EXPECT_TRUE(seen_.empty());
}

TEST_F(RouterTest, ResponseTopicAndCorrelationDataAreHonoured) {
  send(kEcho, R"({"id":"1"})", "hearth/v1/u/alice/phone/res/mine", std::string("\x01\x02", 2));
  ASSERT_EQ(pub_.sent.size(), 1u);
  EXPECT_EQ(pub_.sent[0].topic, "hearth/v1/u/alice/phone/res/mine");
  ASSERT_TRUE(pub_.sent[0].correlation.has_value());
  EXPECT_EQ(*pub_.sent[0].correlation, std::string("\x01\x02", 2));
}

TEST_F(RouterTest, ResponseTopicOutsideOwnTreeIsRefused) {
  // Otherwise alice could make the hub publish into bob's event topics.
  send(kEcho, R"({"id":"1"})", "hearth/v1/u/bob/tv/evt/command");
  ASSERT_EQ(pub_.sent.size(), 1u);
  EXPECT_EQ(pub_.sent[0].topic, "hearth/v1/u/alice/phone/res/echo");
  EXPECT_EQ(pub_.sent[0].errorCode(), "INVALID_REQUEST");
  EXPECT_TRUE(seen_.empty());
}

TEST_F(RouterTest, HandlerThatNeverAnswersYieldsInternal) {
  ASSERT_TRUE(router_.registerMethod(
      "forget", MethodScope::kUser, [](const Request&, Responder) {}, "test"));
  send("hearth/v1/u/alice/phone/req/forget", R"({"id":"9"})");
  ASSERT_EQ(pub_.sent.size(), 1u);
  EXPECT_EQ(pub_.sent[0].errorCode(), "INTERNAL");
  EXPECT_EQ(pub_.sent[0].body()->getValue<std::string>("id"), "9");
}

TEST_F(RouterTest, SecondAnswerIsDropped) {
  ASSERT_TRUE(router_.registerMethod(
      "twice", MethodScope::kUser,
      [](const Request&, Responder res) {
        res.ok();
        res.error(ErrorCode::kInternal, "again");
      },
      "test"));
  send("hearth/v1/u/alice/phone/req/twice", R"({"id":"1"})");
  ASSERT_EQ(pub_.sent.size(), 1u);
  EXPECT_TRUE(pub_.sent[0].body()->getValue<bool>("ok"));
}

TEST_F(RouterTest, ThrowingHandlerYieldsInternalAndRouterKeepsServing) {
  ASSERT_TRUE(router_.registerMethod(
      "boom", MethodScope::kUser,
      [](const Request&, Responder) { throw std::runtime_error("bug"); }, "test"));
  send("hearth/v1/u/alice/phone/req/boom", R"({"id":"1"})");
  send(kEcho, R"({"id":"2"})");
  ASSERT_EQ(pub_.sent.size(), 2u);
  EXPECT_EQ(pub_.sent[0].errorCode(), "INTERNAL");
  EXPECT_TRUE(pub_.sent[1].body()->getValue<bool>("ok"));
}

TEST_F(RouterTest, DuplicateRegistrationIsConflict) {
  Status s = router_.registerMethod(
      "echo", MethodScope::kUser, [](const Request&, Responder) {}, "other");
  EXPECT_EQ(s.code(), ErrorCode::kConflict);
}

TEST_F(RouterTest, UnregisterOwnerRemovesItsMethods) {
  router_.unregisterOwner("test");
  send(kEcho, R"({"id":"1"})");
  ASSERT_EQ(pub_.sent.size(), 1u);
  EXPECT_EQ(pub_.sent[0].errorCode(), "UNKNOWN_METHOD");
}

TEST(RequestTopic, Parses) {
  auto t = parseRequestTopic("hearth/v1/u/a/b/req/m");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->userId, "a");
  EXPECT_EQ(t->replyTopic, "hearth/v1/u/a/b/res/m");
  EXPECT_FALSE(parseRequestTopic("hearth/v1/u/a/b/res/m"));
  EXPECT_FALSE(parseRequestTopic("hearth/v2/u/a/b/req/m"));
  EXPECT_FALSE(parseRequestTopic("hearth/v1/u/a/b/c/req/m"));
}

TEST(Identifiers, Validation) {
  EXPECT_TRUE(isValidIdentifier("alice"));
  EXPECT_TRUE(isValidIdentifier("ble:AA:BB:CC:DD:EE:FF"));
  EXPECT_TRUE(isValidIdentifier(std::string(64, 'a')));
  EXPECT_FALSE(isValidIdentifier(std::string(65, 'a')));
  EXPECT_FALSE(isValidIdentifier(""));
  for (const char* bad : {"a+b", "a#", "a/b", "a b", "ä"}) EXPECT_FALSE(isValidIdentifier(bad));
}

}  // namespace
}  // namespace hearth
