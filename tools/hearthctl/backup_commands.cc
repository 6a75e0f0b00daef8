#include "hearthctl/backup_commands.h"

#include <Poco/DateTimeFormatter.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/Timestamp.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "backup/backup.h"
#include "backup/scheduler.h"

namespace hearthctl {
namespace {

std::string isoTime(int64_t ms) {
  return Poco::DateTimeFormatter::format(Poco::Timestamp(ms * 1000), "%Y-%m-%d %H:%M:%S UTC");
}

bool brokerAnswers(const hearth::config::HubConfig& cfg) {
  try {
    Poco::Net::StreamSocket s;
    s.connect(Poco::Net::SocketAddress(cfg.brokerHost, static_cast<uint16_t>(cfg.brokerPort)),
              Poco::Timespan(1, 0));
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

// hearthctl backup: read straight from the state directory and the broker's file, not through
// hearthd (which may be down, runs unprivileged, and may not read the broker's file). The
// database copy is SQLite's online backup, consistent while hearthd writes.
int runBackup(const hearth::config::HubConfig& cfg, const std::string& file, bool noBroker) {
  hearth::backup::Sources src;
  src.stateDir = cfg.stateDir;
  src.exclude.push_back(hearth::backup::backupDir(cfg));
  if (!noBroker) {
    if (cfg.brokerDynsecFile.empty()) {
      if (cfg.userManagement == "dynsec") {
        std::fprintf(stderr,
                     "hearthctl: broker.dynsec_file is not set, so the backup would not hold the "
                     "users' broker accounts (their passwords). Set it to the broker's Dynamic "
                     "Security file (mosquitto's plugin_opt_config_file), or pass --no-broker.\n");
        return 2;
      }
    } else if (::access(cfg.brokerDynsecFile.c_str(), R_OK) != 0) {
      std::fprintf(stderr, "hearthctl: cannot read broker.dynsec_file %s: %s (run as root?)\n",
                   cfg.brokerDynsecFile.c_str(), std::strerror(errno));
      return 2;
    } else {
      src.dynsecFile = cfg.brokerDynsecFile;
    }
  }
  auto r = hearth::backup::create(src, file, Poco::Timestamp().epochMicroseconds() / 1000);
  if (!r) {
    std::fprintf(stderr, "hearthctl: backup failed: %s\n", r.status().toString().c_str());
    return 1;
  }
  uint64_t bytes = 0;
  for (const auto& f : r.value().files) bytes += f.size;
  std::printf(
      "backup written to %s: hearthd %s, schema %d, %zu entries (%llu bytes)%s\n", file.c_str(),
      r.value().hearthVersion.c_str(), r.value().schemaVersion, r.value().files.size(),
      static_cast<unsigned long long>(bytes),
      src.dynsecFile.empty() ? ", without the broker accounts" : ", broker accounts included");
  return 0;
}

int runVerify(const std::string& file) {
  auto m = hearth::backup::verify(file);
  if (!m) {
    std::fprintf(stderr, "hearthctl: %s\n", m.status().message().c_str());
    return 1;
  }
  std::printf("%s: ok — hearthd %s, schema %d, taken %s from %s, %zu entries%s\n", file.c_str(),
              m.value().hearthVersion.c_str(), m.value().schemaVersion,
              isoTime(m.value().createdAtMs).c_str(), m.value().stateDir.c_str(),
              m.value().files.size(),
              m.value().dynsecFile.empty() ? ", no broker accounts" : ", with broker accounts");
  return 0;
}

int runRestore(const hearth::config::HubConfig& cfg, const std::string& file, int timeoutSec) {
  // Checked before anything is touched, so a bad archive never costs a running hub.
  auto m = hearth::backup::verify(file);
  if (!m) {
    std::fprintf(stderr, "hearthctl: not restoring: %s\n", m.status().message().c_str());
    return 1;
  }
  std::error_code ec;
  std::filesystem::create_directories(cfg.stateDir, ec);
  auto lock = hearth::backup::StateLock::acquire(cfg.stateDir, timeoutSec * 1000);
  if (!lock) {
    std::fprintf(stderr,
                 "hearthctl: not restoring: %s. Stop it first (systemctl stop hearth), then run "
                 "this again.\n",
                 lock.status().message().c_str());
    return 1;
  }
  hearth::backup::RestoreTargets t;
  t.stateDir = cfg.stateDir;
  t.dynsecFile = cfg.brokerDynsecFile;
  t.keep.push_back(hearth::backup::backupDir(cfg));
  auto r = hearth::backup::restore(file, t, Poco::Timestamp().epochMicroseconds() / 1000);
  if (!r) {
    std::fprintf(stderr, "hearthctl: restore failed: %s\n", r.status().toString().c_str());
    return 1;
  }
  std::printf("restored %s (hearthd %s, taken %s)\n%s", file.c_str(),
              m.value().hearthVersion.c_str(), isoTime(m.value().createdAtMs).c_str(),
              r.value().c_str());
  bool accounts = !m.value().dynsecFile.empty() && !cfg.brokerDynsecFile.empty();
  std::printf("next:\n");
  if (accounts) {
    std::printf(
        "  1. restart the broker (systemctl restart mosquitto) so that it loads the "
        "restored accounts%s,\n",
        brokerAnswers(cfg) ? " — it is running now, with the old ones" : "");
    std::printf("  2. then start the hub: systemctl start hearth\n");
  } else {
    std::printf("  start the hub: systemctl start hearth\n");
  }
  return 0;
}

}  // namespace hearthctl
