#pragma once
// Topic rules of the cloud bridge: which topics cross between the local broker and the cloud
// broker, how their names are rewritten, and the loop guard that keeps a bridged message from
// being bridged back to where it came from. Pure: no connection, no store, no threads (filter
// checks and matching are libmosquitto's topic functions).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hearth/status.h"

namespace hearth::cloud_bridge {

// MQTT 5 user properties (name, value) in wire order.
using UserProperties = std::vector<std::pair<std::string, std::string>>;

// The user property that carries an outbound message's stable id ("<instance>-<seq>"), so the
// cloud side can de-duplicate redeliveries.
inline constexpr const char* kIdProperty = "hearth-id";
// The user property the bridge puts on every message it publishes locally (value "cloud"): such
// a message is never bridged out again.
inline constexpr const char* kOriginProperty = "hearth-origin";

// MQTT topic names and filters (MQTT 5 §4.7): '/'-separated levels, '+' one whole level, '#'
// the whole rest (last level only), no NUL, 1..65535 bytes.
bool isValidTopicName(std::string_view topic);
bool isValidTopicFilter(std::string_view filter);
// Whether the topic name matches the filter. Wildcards at the first level never match a topic
// that starts with '$' (MQTT 5 §4.7.2).
bool topicMatches(std::string_view filter, std::string_view topic);
// Whether at least one topic name matches both filters.
bool filtersOverlap(std::string_view a, std::string_view b);

enum class Direction { kOut, kIn };  // out: local -> cloud, in: cloud -> local

struct TopicRule {
  Direction direction = Direction::kOut;
  std::string local;   // filter on the local broker
  std::string remote;  // filter on the cloud broker
  int qos = 1;         // QoS used on the destination side (0..2)
};

// Where a message goes: the rule (index into rules()) and the rewritten topic.
struct Route {
  size_t rule = 0;
  std::string topic;
  int qos = 1;
};

// Rewrites topic, which matches `from`, into the topic space of `to`: the fixed leading levels of
// `from` (those before its first wildcard) are replaced by the fixed leading levels of `to`; the
// rest is kept. Both filters must have the same wildcard tail (TopicRules::parse checks it).
// Returns nullopt if the topic does not match `from` or the result is not a valid topic name.
std::optional<std::string> rewriteTopic(std::string_view from, std::string_view to,
                                        std::string_view topic);

class TopicRules {
 public:
  TopicRules() = default;

  // Parses and validates the `rules` config value, a JSON list of
  // {"direction":"out"|"in","local":"...","remote":"...","qos":0|1|2}. The error message names
  // the offending entry, e.g. "rules[1].remote: ...". requireStaticLoopFreedom additionally
  // refuses rule sets whose loop prevention would depend on MQTT 5 (no-local subscriptions and
  // user properties): an `in` remote filter that overlaps an `out` remote filter, and overlapping
  // `in` remote filters.
  static Result<TopicRules> parse(const std::string& json, bool requireStaticLoopFreedom = false);

  // First `out` rule whose local filter matches the local topic.
  std::optional<Route> routeOut(std::string_view localTopic) const;
  // First `in` rule whose remote filter matches the cloud topic.
  std::optional<Route> routeIn(std::string_view remoteTopic) const;

  // What to subscribe to: the local filters of the `out` rules (kOut) or the remote filters of
  // the `in` rules (kIn), each distinct filter once, with the subscription identifier of the first
  // rule that has it.
  struct Subscription {
    std::string filter;
    uint32_t subscriptionId = 0;
  };
  std::vector<Subscription> subscriptions(Direction direction) const;

  const std::vector<TopicRule>& rules() const { return rules_; }
  bool empty() const { return rules_.empty(); }

 private:
  explicit TopicRules(std::vector<TopicRule> rules) : rules_(std::move(rules)) {}
  std::vector<TopicRule> rules_;
};

// MQTT 5 subscription identifier of rule `rule` (identifiers start at 1).
inline uint32_t subscriptionIdOf(size_t rule) { return static_cast<uint32_t>(rule) + 1; }
// With overlapping subscriptions a broker may deliver one copy per matching subscription; only
// the copy that carries the routing rule's identifier is bridged. A delivery without identifiers
// (a broker without them) is bridged.
bool isRoutingDelivery(size_t rule, const std::vector<uint32_t>& subscriptionIds);

// Loop guard, applied to every message before it is bridged.
// A local message is bridged out only if it was not put there by a bridge (kOriginProperty).
bool mayBridgeOut(const UserProperties& props);
// A cloud message is bridged in only if it does not carry an id this hub issued: that would be
// one of our own outbound messages coming back.
bool mayBridgeIn(const UserProperties& props, std::string_view instanceId);

// The stable id of outbound message `seq` of the hub whose outbox instance id is `instanceId`.
std::string messageId(std::string_view instanceId, uint64_t seq);

}  // namespace hearth::cloud_bridge
