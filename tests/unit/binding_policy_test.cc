// Tests of the binding policy (SPEC §3). Each PolicyRules test is one row of the rule table in
// docs/binding-policy.md; PolicyRandomized checks the invariants over random operation sequences.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "binding/policy.h"
#include "binding/rate_limit.h"

namespace hearth::binding {
namespace {

constexpr int64_t kT0 = 1'700'000'000'000;  // an arbitrary "now"

Device makeDevice(Mode mode, const std::string& transport = kTransportBle,
                  const std::string& id = "dev1") {
  Device device;
  device.deviceId = id;
  device.transport = transport;
  device.model = "acme-lamp-2";
  device.name = "Lamp";
  device.mode = mode;
  device.online = true;
  return device;
}

std::optional<Role> roleOf(const Device& device, const std::string& userId) {
  const Binding* binding = findBinding(device, userId);
  return binding ? std::optional<Role>(binding->role) : std::nullopt;
}

std::vector<std::string> memberIds(const Device& device) {
  std::vector<std::string> ids;
  for (const Binding& binding : device.bindings) ids.push_back(binding.userId);
  return ids;
}

size_t pendingShares(const Device& device) {
  return std::count_if(device.shares.begin(), device.shares.end(),
                       [](const Share& s) { return s.state == ShareState::kPending; });
}

bool notified(const Outcome& outcome, const std::string& userId, Event event,
              const std::string& reason = "") {
  for (const Notification& n : outcome.notifications) {
    if (n.userId == userId && n.event == event && (reason.empty() || n.data.reason == reason)) {
      return true;
    }
  }
  return false;
}

// Binds `userId` directly, through the path its transport uses.
Outcome directBind(const BindingPolicy& policy, Device& device, const std::string& userId,
                   int64_t nowMs) {
  if (device.transport == kTransportWifi) {
    ProvisionToken token = policy.issueProvisionToken("tok-" + userId + "-" + std::to_string(nowMs),
                                                      userId, "", nowMs);
    return policy.provision(device, token, nowMs);
  }
  return policy.bindDevice(device, userId, nowMs);
}

// Fails the test unless `error` leaves `device` untouched and returns `code`.
void expectErrorUnchanged(const Outcome& outcome, ErrorCode code, const Device& before,
                          const Device& after) {
  EXPECT_EQ(outcome.status.code(), code) << outcome.status.toString();
  EXPECT_EQ(before, after);
  EXPECT_FALSE(outcome.changed);
  EXPECT_TRUE(outcome.notifications.empty());
  EXPECT_TRUE(outcome.audit.empty());
}

// Owner "alice" on a share_free device with normal "bob" and guest "carol" (through a QR share),
// plus a pending QR share and a pending account invite to "dave".
Device populatedDevice(const BindingPolicy& policy, Mode mode, const std::string& transport) {
  Device device = makeDevice(Mode::kShareFree, transport);
  EXPECT_TRUE(directBind(policy, device, "alice", kT0).isOk());
  EXPECT_TRUE(directBind(policy, device, "bob", kT0 + 1).isOk());
  EXPECT_TRUE(policy.shareByQr(device, "alice", "s1", "key1", kT0 + 2).isOk());
  EXPECT_TRUE(policy.scanShare(device, "carol", "key1", kT0 + 3).isOk());
  EXPECT_TRUE(policy.shareByQr(device, "alice", "s2", "key2", kT0 + 4).isOk());
  EXPECT_TRUE(policy.shareByAccount(device, "alice", "s3", "dave", true, kT0 + 5).isOk());
  device.mode = mode;
  EXPECT_EQ(memberIds(device), (std::vector<std::string>{"alice", "bob", "carol"}));
  EXPECT_EQ(pendingShares(device), 2u);
  return device;
}

// ---- Mode table (SPEC §3) ---------------------------------------------------------------------

TEST(PolicyRules, PreemptiveFirstBindMakesBinderOwner) {
  BindingPolicy policy;
  Device device = makeDevice(Mode::kPreemptive, kTransportWifi);
  Outcome outcome = directBind(policy, device, "alice", kT0);
  ASSERT_TRUE(outcome.isOk()) << outcome.status.toString();
  EXPECT_EQ(outcome.role, Role::kOwner);
  EXPECT_FALSE(outcome.preempted);
  EXPECT_EQ(roleOf(device, "alice"), Role::kOwner);
  EXPECT_TRUE(notified(outcome, "alice", Event::kBindingChanged, "bound"));
}

TEST(PolicyRules, PreemptiveLaterBindByOtherUserRemovesAllBindingsAndShares) {
  BindingPolicy policy;
  Device device = populatedDevice(policy, Mode::kPreemptive, kTransportWifi);
  ProvisionToken token = policy.issueProvisionToken("h", "erin", "", kT0 + 10);
  Outcome outcome = policy.provision(device, token, kT0 + 10);
  ASSERT_TRUE(outcome.isOk()) << outcome.status.toString();
  EXPECT_TRUE(outcome.preempted);
  EXPECT_EQ(outcome.role, Role::kOwner);
  ASSERT_EQ(device.bindings.size(), 1u);
  EXPECT_EQ(device.bindings[0], (Binding{"erin", Role::kOwner, kT0 + 10}));
  EXPECT_EQ(pendingShares(device), 0u);
  for (const char* user : {"alice", "bob", "carol"}) {
    EXPECT_TRUE(notified(outcome, user, Event::kBindingChanged, "preempted")) << user;
  }
  // The swept QR key no longer binds anyone.
  EXPECT_EQ(policy.scanShare(device, "frank", "key2", kT0 + 11).status.code(),
            ErrorCode::kTokenInvalid);
  EXPECT_TRUE(token.used);
}

TEST(PolicyRules, PreemptiveSameUserReprovisioningKeepsEverything) {
  BindingPolicy policy;
  Device device = populatedDevice(policy, Mode::kPreemptive, kTransportWifi);
  const Device before = device;
  ProvisionToken token = policy.issueProvisionToken("h", "alice", "", kT0 + 10);
  Outcome outcome = policy.provision(device, token, kT0 + 10);
  ASSERT_TRUE(outcome.isOk());
  EXPECT_FALSE(outcome.preempted);
  EXPECT_EQ(outcome.role, Role::kOwner);
  EXPECT_EQ(device, before);
  EXPECT_TRUE(token.used);  // still single-use
  EXPECT_TRUE(outcome.changed);
}

TEST(PolicyRules, ShareRequiredFirstBindMakesBinderOwner) {
  BindingPolicy policy;
  Device device = makeDevice(Mode::kShareRequired);
  Outcome outcome = policy.bindDevice(device, "alice", kT0);
  ASSERT_TRUE(outcome.isOk());
  EXPECT_EQ(outcome.role, Role::kOwner);
}

TEST(PolicyRules, ShareRequiredLaterBindByOtherUserIsShareRequired) {
  BindingPolicy policy;
  Device device = makeDevice(Mode::kShareRequired);
  ASSERT_TRUE(policy.bindDevice(device, "alice", kT0).isOk());
  const Device before = device;
  expectErrorUnchanged(policy.bindDevice(device, "bob", kT0 + 1), ErrorCode::kShareRequired, before,
                       device);
  // The same rule holds for a WiFi device configured share_required: the token is not spent.
  Device wifi = makeDevice(Mode::kShareRequired, kTransportWifi);
  ASSERT_TRUE(directBind(policy, wifi, "alice", kT0).isOk());
  const Device wifiBefore = wifi;
  ProvisionToken token = policy.issueProvisionToken("h", "bob", "", kT0);
  const ProvisionToken tokenBefore = token;
  expectErrorUnchanged(policy.provision(wifi, token, kT0 + 1), ErrorCode::kShareRequired,
                       wifiBefore, wifi);
  EXPECT_EQ(token, tokenBefore);
}

TEST(PolicyRules, ShareFreeFirstBindMakesBinderOwner) {
  BindingPolicy policy;
  Device device = makeDevice(Mode::kShareFree);
  EXPECT_EQ(policy.bindDevice(device, "alice", kT0).role, Role::kOwner);
}

TEST(PolicyRules, ShareFreeLaterBindMakesBinderNormal) {
  BindingPolicy policy;
  Device device = makeDevice(Mode::kShareFree);
  ASSERT_TRUE(policy.bindDevice(device, "alice", kT0).isOk());
  Outcome outcome = policy.bindDevice(device, "bob", kT0 + 1);
  ASSERT_TRUE(outcome.isOk());
  EXPECT_EQ(outcome.role, Role::kNormal);
  EXPECT_EQ(roleOf(device, "alice"), Role::kOwner);
  EXPECT_TRUE(notified(outcome, "alice", Event::kBindingChanged, "memberJoined"));
}

TEST(PolicyRules, OwnerOnShareFirstBindMakesBinderSpecial) {
  BindingPolicy policy;
  Device device = makeDevice(Mode::kOwnerOnShare);
  EXPECT_EQ(policy.bindDevice(device, "alice", kT0).role, Role::kSpecial);
}

TEST(PolicyRules, OwnerOnShareLaterBindWithoutOwnerMakesBinderNormal) {
  BindingPolicy policy;
  Device device = makeDevice(Mode::kOwnerOnShare);
  ASSERT_TRUE(policy.bindDevice(device, "alice", kT0).isOk());
  EXPECT_EQ(policy.bindDevice(device, "bob", kT0 + 1).role, Role::kNormal);
  EXPECT_EQ(policy.bindDevice(device, "carol", kT0 + 2).role, Role::kNormal);
  EXPECT_EQ(roleOf(device, "alice"), Role::kSpecial);
}

TEST(PolicyRules, OwnerOnShareLaterBindOnceOwnerExistsIsShareRequired) {
  BindingPolicy policy;
  Device device = makeDevice(Mode::kOwnerOnShare);
  ASSERT_TRUE(policy.bindDevice(device, "alice", kT0).isOk());
  ASSERT_TRUE(policy.shareByQr(device, "alice", "s1", "k1", kT0 + 1).isOk());
  ASSERT_EQ(roleOf(device, "alice"), Role::kOwner);
  const Device before = device;
  expectErrorUnchanged(policy.bindDevice(device, "bob", kT0 + 2), ErrorCode::kShareRequired, before,
                       device);
}

TEST(PolicyRules, ModeResolvedFromProductGlobThenTransportDefault) {
  const std::vector<ProductRule> rules = {{"acme-lock-*", Mode::kShareRequired},
                                          {"acme-*", Mode::kShareFree},
                                          {"giz-[0-9]?", Mode::kOwnerOnShare}};
  const ModeDefaults defaults;
  // First matching rule wins, whatever the transport.
  EXPECT_EQ(resolveMode("acme-lock-3", kTransportWifi, rules, defaults), Mode::kShareRequired);
  EXPECT_EQ(resolveMode("acme-lamp", kTransportWifi, rules, defaults), Mode::kShareFree);
  EXPECT_EQ(resolveMode("giz-7a", kTransportBle, rules, defaults), Mode::kOwnerOnShare);
  // The glob must match the whole model.
  EXPECT_EQ(resolveMode("giz-7ab", kTransportBle, rules, defaults), Mode::kShareRequired);
  EXPECT_EQ(resolveMode("other", kTransportWifi, rules, defaults), Mode::kPreemptive);
  EXPECT_EQ(resolveMode("other", kTransportBle, rules, defaults), Mode::kShareRequired);
  EXPECT_EQ(resolveMode("other", "zigbee", rules, defaults), Mode::kShareRequired);
  ModeDefaults custom;
  custom.ble = Mode::kShareFree;
  EXPECT_EQ(resolveMode("other", kTransportBle, {}, custom), Mode::kShareFree);
}

TEST(PolicyRules, NamesRoundTrip) {
  for (Mode mode :
       {Mode::kPreemptive, Mode::kShareRequired, Mode::kShareFree, Mode::kOwnerOnShare}) {
    EXPECT_EQ(parseMode(modeName(mode)), mode);
  }
  for (Role role : {Role::kOwner, Role::kSpecial, Role::kNormal, Role::kGuest}) {
    EXPECT_EQ(parseRole(roleName(role)), role);
  }
  for (ShareState state : {ShareState::kPending, ShareState::kAccepted, ShareState::kRejected,
                           ShareState::kCancelled, ShareState::kExpired}) {
    EXPECT_EQ(parseShareState(shareStateName(state)), state);
  }
  EXPECT_EQ(parseShareWay("qr"), ShareWay::kQr);
  EXPECT_EQ(parseShareWay("account"), ShareWay::kAccount);
  EXPECT_STREQ(modeName(Mode::kOwnerOnShare), "owner_on_share");
  EXPECT_STREQ(eventName(Event::kShareInvited), "shareInvited");
  EXPECT_EQ(parseMode("Preemptive"), std::nullopt);
  EXPECT_EQ(parseRole("admin"), std::nullopt);
}

// ---- Direct binding ---------------------------------------------------------------------------

TEST(PolicyRules, ProvisionTokenIsSingleUse) {
  BindingPolicy policy;
  Device device = makeDevice(Mode::kPreemptive, kTransportWifi);
  Device other = makeDevice(Mode::kPreemptive, kTransportWifi, "dev2");
  ProvisionToken token = policy.issueProvisionToken("h", "alice", "", kT0);
  EXPECT_EQ(token.expiresAtMs, kT0 + 10 * kMinuteMs);  // default provision_ttl
  ASSERT_TRUE(policy.provision(device, token, kT0 + 1).isOk());
  EXPECT_TRUE(token.used);
  const Device otherBefore = other;
  const ProvisionToken tokenBefore = token;
  expectErrorUnchanged(policy.provision(other, token, kT0 + 2), ErrorCode::kTokenUsed, otherBefore,
                       other);
  EXPECT_EQ(token, tokenBefore);
  // After the user is gone the spent token cannot bring them back.
  ASSERT_TRUE(policy.unbind(device, "alice", kT0 + 3).isOk());
  const Device before = device;
  expectErrorUnchanged(policy.provision(device, token, kT0 + 4), ErrorCode::kTokenUsed, before,
                       device);
}

TEST(PolicyRules, ProvisionRepeatedAnnouncementIsNotAnError) {
  BindingPolicy policy;
  Device device = makeDevice(Mode::kPreemptive, kTransportWifi);
  ProvisionToken token = policy.issueProvisionToken("h", "alice", "", kT0);
  ASSERT_TRUE(policy.provision(device, token, kT0 + 1).isOk());
  const Device before = device;
  Outcome repeat = policy.provision(device, token, kT0 + 2);
  ASSERT_TRUE(repeat.isOk());
  EXPECT_EQ(repeat.role, Role::kOwner);
  EXPECT_FALSE(repeat.changed);
  EXPECT_EQ(device, before);
}

TEST(PolicyRules, ProvisionTokenExpiresAfterTtl) {
  PolicyConfig config;
  config.provisionTtlMs = 5000;
  BindingPolicy policy(config);
  Device device = makeDevice(Mode::kPreemptive, kTransportWifi);
  ProvisionToken token = policy.issueProvisionToken("h", "alice", "", kT0);
  const Device before = device;
  expectErrorUnchanged(policy.provision(device, token, kT0 + 5000), ErrorCode::kTokenExpired,
                       before, device);
  EXPECT_FALSE(token.used);
  EXPECT_TRUE(policy.provision(device, token, kT0 + 4999).isOk());
  EXPECT_EQ(policy.tokenDisposableAtMs(token), kT0 + 5000 + config.historyRetentionMs);
}

TEST(PolicyRules, ProvisionTokenForAnotherDeviceIsInvalid) {
  BindingPolicy policy;
  Device device = makeDevice(Mode::kPreemptive, kTransportWifi);
  ProvisionToken token = policy.issueProvisionToken("h", "alice", "dev2", kT0);
  const Device before = device;
  expectErrorUnchanged(policy.provision(device, token, kT0 + 1), ErrorCode::kTokenInvalid, before,
                       device);
  Device dev2 = makeDevice(Mode::kPreemptive, kTransportWifi, "dev2");
  EXPECT_TRUE(policy.provision(dev2, token, kT0 + 1).isOk());
}

TEST(PolicyRules, BleBindRequiresPresence) {
  BindingPolicy policy;
  Device device = makeDevice(Mode::kShareRequired);
  device.online = false;
  const Device before = device;
  expectErrorUnchanged(policy.bindDevice(device, "alice", kT0), ErrorCode::kNotBindable, before,
                       device);
}

TEST(PolicyRules, WifiDeviceCannotBeBoundWithoutProvisioning) {
  BindingPolicy policy;
  Device device = makeDevice(Mode::kPreemptive, kTransportWifi);
  ASSERT_TRUE(directBind(policy, device, "alice", kT0).isOk());
  const Device before = device;
  expectErrorUnchanged(policy.bindDevice(device, "mallory", kT0 + 1), ErrorCode::kNotBindable,
                       before, device);
}

TEST(PolicyRules, BindOutsideBindableWindowIsNotBindable) {
  BindingPolicy policy;
  for (const char* transport : {kTransportBle, kTransportWifi}) {
    Device device = makeDevice(Mode::kShareFree, transport);
    device.bindWindowMs = 60'000;
    device.bindWindowReportedAtMs = kT0;
    Device closed = device;
    const Device before = device;
    expectErrorUnchanged(directBind(policy, device, "alice", kT0 + 60'000), ErrorCode::kNotBindable,
                         before, device);
    closed.bindWindowMs = kBindWindowClosed;
    const Device closedBefore = closed;
    expectErrorUnchanged(directBind(policy, closed, "alice", kT0), ErrorCode::kNotBindable,
                         closedBefore, closed);
    EXPECT_TRUE(directBind(policy, device, "alice", kT0 + 59'999).isOk()) << transport;
  }
}

TEST(PolicyRules, BindWindowZeroIsAlwaysBindable) {
  Device device = makeDevice(Mode::kShareFree);
  device.bindWindowMs = 0;
  device.bindWindowReportedAtMs = kT0;
  EXPECT_TRUE(inBindWindow(device, kT0 + 365 * 24 * kHourMs));
  EXPECT_TRUE(BindingPolicy().bindDevice(device, "alice", kT0 + 365 * 24 * kHourMs).isOk());
}

TEST(PolicyRules, RebindByBoundUserReturnsCurrentRole) {
  BindingPolicy policy;
  Device device = makeDevice(Mode::kShareFree);
  ASSERT_TRUE(policy.bindDevice(device, "alice", kT0).isOk());
  ASSERT_TRUE(policy.bindDevice(device, "bob", kT0 + 1).isOk());
  const Device before = device;
  device.online = false;  // a retry after the device went away still answers ok
  Outcome outcome = policy.bindDevice(device, "bob", kT0 + 2);
  device.online = true;
  ASSERT_TRUE(outcome.isOk());
  EXPECT_EQ(outcome.role, Role::kNormal);
  EXPECT_FALSE(outcome.changed);
  EXPECT_EQ(device, before);
  EXPECT_EQ(policy.bindDevice(device, "alice", kT0 + 3).role, Role::kOwner);
}

TEST(PolicyRules, TwoUsersRacingForUnownedDeviceYieldExactlyOneOwner) {
  // The hub loop serialises requests; whichever comes second sees the first's result.
  BindingPolicy policy;
  for (Mode mode :
       {Mode::kPreemptive, Mode::kShareRequired, Mode::kShareFree, Mode::kOwnerOnShare}) {
    for (const char* transport : {kTransportBle, kTransportWifi}) {
      if (mode == Mode::kPreemptive && std::string(transport) == kTransportBle) continue;
      Device device = makeDevice(mode, transport);
      directBind(policy, device, "alice", kT0);
      directBind(policy, device, "bob", kT0);
      const auto owners = std::count_if(device.bindings.begin(), device.bindings.end(),
                                        [](const Binding& b) { return b.role == Role::kOwner; });
      const auto specials =
          std::count_if(device.bindings.begin(), device.bindings.end(),
                        [](const Binding& b) { return b.role == Role::kSpecial; });
      EXPECT_EQ(owners + specials, 1) << modeName(mode) << " " << transport;
    }
  }
}

// ---- Sharing ----------------------------------------------------------------------------------

TEST(PolicyRules, OnlyOwnerOrSpecialMayShare) {
  BindingPolicy policy;
  Device device = populatedDevice(policy, Mode::kShareFree, kTransportBle);
  const Device before = device;
  for (const char* user : {"bob" /*normal*/, "carol" /*guest*/, "zed" /*unbound*/}) {
    expectErrorUnchanged(policy.shareByQr(device, user, "x1", "kx", kT0 + 10), ErrorCode::kNotOwner,
                         before, device);
    expectErrorUnchanged(policy.shareByAccount(device, user, "x2", "erin", true, kT0 + 10),
                         ErrorCode::kNotOwner, before, device);
  }
  EXPECT_TRUE(policy.shareByQr(device, "alice", "x1", "kx", kT0 + 10).isOk());
}

TEST(PolicyRules, SpecialFirstShareBecomesOwnerAndLocksDirectBinding) {
  BindingPolicy policy;
  for (ShareWay way : {ShareWay::kQr, ShareWay::kAccount}) {
    Device device = makeDevice(Mode::kOwnerOnShare);
    ASSERT_TRUE(policy.bindDevice(device, "alice", kT0).isOk());
    ASSERT_TRUE(policy.bindDevice(device, "bob", kT0 + 1).isOk());
    Outcome outcome = way == ShareWay::kQr
                          ? policy.shareByQr(device, "alice", "s1", "k1", kT0 + 2)
                          : policy.shareByAccount(device, "alice", "s1", "carol", true, kT0 + 2);
    ASSERT_TRUE(outcome.isOk());
    EXPECT_EQ(outcome.role, Role::kOwner);
    EXPECT_EQ(roleOf(device, "alice"), Role::kOwner);
    EXPECT_EQ(roleOf(device, "bob"), Role::kNormal);
    EXPECT_TRUE(notified(outcome, "alice", Event::kBindingChanged, "promoted"));
    EXPECT_EQ(policy.bindDevice(device, "dave", kT0 + 3).status.code(), ErrorCode::kShareRequired);
  }
  // A failed share promotes nobody.
  Device device = makeDevice(Mode::kOwnerOnShare);
  ASSERT_TRUE(policy.bindDevice(device, "alice", kT0).isOk());
  const Device before = device;
  expectErrorUnchanged(policy.shareByAccount(device, "alice", "s1", "ghost", false, kT0 + 1),
                       ErrorCode::kNotFound, before, device);
  EXPECT_EQ(roleOf(device, "alice"), Role::kSpecial);
}

TEST(PolicyRules, QrShareReturnsFreshKeyWithDefaultTtl) {
  BindingPolicy policy;
  Device device = makeDevice(Mode::kShareRequired);
  ASSERT_TRUE(policy.bindDevice(device, "alice", kT0).isOk());
  Outcome first = policy.shareByQr(device, "alice", "s1", "k1", kT0 + 1);
  ASSERT_TRUE(first.isOk());
  EXPECT_EQ(first.expiresAtMs, kT0 + 1 + 15 * kMinuteMs);
  EXPECT_TRUE(policy.shareByQr(device, "alice", "s2", "k2", kT0 + 2).isOk());
  EXPECT_EQ(pendingShares(device), 2u);
  // The caller's random ids must be fresh; a collision is a broken invariant, not a user error.
  const Device before = device;
  expectErrorUnchanged(policy.shareByQr(device, "alice", "s3", "k1", kT0 + 3), ErrorCode::kInternal,
                       before, device);
  expectErrorUnchanged(policy.shareByQr(device, "alice", "s1", "k3", kT0 + 3), ErrorCode::kInternal,
                       before, device);
}

TEST(PolicyRules, QrTtlIsConfigurableUpTo30Minutes) {
  PolicyConfig config;
  config.qrTtlMs = 30 * kMinuteMs;
  EXPECT_TRUE(validateConfig(config).isOk());
  config.qrTtlMs = 30 * kMinuteMs + 1;
  EXPECT_EQ(validateConfig(config).code(), ErrorCode::kInvalidRequest);
  // Even unvalidated, a key never lives longer than 30 minutes.
  BindingPolicy policy(config);
  Device device = makeDevice(Mode::kShareRequired);
  ASSERT_TRUE(policy.bindDevice(device, "alice", kT0).isOk());
  EXPECT_EQ(policy.shareByQr(device, "alice", "s1", "k1", kT0).expiresAtMs, kT0 + kMaxQrTtlMs);
  PolicyConfig other;
  other.maxMembers = 0;
  EXPECT_FALSE(validateConfig(other).isOk());
  EXPECT_TRUE(validateConfig(PolicyConfig{}).isOk());
}

TEST(PolicyRules, ScanShareBindsScannerAsGuest) {
  BindingPolicy policy;
  Device device = makeDevice(Mode::kShareRequired);
  ASSERT_TRUE(policy.bindDevice(device, "alice", kT0).isOk());
  ASSERT_TRUE(policy.shareByQr(device, "alice", "s1", "k1", kT0).isOk());
  Outcome outcome = policy.scanShare(device, "bob", "k1", kT0 + 15 * kMinuteMs - 1);
  ASSERT_TRUE(outcome.isOk()) << outcome.status.toString();
  EXPECT_EQ(outcome.role, Role::kGuest);
  EXPECT_EQ(roleOf(device, "bob"), Role::kGuest);
  EXPECT_TRUE(notified(outcome, "alice", Event::kShareAccepted));
  EXPECT_TRUE(notified(outcome, "bob", Event::kBindingChanged, "bound"));
  EXPECT_EQ(device.shares[0].state, ShareState::kAccepted);
  EXPECT_EQ(device.shares[0].guest, "bob");
}

TEST(PolicyRules, ScanShareUnknownKeyIsTokenInvalid) {
  BindingPolicy policy;
  Device device = makeDevice(Mode::kShareRequired);
  ASSERT_TRUE(policy.bindDevice(device, "alice", kT0).isOk());
  ASSERT_TRUE(policy.shareByQr(device, "alice", "s1", "k1", kT0).isOk());
  ASSERT_TRUE(policy.cancelShare(device, "alice", "s1", kT0 + 1).isOk());
  const Device before = device;
  for (const char* key : {"k2", "", "k1" /*cancelled*/}) {
    expectErrorUnchanged(policy.scanShare(device, "bob", key, kT0 + 2), ErrorCode::kTokenInvalid,
                         before, device);
  }
}

TEST(PolicyRules, ScanShareExpiredKeyIsTokenExpired) {
  BindingPolicy policy;
  Device device = makeDevice(Mode::kShareRequired);
  ASSERT_TRUE(policy.bindDevice(device, "alice", kT0).isOk());
  ASSERT_TRUE(policy.shareByQr(device, "alice", "s1", "k1", kT0).isOk());
  const Device before = device;
  // Not yet swept by expire() ...
  expectErrorUnchanged(policy.scanShare(device, "bob", "k1", kT0 + 15 * kMinuteMs),
                       ErrorCode::kTokenExpired, before, device);
  // ... and swept.
  ASSERT_TRUE(policy.expire(device, kT0 + 16 * kMinuteMs).changed);
  EXPECT_EQ(policy.scanShare(device, "bob", "k1", kT0 + 16 * kMinuteMs).status.code(),
            ErrorCode::kTokenExpired);
}

TEST(PolicyRules, ScanShareUsedKeyIsTokenUsed) {
  BindingPolicy policy;
  Device device = makeDevice(Mode::kShareRequired);
  ASSERT_TRUE(policy.bindDevice(device, "alice", kT0).isOk());
  ASSERT_TRUE(policy.shareByQr(device, "alice", "s1", "k1", kT0).isOk());
  ASSERT_TRUE(policy.scanShare(device, "bob", "k1", kT0 + 1).isOk());
  const Device before = device;
  expectErrorUnchanged(policy.scanShare(device, "carol", "k1", kT0 + 2), ErrorCode::kTokenUsed,
                       before, device);
}

TEST(PolicyRules, ScanShareByBoundUserIsAlreadyBoundAndKeyStaysUsable) {
  BindingPolicy policy;
  Device device = makeDevice(Mode::kShareRequired);
  ASSERT_TRUE(policy.bindDevice(device, "alice", kT0).isOk());
  ASSERT_TRUE(policy.shareByQr(device, "alice", "s1", "k1", kT0).isOk());
  const Device before = device;
  expectErrorUnchanged(policy.scanShare(device, "alice", "k1", kT0 + 1), ErrorCode::kAlreadyBound,
                       before, device);
  EXPECT_TRUE(policy.scanShare(device, "bob", "k1", kT0 + 2).isOk());
}

TEST(PolicyRules, FailedScansAreRateLimited) {
  ScanRateLimiter limiter;  // defaults: 20 failures / 15 min → blocked 15 min
  const int64_t window = 15 * kMinuteMs;
  for (int i = 0; i < 19; ++i) {
    ASSERT_TRUE(limiter.check("mallory", kT0 + i).isOk());
    limiter.recordFailure("mallory", kT0 + i);
  }
  EXPECT_TRUE(limiter.check("mallory", kT0 + 19).isOk());
  limiter.recordFailure("mallory", kT0 + 19);  // the 20th
  EXPECT_EQ(limiter.check("mallory", kT0 + 20).code(), ErrorCode::kRateLimited);
  EXPECT_TRUE(limiter.check("alice", kT0 + 20).isOk());  // per user
  EXPECT_EQ(limiter.check("mallory", kT0 + 19 + window - 1).code(), ErrorCode::kRateLimited);
  EXPECT_TRUE(limiter.check("mallory", kT0 + 19 + window).isOk());
  // Which results count as a failed guess.
  EXPECT_TRUE(countsAsFailedScan(ErrorCode::kTokenInvalid));
  EXPECT_TRUE(countsAsFailedScan(ErrorCode::kTokenExpired));
  EXPECT_TRUE(countsAsFailedScan(ErrorCode::kTokenUsed));
  EXPECT_FALSE(countsAsFailedScan(ErrorCode::kAlreadyBound));
  EXPECT_FALSE(countsAsFailedScan(ErrorCode::kOk));
}

TEST(PolicyRules, FailedScansOutsideTheWindowDoNotCount) {
  RateLimitConfig config;
  config.maxFailures = 3;
  config.windowMs = 1000;
  config.blockMs = 500;
  ScanRateLimiter limiter(config);
  limiter.recordFailure("u", 0);
  limiter.recordFailure("u", 600);
  limiter.recordFailure("u", 1000);  // the one at 0 has left the window
  EXPECT_TRUE(limiter.check("u", 1001).isOk());
  limiter.recordFailure("u", 1100);  // 600, 1000, 1100 → blocked until 1600
  EXPECT_EQ(limiter.check("u", 1599).code(), ErrorCode::kRateLimited);
  EXPECT_TRUE(limiter.check("u", 1600).isOk());
  limiter.prune(1600);
  EXPECT_EQ(limiter.trackedUsers(), 0u);
  limiter.recordFailure("u", 2000);
  limiter.prune(2500);
  EXPECT_EQ(limiter.trackedUsers(), 1u);
}

TEST(PolicyRules, KeysAreComparedInConstantTime) {
  EXPECT_TRUE(constantTimeEquals("abcdef", "abcdef"));
  EXPECT_FALSE(constantTimeEquals("abcdef", "abcdeg"));
  EXPECT_FALSE(constantTimeEquals("abcdef", "bbcdef"));
  EXPECT_FALSE(constantTimeEquals("abc", "abcd"));
  EXPECT_TRUE(constantTimeEquals("", ""));
}

TEST(PolicyRules, AccountShareInvitesGuestWithDefaultTtl) {
  BindingPolicy policy;
  Device device = makeDevice(Mode::kShareRequired);
  ASSERT_TRUE(policy.bindDevice(device, "alice", kT0).isOk());
  Outcome outcome = policy.shareByAccount(device, "alice", "s1", "bob", true, kT0 + 1);
  ASSERT_TRUE(outcome.isOk());
  EXPECT_EQ(outcome.expiresAtMs, kT0 + 1 + 24 * kHourMs);
  ASSERT_EQ(outcome.notifications.size(), 1u);
  const Notification& n = outcome.notifications[0];
  EXPECT_EQ(n.userId, "bob");
  EXPECT_EQ(n.event, Event::kShareInvited);
  EXPECT_EQ(n.data.sharingId, "s1");
  EXPECT_EQ(n.data.fromUser, "alice");
  EXPECT_EQ(n.data.deviceId, "dev1");
  EXPECT_EQ(n.data.expiresAtMs, kT0 + 1 + 24 * kHourMs);
  EXPECT_EQ(findBinding(device, "bob"), nullptr);  // not bound until accepted
}

TEST(PolicyRules, AccountShareToUnknownGuestIsNotFound) {
  BindingPolicy policy;
  Device device = makeDevice(Mode::kShareRequired);
  ASSERT_TRUE(policy.bindDevice(device, "alice", kT0).isOk());
  const Device before = device;
  expectErrorUnchanged(policy.shareByAccount(device, "alice", "s1", "ghost", false, kT0),
                       ErrorCode::kNotFound, before, device);
}

TEST(PolicyRules, AccountShareToBoundGuestIsConflict) {
  BindingPolicy policy;
  Device device = populatedDevice(policy, Mode::kShareFree, kTransportBle);
  const Device before = device;
  for (const char* guest : {"alice", "bob", "carol"}) {
    expectErrorUnchanged(policy.shareByAccount(device, "alice", "s9", guest, true, kT0 + 10),
                         ErrorCode::kConflict, before, device);
  }
}

TEST(PolicyRules, AccountShareToAlreadyInvitedGuestIsConflict) {
  BindingPolicy policy;
  Device device = populatedDevice(policy, Mode::kShareFree, kTransportBle);  // dave invited
  const Device before = device;
  expectErrorUnchanged(policy.shareByAccount(device, "alice", "s9", "dave", true, kT0 + 10),
                       ErrorCode::kConflict, before, device);
  // Once the first invite has run out, a new one may be sent.
  EXPECT_TRUE(
      policy.shareByAccount(device, "alice", "s9", "dave", true, kT0 + 5 + 24 * kHourMs).isOk());
}

TEST(PolicyRules, AcceptShareBindsGuestAndNotifiesSharer) {
  BindingPolicy policy;
  Device device = populatedDevice(policy, Mode::kShareFree, kTransportBle);
  Outcome outcome = policy.acceptShare(device, "dave", "s3", kT0 + 10);
  ASSERT_TRUE(outcome.isOk()) << outcome.status.toString();
  EXPECT_EQ(outcome.role, Role::kGuest);
  EXPECT_EQ(roleOf(device, "dave"), Role::kGuest);
  EXPECT_TRUE(notified(outcome, "alice", Event::kShareAccepted));
  // Retrying the accept is harmless.
  const Device before = device;
  Outcome again = policy.acceptShare(device, "dave", "s3", kT0 + 11);
  EXPECT_TRUE(again.isOk());
  EXPECT_EQ(again.role, Role::kGuest);
  EXPECT_EQ(device, before);
  // But rejecting what was accepted is not.
  expectErrorUnchanged(policy.rejectShare(device, "dave", "s3", kT0 + 12), ErrorCode::kTokenUsed,
                       before, device);
}

TEST(PolicyRules, RejectShareNotifiesSharer) {
  BindingPolicy policy;
  Device device = populatedDevice(policy, Mode::kShareFree, kTransportBle);
  Outcome outcome = policy.rejectShare(device, "dave", "s3", kT0 + 10);
  ASSERT_TRUE(outcome.isOk());
  EXPECT_TRUE(notified(outcome, "alice", Event::kShareRejected));
  EXPECT_EQ(findBinding(device, "dave"), nullptr);
  const Device before = device;
  expectErrorUnchanged(policy.acceptShare(device, "dave", "s3", kT0 + 11), ErrorCode::kTokenUsed,
                       before, device);
}

TEST(PolicyRules, AcceptOrRejectByOtherUserIsForbidden) {
  BindingPolicy policy;
  Device device = populatedDevice(policy, Mode::kShareFree, kTransportBle);
  const Device before = device;
  for (const char* user : {"alice", "bob", "erin"}) {
    expectErrorUnchanged(policy.acceptShare(device, user, "s3", kT0 + 10), ErrorCode::kForbidden,
                         before, device);
    expectErrorUnchanged(policy.rejectShare(device, user, "s3", kT0 + 10), ErrorCode::kForbidden,
                         before, device);
  }
  // A QR share is used by scanning, never accepted by id.
  expectErrorUnchanged(policy.acceptShare(device, "erin", "s2", kT0 + 10), ErrorCode::kForbidden,
                       before, device);
  expectErrorUnchanged(policy.acceptShare(device, "dave", "nope", kT0 + 10), ErrorCode::kNotFound,
                       before, device);
}

TEST(PolicyRules, AcceptExpiredInviteIsTokenExpired) {
  BindingPolicy policy;
  Device device = populatedDevice(policy, Mode::kShareFree, kTransportBle);
  const Device before = device;
  const int64_t expiry = kT0 + 5 + 24 * kHourMs;
  expectErrorUnchanged(policy.acceptShare(device, "dave", "s3", expiry), ErrorCode::kTokenExpired,
                       before, device);
  expectErrorUnchanged(policy.rejectShare(device, "dave", "s3", expiry), ErrorCode::kTokenExpired,
                       before, device);
  EXPECT_TRUE(policy.acceptShare(device, "dave", "s3", expiry - 1).isOk());
}

TEST(PolicyRules, CancelShareBySharerOnly) {
  BindingPolicy policy;
  Device device = populatedDevice(policy, Mode::kShareFree, kTransportBle);
  const Device before = device;
  expectErrorUnchanged(policy.cancelShare(device, "dave", "s3", kT0 + 10), ErrorCode::kForbidden,
                       before, device);
  expectErrorUnchanged(policy.cancelShare(device, "alice", "s1", kT0 + 10), ErrorCode::kConflict,
                       before, device);  // s1 was already used
  ASSERT_TRUE(policy.cancelShare(device, "alice", "s3", kT0 + 10).isOk());
  EXPECT_TRUE(policy.cancelShare(device, "alice", "s3", kT0 + 11).isOk());  // idempotent
  EXPECT_EQ(policy.acceptShare(device, "dave", "s3", kT0 + 12).status.code(),
            ErrorCode::kTokenInvalid);
}

TEST(PolicyRules, ListSharesToMeAndFromMe) {
  BindingPolicy policy;
  Device device = populatedDevice(policy, Mode::kShareFree, kTransportBle);
  std::vector<Share> fromAlice = sharesFromUser(device, "alice");
  ASSERT_EQ(fromAlice.size(), 3u);
  EXPECT_EQ(fromAlice[0].state, ShareState::kAccepted);  // closed shares stay listed
  std::vector<Share> toDave = sharesToUser(device, "dave");
  ASSERT_EQ(toDave.size(), 1u);
  EXPECT_EQ(toDave[0].sharingId, "s3");
  EXPECT_EQ(toDave[0].way, ShareWay::kAccount);
  EXPECT_EQ(sharesToUser(device, "carol").size(), 1u);  // the QR share carol scanned
  EXPECT_TRUE(sharesFromUser(device, "bob").empty());
}

TEST(PolicyRules, MaxMembersIsLimitReached) {
  PolicyConfig config;
  config.maxMembers = 3;
  BindingPolicy policy(config);
  Device device = makeDevice(Mode::kShareFree);
  ASSERT_TRUE(policy.bindDevice(device, "alice", kT0).isOk());
  ASSERT_TRUE(policy.shareByQr(device, "alice", "s1", "k1", kT0).isOk());
  ASSERT_TRUE(policy.shareByQr(device, "alice", "s4", "k4", kT0).isOk());
  ASSERT_TRUE(policy.shareByAccount(device, "alice", "s2", "dave", true, kT0).isOk());
  ASSERT_TRUE(policy.bindDevice(device, "bob", kT0 + 1).isOk());
  ASSERT_TRUE(policy.scanShare(device, "carol", "k1", kT0 + 2).isOk());  // 3 members now
  const Device before = device;
  expectErrorUnchanged(policy.bindDevice(device, "erin", kT0 + 3), ErrorCode::kLimitReached, before,
                       device);
  expectErrorUnchanged(policy.acceptShare(device, "dave", "s2", kT0 + 3), ErrorCode::kLimitReached,
                       before, device);
  expectErrorUnchanged(policy.scanShare(device, "erin", "k4", kT0 + 3), ErrorCode::kLimitReached,
                       before, device);
  expectErrorUnchanged(policy.shareByQr(device, "alice", "s3", "k3", kT0 + 3),
                       ErrorCode::kLimitReached, before, device);
  expectErrorUnchanged(policy.shareByAccount(device, "alice", "s3", "erin", true, kT0 + 3),
                       ErrorCode::kLimitReached, before, device);
  // A member leaving makes room again.
  ASSERT_TRUE(policy.unbind(device, "bob", kT0 + 4).isOk());
  EXPECT_TRUE(policy.acceptShare(device, "dave", "s2", kT0 + 5).isOk());
}

// ---- Unbinding --------------------------------------------------------------------------------

TEST(PolicyRules, OwnerUnbindRemovesEveryBindingAndPendingShare) {
  BindingPolicy policy;
  Device device = populatedDevice(policy, Mode::kShareFree, kTransportBle);
  Outcome outcome = policy.unbind(device, "alice", kT0 + 10);
  ASSERT_TRUE(outcome.isOk());
  EXPECT_TRUE(device.bindings.empty());
  EXPECT_EQ(pendingShares(device), 0u);
  EXPECT_TRUE(notified(outcome, "alice", Event::kBindingChanged, "unbound"));
  EXPECT_TRUE(notified(outcome, "bob", Event::kBindingChanged, "ownerUnbound"));
  EXPECT_TRUE(notified(outcome, "carol", Event::kBindingChanged, "ownerUnbound"));
  EXPECT_EQ(policy.scanShare(device, "erin", "key2", kT0 + 11).status.code(),
            ErrorCode::kTokenInvalid);
  EXPECT_EQ(policy.acceptShare(device, "dave", "s3", kT0 + 11).status.code(),
            ErrorCode::kTokenInvalid);
  // The device is unowned again: the next binder becomes owner.
  EXPECT_EQ(policy.bindDevice(device, "erin", kT0 + 12).role, Role::kOwner);
}

TEST(PolicyRules, NonOwnerUnbindRemovesOnlyThemselves) {
  BindingPolicy policy;
  Device device = populatedDevice(policy, Mode::kShareFree, kTransportBle);
  Outcome outcome = policy.unbind(device, "carol", kT0 + 10);
  ASSERT_TRUE(outcome.isOk());
  EXPECT_EQ(memberIds(device), (std::vector<std::string>{"alice", "bob"}));
  EXPECT_EQ(pendingShares(device), 2u);
  EXPECT_TRUE(notified(outcome, "carol", Event::kBindingChanged, "unbound"));
  EXPECT_TRUE(notified(outcome, "alice", Event::kBindingChanged, "memberLeft"));
  EXPECT_FALSE(notified(outcome, "bob", Event::kBindingChanged));
  ASSERT_TRUE(policy.unbind(device, "bob", kT0 + 11).isOk());
  EXPECT_EQ(memberIds(device), (std::vector<std::string>{"alice"}));
}

TEST(PolicyRules, SpecialLeavingPromotesEarliestNormal) {
  BindingPolicy policy;
  Device device = makeDevice(Mode::kOwnerOnShare);
  ASSERT_TRUE(policy.bindDevice(device, "alice", kT0).isOk());
  ASSERT_TRUE(policy.bindDevice(device, "bob", kT0 + 1).isOk());
  ASSERT_TRUE(policy.bindDevice(device, "carol", kT0 + 2).isOk());
  Outcome outcome = policy.unbind(device, "alice", kT0 + 3);
  ASSERT_TRUE(outcome.isOk());
  EXPECT_EQ(roleOf(device, "bob"), Role::kSpecial);
  EXPECT_EQ(roleOf(device, "carol"), Role::kNormal);
  EXPECT_TRUE(notified(outcome, "bob", Event::kBindingChanged, "promoted"));
  // The new special may share, and becomes owner by doing so.
  EXPECT_EQ(policy.shareByQr(device, "bob", "s1", "k1", kT0 + 4).role, Role::kOwner);
}

TEST(PolicyRules, UnbindByUnboundUserIsForbidden) {
  BindingPolicy policy;
  Device device = populatedDevice(policy, Mode::kShareFree, kTransportBle);
  const Device before = device;
  expectErrorUnchanged(policy.unbind(device, "dave", kT0 + 10), ErrorCode::kForbidden, before,
                       device);
}

TEST(PolicyRules, RemoveMemberByOwnerNotifiesMemberRemoved) {
  BindingPolicy policy;
  Device device = populatedDevice(policy, Mode::kShareFree, kTransportBle);
  Outcome outcome = policy.removeMember(device, "alice", "carol", kT0 + 10);
  ASSERT_TRUE(outcome.isOk());
  EXPECT_EQ(memberIds(device), (std::vector<std::string>{"alice", "bob"}));
  EXPECT_TRUE(notified(outcome, "carol", Event::kBindingChanged, "removed"));
  const Device before = device;
  expectErrorUnchanged(policy.removeMember(device, "alice", "carol", kT0 + 11),
                       ErrorCode::kNotFound, before, device);
  expectErrorUnchanged(policy.removeMember(device, "alice", "alice", kT0 + 11),
                       ErrorCode::kInvalidRequest, before, device);
}

TEST(PolicyRules, RemoveMemberByNonOwnerIsNotOwner) {
  BindingPolicy policy;
  Device device = populatedDevice(policy, Mode::kShareFree, kTransportBle);
  const Device before = device;
  for (const char* actor : {"bob", "carol", "zed"}) {
    expectErrorUnchanged(policy.removeMember(device, actor, "alice", kT0 + 10),
                         ErrorCode::kNotOwner, before, device);
  }
  // A special is not an owner either.
  Device special = makeDevice(Mode::kOwnerOnShare);
  ASSERT_TRUE(policy.bindDevice(special, "alice", kT0).isOk());
  ASSERT_TRUE(policy.bindDevice(special, "bob", kT0).isOk());
  const Device specialBefore = special;
  expectErrorUnchanged(policy.removeMember(special, "alice", "bob", kT0 + 1), ErrorCode::kNotOwner,
                       specialBefore, special);
}

TEST(PolicyRules, DeviceResetClearsAllBindingsAndShares) {
  BindingPolicy policy;
  Device device = populatedDevice(policy, Mode::kOwnerOnShare, kTransportWifi);
  Outcome outcome = policy.deviceReset(device, kT0 + 10);
  ASSERT_TRUE(outcome.isOk());
  EXPECT_TRUE(device.bindings.empty());
  EXPECT_EQ(pendingShares(device), 0u);
  for (const char* user : {"alice", "bob", "carol"}) {
    EXPECT_TRUE(notified(outcome, user, Event::kBindingChanged, "reset")) << user;
  }
  // 004 §3.4: whoever binds next starts over (special in owner_on_share).
  EXPECT_EQ(directBind(policy, device, "bob", kT0 + 11).role, Role::kSpecial);
  Device unbound = makeDevice(Mode::kShareFree);
  Outcome idle = policy.deviceReset(unbound, kT0);
  EXPECT_TRUE(idle.isOk());
  EXPECT_FALSE(idle.changed);
}

TEST(PolicyRules, AdminUnbindClearsAllBindingsAndShares) {
  BindingPolicy policy;
  Device device = populatedDevice(policy, Mode::kShareFree, kTransportBle);
  Outcome outcome = policy.adminUnbind(device, "root", kT0 + 10);
  ASSERT_TRUE(outcome.isOk());
  EXPECT_TRUE(device.bindings.empty());
  EXPECT_EQ(pendingShares(device), 0u);
  for (const char* user : {"alice", "bob", "carol"}) {
    EXPECT_TRUE(notified(outcome, user, Event::kBindingChanged, "adminUnbind")) << user;
  }
  ASSERT_FALSE(outcome.audit.empty());
  EXPECT_EQ(outcome.audit[0].actor, "admin:root");
}

// ---- Expiry, queries, audit -------------------------------------------------------------------

TEST(PolicyRules, ExpireMarksOverdueSharesAndPrunesHistory) {
  PolicyConfig config;
  config.historyRetentionMs = kHourMs;
  BindingPolicy policy(config);
  Device device = makeDevice(Mode::kShareRequired);
  ASSERT_TRUE(policy.bindDevice(device, "alice", kT0).isOk());
  ASSERT_TRUE(policy.shareByQr(device, "alice", "s1", "k1", kT0).isOk());
  ASSERT_TRUE(policy.shareByAccount(device, "alice", "s2", "bob", true, kT0).isOk());
  EXPECT_EQ(policy.nextExpiryMs(device), kT0 + 15 * kMinuteMs);

  const Device before = device;
  EXPECT_FALSE(policy.expire(device, kT0 + 15 * kMinuteMs - 1).changed);
  EXPECT_EQ(device, before);

  Outcome outcome = policy.expire(device, kT0 + 15 * kMinuteMs);
  EXPECT_TRUE(outcome.changed);
  ASSERT_EQ(outcome.audit.size(), 1u);
  EXPECT_EQ(outcome.audit[0].action, "shareExpire");
  EXPECT_EQ(device.shares[0].state, ShareState::kExpired);
  EXPECT_EQ(device.shares[1].state, ShareState::kPending);
  // The expired key is remembered for the retention period, then forgotten.
  EXPECT_EQ(policy.nextExpiryMs(device), kT0 + 15 * kMinuteMs + kHourMs);
  EXPECT_TRUE(policy.expire(device, kT0 + 15 * kMinuteMs + kHourMs).changed);
  ASSERT_EQ(device.shares.size(), 1u);
  EXPECT_EQ(device.shares[0].sharingId, "s2");
  EXPECT_EQ(policy.scanShare(device, "carol", "k1", kT0 + 2 * kHourMs).status.code(),
            ErrorCode::kTokenInvalid);
  EXPECT_TRUE(policy.expire(device, kT0 + 24 * kHourMs).changed);
  EXPECT_EQ(device.shares[0].state, ShareState::kExpired);
}

TEST(PolicyRules, DeviceDetailOwnerSeesEveryoneOthersSeeOwnerAndThemselves) {
  BindingPolicy policy;
  Device device = populatedDevice(policy, Mode::kShareFree, kTransportBle);
  auto names = [](const std::vector<Binding>& bindings) {
    std::vector<std::string> ids;
    for (const Binding& b : bindings) ids.push_back(b.userId);
    return ids;
  };
  EXPECT_EQ(names(visibleMembers(device, "alice").value()),
            (std::vector<std::string>{"alice", "bob", "carol"}));
  EXPECT_EQ(names(visibleMembers(device, "bob").value()),
            (std::vector<std::string>{"alice", "bob"}));
  EXPECT_EQ(names(visibleMembers(device, "carol").value()),
            (std::vector<std::string>{"alice", "carol"}));
  // A special sees everyone too.
  Device special = makeDevice(Mode::kOwnerOnShare);
  ASSERT_TRUE(policy.bindDevice(special, "alice", kT0).isOk());
  ASSERT_TRUE(policy.bindDevice(special, "bob", kT0).isOk());
  ASSERT_TRUE(policy.bindDevice(special, "carol", kT0).isOk());
  EXPECT_EQ(visibleMembers(special, "alice").value().size(), 3u);
  EXPECT_EQ(names(visibleMembers(special, "carol").value()), (std::vector<std::string>{"carol"}));
}

TEST(PolicyRules, DeviceDetailForUnboundUserIsForbidden) {
  BindingPolicy policy;
  Device device = populatedDevice(policy, Mode::kShareFree, kTransportBle);
  EXPECT_EQ(visibleMembers(device, "dave").status().code(), ErrorCode::kForbidden);
}

TEST(PolicyRules, EveryBindingChangeIsAudited) {
  BindingPolicy policy;
  Device device = makeDevice(Mode::kShareRequired);
  Outcome bind = policy.bindDevice(device, "alice", kT0);
  ASSERT_EQ(bind.audit.size(), 1u);
  EXPECT_EQ(bind.audit[0], (AuditEntry{kT0, "alice", "dev1", "bind", "alice",
                                       "owner, first direct bind "
                                       "(bindDevice)"}));
  ASSERT_TRUE(policy.shareByQr(device, "alice", "s1", "k1", kT0).isOk());
  Outcome scan = policy.scanShare(device, "bob", "k1", kT0 + 1);
  ASSERT_EQ(scan.audit.size(), 2u);
  EXPECT_EQ(scan.audit[0].action, "shareUse");
  EXPECT_EQ(scan.audit[1].action, "bind");
  EXPECT_EQ(scan.audit[1].subject, "bob");
  Outcome removed = policy.removeMember(device, "alice", "bob", kT0 + 2);
  ASSERT_EQ(removed.audit.size(), 1u);
  EXPECT_EQ(removed.audit[0].action, "unbind");
  EXPECT_EQ(removed.audit[0].actor, "alice");
  EXPECT_EQ(removed.audit[0].subject, "bob");
  Outcome reset = policy.deviceReset(device, kT0 + 3);
  ASSERT_EQ(reset.audit.size(), 1u);
  EXPECT_EQ(reset.audit[0].actor, "device");
  EXPECT_EQ(reset.audit[0].reason, "reset");
}

// ---- Randomised invariants --------------------------------------------------------------------

// Drives the policy the way the hub does (copy, apply, keep the copy only when ok) with random
// operations from several users on devices of every mode, and checks the SPEC's invariants after
// every step.
class RandomRun {
 public:
  RandomRun(uint32_t seed, std::map<std::string, int>* tally) : rng_(seed), tally_(tally) {
    PolicyConfig config;
    config.maxMembers = pick(1, 4);
    config.qrTtlMs = pick(1, 30) * kMinuteMs;
    config.inviteTtlMs = pick(1, 60) * kMinuteMs;
    config.provisionTtlMs = pick(1, 20) * kMinuteMs;
    config.historyRetentionMs = pick(0, 120) * kMinuteMs;
    policy_ = BindingPolicy(config);
    devices_ = {makeDevice(Mode::kPreemptive, kTransportWifi, "w1"),
                makeDevice(Mode::kShareRequired, kTransportBle, "b1"),
                makeDevice(Mode::kShareFree, kTransportBle, "b2"),
                makeDevice(Mode::kOwnerOnShare, kTransportBle, "b3"),
                makeDevice(Mode::kOwnerOnShare, kTransportWifi, "w2")};
    if (pick(0, 3) == 0) devices_[4].mode = Mode::kShareFree;
  }

  void run(int steps) {
    for (int i = 0; i < steps && !::testing::Test::HasFailure(); ++i) step();
  }

 private:
  int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  int pick(size_t count) { return pick(0, static_cast<int>(count) - 1); }
  std::string anyUser() { return kUsers[pick(kUsers.size())]; }

  // Random users mostly bounce off; bias towards the users an operation is meant for.
  std::string boundUserOr(const Device& device) {
    if (device.bindings.empty() || pick(0, 2) == 0) return anyUser();
    return device.bindings[pick(device.bindings.size())].userId;
  }
  std::string sharerOr(const Device& device) {
    for (const Binding& b : device.bindings) {
      if ((b.role == Role::kOwner || b.role == Role::kSpecial) && pick(0, 2) > 0) return b.userId;
    }
    return boundUserOr(device);
  }
  const Share* anyShare(const Device& device, std::optional<ShareWay> way) {
    std::vector<const Share*> candidates;
    for (const Share& share : device.shares) {
      if (!way || share.way == *way) candidates.push_back(&share);
    }
    if (candidates.empty() || pick(0, 9) == 0) return nullptr;
    return candidates[pick(candidates.size())];
  }

  void step() {
    now_ += pick(0, 4) * kMinuteMs + pick(0, 999);
    Device& device = devices_[pick(devices_.size())];
    Device work = device;  // the hub's copy
    const Device before = device;
    const int choice = pick(0, 18);
    std::string user;
    switch (choice) {
      case 4:
      case 5:
      case 6:
      case 11:
      case 14:
        user = sharerOr(device);
        break;
      case 12:
      case 13:
        user = boundUserOr(device);
        break;
      default:
        user = anyUser();
        break;
    }
    Outcome outcome;
    std::string op;
    ProvisionToken* token = nullptr;
    ProvisionToken tokenBefore;
    std::string scannedKey;

    switch (choice) {
      case 0:
      case 1: {  // provisionBegin then the device announces some token
        op = "provision";
        if (tokens_.empty() || pick(0, 2) == 0) {
          tokens_.push_back(policy_.issueProvisionToken(
              "t" + std::to_string(nextId_++), user, pick(0, 3) == 0 ? device.deviceId : "",
              now_ - pick(0, 1) * pick(0, 20) * kMinuteMs));
        }
        token = &tokens_[pick(tokens_.size())];
        tokenBefore = *token;
        outcome = policy_.provision(work, *token, now_);
        break;
      }
      case 2:
      case 3:
        op = "bindDevice";
        outcome = policy_.bindDevice(work, user, now_);
        break;
      case 4:
      case 5: {
        op = "shareByQr";
        const std::string key = "k" + std::to_string(nextId_++);
        outcome = policy_.shareByQr(work, user, "s" + std::to_string(nextId_++), key, now_);
        if (outcome.isOk()) keys_[key] = KeyInfo{device.deviceId, outcome.expiresAtMs, 0};
        break;
      }
      case 6: {
        op = "shareByAccount";
        const std::string guest = pick(0, 5) == 0 ? "ghost" : anyUser();
        outcome = policy_.shareByAccount(work, user, "s" + std::to_string(nextId_++), guest,
                                         guest != "ghost", now_);
        break;
      }
      case 7:
      case 8: {
        op = "scanShare";
        // The hub finds the device through the key, so mostly keys of this device (live, spent,
        // expired or cancelled) are scanned here; "bogus" stands for a stale lookup.
        const Share* share = anyShare(device, ShareWay::kQr);
        scannedKey = share ? share->keyHash : "bogus";
        outcome = policy_.scanShare(work, user, scannedKey, now_);
        break;
      }
      case 9:
      case 10: {
        const bool accept = choice == 9;
        op = accept ? "acceptShare" : "rejectShare";
        const Share* share =
            anyShare(device, pick(0, 4) ? std::optional(ShareWay::kAccount) : std::nullopt);
        const std::string sharingId = share ? share->sharingId : "nope";
        if (share && !share->guest.empty() && pick(0, 3) > 0) user = share->guest;
        outcome = accept ? policy_.acceptShare(work, user, sharingId, now_)
                         : policy_.rejectShare(work, user, sharingId, now_);
        break;
      }
      case 11: {
        op = "cancelShare";
        const Share* share = anyShare(device, std::nullopt);
        outcome = policy_.cancelShare(work, user, share ? share->sharingId : "nope", now_);
        break;
      }
      case 12:
      case 13:
        op = "unbind";
        outcome = policy_.unbind(work, user, now_);
        break;
      case 14:
        op = "removeMember";
        outcome = policy_.removeMember(work, user, boundUserOr(device), now_);
        break;
      case 15:
        op = pick(0, 1) ? "deviceReset" : "adminUnbind";
        if (pick(0, 2) > 0) return;  // rarer than the rest, or devices rarely fill up
        outcome = op == "deviceReset" ? policy_.deviceReset(work, now_)
                                      : policy_.adminUnbind(work, "root", now_);
        break;
      default: {  // the world changes: presence, bind window, housekeeping
        op = "environment";
        switch (pick(0, 3)) {
          case 0:
            device.online = !device.online;
            break;
          case 1:
            device.bindWindowMs = pick(-1, 2) * 5 * kMinuteMs;
            device.bindWindowMs = std::max<int64_t>(device.bindWindowMs, kBindWindowClosed);
            device.bindWindowReportedAtMs = now_;
            break;
          default: {
            op = "expire";
            outcome = policy_.expire(work, now_);
            break;
          }
        }
        if (op == "environment") return;
        break;
      }
    }
    const std::optional<Role> userRoleBefore = roleOf(before, user);
    ++(*tally_)[op + " " + errorCodeName(outcome.status.code())];
    if (outcome.preempted) ++(*tally_)["preempted"];
    if (op == "unbind" && outcome.isOk() && userRoleBefore == Role::kOwner) {
      ++(*tally_)["ownerUnbind"];
    }
    if (notified(outcome, user, Event::kBindingChanged, "promoted")) ++(*tally_)["promoted"];
    SCOPED_TRACE(op + " by " + user + " on " + device.deviceId + " (" + modeName(device.mode) +
                 ") at +" + std::to_string(now_ - kT0) + ": " + outcome.status.toString());

    if (!outcome.isOk()) {
      // Nothing changes on an error.
      EXPECT_EQ(work, before);
      EXPECT_FALSE(outcome.changed);
      EXPECT_TRUE(outcome.notifications.empty());
      EXPECT_TRUE(outcome.audit.empty());
      if (token != nullptr) {
        EXPECT_EQ(*token, tokenBefore);
      }
    } else if (!outcome.changed) {
      EXPECT_EQ(work, before);
    }
    if (work.bindings != before.bindings) {
      EXPECT_FALSE(outcome.audit.empty());
    }

    // Guests and normals (and strangers) can never share.
    if ((op == "shareByQr" || op == "shareByAccount") &&
        (!userRoleBefore || *userRoleBefore == Role::kGuest || *userRoleBefore == Role::kNormal)) {
      EXPECT_EQ(outcome.status.code(), ErrorCode::kNotOwner);
    }
    // After an owner's unbind the device has no bindings and no pending shares.
    if (op == "unbind" && outcome.isOk() && userRoleBefore == Role::kOwner) {
      EXPECT_TRUE(work.bindings.empty());
      EXPECT_EQ(pendingShares(work), 0u);
    }
    // After a preempting provision exactly one binding remains, and every evicted user heard.
    if (op == "provision" && outcome.isOk() && outcome.preempted) {
      ASSERT_EQ(work.bindings.size(), 1u);
      EXPECT_EQ(work.bindings[0].userId, token->userId);
      EXPECT_EQ(work.bindings[0].role, Role::kOwner);
      EXPECT_EQ(pendingShares(work), 0u);
      EXPECT_EQ(before.mode, Mode::kPreemptive);
      for (const Binding& evicted : before.bindings) {
        EXPECT_TRUE(notified(outcome, evicted.userId, Event::kBindingChanged, "preempted"));
      }
    }
    // A key works at most once and never after its TTL.
    if (op == "scanShare" && outcome.isOk()) {
      KeyInfo& info = keys_[scannedKey];
      EXPECT_EQ(info.uses, 0);
      EXPECT_LT(now_, info.expiresAtMs);
      ++info.uses;
    }
    if (op == "acceptShare" && outcome.isOk() && outcome.changed) {
      for (const Share& share : work.shares) {
        if (share.guest == user && share.state == ShareState::kAccepted &&
            share.closedAtMs == now_) {
          EXPECT_LT(now_, share.expiresAtMs);
        }
      }
    }
    if (outcome.isOk() && outcome.role) {
      EXPECT_EQ(roleOf(work, token != nullptr ? token->userId : user), outcome.role);
    }

    device = work;  // the hub swaps the committed copy in
    checkStructure(device);
  }

  // State invariants that hold after every step.
  void checkStructure(const Device& device) {
    int owners = 0;
    int specials = 0;
    int guests = 0;
    std::set<std::string> users;
    for (const Binding& binding : device.bindings) {
      owners += binding.role == Role::kOwner;
      specials += binding.role == Role::kSpecial;
      guests += binding.role == Role::kGuest;
      EXPECT_TRUE(users.insert(binding.userId).second) << "bound twice: " << binding.userId;
    }
    EXPECT_LE(owners, 1);             // at most one owner
    EXPECT_LE(owners + specials, 1);  // a special exists only while there is no owner
    if (guests > 0) {
      EXPECT_EQ(owners, 1);  // guests come from an owner's share
    }
    if (!device.bindings.empty()) {
      EXPECT_EQ(owners + specials, 1);  // someone always holds the sharing right
    }
    EXPECT_LE(static_cast<int>(device.bindings.size()), policy_.config().maxMembers);
    const Binding* owner = findOwner(device);
    for (const Share& share : device.shares) {
      if (share.state != ShareState::kPending) continue;
      // Pending shares belong to the current owner, so they die with the ownership.
      ASSERT_NE(owner, nullptr);
      EXPECT_EQ(share.fromUser, owner->userId);
    }
  }

  struct KeyInfo {
    std::string deviceId;
    int64_t expiresAtMs = 0;
    int uses = 0;
  };
  inline static const std::vector<std::string> kUsers = {"u0", "u1", "u2", "u3", "u4", "u5"};

  std::mt19937 rng_;
  std::map<std::string, int>* tally_;  // how often each (operation, result) happened
  BindingPolicy policy_;
  std::vector<Device> devices_;
  std::vector<ProvisionToken> tokens_;
  std::map<std::string, KeyInfo> keys_;
  int64_t now_ = kT0;
  int nextId_ = 0;
};

TEST(PolicyRandomized, InvariantsHoldOverRandomOperationSequences) {
  std::map<std::string, int> tally;
  for (uint32_t seed = 1; seed <= 5000 && !HasFailure(); ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    RandomRun(seed, &tally).run(100);
  }
  // The invariants above only mean something if the runs reached the interesting paths.
  for (const char* path : {"preempted",
                           "ownerUnbind",
                           "promoted",
                           "provision OK",
                           "provision TOKEN_USED",
                           "provision TOKEN_EXPIRED",
                           "provision TOKEN_INVALID",
                           "provision NOT_BINDABLE",
                           "provision SHARE_REQUIRED",
                           "bindDevice OK",
                           "bindDevice SHARE_REQUIRED",
                           "bindDevice NOT_BINDABLE",
                           "bindDevice LIMIT_REACHED",
                           "shareByQr OK",
                           "shareByQr NOT_OWNER",
                           "shareByQr LIMIT_REACHED",
                           "shareByAccount OK",
                           "shareByAccount NOT_FOUND",
                           "shareByAccount CONFLICT",
                           "shareByAccount NOT_OWNER",
                           "scanShare OK",
                           "scanShare TOKEN_USED",
                           "scanShare TOKEN_EXPIRED",
                           "scanShare TOKEN_INVALID",
                           "scanShare ALREADY_BOUND",
                           "acceptShare OK",
                           "acceptShare FORBIDDEN",
                           "acceptShare TOKEN_EXPIRED",
                           "acceptShare NOT_FOUND",
                           "rejectShare OK",
                           "cancelShare OK",
                           "cancelShare FORBIDDEN",
                           "unbind OK",
                           "unbind FORBIDDEN",
                           "removeMember OK",
                           "removeMember NOT_OWNER",
                           "deviceReset OK",
                           "adminUnbind OK",
                           "expire OK"}) {
    EXPECT_GE(tally[path], 10) << path;
  }
  if (HasFailure()) {
    for (const auto& [path, count] : tally) std::cout << path << ": " << count << "\n";
  }
}

// ---- Delegated control (Home Assistant, SPEC §9) ---------------------------------------------

TEST(PolicyRules, DelegatedControlNeedsABindingAndIsAuditedWithItsPrincipal) {
  BindingPolicy policy;
  Device device = makeDevice(Mode::kShareRequired);
  ASSERT_TRUE(directBind(policy, device, "alice", kT0).isOk());
  auto entry = delegatedControl(device, "alice", "set", "Home Assistant", kT0 + 5);
  ASSERT_TRUE(entry.isOk()) << entry.status().toString();
  EXPECT_EQ(entry.value().actor, "alice");
  EXPECT_EQ(entry.value().deviceId, "dev1");
  EXPECT_EQ(entry.value().action, "control");
  EXPECT_EQ(entry.value().subject, "set");
  EXPECT_EQ(entry.value().reason, "via Home Assistant");
  EXPECT_EQ(entry.value().atMs, kT0 + 5);
  auto stranger = delegatedControl(device, "mallory", "set", "Home Assistant", kT0 + 6);
  ASSERT_FALSE(stranger.isOk());
  EXPECT_EQ(stranger.status().code(), ErrorCode::kForbidden);
  // Once alice has left, what she exposed can no longer command the device.
  ASSERT_TRUE(policy.unbind(device, "alice", kT0 + 7).isOk());
  EXPECT_EQ(delegatedControl(device, "alice", "set", "Home Assistant", kT0 + 8).status().code(),
            ErrorCode::kForbidden);
}

}  // namespace
}  // namespace hearth::binding
