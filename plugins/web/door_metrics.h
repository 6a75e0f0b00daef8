#pragma once
// The front door's counters as hub/status shows them (a JSON object under details.web) and as
// GET /metrics serves them (Prometheus text exposition format 0.0.4).

#include <Poco/JSON/Object.h>

#include <string>

#include "door_guard.h"

namespace hearth::web {

Poco::JSON::Object::Ptr countersJson(DoorGuard& guard);
std::string prometheusText(DoorGuard& guard);

}  // namespace hearth::web
