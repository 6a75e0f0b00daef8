// A plugin built for a future ABI: the host must refuse it before reading anything else.
#include "hearth/plugin.h"

extern "C" __attribute__((visibility("default"))) const hearth_plugin_descriptor*
hearth_plugin_entry(void) {
  static const hearth_plugin_descriptor d = {
      999, sizeof(hearth_plugin_descriptor), "badabi", "9.9.9", nullptr, 0, nullptr, nullptr};
  return &d;
}
