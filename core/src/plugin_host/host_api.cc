// The C table of hearth/plugin_api.h as hearthd implements it: each function turns the C call
// into a call on the core for the plugin whose hearth_ctx it gets, and each closure the plugin
// hands over into a core callback that calls back through PluginHost::call (the guard).

#include <cstring>
#include <stdexcept>

#include "plugin_host/plugin_context.h"

// The host's opaque objects of plugin_api.h.
struct hearth_responder {
  hearth::Responder res;
};
struct hearth_done {
  hearth::HubLoop* loop;
  std::function<void(hearth::Result<std::string>)> fn;
};

namespace hearth {
namespace {

using Ctx = PluginHost::Context;

// A closure the plugin hands over, holding its module (PluginClosure says why).
std::shared_ptr<PluginClosure> closureOf(hearth_ctx* ctx, void* fn, void* user,
                                         hearth_release_fn release) {
  return std::make_shared<PluginClosure>(fn, user, release, Ctx::of(ctx).module());
}

hearth_str str(std::string_view s) { return hearth_str{s.data(), s.size()}; }
std::string text(hearth_str s) { return s.data ? std::string(s.data, s.size) : std::string(); }
void write(hearth_out out, std::string_view s) {
  if (out.write && !s.empty()) out.write(out.self, s.data(), s.size());
}
hearth_out into(std::string& s) {
  return hearth_out{&s, [](void* self, const char* d, size_t n) {
                      static_cast<std::string*>(self)->append(d, n);
                    }};
}
int32_t codeOf(const Status& s) { return static_cast<int32_t>(s.code()); }
int32_t statusOut(const Status& s, hearth_out error) {
  write(error, s.message());
  return codeOf(s);
}
Status statusOf(int32_t code, std::string message) {
  if (code == HEARTH_OK) return Status::ok();
  if (code < 0 || code > HEARTH_STORAGE_FULL) return Status::error(ErrorCode::kInternal, message);
  return Status::error(static_cast<ErrorCode>(code), std::move(message));
}

// A struct the plugin filled, read as this hearthd knows it: members past its size are zero.
template <typename T>
T readSized(const T* in) {
  T out{};
  if (in == nullptr) return out;
  std::memcpy(&out, in, std::min<size_t>(in->size, sizeof(T)));
  out.size = sizeof(T);
  return out;
}

void fillTerminal(const TerminalInfo& t, hearth_terminal_fn fn, void* user) {
  hearth_terminal c{sizeof(hearth_terminal), str(t.userId),      str(t.clientId),
                    str(t.appId),            str(t.deviceModel), str(t.deviceName),
                    str(t.openId),           t.online ? 1 : 0};
  fn(user, &c);
}

// The transport a plugin registered, as the binding engine calls it.
class CTransport final : public DeviceTransport {
 public:
  CTransport(Ctx& ctx, const hearth_transport* fns, std::shared_ptr<PluginClosure> c)
      : ctx_(ctx), fns_(readSized(fns)), c_(std::move(c)) {}
  bool present(const std::string& deviceId) const override {
    if (!fns_.present) return false;
    int32_t present = 0;
    ctx_.host().call(ctx_.name(), "transport present", [&](hearth_out error) {
      return fns_.present(c_->user, str(deviceId), &present, error);
    });
    return present != 0;
  }
  void control(const std::string& deviceId, const std::string& userId, const std::string& command,
               const std::string& paramsJson,
               std::function<void(Result<std::string>)> done) override {
    if (!fns_.control) {
      done(Status::error(ErrorCode::kUnavailable, "the transport takes no commands"));
      return;
    }
    auto* d = new hearth_done{&ctx_.core().loop(), std::move(done)};
    const auto r = ctx_.host().call(ctx_.name(), "transport control", [&](hearth_out error) {
      return fns_.control(c_->user, str(deviceId), str(userId), str(command), str(paramsJson), d,
                          error);
    });
    // Not called: the command is the host's to answer. Called (even if it threw): the plugin's
    // side answers it, at the latest when it drops the callback.
    if (r == PluginHost::Call::kSkipped) {
      auto fn = std::move(d->fn);
      delete d;
      fn(Status::error(ErrorCode::kUnavailable, "plugin " + ctx_.name() + " is not running"));
    }
  }

 private:
  Ctx& ctx_;
  hearth_transport fns_;
  std::shared_ptr<PluginClosure> c_;
};

// -- the table's functions ------------------------------------------------------------------

void apiLog(hearth_ctx* ctx, int level, hearth_str message) {
  const int l = level < 0 ? 0 : level > 3 ? 3 : level;
  Ctx::of(ctx).logger().log(static_cast<LogLevel>(l), std::string_view(message.data, message.size));
}
int64_t apiNowMs(hearth_ctx* ctx) { return Ctx::of(ctx).core().clock().nowMs(); }
int64_t apiSteadyNs(hearth_ctx* ctx) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             Ctx::of(ctx).core().clock().steadyNow().time_since_epoch())
      .count();
}
const hearth_config* apiConfig(hearth_ctx* ctx) {
  return Ctx::configHandle(&Ctx::of(ctx).config());
}
int32_t apiConfigGet(const hearth_config* config, hearth_str key, int type,
                     hearth_config_value* value, hearth_out out) {
  const auto& view = *reinterpret_cast<const ConfigView*>(config);
  const std::string_view k(key.data, key.size);
  try {
    switch (type) {
      case HEARTH_CFG_BOOL:
        value->boolean = view.getBool(k) ? 1 : 0;
        break;
      case HEARTH_CFG_INT:
        value->integer = view.getInt(k);
        break;
      case HEARTH_CFG_DOUBLE:
        value->number = view.getDouble(k);
        break;
      case HEARTH_CFG_DURATION:
        value->duration_ms = view.getDuration(k).count();
        break;
      case HEARTH_CFG_STRING:
      case HEARTH_CFG_PATH:
      case HEARTH_CFG_ENUM:
        write(out, view.getString(k));
        break;
      case HEARTH_CFG_JSON:
        write(out, view.getJson(k));
        break;
      default:
        return HEARTH_INVALID_REQUEST;
    }
  } catch (const std::out_of_range& e) {
    return std::strstr(e.what(), "not declared") ? HEARTH_NOT_FOUND : HEARTH_INVALID_REQUEST;
  }
  return HEARTH_OK;
}

int32_t apiKvPut(hearth_ctx* ctx, hearth_str c, hearth_str k, hearth_str v, hearth_out error) {
  return statusOut(Ctx::of(ctx).store().put({c.data, c.size}, {k.data, k.size}, {v.data, v.size}),
                   error);
}
int32_t apiKvGet(hearth_ctx* ctx, hearth_str c, hearth_str k, int32_t* found, hearth_out value,
                 hearth_out error) {
  auto r = Ctx::of(ctx).store().get({c.data, c.size}, {k.data, k.size});
  if (!r.isOk()) return statusOut(r.status(), error);
  *found = r.value().has_value() ? 1 : 0;
  if (r.value()) write(value, *r.value());
  return HEARTH_OK;
}
int32_t apiKvErase(hearth_ctx* ctx, hearth_str c, hearth_str k, hearth_out error) {
  return statusOut(Ctx::of(ctx).store().erase({c.data, c.size}, {k.data, k.size}), error);
}
int32_t apiKvScan(hearth_ctx* ctx, hearth_str c, hearth_str from, uint64_t limit,
                  hearth_row_fn row, void* user, hearth_out error) {
  return statusOut(Ctx::of(ctx).store().scan({c.data, c.size}, {from.data, from.size}, limit,
                                             [&](const std::string& key, const std::string& v) {
                                               return row(user, str(key), str(v)) != 0;
                                             }),
                   error);
}
int32_t apiKvCount(hearth_ctx* ctx, hearth_str c, int64_t* count, hearth_out error) {
  auto r = Ctx::of(ctx).store().count({c.data, c.size});
  if (!r.isOk()) return statusOut(r.status(), error);
  *count = r.value();
  return HEARTH_OK;
}
int32_t apiKvTransaction(hearth_ctx* ctx, hearth_body_fn body, void* user, hearth_out error) {
  return statusOut(Ctx::of(ctx).store().transaction([&] {
    std::string message;
    const int32_t code = body(user, into(message));
    return statusOf(code, std::move(message));
  }),
                   error);
}

int32_t apiRegisterMethod(hearth_ctx* ctx, hearth_str method, int scope, hearth_handler_fn fn,
                          void* user, hearth_release_fn release, hearth_out error) {
  Ctx& c = Ctx::of(ctx);
  auto closure = closureOf(ctx, reinterpret_cast<void*>(fn), user, release);
  const std::string name = text(method);
  RequestHandler handler = [&c, closure, name](const Request& req, Responder res) {
    hearth_request r{sizeof(hearth_request), str(req.method), str(req.id), str(req.userId),
                     str(req.clientId),      str(req.paramsJson), req.isAdmin ? 1 : 0};
    auto* responder = new hearth_responder{std::move(res)};
    const auto ran = c.host().call(c.name(), "handler of " + name, [&](hearth_out e) {
      return closure->as<hearth_handler_fn>()(closure->user, &r, responder, e);
    });
    if (ran == PluginHost::Call::kSkipped) delete responder;  // answered INTERNAL by the core
  };
  return statusOut(c.core().router().registerMethod(
                       name, scope == HEARTH_SCOPE_ADMIN ? MethodScope::kAdmin : MethodScope::kUser,
                       std::move(handler), c.name()),
                   error);
}
void apiRespond(hearth_responder* r, int32_t code, hearth_str t) {
  if (code == HEARTH_OK) {
    r->res.ok(text(t));
  } else {
    const Status s = statusOf(code, text(t));
    r->res.error(s.code(), s.message());
  }
}
void apiResponderRelease(hearth_responder* r) { delete r; }

uint64_t apiSendEvent(hearth_ctx* ctx, hearth_str user, hearth_str client, hearth_str event,
                      hearth_str data) {
  return Ctx::of(ctx).core().sendEvent(text(user), text(client), text(event), text(data));
}
int32_t apiTerminal(hearth_ctx* ctx, hearth_str user, hearth_str client, hearth_terminal_fn fn,
                    void* u) {
  auto t = Ctx::of(ctx).core().identity().terminal(text(user), text(client));
  if (!t) return 0;
  fillTerminal(*t, fn, u);
  return 1;
}
int32_t apiTerminalByOpenId(hearth_ctx* ctx, hearth_str openId, hearth_terminal_fn fn, void* u) {
  auto t = Ctx::of(ctx).core().identity().terminalByOpenId(text(openId));
  if (!t) return 0;
  fillTerminal(*t, fn, u);
  return 1;
}
void apiTerminals(hearth_ctx* ctx, hearth_str user, hearth_terminal_fn fn, void* u) {
  for (const auto& t : Ctx::of(ctx).core().identity().terminals(text(user))) fillTerminal(t, fn, u);
}
int32_t apiUserExists(hearth_ctx* ctx, hearth_str user) {
  return Ctx::of(ctx).core().identity().userExists(text(user)) ? 1 : 0;
}

void apiSubscribe(hearth_ctx* ctx, hearth_str topic, hearth_event_fn fn, void* user,
                  hearth_release_fn release) {
  Ctx& c = Ctx::of(ctx);
  auto closure = closureOf(ctx, reinterpret_cast<void*>(fn), user, release);
  const std::string t = text(topic);
  c.core().bus().subscribe(
      t,
      [&c, closure](const std::string& topicName, const std::string& data) {
        c.host().call(c.name(), "bus handler of " + topicName, [&](hearth_out e) {
          return closure->as<hearth_event_fn>()(closure->user, str(topicName), str(data), e);
        });
      },
      c.name());
}
void apiPublish(hearth_ctx* ctx, hearth_str topic, hearth_str data) {
  Ctx::of(ctx).core().bus().publish(text(topic), text(data));
}

uint64_t apiStartTimer(hearth_ctx* ctx, int64_t delayMs, hearth_task_fn fn, void* user,
                       hearth_release_fn release) {
  return Ctx::of(ctx).startTimer(
      delayMs, closureOf(ctx, reinterpret_cast<void*>(fn), user, release));
}
void apiCancelTimer(hearth_ctx* ctx, uint64_t id) { Ctx::of(ctx).cancelTimer(id); }
void apiPost(hearth_ctx* ctx, hearth_task_fn fn, void* user, hearth_release_fn release) {
  Ctx::of(ctx).post(closureOf(ctx, reinterpret_cast<void*>(fn), user, release));
}

void apiSetState(hearth_ctx* ctx, int state, hearth_str detail) {
  const int s = state < 0 || state > HEARTH_STATE_STOPPED ? HEARTH_STATE_FAILED : state;
  Ctx::of(ctx).setState(static_cast<PluginState>(s), text(detail));
}
void apiCounterAdd(hearth_ctx* ctx, hearth_str name, int64_t delta) {
  Ctx::of(ctx).count(text(name), delta);
}

int32_t apiRegisterTransport(hearth_ctx* ctx, hearth_str transport, const hearth_transport* fns,
                             void* user, hearth_release_fn release, hearth_out error) {
  Ctx& c = Ctx::of(ctx);
  auto closure = closureOf(ctx, nullptr, user, release);
  DeviceTransport* t = c.addTransport(fns, std::move(closure));
  return statusOut(c.core().bindings().registerTransport(text(transport), t, c.name()), error);
}
void apiDoneComplete(hearth_done* done, int32_t code, hearth_str t) {
  Result<std::string> r = code == HEARTH_OK ? Result<std::string>(text(t))
                                            : Result<std::string>(statusOf(code, text(t)));
  HubLoop* loop = done->loop;
  auto fn = std::move(done->fn);
  delete done;
  loop->dispatch([fn = std::move(fn), r = std::move(r)]() mutable { fn(std::move(r)); });
}
int32_t apiDeviceReport(hearth_ctx* ctx, const hearth_device_report* report, hearth_out error) {
  const hearth_device_report in = readSized(report);
  DeviceReport r;
  r.deviceId = text(in.device_id);
  r.transport = text(in.transport);
  r.model = text(in.model);
  r.name = text(in.name);
  r.firmware = text(in.firmware);
  r.bindWindowSec = in.bind_window_sec;
  r.inventoryOnly = in.inventory_only != 0;
  return statusOut(Ctx::of(ctx).core().bindings().report(r), error);
}
void apiSetOnline(hearth_ctx* ctx, hearth_str device, int32_t online) {
  Ctx::of(ctx).core().bindings().setOnline(text(device), online != 0);
}
int32_t apiPresentProvisionToken(hearth_ctx* ctx, hearth_str device, hearth_str token,
                                 hearth_out out) {
  auto r = Ctx::of(ctx).core().bindings().presentProvisionToken(text(device), text(token));
  if (!r.isOk()) return statusOut(r.status(), out);
  write(out, r.value());
  return HEARTH_OK;
}
int32_t apiReportReset(hearth_ctx* ctx, hearth_str device, hearth_out error) {
  return statusOut(Ctx::of(ctx).core().bindings().reportReset(text(device)), error);
}
int32_t apiRefuseProvisionToken(hearth_ctx* ctx, hearth_str device, hearth_str token,
                                hearth_out error) {
  return statusOut(Ctx::of(ctx).core().bindings().refuseProvisionToken(text(device), text(token)),
                   error);
}
uint64_t apiNotifyBoundUsers(hearth_ctx* ctx, hearth_str device, hearth_str event,
                             hearth_str data) {
  return Ctx::of(ctx).core().bindings().notifyBoundUsers(text(device), text(event), text(data));
}
void apiBoundUsers(hearth_ctx* ctx, hearth_str device, hearth_string_fn fn, void* u) {
  for (const auto& user : Ctx::of(ctx).core().bindings().boundUsers(text(device))) {
    fn(u, str(user));
  }
}
int32_t apiDeviceInfo(hearth_ctx* ctx, hearth_str device, hearth_device_info_fn fn, void* u) {
  auto d = Ctx::of(ctx).core().bindings().deviceInfo(text(device));
  if (!d) return 0;
  hearth_device_info c{sizeof(hearth_device_info), str(d->deviceId), str(d->transport),
                       str(d->model),              str(d->name),     str(d->firmware),
                       str(d->bindMode),           str(d->ownerId),  d->online ? 1 : 0};
  fn(u, &c);
  return 1;
}
// A one-shot callback into the plugin (control_as, set_broker_account). The answer can come
// after the plugin stopped (a broker that answers late, a SIGHUP restart in between): the
// context, and with it that plugin instance, is gone then, so the answer is dropped (its
// closure released) instead of run — as Context::post does.
std::function<void(int32_t, const std::string&)> oneShot(Ctx& c, std::string what,
                                                         std::shared_ptr<PluginClosure> closure) {
  std::weak_ptr<Ctx> self = c.weak_from_this();
  return [self, what = std::move(what), closure](int32_t code, const std::string& t) {
    auto ctx = self.lock();
    if (!ctx) return;
    ctx->host().call(ctx->name(), what, [&](hearth_out e) {
      return closure->as<hearth_result_fn>()(closure->user, code, str(t), e);
    });
  };
}
void apiControlAs(hearth_ctx* ctx, hearth_str user, hearth_str device, hearth_str command,
                  hearth_str params, hearth_str via, hearth_result_fn done, void* u,
                  hearth_release_fn release) {
  Ctx& c = Ctx::of(ctx);
  auto cb = oneShot(c, "controlAs callback",
                    closureOf(ctx, reinterpret_cast<void*>(done), u, release));
  c.core().bindings().controlAs(text(user), text(device), text(command), text(params), text(via),
                                [cb](Result<std::string> r) {
                                  if (r.isOk()) {
                                    cb(HEARTH_OK, r.value());
                                  } else {
                                    cb(codeOf(r.status()), r.status().message());
                                  }
                                });
}
int32_t apiAddDetailProvider(hearth_ctx* ctx, hearth_str key, hearth_detail_fn fn, void* user,
                             hearth_release_fn release, hearth_out error) {
  Ctx& c = Ctx::of(ctx);
  auto closure = closureOf(ctx, reinterpret_cast<void*>(fn), user, release);
  const std::string k = text(key);
  return statusOut(c.core().bindings().addDetailProvider(
                       k,
                       [&c, closure, k](const std::string& deviceId, const std::string& userId) {
                         std::string json;
                         const auto r = c.host().call(
                             c.name(), "detail provider " + k, [&](hearth_out e) {
                               return closure->as<hearth_detail_fn>()(
                                   closure->user, str(deviceId), str(userId), into(json), e);
                             });
                         return r == PluginHost::Call::kRan ? json : std::string();
                       },
                       c.name()),
                   error);
}
void apiLocalBroker(hearth_ctx* ctx, hearth_broker_info* info, hearth_out host) {
  const LocalBrokerInfo b = Ctx::of(ctx).core().localBroker();
  if (info->size >= offsetof(hearth_broker_info, dynsec) + sizeof(info->dynsec)) {
    info->port = b.port;
    info->dynsec = b.dynsec ? 1 : 0;
  }
  write(host, b.host);
}
void apiSetBrokerAccount(hearth_ctx* ctx, hearth_str username, hearth_str password,
                         const hearth_broker_acl* acls, size_t count, size_t aclSize,
                         hearth_result_fn done, void* u, hearth_release_fn release) {
  Ctx& c = Ctx::of(ctx);
  std::vector<BrokerAcl> list;
  for (size_t i = 0; i < count && aclSize > 0; ++i) {
    const auto* raw = reinterpret_cast<const hearth_broker_acl*>(
        reinterpret_cast<const char*>(acls) + i * aclSize);
    const hearth_broker_acl a = readSized(raw);
    list.push_back(BrokerAcl{text(a.type), text(a.topic), a.allow != 0});
  }
  auto cb = oneShot(c, "setBrokerAccount callback",
                    closureOf(ctx, reinterpret_cast<void*>(done), u, release));
  c.core().setBrokerAccount(text(username), text(password), list,
                            [cb](Status s) { cb(codeOf(s), s.message()); });
}
uint64_t apiSendEventConfirmed(hearth_ctx* ctx, hearth_str user, hearth_str client,
                               hearth_str event, hearth_str data, hearth_result_fn done, void* u,
                               hearth_release_fn release) {
  Ctx& c = Ctx::of(ctx);
  auto cb = oneShot(c, "sendEventConfirmed callback",
                    closureOf(ctx, reinterpret_cast<void*>(done), u, release));
  return c.core().sendEvent(text(user), text(client), text(event), text(data),
                            [cb](Status s) { cb(codeOf(s), s.message()); });
}
void apiStateDir(hearth_ctx* ctx, hearth_out dir) { write(dir, Ctx::of(ctx).core().stateDir()); }
void apiPluginCounters(hearth_ctx* ctx, hearth_counter_fn fn, void* user) {
  Ctx::of(ctx).host().forEachCounter(
      [&](const std::string& plugin, const std::string& name, int64_t value) {
        fn(user, str(plugin), str(name), value);
      });
}

const hearth_host_api kApi = {
    sizeof(hearth_host_api),
    HEARTH_ABI_VERSION,
    apiLog,
    apiNowMs,
    apiSteadyNs,
    apiConfig,
    apiConfigGet,
    apiKvPut,
    apiKvGet,
    apiKvErase,
    apiKvScan,
    apiKvCount,
    apiKvTransaction,
    apiRegisterMethod,
    apiRespond,
    apiResponderRelease,
    apiSendEvent,
    apiTerminal,
    apiTerminalByOpenId,
    apiTerminals,
    apiUserExists,
    apiSubscribe,
    apiPublish,
    apiStartTimer,
    apiCancelTimer,
    apiPost,
    apiSetState,
    apiCounterAdd,
    apiRegisterTransport,
    apiDoneComplete,
    apiDeviceReport,
    apiSetOnline,
    apiPresentProvisionToken,
    apiReportReset,
    apiRefuseProvisionToken,
    apiNotifyBoundUsers,
    apiBoundUsers,
    apiDeviceInfo,
    apiControlAs,
    apiAddDetailProvider,
    apiLocalBroker,
    apiSetBrokerAccount,
    apiStateDir,
    apiPluginCounters,
    apiSendEventConfirmed,
};

}  // namespace

const hearth_host_api* PluginHost::Context::api() { return &kApi; }

PluginHost::Context::Context(CoreServices& core, PluginHost& host, std::string name,
                             std::unique_ptr<ConfigView> config, std::shared_ptr<void> module)
    : core_(core),
      host_(host),
      name_(std::move(name)),
      module_(std::move(module)),
      logger_(core.logSink(), name_),
      config_(std::move(config)),
      store_(core.database(), name_) {}

void PluginHost::Context::release() {
  core_.router().unregisterOwner(name_);
  core_.bus().unsubscribeOwner(name_);
  core_.bindings().unregisterOwner(name_);
  transports_.clear();
  for (TimerId id : timers_) core_.loop().cancelTimer(id);
  timers_.clear();
}

uint64_t PluginHost::Context::startTimer(int64_t delayMs, std::shared_ptr<PluginClosure> c) {
  // Timers fire on the hub loop, where this runs too, so the id is set before it can fire.
  auto idBox = std::make_shared<TimerId>(0);
  const TimerId id = core_.loop().startTimer(
      std::chrono::milliseconds(delayMs < 0 ? 0 : delayMs), [this, c, idBox] {
        timers_.erase(*idBox);
        host_.call(name_, "timer", [&](hearth_out e) {
          return c->as<hearth_task_fn>()(c->user, e);
        });
      });
  *idBox = id;
  timers_.insert(id);
  return id;
}

void PluginHost::Context::cancelTimer(uint64_t id) {
  if (timers_.erase(id)) core_.loop().cancelTimer(id);
}

void PluginHost::Context::post(std::shared_ptr<PluginClosure> c) {
  // Any thread. The context is gone once the plugin has stopped: the work is then dropped (its
  // closure released) instead of run.
  std::weak_ptr<Context> self = weak_from_this();
  core_.loop().post([self, c] {
    if (auto ctx = self.lock()) {
      ctx->host_.call(ctx->name_, "posted work", [&](hearth_out e) {
        return c->as<hearth_task_fn>()(c->user, e);
      });
    }
  });
}

void PluginHost::Context::setState(PluginState state, std::string detailJson) {
  auto& p = host_.plugins_.at(name_);
  if (p.failed) return;  // a failed plugin stays failed
  p.state = state;
  p.detailJson = std::move(detailJson);
  core_.statusChanged();
}

void PluginHost::Context::count(const std::string& counter, int64_t delta) {
  if (counter.empty() || counter.size() > 64 ||
      counter.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") != std::string::npos) {
    logger_.warn("counter name '" + counter + "' is not [a-z0-9_]{1,64}; not counted");
    return;
  }
  host_.plugins_.at(name_).counters[counter] += delta;
}

DeviceTransport* PluginHost::Context::addTransport(const hearth_transport* fns,
                                                   std::shared_ptr<PluginClosure> c) {
  transports_.push_back(std::make_unique<CTransport>(*this, fns, std::move(c)));
  return transports_.back().get();
}

}  // namespace hearth
