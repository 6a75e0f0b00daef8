#pragma once
// BackupScheduler: hearthd's scheduled backups (hub.backup.every / keep / dir). Each backup is
// taken on a worker thread with its own read-only database connection (backup::create, so the
// hub loop keeps serving while pages are copied), then the oldest beyond `keep` are deleted.
// At start the first one is due `every` after the newest already in the directory, so restarts
// neither skip nor repeat a day. Results are logged from the hub loop. Hub loop only.

#include <Poco/JSON/Object.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "backup/backup.h"
#include "config/config.h"
#include "hearth/host.h"
#include "loop/hub_loop.h"

namespace hearth::backup {

// The directory scheduled backups go to: hub.backup.dir, or <state_dir>/backups.
std::string backupDir(const config::HubConfig& cfg);

class BackupScheduler {
 public:
  BackupScheduler(const config::HubConfig& cfg, HubLoop& loop, const Clock& clock, Logger& logger);
  ~BackupScheduler();  // waits for a backup in progress

  void start();
  void reconfigure(const config::HubConfig& cfg);
  // "backup": {"dir", "every", "last", "lastError"?}
  void fillStatus(Poco::JSON::Object& status) const;

 private:
  void arm(std::chrono::milliseconds delay);
  void run();
  void finished(Result<Manifest> r, const std::string& path);

  config::HubConfig cfg_;
  HubLoop& loop_;
  const Clock& clock_;
  Logger& logger_;
  TimerId timer_ = 0;
  std::thread worker_;
  bool running_ = false;
  std::shared_ptr<std::atomic<bool>> alive_ = std::make_shared<std::atomic<bool>>(true);
  std::string last_;
  int64_t lastAtMs_ = 0;
  std::string lastError_;
};

}  // namespace hearth::backup
