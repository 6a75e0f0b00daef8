#pragma once
// The SDK's PluginContext over the C table of hearth/plugin_api.h. Compiled into the plugin
// (header-only): every C++ object here lives on the plugin's side; the host sees C structs,
// function pointers and opaque handles only. Plugins do not use this file directly:
// HEARTH_PLUGIN (hearth/sdk/plugin.h) makes one CContext per instance.

#include <atomic>
#include <cstddef>
#include <cstring>
#include <exception>
#include <memory>
#include <stdexcept>

#include "hearth/plugin_api.h"
#include "hearth/sdk/context.h"

namespace hearth::sdk::detail {

inline hearth_str str(std::string_view s) { return hearth_str{s.data(), s.size()}; }
inline std::string text(hearth_str s) { return s.data ? std::string(s.data, s.size) : std::string(); }

// A hearth_out that appends to a std::string.
inline hearth_out into(std::string& s) {
  return hearth_out{&s, [](void* self, const char* data, size_t size) {
                      static_cast<std::string*>(self)->append(data, size);
                    }};
}
inline void write(hearth_out out, std::string_view s) {
  if (out.write) out.write(out.self, s.data(), s.size());
}

inline Status status(int32_t code, std::string message) {
  if (code == HEARTH_OK) return Status::ok();
  return Status::error(static_cast<ErrorCode>(code), std::move(message));
}

// The guard on the plugin's side of every call the host makes into it: an exception becomes
// HEARTH_CALL_THREW with its message; the host then marks the plugin failed and stops it.
template <typename F>
int guarded(hearth_out error, F&& fn) noexcept {
  try {
    fn();
    return HEARTH_CALL_OK;
  } catch (const std::exception& e) {
    write(error, e.what());
  } catch (...) {
    write(error, "an exception that is not a std::exception");
  }
  return HEARTH_CALL_THREW;
}

// A closure handed to the host: fn(user...) runs it, release deletes it (on this side).
template <typename T>
void release(void* user) {
  delete static_cast<T*>(user);
}

// Synchronous host callbacks (scan rows, transaction bodies) run inside a call the plugin made;
// an exception is carried back to the plugin's side of that call and rethrown there.
struct Carried {
  std::exception_ptr error;
  void rethrow() {
    if (error) std::rethrow_exception(error);
  }
};

inline TerminalInfo terminalOf(const hearth_terminal* t) {
  TerminalInfo out;
  out.userId = text(t->user_id);
  out.clientId = text(t->client_id);
  out.appId = text(t->app_id);
  out.deviceModel = text(t->device_model);
  out.deviceName = text(t->device_name);
  out.openId = text(t->open_id);
  out.online = t->online != 0;
  return out;
}

class CContext final : public PluginContext, private Devices {
 public:
  CContext(const hearth_host_api* api, hearth_ctx* ctx, std::string name)
      : api_(api), ctx_(ctx), name_(std::move(name)), logger_(*this), clock_(*this),
        config_(api, api->config(ctx)), store_(*this) {}

  // A ConfigView over a host hearth_config (also used by validate, which has no context).
  class Config final : public ConfigView {
   public:
    Config(const hearth_host_api* api, const hearth_config* cfg) : api_(api), cfg_(cfg) {}
    bool getBool(std::string_view key) const override { return value(key, HEARTH_CFG_BOOL).boolean; }
    int64_t getInt(std::string_view key) const override { return value(key, HEARTH_CFG_INT).integer; }
    double getDouble(std::string_view key) const override {
      return value(key, HEARTH_CFG_DOUBLE).number;
    }
    std::string getString(std::string_view key) const override {
      return textOf(key, HEARTH_CFG_STRING);
    }
    std::chrono::milliseconds getDuration(std::string_view key) const override {
      return std::chrono::milliseconds(value(key, HEARTH_CFG_DURATION).duration_ms);
    }
    std::string getJson(std::string_view key) const override { return textOf(key, HEARTH_CFG_JSON); }

   private:
    hearth_config_value value(std::string_view key, int type) const {
      hearth_config_value v{};
      v.size = sizeof v;
      check(key, api_->config_get(cfg_, str(key), type, &v, hearth_out{nullptr, nullptr}));
      return v;
    }
    std::string textOf(std::string_view key, int type) const {
      hearth_config_value v{};
      v.size = sizeof v;
      std::string out;
      check(key, api_->config_get(cfg_, str(key), type, &v, into(out)));
      return out;
    }
    // An undeclared key (or one of another type) is a broken invariant of the plugin: it throws
    // here, inside the plugin, and the guard of the call it happens in reports it.
    static void check(std::string_view key, int32_t code) {
      if (code == HEARTH_NOT_FOUND) {
        throw std::out_of_range("config key '" + std::string(key) + "' is not declared");
      }
      if (code != HEARTH_OK) {
        throw std::out_of_range("config key '" + std::string(key) +
                                "' is declared with another type");
      }
    }
    const hearth_host_api* api_;
    const hearth_config* cfg_;
  };

  const std::string& pluginName() const override { return name_; }
  Logger& logger() override { return logger_; }
  const Clock& clock() const override { return clock_; }
  const ConfigView& config() const override { return config_; }
  KvStore& store() override { return store_; }

  Status registerMethod(const std::string& method, MethodScope scope,
                        RequestHandler handler) override {
    std::string error;
    const int32_t code = api_->register_method(
        ctx_, str(method), scope == MethodScope::kAdmin ? HEARTH_SCOPE_ADMIN : HEARTH_SCOPE_USER,
        &CContext::onRequest, new Handler{api_, std::move(handler)}, &release<Handler>,
        into(error));
    return status(code, std::move(error));
  }

  size_t sendEvent(const std::string& userId, const std::string& clientId, const std::string& event,
                   const std::string& dataJson) override {
    return api_->send_event(ctx_, str(userId), str(clientId), str(event), str(dataJson));
  }
  size_t sendEventConfirmed(const std::string& userId, const std::string& clientId,
                            const std::string& event, const std::string& dataJson,
                            std::function<void(Status)> confirmed) override {
    using Done = std::function<void(Status)>;
    // A member added after the table's first release. An older host confirms nothing: the
    // event is sent as by sendEvent and taken as confirmed on the next turn of the loop.
    if (api_->size < offsetof(hearth_host_api, send_event_confirmed) +
                         sizeof(api_->send_event_confirmed) ||
        api_->send_event_confirmed == nullptr) {
      const size_t n = sendEvent(userId, clientId, event, dataJson);
      if (n > 0) post([confirmed = std::move(confirmed)] { confirmed(Status::ok()); });
      return n;
    }
    return api_->send_event_confirmed(
        ctx_, str(userId), str(clientId), str(event), str(dataJson),
        [](void* u, int32_t code, hearth_str t, hearth_out error) {
          return guarded(error, [&] { (*static_cast<Done*>(u))(status(code, text(t))); });
        },
        new Done(std::move(confirmed)), &release<Done>);
  }
  std::optional<TerminalInfo> terminal(const std::string& userId,
                                       const std::string& clientId) const override {
    std::optional<TerminalInfo> out;
    api_->terminal(ctx_, str(userId), str(clientId), &CContext::oneTerminal, &out);
    return out;
  }
  std::optional<TerminalInfo> terminalByOpenId(const std::string& openId) const override {
    std::optional<TerminalInfo> out;
    api_->terminal_by_open_id(ctx_, str(openId), &CContext::oneTerminal, &out);
    return out;
  }
  std::vector<TerminalInfo> terminals(const std::string& userId) const override {
    std::vector<TerminalInfo> out;
    api_->terminals(
        ctx_, str(userId),
        [](void* u, const hearth_terminal* t) {
          static_cast<std::vector<TerminalInfo>*>(u)->push_back(terminalOf(t));
        },
        &out);
    return out;
  }
  bool userExists(const std::string& userId) const override {
    return api_->user_exists(ctx_, str(userId)) != 0;
  }

  void subscribe(const std::string& topic, EventHandler handler) override {
    api_->subscribe(
        ctx_, str(topic),
        [](void* u, hearth_str t, hearth_str data, hearth_out error) {
          return guarded(error, [&] { (*static_cast<EventHandler*>(u))(text(t), text(data)); });
        },
        new EventHandler(std::move(handler)), &release<EventHandler>);
  }
  void publish(const std::string& topic, const std::string& dataJson) override {
    api_->publish(ctx_, str(topic), str(dataJson));
  }

  TimerId startTimer(std::chrono::milliseconds delay, std::function<void()> fn) override {
    return api_->start_timer(ctx_, delay.count(), &CContext::runTask,
                             new std::function<void()>(std::move(fn)),
                             &release<std::function<void()>>);
  }
  void cancelTimer(TimerId id) override { api_->cancel_timer(ctx_, id); }
  void post(std::function<void()> fn) override {
    api_->post(ctx_, &CContext::runTask, new std::function<void()>(std::move(fn)),
               &release<std::function<void()>>);
  }
  Devices& devices() override { return *this; }
  void setState(PluginState state, const std::string& detailJson) override {
    api_->set_state(ctx_, static_cast<int>(state), str(detailJson));
  }
  void count(std::string_view name, int64_t delta) override {
    api_->counter_add(ctx_, str(name), delta);
  }
  LocalBrokerInfo localBroker() const override {
    hearth_broker_info info{};
    info.size = sizeof info;
    LocalBrokerInfo out;
    api_->local_broker(ctx_, &info, into(out.host));
    out.port = info.port;
    out.dynsec = info.dynsec != 0;
    return out;
  }
  void setBrokerAccount(const std::string& username, const std::string& password,
                        const std::vector<BrokerAcl>& acls,
                        std::function<void(Status)> done) override {
    std::vector<hearth_broker_acl> c;
    for (const auto& a : acls) {
      c.push_back(hearth_broker_acl{sizeof(hearth_broker_acl), str(a.type), str(a.topic),
                                    a.allow ? 1 : 0});
    }
    using Done = std::function<void(Status)>;
    api_->set_broker_account(
        ctx_, str(username), str(password), c.data(), c.size(), sizeof(hearth_broker_acl),
        [](void* u, int32_t code, hearth_str t, hearth_out error) {
          return guarded(error, [&] { (*static_cast<Done*>(u))(status(code, text(t))); });
        },
        new Done(std::move(done)), &release<Done>);
  }
  std::string stateDir() const override {
    std::string out;
    api_->state_dir(ctx_, into(out));
    return out;
  }
  std::vector<PluginCounter> pluginCounters() const override {
    std::vector<PluginCounter> out;
    // A member added after the table's first release: an older host's table ends before it.
    if (api_->size < offsetof(hearth_host_api, plugin_counters) + sizeof(api_->plugin_counters) ||
        api_->plugin_counters == nullptr) {
      return out;
    }
    api_->plugin_counters(
        ctx_,
        [](void* u, hearth_str plugin, hearth_str name, int64_t value) {
          static_cast<std::vector<PluginCounter>*>(u)->push_back(
              PluginCounter{text(plugin), text(name), value});
        },
        &out);
    return out;
  }

 private:
  struct Handler {
    const hearth_host_api* api;
    RequestHandler fn;
  };
  // Answers through the host's responder; the last copy of the Responder releases it.
  class Sink final : public ResponseSink {
   public:
    Sink(const hearth_host_api* api, hearth_responder* r) : api_(api), r_(r) {}
    ~Sink() override { api_->responder_release(r_); }
    void sendOk(std::string resultJson) override { api_->respond(r_, HEARTH_OK, str(resultJson)); }
    void sendError(ErrorCode code, std::string message) override {
      api_->respond(r_, static_cast<int32_t>(code), str(message));
    }

   private:
    const hearth_host_api* api_;
    hearth_responder* r_;
  };

  static int onRequest(void* user, const hearth_request* r, hearth_responder* responder,
                       hearth_out error) {
    auto* h = static_cast<Handler*>(user);
    // The responder is the plugin's from here on, even if the handler throws before using it.
    Responder res(std::make_shared<Sink>(h->api, responder));
    return guarded(error, [&] {
      Request req;
      req.method = text(r->method);
      req.id = text(r->id);
      req.userId = text(r->user_id);
      req.clientId = text(r->client_id);
      req.paramsJson = text(r->params_json);
      req.isAdmin = r->is_admin != 0;
      h->fn(req, std::move(res));
    });
  }
  static int runTask(void* user, hearth_out error) {
    return guarded(error, [&] { (*static_cast<std::function<void()>*>(user))(); });
  }
  static void oneTerminal(void* u, const hearth_terminal* t) {
    *static_cast<std::optional<TerminalInfo>*>(u) = terminalOf(t);
  }

  class CLogger final : public Logger {
   public:
    explicit CLogger(CContext& c) : c_(c) {}
    void log(LogLevel level, std::string_view m) override {
      c_.api_->log(c_.ctx_, static_cast<int>(level), str(m));
    }

   private:
    CContext& c_;
  };
  class CClock final : public Clock {
   public:
    explicit CClock(CContext& c) : c_(c) {}
    int64_t nowMs() const override { return c_.api_->now_ms(c_.ctx_); }
    std::chrono::steady_clock::time_point steadyNow() const override {
      return std::chrono::steady_clock::time_point(
          std::chrono::duration_cast<std::chrono::steady_clock::duration>(
              std::chrono::nanoseconds(c_.api_->steady_ns(c_.ctx_))));
    }

   private:
    CContext& c_;
  };
  class CStore final : public KvStore {
   public:
    explicit CStore(CContext& c) : c_(c) {}
    Status put(std::string_view col, std::string_view key, std::string_view value) override {
      std::string e;
      const int32_t code = c_.api_->kv_put(c_.ctx_, str(col), str(key), str(value), into(e));
      return status(code, std::move(e));
    }
    Result<std::optional<std::string>> get(std::string_view col, std::string_view key) override {
      std::string e, v;
      int32_t found = 0;
      const int32_t code = c_.api_->kv_get(c_.ctx_, str(col), str(key), &found, into(v), into(e));
      if (code != HEARTH_OK) return status(code, std::move(e));
      if (!found) return std::optional<std::string>();
      return std::optional<std::string>(std::move(v));
    }
    Status erase(std::string_view col, std::string_view key) override {
      std::string e;
      const int32_t code = c_.api_->kv_erase(c_.ctx_, str(col), str(key), into(e));
      return status(code, std::move(e));
    }
    Status scan(std::string_view col, std::string_view fromKey, size_t limit,
                const std::function<bool(const std::string&, const std::string&)>& fn) override {
      struct Visit {
        const std::function<bool(const std::string&, const std::string&)>& fn;
        Carried carried;
      } visit{fn, {}};
      std::string e;
      const int32_t code = c_.api_->kv_scan(
          c_.ctx_, str(col), str(fromKey), limit,
          [](void* u, hearth_str k, hearth_str v) -> int {
            auto* vis = static_cast<Visit*>(u);
            try {
              return vis->fn(text(k), text(v)) ? 1 : 0;
            } catch (...) {
              vis->carried.error = std::current_exception();
              return 0;
            }
          },
          &visit, into(e));
      visit.carried.rethrow();
      return status(code, std::move(e));
    }
    Result<int64_t> count(std::string_view col) override {
      std::string e;
      int64_t n = 0;
      const int32_t code = c_.api_->kv_count(c_.ctx_, str(col), &n, into(e));
      if (code != HEARTH_OK) return status(code, std::move(e));
      return n;
    }
    Status transaction(const std::function<Status()>& body) override {
      struct Body {
        const std::function<Status()>& fn;
        Carried carried;
      } b{body, {}};
      std::string e;
      const int32_t code = c_.api_->kv_transaction(
          c_.ctx_,
          [](void* u, hearth_out message) -> int32_t {
            auto* bb = static_cast<Body*>(u);
            try {
              Status s = bb->fn();
              write(message, s.message());
              return static_cast<int32_t>(s.code());
            } catch (...) {
              bb->carried.error = std::current_exception();
              write(message, "the transaction's body threw");
              return HEARTH_INTERNAL;
            }
          },
          &b, into(e));
      b.carried.rethrow();
      return status(code, std::move(e));
    }

   private:
    CContext& c_;
  };

  // -- Devices --------------------------------------------------------------------------------
  // Completes a host command once; a command the transport drops without answering is answered
  // INTERNAL when the last copy of its callback goes, so the host's side is always freed.
  struct Done {
    Done(const hearth_host_api* a, hearth_done* d) : api(a), done(d) {}
    Done(const Done&) = delete;
    Done& operator=(const Done&) = delete;
    const hearth_host_api* api;
    hearth_done* done;
    bool called = false;
    ~Done() {
      if (!called) api->done_complete(done, HEARTH_INTERNAL, str("the transport did not answer"));
    }
  };
  static int transportPresent(void* u, hearth_str device, int32_t* present, hearth_out error) {
    return guarded(error, [&] {
      *present = static_cast<Transport*>(u)->t->present(text(device)) ? 1 : 0;
    });
  }
  static int transportControl(void* u, hearth_str device, hearth_str user, hearth_str command,
                              hearth_str params, hearth_done* done, hearth_out error) {
    auto* tr = static_cast<Transport*>(u);
    auto d = std::make_shared<Done>(tr->api, done);
    return guarded(error, [&] {
      tr->t->control(text(device), text(user), text(command), text(params),
                     [d](Result<std::string> r) {
                       if (d->called) return;
                       d->called = true;
                       if (r.isOk()) {
                         d->api->done_complete(d->done, HEARTH_OK, str(r.value()));
                       } else {
                         d->api->done_complete(d->done, static_cast<int32_t>(r.status().code()),
                                               str(r.status().message()));
                       }
                     });
    });
  }
  struct Transport {
    const hearth_host_api* api;
    DeviceTransport* t;
  };

  Status registerTransport(const std::string& transport, DeviceTransport* t) override {
    static const hearth_transport kFns = {sizeof(hearth_transport), &CContext::transportPresent,
                                          &CContext::transportControl};
    std::string e;
    const int32_t code = api_->register_transport(ctx_, str(transport), &kFns,
                                                  new Transport{api_, t}, &release<Transport>,
                                                  into(e));
    return status(code, std::move(e));
  }
  Status report(const DeviceReport& r) override {
    hearth_device_report c{sizeof(hearth_device_report),
                           str(r.deviceId),
                           str(r.transport),
                           str(r.model),
                           str(r.name),
                           str(r.firmware),
                           r.bindWindowSec,
                           r.inventoryOnly ? 1 : 0};
    std::string e;
    const int32_t code = api_->device_report(ctx_, &c, into(e));
    return status(code, std::move(e));
  }
  void setOnline(const std::string& deviceId, bool online) override {
    api_->set_online(ctx_, str(deviceId), online ? 1 : 0);
  }
  Result<std::string> presentProvisionToken(const std::string& deviceId,
                                            const std::string& token) override {
    std::string out;
    const int32_t code = api_->present_provision_token(ctx_, str(deviceId), str(token), into(out));
    if (code != HEARTH_OK) return status(code, std::move(out));
    return out;
  }
  Status reportReset(const std::string& deviceId) override {
    std::string e;
    const int32_t code = api_->report_reset(ctx_, str(deviceId), into(e));
    return status(code, std::move(e));
  }
  Status refuseProvisionToken(const std::string& deviceId, const std::string& token) override {
    std::string e;
    const int32_t code = api_->refuse_provision_token(ctx_, str(deviceId), str(token), into(e));
    return status(code, std::move(e));
  }
  size_t notifyBoundUsers(const std::string& deviceId, const std::string& event,
                          const std::string& dataJson) override {
    return api_->notify_bound_users(ctx_, str(deviceId), str(event), str(dataJson));
  }
  std::vector<std::string> boundUsers(const std::string& deviceId) const override {
    std::vector<std::string> out;
    api_->bound_users(
        ctx_, str(deviceId),
        [](void* u, hearth_str s) { static_cast<std::vector<std::string>*>(u)->push_back(text(s)); },
        &out);
    return out;
  }
  std::optional<DeviceInfo> deviceInfo(const std::string& deviceId) const override {
    std::optional<DeviceInfo> out;
    api_->device_info(
        ctx_, str(deviceId),
        [](void* u, const hearth_device_info* i) {
          DeviceInfo d;
          d.deviceId = text(i->device_id);
          d.transport = text(i->transport);
          d.model = text(i->model);
          d.name = text(i->name);
          d.firmware = text(i->firmware);
          d.bindMode = text(i->bind_mode);
          d.ownerId = text(i->owner_id);
          d.online = i->online != 0;
          *static_cast<std::optional<DeviceInfo>*>(u) = std::move(d);
        },
        &out);
    return out;
  }
  void controlAs(const std::string& userId, const std::string& deviceId, const std::string& command,
                 const std::string& paramsJson, const std::string& via,
                 std::function<void(Result<std::string>)> done) override {
    using Fn = std::function<void(Result<std::string>)>;
    api_->control_as(
        ctx_, str(userId), str(deviceId), str(command), str(paramsJson), str(via),
        [](void* u, int32_t code, hearth_str t, hearth_out error) {
          return guarded(error, [&] {
            auto& fn = *static_cast<Fn*>(u);
            if (code == HEARTH_OK) {
              fn(text(t));
            } else {
              fn(status(code, text(t)));
            }
          });
        },
        new Fn(std::move(done)), &release<Fn>);
  }
  Status addDetailProvider(
      const std::string& key,
      std::function<std::string(const std::string&, const std::string&)> fn) override {
    using Fn = std::function<std::string(const std::string&, const std::string&)>;
    std::string e;
    const int32_t code = api_->add_detail_provider(
        ctx_, str(key),
        [](void* u, hearth_str device, hearth_str user, hearth_out json, hearth_out error) {
          return guarded(error, [&] {
            write(json, (*static_cast<Fn*>(u))(text(device), text(user)));
          });
        },
        new Fn(std::move(fn)), &release<Fn>, into(e));
    return status(code, std::move(e));
  }

  const hearth_host_api* api_;
  hearth_ctx* ctx_;
  std::string name_;
  CLogger logger_;
  CClock clock_;
  Config config_;
  CStore store_;
};

}  // namespace hearth::sdk::detail
