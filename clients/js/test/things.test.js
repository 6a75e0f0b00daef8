// hearth.things against a real hub with the test transport (tests/plugins/testtransport):
// binding, sharing, members, control and their events (SPEC §3, §5), each call's success and
// its documented errors, in the same {success, fail} + Promise style as mtl.coop.

import assert from 'node:assert/strict';
import { test, before, after } from 'node:test';

import { Hub, missing, waitFor } from './harness.js';
import { loggedIn, noUnhandledRejections, rejectsWith, recorder } from './util.js';

noUnhandledRejections();
const why = missing(['coop_relay', 'testtransport_plugin']);
const opts = why ? { skip: why } : {};
let hub;
let n = 0;
const uniq = (p) => `${p}${++n}`;

before(async () => {
  if (why) return;
  hub = await new Hub({ plugins: ['coop_relay', 'testtransport_plugin'] }).open();
});
after(async () => {
  if (hub) await hub.close();
});

async function users(t, ...names) {
  const out = [];
  for (const name of names) {
    const u = uniq(name);
    await hub.addUser(u);
    const c = await loggedIn(hub, u, uniq(`${name}-phone`), 'appHome');
    t.after(() => c.coop.logout());
    out.push(c);
  }
  return out;
}

/** A BLE device (share_required by default), present and bindable. */
async function device(extra = {}) {
  const deviceId = uniq('lock');
  await hub.admin('testReport', { deviceId, model: 'acme-lock', name: 'Front door', ...extra });
  return deviceId;
}

function events(c) {
  const got = [];
  for (const name of ['bindingChanged', 'shareInvited', 'shareAccepted', 'shareRejected', 'deviceOnline', 'deviceOffline', 'controlReply']) {
    c.things.on(name, (data) => got.push({ ...data, ev: name }));
  }
  return got;
}

test('bind, detail, list, unbind; SHARE_REQUIRED, NOT_BINDABLE, FORBIDDEN', opts, async (t) => {
  const [alice, bob] = await users(t, 'alice', 'bob');
  const seen = events(alice);
  const lock = await device();
  const r = await new Promise((resolve) => alice.things.bindDevice({ deviceId: lock, success: resolve }));
  assert.deepEqual(r, { deviceId: lock, role: 'owner' });
  await waitFor(() => seen.some((e) => e.ev === 'bindingChanged' && e.deviceId === lock && e.reason === 'bound'), { what: 'bindingChanged' });
  const mine = await alice.things.getBoundDevices();
  assert.ok(Array.isArray(mine));
  assert.equal(mine.find((d) => d.deviceId === lock).role, 'owner');
  const detail = await alice.things.getDeviceDetail({ deviceId: lock });
  assert.equal(detail.bindMode, 'share_required');
  assert.deepEqual(detail.relAccounts.map((a) => a.role), ['owner']);
  await rejectsWith(bob.things.bindDevice({ deviceId: lock }), 'SHARE_REQUIRED', 'second binder');
  await rejectsWith(bob.things.getDeviceDetail({ deviceId: lock }), 'FORBIDDEN', 'detail, not bound');
  await rejectsWith(bob.things.unbindDevice({ deviceId: lock }), 'FORBIDDEN', 'unbind, not bound');
  const away = await device({ present: false });
  await rejectsWith(alice.things.bindDevice({ deviceId: away }), 'NOT_BINDABLE', 'not present');
  await rejectsWith(alice.things.bindDevice({}), 'INVALID_REQUEST', 'no deviceId');
  const [kind] = await new Promise((resolve) =>
    alice.things.unbindDevice({ deviceId: lock, success: () => resolve(['success']), fail: (e) => resolve(['fail', e]) }),
  );
  assert.equal(kind, 'success');
  assert.ok(!(await alice.things.getBoundDevices()).some((d) => d.deviceId === lock));
});

test('QR share: shareDevice, scanShare, listShares; NOT_OWNER, TOKEN_INVALID, TOKEN_USED, ALREADY_BOUND', opts, async (t) => {
  const [alice, bob, carol] = await users(t, 'alice', 'bob', 'carol');
  const seen = events(alice);
  const lock = await device();
  await alice.things.bindDevice({ deviceId: lock });
  const share = await alice.things.shareDevice({ deviceId: lock, way: 'qr' });
  assert.equal(typeof share.qrKey, 'string');
  assert.ok(share.expiresAt > Date.now());
  const scanned = await bob.things.scanShare({ qrKey: share.qrKey });
  assert.deepEqual(scanned, { deviceId: lock, model: 'acme-lock', name: 'Front door', role: 'guest' });
  await waitFor(() => seen.some((e) => e.ev === 'shareAccepted' && e.sharingId === share.sharingId), { what: 'shareAccepted' });
  await rejectsWith(carol.things.scanShare({ qrKey: share.qrKey }), 'TOKEN_USED', 'used key');
  await rejectsWith(carol.things.scanShare({ qrKey: 'not-a-key-at-all' }), 'TOKEN_INVALID', 'unknown key');
  await rejectsWith(bob.things.shareDevice({ deviceId: lock, way: 'qr' }), 'NOT_OWNER', 'guest sharing');
  const again = await alice.things.shareDevice({ deviceId: lock, way: 'qr' });
  await rejectsWith(bob.things.scanShare({ qrKey: again.qrKey }), 'ALREADY_BOUND', 'scanner already bound');
  const fromMe = await alice.things.listShares({ direction: 'fromMe' });
  assert.ok(Array.isArray(fromMe));
  assert.ok(fromMe.some((s) => s.sharingId === share.sharingId));
  // Members: removeMember by the owner only; the member hears bindingChanged{removed}.
  const bobSeen = events(bob);
  await rejectsWith(bob.things.removeMember({ deviceId: lock, userId: alice.self.userId }), 'NOT_OWNER', 'guest removing');
  await rejectsWith(alice.things.removeMember({ deviceId: lock, userId: carol.self.userId }), 'NOT_FOUND', 'not a member');
  await rejectsWith(alice.things.removeMember({ deviceId: lock, userId: alice.self.userId }), 'INVALID_REQUEST', 'oneself');
  await alice.things.removeMember({ deviceId: lock, userId: bob.self.userId });
  await waitFor(() => bobSeen.some((e) => e.ev === 'bindingChanged' && e.reason === 'removed'), { what: 'removed' });
});

test('account share: invite, accept / reject / cancel; NOT_FOUND, CONFLICT, FORBIDDEN', opts, async (t) => {
  const [alice, bob, carol] = await users(t, 'alice', 'bob', 'carol');
  const bobSeen = events(bob);
  const aliceSeen = events(alice);
  const lock = await device();
  await alice.things.bindDevice({ deviceId: lock });
  await rejectsWith(alice.things.shareDevice({ deviceId: lock, way: 'account', guest: 'nobody-by-that-name' }), 'NOT_FOUND', 'unknown guest');
  const invite = await alice.things.shareDevice({ deviceId: lock, way: 'account', guest: bob.self.userId });
  await waitFor(() => bobSeen.some((e) => e.ev === 'shareInvited' && e.sharingId === invite.sharingId), { what: 'shareInvited' });
  await rejectsWith(alice.things.shareDevice({ deviceId: lock, way: 'account', guest: bob.self.userId }), 'CONFLICT', 'invited twice');
  const toMe = await bob.things.listShares({ direction: 'toMe' });
  assert.equal(toMe.find((s) => s.sharingId === invite.sharingId).state, 'pending');
  await rejectsWith(carol.things.acceptShare({ sharingId: invite.sharingId }), 'FORBIDDEN', 'not the invitee');
  await rejectsWith(bob.things.acceptShare({ sharingId: 'sh-none' }), 'NOT_FOUND', 'unknown share');
  await bob.things.acceptShare({ sharingId: invite.sharingId });
  assert.equal((await bob.things.getBoundDevices()).find((d) => d.deviceId === lock).role, 'guest');
  await rejectsWith(alice.things.cancelShare({ sharingId: invite.sharingId }), 'CONFLICT', 'cancel an accepted share');
  // Reject and cancel.
  const second = await alice.things.shareDevice({ deviceId: lock, way: 'account', guest: carol.self.userId });
  await carol.things.rejectShare({ sharingId: second.sharingId });
  await waitFor(() => aliceSeen.some((e) => e.ev === 'shareRejected' && e.sharingId === second.sharingId), { what: 'shareRejected' });
  const lock2 = await device();
  await alice.things.bindDevice({ deviceId: lock2 });
  const third = await alice.things.shareDevice({ deviceId: lock2, way: 'account', guest: carol.self.userId });
  await rejectsWith(carol.things.cancelShare({ sharingId: third.sharingId }), 'FORBIDDEN', "cancel someone else's share");
  await alice.things.cancelShare({ sharingId: third.sharingId });
  await rejectsWith(carol.things.acceptShare({ sharingId: third.sharingId }), 'TOKEN_INVALID', 'accept a cancelled share');
});

test('controlDevice, device presence events, provisioning', opts, async (t) => {
  const [alice, bob] = await users(t, 'alice', 'bob');
  const seen = events(alice);
  const lock = await device();
  await alice.things.bindDevice({ deviceId: lock });
  const r = await alice.things.controlDevice({ deviceId: lock, command: 'unlock', params: { for: 5 } });
  assert.deepEqual(r, { deviceId: lock, command: 'unlock', params: { for: 5 } });
  await rejectsWith(bob.things.controlDevice({ deviceId: lock, command: 'unlock' }), 'FORBIDDEN', 'not bound');
  await rejectsWith(alice.things.controlDevice({ deviceId: lock, command: 'hang' }), 'TIMEOUT', 'device did not answer');
  await rejectsWith(alice.things.controlDevice({ deviceId: lock }), 'INVALID_REQUEST', 'no command');
  await hub.admin('testOnline', { deviceId: lock, online: false });
  await waitFor(() => seen.some((e) => e.ev === 'deviceOffline' && e.deviceId === lock), { what: 'deviceOffline' });
  await hub.admin('testOnline', { deviceId: lock, online: true });
  await waitFor(() => seen.some((e) => e.ev === 'deviceOnline' && e.deviceId === lock), { what: 'deviceOnline' });
  // WiFi provisioning: a token the device presents on the LAN (here: through the test transport).
  const lamp = uniq('lamp');
  await hub.admin('testReport', { deviceId: lamp, transport: 'wifi', model: 'acme-lamp' });
  const token = await alice.things.provisionBegin({ deviceId: lamp });
  assert.equal(typeof token.token, 'string');
  await hub.admin('testProvision', { deviceId: lamp, token: token.token });
  await waitFor(() => seen.some((e) => e.ev === 'bindingChanged' && e.deviceId === lamp && e.role === 'owner'), { what: 'provisioned' });
  // Generic request() reaches any documented method.
  const bound = await alice.request('getBoundDevices');
  assert.ok(bound.devices.some((d) => d.deviceId === lamp));
  assert.throws(() => alice.things.on('', () => {}), { code: 'INVALID_REQUEST' });
});
