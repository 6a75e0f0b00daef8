#pragma once
// The host's side of one running plugin: what a hearth_ctx* stands for. It turns the C calls of
// hearth/plugin_api.h into calls on the core, tags every registration with the plugin's name
// (so stopping the plugin removes it), and runs every call back into the plugin through
// PluginHost::call (the one guard). Hub loop only, except where plugin_api.h says otherwise.

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "hearth/plugin_api.h"
#include "plugin_host/plugin_host.h"

namespace hearth {

// A closure the plugin handed over; its release runs (on the plugin's side) when this goes.
// It holds the plugin's module too: the core may keep a closure after the plugin stopped and
// the host went (an answer the broker never gave), and its code must still be mapped when its
// release runs. The module is closed when the last holder lets it go.
struct PluginClosure {
  void* fn = nullptr;  // one of the hearth_*_fn types, cast back at the call
  void* user = nullptr;
  hearth_release_fn release = nullptr;
  std::shared_ptr<void> module;  // destroyed after the destructor's body: release runs first
  PluginClosure(void* f, void* u, hearth_release_fn r, std::shared_ptr<void> m)
      : fn(f), user(u), release(r), module(std::move(m)) {}
  PluginClosure(const PluginClosure&) = delete;
  PluginClosure& operator=(const PluginClosure&) = delete;
  ~PluginClosure() {
    if (release) release(user);
  }
  template <typename F>
  F as() const {
    return reinterpret_cast<F>(fn);
  }
};

class PluginHost::Context : public std::enable_shared_from_this<PluginHost::Context> {
 public:
  // module: the plugin's dlopen handle (closures handed over keep it loaded); none in tests.
  Context(CoreServices& core, PluginHost& host, std::string name,
          std::unique_ptr<ConfigView> config, std::shared_ptr<void> module = nullptr);
  ~Context() { release(); }

  // The C table every plugin is handed (one for all; the ctx argument tells them apart).
  static const hearth_host_api* api();
  static Context& of(hearth_ctx* ctx) { return *reinterpret_cast<Context*>(ctx); }
  hearth_ctx* handle() { return reinterpret_cast<hearth_ctx*>(this); }
  static const hearth_config* configHandle(const ConfigView* v) {
    return reinterpret_cast<const hearth_config*>(v);
  }

  // Drops every registration of this plugin: methods, subscriptions, transports, detail
  // providers, timers (each releasing its closure on the plugin's side).
  void release();

  const std::string& name() const { return name_; }
  const std::shared_ptr<void>& module() const { return module_; }
  CoreServices& core() { return core_; }
  PluginHost& host() { return host_; }
  Logger& logger() { return logger_; }
  KvStore& store() { return store_; }
  const ConfigView& config() const { return *config_; }

  uint64_t startTimer(int64_t delayMs, std::shared_ptr<PluginClosure> c);
  void cancelTimer(uint64_t id);
  void post(std::shared_ptr<PluginClosure> c);
  void setState(PluginState state, std::string detailJson);
  void count(const std::string& counter, int64_t delta);
  DeviceTransport* addTransport(const hearth_transport* fns, std::shared_ptr<PluginClosure> c);

 private:
  CoreServices& core_;
  PluginHost& host_;
  std::string name_;
  std::shared_ptr<void> module_;
  TaggedLogger logger_;
  std::unique_ptr<ConfigView> config_;
  PluginKvStore store_;
  std::set<TimerId> timers_;
  std::vector<std::unique_ptr<DeviceTransport>> transports_;
};

}  // namespace hearth
