#pragma once
// The binding engine as the hub runs it: the pure policy (policy.h) wrapped with durable
// storage (binding_store.h), the control-plane requests of SPEC §3 and §5, expiry timers, and
// the plugin-facing Devices interface. Hub loop only.
//
// Every state change follows the policy's contract: copy the device, apply, persist in one
// synchronous=FULL transaction, swap the copy in, and only then answer and notify.

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "binding/binding_store.h"
#include "binding/device_table.h"
#include "binding/policy.h"
#include "binding/rate_limit.h"
#include "binding/user_index.h"
#include "config/config.h"
#include "control/router.h"
#include "hearth/host.h"
#include "hearth/util/deadline_queue.h"
#include "loop/hub_loop.h"
#include "identity/identity.h"

namespace hearth::binding {

// What the service needs from the hub.
struct ServiceDeps {
  Database& db;
  HubLoop& loop;
  const Clock& clock;
  Logger& logger;
  IdentityService& identity;
  // Sends an event to every online terminal of a user.
  std::function<void(const std::string& userId, const std::string& event,
                     const std::string& dataJson)>
      notifyUser;
};

class BindingService {
 public:
  explicit BindingService(ServiceDeps deps);
  // Where device.* and binding.changed (events.h) go: the hub's event bus. Unset: nowhere.
  using BusPublisher = std::function<void(const std::string& topic, const std::string& dataJson)>;
  void setBusPublisher(BusPublisher publish) { publishBus_ = std::move(publish); }

  // Loads the state and expires what expired while the hub was down.
  Status load(const config::HubConfig& cfg);
  void configure(const config::HubConfig& cfg);
  Status registerMethods(RequestRouter& router);

  // Called when a user account is removed: the user leaves every device and invitation.
  void removeUser(const std::string& userId);

  // -- the Devices interface, per plugin (owner = plugin name) --------------------------
  Status registerTransport(const std::string& transport, DeviceTransport* t,
                           const std::string& owner);
  void unregisterOwner(const std::string& owner);
  Status report(const DeviceReport& report);
  void setOnline(const std::string& deviceId, bool online);
  Result<std::string> presentProvisionToken(const std::string& deviceId, const std::string& token);
  // The device is bound to another user and did not vouch for this token (Devices::
  // refuseProvisionToken): the token's user hears provisionFailed{reason:"taken"}.
  Status refuseProvisionToken(const std::string& deviceId, const std::string& token);
  Status reportReset(const std::string& deviceId);
  size_t notifyBoundUsers(const std::string& deviceId, const std::string& event,
                          const std::string& dataJson);
  std::vector<std::string> boundUsers(const std::string& deviceId) const;
  std::optional<DeviceInfo> deviceInfo(const std::string& deviceId) const;
  void controlAs(const std::string& userId, const std::string& deviceId, const std::string& command,
                 const std::string& paramsJson, const std::string& via,
                 std::function<void(Result<std::string>)> done);
  // getDeviceDetail's extra keys (Devices::addDetailProvider), per plugin (owner).
  using DetailProvider =
      std::function<std::string(const std::string& deviceId, const std::string& userId)>;
  Status addDetailProvider(const std::string& key, DetailProvider fn, const std::string& owner);

  // Writes device records that discovery created or changed (batched, see report()).
  void flushDiscovered();

  size_t deviceCount() const { return devices_.size(); }
  size_t bindingCount() const;

  // SHA-256 hex of a token or key; only hashes are stored.
  static std::string hashSecret(const std::string& secret);

 private:
  struct Transport {
    DeviceTransport* impl;
    std::string owner;
  };

  // Applies op to a copy of the device; persists and swaps on success; sends notifications.
  Outcome mutate(const std::string& deviceId, const std::function<Outcome(Device&)>& op,
                 ProvisionToken* token = nullptr);
  void commitNotifications(const std::vector<Notification>& notes);

  // Group commit. mutate() commits each change without waiting for the disk. In hearthd the
  // database's syncer thread flushes the WAL off the hub loop; without it (tests) one sync runs
  // for everything the hub loop handles before it next waits (markUnsynced). Answers to binding
  // requests and the notifications of changes wait (Database::afterSynced) until the flush
  // that covers them, in the order they were produced, so nothing is acknowledged before it is
  // on disk and an answer never overtakes an earlier one. Entry points that hand a result to a
  // plugin (presentProvisionToken, reportReset) sync at once (settle()).
  void afterDurable(std::function<void()> run, std::function<void()> failed = {});
  void markUnsynced();
  bool settle();  // false if the sync failed
  Responder durableResponder(Responder res);
  void index(const Device& d);
  void unindex(const Device& d);
  void scheduleExpiry(const Device& d);
  void armExpiryTimer();
  void runExpiry();
  std::string deviceEventData(const std::string& deviceId) const;

  // Request handlers.
  void provisionBegin(const Request& req, const Params& p, const Responder& res);
  void bindDevice(const Request& req, const Params& p, const Responder& res);
  void shareDevice(const Request& req, const Params& p, const Responder& res);
  void scanShare(const Request& req, const Params& p, const Responder& res);
  void listShares(const Request& req, const Params& p, const Responder& res);
  void answerShare(const Request& req, const Params& p, const Responder& res,
                   const std::string& how);
  void unbindDevice(const Request& req, const Params& p, const Responder& res);
  void removeMember(const Request& req, const Params& p, const Responder& res);
  void getBoundDevices(const Request& req, const Params& p, const Responder& res);
  void getDeviceDetail(const Request& req, const Params& p, const Responder& res);
  void controlDevice(const Request& req, const Params& p, const Responder& res);
  void adminUnbindDevice(const Request& req, const Params& p, const Responder& res);
  void auditLog(const Request& req, const Params& p, const Responder& res);
  void listDevices(const Request& req, const Params& p, const Responder& res);

  ServiceDeps deps_;
  BindingStore store_;
  BindingPolicy policy_;
  ScanRateLimiter limiter_;
  std::vector<ProductRule> products_;
  ModeDefaults defaults_;

  DeviceTable devices_;  // with each device's DeviceMeta, in id order
  std::map<std::string, ProvisionToken> tokens_;  // by token hash
  std::map<std::string, Transport> transports_;   // by transport name

  // Indexes rebuilt per device on every swap.
  std::map<std::string, std::string> deviceByKeyHash_;
  std::map<std::string, std::string> deviceBySharingId_;
  UserIndex devicesByUser_;  // bound, sharer or invitee

  util::DeadlineQueue<std::string> expiries_;  // device → its next expiry
  struct Detail {
    DetailProvider fn;
    std::string owner;
  };
  std::map<std::string, Detail> detailProviders_;  // by key
  BusPublisher publishBus_;
  std::set<std::string> discoveredDirty_;
  bool settlePosted_ = false;  // a sync is posted to the hub loop (no background sync)
  TimerId discoveredTimer_ = 0;
  TimerId expiryTimer_ = 0;
  int64_t expiryTimerAt_ = 0;
};

}  // namespace hearth::binding
