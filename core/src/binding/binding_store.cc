#include "binding/binding_store.h"

namespace hearth::binding {

Status BindingStore::loadAll(std::map<std::string, Device>* devices,
                             std::map<std::string, DeviceMeta>* meta,
                             std::map<std::string, ProvisionToken>* tokens) {
  try {
    SQLite::Statement d(db_.sql(),
                        "SELECT device_id, transport, model, name, firmware, mode, bind_window_ms, "
                        "bind_window_reported_at, inventory_only, first_seen, last_seen "
                        "FROM devices");
    while (d.executeStep()) {
      Device dev;
      dev.deviceId = d.getColumn(0).getString();
      dev.transport = d.getColumn(1).getString();
      dev.model = d.getColumn(2).getString();
      dev.name = d.getColumn(3).getString();
      dev.mode = parseMode(d.getColumn(5).getString()).value_or(Mode::kShareRequired);
      dev.bindWindowMs = d.getColumn(6).getInt64();
      dev.bindWindowReportedAtMs = d.getColumn(7).getInt64();
      dev.online = false;  // presence is re-learned from the transports
      DeviceMeta m;
      m.firmware = d.getColumn(4).getString();
      m.inventoryOnly = d.getColumn(8).getInt() != 0;
      m.firstSeenMs = d.getColumn(9).getInt64();
      m.lastSeenMs = d.getColumn(10).getInt64();
      (*meta)[dev.deviceId] = m;
      (*devices)[dev.deviceId] = std::move(dev);
    }
    SQLite::Statement b(db_.sql(),
                        "SELECT device_id, user_id, role, bound_at FROM bindings ORDER BY "
                        "device_id, seq");
    while (b.executeStep()) {
      auto it = devices->find(b.getColumn(0).getString());
      if (it == devices->end()) continue;
      Binding binding;
      binding.userId = b.getColumn(1).getString();
      binding.role = parseRole(b.getColumn(2).getString()).value_or(Role::kGuest);
      binding.boundAtMs = b.getColumn(3).getInt64();
      it->second.bindings.push_back(std::move(binding));
    }
    SQLite::Statement s(db_.sql(),
                        "SELECT sharing_id, device_id, from_user, way, guest, key_hash, "
                        "created_at, expires_at, state, closed_at FROM shares ORDER BY device_id, "
                        "seq");
    while (s.executeStep()) {
      auto it = devices->find(s.getColumn(1).getString());
      if (it == devices->end()) continue;
      Share share;
      share.sharingId = s.getColumn(0).getString();
      share.deviceId = s.getColumn(1).getString();
      share.fromUser = s.getColumn(2).getString();
      share.way = parseShareWay(s.getColumn(3).getString()).value_or(ShareWay::kQr);
      share.guest = s.getColumn(4).getString();
      share.keyHash = s.getColumn(5).getString();
      share.createdAtMs = s.getColumn(6).getInt64();
      share.expiresAtMs = s.getColumn(7).getInt64();
      share.state = parseShareState(s.getColumn(8).getString()).value_or(ShareState::kExpired);
      share.closedAtMs = s.getColumn(9).getInt64();
      it->second.shares.push_back(std::move(share));
    }
    // push_back leaves up to half of each list's room unused; state swapped in later is a copy
    // and exact anyway. With 100,000 bindings this is ~3 MB.
    for (auto& [id, dev] : *devices) {
      dev.bindings.shrink_to_fit();
      dev.shares.shrink_to_fit();
    }
    SQLite::Statement t(db_.sql(),
                        "SELECT token_hash, user_id, device_id, created_at, expires_at, used "
                        "FROM provision_tokens");
    while (t.executeStep()) {
      ProvisionToken token;
      token.tokenHash = t.getColumn(0).getString();
      token.userId = t.getColumn(1).getString();
      token.deviceId = t.getColumn(2).getString();
      token.createdAtMs = t.getColumn(3).getInt64();
      token.expiresAtMs = t.getColumn(4).getInt64();
      token.used = t.getColumn(5).getInt() != 0;
      (*tokens)[token.tokenHash] = std::move(token);
    }
  } catch (const std::exception& e) {
    return Status::error(ErrorCode::kInternal, std::string("loading bindings: ") + e.what());
  }
  return Status::ok();
}

void BindingStore::writeToken(const ProvisionToken& token) {
  SQLite::Statement st(db_.sql(),
                       "INSERT OR REPLACE INTO provision_tokens(token_hash, user_id, device_id, "
                       "created_at, expires_at, used) VALUES(?,?,?,?,?,?)");
  st.bind(1, token.tokenHash);
  st.bind(2, token.userId);
  st.bind(3, token.deviceId);
  st.bind(4, token.createdAtMs);
  st.bind(5, token.expiresAtMs);
  st.bind(6, token.used ? 1 : 0);
  st.exec();
}

namespace {

// The columns of the devices table that Device holds (the rest are DeviceMeta's).
bool sameRow(const Device& a, const Device& b) {
  return a.transport == b.transport && a.model == b.model && a.name == b.name && a.mode == b.mode &&
         a.bindWindowMs == b.bindWindowMs && a.bindWindowReportedAtMs == b.bindWindowReportedAtMs;
}

}  // namespace

Status BindingStore::saveDevice(const Device& device, const DeviceMeta& meta,
                                const std::vector<AuditEntry>& audit, const ProvisionToken* token,
                                const Device* before) {
  return db_.transactionUnsynced([&] {
    if (before == nullptr || !sameRow(*before, device)) writeDeviceRow(device, meta);
    if (before == nullptr || before->bindings != device.bindings) writeBindings(device);
    if (before == nullptr || before->shares != device.shares) writeShares(device);
    writeAudit(audit);
    if (token != nullptr) writeToken(*token);
    return Status::ok();
  });
}

Status BindingStore::appendAudit(const std::vector<AuditEntry>& audit) {
  return db_.transactionUnsynced([&] {
    writeAudit(audit);
    return Status::ok();
  });
}

void BindingStore::writeDeviceRow(const Device& device, const DeviceMeta& meta) {
  SQLite::Statement d(db_.sql(),
                      "INSERT OR REPLACE INTO devices(device_id, transport, model, name, "
                      "firmware, mode, bind_window_ms, bind_window_reported_at, inventory_only, "
                      "first_seen, last_seen) VALUES(?,?,?,?,?,?,?,?,?,?,?)");
  d.bind(1, device.deviceId);
  d.bind(2, device.transport);
  d.bind(3, device.model);
  d.bind(4, device.name);
  d.bind(5, meta.firmware);
  d.bind(6, modeName(device.mode));
  d.bind(7, device.bindWindowMs);
  d.bind(8, device.bindWindowReportedAtMs);
  d.bind(9, meta.inventoryOnly ? 1 : 0);
  d.bind(10, meta.firstSeenMs);
  d.bind(11, meta.lastSeenMs);
  d.exec();
}

void BindingStore::writeBindings(const Device& device) {
  SQLite::Statement delB(db_.sql(), "DELETE FROM bindings WHERE device_id=?");
  delB.bind(1, device.deviceId);
  delB.exec();
  SQLite::Statement insB(db_.sql(),
                         "INSERT INTO bindings(device_id, user_id, role, bound_at, seq) "
                         "VALUES(?,?,?,?,?)");
  int seq = 0;
  for (const auto& b : device.bindings) {
    insB.reset();
    insB.bind(1, device.deviceId);
    insB.bind(2, b.userId);
    insB.bind(3, roleName(b.role));
    insB.bind(4, b.boundAtMs);
    insB.bind(5, seq++);
    insB.exec();
  }
}

void BindingStore::writeShares(const Device& device) {
  SQLite::Statement delS(db_.sql(), "DELETE FROM shares WHERE device_id=?");
  delS.bind(1, device.deviceId);
  delS.exec();
  SQLite::Statement insS(db_.sql(),
                         "INSERT INTO shares(sharing_id, device_id, from_user, way, guest, "
                         "key_hash, created_at, expires_at, state, closed_at, seq) "
                         "VALUES(?,?,?,?,?,?,?,?,?,?,?)");
  int seq = 0;
  for (const auto& s : device.shares) {
    insS.reset();
    insS.bind(1, s.sharingId);
    insS.bind(2, device.deviceId);
    insS.bind(3, s.fromUser);
    insS.bind(4, shareWayName(s.way));
    insS.bind(5, s.guest);
    insS.bind(6, s.keyHash);
    insS.bind(7, s.createdAtMs);
    insS.bind(8, s.expiresAtMs);
    insS.bind(9, shareStateName(s.state));
    insS.bind(10, s.closedAtMs);
    insS.bind(11, seq++);
    insS.exec();
  }
}

void BindingStore::writeAudit(const std::vector<AuditEntry>& audit) {
  SQLite::Statement insA(db_.sql(),
                         "INSERT INTO audit_log(at, actor, device_id, action, subject, reason) "
                         "VALUES(?,?,?,?,?,?)");
  for (const auto& a : audit) {
    insA.reset();
    insA.bind(1, a.atMs);
    insA.bind(2, a.actor);
    insA.bind(3, a.deviceId);
    insA.bind(4, a.action);
    insA.bind(5, a.subject);
    insA.bind(6, a.reason);
    insA.exec();
  }
}

Status BindingStore::saveToken(const ProvisionToken& token) {
  return db_.transaction([&] {
    writeToken(token);
    return Status::ok();
  });
}

Status BindingStore::deleteToken(const std::string& tokenHash) {
  return db_.transaction([&] {
    SQLite::Statement st(db_.sql(), "DELETE FROM provision_tokens WHERE token_hash=?");
    st.bind(1, tokenHash);
    st.exec();
    return Status::ok();
  });
}

Result<std::vector<AuditEntry>> BindingStore::audit(const AuditQuery& q) {
  std::vector<AuditEntry> out;
  try {
    std::string sql =
        "SELECT at, actor, device_id, action, subject, reason FROM audit_log WHERE 1=1";
    if (q.deviceId) sql += " AND device_id=:device";
    if (q.sinceMs) sql += " AND at>=:since";
    sql += " ORDER BY seq LIMIT :limit";
    SQLite::Statement st(db_.sql(), sql);
    if (q.deviceId) st.bind(":device", *q.deviceId);
    if (q.sinceMs) st.bind(":since", *q.sinceMs);
    st.bind(":limit", q.limit);
    while (st.executeStep()) {
      AuditEntry a;
      a.atMs = st.getColumn(0).getInt64();
      a.actor = st.getColumn(1).getString();
      a.deviceId = st.getColumn(2).getString();
      a.action = st.getColumn(3).getString();
      a.subject = st.getColumn(4).getString();
      a.reason = st.getColumn(5).getString();
      out.push_back(std::move(a));
    }
  } catch (const std::exception& e) {
    return Status::error(ErrorCode::kInternal, std::string("audit log: ") + e.what());
  }
  return out;
}

}  // namespace hearth::binding
