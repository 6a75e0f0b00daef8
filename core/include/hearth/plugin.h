#pragma once
// The plugin ABI. A plugin is a shared module exporting one C symbol, hearth_plugin_entry,
// that returns a descriptor. The host checks abi_version and struct_size before reading
// anything else, and refuses the module (naming the file and both versions) on a mismatch.
//
// Ownership: the module that allocates an object frees it: create() allocates the plugin,
// destroy() frees it. No exception crosses the boundary: create() returns nullptr on failure
// (HEARTH_PLUGIN catches everything).

#include <cstddef>
#include <cstdint>

#include "hearth/host.h"

#define HEARTH_PLUGIN_ABI_VERSION 1u

extern "C" {

enum hearth_config_type {
  HEARTH_CFG_BOOL = 1,
  HEARTH_CFG_INT = 2,
  HEARTH_CFG_DOUBLE = 3,
  HEARTH_CFG_STRING = 4,
  HEARTH_CFG_DURATION = 5,  // "30s", "15m", "24h", "500ms" or an integer number of seconds
  HEARTH_CFG_JSON = 6,      // any YAML list or map, handed over as JSON
};

// One declared configuration key of a plugin (Fluent Bit style). Unknown keys are errors.
struct hearth_config_key {
  const char* name;
  int type;                   // hearth_config_type
  const char* default_value;  // YAML text; nullptr = required
  double min;                 // for INT/DOUBLE/DURATION (seconds); min > max = unbounded
  double max;
  const char* description;
};

struct hearth_plugin_descriptor {
  uint32_t abi_version;  // HEARTH_PLUGIN_ABI_VERSION
  uint32_t struct_size;  // sizeof(hearth_plugin_descriptor)
  const char* name;      // [a-z0-9_]+, also the config key under plugins:
  const char* version;
  const hearth_config_key* config_keys;
  size_t config_key_count;
  hearth::Plugin* (*create)(hearth::PluginContext* ctx);
  void (*destroy)(hearth::Plugin* plugin);
};

typedef const hearth_plugin_descriptor* (*hearth_plugin_entry_fn)(void);
}

// Defines the entry point for a plugin class constructible from PluginContext&.
#define HEARTH_PLUGIN(CLASS, NAME, VERSION, KEYS, KEY_COUNT)                        \
  extern "C" __attribute__((visibility("default"))) const hearth_plugin_descriptor* \
  hearth_plugin_entry(void) {                                                       \
    static const hearth_plugin_descriptor d = {                                     \
        HEARTH_PLUGIN_ABI_VERSION,                                                  \
        sizeof(hearth_plugin_descriptor),                                           \
        NAME,                                                                       \
        VERSION,                                                                    \
        KEYS,                                                                       \
        KEY_COUNT,                                                                  \
        [](hearth::PluginContext* ctx) -> hearth::Plugin* {                         \
          try {                                                                     \
            return new CLASS(*ctx);                                                 \
          } catch (...) {                                                           \
            return nullptr;                                                         \
          }                                                                         \
        },                                                                          \
        [](hearth::Plugin* p) { delete p; },                                        \
    };                                                                              \
    return &d;                                                                      \
  }
