#pragma once
// The in-process event bus (hearth/events.h). Handlers run on the hub loop, each publication
// delivered after the current work item so a publisher never re-enters itself.

#include <map>
#include <string>
#include <vector>

#include "hearth/events.h"
#include "loop/hub_loop.h"

namespace hearth {

class EventBus {
 public:
  explicit EventBus(HubLoop& loop) : loop_(loop) {}
  void subscribe(const std::string& topic, EventHandler handler, const std::string& owner);
  void unsubscribeOwner(const std::string& owner);
  void publish(const std::string& topic, const std::string& dataJson);

 private:
  struct Sub {
    EventHandler handler;
    std::string owner;
    uint64_t id;
  };
  HubLoop& loop_;
  uint64_t nextId_ = 1;
  std::map<std::string, std::vector<Sub>> subs_;
};

}  // namespace hearth
