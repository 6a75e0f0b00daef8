// The binding engine's durable commit: a change is applied to a copy of the device, written
// (Database's group commit: the WAL now, the disk when the syncer's flush covers it), swapped
// in, and only then answered and notified (afterDurable), in the order produced.
#include <Poco/JSON/Object.h>

#include "binding/service.h"
#include "control/params.h"

namespace hearth::binding {
namespace {

std::string notificationJson(const NotificationData& n) {
  Poco::JSON::Object o;
  if (!n.deviceId.empty()) o.set("deviceId", n.deviceId);
  if (!n.reason.empty()) o.set("reason", n.reason);
  if (n.role) o.set("role", roleName(*n.role));
  if (!n.userId.empty()) o.set("userId", n.userId);
  if (!n.sharingId.empty()) o.set("sharingId", n.sharingId);
  if (!n.fromUser.empty()) o.set("fromUser", n.fromUser);
  if (!n.model.empty()) o.set("model", n.model);
  if (!n.name.empty()) o.set("name", n.name);
  if (n.expiresAtMs) o.set("expiresAt", *n.expiresAtMs);
  return toJson(o);
}

}  // namespace

// ---- state changes ----------------------------------------------------------------------------

Outcome BindingService::mutate(const std::string& deviceId,
                               const std::function<Outcome(Device&)>& op, ProvisionToken* token) {
  DeviceEntry* entry = devices_.find(deviceId);
  if (entry == nullptr) {
    Outcome out;
    out.status = Status::error(ErrorCode::kNotFound, "no device " + deviceId);
    return out;
  }
  Device copy = entry->device;
  Outcome out = op(copy);
  if (!out.isOk() || !out.changed) return out;
  // A device whose discovery record is still waiting for its batch (flushDiscovered) is not on
  // disk as it is in memory: write all of it, which also settles that batch for it.
  bool pending = discoveredDirty_.count(deviceId) != 0;
  Status saved =
      store_.saveDevice(copy, entry->meta, out.audit, token, pending ? nullptr : &entry->device);
  if (!saved) {
    // A full disk is the household's to fix and answers so (STORAGE_FULL); the database
    // reports it once, not on every refused change.
    if (saved.code() != ErrorCode::kStorageFull) {
      deps_.logger.error("could not persist device " + deviceId + ": " + saved.message());
    }
    out.status = saved.code() == ErrorCode::kStorageFull
                     ? saved
                     : Status::error(ErrorCode::kInternal, "could not store the change");
    out.changed = false;
    out.notifications.clear();
    return out;
  }
  if (pending) discoveredDirty_.erase(deviceId);
  markUnsynced();
  unindex(entry->device);
  DeviceTable::replace(*entry, std::move(copy));
  index(entry->device);
  scheduleExpiry(entry->device);
  armExpiryTimer();
  afterDurable([this, notes = out.notifications, deviceId] {
    commitNotifications(notes);
    if (publishBus_) publishBus_(events::kBindingChanged, deviceEventData(deviceId));
  });
  return out;
}

void BindingService::markUnsynced() {
  // With the hub's background sync the syncer was asked at commit; otherwise (tests, tools)
  // one sync runs once the loop has handled what it read in this turn (every request already
  // in the socket), so one fsync serves all of them.
  if (deps_.db.backgroundSync() || settlePosted_) return;
  settlePosted_ = true;
  deps_.loop.post([this] {
    settlePosted_ = false;
    if (Status s = deps_.db.settle(); !s) {
      deps_.logger.error("binding changes may not be on disk: " + s.message());
    }
  });
}

void BindingService::afterDurable(std::function<void()> run, std::function<void()> failed) {
  // Database::afterSynced keeps the order: callbacks run by commit number, then as registered.
  deps_.db.afterSynced([run = std::move(run), failed = std::move(failed)](bool ok) {
    if (ok) {
      run();
    } else if (failed) {
      failed();
    }
  });
}

bool BindingService::settle() {
  // The caller hands a result to a transport plugin that acts on it at once (a device's
  // provisioning answer): the one place the hub loop waits for the disk.
  Status s = deps_.db.syncNow();
  if (!s) deps_.logger.error("binding changes may not be on disk: " + s.message());
  return s.isOk();
}

namespace {

// Hands a binding request's answer to the service's group commit (afterDurable).
class DurableSink : public ResponseSink {
 public:
  DurableSink(std::function<void(std::function<void()>, std::function<void()>)> defer,
              Responder res)
      : defer_(std::move(defer)), res_(std::move(res)) {}
  void sendOk(std::string resultJson) override {
    defer_([res = res_, json = std::move(resultJson)] { res.ok(json); }, failed());
  }
  void sendError(ErrorCode code, std::string message) override {
    defer_([res = res_, code, msg = std::move(message)] { res.error(code, msg); }, failed());
  }

 private:
  std::function<void()> failed() const {
    return [res = res_] { res.error(ErrorCode::kInternal, "could not store the change"); };
  }
  std::function<void(std::function<void()>, std::function<void()>)> defer_;
  Responder res_;
};

}  // namespace

Responder BindingService::durableResponder(Responder res) {
  return Responder(std::make_shared<DurableSink>(
      [this](std::function<void()> run, std::function<void()> failed) {
        afterDurable(std::move(run), std::move(failed));
      },
      std::move(res)));
}

void BindingService::commitNotifications(const std::vector<Notification>& notes) {
  for (const auto& n : notes) {
    deps_.notifyUser(n.userId, eventName(n.event), notificationJson(n.data));
  }
}

}  // namespace hearth::binding
