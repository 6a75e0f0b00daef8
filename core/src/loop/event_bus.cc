#include "loop/event_bus.h"

#include <algorithm>

namespace hearth {

void EventBus::subscribe(const std::string& topic, EventHandler handler, const std::string& owner) {
  subs_[topic].push_back(Sub{std::move(handler), owner, nextId_++});
}

void EventBus::unsubscribeOwner(const std::string& owner) {
  for (auto& [topic, list] : subs_) {
    std::erase_if(list, [&](const Sub& s) { return s.owner == owner; });
  }
}

void EventBus::publish(const std::string& topic, const std::string& dataJson) {
  loop_.post([this, topic, dataJson] {
    auto it = subs_.find(topic);
    if (it == subs_.end()) return;
    // Ids, not iterators: a handler may subscribe or unsubscribe while we deliver.
    std::vector<uint64_t> ids;
    for (const auto& s : it->second) ids.push_back(s.id);
    for (uint64_t id : ids) {
      auto& list = subs_[topic];
      auto s = std::find_if(list.begin(), list.end(), [&](const Sub& x) { return x.id == id; });
      if (s == list.end()) continue;
      EventHandler h = s->handler;
      h(topic, dataJson);
    }
  });
}

}  // namespace hearth
