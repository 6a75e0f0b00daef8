#pragma once
// hearthctl backup / verify / restore (docs/operations.md, "Back up and restore"). They work on
// the files directly (core/src/backup), not through hearthd: see backup.h for why.
// Each returns hearthctl's exit code and prints what it did (errors on stderr).

#include <string>

#include "config/config.h"

namespace hearthctl {

// Writes a backup of the hub described by cfg to file. noBroker: leave the broker accounts out
// (otherwise broker.dynsec_file must be set and readable in dynsec mode).
int runBackup(const hearth::config::HubConfig& cfg, const std::string& file, bool noBroker);
// Checks a backup's checksums and versions.
int runVerify(const std::string& file);
// Restores file into cfg's state directory and broker file; waits up to timeoutSec for a
// hearthd that is stopping, refuses one that runs.
int runRestore(const hearth::config::HubConfig& cfg, const std::string& file, int timeoutSec);

}  // namespace hearthctl
