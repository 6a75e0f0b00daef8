#include "backup/backup.h"

#include <Poco/DateTime.h>
#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeFormatter.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/SHA2Engine.h>
#include <Poco/StreamCopier.h>
#include <Poco/Timestamp.h>
#include <Poco/Zip/Compress.h>
#include <Poco/Zip/ZipArchive.h>
#include <Poco/Zip/ZipStream.h>
#include <SQLiteCpp/Backup.h>
#include <SQLiteCpp/SQLiteCpp.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <cstdlib>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <thread>

#include "store/database.h"

namespace hearth::backup {
namespace fs = std::filesystem;

namespace {

Status internal(const std::string& m) { return Status::error(ErrorCode::kInternal, m); }

// ENOSPC/EDQUOT become STORAGE_FULL, so that a scheduled backup on a full disk says so.
Status ioError(const std::string& what, int err) {
  if (err == ENOSPC || err == EDQUOT) {
    return Status::error(ErrorCode::kStorageFull, what + ": " + std::strerror(err));
  }
  return internal(what + (err ? std::string(": ") + std::strerror(err) : ""));
}

std::string hexDigest(Poco::DigestEngine& engine) {
  return Poco::DigestEngine::digestToHex(engine.digest());
}

std::string hashString(const std::string& s) {
  Poco::SHA2Engine sha;
  sha.update(s);
  return hexDigest(sha);
}

bool fsyncPath(const fs::path& p, bool directory) {
  int fd = ::open(p.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

std::string randomSuffix() {
  std::random_device rd;
  std::ostringstream out;
  out << std::hex << rd() << rd();
  return out.str();
}

std::string timeStamp(int64_t nowMs) {
  Poco::Timestamp ts(static_cast<Poco::Timestamp::TimeVal>(nowMs) * 1000);
  return Poco::DateTimeFormatter::format(ts, "%Y%m%dT%H%M%SZ");
}

// Files of the state directory to back up, relative names, in a stable order.
Result<std::vector<std::string>> stateFiles(const Sources& src) {
  std::vector<std::string> out;
  std::error_code ec;
  fs::path root(src.stateDir);
  std::vector<fs::path> excluded;
  for (const auto& e : src.exclude) excluded.push_back(fs::weakly_canonical(e, ec));
  auto it = fs::recursive_directory_iterator(root, fs::directory_options::none, ec);
  if (ec) return ioError("cannot list " + root.string(), ec.value());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) return ioError("cannot list " + root.string(), ec.value());
    const fs::path& p = it->path();
    fs::path rel = p.lexically_relative(root);
    std::string top = rel.begin()->string();
    bool skip = top.rfind(kPreRestorePrefix, 0) == 0 || top.rfind(".tmp-", 0) == 0 ||
                (it.depth() == 0 && top.rfind(kDbName, 0) == 0);
    fs::path canon = fs::weakly_canonical(p, ec);
    for (const auto& x : excluded) skip = skip || canon == x;
    if (skip) {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (it->is_symlink(ec) || !it->is_regular_file(ec)) continue;  // sockets, FIFOs, links
    out.push_back(rel.generic_string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// A consistent copy of the live database, through SQLite's online backup API.
// Runs as the database file's owner while alive (when root and the owner is another user):
// a read-only connection may have to create the -shm (and leaves a -wal after a crash in place),
// and a root-owned -shm is one the hub's own user could not open later.
class AsFileOwner {
 public:
  explicit AsFileOwner(const fs::path& file) {
    struct stat st {};
    if (::geteuid() != 0 || ::stat(file.c_str(), &st) != 0 || st.st_uid == 0) return;
    if (::setegid(st.st_gid) != 0) return;
    if (::seteuid(st.st_uid) != 0) {
      if (::setegid(0) != 0) std::abort();  // cannot get root's group back: a broken invariant
      return;
    }
    switched_ = true;
  }
  ~AsFileOwner() {
    if (!switched_) return;
    // Back to root; failing would leave hearthctl running as another user (a broken invariant).
    if (::seteuid(0) != 0 || ::setegid(0) != 0) std::abort();
  }
  AsFileOwner(const AsFileOwner&) = delete;
  AsFileOwner& operator=(const AsFileOwner&) = delete;

 private:
  bool switched_ = false;
};

// A consistent copy of the live database, through SQLite's online backup API, from a read-only
// connection. Not `immutable`: after a crash the WAL holds committed changes the copy needs.
Result<std::string> snapshotDatabase(const fs::path& db, const fs::path& copy, bool hubRunning) {
  try {
    std::optional<AsFileOwner> owner;
    if (!hubRunning) owner.emplace(db);
    std::string uri = "file:";
    for (char c : db.string()) {
      if (c == '%' || c == '?' || c == '#') {
        char buf[4];
        std::snprintf(buf, sizeof(buf), "%%%02X", static_cast<unsigned char>(c));
        uri += buf;
      } else {
        uri += c;
      }
    }
    uri += "?mode=ro";
    SQLite::Database src(uri, SQLite::OPEN_READONLY | SQLite::OPEN_URI);
    owner.reset();  // the copy is written as the caller
    src.exec("PRAGMA busy_timeout=5000");
    SQLite::Database dst(copy.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    SQLite::Backup b(dst, src);
    int rc;
    do {
      rc = b.executeStep(-1);  // all pages under one read transaction: one snapshot
      if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    } while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
    // The copy is a single file: no WAL beside it in the archive.
    dst.exec("PRAGMA journal_mode=DELETE");
    return dst.execAndGet("PRAGMA quick_check").getString();
  } catch (const SQLite::Exception& e) {
    if (e.getErrorCode() == SQLITE_FULL) {
      return Status::error(ErrorCode::kStorageFull,
                           std::string("copying the database: ") + e.what());
    }
    return internal("copying the database " + db.string() + ": " + e.what());
  }
}

Poco::JSON::Object manifestJson(const Manifest& m) {
  Poco::JSON::Object o;
  o.set("format", m.format);
  o.set("hearthVersion", m.hearthVersion);
  o.set("schemaVersion", m.schemaVersion);
  o.set("createdAt", m.createdAtMs);
  o.set("stateDir", m.stateDir);
  o.set("dynsecFile", m.dynsecFile);
  o.set("integrity", m.integrity);
  Poco::JSON::Array::Ptr files = new Poco::JSON::Array;
  for (const auto& f : m.files) {
    Poco::JSON::Object::Ptr e = new Poco::JSON::Object;
    e->set("name", f.name);
    e->set("size", f.size);
    e->set("sha256", f.sha256);
    files->add(e);
  }
  o.set("files", files);
  return o;
}

// "0.1.0" -> {0,1,0}; anything unparsable compares as very new.
std::vector<int> versionParts(const std::string& v) {
  std::vector<int> parts;
  std::istringstream in(v);
  std::string p;
  while (std::getline(in, p, '.')) {
    try {
      parts.push_back(std::stoi(p));
    } catch (const std::exception&) {
      return {INT32_MAX};
    }
  }
  return parts;
}

bool safeEntryName(const std::string& n) {
  if (n.empty() || n.front() == '/' || n.find('\\') != std::string::npos) return false;
  for (const auto& part : fs::path(n)) {
    if (part == ".." || part == ".") return false;
  }
  return true;
}

// Writes content to path atomically (temporary file, fsync, rename), owned like `like`.
Status writeAtomically(const fs::path& path, const std::string& content, const struct stat* like,
                       mode_t mode) {
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  fs::path tmp = path.parent_path() / (".tmp-" + randomSuffix());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return ioError("cannot create " + tmp.string(), errno);
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0) {
      int err = errno;
      ::close(fd);
      fs::remove(tmp, ec);
      return ioError("cannot write " + path.string(), err);
    }
    off += static_cast<size_t>(n);
  }
  if (like && geteuid() == 0 && ::fchown(fd, like->st_uid, like->st_gid) != 0) {
    int err = errno;
    ::close(fd);
    fs::remove(tmp, ec);
    return ioError("cannot give " + path.string() + " its owner", err);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int err = errno;
    fs::remove(tmp, ec);
    return ioError("cannot write " + path.string(), err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    fs::remove(tmp, ec);
    return ioError("cannot rename into " + path.string(), err);
  }
  fsyncPath(path.parent_path(), true);
  return Status::ok();
}

struct Archive {
  Manifest manifest;
  std::map<std::string, std::string> entries;  // name -> content
};

// Reads and checks a whole archive. Backups are small (a hub's database is kilobytes to a few
// megabytes), so the entries are checked in memory and written only once all of them passed.
Result<Archive> readArchive(const std::string& path) {
  Archive a;
  std::ifstream in(path, std::ios::binary);
  if (!in) return ioError("cannot read " + path, errno);
  try {
    Poco::Zip::ZipArchive zip(in);
    for (auto it = zip.headerBegin(); it != zip.headerEnd(); ++it) {
      if (it->second.isDirectory()) continue;
      if (!safeEntryName(it->first)) {
        return internal(path + ": entry '" + it->first + "' has an unsafe name; not restoring");
      }
      Poco::Zip::ZipInputStream zin(in, it->second, true);
      std::ostringstream content;
      Poco::StreamCopier::copyStream(zin, content);
      a.entries[it->first] = content.str();
    }
  } catch (const std::exception& e) {
    return internal(path + " is not a readable hearth backup (zip): " + e.what());
  }
  auto m = a.entries.find(kManifestName);
  if (m == a.entries.end()) return internal(path + " has no " + kManifestName + ": not a backup");
  try {
    auto o = Poco::JSON::Parser().parse(m->second).extract<Poco::JSON::Object::Ptr>();
    Manifest& man = a.manifest;
    man.format = o->getValue<int>("format");
    man.hearthVersion = o->getValue<std::string>("hearthVersion");
    man.schemaVersion = o->getValue<int>("schemaVersion");
    man.createdAtMs = o->getValue<int64_t>("createdAt");
    man.stateDir = o->optValue<std::string>("stateDir", "");
    man.dynsecFile = o->optValue<std::string>("dynsecFile", "");
    man.integrity = o->optValue<std::string>("integrity", "");
    auto files = o->getArray("files");
    for (size_t i = 0; files && i < files->size(); ++i) {
      auto f = files->getObject(static_cast<unsigned>(i));
      man.files.push_back({f->getValue<std::string>("name"), f->getValue<uint64_t>("size"),
                           f->getValue<std::string>("sha256")});
    }
  } catch (const std::exception& e) {
    return internal(path + ": unreadable manifest: " + e.what());
  }
  return a;
}

Status checkArchive(const std::string& path, const Archive& a) {
  const Manifest& m = a.manifest;
  const std::string ours = HEARTH_VERSION;
  if (m.format > kFormat) {
    return Status::error(ErrorCode::kConflict,
                         path + " is backup format " + std::to_string(m.format) +
                             ", newer than this hearthd reads (" + std::to_string(kFormat) +
                             "): restore it with hearthd " + m.hearthVersion + " or newer");
  }
  if (versionParts(m.hearthVersion) > versionParts(ours) ||
      m.schemaVersion > Database::latestVersion()) {
    return Status::error(ErrorCode::kConflict,
                         path + " was made by hearthd " + m.hearthVersion + " (database schema " +
                             std::to_string(m.schemaVersion) + "), newer than this hearthd " +
                             ours + " (schema " + std::to_string(Database::latestVersion()) +
                             "): restore it with hearthd " + m.hearthVersion + " or newer");
  }
  std::map<std::string, const FileEntry*> listed;
  for (const auto& f : m.files) {
    if (!safeEntryName(f.name)) return internal(path + ": unsafe name '" + f.name + "'");
    listed[f.name] = &f;
    auto e = a.entries.find(f.name);
    if (e == a.entries.end()) return internal(path + ": entry " + f.name + " is missing");
    std::string actual = hashString(e->second);
    if (e->second.size() != f.size || actual != f.sha256) {
      return internal(
          path + ": entry " + f.name + " does not match its checksum (manifest sha256 " + f.sha256 +
          ", " + std::to_string(f.size) + " bytes; archive sha256 " + actual + ", " +
          std::to_string(e->second.size()) + " bytes): the backup is damaged, use another one");
    }
  }
  for (const auto& [name, content] : a.entries) {
    if (name != kManifestName && !listed.count(name)) {
      return internal(path + ": entry " + name + " is not in the manifest: the backup is damaged");
    }
  }
  if (!listed.count(kDbEntry)) return internal(path + ": no database in the backup");
  return Status::ok();
}

}  // namespace

std::string scheduledName(int64_t nowMs) { return "hearth-" + timeStamp(nowMs) + ".zip"; }

Result<Manifest> create(const Sources& src, const std::string& outPath, int64_t nowMs) {
  fs::path out = fs::absolute(outPath);
  fs::path dbPath = fs::path(src.stateDir) / kDbName;
  std::error_code ec;
  if (!fs::exists(dbPath, ec)) return internal("no hub database at " + dbPath.string());
  fs::create_directories(out.parent_path(), ec);
  const std::string suffix = randomSuffix();
  fs::path dbCopy = out.parent_path() / (".tmp-" + suffix + ".db");
  fs::path zipTmp = out.parent_path() / (".tmp-" + suffix + ".zip");
  struct Cleanup {
    fs::path a, b;
    ~Cleanup() {
      std::error_code e;
      fs::remove(a, e);
      fs::remove(fs::path(a.string() + "-journal"), e);
      fs::remove(b, e);
    }
  } cleanup{dbCopy, zipTmp};

  Manifest m;
  m.hearthVersion = HEARTH_VERSION;
  m.createdAtMs = nowMs;
  m.stateDir = src.stateDir;
  m.dynsecFile = src.dynsecFile;
  bool hubRunning = !StateLock::acquire(src.stateDir).isOk() || src.hubRunning;
  auto integrity = snapshotDatabase(dbPath, dbCopy, hubRunning);
  if (!integrity) return integrity.status();
  m.integrity = integrity.value();
  if (m.integrity != "ok") {
    return internal("the database copy failed its check (" + m.integrity +
                    "): not writing a backup of a damaged database");
  }
  try {
    SQLite::Database copy(dbCopy.string(), SQLite::OPEN_READONLY);
    m.schemaVersion = copy.execAndGet("PRAGMA user_version").getInt();
  } catch (const std::exception& e) {
    return internal(std::string("reading the database copy: ") + e.what());
  }
  auto files = stateFiles(src);
  if (!files) return files.status();

  std::vector<std::pair<fs::path, std::string>> add;  // file, entry name
  add.emplace_back(dbCopy, kDbEntry);
  for (const auto& rel : files.value())
    add.emplace_back(fs::path(src.stateDir) / rel, kStatePrefix + rel);
  if (!src.dynsecFile.empty()) add.emplace_back(src.dynsecFile, kBrokerEntry);
  try {
    std::ofstream zipOut(zipTmp, std::ios::binary | std::ios::trunc);
    if (!zipOut) return ioError("cannot create " + zipTmp.string(), errno);
    Poco::Zip::Compress zip(zipOut, true);
    for (const auto& [file, name] : add) {
      // Each file is read once into memory, hashed and archived from there: the checksum is of
      // the bytes archived, even if a plugin rewrites its file meanwhile. (State files are
      // small; the database copy is ours and is hashed the same way.)
      std::ifstream in(file, std::ios::binary);
      if (!in) return ioError("cannot read " + file.string(), errno);
      std::ostringstream content;
      Poco::StreamCopier::copyStream(in, content);
      if (in.bad()) return ioError("cannot read " + file.string(), errno);
      std::string bytes = content.str();
      m.files.push_back({name, bytes.size(), hashString(bytes)});
      std::istringstream data(bytes);
      zip.addFile(data, Poco::DateTime(), Poco::Path(name, Poco::Path::PATH_UNIX));
    }
    std::ostringstream manifest;
    manifestJson(m).stringify(manifest, 2);
    std::istringstream mdata(manifest.str());
    zip.addFile(mdata, Poco::DateTime(), Poco::Path(kManifestName, Poco::Path::PATH_UNIX));
    zip.close();
    zipOut.flush();
    if (!zipOut) return ioError("cannot write " + zipTmp.string(), errno);
    zipOut.close();
    if (zipOut.fail()) return ioError("cannot write " + zipTmp.string(), errno);
  } catch (const std::exception& e) {
    int err = errno;
    return ioError("writing " + zipTmp.string() + " (" + e.what() + ")", err);
  }
  if (!fsyncPath(zipTmp, false)) return ioError("cannot sync " + zipTmp.string(), errno);
  if (::rename(zipTmp.c_str(), out.c_str()) != 0) {
    return ioError("cannot rename into " + out.string(), errno);
  }
  fsyncPath(out.parent_path(), true);
  return m;
}

Result<Manifest> verify(const std::string& path) {
  auto a = readArchive(path);
  if (!a) return a.status();
  if (Status s = checkArchive(path, a.value()); !s) return s;
  return a.value().manifest;
}

Result<std::string> restore(const std::string& path, const RestoreTargets& t, int64_t nowMs) {
  auto read = readArchive(path);
  if (!read) return read.status();
  const Archive& a = read.value();
  if (Status s = checkArchive(path, a); !s) return s;
  std::ostringstream report;
  std::error_code ec;
  fs::path root = fs::absolute(t.stateDir);
  fs::create_directories(root, ec);
  if (ec) return ioError("cannot create " + root.string(), ec.value());
  struct stat rootStat {};
  if (::stat(root.c_str(), &rootStat) != 0) return ioError("cannot stat " + root.string(), errno);

  // Move the current contents aside: a restore never deletes anything.
  const std::string stamp = timeStamp(nowMs);
  fs::path aside = root / (kPreRestorePrefix + stamp);
  std::vector<fs::path> keep;
  for (const auto& k : t.keep) keep.push_back(fs::weakly_canonical(k, ec));
  size_t moved = 0;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    std::string name = e.path().filename().string();
    if (name.rfind(kPreRestorePrefix, 0) == 0) continue;
    fs::path canon = fs::weakly_canonical(e.path(), ec);
    if (std::find(keep.begin(), keep.end(), canon) != keep.end()) continue;
    // The archive being restored may live in the state directory (a scheduled backup).
    if (canon == fs::weakly_canonical(path, ec)) continue;
    fs::create_directories(aside, ec);
    fs::rename(e.path(), aside / name, ec);
    if (ec) return ioError("cannot move " + e.path().string() + " aside", ec.value());
    ++moved;
  }
  if (moved > 0)
    report << "moved the previous contents of " << root.string() << " to " << aside.string()
           << "\n";

  size_t restored = 0;
  for (const auto& f : a.manifest.files) {
    const std::string& content = a.entries.at(f.name);
    fs::path target;
    mode_t mode = 0600;
    if (f.name == kDbEntry) {
      target = root / kDbName;
    } else if (f.name.rfind(kStatePrefix, 0) == 0) {
      target = root / f.name.substr(std::strlen(kStatePrefix));
    } else {
      continue;  // the broker entry, below
    }
    if (Status s = writeAtomically(target, content, &rootStat, mode); !s) return s;
    if (geteuid() == 0) {
      // Directories made on the way belong to the state directory's owner too.
      for (fs::path d = target.parent_path(); d != root && d.string().size() > root.string().size();
           d = d.parent_path()) {
        if (::chown(d.c_str(), rootStat.st_uid, rootStat.st_gid) != 0) break;
      }
    }
    ++restored;
  }
  report << "restored the hub database and " << (restored - 1) << " state files into "
         << root.string() << "\n";

  auto broker = a.entries.find(kBrokerEntry);
  if (broker != a.entries.end()) {
    if (t.dynsecFile.empty()) {
      report << "NOT restored: the broker accounts (broker.dynsec_file is not set); users will "
                "need new passwords\n";
    } else {
      fs::path target(t.dynsecFile);
      struct stat like {};
      bool exists = ::stat(target.c_str(), &like) == 0;
      if (!exists && ::stat(target.parent_path().c_str(), &like) != 0) {
        return ioError("cannot reach " + target.parent_path().string(), errno);
      }
      if (exists) {
        fs::path old = target.string() + "." + kPreRestorePrefix + stamp;
        fs::copy_file(target, old, fs::copy_options::overwrite_existing, ec);
        if (ec) return ioError("cannot keep a copy of " + target.string(), ec.value());
        report << "kept the broker's previous accounts as " << old.string() << "\n";
      }
      mode_t mode = exists ? (like.st_mode & 07777) : 0600;
      if (Status s = writeAtomically(target, broker->second, &like, mode); !s) return s;
      report << "restored the broker accounts into " << target.string() << "\n";
    }
  } else {
    report << "the backup has no broker accounts (it was taken without broker.dynsec_file)\n";
  }
  return report.str();
}

std::vector<std::string> list(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (name.rfind("hearth-", 0) == 0 && e.path().extension() == ".zip" && e.is_regular_file(ec)) {
      out.push_back(e.path().string());
    }
  }
  std::sort(out.rbegin(), out.rend());  // the time in the name sorts
  return out;
}

std::optional<std::string> newestGood(const std::string& dir) {
  for (const auto& f : list(dir)) {
    if (verify(f)) return f;
  }
  return std::nullopt;
}

Status prune(const std::string& dir, int keep) {
  auto all = list(dir);
  for (size_t i = static_cast<size_t>(std::max(keep, 0)); i < all.size(); ++i) {
    std::error_code ec;
    fs::remove(all[i], ec);
    if (ec) return ioError("cannot delete " + all[i], ec.value());
  }
  return Status::ok();
}

Result<StateLock> StateLock::acquire(const std::string& stateDir, int waitMs) {
  // The directory itself is locked: no lock file that a root-run hearthctl could create with
  // an owner the hub's user cannot open.
  fs::path p(stateDir);
  int fd = ::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ioError("cannot open " + p.string(), errno);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(waitMs);
  while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK || std::chrono::steady_clock::now() >= deadline) {
      ::close(fd);
      return Status::error(ErrorCode::kConflict,
                           "hearthd is running on " + stateDir + " (it holds a lock on it)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return StateLock(fd);
}

StateLock& StateLock::operator=(StateLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

StateLock::~StateLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace hearth::backup
