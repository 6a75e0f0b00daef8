#pragma once
// The binding and sharing policy (SPEC §3; docs/binding-policy.md has the rule table).
//
// Pure and synchronous: no I/O, no threads, no clock, no randomness. Every operation takes the
// current time (`nowMs`, unix milliseconds) and any random identifiers (sharing ids, hashed
// keys) from the caller, so a test can replay any sequence exactly.
//
// Usage contract (how the store and the control plane wrap it):
//   1. copy the device's state, 2. apply one operation to the copy, 3. if the Outcome is ok and
//   `changed`, persist the copy (and the token, for provisioning) plus the audit entries in one
//   transaction, 4. swap the copy in, 5. only then answer the request and send notifications.
// On error an operation leaves the device (and the token) exactly as it found them, so step 3
// can be skipped. Operations never throw for bad input; they report it in the Status.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "binding/shared_text.h"
#include "binding/user_id.h"

#include "hearth/status.h"

namespace hearth::binding {

// ---- Enumerations with their stable wire / storage names ------------------------------------

// How a second direct binder is treated (SPEC §3 table).
enum class Mode { kPreemptive, kShareRequired, kShareFree, kOwnerOnShare };
const char* modeName(Mode mode);  // "preemptive", "share_required", "share_free", "owner_on_share"
std::optional<Mode> parseMode(std::string_view name);

enum class Role { kOwner, kSpecial, kNormal, kGuest };
const char* roleName(Role role);  // "owner", "special", "normal", "guest"
std::optional<Role> parseRole(std::string_view name);

enum class ShareWay { kQr, kAccount };
const char* shareWayName(ShareWay way);  // "qr", "account"
std::optional<ShareWay> parseShareWay(std::string_view name);

// A share is `pending` until it is used/answered (`accepted`, `rejected`), withdrawn by its sharer
// or swept away by an unbind/preemption/reset (`cancelled`), or runs out (`expired`). Closed
// shares are kept for `PolicyConfig::historyRetentionMs` so that a used QR key keeps answering
// TOKEN_USED rather than TOKEN_INVALID, and listShares can show what happened.
enum class ShareState { kPending, kAccepted, kRejected, kCancelled, kExpired };
const char* shareStateName(ShareState state);  // "pending", "accepted", ... (lower case)
std::optional<ShareState> parseShareState(std::string_view name);

// Notification events (SPEC §3 "Events").
enum class Event { kBindingChanged, kShareInvited, kShareAccepted, kShareRejected };
const char* eventName(Event event);  // "bindingChanged", "shareInvited", ...

inline constexpr const char* kTransportWifi = "wifi";
inline constexpr const char* kTransportBle = "ble";

// ---- State ------------------------------------------------------------------------------------

struct Binding {
  UserId userId;  // 24 bytes in all (a std::string here made it 48)
  Role role = Role::kNormal;
  int64_t boundAtMs = 0;
  bool operator==(const Binding&) const = default;
};

struct Share {
  std::string sharingId;  // caller-generated, unique per hub
  std::string deviceId;
  std::string fromUser;  // the sharer (owner at creation time)
  ShareWay way = ShareWay::kQr;
  // Account invites: the invitee. QR shares: empty until used, then the scanner.
  std::string guest;
  std::string keyHash;  // QR only: the caller's hash of the key; the key itself is never stored
  int64_t createdAtMs = 0;
  int64_t expiresAtMs = 0;  // usable while nowMs < expiresAtMs
  ShareState state = ShareState::kPending;
  int64_t closedAtMs = 0;  // when it left `pending`; 0 while pending
  bool operator==(const Share&) const = default;
};

// Device::bindWindowMs value for "the device says it is not bindable now".
inline constexpr int64_t kBindWindowClosed = -1;

struct Device {
  std::string deviceId;
  // Shared by the devices with the same text (shared_text.h): 8 bytes each, not 32.
  SharedText transport;  // kTransportWifi, kTransportBle, or a plugin's own name
  SharedText model;
  std::string name;
  Mode mode = Mode::kShareRequired;
  bool online = false;  // beside the mode: the two share one 8-byte slot
  // Bindable window as last reported by the device (004 §3.1): 0 = always bindable, > 0 =
  // bindable until bindWindowReportedAtMs + bindWindowMs, kBindWindowClosed = not bindable.
  int64_t bindWindowMs = 0;
  int64_t bindWindowReportedAtMs = 0;
  std::vector<Binding> bindings;  // in bind order; "earliest normal" means first in this list
  // Every share of this device, pending and recently closed, in creation order. "Pending shares"
  // in the SPEC are the entries with state == kPending.
  std::vector<Share> shares;
  bool operator==(const Device&) const = default;
};

// A WiFi provisioning token (provisionBegin). Lives outside the device: it is issued before the
// hub has ever seen the device. Looked up by the caller through tokenHash.
struct ProvisionToken {
  std::string tokenHash;
  std::string userId;    // who provisions, i.e. the binder
  std::string deviceId;  // empty = any device; set to the device it was used on once used
  int64_t createdAtMs = 0;
  int64_t expiresAtMs = 0;  // usable while nowMs < expiresAtMs
  bool used = false;
  bool operator==(const ProvisionToken&) const = default;
};

// ---- Configuration ----------------------------------------------------------------------------

inline constexpr int64_t kMinuteMs = 60 * 1000;
inline constexpr int64_t kHourMs = 60 * kMinuteMs;
inline constexpr int64_t kMaxQrTtlMs = 30 * kMinuteMs;  // SPEC: qr_ttl at most 30 min

struct PolicyConfig {
  int64_t provisionTtlMs = 10 * kMinuteMs;  // binding.provision_ttl
  int64_t qrTtlMs = 15 * kMinuteMs;         // binding.share.qr_ttl (≤ kMaxQrTtlMs)
  int64_t inviteTtlMs = 24 * kHourMs;       // binding.share.invite_ttl
  int maxMembers = 20;                      // binding.share.max_members (users per device)
  // How long closed shares and spent/expired tokens are kept so late uses get the precise code.
  int64_t historyRetentionMs = 7 * 24 * kHourMs;
};

// INVALID_REQUEST naming the field when a value is out of range (TTLs > 0, qr ≤ 30 min,
// maxMembers ≥ 1, retention ≥ 0).
Status validateConfig(const PolicyConfig& config);

// ---- Mode resolution --------------------------------------------------------------------------

struct ProductRule {
  std::string modelGlob;  // fnmatch(3) pattern, flags 0, matched against the whole model
  Mode mode = Mode::kShareRequired;
};

struct ModeDefaults {
  Mode wifi = Mode::kPreemptive;
  Mode ble = Mode::kShareRequired;
  Mode other = Mode::kShareRequired;  // transports the SPEC does not name: the safe choice
};

// The first rule whose glob matches `model` wins; otherwise the default of the transport.
Mode resolveMode(std::string_view model, std::string_view transport,
                 const std::vector<ProductRule>& productRules, const ModeDefaults& defaults);

// ---- Results ----------------------------------------------------------------------------------

// Payload of a notification. Empty strings / nullopt mean "absent" (omit from the JSON).
struct NotificationData {
  std::string deviceId;
  // bindingChanged: bound | preempted | removed | ownerUnbound | unbound | reset | adminUnbind |
  //                 promoted | memberJoined | memberLeft
  std::string reason;
  std::optional<Role> role;  // the recipient's role after the change, when still bound
  std::string userId;        // memberJoined/memberLeft: the member; shareAccepted/Rejected: guest
  std::string sharingId;     // share events
  std::string fromUser;      // shareInvited: the sharer
  std::string model;         // shareInvited: lets the invitee see what is offered before
  std::string name;          //   accepting (it cannot call getDeviceDetail yet)
  std::optional<int64_t> expiresAtMs;  // shareInvited
  bool operator==(const NotificationData&) const = default;
};

// To be delivered to every terminal of `userId` (the actor's own included, so that a user's
// other terminals stay in sync).
struct Notification {
  std::string userId;
  Event event = Event::kBindingChanged;
  NotificationData data;
  bool operator==(const Notification&) const = default;
};

// One line of the audit log. `action` is one of: bind, unbind, roleChange, provision,
// shareCreate, shareUse, shareAccept, shareReject, shareCancel, shareExpire.
// `subject` is the user whose binding/role changed, or the sharingId for share actions.
struct AuditEntry {
  int64_t atMs = 0;
  std::string actor;  // a user id, "admin:<user>", "device" (reset) or "system" (expiry)
  std::string deviceId;
  std::string action;
  std::string subject;
  std::string reason;
  bool operator==(const AuditEntry&) const = default;
};

struct Outcome {
  Status status;
  // The actor's role after a successful bind/provision/scan/accept/share; nullopt otherwise.
  std::optional<Role> role;
  // The device (or the token) was modified and must be persisted. False on error and for
  // idempotent repeats.
  bool changed = false;
  // A provision took the device from other users: the transport must replace the device's LAN
  // key (SPEC §5).
  bool preempted = false;
  // shareByQr / shareByAccount: the share's expiry, for the response.
  int64_t expiresAtMs = 0;
  std::vector<Notification> notifications;
  std::vector<AuditEntry> audit;

  bool isOk() const { return status.isOk(); }
};

// ---- The policy -------------------------------------------------------------------------------

class BindingPolicy {
 public:
  // `config` should have passed validateConfig(); TTLs are clamped defensively anyway.
  explicit BindingPolicy(PolicyConfig config = {});
  const PolicyConfig& config() const { return config_; }

  // provisionBegin: a new token for `userId`, optionally restricted to `deviceId`.
  // `tokenHash` is the caller's hash of a fresh ≥128-bit random token.
  ProvisionToken issueProvisionToken(std::string tokenHash, std::string userId,
                                     std::string deviceId, int64_t nowMs) const;

  // WiFi direct bind: `device` announced `token` (found by the caller through its hash).
  // Errors: TOKEN_INVALID (token restricted to another device), TOKEN_USED, TOKEN_EXPIRED,
  // NOT_BINDABLE, SHARE_REQUIRED, LIMIT_REACHED. The same device presenting an already used
  // token again while its user is still bound is ok (a device repeats its LAN announcement).
  // A user already bound gets ok with the current role and nothing else changes except that
  // the token is spent. In preemptive mode another user's provision removes every binding and
  // pending share (Outcome::preempted).
  Outcome provision(Device& device, ProvisionToken& token, int64_t nowMs) const;

  // BLE direct bind (bindDevice). Errors: NOT_BINDABLE (device not present, outside its bind
  // window, or a WiFi device, which binds only by provisioning), SHARE_REQUIRED, LIMIT_REACHED.
  // A user already bound gets ok with the current role, even outside the window (a retry).
  Outcome bindDevice(Device& device, const std::string& userId, int64_t nowMs) const;

  // shareDevice{way:"qr"}. `sharingId` and `keyHash` are fresh from the caller.
  // Errors: NOT_OWNER, LIMIT_REACHED (device already full), INTERNAL (id/hash collision).
  // A special's first successful share makes it owner.
  Outcome shareByQr(Device& device, const std::string& userId, const std::string& sharingId,
                    const std::string& keyHash, int64_t nowMs) const;

  // shareDevice{way:"account", guest}. `guestExists`: whether `guest` is a known user.
  // Errors: NOT_OWNER, NOT_FOUND (unknown guest), CONFLICT (guest bound or already has a pending
  // invite to this device), LIMIT_REACHED, INTERNAL (id collision). The guest gets shareInvited.
  Outcome shareByAccount(Device& device, const std::string& userId, const std::string& sharingId,
                         const std::string& guest, bool guestExists, int64_t nowMs) const;

  // scanShare: `keyHash` is the hash of the scanned key; the caller found `device` through it
  // (no device holds it → the caller answers TOKEN_INVALID itself). Binds the scanner as guest.
  // Errors: TOKEN_INVALID, TOKEN_EXPIRED, TOKEN_USED, ALREADY_BOUND (the key stays usable),
  // LIMIT_REACHED. Rate limiting is ScanRateLimiter's job (rate_limit.h).
  Outcome scanShare(Device& device, const std::string& userId, const std::string& keyHash,
                    int64_t nowMs) const;

  // acceptShare / rejectShare of an account invite. Errors: NOT_FOUND (no such share on this
  // device), FORBIDDEN (not the invitee, or a QR share), TOKEN_EXPIRED, TOKEN_USED (already
  // answered the other way), TOKEN_INVALID (cancelled), ALREADY_BOUND, LIMIT_REACHED (accept).
  // Repeating the same answer is ok (idempotent retry).
  Outcome acceptShare(Device& device, const std::string& userId, const std::string& sharingId,
                      int64_t nowMs) const;
  Outcome rejectShare(Device& device, const std::string& userId, const std::string& sharingId,
                      int64_t nowMs) const;

  // cancelShare by its sharer. Errors: NOT_FOUND, FORBIDDEN (not the sharer), CONFLICT (no
  // longer pending). Cancelling a cancelled share again is ok.
  Outcome cancelShare(Device& device, const std::string& userId, const std::string& sharingId,
                      int64_t nowMs) const;

  // unbindDevice. The owner's unbind removes every binding and pending share; anyone else
  // removes only themselves (a leaving special hands over to the earliest normal).
  // Errors: FORBIDDEN (not bound).
  Outcome unbind(Device& device, const std::string& userId, int64_t nowMs) const;

  // removeMember by the owner. Errors: NOT_OWNER, NOT_FOUND (member not bound),
  // INVALID_REQUEST (the owner itself: use unbind).
  Outcome removeMember(Device& device, const std::string& actor, const std::string& member,
                       int64_t nowMs) const;

  // The transport reports a reset (004 §3.3) / the admin API unbinds: everything is cleared and
  // every bound user notified. Never fails; ok with changed=false when nothing was bound.
  Outcome deviceReset(Device& device, int64_t nowMs) const;
  Outcome adminUnbind(Device& device, const std::string& adminUser, int64_t nowMs) const;

  // Housekeeping at `nowMs`: pending shares past their expiry become expired (audited), and
  // closed shares older than historyRetentionMs are dropped. Never fails.
  Outcome expire(Device& device, int64_t nowMs) const;

  // The earliest time at which expire() would change something, or nullopt: for the hub timer.
  std::optional<int64_t> nextExpiryMs(const Device& device) const;

  // A provisioning token may be deleted from the store at or after this time.
  int64_t tokenDisposableAtMs(const ProvisionToken& token) const;

 private:
  PolicyConfig config_;
};

// ---- Queries (pure reads) ---------------------------------------------------------------------

// The user's binding, or nullptr. getBoundDevices = every device where this is non-null.
const Binding* findBinding(const Device& device, std::string_view userId);
// The device's owner binding, or nullptr.
const Binding* findOwner(const Device& device);

// getDeviceDetail's relAccounts: the owner/special sees everyone, others see the owner and
// themselves (bind order). Not bound → FORBIDDEN.
Result<std::vector<Binding>> visibleMembers(const Device& device, std::string_view userId);

// listShares over one device: toMe = shares whose guest is `userId`; fromMe = shares whose
// sharer is `userId`. Both include recently closed shares (with their state).
std::vector<Share> sharesToUser(const Device& device, std::string_view userId);
std::vector<Share> sharesFromUser(const Device& device, std::string_view userId);

// Whether the device accepts a direct bind now (004 §3.1), ignoring presence.
bool inBindWindow(const Device& device, int64_t nowMs);

// A command another principal (Home Assistant) runs for `userId`: allowed exactly when that
// user may controlDevice (bound; else FORBIDDEN). Returns the audit entry that records it:
// actor userId, action "control", subject the command, reason "via <via>".
Result<AuditEntry> delegatedControl(const Device& device, std::string_view userId,
                                    std::string_view command, std::string_view via, int64_t nowMs);

// Compares two hashes without an early exit, so timing does not reveal a matching prefix.
bool constantTimeEquals(std::string_view a, std::string_view b);

}  // namespace hearth::binding
