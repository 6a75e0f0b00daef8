#pragma once
// The hub's one SQLite database: WAL, synchronous=FULL, versioned migrations and an integrity
// check at open. A database that cannot be read is never recreated: open() fails with a message
// that says what to do, and hearthd stops.

#include <SQLiteCpp/SQLiteCpp.h>

#include <functional>
#include <memory>
#include <string>

#include "hearth/host.h"
#include "hearth/status.h"

namespace hearth {

class Database {
 public:
  // Opens or creates the file. Runs PRAGMA integrity_check (full check unless quickCheck).
  static Result<std::unique_ptr<Database>> open(const std::string& path, bool quickCheck = false);

  SQLite::Database& sql() { return *db_; }
  const std::string& path() const { return path_; }
  int schemaVersion();
  // The migration count this build knows; a file from a newer build is refused.
  static int latestVersion();

  // Runs body inside one transaction committed durably (synchronous=FULL) before returning.
  // Nested calls join the outer transaction. Exceptions from SQLiteCpp become INTERNAL.
  Status transaction(const std::function<Status()>& body);
  bool inTransaction() const { return txDepth_ > 0; }

  // Group commit, for a caller that answers many changes at once: like transaction(), but the
  // commit is written to the WAL without waiting for the disk (synchronous=NORMAL for this one
  // commit; atomic, and it survives the process being killed, not a power cut). The caller
  // must not acknowledge the change before a later syncWal() (or any durable transaction,
  // whose fsync of the WAL covers every earlier commit) has returned ok.
  Status transactionUnsynced(const std::function<Status()>& body);
  // Makes every commit so far durable: one fsync of the WAL file, as a synchronous=FULL
  // commit does. INTERNAL if the disk refused it.
  Status syncWal();

  // Full disk. A write that fails because the filesystem is full (SQLITE_FULL, or ENOSPC /
  // EDQUOT under an I/O error) answers STORAGE_FULL and marks the store full; the next write
  // that succeeds, or checkSpace() finding room, marks it writable again. Each change of that
  // state (not each failed write) is reported to the listener, on the calling thread.
  using StorageListener = std::function<void(bool full, const std::string& detail)>;
  void setStorageListener(StorageListener listener) { storageListener_ = std::move(listener); }
  bool storageFull() const { return storageFull_; }
  // While full: looks at the free space of the database's filesystem and marks the store
  // writable once at least kSpaceToResume bytes are free. Returns storageFull().
  bool checkSpace();
  static constexpr uint64_t kSpaceToResume = 256 * 1024;
  // The Status a write failure becomes: STORAGE_FULL for a full disk (and the state is
  // noted), INTERNAL otherwise. `what` prefixes the message.
  Status writeError(const std::exception& e, const std::string& what);

 private:
  Database(std::string path, std::unique_ptr<SQLite::Database> db)
      : path_(std::move(path)), db_(std::move(db)) {}
  Status migrate();

  std::string path_;
  std::unique_ptr<SQLite::Database> db_;
  int txDepth_ = 0;
  void noteWritable();
  bool storageFull_ = false;
  StorageListener storageListener_;
};

// A plugin's namespace in the plugin_kv table.
class PluginKvStore : public KvStore {
 public:
  PluginKvStore(Database& db, std::string plugin) : db_(db), plugin_(std::move(plugin)) {}
  Status put(std::string_view collection, std::string_view key, std::string_view value) override;
  Result<std::optional<std::string>> get(std::string_view collection,
                                         std::string_view key) override;
  Status erase(std::string_view collection, std::string_view key) override;
  Status scan(std::string_view collection, std::string_view fromKey, size_t limit,
              const std::function<bool(const std::string&, const std::string&)>& fn) override;
  Result<int64_t> count(std::string_view collection) override;
  Status transaction(const std::function<Status()>& body) override { return db_.transaction(body); }

 private:
  // Prepared once and reused: an outbox appends and erases thousands of rows a second.
  SQLite::Statement& prepared(std::unique_ptr<SQLite::Statement>& slot, const char* sql);

  Database& db_;
  std::string plugin_;
  std::unique_ptr<SQLite::Statement> put_, get_, erase_;
};

}  // namespace hearth
