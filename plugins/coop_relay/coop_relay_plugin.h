#pragma once
// coop_relay: the multi-device cooperation API of seed 000 (mtl.coop) served through the hub.
//
// Terminals (app installs, identified by the core as (user, MQTT client id) after `hello`)
// ask each other for access, grant it per terminal pair, and send each other commands that
// the target replies to. The plugin keeps grants, pending access requests, commands in flight
// and undelivered notices in its KvStore and mirrors them in memory; every change is committed
// before the request that caused it is answered, so a hub restart loses nothing acknowledged.
//
// Threading: everything runs on the hub loop (the PluginContext contract); no locks.
//
// One class, its member functions in one file per seam: coop_relay_plugin.cc (construction,
// lifecycle, core events, lookups), coop_relay_methods.cc (the mtl.coop handlers),
// coop_relay_state.cc (load, indexes, the change pipeline), coop_relay_delivery.cc (flush and
// the delivery window), coop_relay_deadlines.cc (expiry and timeouts); coop_relay_shared.h holds
// the constants and event bodies they share.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "coop_model.h"
#include "hearth/host.h"
#include "hearth/plugin.h"
#include "hearth/util/deadline_queue.h"

namespace hearth::coop {

// The values of accessResponse.code (0 = agreed, as in the seed).
enum class AccessResponseCode { kAgreed = 0, kRejected = 1, kExpired = 2, kRemoved = 3 };

class CoopRelayPlugin : public Plugin {
 public:
  explicit CoopRelayPlugin(PluginContext& ctx);
  ~CoopRelayPlugin() override = default;

  // Loads the durable state, expires what expired while the hub was down, re-arms the
  // deadline timer, registers the methods and subscribes to terminal presence.
  Status start() override;
  void stop() override;

  static const hearth_config_key* configKeys();
  static size_t configKeyCount();

 private:
  // An event for one terminal (or, with an empty clientId, for every online terminal of the
  // user). Durable notices wait in the outbox while the terminal is offline; the others are
  // hints (sync, intermediate command states) that only make sense to a connected terminal.
  struct Notice {
    TerminalKey to;
    std::string event;
    std::string dataJson;
    int64_t expiresAtMs = 0;  // durable notices only
    bool keep = false;        // durable: into the outbox even if the terminal looks online
  };

  // One atomic change: store writes that commit together, the in-memory changes that mirror
  // them (applied only after the commit succeeded), and the events it causes.
  struct Batch {
    struct Op {
      bool erase = false;
      std::string collection;
      std::string key;
      std::string value;
    };
    std::vector<Op> ops;
    std::vector<std::function<void()>> applies;
    std::vector<Notice> durable;
    std::vector<Notice> hints;

    void put(std::string collection, std::string key, std::string value) {
      ops.push_back({false, std::move(collection), std::move(key), std::move(value)});
    }
    void erase(std::string collection, std::string key) {
      ops.push_back({true, std::move(collection), std::move(key), {}});
    }
    void apply(std::function<void()> fn) { applies.push_back(std::move(fn)); }
  };

  using Method = void (CoopRelayPlugin::*)(const Request&, const json::Params&, const Responder&);

  // --- requests (one per mtl.coop call) ---
  void getOpenId(const Request& req, const json::Params& p, const Responder& res);
  void getDeviceInfo(const Request& req, const json::Params& p, const Responder& res);
  void requestAccessTo(const Request& req, const json::Params& p, const Responder& res);
  void agreeAccessRequest(const Request& req, const json::Params& p, const Responder& res);
  void rejectAccessRequest(const Request& req, const json::Params& p, const Responder& res);
  void getMyDevices(const Request& req, const json::Params& p, const Responder& res);
  void getAuthorizedDevices(const Request& req, const json::Params& p, const Responder& res);
  void getAccessibleDevices(const Request& req, const json::Params& p, const Responder& res);
  void getAllDevices(const Request& req, const json::Params& p, const Responder& res);
  void removeAuthorizedDevice(const Request& req, const json::Params& p, const Responder& res);
  void removeAccessibleDevice(const Request& req, const json::Params& p, const Responder& res);
  void removeMyDevice(const Request& req, const json::Params& p, const Responder& res);
  void sendCommand(const Request& req, const json::Params& p, const Responder& res);
  void replyCommand(const Request& req, const json::Params& p, const Responder& res);
  // SPEC §4a: the target confirms it received commands (offered -> delivered).
  void ackCommand(const Request& req, const json::Params& p, const Responder& res);

  // The pending access request that agreeAccessRequest / rejectAccessRequest answer: params
  // {commandId, to}; the request must be addressed to the caller and `to` must be the terminal
  // that asked. Otherwise NOT_FOUND or FORBIDDEN (bad params throw json::InvalidParam).
  struct Answerable {
    const AccessRequest* request = nullptr;
    Endpoint me;  // the caller, who decides
  };
  Result<Answerable> answerableRequest(const Request& req, const json::Params& p) const;

  Status registerMethods();
  void subscribeEvents();

  // --- state ---
  Status load();
  void insertCommand(const Command& c);
  void eraseCommand(const std::string& commandId);
  void insertRequest(const AccessRequest& r);
  void eraseRequest(const std::string& commandId);
  void insertOutbox(const OutboxEntry& e);
  void eraseOutbox(uint64_t seq);

  // --- the change pipeline ---
  // Commits the batch (plus outbox rows for durable notices to offline terminals), then
  // applies it to memory and sends its events. On a store error nothing changes unless
  // applyOnFailure (used when the events already went out and a resend is the lesser harm).
  Status commit(Batch& batch, bool applyOnFailure = false);
  void sendNotice(const Notice& n);

  // Adds to `batch` the decision of an access request and the notice to its requester.
  void decideRequest(Batch& batch, const AccessRequest& r, AccessResponseCode code,
                     const Endpoint& decider);
  // Adds to `batch` the end of a command in a final state other than replied.
  void finishCommand(Batch& batch, const Command& c, CommandState state, const char* reason);
  // Adds to `batch` everything that ends when a grant is revoked.
  void revokeGrant(Batch& batch, const Grant& g);
  // Adds to `batch` the removal of every trace of a terminal (removeMyDevice, user removed).
  void purgeTerminal(Batch& batch, const TerminalKey& key, bool senderGone);

  // Delivers what waits for a terminal that is online now: notices, access requests, offered
  // commands it has not confirmed (again), then queued commands in send order, as many as its
  // delivery window has room for. reofferOlderThanMs: 0 offers every unconfirmed command and
  // pending access request again (a new session: presence online, hello, hub start); > 0 only
  // commands last offered at least that long ago; < 0 (kNoReoffer) none.
  void flush(const TerminalKey& key, int64_t reofferOlderThanMs);
  static constexpr int64_t kNoReoffer = -1;
  void flushAllOnline();
  // Flushes every target whose delivery window gained room (a delivered command to it was
  // replied, timed out or dropped) since the last call. Called once at the end of every entry
  // into the plugin (request, core event, timer), after the change that freed the room is
  // committed and its events sent.
  void deliverFreed();
  // Commands to `target` in state delivered: they hold its delivery window until they end.
  size_t inFlight(const TerminalKey& target) const;

  // Writes the records of commands delivered at once (sendCommand's fast path) in one
  // transaction and answers their senders.
  // Writes the records of commands delivered at once and still unreplied (all, or dueOnly:
  // those out for kWriteBehind), answering their senders once they are on disk.
  void commitDelivered(bool dueOnly = false);
  void armWriteBehind();  // the timer for the oldest of them

  // --- deadlines (command expiry / reply timeout, request expiry, outbox expiry) ---
  void addDeadline(int64_t atMs, const std::string& tag);
  void removeDeadline(const std::string& tag);
  void armTimer();
  void expireDue();

  // --- presence ---
  void onOnline(const std::string& dataJson) { onPresence(dataJson, true); }
  void onOffline(const std::string& dataJson) { onPresence(dataJson, false); }
  void onPresence(const std::string& dataJson, bool online);
  void onHello(const std::string& dataJson);
  // Core's terminal.seen (a request from it, or presence `online` repeated): offer again what
  // it has not confirmed.
  void onSeen(const std::string& dataJson);
  void onUserRemoved(const std::string& dataJson);

  // --- helpers ---
  int64_t nowMs() const { return ctx_.clock().nowMs(); }
  bool isOnline(const TerminalKey& key) const;
  // A terminal that said hello and was not removed with removeMyDevice since.
  std::optional<TerminalInfo> visibleTerminal(const TerminalKey& key) const;
  // The calling terminal, or NOT_FOUND (it must say hello first).
  Result<Endpoint> caller(const Request& req) const;
  // The addressed terminal, or NOT_FOUND (unknown, removed, or another app).
  Result<Endpoint> resolveTarget(const Endpoint& to) const;
  const Grant* findGrant(const TerminalKey& granter, const TerminalKey& grantee) const;
  json::Array::Ptr deviceList(bool authorized, const TerminalKey& self) const;
  std::string newCommandId();
  std::string commandStateJson(const Command& c, CommandState state, const char* reason) const;
  void hintPartners(Batch& batch, const TerminalKey& key) const;
  static Notice syncHint(const TerminalKey& to, const char* type);

  PluginContext& ctx_;
  bool running_ = false;

  // Config (validated by the core against configKeys()).
  int64_t commandTtlMs_;
  int64_t replyTimeoutMs_;
  int64_t accessRequestTtlMs_;
  size_t maxQueuedPerTerminal_;
  size_t deliveryWindow_;  // delivered commands per target awaiting their reply, at most

  uint64_t nextSeq_ = 1;
  // Random bytes from the OS for commandIds, fetched 4 KiB (256 ids) at a time.
  unsigned char random_[4096];
  size_t randomUsed_ = sizeof random_;
  std::map<std::string, Grant> grants_;                            // by Grant::storeKey()
  std::map<std::string, AccessRequest> requests_;                  // by commandId
  std::map<std::string, Command> commands_;                        // by commandId
  std::map<TerminalKey, std::map<uint64_t, std::string>> queued_;  // target -> seq -> id
  std::map<TerminalKey, std::map<uint64_t, std::string>> offered_;  // target -> seq -> id
  std::map<TerminalKey, size_t> inFlight_;  // target -> commands offered/delivered (never 0)
  std::set<TerminalKey> freed_;             // targets whose window gained room (deliverFreed)
  std::map<TerminalKey, std::map<uint64_t, OutboxEntry>> outbox_;  // target -> seq -> entry
  std::map<uint64_t, TerminalKey> outboxOwner_;                    // seq -> target
  std::set<TerminalKey> hidden_;                                   // removeMyDevice

  // Commands delivered at once whose record is not on disk yet, with the sendCommand answer
  // that waits for it: the record is written by a group commit shortly after, or never if the
  // reply comes first (see sendCommand).
  std::map<std::string, Responder> unacked_;  // commandId -> the sender's responder
  Timer writeBehindTimer_;                    // armed while unacked_ waits for its commit

  util::DeadlineQueue<std::string> deadlines_;  // "c:"/"r:"/"o:" + id -> wall ms
  Timer timer_;                                 // for the earliest deadline, at timerAtMs_
  int64_t timerAtMs_ = 0;
  int64_t backoffUntilMs_ = 0;  // after a store error, deadlines wait before the next try
};

}  // namespace hearth::coop
