// A plugin built for a future ABI: it picks version 999 whatever hearthd offers, and hearthd
// must refuse it (naming both versions) before asking for its table.
#include "hearth/plugin_api.h"

extern "C" __attribute__((visibility("default"))) int hearth_plugin_version(int, const int*) {
  return 999;
}
extern "C" __attribute__((visibility("default"))) const hearth_plugin* hearth_plugin_entry(int) {
  return nullptr;
}
