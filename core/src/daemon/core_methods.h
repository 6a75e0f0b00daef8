#pragma once
// The core's own request methods (docs/mqtt-api.md): hello, and the admin methods status,
// plugins, userAdd, userRemove and userList. Free of the Hub so that they can be driven without
// a broker: the Hub registers them with what it owns, tests/fuzz/request_fuzzer.cc with an
// in-memory database and a fake broker. Hub loop only.

#include <Poco/JSON/Object.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "binding/service.h"
#include "config/config.h"
#include "control/router.h"
#include "loop/event_bus.h"
#include "identity/identity.h"

namespace hearth {

// The broker's user accounts; in hearthd, mosquitto's Dynamic Security plugin (DynsecAdmin).
// Each call answers exactly once, on the hub loop; UNAVAILABLE when the broker does not answer.
class BrokerAccounts {
 public:
  virtual ~BrokerAccounts() = default;
  // CONFLICT if the account exists.
  virtual void addUser(const std::string& userId, const std::string& password,
                       std::function<void(Status)> done) = 0;
  // NOT_FOUND if there is no such account.
  virtual void removeUser(const std::string& userId, std::function<void(Status)> done) = 0;
  // The accounts that addUser made.
  virtual void listUsers(std::function<void(Result<std::vector<std::string>>)> done) = 0;
};

// What the core methods use. Everything referenced must outlive the router's registrations.
struct CoreMethodDeps {
  // Read on every request, so that a reload's hub.admin_users applies at once.
  const config::HubConfig& config;
  Logger& logger;
  EventBus& bus;
  IdentityService& identity;
  binding::BindingService& bindings;
  // Asked only when config.userManagement is "dynsec"; with "external" the broker's operator
  // manages the accounts and userAdd/userRemove answer UNAVAILABLE.
  BrokerAccounts& accounts;
  // The document retained on hearth/v1/hub/status while online; `status` adds counts to it.
  std::function<std::string()> statusJson;
  // Sets "plugins" and "details" (PluginHost::fillStatus).
  std::function<void(Poco::JSON::Object&)> pluginStatus;
  // Broker connections since start.
  std::function<uint64_t()> brokerConnects;
};

// Registers the core methods on router (owner "core") and subscribes the binding engine to
// events::kUserRemoved, so that a removed user leaves every device. deps is copied. Call before
// any plugin registers methods: the only failure is a method name that is already taken.
Status registerCoreMethods(RequestRouter& router, const CoreMethodDeps& deps);

}  // namespace hearth
