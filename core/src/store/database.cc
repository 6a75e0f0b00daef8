#include "store/database.h"

#include <Poco/Path.h>
#include <sqlite3.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

namespace hearth {
namespace {

// Schema migrations, applied in order; user_version records how many have run. Never edit a
// shipped entry: add a new one.
const std::vector<const char*>& migrations() {
  static const std::vector<const char*> kMigrations = {
      // 1: identity and plugin state
      R"sql(
        CREATE TABLE users (
          user_id TEXT PRIMARY KEY,
          created_at INTEGER NOT NULL
        );
        CREATE TABLE terminals (
          user_id TEXT NOT NULL,
          client_id TEXT NOT NULL,
          app_id TEXT NOT NULL DEFAULT '',
          device_model TEXT NOT NULL DEFAULT '',
          device_name TEXT NOT NULL DEFAULT '',
          open_id TEXT NOT NULL UNIQUE,
          first_seen INTEGER NOT NULL,
          last_seen INTEGER NOT NULL,
          PRIMARY KEY (user_id, client_id)
        );
        CREATE TABLE plugin_kv (
          plugin TEXT NOT NULL,
          collection TEXT NOT NULL,
          key BLOB NOT NULL,
          value BLOB NOT NULL,
          PRIMARY KEY (plugin, collection, key)
        ) WITHOUT ROWID;
      )sql",
      // 2: devices, bindings, shares, provisioning tokens, audit log (binding engine)
      R"sql(
        CREATE TABLE devices (
          device_id TEXT PRIMARY KEY,
          transport TEXT NOT NULL,
          model TEXT NOT NULL DEFAULT '',
          name TEXT NOT NULL DEFAULT '',
          firmware TEXT NOT NULL DEFAULT '',
          mode TEXT NOT NULL,
          bind_window_ms INTEGER NOT NULL DEFAULT 0,
          bind_window_reported_at INTEGER NOT NULL DEFAULT 0,
          inventory_only INTEGER NOT NULL DEFAULT 0,
          first_seen INTEGER NOT NULL,
          last_seen INTEGER NOT NULL
        );
        CREATE TABLE bindings (
          device_id TEXT NOT NULL,
          user_id TEXT NOT NULL,
          role TEXT NOT NULL,
          bound_at INTEGER NOT NULL,
          seq INTEGER NOT NULL,
          PRIMARY KEY (device_id, user_id)
        );
        CREATE INDEX bindings_by_user ON bindings(user_id);
        CREATE TABLE shares (
          sharing_id TEXT PRIMARY KEY,
          device_id TEXT NOT NULL,
          from_user TEXT NOT NULL,
          way TEXT NOT NULL,
          guest TEXT NOT NULL DEFAULT '',
          key_hash TEXT NOT NULL DEFAULT '',
          created_at INTEGER NOT NULL,
          expires_at INTEGER NOT NULL,
          state TEXT NOT NULL,
          closed_at INTEGER NOT NULL DEFAULT 0,
          seq INTEGER NOT NULL
        );
        CREATE INDEX shares_by_device ON shares(device_id);
        CREATE TABLE provision_tokens (
          token_hash TEXT PRIMARY KEY,
          user_id TEXT NOT NULL,
          device_id TEXT NOT NULL DEFAULT '',
          created_at INTEGER NOT NULL,
          expires_at INTEGER NOT NULL,
          used INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE audit_log (
          seq INTEGER PRIMARY KEY AUTOINCREMENT,
          at INTEGER NOT NULL,
          actor TEXT NOT NULL,
          device_id TEXT NOT NULL,
          action TEXT NOT NULL,
          subject TEXT NOT NULL,
          reason TEXT NOT NULL
        );
        CREATE INDEX audit_by_device ON audit_log(device_id, at);
        CREATE INDEX audit_by_time ON audit_log(at);
      )sql",
  };
  return kMigrations;
}

constexpr int kCacheSize = -512;  // PRAGMA cache_size: negative means KiB (512 KiB), not pages

}  // namespace

Database::Database(std::string path, std::unique_ptr<SQLite::Database> db)
    : path_(std::move(path)), db_(std::move(db)) {}

// The syncer stops first (its last flush covers every commit), then the connection closes.
Database::~Database() {
  syncer_.reset();
  if (checker_.joinable()) checker_.join();
}

int Database::latestVersion() { return static_cast<int>(migrations().size()); }

namespace {

const char* const kAdvice =
    " — refusing to start. hearthd never recreates its database: restore it from a backup, "
    "or move it away to start with an empty one.";

// PRAGMA quick_check or integrity_check on `db`: ok, or the error that refuses the start.
Status integrityOf(SQLite::Database& db, const std::string& path, bool quickCheck) {
  try {
    SQLite::Statement check(db, quickCheck ? "PRAGMA quick_check" : "PRAGMA integrity_check");
    std::string verdict;
    while (check.executeStep()) {
      if (!verdict.empty()) verdict += "; ";
      verdict += check.getColumn(0).getString();
    }
    if (verdict == "ok") return Status::ok();
    return Status::error(
        ErrorCode::kInternal,
        "database " + path + " failed its integrity check (" + verdict + ")" + kAdvice);
  } catch (const std::exception& e) {
    return Status::error(ErrorCode::kInternal, "database " + path + " is unreadable or corrupt (" +
                                                   e.what() + ")" + kAdvice);
  }
}

}  // namespace

Result<std::unique_ptr<Database>> Database::open(const std::string& path, bool quickCheck,
                                                 bool checkInBackground) {
  // No memory statistics: with them every sqlite3_malloc and free takes one mutex of the whole
  // process, which the background check and the load then contend for (futex waits seen with
  // strace at every other allocation). Effective before SQLite's first use in the process.
  static std::once_flag noStats;
  std::call_once(noStats, [] { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
  std::unique_ptr<Database> db;
  try {
    // Only the hub loop uses this connection (the WAL syncer, backups and the background
    // check open their own), so it runs without SQLite's per-connection mutex: serialized
    // mode locks and unlocks it on every step and every column read, 13 % of the start-up
    // with 100,000 bindings.
    auto raw = std::make_unique<SQLite::Database>(
        path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE | SQLite::OPEN_NOMUTEX);
    raw->exec("PRAGMA busy_timeout=5000");
    db.reset(new Database(path, std::move(raw)));
    // In the background only when nothing is to be written before the state is read: the file
    // is WAL already (setting it writes) and needs no migration.
    bool background = checkInBackground &&
                      db->sql().execAndGet("PRAGMA journal_mode").getString() == "wal" &&
                      db->schemaVersion() == latestVersion();
    if (background) {
      db->checker_ = std::thread([d = db.get(), path, quickCheck] {
        try {
          SQLite::Database own(path, SQLite::OPEN_READONLY);
          own.exec("PRAGMA busy_timeout=5000");
          d->checkVerdict_ = integrityOf(own, path, quickCheck);
        } catch (const std::exception& e) {
          d->checkVerdict_ = Status::error(
              ErrorCode::kInternal,
              "database " + path + " is unreadable or corrupt (" + e.what() + ")" + kAdvice);
        }
      });
    } else if (Status s = integrityOf(db->sql(), path, quickCheck); !s) {
      return s;
    }
    db->sql().exec("PRAGMA journal_mode=WAL");
    db->sql().exec("PRAGMA synchronous=FULL");
    db->sql().exec("PRAGMA foreign_keys=ON");
    // SQLite's page cache, bounded well under its 2 MB default: start-up reads every table once
    // (it would stay full of pages read once), and the pages a change touches (b-tree interior
    // pages, the rows of one device) fit many times over. The OS page cache holds the file.
    db->sql().exec("PRAGMA cache_size=" + std::to_string(kCacheSize));
  } catch (const std::exception& e) {
    return Status::error(ErrorCode::kInternal, "database " + path + " is unreadable or corrupt (" +
                                                   e.what() + ")" + kAdvice);
  }
  Status migrated = db->migrate();
  if (!migrated) return migrated;
  return db;
}

Status Database::checked() {
  if (checker_.joinable()) checker_.join();
  return checkVerdict_;
}

int Database::schemaVersion() { return db_->execAndGet("PRAGMA user_version").getInt(); }

Status Database::migrate() {
  try {
    int version = schemaVersion();
    if (version > latestVersion()) {
      return Status::error(ErrorCode::kInternal,
                           "database " + path_ + " has schema version " + std::to_string(version) +
                               ", newer than this hearthd knows (" +
                               std::to_string(latestVersion()) + "); refusing to start");
    }
    for (int v = version; v < latestVersion(); ++v) {
      SQLite::Transaction tx(*db_);
      db_->exec(migrations()[v]);
      db_->exec("PRAGMA user_version=" + std::to_string(v + 1));
      tx.commit();
    }
  } catch (const std::exception& e) {
    return Status::error(ErrorCode::kInternal,
                         "database " + path_ + " migration failed: " + e.what());
  }
  return Status::ok();
}

Status Database::transactionUnsynced(const std::function<Status()>& body) {
  if (txDepth_ > 0 || syncer_) return transaction(body);  // the outer transaction decides
  try {
    db_->exec("PRAGMA synchronous=NORMAL");
  } catch (const std::exception& e) {
    return writeError(e, "database error: ");
  }
  unsyncedCommit_ = true;
  Status s = transaction(body);
  unsyncedCommit_ = false;
  try {
    db_->exec("PRAGMA synchronous=FULL");
  } catch (const std::exception& e) {
    return writeError(e, "database error: ");
  }
  return s;
}

Status Database::syncWal() {
  const uint64_t gen = committedGen_;  // what this flush covers
  // The WAL file's handle, through SQLite's own file-control interface; its xSync is the call
  // a synchronous=FULL commit ends with.
  sqlite3_file* wal = nullptr;
  int rc = sqlite3_file_control(db_->getHandle(), "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal);
  if (rc != SQLITE_OK) {
    return Status::error(ErrorCode::kInternal,
                         "database: no WAL handle (" + std::to_string(rc) + ")");
  }
  if (wal == nullptr || wal->pMethods == nullptr) {  // nothing written yet
    synced(gen);
    return Status::ok();
  }
  rc = wal->pMethods->xSync(wal, SQLITE_SYNC_NORMAL);
  if (rc != SQLITE_OK) {
    int err = sqlite3_system_errno(db_->getHandle());
    synced(gen, false);
    if (err == ENOSPC || err == EDQUOT) {
      return writeError(SQLite::Exception("syncing the WAL failed", SQLITE_FULL), "database: ");
    }
    return Status::error(ErrorCode::kInternal, "database: syncing the WAL failed (" +
                                                   std::string(sqlite3_errstr(rc)) + ")");
  }
  synced(gen);
  return Status::ok();
}

Status Database::transaction(const std::function<Status()>& body) {
  // Nothing is written to a file before its integrity check has passed.
  if (checker_.joinable()) {
    if (Status s = checked(); !s) return s;
  }
  if (!checkVerdict_) return checkVerdict_;
  if (txDepth_ > 0) {
    ++txDepth_;
    Status s = body();
    --txDepth_;
    return s;
  }
  try {
    SQLite::Transaction tx(*db_);
    ++txDepth_;
    Status s;
    try {
      s = body();
    } catch (...) {
      --txDepth_;
      throw;
    }
    --txDepth_;
    if (s.isOk()) {
      tx.commit();  // rollback happens in ~Transaction otherwise
      noteWritable();
      committed();
    }
    return s;
  } catch (const std::exception& e) {
    return writeError(e, "database error: ");
  }
}

void Database::committed() {
  ++committedGen_;
  if (syncer_) {
    syncer_->request(committedGen_);
  } else if (!unsyncedCommit_) {
    syncedGen_ = committedGen_;  // synchronous=FULL: on disk already
    runDue(true);
  }
}

Status Database::startBackgroundSync(std::function<void(std::function<void()>)> post) {
  if (Status s = checked(); !s) return s;  // the syncer checkpoints: it writes the file
  if (syncer_) return Status::ok();
  Status flushed = syncWal();  // what was committed unsynced so far
  if (!flushed) return flushed;
  try {
    // The commits only write the WAL; the syncer flushes it and checkpoints. With no automatic
    // checkpoint on this connection a commit never copies pages into the database file.
    db_->exec("PRAGMA synchronous=NORMAL");
    db_->exec("PRAGMA wal_autocheckpoint=0");
    db_->execAndGet("SELECT count(*) FROM sqlite_master");  // the WAL file exists from here
  } catch (const std::exception& e) {
    return Status::error(ErrorCode::kInternal, std::string("database: ") + e.what());
  }
  auto syncer = std::make_unique<WalSyncer>(
      path_, [this, post = std::move(post)](uint64_t gen, const std::string& error) {
        post([this, gen, error] {
          if (!error.empty()) {
            if (onSyncFailure_) onSyncFailure_(error);
            std::abort();  // see startBackgroundSync: never acknowledge after a failed flush
          }
          synced(gen);
        });
      });
  if (Status s = syncer->start(); !s) return s;
  syncer_ = std::move(syncer);
  WalSyncer* raw = syncer_.get();
  sqlite3_wal_hook(
      db_->getHandle(),
      [](void* arg, sqlite3*, const char*, int frames) {
        static_cast<WalSyncer*>(arg)->noteWalFrames(frames);
        return SQLITE_OK;
      },
      raw);
  return Status::ok();
}

void Database::synced(uint64_t gen, bool ok) {
  if (gen <= syncedGen_) return;
  syncedGen_ = gen;  // on failure: given up (inline mode only; see whenSynced)
  runDue(ok);
}

void Database::runDue(bool ok) {
  if (waiting_.empty() || waiting_.begin()->first > syncedGen_) return;
  std::vector<SyncedFn> due;
  while (!waiting_.empty() && waiting_.begin()->first <= syncedGen_) {
    due.push_back(std::move(waiting_.begin()->second));
    waiting_.erase(waiting_.begin());
  }
  auto runAll = [&] {
    for (auto& fn : due) fn(ok);
  };
  if (callbackScope_) {
    callbackScope_(runAll);
  } else {
    runAll();
  }
}

void Database::whenSynced(uint64_t gen, SyncedFn fn) {
  if (gen <= syncedGen_) return fn(true);
  waiting_.emplace(gen, std::move(fn));
}

Status Database::settle() {
  if (syncer_ || allSynced()) return Status::ok();
  return syncWal();
}

Status Database::syncNow() { return allSynced() ? Status::ok() : syncWal(); }

uint64_t Database::flushes() const { return syncer_ ? syncer_->flushes() : 0; }

Status Database::writeError(const std::exception& e, const std::string& what) {
  int code = -1;
  if (const auto* se = dynamic_cast<const SQLite::Exception*>(&e)) code = se->getErrorCode();
  int err = db_ ? sqlite3_system_errno(db_->getHandle()) : 0;
  bool full = code == SQLITE_FULL || ((code == SQLITE_IOERR || code == SQLITE_CANTOPEN) &&
                                      (err == ENOSPC || err == EDQUOT));
  if (!full) return Status::error(ErrorCode::kInternal, what + e.what());
  std::string detail =
      "the filesystem of " + Poco::Path(path_).parent().toString() + " is full (" + e.what() + ")";
  if (!storageFull_) {
    storageFull_ = true;
    if (storageListener_) storageListener_(true, detail);
  }
  return Status::error(ErrorCode::kStorageFull, "the hub's storage is full; nothing was changed (" +
                                                    std::string(e.what()) + ")");
}

void Database::noteWritable() {
  if (!storageFull_) return;
  storageFull_ = false;
  if (storageListener_) storageListener_(false, "a change was written again");
}

bool Database::checkSpace() {
  if (!storageFull_) return false;
  struct statvfs fs {};
  std::string dir = Poco::Path(path_).parent().toString();
  if (statvfs(dir.empty() ? "." : dir.c_str(), &fs) != 0) return storageFull_;
  uint64_t avail = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
  if (avail >= kSpaceToResume) {
    storageFull_ = false;
    if (storageListener_) {
      storageListener_(false, std::to_string(avail / 1024) + " KiB free in " + dir);
    }
  }
  return storageFull_;
}

SQLite::Statement& Database::prepared(const char* sql) {
  auto& slot = prepared_[sql];
  if (!slot) slot = std::make_unique<SQLite::Statement>(*db_, sql);
  // tryReset: after a step that failed (a constraint, a full disk) sqlite3_reset returns that
  // step's error again while it resets; reset() would throw it at this, the next, use.
  slot->tryReset();
  slot->clearBindings();
  return *slot;
}

Status PluginKvStore::put(std::string_view collection, std::string_view key,
                          std::string_view value) {
  return db_.transaction([&] {
    SQLite::Statement& st = db_.prepared(
        "INSERT INTO plugin_kv(plugin, collection, key, value) VALUES(?,?,?,?) "
        "ON CONFLICT(plugin, collection, key) DO UPDATE SET value=excluded.value");
    st.bind(1, plugin_);
    st.bind(2, std::string(collection));
    st.bind(3, key.data(), static_cast<int>(key.size()));
    st.bind(4, value.data(), static_cast<int>(value.size()));
    st.exec();
    return Status::ok();
  });
}

Result<std::optional<std::string>> PluginKvStore::get(std::string_view collection,
                                                      std::string_view key) {
  try {
    SQLite::Statement& st =
        db_.prepared("SELECT value FROM plugin_kv WHERE plugin=? AND collection=? AND key=?");
    st.bind(1, plugin_);
    st.bind(2, std::string(collection));
    st.bind(3, key.data(), static_cast<int>(key.size()));
    if (!st.executeStep()) return std::optional<std::string>();
    auto col = st.getColumn(0);
    std::string value(static_cast<const char*>(col.getBlob()), col.getBytes());
    st.reset();  // ends the read, so the statement holds no snapshot between calls
    return std::optional<std::string>(std::move(value));
  } catch (const std::exception& e) {
    return Status::error(ErrorCode::kInternal, std::string("database error: ") + e.what());
  }
}

Status PluginKvStore::erase(std::string_view collection, std::string_view key) {
  return db_.transaction([&] {
    SQLite::Statement& st =
        db_.prepared("DELETE FROM plugin_kv WHERE plugin=? AND collection=? AND key=?");
    st.bind(1, plugin_);
    st.bind(2, std::string(collection));
    st.bind(3, key.data(), static_cast<int>(key.size()));
    st.exec();
    return Status::ok();
  });
}

Status PluginKvStore::scan(std::string_view collection, std::string_view fromKey, size_t limit,
                           const std::function<bool(const std::string&, const std::string&)>& fn) {
  try {
    SQLite::Statement st(db_.sql(),
                         "SELECT key, value FROM plugin_kv WHERE plugin=? AND collection=? AND "
                         "key>=? ORDER BY key LIMIT ?");
    st.bind(1, plugin_);
    st.bind(2, std::string(collection));
    st.bind(3, fromKey.data(), static_cast<int>(fromKey.size()));
    st.bind(4, limit == 0 ? int64_t{-1} : static_cast<int64_t>(limit));
    // Rows are copied out first so fn may write to the store while we iterate.
    std::vector<std::pair<std::string, std::string>> rows;
    while (st.executeStep()) {
      auto k = st.getColumn(0);
      auto v = st.getColumn(1);
      rows.emplace_back(std::string(static_cast<const char*>(k.getBlob()), k.getBytes()),
                        std::string(static_cast<const char*>(v.getBlob()), v.getBytes()));
    }
    for (const auto& [k, v] : rows) {
      if (!fn(k, v)) break;
    }
    return Status::ok();
  } catch (const std::exception& e) {
    return Status::error(ErrorCode::kInternal, std::string("database error: ") + e.what());
  }
}

Result<int64_t> PluginKvStore::count(std::string_view collection) {
  try {
    SQLite::Statement st(db_.sql(),
                         "SELECT count(*) FROM plugin_kv WHERE plugin=? AND collection=?");
    st.bind(1, plugin_);
    st.bind(2, std::string(collection));
    st.executeStep();
    return st.getColumn(0).getInt64();
  } catch (const std::exception& e) {
    return Status::error(ErrorCode::kInternal, std::string("database error: ") + e.what());
  }
}

}  // namespace hearth
