#include "plugin_host/plugin_host.h"

#include <Poco/File.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Path.h>

#include <dlfcn.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "plugin_host/plugin_context.h"

namespace hearth {

namespace {

hearth_out into(std::string& s) {
  return hearth_out{&s, [](void* self, const char* d, size_t n) {
                      static_cast<std::string*>(self)->append(d, n);
                    }};
}

std::string versionList(const std::vector<int>& v) {
  std::string out;
  for (int x : v) out += (out.empty() ? "" : ", ") + std::to_string(x);
  return out;
}

// The required part of a plugin's table: everything up to and including stop.
constexpr size_t kRequiredTable = offsetof(hearth_plugin, stop) + sizeof(hearth_plugin::stop);
// The required part of a config key: everything before the ENUM choices.
constexpr size_t kRequiredKey = offsetof(hearth_config_key, choices);

}  // namespace

const std::vector<int>& PluginHost::supportedVersions() {
  static const std::vector<int> v = {HEARTH_ABI_VERSION};
  return v;
}

PluginHost::Call PluginHost::call(const std::string& name, const std::string& what,
                                  const std::function<int(hearth_out error)>& fn) {
  auto it = plugins_.find(name);
  if (it == plugins_.end() || it->second.instance == nullptr || it->second.failed) {
    return Call::kSkipped;
  }
  std::string error;
  if (fn(into(error)) == HEARTH_CALL_OK) return Call::kRan;
  fail(name, it->second, "threw in " + what + ": " + (error.empty() ? "(no message)" : error));
  return Call::kThrew;
}

void PluginHost::fail(const std::string& name, Loaded& p, const std::string& reason) {
  p.failed = true;
  p.state = PluginState::kFailed;
  p.error = reason;
  logger_.error("plugin " + name + " (" + p.file + ") " + reason +
                "; marked failed and stopped, the hub goes on");
  core_.statusChanged();
  // Stopped from the loop once the call that threw has unwound (a bus or router loop may be
  // iterating over the plugin's registrations right now).
  std::weak_ptr<int> alive = alive_;
  const uint64_t generation = p.generation;
  core_.loop().post([this, alive, name, generation] {
    if (alive.expired()) return;
    auto it = plugins_.find(name);
    if (it == plugins_.end() || it->second.generation != generation) return;
    stopOne(name, it->second);
  });
}

PluginHost::~PluginHost() {
  stopAll();
  plugins_.clear();  // each module is closed when the last closure holding it goes
}

void PluginHost::discover(const std::string& dir) {
  Poco::File d(dir);
  if (!d.exists() || !d.isDirectory()) {
    logger_.warn("plugin directory " + dir + " does not exist; no plugins loaded");
    return;
  }
  std::vector<std::string> files;
  d.list(files);
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    if (f.size() < 4 || f.substr(f.size() - 3) != ".so") continue;
    std::string path = Poco::Path(dir).append(f).toString();
    auto refuse = [&](const std::string& reason) {
      logger_.error("refused plugin " + path + ": " + reason);
      refused_.push_back(Refused{path, reason});
    };
    // RTLD_NOW: a symbol the module needs and no library provides refuses it here, naming the
    // symbol, instead of killing hearthd when the first call reaches it.
    void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      const char* e = dlerror();
      refuse(std::string("cannot load: ") + (e ? e : "unknown error"));
      continue;
    }
    auto refuseAndClose = [&](const std::string& reason) {
      refuse(reason);
      dlclose(lib);
    };
    const auto& versions = supportedVersions();
    auto pick = reinterpret_cast<hearth_plugin_version_fn>(dlsym(lib, "hearth_plugin_version"));
    auto entry = reinterpret_cast<hearth_plugin_entry_fn>(dlsym(lib, "hearth_plugin_entry"));
    if (pick == nullptr) {
      if (entry != nullptr) {
        // ABI 1 had hearth_plugin_entry(void) returning a descriptor that began with its
        // abi_version; read that much to name it.
        auto old = reinterpret_cast<const uint32_t* (*)()>(dlsym(lib, "hearth_plugin_entry"));
        const uint32_t* d = old();
        refuseAndClose("built for plugin ABI version " + (d ? std::to_string(*d) : "?") +
                       " (no hearth_plugin_version), hearthd supports ABI version " +
                       versionList(versions) + ": rebuild it against this SDK");
      } else {
        refuseAndClose("no hearth_plugin_version symbol: not a hearth plugin");
      }
      continue;
    }
    if (entry == nullptr) {
      refuseAndClose("no hearth_plugin_entry symbol");
      continue;
    }
    const int picked = pick(static_cast<int>(versions.size()), versions.data());
    if (std::find(versions.begin(), versions.end(), picked) == versions.end()) {
      refuseAndClose("plugin ABI version " + std::to_string(picked) +
                     ", hearthd supports ABI version " + versionList(versions));
      continue;
    }
    const hearth_plugin* raw = entry(picked);
    if (raw == nullptr) {
      refuseAndClose("hearth_plugin_entry(" + std::to_string(picked) + ") returned no table");
      continue;
    }
    if (raw->size < kRequiredTable) {
      refuseAndClose("plugin table has " + std::to_string(raw->size) + " bytes, hearthd needs " +
                     std::to_string(kRequiredTable) + " (ABI version " + std::to_string(picked) +
                     ")");
      continue;
    }
    // Members this hearthd knows and the plugin does not stay zero (absent).
    hearth_plugin table{};
    std::memcpy(&table, raw, std::min<size_t>(raw->size, sizeof table));
    if (table.abi_version != static_cast<uint32_t>(picked)) {
      refuseAndClose("plugin table says ABI version " + std::to_string(table.abi_version) +
                     ", but the plugin picked " + std::to_string(picked));
      continue;
    }
    if (!table.create || !table.destroy || !table.start || !table.stop) {
      refuseAndClose("plugin table lacks create, destroy, start or stop");
      continue;
    }
    if (table.config_key_count > 0 &&
        (table.config_keys == nullptr || table.config_key_size < kRequiredKey)) {
      refuseAndClose("config key entries of " + std::to_string(table.config_key_size) +
                     " bytes, hearthd needs " + std::to_string(kRequiredKey));
      continue;
    }
    std::vector<hearth_config_key> keys;
    for (size_t i = 0; i < table.config_key_count; ++i) {
      hearth_config_key k{};
      std::memcpy(&k, reinterpret_cast<const char*>(table.config_keys) + i * table.config_key_size,
                  std::min(table.config_key_size, sizeof k));
      keys.push_back(k);
    }
    const hearth_plugin* desc = &table;
    std::string name = desc->name ? desc->name : "";
    if (name.empty() ||
        name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") != std::string::npos) {
      refuseAndClose("invalid plugin name '" + name + "'");
      continue;
    }
    if (plugins_.count(name)) {
      refuseAndClose("a plugin named " + name + " is already loaded from " + plugins_[name].file);
      continue;
    }
    Loaded p;
    p.file = path;
    p.library = std::shared_ptr<void>(lib, [](void* l) { dlclose(l); });
    p.table = table;
    p.keys = std::move(keys);
    plugins_.emplace(name, std::move(p));
    logger_.info("found plugin " + name + " " + (desc->version ? desc->version : "?") + " (ABI " +
                 std::to_string(picked) + ") in " + path);
  }
}

std::vector<config::ConfigError> PluginHost::validate(
    const config::HubConfig& cfg, std::map<std::string, config::PluginConfigResult>* out) const {
  std::vector<config::ConfigError> errors;
  for (const auto& [name, node] : cfg.pluginNodes) {
    // A disabled plugin may be absent (e.g. built with HEARTH_PLUGIN_<NAME>=OFF).
    bool disabled = node.IsMap() && node["enabled"] && node["enabled"].IsScalar() &&
                    node["enabled"].Scalar() == "false";
    if (!plugins_.count(name) && !disabled) {
      int line = cfg.pluginNodeLines.count(name) ? cfg.pluginNodeLines.at(name) : 0;
      errors.push_back({cfg.sourceFile, line, "plugins." + name,
                        "no plugin named '" + name + "' in " + cfg.pluginDir});
    }
  }
  for (const auto& [name, p] : plugins_) {
    auto r = config::validatePluginConfig(cfg, name, p.keys.data(), p.keys.size());
    errors.insert(errors.end(), r.errors.begin(), r.errors.end());
    // A disabled plugin's subtree is not the plugin's concern until it is enabled. At the
    // first start a subtree the plugin refuses fails that plugin at its start() (with the same
    // reason) while the hub comes up; --check-config (no `out`) and SIGHUP (plugins running)
    // refuse the file instead.
    if (r.errors.empty() && r.view && r.enabled && (started_ || out == nullptr)) {
      runValidate(cfg, name, p, r, errors);
    }
    if (out) out->emplace(name, std::move(r));
  }
  return errors;
}

void PluginHost::runValidate(const config::HubConfig& cfg, const std::string& name,
                             const Loaded& p, const config::PluginConfigResult& r,
                             std::vector<config::ConfigError>& errors) const {
  if (p.table.validate == nullptr) return;
  struct Sink {
    const config::HubConfig& cfg;
    const std::string& name;
    std::vector<config::ConfigError>& errors;
  } sink{cfg, name, errors};
  auto it = cfg.pluginNodeLines.find(name);
  const int line = it == cfg.pluginNodeLines.end() ? 0 : it->second;
  const size_t before = errors.size();
  const int rc = p.table.validate(
      Context::api(), Context::configHandle(r.view.get()),
      [](void* u, hearth_str key, hearth_str message) {
        auto* s = static_cast<Sink*>(u);
        std::string k = "plugins." + s->name;
        if (key.size > 0) k += "." + std::string(key.data, key.size);
        std::string m(message.data, message.size);
        // "plugins.<name>.key: what" (the plugins' own messages name their key): key and what.
        const size_t colon = m.find(": ");
        if (key.size == 0 && m.rfind(k, 0) == 0 && colon != std::string::npos &&
            m.find(' ') > colon) {
          k = m.substr(0, colon);
          m = m.substr(colon + 2);
        }
        s->errors.push_back({s->cfg.sourceFile, 0, k, m});
      },
      &sink);
  if (rc != HEARTH_CALL_OK && errors.size() == before) {
    errors.push_back({cfg.sourceFile, 0, "plugins." + name, "the plugin's validate threw"});
  }
  for (size_t i = before; i < errors.size(); ++i) errors[i].line = line;
}

void PluginHost::startOne(const std::string& name, Loaded& p, config::PluginConfigResult cfg) {
  if (!cfg.enabled) {
    p.state = PluginState::kStopped;
    p.error = "disabled in the configuration";
    return;
  }
  ++p.generation;
  p.failed = false;
  p.error.clear();
  p.detailJson.clear();
  p.counters.clear();
  p.state = PluginState::kStarting;
  p.context = std::make_shared<Context>(core_, *this, name, std::move(cfg.view), p.library);
  std::string error;
  void* instance = nullptr;
  if (p.table.create(Context::api(), p.context->handle(), &instance, into(error)) !=
          HEARTH_CALL_OK ||
      instance == nullptr) {
    p.state = PluginState::kFailed;
    p.error = "create() failed" + (error.empty() ? std::string() : ": " + error);
    logger_.error("plugin " + name + " (" + p.file + ") could not be created: " + p.error);
    p.context.reset();
    return;
  }
  p.instance = instance;
  error.clear();
  const int32_t code = p.table.start(p.instance, into(error));
  if (code != HEARTH_OK) {
    const std::string reason =
        code == HEARTH_CALL_THREW
            ? "threw in start(): " + error
            : Status::error(code > 0 && code <= HEARTH_STORAGE_FULL ? static_cast<ErrorCode>(code)
                                                                     : ErrorCode::kInternal,
                            error)
                  .toString();
    p.state = PluginState::kFailed;
    p.error = reason;
    logger_.error("plugin " + name + " (" + p.file + ") failed to start: " + reason);
    p.failed = true;
    stopOne(name, p, /*callStop=*/false);
    return;
  }
  // A plugin may already have reported e.g. "waiting" from start(); keep that.
  if (p.state == PluginState::kStarting) p.state = PluginState::kRunning;
  logger_.info("plugin " + name + " " + pluginStateName(p.state));
}

void PluginHost::stopOne(const std::string& name, Loaded& p, bool callStop) {
  if (p.instance == nullptr) return;
  if (callStop) {
    std::string error;
    if (p.table.stop(p.instance, into(error)) != HEARTH_CALL_OK) {
      logger_.error("plugin " + name + " threw in stop(): " + error);
    }
  }
  p.context->release();
  p.table.destroy(p.instance);
  p.instance = nullptr;
  p.context.reset();
  if (!p.failed) p.state = PluginState::kStopped;
  core_.statusChanged();
}

void PluginHost::startAll(std::map<std::string, config::PluginConfigResult> configs) {
  started_ = true;
  for (auto& [name, p] : plugins_) {
    auto it = configs.find(name);
    if (it == configs.end()) continue;
    startOne(name, p, std::move(it->second));
  }
  core_.statusChanged();
}

void PluginHost::reconfigure(const config::HubConfig& oldCfg, const config::HubConfig& newCfg,
                             std::map<std::string, config::PluginConfigResult> configs) {
  auto subtree = [](const config::HubConfig& c, const std::string& name) {
    auto it = c.pluginNodes.find(name);
    return it == c.pluginNodes.end() ? std::string() : YAML::Dump(it->second);
  };
  for (auto& [name, p] : plugins_) {
    if (subtree(oldCfg, name) == subtree(newCfg, name)) continue;
    logger_.info("configuration of plugin " + name + " changed; restarting it");
    stopOne(name, p);
    auto it = configs.find(name);
    if (it != configs.end()) startOne(name, p, std::move(it->second));
  }
  core_.statusChanged();
}

void PluginHost::stopAll() {
  // Reverse order of start.
  for (auto it = plugins_.rbegin(); it != plugins_.rend(); ++it) stopOne(it->first, it->second);
}

void PluginHost::fillStatus(Poco::JSON::Object& status) const {
  Poco::JSON::Object::Ptr states = new Poco::JSON::Object;
  Poco::JSON::Object::Ptr details = new Poco::JSON::Object;
  for (const auto& [name, p] : plugins_) {
    states->set(name, pluginStateName(p.state));
    Poco::JSON::Object::Ptr d = new Poco::JSON::Object;
    if (!p.detailJson.empty()) {
      try {
        auto v = Poco::JSON::Parser().parse(p.detailJson);
        if (v.type() == typeid(Poco::JSON::Object::Ptr)) d = v.extract<Poco::JSON::Object::Ptr>();
      } catch (const std::exception&) {
        d->set("detail", p.detailJson);
      }
    }
    d->set("file", p.file);
    d->set("version", p.table.version ? p.table.version : "");
    d->set("abi", static_cast<int>(p.table.abi_version));
    if (!p.counters.empty()) {
      Poco::JSON::Object::Ptr counters = new Poco::JSON::Object;
      for (const auto& [counter, value] : p.counters) counters->set(counter, value);
      d->set("counters", counters);
    }
    if (!p.error.empty()) d->set("error", p.error);
    details->set(name, d);
  }
  for (const auto& r : refused_) {
    std::string key = Poco::Path(r.file).getBaseName();
    if (!states->has(key)) states->set(key, "refused");
    Poco::JSON::Object::Ptr d = new Poco::JSON::Object;
    d->set("file", r.file);
    d->set("error", r.reason);
    details->set(key, d);
  }
  status.set("plugins", states);
  status.set("details", details);
}

void PluginHost::forEachCounter(
    const std::function<void(const std::string&, const std::string&, int64_t)>& fn) const {
  for (const auto& [name, p] : plugins_) {
    for (const auto& [counter, value] : p.counters) fn(name, counter, value);
  }
}

std::vector<std::string> PluginHost::names() const {
  std::vector<std::string> out;
  for (const auto& [name, p] : plugins_) out.push_back(name);
  return out;
}

}  // namespace hearth
