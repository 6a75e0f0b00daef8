#include "binding/binding_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <iterator>
#include <stdexcept>
#include <string_view>

namespace hearth::binding {

namespace {

// Start-up reads every row of the binding tables once, so it talks to SQLite directly: one
// prepared statement per table, columns read in place (SQLiteCpp's Column holds a shared_ptr
// to the statement per call, a third of the load's time with 100,000 rows).
class Rows {
 public:
  Rows(SQLite::Database& db, const char* sql) {
    if (sqlite3_prepare_v2(db.getHandle(), sql, -1, &stmt_, nullptr) != SQLITE_OK) {
      std::string error = sqlite3_errmsg(db.getHandle());
      sqlite3_finalize(stmt_);
      throw std::runtime_error(error);
    }
  }
  ~Rows() { sqlite3_finalize(stmt_); }
  Rows(const Rows&) = delete;
  Rows& operator=(const Rows&) = delete;

  bool next() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw std::runtime_error(sqlite3_errmsg(sqlite3_db_handle(stmt_)));
  }
  void bind(int i, std::string_view text) {
    sqlite3_reset(stmt_);
    sqlite3_bind_text(stmt_, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  }
  std::string_view text(int i) {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, i));
    return p == nullptr ? std::string_view()
                        : std::string_view(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, i)));
  }
  std::string str(int i) { return std::string(text(i)); }
  int64_t int64(int i) { return sqlite3_column_int64(stmt_, i); }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

// Rows of a device's list (bindings, shares) are read in table order, not through an index
// sorted by (device_id, seq): that order costs an index lookup per row and a sort. A device's
// rows are written together in one transaction (writeBindings, writeShares) and so lie together
// in table order, usually already by seq. Group notes each device whose rows came apart or out
// of seq order; only those are read again in seq order.
class Group {
 public:
  // `hasRows`: whether a device already holds rows of this list.
  Group(DeviceTable* devices, bool (*hasRows)(const Device&))
      : devices_(devices), hasRows_(hasRows) {}

  // The device the row belongs to (nullptr for a row of an unknown device), noting disorder.
  Device* at(std::string_view deviceId, int64_t seq) {
    if (current_ == nullptr || current_->deviceId != deviceId) {
      DeviceEntry* e = devices_->find(deviceId);
      current_ = e == nullptr ? nullptr : &e->device;
      if (current_ != nullptr && hasRows_(*current_)) disordered_.push_back(current_);
    } else if (seq < lastSeq_) {
      disordered_.push_back(current_);
    }
    lastSeq_ = seq;
    return current_;
  }
  // The devices to read again in seq order, each once.
  std::vector<Device*> disordered() {
    std::sort(disordered_.begin(), disordered_.end());
    disordered_.erase(std::unique(disordered_.begin(), disordered_.end()), disordered_.end());
    return disordered_;
  }

 private:
  DeviceTable* devices_;
  bool (*hasRows_)(const Device&);
  Device* current_ = nullptr;
  int64_t lastSeq_ = 0;
  std::vector<Device*> disordered_;
};

Binding bindingOf(Rows& r, int col) {
  Binding b;
  b.userId = r.str(col);
  b.role = parseRole(r.text(col + 1)).value_or(Role::kGuest);
  b.boundAtMs = r.int64(col + 2);
  return b;
}

Share shareOf(Rows& r) {
  Share share;
  share.sharingId = r.str(0);
  share.deviceId = r.str(1);
  share.fromUser = r.str(2);
  share.way = parseShareWay(r.text(3)).value_or(ShareWay::kQr);
  share.guest = r.str(4);
  share.keyHash = r.str(5);
  share.createdAtMs = r.int64(6);
  share.expiresAtMs = r.int64(7);
  share.state = parseShareState(r.text(8)).value_or(ShareState::kExpired);
  share.closedAtMs = r.int64(9);
  return share;
}

}  // namespace

Status BindingStore::loadAll(DeviceTable* devices,
                             std::map<std::string, ProvisionToken>* tokens) {
  try {
    SQLite::Database& sql = db_.sql();
    Rows d(sql,
           "SELECT device_id, transport, model, name, firmware, mode, bind_window_ms, "
           "bind_window_reported_at, inventory_only, first_seen, last_seen FROM devices");
    while (d.next()) {
      Device dev;
      dev.deviceId = d.str(0);
      dev.transport = d.str(1);
      dev.model = d.str(2);
      dev.name = d.str(3);
      dev.mode = parseMode(d.text(5)).value_or(Mode::kShareRequired);
      dev.bindWindowMs = d.int64(6);
      dev.bindWindowReportedAtMs = d.int64(7);
      dev.online = false;  // presence is re-learned from the transports
      DeviceMeta m;
      m.firmware = d.str(4);
      m.inventoryOnly = d.int64(8) != 0;
      m.firstSeenMs = d.int64(9);
      m.lastSeenMs = d.int64(10);
      devices->insert(std::move(dev), std::move(m));
    }

    Group bindingGroup(devices, [](const Device& x) { return !x.bindings.empty(); });
    Rows b(sql, "SELECT device_id, user_id, role, bound_at, seq FROM bindings");
    // A device's rows are gathered in `run` and moved into its list with one allocation of the
    // exact size: pushed one by one, a list of 10 grows through 5 allocations to room for 16.
    Device* runDevice = nullptr;
    std::vector<Binding> run;
    auto endRun = [&] {
      if (runDevice != nullptr) {
        auto& list = runDevice->bindings;
        list.reserve(list.size() + run.size());
        std::move(run.begin(), run.end(), std::back_inserter(list));
      }
      run.clear();
    };
    while (b.next()) {
      Device* dev = bindingGroup.at(b.text(0), b.int64(4));
      if (dev != runDevice) {
        endRun();
        runDevice = dev;
      }
      if (dev != nullptr) run.push_back(bindingOf(b, 1));
    }
    endRun();
    std::vector<Device*> again = bindingGroup.disordered();
    if (!again.empty()) {
      Rows ordered(sql,
                   "SELECT user_id, role, bound_at FROM bindings WHERE device_id=? ORDER BY seq");
      for (Device* dev : again) {
        dev->bindings.clear();
        ordered.bind(1, dev->deviceId);
        while (ordered.next()) dev->bindings.push_back(bindingOf(ordered, 0));
      }
    }

    Group shareGroup(devices, [](const Device& x) { return !x.shares.empty(); });
    Rows s(sql,
           "SELECT sharing_id, device_id, from_user, way, guest, key_hash, created_at, "
           "expires_at, state, closed_at, seq FROM shares");
    while (s.next()) {
      Device* dev = shareGroup.at(s.text(1), s.int64(10));
      if (dev != nullptr) dev->shares.push_back(shareOf(s));
    }
    again = shareGroup.disordered();
    if (!again.empty()) {
      Rows ordered(sql,
                   "SELECT sharing_id, device_id, from_user, way, guest, key_hash, created_at, "
                   "expires_at, state, closed_at FROM shares WHERE device_id=? ORDER BY seq");
      for (Device* dev : again) {
        dev->shares.clear();
        ordered.bind(1, dev->deviceId);
        while (ordered.next()) dev->shares.push_back(shareOf(ordered));
      }
    }

    // push_back leaves up to half of each list's room unused; state swapped in later is a copy
    // and exact anyway. With 100,000 bindings this is ~3 MB.
    devices->forEach([](DeviceEntry& e) {
      e.device.bindings.shrink_to_fit();
      e.device.shares.shrink_to_fit();
    });
    Rows t(sql,
           "SELECT token_hash, user_id, device_id, created_at, expires_at, used "
           "FROM provision_tokens");
    while (t.next()) {
      ProvisionToken token;
      token.tokenHash = t.str(0);
      token.userId = t.str(1);
      token.deviceId = t.str(2);
      token.createdAtMs = t.int64(3);
      token.expiresAtMs = t.int64(4);
      token.used = t.int64(5) != 0;
      std::string hash = token.tokenHash;
      tokens->emplace(std::move(hash), std::move(token));
    }
  } catch (const std::exception& e) {
    return Status::error(ErrorCode::kInternal, std::string("loading bindings: ") + e.what());
  }
  return Status::ok();
}

void BindingStore::writeToken(const ProvisionToken& token) {
  SQLite::Statement& st = db_.prepared(
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
  SQLite::Statement& d = db_.prepared(
      "INSERT OR REPLACE INTO devices(device_id, transport, model, name, "
      "firmware, mode, bind_window_ms, bind_window_reported_at, inventory_only, "
      "first_seen, last_seen) VALUES(?,?,?,?,?,?,?,?,?,?,?)");
  d.bind(1, device.deviceId);
  d.bind(2, device.transport.str());
  d.bind(3, device.model.str());
  d.bind(4, device.name);
  d.bind(5, meta.firmware.str());
  d.bind(6, modeName(device.mode));
  d.bind(7, device.bindWindowMs);
  d.bind(8, device.bindWindowReportedAtMs);
  d.bind(9, meta.inventoryOnly ? 1 : 0);
  d.bind(10, meta.firstSeenMs);
  d.bind(11, meta.lastSeenMs);
  d.exec();
}

void BindingStore::writeBindings(const Device& device) {
  SQLite::Statement& delB = db_.prepared("DELETE FROM bindings WHERE device_id=?");
  delB.bind(1, device.deviceId);
  delB.exec();
  SQLite::Statement& insB = db_.prepared(
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
  SQLite::Statement& delS = db_.prepared("DELETE FROM shares WHERE device_id=?");
  delS.bind(1, device.deviceId);
  delS.exec();
  SQLite::Statement& insS = db_.prepared(
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
  SQLite::Statement& insA = db_.prepared(
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
    SQLite::Statement& st = db_.prepared("DELETE FROM provision_tokens WHERE token_hash=?");
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
