#include "backup/scheduler.h"

#include <Poco/Path.h>
#include <unistd.h>

#include <filesystem>

namespace hearth::backup {
namespace fs = std::filesystem;
using std::chrono::milliseconds;

std::string backupDir(const config::HubConfig& cfg) {
  if (!cfg.backupDir.empty()) return cfg.backupDir;
  return Poco::Path(cfg.stateDir).append("backups").toString();
}

BackupScheduler::BackupScheduler(const config::HubConfig& cfg, HubLoop& loop, const Clock& clock,
                                 Logger& logger)
    : cfg_(cfg), loop_(loop), clock_(clock), logger_(logger) {}

BackupScheduler::~BackupScheduler() {
  *alive_ = false;
  if (timer_ != 0) loop_.cancelTimer(timer_);
  if (worker_.joinable()) worker_.join();
}

void BackupScheduler::start() {
  if (timer_ != 0) {
    loop_.cancelTimer(timer_);
    timer_ = 0;
  }
  // A backup interrupted by a crash leaves its temporary files: never a backup, delete them.
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(backupDir(cfg_), ec)) {
    if (e.path().filename().string().rfind(".tmp-", 0) == 0) fs::remove(e.path(), ec);
  }
  if (cfg_.backupEvery.count() == 0) return;
  // Due `every` after the newest backup already there (by its file time), at once if none.
  // A minute after start at the earliest, so that a hub restarting in a loop does not write
  // (and prune) backups in a loop too.
  milliseconds delay = std::min(cfg_.backupEvery, milliseconds(60000));
  auto existing = list(backupDir(cfg_));
  if (!existing.empty()) {
    auto written = fs::last_write_time(existing.front(), ec);
    if (!ec) {
      auto age =
          std::chrono::duration_cast<milliseconds>(fs::file_time_type::clock::now() - written);
      if (age < cfg_.backupEvery) delay = std::max(delay, cfg_.backupEvery - age);
    }
  }
  arm(delay);
}

void BackupScheduler::reconfigure(const config::HubConfig& cfg) {
  bool changed = cfg.backupEvery != cfg_.backupEvery || cfg.backupDir != cfg_.backupDir ||
                 cfg.backupKeep != cfg_.backupKeep || cfg.brokerDynsecFile != cfg_.brokerDynsecFile;
  cfg_ = cfg;
  if (changed && !running_) start();
}

void BackupScheduler::arm(milliseconds delay) {
  timer_ = loop_.startTimer(delay, [this] {
    timer_ = 0;
    run();
  });
}

void BackupScheduler::run() {
  if (running_) return;
  if (worker_.joinable()) worker_.join();
  running_ = true;
  std::string dir = backupDir(cfg_);
  std::string path = Poco::Path(dir).append(scheduledName(clock_.nowMs())).toString();
  Sources src;
  src.stateDir = cfg_.stateDir;
  src.exclude.push_back(dir);
  src.hubRunning = true;
  // hearthd runs as an unprivileged user and may not read the broker's file; the backup then
  // leaves the accounts out and says so (hearthctl backup, run as root, includes them).
  std::error_code ec;
  if (!cfg_.brokerDynsecFile.empty() && ::access(cfg_.brokerDynsecFile.c_str(), R_OK) == 0) {
    src.dynsecFile = cfg_.brokerDynsecFile;
  }
  int64_t now = clock_.nowMs();
  worker_ = std::thread([this, src, path, now, alive = alive_] {
    auto r = create(src, path, now);
    if (!*alive) return;
    loop_.post([this, r, path, alive] {
      if (*alive) finished(r, path);
    });
  });
}

void BackupScheduler::finished(Result<Manifest> r, const std::string& path) {
  running_ = false;
  if (r) {
    last_ = path;
    lastAtMs_ = r.value().createdAtMs;
    lastError_.clear();
    std::error_code ec;
    auto size = fs::file_size(path, ec);
    logger_.info("backup written: " + path + " (" + std::to_string(size / 1024) + " KiB, " +
                 std::to_string(r.value().files.size()) + " entries" +
                 (r.value().dynsecFile.empty()
                      ? "; without the broker accounts: broker.dynsec_file is " +
                            std::string(cfg_.brokerDynsecFile.empty() ? "not set" : "not readable")
                      : "") +
                 ")");
    if (Status p = prune(backupDir(cfg_), cfg_.backupKeep); !p) logger_.warn(p.message());
  } else {
    lastError_ = r.status().toString();
    logger_.error("scheduled backup failed: " + lastError_);
  }
  if (cfg_.backupEvery.count() > 0 && timer_ == 0) arm(cfg_.backupEvery);
}

void BackupScheduler::fillStatus(Poco::JSON::Object& status) const {
  Poco::JSON::Object::Ptr b = new Poco::JSON::Object;
  b->set("dir", backupDir(cfg_));
  b->set("everyMs", static_cast<int64_t>(cfg_.backupEvery.count()));
  if (!last_.empty()) {
    b->set("last", last_);
    b->set("lastAt", lastAtMs_);
  }
  if (!lastError_.empty()) b->set("lastError", lastError_);
  status.set("backup", b);
}

}  // namespace hearth::backup
