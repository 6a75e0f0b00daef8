// hearth-lib-floor: the resident memory that the shared libraries hearthd and the shipped
// plugins need cost before any work is done. Linked against exactly those libraries (all of
// them loaded, see bench/CMakeLists.txt), it initialises libmosquitto (which initialises
// OpenSSL, as hearthd's start does), says "ready" and waits for SIGTERM or SIGINT.
// bench/rss_bench.py measures it in the same run as hearthd, as the baseline of the idle RSS.
#include <mosquitto.h>

#include <csignal>
#include <cstdio>

int main() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  mosquitto_lib_init();
  std::puts("ready");
  std::fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  mosquitto_lib_cleanup();
  return 0;
}
