// Backups (backup::create / verify / restore / prune, the state lock) on real files and a real
// SQLite database, and the store's full-disk handling: a write refused for lack of space is
// STORAGE_FULL, reported once, and cleared by the next write that succeeds. The full disk is
// SQLite's own: PRAGMA max_page_count makes the next page allocation fail with SQLITE_FULL.

#include "backup/backup.h"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/StreamCopier.h>
#include <Poco/Zip/Compress.h>
#include <Poco/Zip/ZipArchive.h>
#include <Poco/Zip/ZipStream.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "loop/clock.h"
#include "loop/hub_loop.h"
#include "store/database.h"
#include "store/storage_monitor.h"

namespace hearth {
namespace {
namespace fs = std::filesystem;

constexpr int64_t kNow = 1764581400000;  // 2025-12-01T09:30:00Z

std::string readFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void writeFile(const fs::path& p, const std::string& content) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << content;
}

// Rewrites a zip, letting `edit` change (or drop, by returning nullopt) each entry.
void rewriteZip(
    const fs::path& from, const fs::path& to,
    const std::function<std::optional<std::string>(const std::string&, std::string)>& edit) {
  std::map<std::string, std::string> entries;
  {
    std::ifstream in(from, std::ios::binary);
    Poco::Zip::ZipArchive zip(in);
    for (auto it = zip.headerBegin(); it != zip.headerEnd(); ++it) {
      if (it->second.isDirectory()) continue;
      Poco::Zip::ZipInputStream zin(in, it->second, true);
      std::ostringstream c;
      Poco::StreamCopier::copyStream(zin, c);
      entries[it->first] = c.str();
    }
  }
  std::ofstream out(to, std::ios::binary | std::ios::trunc);
  Poco::Zip::Compress zip(out, true);
  for (auto& [name, content] : entries) {
    auto edited = edit(name, content);
    if (!edited) continue;
    std::istringstream data(*edited);
    zip.addFile(data, Poco::DateTime(), Poco::Path(name, Poco::Path::PATH_UNIX));
  }
  zip.close();
}

class BackupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hearth-backup-XXXXXX";
    root_ = mkdtemp(tmpl);
    state_ = root_ / "state";
    fs::create_directories(state_);
    auto db = Database::open((state_ / "hearth.db").string());
    ASSERT_TRUE(db) << db.status().toString();
    db_ = std::move(db).value();
    db_->sql().exec("INSERT INTO users VALUES('alice', 1), ('bob', 2)");
    writeFile(state_ / "web" / "ca.pem", "-----BEGIN CERTIFICATE-----\nCA\n");
    writeFile(state_ / "plugin.state", "kept");
    writeFile(state_ / "backups" / "hearth-20250101T000000Z.zip", "an older backup");
    writeFile(root_ / "broker" / "dynamic-security.json", R"({"clients":[{"username":"alice"}]})");
  }
  void TearDown() override {
    db_.reset();
    fs::remove_all(root_);
  }

  backup::Sources sources() const {
    backup::Sources s;
    s.stateDir = state_.string();
    s.dynsecFile = (root_ / "broker" / "dynamic-security.json").string();
    s.exclude.push_back((state_ / "backups").string());
    return s;
  }

  fs::path root_, state_;
  std::unique_ptr<Database> db_;
};

TEST_F(BackupTest, HoldsTheDatabaseTheStateFilesAndTheBrokerAccountsWithChecksums) {
  fs::path out = root_ / "out" / "b.zip";
  auto m = backup::create(sources(), out.string(), kNow);
  ASSERT_TRUE(m) << m.status().toString();
  EXPECT_EQ(m.value().hearthVersion, HEARTH_VERSION);
  EXPECT_EQ(m.value().schemaVersion, Database::latestVersion());
  EXPECT_EQ(m.value().integrity, "ok");
  std::vector<std::string> names;
  for (const auto& f : m.value().files) {
    names.push_back(f.name);
    EXPECT_EQ(f.sha256.size(), 64u) << f.name;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"db/hearth.db", "state/plugin.state",
                                             "state/web/ca.pem", "broker/dynamic-security.json"}));
  // Nothing temporary is left beside it.
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(out.parent_path())) files += e.is_regular_file();
  EXPECT_EQ(files, 1u);
  auto v = backup::verify(out.string());
  ASSERT_TRUE(v) << v.status().toString();
}

TEST_F(BackupTest, TheDatabaseCopyIsOneSnapshotEvenWithUncheckpointedWrites) {
  // Rows still in the WAL of the live connection are in the copy.
  db_->sql().exec("INSERT INTO users VALUES('carol', 3)");
  fs::path out = root_ / "b.zip";
  ASSERT_TRUE(backup::create(sources(), out.string(), kNow));
  db_.reset();
  fs::remove_all(state_);
  fs::create_directories(state_);
  backup::RestoreTargets t;
  t.stateDir = state_.string();
  auto r = backup::restore(out.string(), t, kNow);
  ASSERT_TRUE(r) << r.status().toString();
  auto db = Database::open((state_ / "hearth.db").string());
  ASSERT_TRUE(db) << db.status().toString();
  EXPECT_EQ(db.value()->sql().execAndGet("SELECT count(*) FROM users").getInt(), 3);
}

TEST_F(BackupTest, RestoreReplacesTheStateAndKeepsWhatWasThere) {
  fs::path out = root_ / "b.zip";
  ASSERT_TRUE(backup::create(sources(), out.string(), kNow));
  db_.reset();
  writeFile(state_ / "plugin.state", "changed since");
  writeFile(state_ / "new.file", "made after the backup");
  fs::path dynsec = root_ / "broker" / "dynamic-security.json";
  writeFile(dynsec, "{}");
  backup::RestoreTargets t;
  t.stateDir = state_.string();
  t.dynsecFile = dynsec.string();
  t.keep.push_back((state_ / "backups").string());
  auto r = backup::restore(out.string(), t, kNow);
  ASSERT_TRUE(r) << r.status().toString();
  EXPECT_EQ(readFile(state_ / "plugin.state"), "kept");
  EXPECT_EQ(readFile(state_ / "web" / "ca.pem"), "-----BEGIN CERTIFICATE-----\nCA\n");
  EXPECT_FALSE(fs::exists(state_ / "new.file"));
  EXPECT_EQ(readFile(dynsec), R"({"clients":[{"username":"alice"}]})");
  // Nothing deleted: the old contents and the old broker file are kept aside.
  fs::path aside = state_ / "pre-restore-20251201T093000Z";
  EXPECT_EQ(readFile(aside / "new.file"), "made after the backup");
  EXPECT_EQ(readFile(aside / "plugin.state"), "changed since");
  EXPECT_EQ(readFile(dynsec.string() + ".pre-restore-20251201T093000Z"), "{}");
  EXPECT_TRUE(fs::exists(state_ / "backups" / "hearth-20250101T000000Z.zip"));  // kept in place
  EXPECT_NE(r.value().find("restored the broker accounts"), std::string::npos) << r.value();
}

TEST_F(BackupTest, ADamagedEntryIsNamedAndNothingIsRestored) {
  fs::path out = root_ / "b.zip", bad = root_ / "bad.zip";
  ASSERT_TRUE(backup::create(sources(), out.string(), kNow));
  rewriteZip(out, bad, [](const std::string& name, std::string c) -> std::optional<std::string> {
    if (name == "state/plugin.state") c[0] ^= 1;
    return c;
  });
  auto v = backup::verify(bad.string());
  ASSERT_FALSE(v);
  EXPECT_NE(v.status().message().find("entry state/plugin.state does not match its checksum"),
            std::string::npos)
      << v.status().message();
  writeFile(state_ / "plugin.state", "current");
  backup::RestoreTargets t;
  t.stateDir = state_.string();
  EXPECT_FALSE(backup::restore(bad.string(), t, kNow));
  EXPECT_EQ(readFile(state_ / "plugin.state"), "current");
  EXPECT_FALSE(fs::exists(state_ / "pre-restore-20251201T093000Z"));
}

TEST_F(BackupTest, NewerVersionsMissingOrChangedEntriesAndUnsafeNamesAreRefused) {
  fs::path out = root_ / "b.zip";
  ASSERT_TRUE(backup::create(sources(), out.string(), kNow));
  auto manifestEdit = [](const std::function<void(Poco::JSON::Object&)>& f) {
    return [f](const std::string& name, std::string c) -> std::optional<std::string> {
      if (name != "manifest.json") return c;
      auto o = Poco::JSON::Parser().parse(c).extract<Poco::JSON::Object::Ptr>();
      f(*o);
      std::ostringstream s;
      o->stringify(s);
      return s.str();
    };
  };
  struct Case {
    std::string what;
    std::function<std::optional<std::string>(const std::string&, std::string)> edit;
    std::string expected;
  };
  std::vector<Case> cases = {
      {"newer hearthd",
       manifestEdit([](Poco::JSON::Object& o) { o.set("hearthVersion", "99.1.0"); }),
       "was made by hearthd 99.1.0"},
      {"newer schema", manifestEdit([](Poco::JSON::Object& o) { o.set("schemaVersion", 999); }),
       "(database schema 999), newer than this hearthd"},
      {"newer format", manifestEdit([](Poco::JSON::Object& o) { o.set("format", 2); }),
       "is backup format 2, newer"},
      {"missing entry",
       [](const std::string& n, std::string c) -> std::optional<std::string> {
         if (n == "state/web/ca.pem") return std::nullopt;
         return c;
       },
       "entry state/web/ca.pem is missing"},
      {"changed entry",
       [](const std::string& n, std::string c) -> std::optional<std::string> {
         if (n == "state/plugin.state") return std::string("x");
         return c;
       },
       "does not match its checksum"},
      {"no manifest",
       [](const std::string& n, std::string c) -> std::optional<std::string> {
         if (n == "manifest.json") return std::nullopt;
         return c;
       },
       "has no manifest.json"},
  };
  for (const auto& c : cases) {
    fs::path bad = root_ / "bad.zip";
    rewriteZip(out, bad, c.edit);
    auto v = backup::verify(bad.string());
    ASSERT_FALSE(v) << c.what;
    EXPECT_NE(v.status().message().find(c.expected), std::string::npos)
        << c.what << ": " << v.status().message();
  }
  // A name that climbs out of the state directory (zip slip) is refused before anything. POCO
  // will not write such a name, so the bytes of an archive are patched: "state/xx/evil" becomes
  // "state/../evil" in the local header and the central directory.
  fs::path slip = root_ / "slip.zip";
  {
    std::ofstream o(slip, std::ios::binary);
    Poco::Zip::Compress zip(o, true);
    std::istringstream data("evil");
    zip.addFile(data, Poco::DateTime(), Poco::Path("state/xx/evil", Poco::Path::PATH_UNIX));
    zip.close();
  }
  std::string bytes = readFile(slip);
  size_t patched = 0;
  for (size_t at = bytes.find("state/xx/evil"); at != std::string::npos;
       at = bytes.find("state/xx/evil", at)) {
    bytes.replace(at, 13, "state/../evil");
    ++patched;
  }
  ASSERT_GE(patched, 2u);
  writeFile(slip, bytes);
  auto v = backup::verify(slip.string());
  ASSERT_FALSE(v);
  EXPECT_NE(v.status().message().find("unsafe name"), std::string::npos) << v.status().message();
  EXPECT_FALSE(fs::exists(root_ / "evil"));
  fs::path notZip = root_ / "not.zip";
  writeFile(notZip, "hello");
  EXPECT_FALSE(backup::verify(notZip.string()));
}

TEST_F(BackupTest, PruneKeepsTheNewestAndNewestGoodSkipsDamagedOnes) {
  fs::path dir = root_ / "sched";
  for (int64_t day = 0; day < 4; ++day) {
    std::string name = backup::scheduledName(kNow + day * 86400000);
    ASSERT_TRUE(backup::create(sources(), (dir / name).string(), kNow + day * 86400000));
  }
  EXPECT_EQ(backup::scheduledName(kNow), "hearth-20251201T093000Z.zip");
  auto all = backup::list(dir.string());
  ASSERT_EQ(all.size(), 4u);
  EXPECT_NE(all.front().find("20251204"), std::string::npos);  // newest first
  ASSERT_TRUE(backup::prune(dir.string(), 2));
  all = backup::list(dir.string());
  ASSERT_EQ(all.size(), 2u);
  EXPECT_NE(all.back().find("20251203"), std::string::npos);
  writeFile(all.front(), "damaged");
  EXPECT_EQ(backup::newestGood(dir.string()), all.back());
}

TEST_F(BackupTest, TheStateLockIsExclusive) {
  auto first = backup::StateLock::acquire(state_.string());
  ASSERT_TRUE(first) << first.status().toString();
  auto second = backup::StateLock::acquire(state_.string(), 200);
  ASSERT_FALSE(second);
  EXPECT_NE(second.status().message().find("hearthd is running on"), std::string::npos);
  first = backup::StateLock();  // released
  EXPECT_TRUE(backup::StateLock::acquire(state_.string()));
}

// --- full disk ----------------------------------------------------------------------------------

class NullLogger : public Logger {
 public:
  void log(LogLevel level, std::string_view message) override {
    lines.emplace_back(std::string(level == LogLevel::kError ? "E " : "I ") + std::string(message));
  }
  std::vector<std::string> lines;
};

TEST_F(BackupTest, AFullDiskIsStorageFullReportedOnceAndClearedByTheNextWrite) {
  SystemClock clock;
  HubLoop loop(clock);
  NullLogger logger;
  int changes = 0;
  StorageMonitor monitor(*db_, loop, clock, logger, [&] { ++changes; });
  int pages = db_->sql().execAndGet("PRAGMA page_count").getInt();
  db_->sql().exec("PRAGMA max_page_count=" + std::to_string(pages));
  std::string big(64 * 1024, 'x');
  auto put = [&](const std::string& key) {
    return db_->transaction([&] {
      SQLite::Statement st(db_->sql(), "INSERT INTO plugin_kv VALUES('t', 'c', ?, ?)");
      st.bind(1, key);
      st.bind(2, big);
      st.exec();
      return Status::ok();
    });
  };
  for (int i = 0; i < 5; ++i) {
    Status s = put("k" + std::to_string(i));
    ASSERT_EQ(s.code(), ErrorCode::kStorageFull) << s.toString();
    EXPECT_STREQ(errorCodeName(s.code()), "STORAGE_FULL");
  }
  EXPECT_TRUE(db_->storageFull());
  EXPECT_TRUE(monitor.full());
  EXPECT_EQ(changes, 1);
  size_t errors = 0;
  for (const auto& l : logger.lines) errors += l.rfind("E storage full:", 0) == 0;
  EXPECT_EQ(errors, 1u);
  Poco::JSON::Object status;
  monitor.fillStatus(status);
  EXPECT_EQ(status.getObject("storage")->getValue<std::string>("state"), "full");
  // Nothing was written, reads work.
  EXPECT_EQ(db_->sql().execAndGet("SELECT count(*) FROM plugin_kv").getInt(), 0);
  EXPECT_EQ(db_->sql().execAndGet("SELECT count(*) FROM users").getInt(), 2);
  // Space again: the next write succeeds and clears the state, once.
  db_->sql().exec("PRAGMA max_page_count=1000000");
  ASSERT_TRUE(put("k"));
  EXPECT_FALSE(db_->storageFull());
  EXPECT_FALSE(monitor.full());
  EXPECT_EQ(changes, 2);
  Poco::JSON::Object after;
  monitor.fillStatus(after);
  EXPECT_EQ(after.getObject("storage")->getValue<std::string>("state"), "ok");
  // Other failures stay INTERNAL and do not mark the store full.
  Status other = db_->transaction([&] {
    db_->sql().exec("INSERT INTO nosuchtable VALUES(1)");
    return Status::ok();
  });
  EXPECT_EQ(other.code(), ErrorCode::kInternal);
  EXPECT_FALSE(db_->storageFull());
}

}  // namespace
}  // namespace hearth
