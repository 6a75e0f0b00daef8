// The store: migrations by version, integrity check at open, and refusal to touch a database
// that cannot be read.

#include "store/database.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include "binding/binding_store.h"

namespace hearth {
namespace {

class DatabaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hearth-db-XXXXXX";
    dir_ = mkdtemp(tmpl);
    path_ = dir_ + "/hearth.db";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  // A database with a table and an index of some pages, checkpointed into the file, whose
  // middle (index pages) is then scribbled over, the header left intact.
  void writeDamagedDatabase() {
    {
      auto db = Database::open(path_);
      ASSERT_TRUE(db);
      auto& sql = db.value()->sql();
      sql.exec("PRAGMA wal_checkpoint(TRUNCATE)");
      sql.exec("CREATE TABLE filler(x TEXT)");
      for (int i = 0; i < 200; ++i) sql.exec("INSERT INTO filler VALUES(hex(randomblob(200)))");
      sql.exec("CREATE INDEX filler_x ON filler(x)");
      sql.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    }
    std::fstream f(path_, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(std::filesystem::file_size(path_) / 2));
    std::string junk(4096, '\xAB');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  std::string dir_, path_;
};

TEST_F(DatabaseTest, NewDatabaseIsMigratedToLatest) {
  auto db = Database::open(path_);
  ASSERT_TRUE(db) << db.status().toString();
  EXPECT_EQ(db.value()->schemaVersion(), Database::latestVersion());
  EXPECT_GE(Database::latestVersion(), 2);
  EXPECT_EQ(db.value()->sql().execAndGet("PRAGMA journal_mode").getString(), "wal");
  EXPECT_EQ(db.value()->sql().execAndGet("PRAGMA synchronous").getInt(), 2);  // FULL
  EXPECT_TRUE(db.value()->sql().tableExists("bindings"));
}

TEST_F(DatabaseTest, OlderSchemaIsMigratedAndDataKept) {
  {
    SQLite::Database raw(path_, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    // Exactly what version 1 created for users.
    raw.exec("CREATE TABLE users (user_id TEXT PRIMARY KEY, created_at INTEGER NOT NULL)");
    raw.exec(
        "CREATE TABLE terminals (user_id TEXT NOT NULL, client_id TEXT NOT NULL, app_id TEXT "
        "NOT NULL DEFAULT '', device_model TEXT NOT NULL DEFAULT '', device_name TEXT NOT NULL "
        "DEFAULT '', open_id TEXT NOT NULL UNIQUE, first_seen INTEGER NOT NULL, last_seen "
        "INTEGER NOT NULL, PRIMARY KEY (user_id, client_id))");
    raw.exec(
        "CREATE TABLE plugin_kv (plugin TEXT NOT NULL, collection TEXT NOT NULL, key BLOB NOT "
        "NULL, value BLOB NOT NULL, PRIMARY KEY (plugin, collection, key)) WITHOUT ROWID");
    raw.exec("INSERT INTO users VALUES('alice', 1)");
    raw.exec("PRAGMA user_version=1");
  }
  auto db = Database::open(path_);
  ASSERT_TRUE(db) << db.status().toString();
  EXPECT_EQ(db.value()->schemaVersion(), Database::latestVersion());
  EXPECT_EQ(db.value()->sql().execAndGet("SELECT user_id FROM users").getString(), "alice");
  EXPECT_TRUE(db.value()->sql().tableExists("devices"));
}

TEST_F(DatabaseTest, NewerSchemaIsRefused) {
  {
    SQLite::Database raw(path_, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    raw.exec("PRAGMA user_version=999");
  }
  auto db = Database::open(path_);
  ASSERT_FALSE(db);
  EXPECT_NE(db.status().message().find("newer"), std::string::npos);
}

TEST_F(DatabaseTest, GarbageFileIsRefusedAndNotRecreated) {
  {
    std::ofstream f(path_);
    f << std::string(8192, 'x');
  }
  auto before = std::filesystem::file_size(path_);
  auto db = Database::open(path_);
  ASSERT_FALSE(db);
  EXPECT_NE(db.status().message().find("never recreates"), std::string::npos);
  EXPECT_EQ(std::filesystem::file_size(path_), before);
  std::ifstream f(path_);
  std::string content((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, std::string(8192, 'x'));
}

TEST_F(DatabaseTest, CorruptPageFailsIntegrityCheck) {
  ASSERT_NO_FATAL_FAILURE(writeDamagedDatabase());
  auto db = Database::open(path_);
  ASSERT_FALSE(db);
  EXPECT_NE(db.status().message().find(path_), std::string::npos);
}

// The hub's start checks in the background while it reads its state; the verdict is the same,
// and a file that fails it is never written to.
TEST_F(DatabaseTest, ABackgroundCheckRefusesEveryWriteToAFileThatFailsIt) {
  ASSERT_NO_FATAL_FAILURE(writeDamagedDatabase());
  auto readAll = [this] {
    std::ifstream f(path_, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  };
  const std::string before = readAll();
  auto db = Database::open(path_, /*quickCheck=*/true, /*checkInBackground=*/true);
  ASSERT_TRUE(db) << db.status().message();  // the check is still to come
  Status verdict = db.value()->checked();
  ASSERT_FALSE(verdict);
  EXPECT_NE(verdict.message().find("refusing to start"), std::string::npos) << verdict.message();
  Status write = db.value()->transaction([&] {
    db.value()->sql().exec("INSERT INTO filler VALUES('x')");
    return Status::ok();
  });
  EXPECT_FALSE(write);
  EXPECT_EQ(write.message(), verdict.message());
  EXPECT_FALSE(db.value()->startBackgroundSync([](std::function<void()> fn) { fn(); }));
  db.value().reset();
  EXPECT_EQ(readAll(), before);
}

TEST_F(DatabaseTest, APreparedStatementIsUsableAgainAfterAFailedWrite) {
  auto db = Database::open(path_);
  ASSERT_TRUE(db);
  Database& d = *db.value();
  d.sql().exec("CREATE TABLE t(k TEXT PRIMARY KEY)");
  static const char* const kInsert = "INSERT INTO t(k) VALUES(?)";
  auto insert = [&](const char* k) {
    return d.transaction([&] {
      SQLite::Statement& st = d.prepared(kInsert);
      st.bind(1, k);
      st.exec();
      return Status::ok();
    });
  };
  EXPECT_TRUE(insert("a"));
  EXPECT_FALSE(insert("a"));  // the primary key refuses it, and the transaction rolls back
  EXPECT_TRUE(insert("b"));   // the same statement, reset and unbound, works again
  EXPECT_EQ(&d.prepared(kInsert), &d.prepared(kInsert));
  EXPECT_EQ(
      d.sql().execAndGet("SELECT group_concat(k) FROM (SELECT k FROM t ORDER BY k)").getString(),
      "a,b");
}

TEST_F(DatabaseTest, ABackgroundCheckOfAGoodFileLetsWritesThrough) {
  { ASSERT_TRUE(Database::open(path_)); }
  auto db = Database::open(path_, /*quickCheck=*/true, /*checkInBackground=*/true);
  ASSERT_TRUE(db);
  Status write = db.value()->transaction([&] {
    db.value()->sql().exec("CREATE TABLE t(x)");
    return Status::ok();
  });
  EXPECT_TRUE(write) << write.message();
  EXPECT_TRUE(db.value()->checked());
}

TEST_F(DatabaseTest, PluginKvIsNamespacedAndOrdered) {
  auto db = Database::open(path_);
  ASSERT_TRUE(db);
  PluginKvStore a(*db.value(), "a");
  PluginKvStore b(*db.value(), "b");
  ASSERT_TRUE(a.put("q", "002", "two"));
  ASSERT_TRUE(a.put("q", "001", "one"));
  ASSERT_TRUE(b.put("q", "001", "other"));
  std::vector<std::string> seen;
  ASSERT_TRUE(a.scan("q", "", 0, [&](const std::string& k, const std::string& v) {
    seen.push_back(k + "=" + v);
    return true;
  }));
  EXPECT_EQ(seen, (std::vector<std::string>{"001=one", "002=two"}));
  EXPECT_EQ(*b.get("q", "001").value(), "other");
  EXPECT_EQ(a.count("q").value(), 2);
  ASSERT_TRUE(a.erase("q", "001"));
  EXPECT_FALSE(a.get("q", "001").value().has_value());
}

TEST_F(DatabaseTest, FailedTransactionRollsBack) {
  auto db = Database::open(path_);
  ASSERT_TRUE(db);
  PluginKvStore a(*db.value(), "a");
  Status s = a.transaction([&] {
    EXPECT_TRUE(a.put("q", "1", "x"));
    return Status::error(ErrorCode::kConflict, "no");
  });
  EXPECT_EQ(s.code(), ErrorCode::kConflict);
  EXPECT_FALSE(a.get("q", "1").value().has_value());
}

TEST_F(DatabaseTest, SaveDeviceWithBeforeWritesOnlyWhatChanged) {
  auto db = Database::open(path_);
  ASSERT_TRUE(db) << db.status().toString();
  SQLite::Database& sql = db.value()->sql();
  sql.exec("INSERT INTO users(user_id, created_at) VALUES('alice', 1)");
  binding::BindingStore store(*db.value());
  binding::Device d;
  d.deviceId = "lamp";
  d.transport = "wifi";
  d.name = "Lamp";
  ASSERT_TRUE(store.saveDevice(d, {}, {}));
  // Mark the stored row, so that a rewrite of it shows.
  sql.exec("UPDATE devices SET name='marked' WHERE device_id='lamp'");

  binding::Device bound = d;
  bound.bindings.push_back({"alice", binding::Role::kOwner, 5});
  binding::AuditEntry a;
  a.atMs = 5;
  a.actor = "alice";
  a.deviceId = "lamp";
  a.action = "bind";
  ASSERT_TRUE(store.saveDevice(bound, {}, {a}, nullptr, &d));
  EXPECT_EQ(sql.execAndGet("SELECT name FROM devices WHERE device_id='lamp'").getString(),
            "marked");  // the row was equal: left alone
  EXPECT_EQ(sql.execAndGet("SELECT count(*) FROM bindings WHERE device_id='lamp'").getInt(), 1);
  EXPECT_EQ(sql.execAndGet("SELECT count(*) FROM audit_log").getInt(), 1);

  binding::Device renamed = bound;
  renamed.name = "Desk lamp";
  ASSERT_TRUE(store.saveDevice(renamed, {}, {}, nullptr, &bound));
  EXPECT_EQ(sql.execAndGet("SELECT name FROM devices WHERE device_id='lamp'").getString(),
            "Desk lamp");
  EXPECT_EQ(sql.execAndGet("SELECT count(*) FROM bindings WHERE device_id='lamp'").getInt(), 1);

  // Without `before` everything is written.
  sql.exec("UPDATE devices SET name='marked' WHERE device_id='lamp'");
  ASSERT_TRUE(store.saveDevice(renamed, {}, {}));
  EXPECT_EQ(sql.execAndGet("SELECT name FROM devices WHERE device_id='lamp'").getString(),
            "Desk lamp");
}

// loadAll reads the binding tables in table order and relies on a device's rows lying together
// in seq order; rows that came apart or out of order are read again by seq. Every case loads in
// seq order, with shares too, and rows of unknown devices are left out.
TEST_F(DatabaseTest, LoadAllKeepsSeqOrderHoweverTheRowsLie) {
  auto db = Database::open(path_);
  ASSERT_TRUE(db) << db.status().toString();
  SQLite::Database& sql = db.value()->sql();
  sql.exec(
      "INSERT INTO devices(device_id, transport, mode, first_seen, last_seen) VALUES"
      "('a', 'ble', 'share_required', 1, 1), ('b', 'ble', 'share_required', 1, 1),"
      "('c', 'wifi', 'preemptive', 1, 1)");
  // a: in order; b: out of seq order; c: apart (an 'a' row between its rows); 'gone': unknown.
  sql.exec(
      "INSERT INTO bindings(device_id, user_id, role, bound_at, seq) VALUES"
      "('a', 'u1', 'owner', 10, 0), ('a', 'u2', 'guest', 11, 1),"
      "('b', 'u3', 'guest', 21, 1), ('b', 'u4', 'owner', 20, 0),"
      "('c', 'u5', 'owner', 30, 0), ('gone', 'u9', 'owner', 1, 0), ('a', 'u6', 'guest', 12, 2),"
      "('c', 'u7', 'guest', 31, 1)");
  sql.exec(
      "INSERT INTO shares(sharing_id, device_id, from_user, way, created_at, expires_at, state, "
      "seq) VALUES ('s2', 'a', 'u1', 'qr', 2, 99, 'pending', 1),"
      "('s1', 'a', 'u1', 'qr', 1, 99, 'pending', 0), ('s3', 'b', 'u4', 'qr', 3, 99, 'pending', 0)");
  binding::BindingStore store(*db.value());
  binding::DeviceTable table;
  std::map<std::string, binding::ProvisionToken> tokens;
  ASSERT_TRUE(store.loadAll(&table, &tokens));
  ASSERT_EQ(table.size(), 3u);
  EXPECT_EQ(table.find("gone"), nullptr);
  std::map<std::string, binding::Device> devices;
  for (const binding::DeviceEntry& e : table) devices[e.device.deviceId] = e.device;
  auto users = [&](const std::string& id) {
    std::vector<std::string> out;
    for (const auto& b : devices.at(id).bindings) out.push_back(b.userId);
    return out;
  };
  EXPECT_EQ(users("a"), (std::vector<std::string>{"u1", "u2", "u6"}));
  EXPECT_EQ(users("b"), (std::vector<std::string>{"u4", "u3"}));
  EXPECT_EQ(users("c"), (std::vector<std::string>{"u5", "u7"}));
  EXPECT_EQ(devices.at("b").bindings[0].role, binding::Role::kOwner);
  EXPECT_EQ(devices.at("b").bindings[0].boundAtMs, 20);
  ASSERT_EQ(devices.at("a").shares.size(), 2u);
  EXPECT_EQ(devices.at("a").shares[0].sharingId, "s1");
  EXPECT_EQ(devices.at("a").shares[1].sharingId, "s2");
  EXPECT_EQ(devices.at("b").shares.size(), 1u);
  EXPECT_EQ(devices.at("c").mode, binding::Mode::kPreemptive);
}

TEST_F(DatabaseTest, UnsyncedTransactionCommitsAndSyncWalMakesItDurable) {
  auto db = Database::open(path_);
  ASSERT_TRUE(db) << db.status().toString();
  Database& d = *db.value();
  EXPECT_TRUE(d.syncWal());  // nothing written yet: nothing to do
  ASSERT_TRUE(d.transactionUnsynced([&] {
    d.sql().exec("INSERT INTO users(user_id, created_at) VALUES('alice', 1)");
    return Status::ok();
  }));
  // Committed (another connection sees it), and the connection is back to FULL for others.
  SQLite::Database other(path_, SQLite::OPEN_READONLY);
  EXPECT_EQ(other.execAndGet("SELECT count(*) FROM users").getInt(), 1);
  EXPECT_EQ(d.sql().execAndGet("PRAGMA synchronous").getInt(), 2);
  EXPECT_TRUE(d.syncWal());

  // A failed body rolls back as in transaction(), and the mode is restored too.
  Status s = d.transactionUnsynced([&] {
    d.sql().exec("INSERT INTO users(user_id, created_at) VALUES('bob', 1)");
    return Status::error(ErrorCode::kConflict, "no");
  });
  EXPECT_EQ(s.code(), ErrorCode::kConflict);
  EXPECT_EQ(other.execAndGet("SELECT count(*) FROM users").getInt(), 1);
  EXPECT_EQ(d.sql().execAndGet("PRAGMA synchronous").getInt(), 2);

  // Inside a durable transaction it simply joins it.
  ASSERT_TRUE(d.transaction([&] {
    return d.transactionUnsynced([&] {
      d.sql().exec("INSERT INTO users(user_id, created_at) VALUES('carol', 1)");
      return Status::ok();
    });
  }));
  EXPECT_EQ(other.execAndGet("SELECT count(*) FROM users").getInt(), 2);
}

}  // namespace
}  // namespace hearth
