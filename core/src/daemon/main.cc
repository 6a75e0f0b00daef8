// hearthd: the hearth hub daemon. See docs/operations.md.

#include <signal.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "daemon/hub.h"
#include "loop/clock.h"
#include "loop/logger.h"
#include "plugin_host/plugin_host.h"

namespace {

void usage() {
  std::printf(
      "usage: hearthd [--config FILE] [--set key=value]...\n"
      "       hearthd --check-config FILE [--set key=value]...\n"
      "       hearthd --version\n\n"
      "  --config FILE        configuration (default /etc/hearth/hearth.yaml)\n"
      "  --set key=value      override one key, e.g. --set broker.port=1884 (repeatable)\n"
      "  --check-config FILE  validate FILE and the plugin subtrees, exit 0 if valid, 1 if not\n");
}

// Validates the whole configuration as start-up would, including plugin subtrees against the
// descriptors of the plugins in hub.plugin_dir (loading them does not start them).
int checkConfig(const std::string& path, const std::vector<std::string>& overrides) {
  auto loaded = hearth::config::loadFile(path, overrides);
  if (!loaded.config) {
    std::fprintf(stderr, "%s\n", hearth::config::formatErrors(loaded.errors).c_str());
    return 1;
  }
  hearth::LogSink sink;
  sink.setLevel(hearth::LogLevel::kError);
  hearth::SystemClock clock;
  hearth::Hub hub(*loaded.config, {path, overrides}, sink, clock);
  auto errors = hub.checkPlugins();
  if (!errors.empty()) {
    std::fprintf(stderr, "%s\n", hearth::config::formatErrors(errors).c_str());
    return 1;
  }
  std::printf("%s: ok\n", path.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string configPath = "/etc/hearth/hearth.yaml";
  std::string checkPath;
  std::vector<std::string> overrides;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "hearthd: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--config" || a == "-c") {
      configPath = next();
    } else if (a == "--check-config") {
      checkPath = next();
    } else if (a == "--set") {
      overrides.push_back(next());
    } else if (a == "--version") {
      std::printf("hearthd %s (plugin ABI %d)\n", HEARTH_VERSION, HEARTH_ABI_VERSION);
      return 0;
    } else if (a == "--help" || a == "-h") {
      usage();
      return 0;
    } else {
      std::fprintf(stderr, "hearthd: unknown argument '%s'\n", a.c_str());
      usage();
      return 2;
    }
  }
  if (!checkPath.empty()) return checkConfig(checkPath, overrides);

  auto loaded = hearth::config::loadFile(configPath, overrides);
  if (!loaded.config) {
    std::fprintf(stderr, "%s\n", hearth::config::formatErrors(loaded.errors).c_str());
    return 1;
  }
  hearth::LogSink sink;
  hearth::LogLevel level;
  if (hearth::LogSink::parseLevel(loaded.config->logLevel, &level)) sink.setLevel(level);

  // Signals are taken by one thread with sigwait and handed to the hub loop, so no handler
  // ever runs inside the hub's state.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  hearth::SystemClock clock;
  hearth::Hub hub(std::move(*loaded.config), {configPath, overrides}, sink, clock);
  std::thread signals([&] {
    for (;;) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      if (sig == SIGHUP) {
        hub.requestReload();
      } else {
        hub.requestStop();
        return;
      }
    }
  });
  int rc = hub.run();
  if (rc != 0) {
    // Start-up failed before a stop signal: wake the signal thread so we can join it.
    pthread_kill(signals.native_handle(), SIGTERM);
  }
  signals.join();
  return rc;
}
