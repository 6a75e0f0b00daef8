#pragma once
// Users and terminals as the hub knows them. Users are broker accounts (the broker proves who
// publishes); terminals are (user, MQTT client id) pairs that said hello. Hub loop only.

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "hearth/host.h"
#include "store/database.h"

namespace hearth {

class IdentityService {
 public:
  IdentityService(Database& db, const Clock& clock) : db_(db), clock_(clock) {}

  // Loads users and terminals from the database (all terminals start offline).
  Status load();

  // Records a terminal's hello durably and returns it with its openId, which is stable for
  // (appId, userId, clientId): a new appId on the same client gets a new openId.
  Result<TerminalInfo> hello(const std::string& userId, const std::string& clientId,
                             const std::string& appId, const std::string& deviceModel,
                             const std::string& deviceName);
  // Returns true if the online state changed.
  bool setOnline(const std::string& userId, const std::string& clientId, bool online);

  Status addUser(const std::string& userId);
  Status removeUser(const std::string& userId);
  bool userExists(const std::string& userId) const { return users_.count(userId) > 0; }
  std::vector<std::string> users() const { return {users_.begin(), users_.end()}; }

  std::optional<TerminalInfo> terminal(const std::string& userId,
                                       const std::string& clientId) const;
  std::optional<TerminalInfo> terminalByOpenId(const std::string& openId) const;
  std::vector<TerminalInfo> terminals(const std::string& userId) const;
  // Online terminals of a user, or the one terminal if clientId is given and online.
  std::vector<TerminalInfo> onlineTerminals(const std::string& userId) const;
  size_t terminalCount() const { return terminals_.size(); }

 private:
  using Key = std::pair<std::string, std::string>;
  Database& db_;
  const Clock& clock_;
  std::set<std::string> users_;
  std::map<Key, TerminalInfo> terminals_;
  std::map<std::string, Key> byOpenId_;
  // Presence can arrive before hello (retained topics on subscribe); remember it.
  std::set<Key> onlineWithoutHello_;
};

}  // namespace hearth
