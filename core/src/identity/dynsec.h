#pragma once
// hearthd as the administrator of mosquitto's Dynamic Security plugin: user accounts and the
// roles that confine each user to hearth/v1/u/<user>/#. Commands go to
// $CONTROL/dynamic-security/v1 and answers come back on .../response, matched by
// correlationData. Hub loop only (handleResponse is called from the hub loop).

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "control/mqtt_client.h"
#include "hearth/host.h"
#include "loop/hub_loop.h"

namespace hearth {

class DynsecAdmin {
 public:
  static constexpr const char* kControlTopic = "$CONTROL/dynamic-security/v1";
  static constexpr const char* kResponseTopic = "$CONTROL/dynamic-security/v1/response";
  static constexpr const char* kUserRolePrefix = "hearth-u-";
  static constexpr const char* kAdminRole = "hearth-admin";

  // One answer per command, in order; each has "command" and maybe "error" and "data".
  using Responses = std::vector<Poco::JSON::Object::Ptr>;
  using Callback = std::function<void(Result<Responses>)>;

  DynsecAdmin(MqttClient& mqtt, HubLoop& loop, Logger& logger)
      : mqtt_(mqtt), loop_(loop), logger_(logger) {}

  void send(const std::vector<Poco::JSON::Object::Ptr>& commands, Callback cb,
            std::chrono::milliseconds timeout = std::chrono::seconds(5));
  void handleResponse(const std::string& payload);

  // Creates (idempotently) the admin role and gives it to the admin accounts other than the
  // hub's own (whose hearth/# grant is made at broker set-up: changing the roles of a connected
  // client makes dynsec disconnect it). Errors such as "already exists" are expected and ignored;
  // only an unanswered control topic is reported (the account is probably not the dynsec admin).
  void ensureRoles(const std::string& hubUser, const std::vector<std::string>& adminUsers,
                   std::function<void(Status)> done);
  void addUser(const std::string& userId, const std::string& password,
               std::function<void(Status)> done);
  void removeUser(const std::string& userId, std::function<void(Status)> done);
  void listUsers(std::function<void(Result<std::vector<std::string>>)> done);
  // A plugin's account (PluginContext::setBrokerAccount): created, or its password set, with
  // the role `role` holding `acls` (added to what it holds).
  void setAccount(const std::string& username, const std::string& password, const std::string& role,
                  const std::vector<BrokerAcl>& acls, std::function<void(Status)> done);
  // The role that confines a user to hearth/v1/u/<user>/#.
  static std::string userRole(const std::string& userId);

 private:
  struct Pending {
    Callback cb;
    TimerId timer;
  };
  MqttClient& mqtt_;
  HubLoop& loop_;
  Logger& logger_;
  uint64_t nextBatch_ = 1;
  std::map<std::string, Pending> pending_;
};

}  // namespace hearth
