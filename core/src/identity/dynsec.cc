#include "identity/dynsec.h"

#include <Poco/JSON/Parser.h>

#include <sstream>

namespace hearth {
namespace {

Poco::JSON::Object::Ptr command(const std::string& name) {
  Poco::JSON::Object::Ptr c = new Poco::JSON::Object;
  c->set("command", name);
  return c;
}

Poco::JSON::Object::Ptr createRole(const std::string& role) {
  auto c = command("createRole");
  c->set("rolename", role);
  return c;
}

Poco::JSON::Object::Ptr addRoleAcl(const std::string& role, const std::string& type,
                                   const std::string& topic) {
  auto c = command("addRoleACL");
  c->set("rolename", role);
  c->set("acltype", type);
  c->set("topic", topic);
  c->set("allow", true);
  return c;
}

Poco::JSON::Object::Ptr addClientRole(const std::string& user, const std::string& role) {
  auto c = command("addClientRole");
  c->set("username", user);
  c->set("rolename", role);
  return c;
}

std::string errorOf(const Poco::JSON::Object::Ptr& r) {
  return r->has("error") ? r->getValue<std::string>("error") : "";
}

}  // namespace

void DynsecAdmin::send(const std::vector<Poco::JSON::Object::Ptr>& commands, Callback cb,
                       std::chrono::milliseconds timeout) {
  std::string batch = "hearth-" + std::to_string(nextBatch_++);
  Poco::JSON::Array::Ptr list = new Poco::JSON::Array;
  for (auto c : commands) {
    c->set("correlationData", batch);
    list->add(c);
  }
  Poco::JSON::Object body;
  body.set("commands", list);
  std::ostringstream out;
  body.stringify(out);
  TimerId timer = loop_.startTimer(timeout, [this, batch] {
    auto it = pending_.find(batch);
    if (it == pending_.end()) return;
    Callback cb = std::move(it->second.cb);
    pending_.erase(it);
    cb(Status::error(ErrorCode::kUnavailable,
                     "the broker's dynamic-security plugin did not answer (is it loaded, and is "
                     "hearthd's account its admin?)"));
  });
  pending_[batch] = Pending{std::move(cb), timer};
  if (!mqtt_.publish(kControlTopic, out.str(), 1, false)) {
    loop_.cancelTimer(timer);
    Callback pendingCb = std::move(pending_[batch].cb);
    pending_.erase(batch);
    pendingCb(Status::error(ErrorCode::kUnavailable, "not connected to the broker"));
  }
}

void DynsecAdmin::handleResponse(const std::string& payload) {
  Responses responses;
  std::string batch;
  try {
    auto root = Poco::JSON::Parser().parse(payload).extract<Poco::JSON::Object::Ptr>();
    auto list = root->getArray("responses");
    if (!list) return;
    for (size_t i = 0; i < list->size(); ++i) {
      auto r = list->getObject(static_cast<unsigned>(i));
      if (!r) continue;
      if (batch.empty() && r->has("correlationData")) {
        batch = r->getValue<std::string>("correlationData");
      }
      responses.push_back(r);
    }
  } catch (const std::exception& e) {
    logger_.warn(std::string("unreadable dynamic-security response: ") + e.what());
    return;
  }
  auto it = pending_.find(batch);
  if (it == pending_.end()) return;  // someone else's command, or already timed out
  loop_.cancelTimer(it->second.timer);
  Callback cb = std::move(it->second.cb);
  pending_.erase(it);
  cb(std::move(responses));
}

void DynsecAdmin::ensureRoles(const std::string& hubUser,
                              const std::vector<std::string>& adminUsers,
                              std::function<void(Status)> done) {
  std::vector<Poco::JSON::Object::Ptr> cmds = {
      createRole(kAdminRole),
      addRoleAcl(kAdminRole, "publishClientSend", "hearth/v1/admin/req/#"),
      addRoleAcl(kAdminRole, "subscribePattern", "hearth/v1/admin/res/#"),
      addRoleAcl(kAdminRole, "subscribePattern", "hearth/v1/hub/status"),
  };
  for (const auto& u : adminUsers) {
    if (u != hubUser) cmds.push_back(addClientRole(u, kAdminRole));
  }
  send(cmds, [this, done](Result<Responses> r) {
    if (!r) return done(r.status());
    for (const auto& resp : r.value()) {
      std::string err = errorOf(resp);
      if (!err.empty() && err.find("exist") == std::string::npos) {
        logger_.debug("dynsec " + resp->optValue<std::string>("command", "?") + ": " + err);
      }
    }
    done(Status::ok());
  });
}

std::string DynsecAdmin::userRole(const std::string& userId) { return kUserRolePrefix + userId; }

void DynsecAdmin::addUser(const std::string& userId, const std::string& password,
                          std::function<void(Status)> done) {
  // One role per user with literal topics: mosquitto 2.0's dynsec does not expand %u in
  // publishClientSend ACLs (checked against Debian 12's 2.0.11).
  const std::string role = userRole(userId);
  const std::string tree = "hearth/v1/u/" + userId + "/#";
  auto c = command("createClient");
  c->set("username", userId);
  c->set("password", password);
  Poco::JSON::Array::Ptr roles = new Poco::JSON::Array;
  Poco::JSON::Object::Ptr roleRef = new Poco::JSON::Object;
  roleRef->set("rolename", role);
  roles->add(roleRef);
  c->set("roles", roles);
  std::vector<Poco::JSON::Object::Ptr> cmds = {createRole(role),
                                               addRoleAcl(role, "publishClientSend", tree),
                                               addRoleAcl(role, "subscribePattern", tree), c};
  send(cmds, [done, userId](Result<Responses> r) {
    if (!r) return done(r.status());
    // The role may survive from an earlier account of the same name; only createClient counts.
    std::string err = r.value().size() < 4 ? "no answer" : errorOf(r.value()[3]);
    if (err.empty()) return done(Status::ok());
    if (err.find("already exists") != std::string::npos) {
      return done(Status::error(ErrorCode::kConflict, "user " + userId + " already exists"));
    }
    done(Status::error(ErrorCode::kInternal, "broker refused createClient: " + err));
  });
}

void DynsecAdmin::removeUser(const std::string& userId, std::function<void(Status)> done) {
  auto c = command("deleteClient");
  c->set("username", userId);
  auto d = command("deleteRole");
  d->set("rolename", userRole(userId));
  send({c, d}, [done, userId](Result<Responses> r) {
    if (!r) return done(r.status());
    std::string err = r.value().empty() ? "no answer" : errorOf(r.value()[0]);
    if (err.empty()) return done(Status::ok());
    if (err.find("not found") != std::string::npos) {
      return done(Status::error(ErrorCode::kNotFound, "no user " + userId));
    }
    done(Status::error(ErrorCode::kInternal, "broker refused deleteClient: " + err));
  });
}

void DynsecAdmin::listUsers(std::function<void(Result<std::vector<std::string>>)> done) {
  auto c = command("listClients");
  c->set("verbose", true);
  c->set("count", -1);
  send({c}, [done](Result<Responses> r) {
    if (!r) return done(r.status());
    std::vector<std::string> users;
    try {
      if (r.value().empty()) throw std::runtime_error("no answer");
      auto resp = r.value()[0];
      if (!errorOf(resp).empty()) throw std::runtime_error(errorOf(resp));
      auto clients = resp->getObject("data")->getArray("clients");
      for (size_t i = 0; clients && i < clients->size(); ++i) {
        auto client = clients->getObject(static_cast<unsigned>(i));
        auto roles = client->getArray("roles");
        for (size_t j = 0; roles && j < roles->size(); ++j) {
          if (roles->getObject(static_cast<unsigned>(j))->getValue<std::string>("rolename") ==
              userRole(client->getValue<std::string>("username"))) {
            users.push_back(client->getValue<std::string>("username"));
          }
        }
      }
    } catch (const std::exception& e) {
      return done(Status::error(ErrorCode::kInternal, std::string("listClients: ") + e.what()));
    }
    done(std::move(users));
  });
}

void DynsecAdmin::setAccount(const std::string& username, const std::string& password,
                             const std::string& role, const std::vector<BrokerAcl>& acls,
                             std::function<void(Status)> done) {
  // Idempotent: the role and each of its ACLs may exist from an earlier start ("already
  // exists" is fine). The role is not deleted and remade: dynsec disconnects a client whose
  // roles change, and mosquitto 2.0.11 refuses to give a client a role it once held.
  std::vector<Poco::JSON::Object::Ptr> cmds = {createRole(role)};
  for (const auto& a : acls) {
    auto c = addRoleAcl(role, a.type, a.topic);
    c->set("allow", a.allow);
    cmds.push_back(c);
  }
  auto client = command("createClient");
  client->set("username", username);
  client->set("password", password);
  Poco::JSON::Array::Ptr roles = new Poco::JSON::Array;
  Poco::JSON::Object::Ptr roleRef = new Poco::JSON::Object;
  roleRef->set("rolename", role);
  roles->add(roleRef);
  client->set("roles", roles);
  cmds.push_back(client);
  const size_t n = cmds.size();
  send(cmds, [this, username, password, role, n, done](Result<Responses> r) {
    if (!r) return done(r.status());
    if (r.value().size() < n) return done(Status::error(ErrorCode::kInternal, "no answer"));
    for (size_t i = 0; i + 1 < n; ++i) {
      std::string err = errorOf(r.value()[i]);
      if (!err.empty() && err.find("exist") == std::string::npos) {
        return done(Status::error(ErrorCode::kInternal, "broker refused the role: " + err));
      }
    }
    std::string err = errorOf(r.value()[n - 1]);
    if (err.empty()) return done(Status::ok());
    if (err.find("already exists") == std::string::npos) {
      return done(Status::error(ErrorCode::kInternal, "broker refused createClient: " + err));
    }
    auto pw = command("setClientPassword");
    pw->set("username", username);
    pw->set("password", password);
    send({pw, addClientRole(username, role)}, [done](Result<Responses> r2) {
      if (!r2) return done(r2.status());
      if (r2.value().empty()) return done(Status::error(ErrorCode::kInternal, "no answer"));
      // addClientRole fails harmlessly when the client has the role already.
      if (std::string e = errorOf(r2.value()[0]); !e.empty()) {
        return done(Status::error(ErrorCode::kInternal, "setClientPassword refused: " + e));
      }
      done(Status::ok());
    });
  });
}

}  // namespace hearth
