#pragma once
// StorageMonitor: what the hub does about a full state disk. The database notices (a write
// fails with SQLITE_FULL / ENOSPC, answered STORAGE_FULL); this says so once in the log and in
// hub/status, and while the disk stays full looks for free space every few seconds, so that
// the status clears without waiting for the next request. Hub loop only.

#include <Poco/JSON/Object.h>

#include <chrono>
#include <functional>
#include <string>

#include "hearth/host.h"
#include "loop/hub_loop.h"
#include "store/database.h"

namespace hearth {

class StorageMonitor {
 public:
  static constexpr std::chrono::milliseconds kRecheck{5000};

  // changed runs after each change of state (the hub republishes its status).
  StorageMonitor(Database& db, HubLoop& loop, const Clock& clock, Logger& logger,
                 std::function<void()> changed);
  ~StorageMonitor();

  bool full() const { return full_; }
  // Sets "storage": {"state": "ok"|"full", "since", "detail", "refused"} on a status object.
  void fillStatus(Poco::JSON::Object& status) const;

 private:
  void onChange(bool full, const std::string& detail);
  void recheck();

  Database& db_;
  HubLoop& loop_;
  const Clock& clock_;
  Logger& logger_;
  std::function<void()> changed_;
  bool full_ = false;
  int64_t sinceMs_ = 0;
  std::string detail_;
  uint64_t episodes_ = 0;
  TimerId timer_ = 0;
};

}  // namespace hearth
