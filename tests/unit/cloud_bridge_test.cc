// Unit tests for the pure parts of the cloud_bridge plugin: topic filters and rewriting, rule
// parsing and the loop guard, the bounded durable outbox (over an in-memory KvStore with
// transactions and injectable failures), and the status document (the back-off is tested in util_test.cc);
// and the plugin itself on the SDK's fake context, its links refused by closed loopback ports.

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "bridge_status.h"
#include "cloud_bridge_plugin.h"
#include "seq_index.h"
#include "cloud_outbox.h"
#include "fake_context.h"
#include "topic_rules.h"

namespace hearth::cloud_bridge {
namespace {

// --- topic filters -------------------------------------------------------------------------

TEST(TopicFilter, MatchesLevelsAndWildcards) {
  EXPECT_TRUE(topicMatches("a/b/c", "a/b/c"));
  EXPECT_FALSE(topicMatches("a/b/c", "a/b"));
  EXPECT_FALSE(topicMatches("a/b", "a/b/c"));
  EXPECT_TRUE(topicMatches("a/+/c", "a/x/c"));
  EXPECT_FALSE(topicMatches("a/+/c", "a/x/y/c"));
  EXPECT_TRUE(topicMatches("a/+", "a/"));  // an empty level is a level
  EXPECT_TRUE(topicMatches("a/#", "a/b/c/d"));
  EXPECT_TRUE(topicMatches("a/#", "a"));  // '#' includes the parent level
  EXPECT_FALSE(topicMatches("a/#", "ab"));
  EXPECT_TRUE(topicMatches("#", "anything/at/all"));
  EXPECT_FALSE(topicMatches("#", "$SYS/broker/uptime"));
  EXPECT_FALSE(topicMatches("+/broker/uptime", "$SYS/broker/uptime"));
  EXPECT_TRUE(topicMatches("$SYS/#", "$SYS/broker/uptime"));
}

TEST(TopicFilter, Validity) {
  EXPECT_TRUE(isValidTopicFilter("a/+/b/#"));
  EXPECT_TRUE(isValidTopicFilter("+"));
  EXPECT_FALSE(isValidTopicFilter(""));
  EXPECT_FALSE(isValidTopicFilter("a/#/b"));
  EXPECT_FALSE(isValidTopicFilter("a/b#"));
  EXPECT_FALSE(isValidTopicFilter("a/+b"));
  EXPECT_FALSE(isValidTopicFilter(std::string("a\0b", 3)));
  EXPECT_TRUE(isValidTopicName("a/b"));
  EXPECT_FALSE(isValidTopicName("a/+"));
  EXPECT_FALSE(isValidTopicName("a/#"));
  EXPECT_FALSE(isValidTopicName(""));
}

TEST(TopicFilter, Overlap) {
  EXPECT_TRUE(filtersOverlap("a/b", "a/b"));
  EXPECT_FALSE(filtersOverlap("a/b", "a/c"));
  EXPECT_TRUE(filtersOverlap("a/+", "a/b"));
  EXPECT_TRUE(filtersOverlap("a/#", "a"));
  EXPECT_TRUE(filtersOverlap("a", "a/#"));
  EXPECT_TRUE(filtersOverlap("a/+/c", "a/b/+"));
  EXPECT_FALSE(filtersOverlap("a/+/c", "a/b/d"));
  EXPECT_FALSE(filtersOverlap("a/+", "a/b/c"));
  EXPECT_TRUE(filtersOverlap("site1/x/#", "site1/x/cmd/#"));
  EXPECT_FALSE(filtersOverlap("site1/hub/#", "site1/cmd/#"));
  EXPECT_FALSE(filtersOverlap("#", "$SYS/x"));
  EXPECT_TRUE(filtersOverlap("$SYS/#", "$SYS/x"));
}

TEST(TopicFilter, RewriteReplacesTheFixedPrefixOnly) {
  EXPECT_EQ(rewriteTopic("hearth/v1/hub/#", "site1/hub/#", "hearth/v1/hub/status"),
            "site1/hub/status");
  EXPECT_EQ(rewriteTopic("hearth/v1/hub/#", "site1/hub/#", "hearth/v1/hub/a/b/c"),
            "site1/hub/a/b/c");
  EXPECT_EQ(rewriteTopic("hearth/v1/hub/#", "site1/hub/#", "hearth/v1/hub"), "site1/hub");
  EXPECT_EQ(rewriteTopic("hearth/v1/+/evt", "cloud/+/evt", "hearth/v1/dev7/evt"), "cloud/dev7/evt");
  EXPECT_EQ(rewriteTopic("hearth/v1/hub/status", "s/status", "hearth/v1/hub/status"), "s/status");
  EXPECT_EQ(rewriteTopic("hearth/v1/hub/#", "site1/hub/#", "hearth/v1/other"), std::nullopt);
}

// --- rules -----------------------------------------------------------------------------------

TEST(TopicRules, ParsesAndRoutes) {
  auto r = TopicRules::parse(R"([
    {"direction":"out","local":"hearth/v1/hub/#","remote":"site1/hub/#","qos":0},
    {"direction":"out","local":"hearth/v1/#","remote":"site1/all/#"},
    {"direction":"in","local":"hearth/v1/admin/req/#","remote":"site1/req/#","qos":1}
  ])");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  const TopicRules& rules = r.value();
  ASSERT_EQ(rules.rules().size(), 3u);
  EXPECT_EQ(rules.rules()[1].qos, 1);  // default

  auto out = rules.routeOut("hearth/v1/hub/status");
  ASSERT_TRUE(out);
  EXPECT_EQ(out->rule, 0u);  // first match wins
  EXPECT_EQ(out->topic, "site1/hub/status");
  EXPECT_EQ(out->qos, 0);
  out = rules.routeOut("hearth/v1/u/alice/phone/evt/x");
  ASSERT_TRUE(out);
  EXPECT_EQ(out->rule, 1u);
  EXPECT_EQ(out->topic, "site1/all/u/alice/phone/evt/x");
  EXPECT_FALSE(rules.routeOut("other/topic"));

  auto in = rules.routeIn("site1/req/userList");
  ASSERT_TRUE(in);
  EXPECT_EQ(in->rule, 2u);
  EXPECT_EQ(in->topic, "hearth/v1/admin/req/userList");
  // `out` rules never route in, `in` rules never route out.
  EXPECT_FALSE(rules.routeIn("site1/hub/status"));
  EXPECT_EQ(rules.routeOut("hearth/v1/admin/req/x")->rule, 1u);
}

TEST(TopicRules, EmptyAndDefault) {
  auto r = TopicRules::parse("[]");
  ASSERT_TRUE(r.isOk());
  EXPECT_TRUE(r.value().empty());
  EXPECT_FALSE(r.value().routeOut("hearth/v1/hub/status"));
}

TEST(TopicRules, ErrorsNameTheEntryAndField) {
  struct Case {
    const char* json;
    const char* expect;
  };
  const Case cases[] = {
      {R"({"direction":"out"})", "rules: expected a list"},
      {R"(not json)", "rules: not valid JSON"},
      {R"([1])", "rules[0]: expected a map"},
      {R"([{"direction":"sideways","local":"a/#","remote":"b/#"}])", "rules[0].direction"},
      {R"([{"direction":"out","local":"a/#"}])", "rules[0].remote: required"},
      {R"([{"direction":"out","local":"a/#","remote":7}])", "rules[0].remote: expected a string"},
      {R"([{"direction":"out","local":"a/#","remote":"b/#","retain":true}])",
       "rules[0].retain: unknown key"},
      {R"([{"direction":"out","local":"a/#/b","remote":"b/#"}])",
       "rules[0].local: 'a/#/b' is not a valid MQTT topic filter"},
      {R"([{"direction":"out","local":"#","remote":"b/#"}])",
       "rules[0].local: '#' must start with a fixed topic level"},
      {R"([{"direction":"out","local":"a/#","remote":"b/+"}])",
       "rules[0]: local 'a/#' and remote 'b/+' must end in the same wildcard levels"},
      {R"([{"direction":"out","local":"a/#","remote":"b/#"},
           {"direction":"in","local":"c/#","remote":"d/#","qos":3}])",
       "rules[1].qos: expected 0, 1 or 2"},
  };
  for (const Case& c : cases) {
    auto r = TopicRules::parse(c.json);
    ASSERT_FALSE(r.isOk()) << c.json;
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidRequest);
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos)
        << c.json << " -> " << r.status().message();
  }
}

TEST(TopicRules, Mqtt311RefusesRulesThatWouldLoopOrDuplicate) {
  const char* loop = R"([
    {"direction":"out","local":"hearth/v1/x/#","remote":"site1/x/#"},
    {"direction":"in","local":"hearth/v1/x/cmd/#","remote":"site1/x/cmd/#"}])";
  EXPECT_TRUE(TopicRules::parse(loop, false).isOk());  // MQTT 5 prevents the loop at run time
  auto r = TopicRules::parse(loop, true);
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("rules[1].remote 'site1/x/cmd/#' overlaps rules[0].remote"),
            std::string::npos)
      << r.status().message();

  const char* twice = R"([
    {"direction":"in","local":"hearth/v1/a/#","remote":"site1/a/#"},
    {"direction":"in","local":"hearth/v1/b/#","remote":"site1/+/b"}])";
  EXPECT_FALSE(TopicRules::parse(twice, true).isOk());

  const char* apart = R"([
    {"direction":"out","local":"hearth/v1/hub/#","remote":"site1/hub/#"},
    {"direction":"in","local":"hearth/v1/admin/req/#","remote":"site1/req/#"}])";
  EXPECT_TRUE(TopicRules::parse(apart, true).isOk());
}

TEST(TopicRules, SubscriptionsAreDistinctWithTheFirstRulesIdentifier) {
  auto r = TopicRules::parse(R"([
    {"direction":"out","local":"hearth/v1/hub/#","remote":"a/#"},
    {"direction":"in","local":"hearth/v1/in/#","remote":"c/#"},
    {"direction":"out","local":"hearth/v1/hub/#","remote":"b/#"},
    {"direction":"out","local":"hearth/v1/hub/status","remote":"s/status"}])");
  ASSERT_TRUE(r.isOk());
  auto out = r.value().subscriptions(Direction::kOut);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].filter, "hearth/v1/hub/#");
  EXPECT_EQ(out[0].subscriptionId, 1u);
  EXPECT_EQ(out[1].filter, "hearth/v1/hub/status");
  EXPECT_EQ(out[1].subscriptionId, 4u);
  auto in = r.value().subscriptions(Direction::kIn);
  ASSERT_EQ(in.size(), 1u);
  EXPECT_EQ(in[0].subscriptionId, 2u);

  // hearth/v1/hub/status matches subscriptions 1 and 4; the broker may deliver it twice. Only
  // the copy for the routing rule (rule 0 -> id 1) is bridged.
  auto route = r.value().routeOut("hearth/v1/hub/status");
  ASSERT_TRUE(route);
  EXPECT_EQ(route->rule, 0u);
  EXPECT_TRUE(isRoutingDelivery(route->rule, {1}));
  EXPECT_FALSE(isRoutingDelivery(route->rule, {4}));
  EXPECT_TRUE(isRoutingDelivery(route->rule, {4, 1}));
  EXPECT_TRUE(isRoutingDelivery(route->rule, {}));
}

TEST(LoopGuard, BridgedMessagesNeverGoBack) {
  EXPECT_TRUE(mayBridgeOut({}));
  EXPECT_TRUE(mayBridgeOut({{"other", "x"}}));
  EXPECT_FALSE(mayBridgeOut({{"other", "x"}, {kOriginProperty, "cloud"}}));

  std::string id = messageId("0123abcd", 42);
  EXPECT_EQ(id, "0123abcd-42");
  EXPECT_FALSE(mayBridgeIn({{kIdProperty, id}}, "0123abcd"));
  EXPECT_TRUE(mayBridgeIn({{kIdProperty, messageId("ffff0000", 42)}}, "0123abcd"));
  EXPECT_TRUE(mayBridgeIn({{kIdProperty, "0123abcd"}}, "0123abcd"));  // not "<ours>-..."
  EXPECT_TRUE(mayBridgeIn({}, "0123abcd"));
}

// --- outbox ----------------------------------------------------------------------------------

// The in-memory KvStore shared with the plugin tests: transactions that commit together or roll
// back, a switch to make writes fail, and counters of writes, transactions and scans.
using fakes::MemoryKvStore;

OutboxMessage msg(const std::string& topic, const std::string& payload, int qos = 1) {
  return OutboxMessage{topic, payload, qos, false, 1700000000000};
}

std::vector<OutboxMessage> msgs(int from, int to) {
  std::vector<OutboxMessage> out;
  for (int i = from; i < to; ++i) out.push_back(msg("site1/t", "m" + std::to_string(i)));
  return out;
}

std::vector<std::string> payloads(CloudOutbox& box) {
  std::vector<std::string> out;
  auto r = box.read(0, 0);
  EXPECT_TRUE(r.isOk());
  for (const auto& rec : r.value()) out.push_back(rec.message.payload);
  return out;
}

std::string fixedId() { return "feedc0de"; }

// The outbox's index (seq -> size): lookups, removal anywhere, order, and the array compacted
// as records go, whichever end they leave from.
TEST(SeqIndex, FindsRemovesAndKeepsSeqOrder) {
  SeqIndex index;
  EXPECT_TRUE(index.empty());
  for (uint64_t seq = 10; seq < 20; ++seq) EXPECT_TRUE(index.append(seq, seq * 2));
  EXPECT_FALSE(index.append(19, 1));  // not after the newest
  EXPECT_FALSE(index.append(5, 1));
  EXPECT_EQ(index.size(), 10u);
  EXPECT_EQ(index.find(12), 24u);
  EXPECT_FALSE(index.find(9));
  EXPECT_FALSE(index.find(20));
  EXPECT_EQ(index.erase(12), 24u);  // the middle
  EXPECT_FALSE(index.erase(12));
  EXPECT_FALSE(index.contains(12));
  EXPECT_EQ(index.erase(10), 20u);  // the oldest
  EXPECT_EQ(index.erase(19), 38u);  // the newest
  EXPECT_EQ(index.front().seq, 11u);
  EXPECT_EQ(index.back().seq, 18u);
  EXPECT_TRUE(index.append(19, 7));  // after the newest that was, a seq is never reused anyway
  std::vector<uint64_t> seqs;
  index.forEach([&](const SeqIndex::Entry& e) {
    seqs.push_back(e.seq);
    return e.seq < 16;  // stops after 16
  });
  EXPECT_EQ(seqs, (std::vector<uint64_t>{11, 13, 14, 15, 16}));
  EXPECT_EQ(index.size(), 8u);
  for (uint64_t seq : {11, 13, 14, 15, 16, 17, 18, 19}) EXPECT_TRUE(index.erase(seq));
  EXPECT_TRUE(index.empty());
  EXPECT_TRUE(index.append(3, 1));  // an emptied index takes any seq
}

TEST(SeqIndex, ManyRecordsRemovedFromBothEndsAndTheMiddle) {
  SeqIndex index;
  std::map<uint64_t, uint64_t> model;
  uint64_t next = 0;
  for (int round = 0; round < 50; ++round) {
    for (int i = 0; i < 200; ++i, ++next) {
      ASSERT_TRUE(index.append(next, next + 1));
      model[next] = next + 1;
    }
    // Acknowledged in order from the front, some from the middle, a few from the back.
    for (int i = 0; i < 150 && !model.empty(); ++i) {
      uint64_t seq = (i % 3 == 0) ? model.begin()->first
                     : (i % 3 == 1) ? std::next(model.begin(), model.size() / 2)->first
                                    : model.rbegin()->first;
      ASSERT_EQ(index.erase(seq), model[seq]);
      model.erase(seq);
    }
    ASSERT_EQ(index.size(), model.size());
    ASSERT_EQ(index.front().seq, model.begin()->first);
    ASSERT_EQ(index.back().seq, model.rbegin()->first);
  }
  std::vector<uint64_t> seen, want;
  index.forEach([&](const SeqIndex::Entry& e) {
    seen.push_back(e.seq);
    EXPECT_EQ(e.size, model[e.seq]);
    return true;
  });
  for (const auto& [seq, size] : model) want.push_back(seq);
  EXPECT_EQ(seen, want);
  for (uint64_t seq = 0; seq < next; ++seq) EXPECT_EQ(index.contains(seq), model.count(seq) == 1);
}

TEST(Outbox, RecordRoundTripsBinaryPayloads) {
  OutboxMessage m{"site1/bin", std::string("\0\x01\xff{\"x\"}\n", 9), 2, true, -5};
  auto back = CloudOutbox::decode(CloudOutbox::encode(m));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->topic, m.topic);
  EXPECT_EQ(back->payload, m.payload);
  EXPECT_EQ(back->qos, 2);
  EXPECT_TRUE(back->retain);
  EXPECT_EQ(back->enqueuedMs, -5);

  std::string enc = CloudOutbox::encode(m);
  EXPECT_FALSE(CloudOutbox::decode(""));
  EXPECT_FALSE(CloudOutbox::decode(enc.substr(0, enc.size() - 1)));  // truncated
  EXPECT_FALSE(CloudOutbox::decode(enc + "x"));                      // trailing bytes
  std::string otherVersion = enc;
  otherVersion[0] = 9;
  EXPECT_FALSE(CloudOutbox::decode(otherVersion));
}

TEST(Outbox, KeysSortInSequenceOrder) {
  EXPECT_EQ(CloudOutbox::key(42), "00000000000000000042");
  EXPECT_LT(CloudOutbox::key(9), CloudOutbox::key(10));
  EXPECT_LT(CloudOutbox::key(99999), CloudOutbox::key(100000));
  EXPECT_EQ(CloudOutbox::key(UINT64_MAX).size(), 20u);
}

TEST(Outbox, AppendsInOneTransactionAndRemovesOnlyAcknowledged) {
  MemoryKvStore store;
  CloudOutbox box(store, {1000, 1 << 20});
  ASSERT_TRUE(box.load(fixedId).isOk());
  EXPECT_EQ(box.instanceId(), "feedc0de");
  int before = store.transactions;
  auto r = box.commit(msgs(0, 5), {});
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(store.transactions, before + 1);
  EXPECT_EQ(r.value().appended, 5u);
  EXPECT_EQ(box.depth(), 5u);
  EXPECT_EQ(box.oldestSeq(), 0u);
  EXPECT_EQ(box.nextSeq(), 5u);
  EXPECT_EQ(store.data["outbox"].size(), 5u);

  r = box.commit(msgs(5, 7), {1, 3, 99 /* unknown */, 1 /* twice */});
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r.value().removed, 2u);
  EXPECT_EQ(payloads(box), (std::vector<std::string>{"m0", "m2", "m4", "m5", "m6"}));
  auto from = box.read(3, 2);
  ASSERT_TRUE(from.isOk());
  ASSERT_EQ(from.value().size(), 2u);
  EXPECT_EQ(from.value()[0].seq, 4u);
  EXPECT_EQ(from.value()[1].seq, 5u);
}

TEST(Outbox, SurvivesARestartAndNeverReusesSequenceNumbers) {
  MemoryKvStore store;
  {
    CloudOutbox box(store, {1000, 1 << 20});
    ASSERT_TRUE(box.load(fixedId).isOk());
    ASSERT_TRUE(box.commit(msgs(0, 3), {}).isOk());
    ASSERT_TRUE(box.commit({}, {0, 1, 2}).isOk());  // all acknowledged: the outbox is empty
    EXPECT_EQ(box.depth(), 0u);
    ASSERT_TRUE(box.commit(msgs(3, 5), {}).isOk());
  }
  CloudOutbox again(store, {1000, 1 << 20});
  ASSERT_TRUE(again.load([] { return std::string("must-not-be-used"); }).isOk());
  EXPECT_EQ(again.instanceId(), "feedc0de");
  EXPECT_EQ(again.depth(), 2u);
  EXPECT_EQ(again.oldestSeq(), 3u);
  EXPECT_EQ(again.nextSeq(), 5u);
  EXPECT_EQ(payloads(again), (std::vector<std::string>{"m3", "m4"}));

  // Emptied before the restart: the next message still gets a fresh id.
  ASSERT_TRUE(again.commit({}, {3, 4}).isOk());
  CloudOutbox third(store, {1000, 1 << 20});
  ASSERT_TRUE(third.load(fixedId).isOk());
  EXPECT_EQ(third.depth(), 0u);
  EXPECT_EQ(third.nextSeq(), 5u);
  ASSERT_TRUE(third.commit(msgs(5, 6), {}).isOk());
  EXPECT_EQ(third.oldestSeq(), 5u);
}

TEST(Outbox, OverMaxMessagesDropsExactlyTheOldest) {
  MemoryKvStore store;
  CloudOutbox box(store, {100, 1 << 20});
  ASSERT_TRUE(box.load(fixedId).isOk());
  ASSERT_TRUE(box.commit(msgs(0, 90), {}).isOk());
  auto r = box.commit(msgs(90, 150), {});
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r.value().dropped, 50u);
  EXPECT_EQ(r.value().firstDroppedSeq, 0u);
  EXPECT_EQ(r.value().lastDroppedSeq, 49u);
  EXPECT_EQ(box.depth(), 100u);
  EXPECT_EQ(box.droppedTotal(), 50u);
  EXPECT_EQ(box.oldestSeq(), 50u);
  auto p = payloads(box);
  ASSERT_EQ(p.size(), 100u);
  EXPECT_EQ(p.front(), "m50");
  EXPECT_EQ(p.back(), "m149");
  EXPECT_EQ(store.data["outbox"].size(), 100u);

  // The count is stored with the outbox.
  CloudOutbox again(store, {100, 1 << 20});
  ASSERT_TRUE(again.load(fixedId).isOk());
  EXPECT_EQ(again.droppedTotal(), 50u);
}

TEST(Outbox, AcknowledgementsInTheSameCommitMakeRoomFirst) {
  MemoryKvStore store;
  CloudOutbox box(store, {10, 1 << 20});
  ASSERT_TRUE(box.load(fixedId).isOk());
  ASSERT_TRUE(box.commit(msgs(0, 10), {}).isOk());
  auto r = box.commit(msgs(10, 13), {0, 1, 2});
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r.value().dropped, 0u);
  EXPECT_EQ(box.depth(), 10u);
}

TEST(Outbox, ABatchLargerThanTheBoundKeepsItsNewest) {
  MemoryKvStore store;
  CloudOutbox box(store, {5, 1 << 20});
  ASSERT_TRUE(box.load(fixedId).isOk());
  ASSERT_TRUE(box.commit(msgs(0, 2), {}).isOk());
  auto r = box.commit(msgs(2, 10), {});
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r.value().dropped, 5u);  // 0,1 stored + 2,3,4 of the batch
  EXPECT_EQ(r.value().firstDroppedSeq, 0u);
  EXPECT_EQ(r.value().lastDroppedSeq, 4u);
  EXPECT_EQ(payloads(box), (std::vector<std::string>{"m5", "m6", "m7", "m8", "m9"}));
  EXPECT_EQ(store.data["outbox"].size(), 5u);  // the dropped part of the batch never written
}

TEST(Outbox, OverMaxBytesDropsTheOldest) {
  size_t one = CloudOutbox::encode(msg("site1/t", std::string(100, 'x'))).size();
  MemoryKvStore store;
  CloudOutbox box(store, {1000, 3 * one});
  ASSERT_TRUE(box.load(fixedId).isOk());
  std::vector<OutboxMessage> batch;
  for (int i = 0; i < 5; ++i) batch.push_back(msg("site1/t", std::string(99, 'x') + char('0' + i)));
  auto r = box.commit(batch, {});
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r.value().dropped, 2u);
  EXPECT_EQ(box.depth(), 3u);
  EXPECT_EQ(box.bytes(), 3 * one);
  EXPECT_EQ(box.oldestSeq(), 2u);
}

TEST(Outbox, AMessageLargerThanMaxBytesIsDroppedAlone) {
  MemoryKvStore store;
  CloudOutbox box(store, {1000, 1024});
  ASSERT_TRUE(box.load(fixedId).isOk());
  ASSERT_TRUE(box.commit(msgs(0, 2), {}).isOk());
  std::vector<OutboxMessage> batch = {msg("site1/big", std::string(2000, 'b')),
                                      msg("site1/t", "after")};
  auto r = box.commit(batch, {});
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r.value().dropped, 1u);
  EXPECT_EQ(payloads(box), (std::vector<std::string>{"m0", "m1", "after"}));
  EXPECT_EQ(box.nextSeq(), 4u);  // the dropped one used its number
}

TEST(Outbox, ExtraDroppedIsCountedAndStored) {
  MemoryKvStore store;
  CloudOutbox box(store, {1000, 1 << 20});
  ASSERT_TRUE(box.load(fixedId).isOk());
  auto r = box.commit({}, {}, 7);
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r.value().dropped, 7u);
  EXPECT_EQ(box.droppedTotal(), 7u);
  EXPECT_EQ(store.data["meta"]["dropped"], "7");
}

TEST(Outbox, AFailedCommitChangesNothing) {
  MemoryKvStore store;
  CloudOutbox box(store, {4, 1 << 20});
  ASSERT_TRUE(box.load(fixedId).isOk());
  ASSERT_TRUE(box.commit(msgs(0, 4), {}).isOk());
  MemoryKvStore::Data before = store.data;
  store.failWritesAfter = 3;  // the fourth write of the next transaction fails
  auto r = box.commit(msgs(4, 7), {0});
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(store.data, before);
  EXPECT_EQ(box.depth(), 4u);
  EXPECT_EQ(box.nextSeq(), 4u);
  EXPECT_EQ(box.droppedTotal(), 0u);
  EXPECT_EQ(payloads(box), (std::vector<std::string>{"m0", "m1", "m2", "m3"}));

  store.failWritesAfter = -1;
  r = box.commit(msgs(4, 7), {0});
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r.value().dropped, 2u);
  EXPECT_EQ(payloads(box), (std::vector<std::string>{"m3", "m4", "m5", "m6"}));
}

TEST(Outbox, DamagedRecordsAreDroppedAndCounted) {
  MemoryKvStore store;
  {
    CloudOutbox writer(store, {1000, 1 << 20});
    ASSERT_TRUE(writer.load(fixedId).isOk());
    ASSERT_TRUE(writer.commit(msgs(0, 3), {}).isOk());
  }
  store.data["outbox"][CloudOutbox::key(1)] = "garbage";
  CloudOutbox box(store, {1000, 1 << 20});  // after a restart: read from the store
  ASSERT_TRUE(box.load(fixedId).isOk());
  std::vector<uint64_t> corrupt;
  auto r = box.read(0, 10, &corrupt);
  ASSERT_TRUE(r.isOk());
  ASSERT_EQ(r.value().size(), 2u);
  EXPECT_EQ(r.value()[1].seq, 2u);
  EXPECT_EQ(corrupt, std::vector<uint64_t>{1});
  EXPECT_EQ(box.depth(), 2u);
  EXPECT_EQ(box.droppedTotal(), 1u);
  EXPECT_FALSE(store.data["outbox"].count(CloudOutbox::key(1)));
}

TEST(Outbox, LoweredBoundsApplyAtLoad) {
  MemoryKvStore store;
  {
    CloudOutbox box(store, {1000, 1 << 20});
    ASSERT_TRUE(box.load(fixedId).isOk());
    ASSERT_TRUE(box.commit(msgs(0, 2500), {}).isOk());  // more than one load chunk
  }
  CloudOutbox smaller(store, {1000, 1 << 20});
  ASSERT_TRUE(smaller.load(fixedId).isOk());
  EXPECT_EQ(smaller.depth(), 1000u);
  EXPECT_EQ(smaller.droppedTotal(), 1500u);
  EXPECT_EQ(smaller.oldestSeq(), 1500u);
  EXPECT_EQ(smaller.nextSeq(), 2500u);
}

TEST(Outbox, LoadReadsALargeOutboxInChunks) {
  MemoryKvStore store;
  {
    CloudOutbox box(store, {100000, 1 << 30});
    ASSERT_TRUE(box.load(fixedId).isOk());
    ASSERT_TRUE(box.commit(msgs(0, 5000), {}).isOk());
  }
  store.scans = 0;
  CloudOutbox again(store, {100000, 1 << 30});
  ASSERT_TRUE(again.load(fixedId).isOk());
  EXPECT_EQ(again.depth(), 5000u);
  EXPECT_GE(store.scans, 5);  // 1024 rows at a time
  EXPECT_EQ(again.bytes(), [&] {
    uint64_t b = 0;
    for (const auto& [k, v] : store.data["outbox"]) b += v.size();
    return b;
  }());
}

TEST(Outbox, SendsFreshRecordsFromMemoryAndOlderOnesFromTheStore) {
  MemoryKvStore store;
  size_t one = CloudOutbox::encode(msgs(0, 1)[0]).size();
  CloudOutbox box(store, {1000, 1 << 20, 10 * one});
  ASSERT_TRUE(box.load(fixedId).isOk());
  ASSERT_TRUE(box.commit(msgs(0, 4), {}).isOk());
  int scans = store.scans;
  auto r = box.read(1, 2);
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(store.scans, scans);  // served from memory
  ASSERT_EQ(r.value().size(), 2u);
  EXPECT_EQ(r.value()[0].seq, 1u);
  EXPECT_EQ(r.value()[0].message.payload, "m1");
  EXPECT_EQ(r.value()[1].message.payload, "m2");

  // Acknowledged and dropped records are gone from memory too.
  ASSERT_TRUE(box.commit({}, {1}).isOk());
  r = box.read(0, 0);
  ASSERT_TRUE(r.isOk());
  ASSERT_EQ(r.value().size(), 3u);
  EXPECT_EQ(r.value()[1].seq, 2u);

  // Over the memory budget the oldest are no longer cached: reads fall back to the store and
  // give the same records.
  ASSERT_TRUE(box.commit(msgs(4, 20), {}).isOk());
  scans = store.scans;
  auto tail = box.read(15, 0);
  ASSERT_TRUE(tail.isOk());
  EXPECT_EQ(store.scans, scans);
  auto all = box.read(0, 0);
  ASSERT_TRUE(all.isOk());
  EXPECT_GT(store.scans, scans);
  ASSERT_EQ(all.value().size(), 19u);
  CloudOutbox fromDisk(store, {1000, 1 << 20, 0});
  ASSERT_TRUE(fromDisk.load(fixedId).isOk());
  auto disk = fromDisk.read(0, 0);
  ASSERT_TRUE(disk.isOk());
  ASSERT_EQ(disk.value().size(), all.value().size());
  for (size_t i = 0; i < all.value().size(); ++i) {
    EXPECT_EQ(disk.value()[i].seq, all.value()[i].seq);
    EXPECT_EQ(disk.value()[i].message.payload, all.value()[i].message.payload);
    EXPECT_EQ(disk.value()[i].message.topic, all.value()[i].message.topic);
  }
  EXPECT_EQ(tail.value().front().seq, 15u);
  EXPECT_EQ(tail.value().front().message.payload, "m15");
}

// --- outbox: retained messages ---------------------------------------------------------------

OutboxMessage retained(const std::string& topic, const std::string& payload) {
  return OutboxMessage{topic, payload, 1, true, 1700000000000};
}

std::vector<std::string> topicsAndPayloads(CloudOutbox& box) {
  std::vector<std::string> out;
  auto r = box.read(0, 0);
  EXPECT_TRUE(r.isOk());
  for (const auto& rec : r.value()) out.push_back(rec.message.topic + "=" + rec.message.payload);
  return out;
}

// The issue's case: `hearth/v1/hub/# -> site1/hub/#` with the cloud down. Every queued message
// changes hub/status (it carries the outbox depth), which is queued too. Only the newest status
// may wait, so the outbox stops growing.
TEST(Outbox, OnlyTheLatestRetainedMessagePerTopicWaits) {
  MemoryKvStore store;
  CloudOutbox box(store, {1000, 1 << 20});
  ASSERT_TRUE(box.load(fixedId).isOk());
  ASSERT_TRUE(box.commit({retained("site1/hub/status", "s0")}, {}).isOk());
  ASSERT_TRUE(box.commit({msg("site1/hub/event", "e1")}, {}).isOk());
  auto r = box.commit({retained("site1/hub/status", "s1")}, {});
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r.value().coalesced, 1u);
  EXPECT_EQ(r.value().dropped, 0u);
  EXPECT_EQ(topicsAndPayloads(box),
            (std::vector<std::string>{"site1/hub/event=e1", "site1/hub/status=s1"}));
  EXPECT_EQ(box.retainedSeq("site1/hub/status"), 2u);
  // The old record is gone from the store too, in the same transaction.
  EXPECT_EQ(store.data["outbox"].count(CloudOutbox::key(0)), 0u);

  // A thousand status changes later the outbox holds the same two records.
  for (int i = 2; i < 1002; ++i) {
    ASSERT_TRUE(box.commit({retained("site1/hub/status", "s" + std::to_string(i))}, {}).isOk());
  }
  EXPECT_EQ(box.depth(), 2u);
  EXPECT_EQ(store.data["outbox"].size(), 2u);
  EXPECT_EQ(box.coalescedTotal(), 1001u);
  EXPECT_EQ(box.droppedTotal(), 0u);  // replaced by newer state is not a loss
  EXPECT_EQ(topicsAndPayloads(box).back(), "site1/hub/status=s1001");
  EXPECT_EQ(box.bytes(), [&] {
    uint64_t b = 0;
    for (const auto& [k, v] : store.data["outbox"]) b += v.size();
    return b;
  }());
}

TEST(Outbox, NonRetainedMessagesAndOtherTopicsAreNeverCoalesced) {
  MemoryKvStore store;
  CloudOutbox box(store, {1000, 1 << 20});
  ASSERT_TRUE(box.load(fixedId).isOk());
  // In one batch: the last retained message of a topic wins, everything else stays in order.
  auto r = box.commit({retained("a", "1"), msg("a", "x"), retained("b", "1"), retained("a", "2"),
                       msg("a", "y"), retained("a", "3")},
                      {});
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r.value().coalesced, 2u);
  EXPECT_EQ(topicsAndPayloads(box), (std::vector<std::string>{"a=x", "b=1", "a=y", "a=3"}));
  // An empty retained payload (clearing the topic) is state as well.
  ASSERT_TRUE(box.commit({retained("b", "")}, {}).isOk());
  EXPECT_EQ(topicsAndPayloads(box), (std::vector<std::string>{"a=x", "a=y", "a=3", "b="}));
}

TEST(Outbox, AnAcknowledgedRetainedRecordIsNotReplacedAgain) {
  MemoryKvStore store;
  CloudOutbox box(store, {1000, 1 << 20});
  ASSERT_TRUE(box.load(fixedId).isOk());
  ASSERT_TRUE(box.commit({retained("s", "1")}, {}).isOk());
  // Acknowledged in the same commit that brings the next state: removed once, not coalesced.
  auto r = box.commit({retained("s", "2")}, {0});
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r.value().removed, 1u);
  EXPECT_EQ(r.value().coalesced, 0u);
  EXPECT_EQ(box.retainedSeq("s"), 1u);
  ASSERT_TRUE(box.commit({}, {1}).isOk());
  EXPECT_EQ(box.retainedSeq("s"), std::nullopt);
  ASSERT_TRUE(box.commit({retained("s", "3")}, {}).isOk());
  EXPECT_EQ(topicsAndPayloads(box), (std::vector<std::string>{"s=3"}));
}

TEST(Outbox, AFailedCommitKeepsTheWaitingRetainedRecord) {
  MemoryKvStore store;
  CloudOutbox box(store, {1000, 1 << 20});
  ASSERT_TRUE(box.load(fixedId).isOk());
  ASSERT_TRUE(box.commit({retained("s", "1")}, {}).isOk());
  store.failWritesAfter = 0;
  EXPECT_FALSE(box.commit({retained("s", "2")}, {}).isOk());
  store.failWritesAfter = -1;
  EXPECT_EQ(topicsAndPayloads(box), (std::vector<std::string>{"s=1"}));
  EXPECT_EQ(box.coalescedTotal(), 0u);
  ASSERT_TRUE(box.commit({retained("s", "3")}, {}).isOk());
  EXPECT_EQ(topicsAndPayloads(box), (std::vector<std::string>{"s=3"}));
}

TEST(Outbox, AnOutboxWrittenBeforeCoalescingIsCoalescedAtLoad) {
  MemoryKvStore store;
  {
    CloudOutbox box(store, {1000, 1 << 20});
    ASSERT_TRUE(box.load(fixedId).isOk());
  }
  // What an older hearthd left: the same retained status queued many times.
  for (uint64_t seq = 0; seq < 50; ++seq) {
    OutboxMessage m = seq % 10 == 5 ? msg("site1/hub/event", "e" + std::to_string(seq))
                                    : retained("site1/hub/status", "s" + std::to_string(seq));
    ASSERT_TRUE(store.put("outbox", CloudOutbox::key(seq), CloudOutbox::encode(m)).isOk());
  }
  CloudOutbox box(store, {1000, 1 << 20});
  ASSERT_TRUE(box.load(fixedId).isOk());
  EXPECT_EQ(box.depth(), 6u);  // five events and the newest status
  EXPECT_EQ(box.coalescedTotal(), 44u);
  EXPECT_EQ(store.data["outbox"].size(), 6u);
  EXPECT_EQ(topicsAndPayloads(box).back(), "site1/hub/status=s49");
  EXPECT_EQ(box.nextSeq(), 50u);
}

// --- status ----------------------------------------------------------------------------------

TEST(BridgeStatus, DocumentAndPluginState) {
  BridgeStatus s;
  s.state = CloudState::kBackingOff;
  s.localConnected = true;
  s.endpoint = "cloud.example:8883";
  s.outbox = 12;
  s.dropped = 3;
  s.attempts = 4;
  s.retryDelayMs = 1500;
  s.lastError = "connect to cloud.example:8883: Connection refused";
  auto o = Poco::JSON::Parser().parse(s.toJson()).extract<Poco::JSON::Object::Ptr>();
  EXPECT_FALSE(o->getValue<bool>("connected"));
  EXPECT_EQ(o->getValue<std::string>("state"), "backing_off");
  EXPECT_EQ(o->getValue<std::string>("local"), "connected");
  EXPECT_EQ(o->getValue<int>("outbox"), 12);
  EXPECT_EQ(o->getValue<int>("dropped"), 3);
  EXPECT_EQ(o->getValue<int>("retryDelayMs"), 1500);
  EXPECT_EQ(o->getValue<std::string>("lastError"), s.lastError);
  EXPECT_EQ(s.pluginState(), PluginState::kDegraded);

  s.state = CloudState::kConnected;
  s.lastError.clear();
  o = Poco::JSON::Parser().parse(s.toJson()).extract<Poco::JSON::Object::Ptr>();
  EXPECT_TRUE(o->getValue<bool>("connected"));
  EXPECT_FALSE(o->has("retryDelayMs"));
  EXPECT_EQ(s.pluginState(), PluginState::kRunning);

  s.localConnected = false;
  EXPECT_EQ(s.pluginState(), PluginState::kWaiting);
  s.localError = "Connection refused";
  EXPECT_EQ(s.pluginState(), PluginState::kDegraded);
  o = Poco::JSON::Parser().parse(s.toJson()).extract<Poco::JSON::Object::Ptr>();
  EXPECT_EQ(o->getValue<std::string>("localError"), "Connection refused");

  BridgeStatus fresh;
  EXPECT_EQ(fresh.pluginState(), PluginState::kWaiting);
  EXPECT_EQ(cloudStateName(fresh.state), std::string("connecting"));
}

// --- the plugin on the fake context ------------------------------------------------------

// A loopback port nothing listens on (bound, then closed): connecting is refused at once.
int closedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), len) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    if (fd >= 0) ::close(fd);
    return 0;
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

// The fake context with a post() that the links' I/O threads may call (the fake's own queue is
// the test thread's): work waits here until the test runs it on its thread, the hub loop.
class BridgeContext : public fakes::FakeContext {
 public:
  BridgeContext() : FakeContext("cloud_bridge") {
    cfg.strings = {{"host", "127.0.0.1"},     {"protocol", "mqtt5"},
                   {"client_id", ""},         {"username", ""},
                   {"password_file", ""},     {"ca_file", ""},
                   {"cert_file", ""},         {"key_file", ""},
                   {"alpn", ""},              {"local_host", "127.0.0.1"},
                   {"local_username", ""},    {"local_password_file", ""}};
    cfg.ints = {{"port", closedPort()},
                {"local_port", closedPort()},
                {"inflight", 16},
                {"max_messages", 1000},
                {"max_bytes", 1 << 20}};
    cfg.bools = {{"tls", false}};
    cfg.durations = {{"keepalive", std::chrono::seconds(30)},
                     {"session_expiry", std::chrono::hours(1)},
                     {"connect_timeout", std::chrono::seconds(5)},
                     {"reconnect_min", std::chrono::seconds(1)},
                     {"reconnect_max", std::chrono::seconds(1)}};
    cfg.json = {{"rules", R"([{"direction":"out","local":"hearth/v1/x/#","remote":"s/x/#"}])"}};
  }
  void post(std::function<void()> fn) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!dropPosts_) queue_.push_back(std::move(fn));
  }
  // Runs what the I/O threads posted, on this (the test's) thread.
  void runPosted() {
    for (;;) {
      std::function<void()> fn;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (queue_.empty()) return;
        fn = std::move(queue_.front());
        queue_.pop_front();
      }
      fn();
    }
  }
  // Runs posted work until pred holds; false after 20 s (a broken plugin, not a slow machine).
  template <typename Pred>
  bool runUntil(Pred pred) {
    for (int i = 0; i < 4000; ++i) {
      runPosted();
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }
  // What the host does once stop() has returned: posted work is dropped from then on.
  void dropPosted() {
    std::lock_guard<std::mutex> lock(mutex_);
    dropPosts_ = true;
    queue_.clear();
  }
  size_t pending() {
    std::lock_guard<std::mutex> lock(mutex_);
    return queue_.size();
  }
  size_t linesWith(const std::string& part) const {
    return std::count_if(log.lines.begin(), log.lines.end(),
                         [&](const std::string& l) { return l.find(part) != std::string::npos; });
  }
  int64_t counter(const std::string& name) const {
    auto it = counters.find(name);
    return it == counters.end() ? 0 : it->second;
  }

 private:
  std::mutex mutex_;
  std::deque<std::function<void()>> queue_;
  bool dropPosts_ = false;
};

// Every failed attempt re-arms the backoff timer (a Timer handle reassigned in the drain after
// the last one fired); the status timer fires and publishes; stop() cancels what is pending.
TEST(BridgePlugin, RefusedConnectionsRetryOnTimersAndAreCounted) {
  BridgeContext ctx;
  ASSERT_NE(ctx.cfg.ints["port"], 0);
  CloudBridgePlugin plugin(ctx);
  ASSERT_TRUE(plugin.start().isOk());
  EXPECT_EQ(ctx.counter("cloud_attempts"), 1);

  for (int attempt = 1; attempt <= 3; ++attempt) {
    ASSERT_TRUE(ctx.runUntil([&] {
      return ctx.linesWith("cloud connection failed") >= static_cast<size_t>(attempt);
    })) << "attempt " << attempt << " never failed";
    EXPECT_EQ(ctx.counter("cloud_attempts"), attempt);
    // The retry waits for its timer (reconnect_min..max = 1 s, jittered): not before.
    ctx.advance(std::chrono::milliseconds(100));
    EXPECT_EQ(ctx.counter("cloud_attempts"), attempt);
    ctx.advance(std::chrono::seconds(2));
    EXPECT_EQ(ctx.counter("cloud_attempts"), attempt + 1);
  }
  EXPECT_EQ(ctx.counter("cloud_connects"), 0);
  EXPECT_EQ(ctx.counter("cloud_disconnects"), 0);  // never up, so never lost
  ASSERT_TRUE(ctx.runUntil([&] { return ctx.counter("local_reconnects") >= 1; }));

  // The status (throttled to four a second by its own timer) shows the same.
  ASSERT_TRUE(ctx.runUntil([&] { return ctx.linesWith("cloud connection failed") >= 4; }));
  ctx.advance(std::chrono::milliseconds(300));
  EXPECT_EQ(ctx.detail("state"), "backing_off");
  EXPECT_EQ(ctx.detail("local"), "disconnected");
  EXPECT_EQ(ctx.state, PluginState::kDegraded);

  plugin.stop();
  ctx.dropPosted();
  // The pending backoff timers went with stop(): no attempt follows.
  const int64_t attempts = ctx.counter("cloud_attempts");
  ctx.advance(std::chrono::minutes(5));
  EXPECT_EQ(ctx.counter("cloud_attempts"), attempts);
  EXPECT_EQ(ctx.linesWith("stopped;"), 1u);
}

}  // namespace
}  // namespace hearth::cloud_bridge
