// Fuzzes the request path: the envelope the RequestRouter validates and the params of every
// core method (the hub's own, daemon/core_methods.h, and the binding engine's), with the real
// router, identity service, binding service, event bus and database (in memory) wired as the hub
// wires them, a recording Publisher and a fake broker for the accounts of userAdd/userRemove/
// userList.
//
// An input is a script, one record per line:
//
//   TOPIC[\tRESPONSE_TOPIC[\tCORRELATION]]   a request on TOPIC ...
//   PAYLOAD                                   ... whose payload is the next line
//   !advance SECONDS                          moves the clock and fires due timers (expiry)
//   !report DEVICE TRANSPORT MODEL WINDOW     a transport reports a device (Devices::report)
//   !online DEVICE 0|1                        presence change
//   !provision DEVICE                         the device presents the last provisioning token
//   !reset DEVICE                             the device reports a factory reset
//   !pad KIB                                  pads the next payload with KIB KiB of spaces
//   !accounts dynsec|external|down            broker.user_management, or dynsec not answering
//
// "@qrKey", "@sharingId" and "@token" in a payload are replaced by the last such value a
// response carried, so the fuzzer can walk share/scan/accept sequences it could never guess.
//
// Checked after every request (docs/mqtt-api.md): exactly one response when the topic is a
// request topic (none otherwise), on the default or the permitted response topic, carrying the
// correlation data, with a well-formed envelope; INTERNAL only where the test transport asked
// for it; an error response leaves the database unchanged. Any violation aborts.

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <sqlite3.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "binding/service.h"
#include "config/config.h"
#include "control/router.h"
#include "daemon/core_methods.h"
#include "loop/clock.h"
#include "loop/event_bus.h"
#include "loop/hub_loop.h"
#include "loop/logger.h"
#include "identity/identity.h"
#include "store/database.h"

namespace hearth {
namespace {

constexpr size_t kMaxRecords = 64;

[[noreturn]] void fail(const std::string& what, const std::string& topic,
                       const std::string& payload) {
  std::fprintf(stderr, "request_fuzzer: %s\n  topic: %s\n  payload: %.400s\n", what.c_str(),
               topic.c_str(), payload.c_str());
  std::abort();
}

// MQTT topic names and the Response Topic property are UTF-8 strings, and the broker refuses a
// PUBLISH whose strings are not valid UTF-8 (MQTT 5 §1.5.4); such requests never reach the hub.
bool isValidUtf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xE  ? 3
                 : (c >> 3) == 0x1E ? 4
                                    : 0;
    if (len == 0 || i + len > s.size() || c == 0) return false;
    uint32_t cp = len == 1 ? c : c & (0x7F >> len);
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static const uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

struct Published {
  std::string topic;
  std::string payload;
  bool hasCorrelation = false;
  std::string correlation;
};

class RecordingPublisher : public Publisher {
 public:
  void publish(const std::string& topic, const std::string& payload,
               const std::string* correlationData) override {
    Published p{topic, payload, correlationData != nullptr,
                correlationData ? *correlationData : std::string()};
    published.push_back(std::move(p));
  }
  std::vector<Published> published;
};

// A transport for "wifi" and "ble" whose control() answers according to the command, so that
// every way a transport can answer (now, later on the loop, never, twice) is exercised.
class FuzzTransport : public DeviceTransport {
 public:
  explicit FuzzTransport(HubLoop& loop) : loop_(loop) {}
  bool present(const std::string& deviceId) const override { return absent.count(deviceId) == 0; }
  void control(const std::string& deviceId, const std::string& userId, const std::string& command,
               const std::string& paramsJson,
               std::function<void(Result<std::string>)> done) override {
    if (command == "hang") {
      return done(Status::error(ErrorCode::kTimeout, "device did not answer"));
    }
    if (command == "later") {
      loop_.post([done] { done(std::string("{\"later\":true}")); });
      return;
    }
    if (command == "drop") return;  // the core must answer INTERNAL itself
    if (command == "twice") {
      done(std::string("{}"));
      done(Status::error(ErrorCode::kOffline, "second answer"));
      return;
    }
    done(paramsJson);  // echo: valid JSON object, as the router validated it
  }
  std::set<std::string> absent;

 private:
  HubLoop& loop_;
};

// The broker's accounts as mosquitto's Dynamic Security plugin keeps them (DynsecAdmin's
// contract). Answers on a later turn of the loop, as the broker's answer arrives; when "down",
// UNAVAILABLE as when the plugin does not answer.
class FakeBrokerAccounts : public BrokerAccounts {
 public:
  explicit FakeBrokerAccounts(HubLoop& loop) : loop_(loop) {}
  void addUser(const std::string& userId, const std::string&,
               std::function<void(Status)> done) override {
    Status s = down ? unanswered()
               : users.insert(userId).second
                   ? Status::ok()
                   : Status::error(ErrorCode::kConflict, "user " + userId + " already exists");
    loop_.post([done, s] { done(s); });
  }
  void removeUser(const std::string& userId, std::function<void(Status)> done) override {
    Status s = down                  ? unanswered()
               : users.erase(userId) ? Status::ok()
                                     : Status::error(ErrorCode::kNotFound, "no user " + userId);
    loop_.post([done, s] { done(s); });
  }
  void listUsers(std::function<void(Result<std::vector<std::string>>)> done) override {
    if (down) return loop_.post([done] { done(unanswered()); });
    loop_.post([done, list = std::vector<std::string>(users.begin(), users.end())] { done(list); });
  }
  std::set<std::string> users;
  bool down = false;

 private:
  static Status unanswered() {
    return Status::error(ErrorCode::kUnavailable,
                         "the broker's dynamic-security plugin did not answer");
  }
  HubLoop& loop_;
};

// What every input starts from, built once per process: the parsed fuzz config and the
// database after the set-up (migrated, the users added), kept as a copy in an attached
// in-memory database. Each input gets the working database back in exactly that state by
// emptying every table and copying the template's rows back (prepared once, in one
// transaction), instead of opening, migrating and integrity-checking a new database: the state
// an input sees is the same as before, so a crash still reproduces from its input alone. (Not
// sqlite3_backup: it makes the connection re-read its schema, which costs more than the copy.)
class Baseline {
 public:
  static Baseline& get() {
    static Baseline baseline;
    return baseline;
  }

  // The working database, reset to the template.
  Database& freshDatabase() {
    try {
      SQLite::Transaction tx(db_->sql());
      for (auto& st : reset_) {
        st->exec();
        st->reset();
      }
      tx.commit();
    } catch (const std::exception& e) {
      fail(std::string("cannot reset the database: ") + e.what(), "", "");
    }
    return *db_;
  }

  const config::HubConfig& config() const { return config_; }
  static constexpr const char* kUsers[] = {"alice", "bob", "carol", "hearthd", "admin"};

 private:
  Baseline() {
    auto cfg = config::loadString(
        "admin:\n"
        "  users: [hearthd, admin]\n"
        "binding:\n"
        "  provision_ttl: 60s\n"
        "  share: {qr_ttl: 60s, invite_ttl: 120s, max_members: 4, max_failed_scans: 3}\n"
        "  products:\n"
        "    - {model: 'free-*', mode: share_free}\n"
        "    - {model: 'oos-*', mode: owner_on_share}\n"
        "    - {model: 'pre-*', mode: preemptive}\n",
        "fuzz.yaml");
    if (!cfg.config) fail("fuzz config rejected: " + config::formatErrors(cfg.errors), "", "");
    config_ = std::move(*cfg.config);
    auto db = Database::open(":memory:");
    if (!db) fail("cannot open the in-memory database: " + db.status().message(), "", "");
    db_ = std::move(db).value();
    ManualClock clock;
    IdentityService identity(*db_, clock);
    for (const char* u : kUsers) {
      if (!identity.addUser(u)) fail(std::string("cannot add user ") + u, "", "");
    }
    SQLite::Database& sql = db_->sql();
    // SQLite's own small-allocation pool (lookaside), larger than its default, so preparing the
    // statements of every load() does not go through the sanitizer's malloc each time. SQLite
    // is not the code under test, and hearth's allocations are not touched.
    if (sqlite3_db_config(sql.getHandle(), SQLITE_DBCONFIG_LOOKASIDE, nullptr, 1200, 4096) !=
        SQLITE_OK) {
      fail("cannot configure SQLite's lookaside pool", "", "");
    }
    sql.exec("ATTACH ':memory:' AS baseline");
    // In creation order, which is the order of the foreign keys: children are emptied first
    // and filled last. (Not PRAGMA defer_foreign_keys: a flag pragma expires every prepared
    // statement, and re-preparing them costs more than the copy.)
    SQLite::Statement tables(
        sql, "SELECT name FROM main.sqlite_schema WHERE type = 'table' ORDER BY rowid");
    std::vector<std::string> names;
    while (tables.executeStep()) names.push_back(tables.getColumn(0).getString());
    for (auto t = names.rbegin(); t != names.rend(); ++t) {
      reset_.push_back(std::make_unique<SQLite::Statement>(sql, "DELETE FROM main.\"" + *t + "\""));
    }
    for (const std::string& t : names) {
      // "copy_" because sqlite_sequence (AUTOINCREMENT) is a reserved name.
      const std::string live = "main.\"" + t + "\"", copy = "baseline.\"copy_" + t + "\"";
      sql.exec("CREATE TABLE " + copy + " AS SELECT * FROM " + live);
      reset_.push_back(std::make_unique<SQLite::Statement>(
          sql, "INSERT INTO " + live + " SELECT * FROM " + copy));
    }
  }

  config::HubConfig config_;
  std::unique_ptr<Database> db_;
  std::vector<std::unique_ptr<SQLite::Statement>> reset_;
};

// The hub's pieces, built for every input on the baseline's database (reset first), with a
// fresh clock, loop, bus, services and router, wired as the hub wires them.
class Rig {
 public:
  Rig()
      : config_(Baseline::get().config()),
        db_(&Baseline::get().freshDatabase()),
        logger_(sink_, "fuzz"),
        loop_(clock_),
        bus_(loop_),
        accounts_(loop_),
        transport_(loop_),
        router_(pub_, logger_) {
    // Logs only what would be a bug; the checks below decide, the log helps to read a crash.
    sink_.setLevel(LogLevel::kError);
    identity_ = std::make_unique<IdentityService>(*db_, clock_);
    if (!identity_->load()) fail("identity service did not load", "", "");
    for (const char* u : Baseline::kUsers) accounts_.users.insert(u);
    bindings_ = std::make_unique<binding::BindingService>(binding::ServiceDeps{
        *db_, loop_, clock_, logger_, *identity_,
        [](const std::string& userId, const std::string& event, const std::string& data) {
          // The hub parses this before sending; broken JSON would be a silent lost event.
          try {
            Poco::JSON::Parser().parse(data);
          } catch (const std::exception& e) {
            fail(std::string("event data is not JSON: ") + e.what(), event, data);
          }
        }});
    if (!bindings_->load(config_)) fail("binding engine did not load", "", "");
    if (!registerCoreMethods(router_, coreMethodDeps())) fail("core methods", "", "");
    if (!bindings_->registerMethods(router_)) fail("binding methods did not register", "", "");
    for (const char* t : {"wifi", "ble"}) {
      if (!bindings_->registerTransport(t, &transport_, "fuzz")) fail("transport", t, "");
    }
    // A few devices in each binding mode, so requests reach the policy, not just NOT_FOUND.
    report("ble-1", "ble", "lock-1", 0);
    report("ble-2", "ble", "free-lamp", 0);
    report("ble-3", "ble", "oos-plug", 0);
    report("wifi-1", "wifi", "bulb", 0);
    report("wifi-2", "wifi", "pre-fan", 30);
  }

  CoreMethodDeps coreMethodDeps() {
    return CoreMethodDeps{config_,
                          logger_,
                          bus_,
                          *identity_,
                          *bindings_,
                          accounts_,
                          [this] {
                            return "{\"state\":\"online\",\"version\":\"fuzz\","
                                   "\"userManagement\":\"" +
                                   config_.userManagement + "\"}";
                          },
                          [](Poco::JSON::Object& s) {
                            s.set("plugins", Poco::JSON::Object::Ptr(new Poco::JSON::Object));
                            s.set("details", Poco::JSON::Object::Ptr(new Poco::JSON::Object));
                          },
                          [] { return uint64_t{1}; }};
  }

  void report(const std::string& id, const std::string& transport, const std::string& model,
              int32_t window) {
    DeviceReport r;
    r.deviceId = id;
    r.transport = transport;
    r.model = model;
    r.name = id;
    r.bindWindowSec = window;
    (void)bindings_->report(r);
  }

  void command(const std::string& line) {
    std::istringstream in(line.substr(1));
    std::string verb, a, b, c;
    long long n = 0;
    in >> verb;
    if (verb == "advance" && (in >> n) && n >= 0 && n <= 7 * 86400) {
      clock_.advance(std::chrono::seconds(n));
      loop_.runOnce();
    } else if (verb == "report" && (in >> a >> b >> c >> n)) {
      report(a, b, c, static_cast<int32_t>(std::max<long long>(-1, std::min<long long>(n, 600))));
    } else if (verb == "online" && (in >> a >> n)) {
      if (n) {
        transport_.absent.erase(a);
      } else {
        transport_.absent.insert(a);
      }
      bindings_->setOnline(a, n != 0);
    } else if (verb == "provision" && (in >> a)) {
      (void)bindings_->presentProvisionToken(a, captured_["token"]);
    } else if (verb == "reset" && (in >> a)) {
      (void)bindings_->reportReset(a);
    } else if (verb == "pad" && (in >> n) && n >= 0 && n <= 80) {
      padKib_ = static_cast<size_t>(n);
    } else if (verb == "accounts" && (in >> a) &&
               (a == "dynsec" || a == "external" || a == "down")) {
      config_.userManagement = a == "external" ? "external" : "dynsec";
      accounts_.down = a == "down";
    }
    loop_.runOnce();
  }

  void request(const std::string& header, std::string payload) {
    MqttMessage msg;
    std::vector<std::string> fields;
    size_t start = 0;
    for (;;) {
      size_t tab = header.find('\t', start);
      fields.push_back(header.substr(start, tab == std::string::npos ? tab : tab - start));
      if (tab == std::string::npos || fields.size() == 3) break;
      start = tab + 1;
    }
    msg.topic = fields[0];
    if (fields.size() > 1) msg.responseTopic = fields[1];
    if (!isValidUtf8(msg.topic) || !isValidUtf8(msg.responseTopic)) return;
    if (fields.size() > 2) {
      msg.hasCorrelation = true;
      msg.correlationData = fields[2];
    }
    for (const char* key : {"qrKey", "sharingId", "token"}) {
      std::string marker = std::string("@") + key;
      for (size_t at; (at = payload.find(marker)) != std::string::npos;) {
        payload.replace(at, marker.size(), captured_[key]);
      }
    }
    if (padKib_ > 0) payload.append(padKib_ * 1024, ' ');
    padKib_ = 0;
    msg.payload = payload;

    const auto topic = parseRequestTopic(msg.topic);
    const int64_t changesBefore = db_->sql().getTotalChanges();
    pub_.published.clear();
    router_.handle(msg);
    loop_.runOnce();

    if (!topic) {
      if (!pub_.published.empty()) fail("a response to a non-request topic", msg.topic, payload);
      return;
    }
    if (pub_.published.size() != 1) {
      fail(std::to_string(pub_.published.size()) + " responses to one request", msg.topic, payload);
    }
    const Published& res = pub_.published.front();
    if (res.topic != topic->replyTopic) {
      // Only a Response Topic inside the requester's own tree is ever honoured.
      const std::string tree = topic->scope == MethodScope::kAdmin
                                   ? "hearth/v1/admin/"
                                   : "hearth/v1/u/" + topic->userId + "/";
      if (res.topic != msg.responseTopic || res.topic.rfind(tree, 0) != 0 ||
          res.topic.find_first_of("+#") != std::string::npos) {
        fail("response on " + res.topic, msg.topic, payload);
      }
    }
    if (res.hasCorrelation != msg.hasCorrelation || res.correlation != msg.correlationData) {
      fail("correlation data not echoed", msg.topic, payload);
    }
    checkEnvelope(msg, res.payload, changesBefore);
  }

 private:
  void checkEnvelope(const MqttMessage& msg, const std::string& response, int64_t changesBefore) {
    Poco::JSON::Object::Ptr env;
    try {
      env = Poco::JSON::Parser().parse(response).extract<Poco::JSON::Object::Ptr>();
    } catch (const std::exception& e) {
      fail(std::string("response is not a JSON object: ") + e.what(), msg.topic, response);
    }
    if (!env->has("id") || !env->has("ok")) fail("response without id/ok", msg.topic, response);
    if (!env->isNull("id") && !env->get("id").isString()) {
      fail("response id is neither a string nor null", msg.topic, response);
    }
    if (env->getValue<bool>("ok")) {
      auto result = env->getObject("result");
      if (!result) fail("ok response without a result object", msg.topic, response);
      for (const char* key : {"qrKey", "sharingId", "token"}) {
        if (result->has(key)) captured_[key] = result->getValue<std::string>(key);
      }
      return;
    }
    auto error = env->getObject("error");
    if (!error || !error->has("code") || !error->has("message")) {
      fail("error response without code/message", msg.topic, response);
    }
    const std::string code = error->getValue<std::string>("code");
    // INTERNAL means a bug or a storage failure: the in-memory store does not fail, so only
    // the transport commands that misbehave on purpose may cause it.
    const bool askedForIt = parseRequestTopic(msg.topic)->method == "controlDevice" &&
                            msg.payload.find("drop") != std::string::npos;
    if (code == "INTERNAL" && !askedForIt) {
      fail("INTERNAL error", msg.topic, response);
    }
    // Bad input never changes state.
    if (db_->sql().getTotalChanges() != changesBefore) {
      fail("an error response (" + code + ") after a database change", msg.topic, msg.payload);
    }
  }

  config::HubConfig config_;  // a copy: "!accounts" changes it
  Database* db_;
  ManualClock clock_;
  LogSink sink_;
  TaggedLogger logger_;
  HubLoop loop_;
  EventBus bus_;
  FakeBrokerAccounts accounts_;
  FuzzTransport transport_;
  RecordingPublisher pub_;
  RequestRouter router_;
  std::unique_ptr<IdentityService> identity_;
  std::unique_ptr<binding::BindingService> bindings_;
  std::map<std::string, std::string> captured_;
  size_t padKib_ = 0;
};

}  // namespace
}  // namespace hearth

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> lines;
  std::istringstream in(input);
  for (std::string line; std::getline(in, line) && lines.size() < 2 * hearth::kMaxRecords;) {
    lines.push_back(line);
  }
  hearth::Rig rig;
  size_t records = 0;
  for (size_t i = 0; i < lines.size() && records < hearth::kMaxRecords; ++i, ++records) {
    if (!lines[i].empty() && lines[i][0] == '!') {
      rig.command(lines[i]);
      continue;
    }
    std::string payload = i + 1 < lines.size() ? lines[i + 1] : "";
    rig.request(lines[i], payload);
    ++i;
  }
  return 0;
}
