#pragma once
// Writing a plugin in C++ (docs/plugin-sdk.md):
//
//   class Hello : public hearth::Plugin {
//    public:
//     explicit Hello(hearth::PluginContext& ctx);
//     hearth::Status start() override;
//     void stop() override;
//     static hearth::Status validate(const hearth::ConfigView& cfg);  // optional
//   };
//   const hearth_config_key kKeys[] = {{"greeting", HEARTH_CFG_STRING, "hello", 0, 0, "..."}};
//   HEARTH_PLUGIN(Hello, "hello", "1.0.0", kKeys, 1)
//
// HEARTH_PLUGIN exports the two C symbols of hearth/plugin_api.h and turns every call the host
// makes into the class into a guarded C call: nothing but C crosses the boundary.

#include <memory>
#include <string>

#include "hearth/plugin_api.h"
#include "hearth/sdk/c_context.h"
#include "hearth/sdk/context.h"

namespace hearth::sdk::detail {

// The host lists its versions; this SDK speaks HEARTH_ABI_VERSION only. Answering it also when
// the host does not list it lets the host refuse the module naming both versions.
inline int pickVersion(int count, const int* versions) {
  (void)count;
  (void)versions;
  return HEARTH_ABI_VERSION;
}

template <typename P>
struct Instance {
  std::unique_ptr<CContext> ctx;
  std::unique_ptr<P> plugin;
};

inline int32_t codeOf(const Status& s) { return static_cast<int32_t>(s.code()); }

template <typename P>
const hearth_plugin* table(const char* name, const char* version, const hearth_config_key* keys,
                           size_t keyCount, int abiVersion) {
  if (abiVersion != HEARTH_ABI_VERSION) return nullptr;
  static const hearth_plugin t = {
      sizeof(hearth_plugin),
      HEARTH_ABI_VERSION,
      name,
      version,
      keys,
      keyCount,
      sizeof(hearth_config_key),
      // create
      [](const hearth_host_api* host, hearth_ctx* ctx, void** instance, hearth_out error) {
        return guarded(error, [&] {
          auto i = std::make_unique<Instance<P>>();
          i->ctx = std::make_unique<CContext>(host, ctx, std::string(t.name));
          i->plugin = std::make_unique<P>(*i->ctx);
          *instance = i.release();
        });
      },
      // destroy: the plugin first, then the context it holds a reference to
      [](void* instance) {
        auto* i = static_cast<Instance<P>*>(instance);
        try {
          i->plugin.reset();
        } catch (...) {
        }
        delete i;
      },
      // start
      [](void* instance, hearth_out error) -> int32_t {
        Status s;
        const int r = guarded(error, [&] { s = static_cast<Instance<P>*>(instance)->plugin->start(); });
        if (r != HEARTH_CALL_OK) return HEARTH_CALL_THREW;
        write(error, s.message());
        return codeOf(s);
      },
      // stop
      [](void* instance, hearth_out error) {
        return guarded(error, [&] { static_cast<Instance<P>*>(instance)->plugin->stop(); });
      },
      // validate
      [](const hearth_host_api* host, const hearth_config* config,
         void (*report)(void*, hearth_str, hearth_str), void* sink) {
        if constexpr (requires(const ConfigView& v) { P::validate(v); }) {
          std::string what;
          const int r = guarded(into(what), [&] {
            CContext::Config view(host, config);
            const Status s = P::validate(view);
            if (!s.isOk()) report(sink, str(""), str(s.message()));
          });
          if (r != HEARTH_CALL_OK) report(sink, str(""), str("validate threw: " + what));
          return r;
        } else {
          (void)host;
          (void)config;
          (void)report;
          (void)sink;
          return HEARTH_CALL_OK;
        }
      },
  };
  return &t;
}

}  // namespace hearth::sdk::detail

// Defines the entry points for a plugin class constructible from PluginContext&.
#define HEARTH_PLUGIN(CLASS, NAME, VERSION, KEYS, KEY_COUNT)                                  \
  extern "C" __attribute__((visibility("default"))) int hearth_plugin_version(              \
      int count, const int* versions) {                                                     \
    return ::hearth::sdk::detail::pickVersion(count, versions);                             \
  }                                                                                         \
  extern "C" __attribute__((visibility("default"))) const hearth_plugin* hearth_plugin_entry( \
      int version) {                                                                        \
    return ::hearth::sdk::detail::table<CLASS>(NAME, VERSION, KEYS, KEY_COUNT, version);    \
  }
