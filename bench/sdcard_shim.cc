// The SD-card model for benchmarks: LD_PRELOADed into hearthd only, it makes every fsync and
// fdatasync take at least HEARTH_SDCARD_MS milliseconds longer (default 5; 2-20 ms is what an SD
// card costs per flush), then does the real call. `make bench SDCARD=5ms` runs every benchmark
// "as on a Pi". Never used by tests.
#include <dlfcn.h>
#include <time.h>

#include <cstdlib>

namespace {

void cardDelay() {
  static const long ms = [] {
    const char* v = std::getenv("HEARTH_SDCARD_MS");
    return v != nullptr ? std::strtol(v, nullptr, 10) : 5L;
  }();
  timespec ts{ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

template <typename Fn>
Fn next(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
}

}  // namespace

extern "C" int fsync(int fd) {
  static auto real = next<int (*)(int)>("fsync");
  cardDelay();
  return real(fd);
}

extern "C" int fdatasync(int fd) {
  static auto real = next<int (*)(int)>("fdatasync");
  cardDelay();
  return real(fd);
}
