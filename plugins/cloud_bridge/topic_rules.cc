#include "topic_rules.h"

#include <Poco/Dynamic/Var.h>
#include <Poco/Exception.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <mosquitto.h>

#include <set>

namespace hearth::cloud_bridge {
namespace {

std::vector<std::string_view> levels(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    size_t slash = s.find('/', start);
    if (slash == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, slash - start));
    start = slash + 1;
  }
}

bool isWildcard(std::string_view level) { return level == "+" || level == "#"; }

// Number of leading levels before the first wildcard.
size_t fixedPrefixLength(const std::vector<std::string_view>& ls) {
  size_t n = 0;
  while (n < ls.size() && !isWildcard(ls[n])) ++n;
  return n;
}

std::string join(const std::vector<std::string_view>& ls, size_t from = 0) {
  std::string out;
  for (size_t i = from; i < ls.size(); ++i) {
    if (i > from) out += '/';
    out.append(ls[i]);
  }
  return out;
}

bool startsWithDollarLiteral(std::string_view filter) {
  return !filter.empty() && filter[0] == '$';
}

bool firstLevelIsWildcard(std::string_view filter) {
  auto ls = levels(filter);
  return isWildcard(ls[0]);
}

}  // namespace

// libmosquitto checks and matches (MQTT 5 §4.7: '+' and '#' whole levels, '#' last, at most
// 65535 bytes; a first-level wildcard never matches a '$' topic). It takes C strings, so an
// embedded NUL — never valid in a topic — is refused here first; it accepts the empty string,
// which MQTT does not.
bool isValidTopicName(std::string_view topic) {
  if (topic.empty() || topic.find('\0') != std::string_view::npos) return false;
  return mosquitto_pub_topic_check(std::string(topic).c_str()) == MOSQ_ERR_SUCCESS;
}

bool isValidTopicFilter(std::string_view filter) {
  if (filter.empty() || filter.find('\0') != std::string_view::npos) return false;
  return mosquitto_sub_topic_check(std::string(filter).c_str()) == MOSQ_ERR_SUCCESS;
}

bool topicMatches(std::string_view filter, std::string_view topic) {
  // A filter or topic libmosquitto refuses (MOSQ_ERR_INVAL) matches nothing.
  bool result = false;
  return mosquitto_topic_matches_sub(std::string(filter).c_str(), std::string(topic).c_str(),
                                     &result) == MOSQ_ERR_SUCCESS &&
         result;
}

bool filtersOverlap(std::string_view a, std::string_view b) {
  // A first-level wildcard never matches a '$' topic, so it cannot meet a "$..." literal.
  if ((firstLevelIsWildcard(a) && startsWithDollarLiteral(b)) ||
      (firstLevelIsWildcard(b) && startsWithDollarLiteral(a))) {
    return false;
  }
  auto la = levels(a);
  auto lb = levels(b);
  for (size_t i = 0;; ++i) {
    bool aEnd = i >= la.size();
    bool bEnd = i >= lb.size();
    if (!aEnd && la[i] == "#") return true;
    if (!bEnd && lb[i] == "#") return true;
    if (aEnd || bEnd) return aEnd && bEnd;
    if (la[i] != "+" && lb[i] != "+" && la[i] != lb[i]) return false;
  }
}

std::optional<std::string> rewriteTopic(std::string_view from, std::string_view to,
                                        std::string_view topic) {
  if (!topicMatches(from, topic)) return std::nullopt;
  auto lf = levels(from);
  auto lt = levels(to);
  auto ltopic = levels(topic);
  size_t fromFixed = fixedPrefixLength(lf);
  size_t toFixed = fixedPrefixLength(lt);
  std::vector<std::string_view> out(lt.begin(), lt.begin() + static_cast<long>(toFixed));
  // "a/#" matches "a" itself, which has fewer levels than the fixed prefix plus the tail.
  for (size_t i = fromFixed; i < ltopic.size(); ++i) out.push_back(ltopic[i]);
  std::string result = join(out);
  if (!isValidTopicName(result)) return std::nullopt;
  return result;
}

Result<TopicRules> TopicRules::parse(const std::string& json, bool requireStaticLoopFreedom) {
  auto invalid = [](const std::string& m) { return Status::error(ErrorCode::kInvalidRequest, m); };
  Poco::JSON::Array::Ptr list;
  try {
    Poco::Dynamic::Var v = Poco::JSON::Parser().parse(json.empty() ? "[]" : json);
    if (v.type() != typeid(Poco::JSON::Array::Ptr)) return invalid("rules: expected a list");
    list = v.extract<Poco::JSON::Array::Ptr>();
  } catch (const Poco::Exception& e) {
    return invalid("rules: not valid JSON: " + e.displayText());
  }

  std::vector<TopicRule> rules;
  static const std::set<std::string> kKeys = {"direction", "local", "remote", "qos"};
  for (size_t i = 0; i < list->size(); ++i) {
    const std::string where = "rules[" + std::to_string(i) + "]";
    Poco::Dynamic::Var item = list->get(static_cast<unsigned>(i));
    if (item.type() != typeid(Poco::JSON::Object::Ptr)) {
      return invalid(where + ": expected a map {direction, local, remote, qos}");
    }
    auto o = item.extract<Poco::JSON::Object::Ptr>();
    for (const auto& name : o->getNames()) {
      if (!kKeys.count(name)) {
        return invalid(where + "." + name + ": unknown key (known: direction, local, remote, qos)");
      }
    }
    auto str = [&](const std::string& key) -> Result<std::string> {
      if (!o->has(key)) return invalid(where + "." + key + ": required");
      Poco::Dynamic::Var v = o->get(key);
      if (!v.isString()) return invalid(where + "." + key + ": expected a string");
      return v.convert<std::string>();
    };
    TopicRule rule;
    auto direction = str("direction");
    if (!direction) return direction.status();
    if (direction.value() == "out") {
      rule.direction = Direction::kOut;
    } else if (direction.value() == "in") {
      rule.direction = Direction::kIn;
    } else {
      return invalid(where +
                     ".direction: expected out (local to cloud) or in (cloud to local), got '" +
                     direction.value() + "'");
    }
    for (const char* key : {"local", "remote"}) {
      auto f = str(key);
      if (!f) return f.status();
      if (!isValidTopicFilter(f.value())) {
        return invalid(where + "." + key + ": '" + f.value() +
                       "' is not a valid MQTT topic filter");
      }
      if (isWildcard(levels(f.value())[0])) {
        return invalid(where + "." + key + ": '" + f.value() +
                       "' must start with a fixed topic level (the prefix that is rewritten)");
      }
      (std::string(key) == "local" ? rule.local : rule.remote) = f.value();
    }
    auto ll = levels(rule.local);
    auto lr = levels(rule.remote);
    std::string localTail = join(ll, fixedPrefixLength(ll));
    std::string remoteTail = join(lr, fixedPrefixLength(lr));
    if (localTail != remoteTail) {
      return invalid(where + ": local '" + rule.local + "' and remote '" + rule.remote +
                     "' must end in the same wildcard levels ('" + localTail + "' vs '" +
                     remoteTail + "'); only the fixed prefix is rewritten");
    }
    if (o->has("qos")) {
      Poco::Dynamic::Var q = o->get("qos");
      if (!q.isInteger() || q.convert<int>() < 0 || q.convert<int>() > 2) {
        return invalid(where + ".qos: expected 0, 1 or 2");
      }
      rule.qos = q.convert<int>();
    }
    rules.push_back(std::move(rule));
  }

  if (requireStaticLoopFreedom) {
    for (size_t i = 0; i < rules.size(); ++i) {
      if (rules[i].direction != Direction::kIn) continue;
      for (size_t j = 0; j < rules.size(); ++j) {
        if (i == j) continue;
        if (!filtersOverlap(rules[i].remote, rules[j].remote)) continue;
        if (rules[j].direction == Direction::kOut) {
          return invalid("rules[" + std::to_string(i) + "].remote '" + rules[i].remote +
                         "' overlaps rules[" + std::to_string(j) + "].remote '" + rules[j].remote +
                         "': the bridge would receive its own messages back; with protocol "
                         "mqtt311 rules must not overlap (mqtt5 prevents the loop itself)");
        }
        if (j > i) {
          return invalid("rules[" + std::to_string(i) + "].remote and rules[" + std::to_string(j) +
                         "].remote overlap: with protocol mqtt311 a message "
                         "could be delivered twice");
        }
      }
    }
  }
  return TopicRules(std::move(rules));
}

std::optional<Route> TopicRules::routeOut(std::string_view localTopic) const {
  for (size_t i = 0; i < rules_.size(); ++i) {
    const TopicRule& r = rules_[i];
    if (r.direction != Direction::kOut || !topicMatches(r.local, localTopic)) continue;
    auto t = rewriteTopic(r.local, r.remote, localTopic);
    if (!t) return std::nullopt;
    return Route{i, std::move(*t), r.qos};
  }
  return std::nullopt;
}

std::optional<Route> TopicRules::routeIn(std::string_view remoteTopic) const {
  for (size_t i = 0; i < rules_.size(); ++i) {
    const TopicRule& r = rules_[i];
    if (r.direction != Direction::kIn || !topicMatches(r.remote, remoteTopic)) continue;
    auto t = rewriteTopic(r.remote, r.local, remoteTopic);
    if (!t) return std::nullopt;
    return Route{i, std::move(*t), r.qos};
  }
  return std::nullopt;
}

std::vector<TopicRules::Subscription> TopicRules::subscriptions(Direction direction) const {
  std::vector<Subscription> out;
  std::set<std::string> seen;
  for (size_t i = 0; i < rules_.size(); ++i) {
    const TopicRule& r = rules_[i];
    if (r.direction != direction) continue;
    const std::string& filter = direction == Direction::kOut ? r.local : r.remote;
    if (seen.insert(filter).second) out.push_back({filter, subscriptionIdOf(i)});
  }
  return out;
}

bool isRoutingDelivery(size_t rule, const std::vector<uint32_t>& subscriptionIds) {
  if (subscriptionIds.empty()) return true;
  for (uint32_t id : subscriptionIds) {
    if (id == subscriptionIdOf(rule)) return true;
  }
  return false;
}

bool mayBridgeOut(const UserProperties& props) {
  for (const auto& [name, value] : props) {
    if (name == kOriginProperty) return false;
  }
  return true;
}

bool mayBridgeIn(const UserProperties& props, std::string_view instanceId) {
  std::string own = std::string(instanceId) + "-";
  for (const auto& [name, value] : props) {
    if (name == kIdProperty && value.compare(0, own.size(), own) == 0) return false;
  }
  return true;
}

std::string messageId(std::string_view instanceId, uint64_t seq) {
  return std::string(instanceId) + "-" + std::to_string(seq);
}

}  // namespace hearth::cloud_bridge
