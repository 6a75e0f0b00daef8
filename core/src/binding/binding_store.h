#pragma once
// Durable storage of the binding engine's state (devices, bindings, shares, provisioning tokens,
// audit log) in the hub database. Every save is one transaction committed with
// synchronous=FULL before it returns, so an `ok` sent after it survives a power cut.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "binding/device_table.h"
#include "binding/policy.h"
#include "store/database.h"

namespace hearth::binding {

class BindingStore {
 public:
  explicit BindingStore(Database& db) : db_(db) {}

  // Reads every device (with its DeviceMeta, bindings and shares) into `devices` and every
  // provisioning token into `tokens`.
  Status loadAll(DeviceTable* devices, std::map<std::string, ProvisionToken>* tokens);

  // Writes the device's row, bindings and shares, and appends the audit entries; with a token
  // when a provision spent it. One transaction, written to the WAL but not yet synced
  // (Database::transactionUnsynced): the caller syncs before it acknowledges. With `before` (the device as it was before the
  // change being saved), the parts equal in both are left alone: a bind or share then writes
  // its own rows and the audit entry, not the device row too (fewer pages per commit).
  Status saveDevice(const Device& device, const DeviceMeta& meta,
                    const std::vector<AuditEntry>& audit, const ProvisionToken* token = nullptr,
                    const Device* before = nullptr);
  Status saveToken(const ProvisionToken& token);
  // Appends audit entries that change no device (delegated commands), unsynced like saveDevice.
  Status appendAudit(const std::vector<AuditEntry>& audit);
  Status deleteToken(const std::string& tokenHash);

  struct AuditQuery {
    std::optional<std::string> deviceId;
    std::optional<int64_t> sinceMs;
    int limit = 500;
  };
  Result<std::vector<AuditEntry>> audit(const AuditQuery& q);

 private:
  void writeDeviceRow(const Device& device, const DeviceMeta& meta);
  void writeBindings(const Device& device);
  void writeShares(const Device& device);
  void writeAudit(const std::vector<AuditEntry>& audit);
  void writeToken(const ProvisionToken& token);
  Database& db_;
};

}  // namespace hearth::binding
