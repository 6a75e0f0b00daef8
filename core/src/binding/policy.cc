#include "binding/policy.h"

#include <fnmatch.h>

#include <algorithm>
#include <string>
#include <utility>

namespace hearth::binding {

// ---- Names ------------------------------------------------------------------------------------

const char* modeName(Mode mode) {
  switch (mode) {
    case Mode::kPreemptive:
      return "preemptive";
    case Mode::kShareRequired:
      return "share_required";
    case Mode::kShareFree:
      return "share_free";
    case Mode::kOwnerOnShare:
      return "owner_on_share";
  }
  return "share_required";
}

std::optional<Mode> parseMode(std::string_view name) {
  for (Mode mode :
       {Mode::kPreemptive, Mode::kShareRequired, Mode::kShareFree, Mode::kOwnerOnShare}) {
    if (name == modeName(mode)) return mode;
  }
  return std::nullopt;
}

const char* roleName(Role role) {
  switch (role) {
    case Role::kOwner:
      return "owner";
    case Role::kSpecial:
      return "special";
    case Role::kNormal:
      return "normal";
    case Role::kGuest:
      return "guest";
  }
  return "guest";
}

std::optional<Role> parseRole(std::string_view name) {
  for (Role role : {Role::kOwner, Role::kSpecial, Role::kNormal, Role::kGuest}) {
    if (name == roleName(role)) return role;
  }
  return std::nullopt;
}

const char* shareWayName(ShareWay way) { return way == ShareWay::kQr ? "qr" : "account"; }

std::optional<ShareWay> parseShareWay(std::string_view name) {
  if (name == "qr") return ShareWay::kQr;
  if (name == "account") return ShareWay::kAccount;
  return std::nullopt;
}

const char* shareStateName(ShareState state) {
  switch (state) {
    case ShareState::kPending:
      return "pending";
    case ShareState::kAccepted:
      return "accepted";
    case ShareState::kRejected:
      return "rejected";
    case ShareState::kCancelled:
      return "cancelled";
    case ShareState::kExpired:
      return "expired";
  }
  return "expired";
}

std::optional<ShareState> parseShareState(std::string_view name) {
  for (ShareState state : {ShareState::kPending, ShareState::kAccepted, ShareState::kRejected,
                           ShareState::kCancelled, ShareState::kExpired}) {
    if (name == shareStateName(state)) return state;
  }
  return std::nullopt;
}

const char* eventName(Event event) {
  switch (event) {
    case Event::kBindingChanged:
      return "bindingChanged";
    case Event::kShareInvited:
      return "shareInvited";
    case Event::kShareAccepted:
      return "shareAccepted";
    case Event::kShareRejected:
      return "shareRejected";
  }
  return "bindingChanged";
}

// ---- Config and mode resolution ---------------------------------------------------------------

Status validateConfig(const PolicyConfig& config) {
  auto bad = [](const char* field, const char* rule) {
    return Status::error(ErrorCode::kInvalidRequest, std::string(field) + " " + rule);
  };
  if (config.provisionTtlMs <= 0) return bad("provision_ttl", "must be > 0");
  if (config.qrTtlMs <= 0) return bad("share.qr_ttl", "must be > 0");
  if (config.qrTtlMs > kMaxQrTtlMs) return bad("share.qr_ttl", "must be at most 30 min");
  if (config.inviteTtlMs <= 0) return bad("share.invite_ttl", "must be > 0");
  if (config.maxMembers < 1) return bad("share.max_members", "must be at least 1");
  if (config.historyRetentionMs < 0) return bad("history retention", "must be >= 0");
  return Status::ok();
}

Mode resolveMode(std::string_view model, std::string_view transport,
                 const std::vector<ProductRule>& productRules, const ModeDefaults& defaults) {
  const std::string modelText(model);  // fnmatch needs NUL-terminated strings
  for (const ProductRule& rule : productRules) {
    if (fnmatch(rule.modelGlob.c_str(), modelText.c_str(), 0) == 0) return rule.mode;
  }
  if (transport == kTransportWifi) return defaults.wifi;
  if (transport == kTransportBle) return defaults.ble;
  return defaults.other;
}

// ---- Queries ----------------------------------------------------------------------------------

const Binding* findBinding(const Device& device, std::string_view userId) {
  for (const Binding& binding : device.bindings) {
    if (binding.userId == userId) return &binding;
  }
  return nullptr;
}

const Binding* findOwner(const Device& device) {
  for (const Binding& binding : device.bindings) {
    if (binding.role == Role::kOwner) return &binding;
  }
  return nullptr;
}

Result<AuditEntry> delegatedControl(const Device& device, std::string_view userId,
                                    std::string_view command, std::string_view via, int64_t nowMs) {
  if (findBinding(device, userId) == nullptr) {
    return Status::error(ErrorCode::kForbidden,
                         std::string(userId) + " is not bound to " + device.deviceId);
  }
  AuditEntry a;
  a.atMs = nowMs;
  a.actor = std::string(userId);
  a.deviceId = device.deviceId;
  a.action = "control";
  a.subject = std::string(command);
  a.reason = "via " + std::string(via);
  return a;
}

Result<std::vector<Binding>> visibleMembers(const Device& device, std::string_view userId) {
  const Binding* self = findBinding(device, userId);
  if (self == nullptr) {
    return Status::error(ErrorCode::kForbidden, "not bound to device " + device.deviceId);
  }
  const bool seesEveryone = self->role == Role::kOwner || self->role == Role::kSpecial;
  std::vector<Binding> visible;
  for (const Binding& binding : device.bindings) {
    if (seesEveryone || binding.role == Role::kOwner || binding.userId == userId) {
      visible.push_back(binding);
    }
  }
  return visible;
}

std::vector<Share> sharesToUser(const Device& device, std::string_view userId) {
  std::vector<Share> result;
  for (const Share& share : device.shares) {
    if (share.guest == userId) result.push_back(share);
  }
  return result;
}

std::vector<Share> sharesFromUser(const Device& device, std::string_view userId) {
  std::vector<Share> result;
  for (const Share& share : device.shares) {
    if (share.fromUser == userId) result.push_back(share);
  }
  return result;
}

bool inBindWindow(const Device& device, int64_t nowMs) {
  if (device.bindWindowMs == 0) return true;
  if (device.bindWindowMs < 0) return false;
  return nowMs < device.bindWindowReportedAtMs + device.bindWindowMs;
}

bool constantTimeEquals(std::string_view a, std::string_view b) {
  // Hashes have a fixed length, so only the content must not leak through timing.
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

// ---- Helpers for the operations ---------------------------------------------------------------
//
// Every operation first runs all of its checks, then mutates. The mutating helpers below cannot
// fail, which is what guarantees "on error the device is unchanged".

namespace {

Outcome failure(ErrorCode code, std::string message) {
  Outcome outcome;
  outcome.status = Status::error(code, std::move(message));
  return outcome;
}

Binding* mutableBinding(Device& device, std::string_view userId) {
  return const_cast<Binding*>(findBinding(device, userId));
}

Share* findShare(Device& device, std::string_view sharingId) {
  for (Share& share : device.shares) {
    if (share.sharingId == sharingId) return &share;
  }
  return nullptr;
}

bool canShare(const Binding* binding) {
  return binding != nullptr && (binding->role == Role::kOwner || binding->role == Role::kSpecial);
}

bool isFull(const Device& device, const PolicyConfig& config) {
  return static_cast<int>(device.bindings.size()) >= config.maxMembers;
}

Outcome fullFailure(const Device& device, const PolicyConfig& config) {
  return failure(ErrorCode::kLimitReached, "device " + device.deviceId + " already has " +
                                               std::to_string(config.maxMembers) + " members");
}

void notify(Outcome& outcome, const std::string& userId, Event event, NotificationData data) {
  outcome.notifications.push_back(Notification{userId, event, std::move(data)});
}

void notifyBindingChanged(Outcome& outcome, const Device& device, const std::string& userId,
                          std::string reason, std::optional<Role> role, std::string member = {}) {
  NotificationData data;
  data.deviceId = device.deviceId;
  data.reason = std::move(reason);
  data.role = role;
  data.userId = std::move(member);
  notify(outcome, userId, Event::kBindingChanged, std::move(data));
}

void audit(Outcome& outcome, int64_t nowMs, const std::string& actor, const Device& device,
           const char* action, const std::string& subject, std::string reason) {
  outcome.audit.push_back(
      AuditEntry{nowMs, actor, device.deviceId, action, subject, std::move(reason)});
}

// Owner and special see the member list, so they hear about joins and leaves.
void notifyWatchers(Outcome& outcome, const Device& device, const std::string& member,
                    const char* reason) {
  for (const Binding& binding : device.bindings) {
    if (binding.userId != member &&
        (binding.role == Role::kOwner || binding.role == Role::kSpecial)) {
      notifyBindingChanged(outcome, device, binding.userId, reason, binding.role, member);
    }
  }
}

void addBinding(Device& device, Outcome& outcome, const std::string& userId, Role role,
                int64_t nowMs, const std::string& actor, std::string reason) {
  device.bindings.push_back(Binding{userId, role, nowMs});
  audit(outcome, nowMs, actor, device, "bind", userId, std::string(roleName(role)) + ", " + reason);
  notifyBindingChanged(outcome, device, userId, "bound", role);
  notifyWatchers(outcome, device, userId, "memberJoined");
  outcome.role = role;
  outcome.changed = true;
}

void closeShare(Share& share, ShareState state, int64_t atMs) {
  share.state = state;
  share.closedAtMs = atMs;
}

void promote(Device& device, Outcome& outcome, Binding& binding, Role role, int64_t nowMs,
             const std::string& actor, std::string reason) {
  audit(outcome, nowMs, actor, device, "roleChange", binding.userId,
        std::string(roleName(binding.role)) + " -> " + roleName(role) + ", " + reason);
  binding.role = role;
  notifyBindingChanged(outcome, device, binding.userId, "promoted", role);
  outcome.changed = true;
}

// 004 §1: with no owner, the earliest binder who has not shared is `special`. When the special
// leaves, the earliest remaining normal inherits that place.
void ensureSpecial(Device& device, Outcome& outcome, int64_t nowMs, const std::string& actor) {
  for (const Binding& binding : device.bindings) {
    if (binding.role == Role::kOwner || binding.role == Role::kSpecial) return;
  }
  for (Binding& binding : device.bindings) {
    if (binding.role == Role::kNormal) {
      promote(device, outcome, binding, Role::kSpecial, nowMs, actor, "special left");
      return;
    }
  }
}

void removeBinding(Device& device, Outcome& outcome, const std::string& userId, int64_t nowMs,
                   const std::string& actor, const char* notifyReason, std::string auditReason) {
  std::erase_if(device.bindings, [&](const Binding& b) { return b.userId == userId; });
  audit(outcome, nowMs, actor, device, "unbind", userId, std::move(auditReason));
  notifyBindingChanged(outcome, device, userId, notifyReason, std::nullopt);
  notifyWatchers(outcome, device, userId, "memberLeft");
  ensureSpecial(device, outcome, nowMs, actor);
  outcome.changed = true;
}

// Removes every binding and cancels every pending share. The actor, if bound, is told
// "unbound"; everyone else gets `reason`.
void clearAll(Device& device, Outcome& outcome, int64_t nowMs, const std::string& actor,
              const char* reason) {
  for (Share& share : device.shares) {
    if (share.state != ShareState::kPending) continue;
    closeShare(share, ShareState::kCancelled, nowMs);
    audit(outcome, nowMs, actor, device, "shareCancel", share.sharingId, reason);
    outcome.changed = true;
  }
  std::vector<Binding> removed;
  removed.swap(device.bindings);
  for (const Binding& binding : removed) {
    audit(outcome, nowMs, actor, device, "unbind", binding.userId, reason);
    notifyBindingChanged(outcome, device, binding.userId,
                         binding.userId == actor ? "unbound" : reason, std::nullopt);
    outcome.changed = true;
  }
}

// The mode table (SPEC §3) for a user who is not bound yet and passed the window checks.
Outcome directBind(Device& device, const std::string& userId, int64_t nowMs,
                   const PolicyConfig& config, const char* via) {
  if (device.bindings.empty()) {
    Outcome outcome;
    addBinding(device, outcome, userId,
               device.mode == Mode::kOwnerOnShare ? Role::kSpecial : Role::kOwner, nowMs, userId,
               std::string("first direct bind (") + via + ")");
    return outcome;
  }
  switch (device.mode) {
    case Mode::kPreemptive: {
      // 003 §一: re-provisioning from scratch means the device changed hands.
      Outcome outcome;
      clearAll(device, outcome, nowMs, userId, "preempted");
      addBinding(device, outcome, userId, Role::kOwner, nowMs, userId,
                 std::string("preempting direct bind (") + via + ")");
      outcome.preempted = true;
      return outcome;
    }
    case Mode::kShareRequired:
      return failure(ErrorCode::kShareRequired,
                     "device " + device.deviceId + " is bound; ask its owner for a share");
    case Mode::kOwnerOnShare:
      if (findOwner(device) != nullptr) {
        return failure(ErrorCode::kShareRequired,
                       "device " + device.deviceId + " has an owner; ask for a share");
      }
      [[fallthrough]];
    case Mode::kShareFree: {
      if (isFull(device, config)) return fullFailure(device, config);
      Outcome outcome;
      addBinding(device, outcome, userId, Role::kNormal, nowMs, userId,
                 std::string("later direct bind (") + via + ")");
      return outcome;
    }
  }
  return failure(ErrorCode::kInternal, "unknown binding mode");
}

Outcome alreadyBound(const Binding& binding) {
  Outcome outcome;
  outcome.role = binding.role;
  return outcome;
}

// Promotes a sharing special to owner (004 §1); called only once the share is certain.
void promoteSharer(Device& device, Outcome& outcome, const std::string& userId, int64_t nowMs) {
  Binding* sharer = mutableBinding(device, userId);
  if (sharer->role == Role::kSpecial) {
    promote(device, outcome, *sharer, Role::kOwner, nowMs, userId, "first share");
  }
  outcome.role = sharer->role;
}

bool pendingAt(const Share& share, int64_t nowMs) {
  return share.state == ShareState::kPending && nowMs < share.expiresAtMs;
}

// The error for a share that is not pending (or pending but past its expiry).
Outcome closedShareFailure(const Share& share) {
  switch (share.state) {
    case ShareState::kAccepted:
      return failure(ErrorCode::kTokenUsed, "share " + share.sharingId + " was already used");
    case ShareState::kRejected:
      return failure(ErrorCode::kTokenUsed, "share " + share.sharingId + " was rejected");
    case ShareState::kCancelled:
      return failure(ErrorCode::kTokenInvalid, "share " + share.sharingId + " was cancelled");
    case ShareState::kExpired:
    case ShareState::kPending:
      break;
  }
  return failure(ErrorCode::kTokenExpired, "share " + share.sharingId + " has expired");
}

}  // namespace

// ---- BindingPolicy ----------------------------------------------------------------------------

BindingPolicy::BindingPolicy(PolicyConfig config) : config_(config) {
  // A bad config is rejected by validateConfig() at load time; here we only make sure that a
  // caller who skipped it still gets a sane policy rather than keys that never expire.
  config_.qrTtlMs = std::clamp<int64_t>(config_.qrTtlMs, 1, kMaxQrTtlMs);
  config_.provisionTtlMs = std::max<int64_t>(config_.provisionTtlMs, 1);
  config_.inviteTtlMs = std::max<int64_t>(config_.inviteTtlMs, 1);
  config_.maxMembers = std::max(config_.maxMembers, 1);
  config_.historyRetentionMs = std::max<int64_t>(config_.historyRetentionMs, 0);
}

ProvisionToken BindingPolicy::issueProvisionToken(std::string tokenHash, std::string userId,
                                                  std::string deviceId, int64_t nowMs) const {
  return ProvisionToken{std::move(tokenHash),
                        std::move(userId),
                        std::move(deviceId),
                        nowMs,
                        nowMs + config_.provisionTtlMs,
                        false};
}

Outcome BindingPolicy::provision(Device& device, ProvisionToken& token, int64_t nowMs) const {
  const Binding* existing = findBinding(device, token.userId);
  if (token.used) {
    // A device repeats its LAN announcement; the repeat must not look like an attack.
    if (token.deviceId == device.deviceId && existing != nullptr) return alreadyBound(*existing);
    return failure(ErrorCode::kTokenUsed, "provisioning token was already used");
  }
  if (!token.deviceId.empty() && token.deviceId != device.deviceId) {
    return failure(ErrorCode::kTokenInvalid, "provisioning token was issued for another device");
  }
  if (nowMs >= token.expiresAtMs) {
    return failure(ErrorCode::kTokenExpired, "provisioning token has expired");
  }

  Outcome outcome;
  if (existing != nullptr) {
    // Same user re-provisioning (new router, say) keeps every binding and share.
    outcome = alreadyBound(*existing);
    audit(outcome, nowMs, token.userId, device, "provision", token.userId,
          "already bound; bindings kept");
    outcome.changed = true;  // the token is spent
  } else {
    if (!inBindWindow(device, nowMs)) {
      return failure(ErrorCode::kNotBindable,
                     "device " + device.deviceId + " is not in its bindable window");
    }
    outcome = directBind(device, token.userId, nowMs, config_, "provision");
    if (!outcome.isOk()) return outcome;
  }
  token.used = true;
  token.deviceId = device.deviceId;
  return outcome;
}

Outcome BindingPolicy::bindDevice(Device& device, const std::string& userId, int64_t nowMs) const {
  if (const Binding* existing = findBinding(device, userId)) return alreadyBound(*existing);
  if (device.transport == kTransportWifi) {
    // Preemption is justified by the effort of provisioning; one request must not steal.
    return failure(ErrorCode::kNotBindable, "WiFi devices are bound by provisioning");
  }
  if (!device.online) {
    return failure(ErrorCode::kNotBindable, "device " + device.deviceId + " is not present");
  }
  if (!inBindWindow(device, nowMs)) {
    return failure(ErrorCode::kNotBindable,
                   "device " + device.deviceId + " is not in its bindable window");
  }
  return directBind(device, userId, nowMs, config_, "bindDevice");
}

Outcome BindingPolicy::shareByQr(Device& device, const std::string& userId,
                                 const std::string& sharingId, const std::string& keyHash,
                                 int64_t nowMs) const {
  if (!canShare(findBinding(device, userId))) {
    return failure(ErrorCode::kNotOwner, "only the owner may share device " + device.deviceId);
  }
  if (isFull(device, config_)) return fullFailure(device, config_);
  if (sharingId.empty() || keyHash.empty()) {
    return failure(ErrorCode::kInternal, "missing sharing id or key hash");
  }
  for (const Share& share : device.shares) {
    if (share.sharingId == sharingId || (!share.keyHash.empty() && share.keyHash == keyHash)) {
      return failure(ErrorCode::kInternal, "sharing id or key collision");
    }
  }

  Outcome outcome;
  promoteSharer(device, outcome, userId, nowMs);
  const int64_t expiresAtMs = nowMs + config_.qrTtlMs;
  device.shares.push_back(Share{sharingId, device.deviceId, userId, ShareWay::kQr, "", keyHash,
                                nowMs, expiresAtMs, ShareState::kPending, 0});
  audit(outcome, nowMs, userId, device, "shareCreate", sharingId, "qr");
  outcome.expiresAtMs = expiresAtMs;
  outcome.changed = true;
  return outcome;
}

Outcome BindingPolicy::shareByAccount(Device& device, const std::string& userId,
                                      const std::string& sharingId, const std::string& guest,
                                      bool guestExists, int64_t nowMs) const {
  if (!canShare(findBinding(device, userId))) {
    return failure(ErrorCode::kNotOwner, "only the owner may share device " + device.deviceId);
  }
  if (!guestExists) return failure(ErrorCode::kNotFound, "no user " + guest);
  if (findBinding(device, guest) != nullptr) {
    return failure(ErrorCode::kConflict, guest + " is already bound to " + device.deviceId);
  }
  for (const Share& share : device.shares) {
    if (share.way == ShareWay::kAccount && share.guest == guest && pendingAt(share, nowMs)) {
      return failure(ErrorCode::kConflict, guest + " already has a pending invite");
    }
  }
  if (isFull(device, config_)) return fullFailure(device, config_);
  if (sharingId.empty()) return failure(ErrorCode::kInternal, "missing sharing id");
  for (const Share& share : device.shares) {
    if (share.sharingId == sharingId) return failure(ErrorCode::kInternal, "sharing id collision");
  }

  Outcome outcome;
  promoteSharer(device, outcome, userId, nowMs);
  const int64_t expiresAtMs = nowMs + config_.inviteTtlMs;
  device.shares.push_back(Share{sharingId, device.deviceId, userId, ShareWay::kAccount, guest, "",
                                nowMs, expiresAtMs, ShareState::kPending, 0});
  audit(outcome, nowMs, userId, device, "shareCreate", sharingId, "account invite to " + guest);
  NotificationData data;
  data.deviceId = device.deviceId;
  data.sharingId = sharingId;
  data.fromUser = userId;
  data.model = device.model;
  data.name = device.name;
  data.expiresAtMs = expiresAtMs;
  notify(outcome, guest, Event::kShareInvited, std::move(data));
  outcome.expiresAtMs = expiresAtMs;
  outcome.changed = true;
  return outcome;
}

Outcome BindingPolicy::scanShare(Device& device, const std::string& userId,
                                 const std::string& keyHash, int64_t nowMs) const {
  Share* found = nullptr;
  if (!keyHash.empty()) {
    for (Share& share : device.shares) {
      if (share.way == ShareWay::kQr && constantTimeEquals(share.keyHash, keyHash)) found = &share;
    }
  }
  if (found == nullptr) return failure(ErrorCode::kTokenInvalid, "unknown share key");
  if (!pendingAt(*found, nowMs)) return closedShareFailure(*found);
  if (findBinding(device, userId) != nullptr) {
    // The key stays usable: the owner may have shown it to someone else in the room.
    return failure(ErrorCode::kAlreadyBound, "already bound to " + device.deviceId);
  }
  if (isFull(device, config_)) return fullFailure(device, config_);

  Outcome outcome;
  closeShare(*found, ShareState::kAccepted, nowMs);
  found->guest = userId;
  audit(outcome, nowMs, userId, device, "shareUse", found->sharingId, "qr scanned");
  addBinding(device, outcome, userId, Role::kGuest, nowMs, userId, "qr share " + found->sharingId);
  NotificationData data;
  data.deviceId = device.deviceId;
  data.sharingId = found->sharingId;
  data.userId = userId;
  notify(outcome, found->fromUser, Event::kShareAccepted, std::move(data));
  return outcome;
}

Outcome BindingPolicy::acceptShare(Device& device, const std::string& userId,
                                   const std::string& sharingId, int64_t nowMs) const {
  Share* share = findShare(device, sharingId);
  if (share == nullptr) return failure(ErrorCode::kNotFound, "no share " + sharingId);
  if (share->way != ShareWay::kAccount || share->guest != userId) {
    return failure(ErrorCode::kForbidden, "only the invited user may answer this share");
  }
  const Binding* existing = findBinding(device, userId);
  if (share->state == ShareState::kAccepted && existing != nullptr) return alreadyBound(*existing);
  if (!pendingAt(*share, nowMs)) return closedShareFailure(*share);
  if (existing != nullptr) {
    return failure(ErrorCode::kAlreadyBound, "already bound to " + device.deviceId);
  }
  if (isFull(device, config_)) return fullFailure(device, config_);

  Outcome outcome;
  closeShare(*share, ShareState::kAccepted, nowMs);
  audit(outcome, nowMs, userId, device, "shareAccept", sharingId, "account invite");
  addBinding(device, outcome, userId, Role::kGuest, nowMs, userId, "account share " + sharingId);
  NotificationData data;
  data.deviceId = device.deviceId;
  data.sharingId = sharingId;
  data.userId = userId;
  notify(outcome, share->fromUser, Event::kShareAccepted, std::move(data));
  return outcome;
}

Outcome BindingPolicy::rejectShare(Device& device, const std::string& userId,
                                   const std::string& sharingId, int64_t nowMs) const {
  Share* share = findShare(device, sharingId);
  if (share == nullptr) return failure(ErrorCode::kNotFound, "no share " + sharingId);
  if (share->way != ShareWay::kAccount || share->guest != userId) {
    return failure(ErrorCode::kForbidden, "only the invited user may answer this share");
  }
  if (share->state == ShareState::kRejected) return Outcome{};
  if (share->state == ShareState::kAccepted) {
    return failure(ErrorCode::kTokenUsed, "share " + sharingId + " was already accepted");
  }
  if (!pendingAt(*share, nowMs)) return closedShareFailure(*share);

  Outcome outcome;
  closeShare(*share, ShareState::kRejected, nowMs);
  audit(outcome, nowMs, userId, device, "shareReject", sharingId, "account invite");
  NotificationData data;
  data.deviceId = device.deviceId;
  data.sharingId = sharingId;
  data.userId = userId;
  notify(outcome, share->fromUser, Event::kShareRejected, std::move(data));
  outcome.changed = true;
  return outcome;
}

Outcome BindingPolicy::cancelShare(Device& device, const std::string& userId,
                                   const std::string& sharingId, int64_t nowMs) const {
  Share* share = findShare(device, sharingId);
  if (share == nullptr) return failure(ErrorCode::kNotFound, "no share " + sharingId);
  if (share->fromUser != userId) {
    return failure(ErrorCode::kForbidden, "only the sharer may cancel share " + sharingId);
  }
  if (share->state == ShareState::kCancelled) return Outcome{};
  if (share->state != ShareState::kPending) {
    return failure(ErrorCode::kConflict,
                   "share " + sharingId + " is already " + shareStateName(share->state));
  }
  Outcome outcome;
  closeShare(*share, ShareState::kCancelled, nowMs);
  audit(outcome, nowMs, userId, device, "shareCancel", sharingId, "cancelled by sharer");
  outcome.changed = true;
  return outcome;
}

Outcome BindingPolicy::unbind(Device& device, const std::string& userId, int64_t nowMs) const {
  const Binding* binding = findBinding(device, userId);
  if (binding == nullptr) {
    return failure(ErrorCode::kForbidden, "not bound to device " + device.deviceId);
  }
  Outcome outcome;
  if (binding->role == Role::kOwner) {
    // 003 §(7): the administrator's unbind unbinds everyone.
    clearAll(device, outcome, nowMs, userId, "ownerUnbound");
  } else {
    removeBinding(device, outcome, userId, nowMs, userId, "unbound", "left");
  }
  return outcome;
}

Outcome BindingPolicy::removeMember(Device& device, const std::string& actor,
                                    const std::string& member, int64_t nowMs) const {
  const Binding* actorBinding = findBinding(device, actor);
  if (actorBinding == nullptr || actorBinding->role != Role::kOwner) {
    return failure(ErrorCode::kNotOwner, "only the owner may remove members");
  }
  if (member == actor) {
    return failure(ErrorCode::kInvalidRequest, "the owner leaves with unbindDevice");
  }
  if (findBinding(device, member) == nullptr) {
    return failure(ErrorCode::kNotFound, member + " is not bound to " + device.deviceId);
  }
  Outcome outcome;
  removeBinding(device, outcome, member, nowMs, actor, "removed", "removed by owner");
  return outcome;
}

Outcome BindingPolicy::deviceReset(Device& device, int64_t nowMs) const {
  Outcome outcome;
  clearAll(device, outcome, nowMs, "device", "reset");
  return outcome;
}

Outcome BindingPolicy::adminUnbind(Device& device, const std::string& adminUser,
                                   int64_t nowMs) const {
  Outcome outcome;
  clearAll(device, outcome, nowMs, "admin:" + adminUser, "adminUnbind");
  return outcome;
}

Outcome BindingPolicy::expire(Device& device, int64_t nowMs) const {
  Outcome outcome;
  for (Share& share : device.shares) {
    if (share.state == ShareState::kPending && nowMs >= share.expiresAtMs) {
      closeShare(share, ShareState::kExpired, share.expiresAtMs);
      audit(outcome, nowMs, "system", device, "shareExpire", share.sharingId,
            std::string(shareWayName(share.way)) + " share expired");
      outcome.changed = true;
    }
  }
  const size_t removed = std::erase_if(device.shares, [&](const Share& share) {
    return share.state != ShareState::kPending &&
           nowMs >= share.closedAtMs + config_.historyRetentionMs;
  });
  if (removed > 0) outcome.changed = true;
  return outcome;
}

std::optional<int64_t> BindingPolicy::nextExpiryMs(const Device& device) const {
  std::optional<int64_t> next;
  for (const Share& share : device.shares) {
    const int64_t at = share.state == ShareState::kPending
                           ? share.expiresAtMs
                           : share.closedAtMs + config_.historyRetentionMs;
    if (!next || at < *next) next = at;
  }
  return next;
}

int64_t BindingPolicy::tokenDisposableAtMs(const ProvisionToken& token) const {
  return token.expiresAtMs + config_.historyRetentionMs;
}

}  // namespace hearth::binding
