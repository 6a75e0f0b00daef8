#pragma once
// Backups of the whole hub state, and restoring one (docs/operations.md, "Back up and restore").
//
// A backup is one zip archive (POCO Zip, already a dependency; `unzip -l` lists it):
//   manifest.json                 format, hearthd version, schema version, time, and the size and
//                                 SHA-256 of every other entry
//   db/hearth.db                  the hub database, copied with SQLite's online backup API from
//                                 a read-only connection: one consistent snapshot, taken while
//                                 hearthd keeps writing (WAL readers never block the writer)
//   state/<path>                  every other regular file of the state directory (plugin state,
//                                 the hub CA of the front door, ...), without knowing the plugins
//   broker/dynamic-security.json  the broker's Dynamic Security file (users and their password
//                                 hashes), when broker.dynsec_file is set
// The archive is written to a temporary file beside its destination, synced and renamed, so a
// crash or a full disk never leaves a half-written backup under the final name.
//
// Consistency across the three sources: the database is copied first, then the broker file.
// hearthd creates a broker account before it records the user and removes the record after
// the account, so every user in the copied database has its account in the later broker file.

#include <optional>
#include <string>
#include <vector>

#include "hearth/status.h"

namespace hearth::backup {

// The manifest format this build writes and the newest it reads.
constexpr int kFormat = 1;
constexpr const char* kManifestName = "manifest.json";
constexpr const char* kDbEntry = "db/hearth.db";
constexpr const char* kBrokerEntry = "broker/dynamic-security.json";
constexpr const char* kStatePrefix = "state/";
// The database (backed up as kDbEntry, its journals not at all), and the prefix of what a
// restore moved aside: neither backed up nor moved again by the next restore.
constexpr const char* kDbName = "hearth.db";
constexpr const char* kPreRestorePrefix = "pre-restore-";

struct FileEntry {
  std::string name;  // entry name in the archive
  uint64_t size = 0;
  std::string sha256;  // lowercase hex
};

struct Manifest {
  int format = kFormat;
  std::string hearthVersion;
  int schemaVersion = 0;
  int64_t createdAtMs = 0;
  std::string stateDir;    // where it was taken from (informative)
  std::string dynsecFile;  // ditto; empty = no broker entry
  std::string integrity;   // PRAGMA quick_check of the copied database ("ok")
  std::vector<FileEntry> files;
};

struct Sources {
  std::string stateDir;
  std::string dynsecFile;            // empty = leave the broker accounts out
  std::vector<std::string> exclude;  // absolute paths inside stateDir to leave out (backup dir)
  bool hubRunning = false;           // the caller is hearthd (it holds the state lock)
};

// Writes a backup of `sources` to outPath (atomically; an existing file is replaced).
// STORAGE_FULL when the destination's disk is full, INTERNAL for anything else unreadable or
// unwritable; either way nothing is left at outPath.
Result<Manifest> create(const Sources& sources, const std::string& outPath, int64_t nowMs);

// Reads the manifest and checks every entry against it, and that this build can restore it.
// The error names what is wrong: the entry whose checksum does not match, the newer version.
Result<Manifest> verify(const std::string& path);

struct RestoreTargets {
  std::string stateDir;
  std::string dynsecFile;         // empty = the archive's broker entry is not restored
  std::vector<std::string> keep;  // absolute paths inside stateDir left in place (backup dir)
};

// Verifies, then replaces the state directory's contents and the broker file with the
// archive's. What was there is moved to <stateDir>/pre-restore-<time>/ (and <dynsecFile>.
// pre-restore-<time>), never deleted. The caller holds the state lock (hearthd is stopped).
// Returns a human summary of what was done.
Result<std::string> restore(const std::string& path, const RestoreTargets& targets, int64_t nowMs);

// The scheduled backups of a directory (hearth-<UTC time>.zip), newest first.
std::vector<std::string> list(const std::string& dir);
// The newest backup in dir that verifies, if any.
std::optional<std::string> newestGood(const std::string& dir);
// Deletes the oldest scheduled backups beyond `keep`.
Status prune(const std::string& dir, int keep);
// "hearth-20261201T093000Z.zip"
std::string scheduledName(int64_t nowMs);

// An exclusive lock (flock) on the state directory itself, held by hearthd while it runs and
// by a restore. waitMs > 0 waits that long for a hub that is stopping. The directory must exist.
class StateLock {
 public:
  static Result<StateLock> acquire(const std::string& stateDir, int waitMs = 0);
  StateLock(StateLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  StateLock& operator=(StateLock&& other) noexcept;
  StateLock(const StateLock&) = delete;
  StateLock& operator=(const StateLock&) = delete;
  StateLock() = default;
  ~StateLock();

 private:
  explicit StateLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace hearth::backup
