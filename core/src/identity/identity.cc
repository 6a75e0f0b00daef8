#include "identity/identity.h"

#include "identity/random.h"

namespace hearth {

Status IdentityService::load() {
  try {
    SQLite::Statement users(db_.sql(), "SELECT user_id FROM users");
    while (users.executeStep()) users_.insert(users.getColumn(0).getString());
    SQLite::Statement st(db_.sql(),
                         "SELECT user_id, client_id, app_id, device_model, device_name, open_id "
                         "FROM terminals");
    while (st.executeStep()) {
      TerminalInfo t;
      t.userId = st.getColumn(0).getString();
      t.clientId = st.getColumn(1).getString();
      t.appId = st.getColumn(2).getString();
      t.deviceModel = st.getColumn(3).getString();
      t.deviceName = st.getColumn(4).getString();
      t.openId = st.getColumn(5).getString();
      byOpenId_[t.openId] = {t.userId, t.clientId};
      terminals_[{t.userId, t.clientId}] = std::move(t);
    }
  } catch (const std::exception& e) {
    return Status::error(ErrorCode::kInternal, std::string("loading identities: ") + e.what());
  }
  return Status::ok();
}

Result<TerminalInfo> IdentityService::hello(const std::string& userId, const std::string& clientId,
                                            const std::string& appId,
                                            const std::string& deviceModel,
                                            const std::string& deviceName) {
  Key key{userId, clientId};
  TerminalInfo t;
  auto it = terminals_.find(key);
  if (it != terminals_.end()) t = it->second;
  if (it == terminals_.end() || t.appId != appId) t.openId = randomHex(16);
  t.userId = userId;
  t.clientId = clientId;
  t.appId = appId;
  t.deviceModel = deviceModel;
  t.deviceName = deviceName;
  // A terminal that sends a request is connected, whatever its presence topic said last.
  t.online = true;
  int64_t now = clock_.nowMs();
  Status s = db_.transaction([&] {
    SQLite::Statement& u = db_.prepared(
        "INSERT INTO users(user_id, created_at) VALUES(?, ?) "
        "ON CONFLICT(user_id) DO NOTHING");
    u.bind(1, userId);
    u.bind(2, now);
    u.exec();
    SQLite::Statement& st = db_.prepared(
        "INSERT INTO terminals(user_id, client_id, app_id, device_model, "
        "device_name, open_id, first_seen, last_seen) VALUES(?,?,?,?,?,?,?,?) "
        "ON CONFLICT(user_id, client_id) DO UPDATE SET app_id=excluded.app_id, "
        "device_model=excluded.device_model, device_name=excluded.device_name, "
        "open_id=excluded.open_id, last_seen=excluded.last_seen");
    st.bind(1, userId);
    st.bind(2, clientId);
    st.bind(3, appId);
    st.bind(4, deviceModel);
    st.bind(5, deviceName);
    st.bind(6, t.openId);
    st.bind(7, now);
    st.bind(8, now);
    st.exec();
    return Status::ok();
  });
  if (!s) return s;
  if (it != terminals_.end() && it->second.openId != t.openId) byOpenId_.erase(it->second.openId);
  users_.insert(userId);
  onlineWithoutHello_.erase(key);
  byOpenId_[t.openId] = key;
  terminals_[key] = t;
  return t;
}

bool IdentityService::setOnline(const std::string& userId, const std::string& clientId,
                                bool online) {
  Key key{userId, clientId};
  auto it = terminals_.find(key);
  if (it == terminals_.end()) {
    bool was = onlineWithoutHello_.count(key) > 0;
    if (online) {
      onlineWithoutHello_.insert(key);
    } else {
      onlineWithoutHello_.erase(key);
    }
    return was != online;
  }
  bool changed = it->second.online != online;
  it->second.online = online;
  return changed;
}

Status IdentityService::addUser(const std::string& userId) {
  Status s = db_.transaction([&] {
    SQLite::Statement& u = db_.prepared(
        "INSERT INTO users(user_id, created_at) VALUES(?, ?) "
        "ON CONFLICT(user_id) DO NOTHING");
    u.bind(1, userId);
    u.bind(2, clock_.nowMs());
    u.exec();
    return Status::ok();
  });
  if (s) users_.insert(userId);
  return s;
}

Status IdentityService::removeUser(const std::string& userId) {
  Status s = db_.transaction([&] {
    SQLite::Statement& t = db_.prepared("DELETE FROM terminals WHERE user_id=?");
    t.bind(1, userId);
    t.exec();
    SQLite::Statement& u = db_.prepared("DELETE FROM users WHERE user_id=?");
    u.bind(1, userId);
    u.exec();
    return Status::ok();
  });
  if (!s) return s;
  users_.erase(userId);
  for (auto it = terminals_.begin(); it != terminals_.end();) {
    if (it->first.first == userId) {
      byOpenId_.erase(it->second.openId);
      it = terminals_.erase(it);
    } else {
      ++it;
    }
  }
  return Status::ok();
}

std::optional<TerminalInfo> IdentityService::terminal(const std::string& userId,
                                                      const std::string& clientId) const {
  auto it = terminals_.find({userId, clientId});
  if (it == terminals_.end()) return std::nullopt;
  return it->second;
}

std::optional<TerminalInfo> IdentityService::terminalByOpenId(const std::string& openId) const {
  auto it = byOpenId_.find(openId);
  if (it == byOpenId_.end()) return std::nullopt;
  return terminal(it->second.first, it->second.second);
}

std::vector<TerminalInfo> IdentityService::terminals(const std::string& userId) const {
  std::vector<TerminalInfo> out;
  for (auto it = terminals_.lower_bound({userId, ""});
       it != terminals_.end() && it->first.first == userId; ++it) {
    out.push_back(it->second);
  }
  return out;
}

std::vector<TerminalInfo> IdentityService::onlineTerminals(const std::string& userId) const {
  std::vector<TerminalInfo> out;
  for (auto it = terminals_.lower_bound({userId, ""});
       it != terminals_.end() && it->first.first == userId; ++it) {
    if (it->second.online) out.push_back(it->second);
  }
  // Terminals that are connected but never said hello still receive events.
  for (const auto& key : onlineWithoutHello_) {
    if (key.first == userId) {
      TerminalInfo t;
      t.userId = key.first;
      t.clientId = key.second;
      t.online = true;
      out.push_back(t);
    }
  }
  return out;
}

}  // namespace hearth
