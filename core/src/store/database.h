#pragma once
// The hub's one SQLite database: WAL, synchronous=FULL, versioned migrations and an integrity
// check at open. A database that cannot be read is never recreated: open() fails with a message
// that says what to do, and hearthd stops.

#include <SQLiteCpp/SQLiteCpp.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>

#include "hearth/host.h"
#include "hearth/status.h"
#include "store/wal_syncer.h"

namespace hearth {

class Database {
 public:
  // Opens or creates the file. Runs PRAGMA integrity_check (full check unless quickCheck).
  // checkInBackground: for a file that is already WAL at the latest schema version (what every
  // start but the first after an install or an upgrade finds), the check runs on a thread of its
  // own, on its own read-only connection, while the caller reads its state; the first
  // transaction, and checked(), wait for its verdict, so nothing is written to a file that
  // failed it. Other files are checked before open() returns, as without it.
  static Result<std::unique_ptr<Database>> open(const std::string& path, bool quickCheck = false,
                                                bool checkInBackground = false);
  ~Database();
  // The integrity check's verdict: ok, or the error open() would have returned for it. Waits for
  // a check still running in the background.
  Status checked();

  SQLite::Database& sql() { return *db_; }
  // The statement for `sql` (a string literal: cached by its address), prepared once for the
  // connection's life and handed out reset, with no bindings. For statements that run to
  // completion (writes) or that the caller resets after its last row, so that none holds a read
  // snapshot between uses. Preparing costs more than running a one-row write (17 % of the hub's
  // CPU per binding operation when every write prepared its statements).
  SQLite::Statement& prepared(const char* sql);
  const std::string& path() const { return path_; }
  int schemaVersion();
  // The migration count this build knows; a file from a newer build is refused.
  static int latestVersion();

  // Runs body inside one transaction. Nested calls join the outer transaction. Exceptions from
  // SQLiteCpp become INTERNAL. Without background sync the commit is durable
  // (synchronous=FULL) before this returns; with it (startBackgroundSync, what hearthd runs)
  // the commit is in the WAL (atomic; it survives the process being killed) and becomes durable
  // when the syncer thread's next flush ends: whoever acknowledges it waits for whenSynced().
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

  // Durability off the hub loop. Every commit gets the next number; syncedGen() is the highest
  // number known to be on disk. startBackgroundSync(post) switches the connection to
  // synchronous=NORMAL with no automatic checkpoint and starts the WalSyncer thread (its
  // flushes and checkpoints are the only fsyncs); post(fn) must run fn on the hub loop, where
  // every whenSynced callback runs. A flush the disk refuses is fatal (onSyncFailure): after a
  // failed fsync the kernel may have dropped the pages, and retrying would report a loss as
  // saved (PostgreSQL's "fsyncgate"); systemd restarts the hub and SQLite recovers the WAL.
  Status startBackgroundSync(std::function<void(std::function<void()>)> post);
  bool backgroundSync() const { return syncer_ != nullptr; }
  uint64_t committedGen() const { return committedGen_; }
  uint64_t syncedGen() const { return syncedGen_; }
  bool allSynced() const { return syncedGen_ >= committedGen_; }
  // Hub loop only. Runs fn(true) once every commit numbered up to gen is on disk: now if it
  // is, else on the hub loop after the flush that covers it (inside the callback scope,
  // below). Callbacks run in the order of their gen, and in the order registered for one gen.
  // fn(false): without background sync, the syncWal() that was to cover gen failed.
  using SyncedFn = std::function<void(bool ok)>;
  void whenSynced(uint64_t gen, SyncedFn fn);
  void afterSynced(SyncedFn fn) { whenSynced(committedGen_, std::move(fn)); }
  // Without background sync: flushes now if a commit is unsynced (syncWal) and runs what
  // waits. With it: nothing to do, the syncer was asked at commit.
  Status settle();
  // Blocks the hub loop until everything committed is on disk (a clean stop), then runs what
  // waits.
  Status syncNow();
  // Wraps every batch of whenSynced callbacks (the hub opens an output scope around them).
  void setCallbackScope(std::function<void(const std::function<void()>&)> scope) {
    callbackScope_ = std::move(scope);
  }
  void setSyncFailureHandler(std::function<void(const std::string&)> fn) {
    onSyncFailure_ = std::move(fn);
  }
  uint64_t flushes() const;

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
  Database(std::string path, std::unique_ptr<SQLite::Database> db);
  Status migrate();
  void committed();  // after each outermost commit
  void synced(uint64_t gen, bool ok = true);
  void runDue(bool ok);

  std::string path_;
  std::unique_ptr<SQLite::Database> db_;
  std::unordered_map<const char*, std::unique_ptr<SQLite::Statement>> prepared_;  // before db_ dies
  std::thread checker_;  // the background integrity check, until checked() joins it
  Status checkVerdict_ = Status::ok();
  int txDepth_ = 0;
  bool unsyncedCommit_ = false;  // inside transactionUnsynced (no background sync)
  void noteWritable();
  bool storageFull_ = false;
  StorageListener storageListener_;

  uint64_t committedGen_ = 0;
  uint64_t syncedGen_ = 0;
  std::multimap<uint64_t, SyncedFn> waiting_;
  std::function<void(const std::function<void()>&)> callbackScope_;
  std::function<void(const std::string&)> onSyncFailure_;
  std::unique_ptr<WalSyncer> syncer_;
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
  Database& db_;
  std::string plugin_;
};

}  // namespace hearth
