// Every mtl.coop call against a real hub: the success path in the seed's shape (callbacks AND
// Promise) and each documented error code it can give (docs/coop-api.md, docs/js-client.md).

import assert from 'node:assert/strict';
import { test, before, after } from 'node:test';

import { createClient, ConnectionState, ReasonCode, CommandState } from '../src/index.js';
import { Hub, missing, waitFor, freePort } from './harness.js';
import { loggedIn, noUnhandledRejections, rejectsWith, recorder } from './util.js';

noUnhandledRejections();

const why = missing();
const opts = why ? { skip: why } : {};
let hub;
let n = 0;
const uniq = (p) => `${p}${++n}`;

before(async () => {
  if (why) return;
  hub = await new Hub({ pluginConfig: { coop_relay: { max_queued_per_terminal: 3, access_request_ttl: '3s' } } }).open();
});
after(async () => {
  if (hub) await hub.close();
});

/** Two users, a phone (alice) and a TV (bob). */
async function pair(t) {
  const alice = uniq('alice');
  const bob = uniq('bob');
  await hub.addUser(alice);
  await hub.addUser(bob);
  const phone = await loggedIn(hub, alice, uniq('phone'), 'appPhone');
  const tv = await loggedIn(hub, bob, uniq('tv'), 'appTV');
  t.after(() => Promise.all([phone.coop.logout(), tv.coop.logout()]));
  return { phone, tv };
}

/** phone asks tv for `permissions`, tv agrees. */
async function grant(phone, tv, permissions = ['play']) {
  const asked = new Promise((resolve) => tv.coop.receiveAccessRequest(resolve));
  const answered = new Promise((resolve) =>
    phone.coop.requestAccessTo({ ...tv.self, permissions, allPermissions: false, onResponse: resolve }),
  );
  const req = await asked;
  await tv.coop.agreeAccessRequest({ commandId: req.commandId, to: req.from });
  const res = await answered;
  assert.equal(res.code, 0);
}

/** Runs a call in callback style; resolves with ['success', res] or ['fail', err]. */
function viaCallbacks(fn, opts = {}) {
  return new Promise((resolve) => {
    const p = fn({ ...opts, success: (res) => resolve(['success', res]), fail: (err) => resolve(['fail', err]) });
    assert.ok(p instanceof Promise, 'every call also returns a Promise');
  });
}

test('initialize: validates its options, synchronously', opts, () => {
  const c = createClient();
  assert.throws(() => c.coop.initialize(), { code: 'INVALID_REQUEST' });
  assert.throws(() => c.coop.initialize({ server: 'hub.local' }), { code: 'INVALID_REQUEST' }); // no appId
  assert.throws(() => c.coop.initialize({ server: 'hub.local', appId: 'a/b' }), { code: 'INVALID_REQUEST' });
  assert.throws(() => c.coop.initialize({ appId: 'x' }), { code: 'INVALID_REQUEST' }); // no server
  assert.throws(() => c.coop.initialize({ server: 'h', appId: 'x', clientIdentify: 'a b' }), { code: 'INVALID_REQUEST' });
  assert.throws(() => c.coop.initialize({ server: 'h', appId: 'x', pairing: 'hearth://pair?host=h&port=99999&ca=sha256:00' }), {
    code: 'INVALID_REQUEST',
  });
  // The seed's full option set is accepted (restServer, etSecret... are not needed by hearth).
  c.coop.initialize({
    server: 'hub.local',
    restServer: '',
    resourceUploadServer: '',
    resourceDownloadServer: '',
    serverPort: 25225,
    serverSSLPort: 25223,
    wssPort: 25227,
    serverEnableSSL: true,
    serverHttps: true,
    appId: 'demo',
    etpId: 'e',
    appSecret: 's',
  });
  assert.equal(c.status.state, 'disconnected');
});

test('login / logout: success, states, and every failure code', opts, async (t) => {
  const user = uniq('carol');
  await hub.addUser(user, 'carol-pass-1');
  const c = createClient();
  const states = recorder();
  c.onConnectionState(states);
  c.coop.initialize({ server: '127.0.0.1', serverPort: hub.broker.port, serverEnableSSL: false, appId: 'appC', clientIdentify: uniq('c') });
  // Before login nothing can be called.
  await rejectsWith(c.coop.getMyDevices(), 'NOT_CONNECTED', 'before login');
  const [kind] = await viaCallbacks(c.coop.login, { userId: user, password: 'carol-pass-1' });
  assert.equal(kind, 'success');
  assert.deepEqual(states.got.map((s) => s.state), ['connecting', 'connected']);
  assert.equal(states.got[0].reason, ReasonCode.LOGIN);
  assert.equal(states.got[1].stateCode, ConnectionState.connected);
  assert.match(c.openId, /^[0-9a-f]+$/);
  await c.coop.logout();
  assert.equal(c.status.state, 'disconnected');
  assert.equal(c.status.reason, ReasonCode.LOGOUT);
  await rejectsWith(c.coop.getMyDevices(), 'NOT_CONNECTED', 'after logout');
  // logout twice is fine (seed: logout() takes no callbacks and cannot fail).
  await c.coop.logout();

  // Wrong password: NOT_AUTHORIZED, no retry loop.
  const [k2, err] = await viaCallbacks(c.coop.login, { userId: user, password: 'wrong-password' });
  assert.equal(k2, 'fail');
  assert.equal(err.code, 'NOT_AUTHORIZED');
  assert.equal(c.status.state, 'disconnected');
  assert.equal(c.status.reason, ReasonCode.NOT_AUTHORIZED);
  // A malformed user id never reaches the broker.
  await rejectsWith(c.coop.login({ userId: 'a/#', password: 'x' }), 'INVALID_REQUEST', 'bad userId');
  // Nobody listening: NOT_CONNECTED after connectTimeout.
  const d = createClient();
  d.coop.initialize({ server: '127.0.0.1', serverPort: await freePort(), serverEnableSSL: false, appId: 'x', connectTimeout: 1500, reconnectMinMs: 100 });
  await rejectsWith(d.coop.login({ userId: user, password: 'carol-pass-1' }), 'NOT_CONNECTED', 'no broker');
  assert.equal(d.status.state, 'disconnected');
  // Not initialized.
  await rejectsWith(createClient().coop.login({ userId: user, password: 'x' }), 'NOT_CONNECTED', 'no initialize');
});

test('getOpenId and getDeviceInfo', opts, async (t) => {
  const { phone, tv } = await pair(t);
  const [kind, res] = await viaCallbacks(tv.coop.getOpenId);
  assert.equal(kind, 'success');
  assert.deepEqual(res, { openId: tv.openId });
  const info = await phone.coop.getDeviceInfo({ openId: tv.openId });
  assert.equal(info.appId, 'appTV');
  assert.equal(info.userId, tv.self.userId);
  assert.equal(info.clientIdentify, tv.self.clientIdentify);
  assert.equal(info.deviceName, `name ${tv.self.clientIdentify}`);
  assert.deepEqual(info.permissions, []);
  assert.equal(info.allPermissions, false);
  const [k2, err] = await viaCallbacks(phone.coop.getDeviceInfo, { openId: 'ffffffffffffffffffffffffffffffff' });
  assert.equal(k2, 'fail');
  assert.equal(err.code, 'NOT_FOUND');
  assert.equal(typeof err.message, 'string');
  await rejectsWith(phone.coop.getDeviceInfo({}), 'INVALID_REQUEST', 'no openId');
});

test('requestAccessTo / receiveAccessRequest / agree / reject', opts, async (t) => {
  const { phone, tv } = await pair(t);
  const requests = recorder();
  tv.coop.receiveAccessRequest(requests);
  // Agree: onResponse code 0 with `from`.
  const onResponse = recorder();
  const [kind, res] = await viaCallbacks(phone.coop.requestAccessTo, {
    appId: tv.self.appId,
    userId: tv.self.userId,
    clientIdentify: tv.self.clientIdentify,
    permissions: ['play', 'volume'],
    allPermissions: false,
    onResponse,
  });
  assert.equal(kind, 'success');
  assert.equal(typeof res.commandId, 'string');
  await waitFor(() => requests.got.length === 1, { what: 'accessRequest at the TV' });
  const req = requests.got[0];
  assert.deepEqual(req, {
    commandId: res.commandId,
    from: phone.self,
    commandParams: { allPermissions: false, permissions: ['play', 'volume'] },
  });
  // Only the addressee may answer, and only towards the asker.
  await rejectsWith(phone.coop.agreeAccessRequest({ commandId: req.commandId, to: phone.self }), 'FORBIDDEN', 'agree by the asker');
  await rejectsWith(tv.coop.agreeAccessRequest({ commandId: req.commandId, to: tv.self }), 'FORBIDDEN', 'agree towards another');
  await rejectsWith(tv.coop.agreeAccessRequest({ commandId: 'no-such-request', to: req.from }), 'NOT_FOUND', 'unknown id');
  await rejectsWith(tv.coop.agreeAccessRequest({ commandId: req.commandId }), 'INVALID_REQUEST', 'no to');
  const [k2] = await viaCallbacks(tv.coop.agreeAccessRequest, { commandId: req.commandId, to: req.from });
  assert.equal(k2, 'success');
  await waitFor(() => onResponse.got.length === 1, { what: 'onResponse' });
  assert.equal(onResponse.got[0].code, 0);
  assert.deepEqual(onResponse.got[0].from, tv.self);
  await rejectsWith(tv.coop.agreeAccessRequest({ commandId: req.commandId, to: req.from }), 'NOT_FOUND', 'answered twice');

  // Reject: onResponse code 1, message "rejected".
  const onReject = recorder();
  const r2 = await phone.coop.requestAccessTo({ ...tv.self, allPermissions: true, onResponse: onReject });
  await waitFor(() => requests.got.length === 2, { what: 'second accessRequest' });
  await rejectsWith(tv.coop.rejectAccessRequest({ commandId: 'nope', to: phone.self }), 'NOT_FOUND', 'reject unknown');
  const [k3] = await viaCallbacks(tv.coop.rejectAccessRequest, { commandId: r2.commandId, to: phone.self });
  assert.equal(k3, 'success');
  await waitFor(() => onReject.got.length === 1, { what: 'rejection' });
  assert.equal(onReject.got[0].code, 1);
  assert.equal(onReject.got[0].message, 'rejected');

  // Errors of requestAccessTo itself.
  await rejectsWith(phone.coop.requestAccessTo({ ...tv.self, permissions: [] }), 'INVALID_REQUEST', 'nothing asked');
  await rejectsWith(phone.coop.requestAccessTo({ ...phone.self, allPermissions: true }), 'INVALID_REQUEST', 'itself');
  await rejectsWith(phone.coop.requestAccessTo({ ...tv.self, clientIdentify: 'no-such-tv', allPermissions: true }), 'NOT_FOUND', 'unknown');
  await rejectsWith(phone.coop.requestAccessTo({ appId: 'x', userId: 'a#', clientIdentify: 'c' }), 'INVALID_REQUEST', 'bad id');
  const pending = await phone.coop.requestAccessTo({ ...tv.self, permissions: ['x'] });
  assert.ok(pending.expiresAt > Date.now());
  await rejectsWith(phone.coop.requestAccessTo({ ...tv.self, permissions: ['y'] }), 'CONFLICT', 'one pending per pair');
  const sibling = await loggedIn(hub, phone.self.userId, uniq('sib'), 'appPhone');
  t.after(() => sibling.coop.logout());
  await rejectsWith(phone.coop.requestAccessTo({ ...sibling.self, allPermissions: true }), 'CONFLICT', 'same user');
  assert.throws(() => tv.coop.receiveAccessRequest('not a function'), { code: 'INVALID_REQUEST' });
});

test('requestAccessTo: LIMIT_REACHED, and onResponse code 2 when it expires', opts, async (t) => {
  const { tv } = await pair(t);
  const askers = [];
  for (let i = 0; i < 4; i++) {
    const u = uniq('asker');
    await hub.addUser(u);
    const c = await loggedIn(hub, u, uniq('a'), 'appA');
    t.after(() => c.coop.logout());
    askers.push(c);
  }
  const expired = recorder();
  for (let i = 0; i < 3; i++) await askers[i].coop.requestAccessTo({ ...tv.self, allPermissions: true, onResponse: expired });
  // max_queued_per_terminal is 3 on this hub.
  await rejectsWith(askers[3].coop.requestAccessTo({ ...tv.self, allPermissions: true }), 'LIMIT_REACHED', 'fourth pending request');
  // access_request_ttl is 3 s: each asker hears code 2.
  await waitFor(() => expired.got.length === 3, { timeout: 15000, what: 'three expiries' });
  for (const r of expired.got) assert.deepEqual([r.code, r.message], [2, 'expired']);
});

test('device lists: my, authorized, accessible, all; arrays as in the seed', opts, async (t) => {
  const { phone, tv } = await pair(t);
  await grant(phone, tv, ['play']);
  const [kind, mine] = await viaCallbacks(phone.coop.getMyDevices);
  assert.equal(kind, 'success');
  assert.ok(Array.isArray(mine));
  assert.deepEqual(mine[0], {
    appId: 'appPhone',
    clientIdentify: phone.self.clientIdentify,
    deviceModel: `model-${phone.self.clientIdentify}`,
    deviceName: `name ${phone.self.clientIdentify}`,
    online: true,
    userId: phone.self.userId,
  });
  const accessible = await phone.coop.getAccessibleDevices();
  assert.equal(accessible.length, 1);
  assert.equal(accessible[0].clientIdentify, tv.self.clientIdentify);
  assert.deepEqual(accessible[0].permissions, ['play']);
  const [, authorized] = await viaCallbacks(tv.coop.getAuthorizedDevices);
  assert.equal(authorized[0].clientIdentify, phone.self.clientIdentify);
  const all = await tv.coop.getAllDevices();
  assert.deepEqual(Object.keys(all).sort(), ['accessibleDevices', 'authorizedDevices']);
  assert.equal(all.authorizedDevices.length, 1);
  assert.deepEqual(all.accessibleDevices, []);
  // A terminal that removes itself takes its grants with it.
  await tv.coop.removeMyDevice({ clientIdentify: tv.self.clientIdentify });
  assert.deepEqual(await tv.coop.getAuthorizedDevices(), []);
  assert.deepEqual(await phone.coop.getAccessibleDevices(), []);
  assert.deepEqual(await tv.coop.getAllDevices(), { authorizedDevices: [], accessibleDevices: [] });
});

test('remove grants and devices', opts, async (t) => {
  const { phone, tv } = await pair(t);
  await grant(phone, tv);
  const syncs = recorder();
  phone.on('sync', syncs);
  const [kind] = await viaCallbacks(tv.coop.removeAuthorizedDevice, { ...phone.self });
  assert.equal(kind, 'success');
  assert.deepEqual(await phone.coop.getAccessibleDevices(), []);
  await waitFor(() => syncs.got.some((s) => s.type === 'accessibleDevices'), { what: 'sync hint' });
  await rejectsWith(tv.coop.removeAuthorizedDevice({ ...phone.self }), 'NOT_FOUND', 'no grant left');
  await rejectsWith(tv.coop.removeAuthorizedDevice({ appId: 'a', userId: 'u' }), 'INVALID_REQUEST', 'no clientIdentify');
  await grant(phone, tv);
  const [k2] = await viaCallbacks(phone.coop.removeAccessibleDevice, { ...tv.self });
  assert.equal(k2, 'success');
  await rejectsWith(phone.coop.removeAccessibleDevice({ ...tv.self }), 'NOT_FOUND', 'removed already');
  // removeMyDevice: one of my own terminals.
  const old = await loggedIn(hub, phone.self.userId, uniq('old'), 'appPhone');
  await old.coop.logout();
  const [k3] = await viaCallbacks(phone.coop.removeMyDevice, { clientIdentify: old.self.clientIdentify });
  assert.equal(k3, 'success');
  assert.ok(!(await phone.coop.getMyDevices()).some((d) => d.clientIdentify === old.self.clientIdentify));
  await rejectsWith(phone.coop.removeMyDevice({ clientIdentify: 'never-was' }), 'NOT_FOUND', 'unknown own device');
  await rejectsWith(phone.coop.removeMyDevice({ clientIdentify: 'x+y' }), 'INVALID_REQUEST', 'bad id');
});

test('sendCommand / receiveCommand / replyCommand, with onResponse and onState', opts, async (t) => {
  const { phone, tv } = await pair(t);
  const received = recorder();
  tv.coop.receiveCommand(received);
  // No grant yet.
  await rejectsWith(phone.coop.sendCommand({ commandType: 'play', to: tv.self }), 'FORBIDDEN', 'no grant');
  await grant(phone, tv, ['play']);
  await rejectsWith(phone.coop.sendCommand({ commandType: 'reboot', to: tv.self }), 'FORBIDDEN', 'not granted type');
  await rejectsWith(phone.coop.sendCommand({ commandType: 'play', to: { ...tv.self, clientIdentify: 'gone' } }), 'NOT_FOUND', 'unknown target');
  await rejectsWith(phone.coop.sendCommand({ commandType: 'pl/ay', to: tv.self }), 'INVALID_REQUEST', 'bad type');
  await rejectsWith(phone.coop.sendCommand({ commandType: 'play', to: tv.self, commandParams: [1] }), 'INVALID_REQUEST', 'params not an object');

  const onResponse = recorder();
  const onState = recorder();
  const order = [];
  const sent = await new Promise((resolve) => {
    phone.coop.sendCommand({
      commandType: 'play',
      to: tv.self,
      commandParams: { url: 'u1' },
      onResponse: (r) => {
        order.push('onResponse');
        onResponse(r);
      },
      onState,
      success: (r) => {
        order.push('success');
        resolve(r);
      },
    });
  });
  assert.equal(sent.state, 'offered');
  assert.equal(sent.stateCode, CommandState.offered);
  await waitFor(() => received.got.length === 1, { what: 'the command at the TV' });
  const cmd = received.got[0];
  assert.deepEqual(cmd, { commandId: sent.commandId, commandParams: { url: 'u1' }, commandType: 'play', from: phone.self });
  // The TV's library confirms it (ackCommand) by itself: the sender hears delivered.
  await waitFor(() => onState.got.some((s) => s.state === 'delivered'), { what: 'delivered' });
  assert.equal(onState.got.find((s) => s.state === 'delivered').stateCode, 2);
  // Only the addressee replies, and only to the sender.
  await rejectsWith(phone.coop.replyCommand({ commandId: cmd.commandId, to: phone.self }), 'FORBIDDEN', 'reply by the sender');
  await rejectsWith(tv.coop.replyCommand({ commandId: cmd.commandId, to: tv.self }), 'FORBIDDEN', 'reply elsewhere');
  await rejectsWith(tv.coop.replyCommand({ commandId: 'unknown-command', to: cmd.from }), 'NOT_FOUND', 'unknown command');
  await rejectsWith(tv.coop.replyCommand({ commandId: cmd.commandId }), 'INVALID_REQUEST', 'no to');
  const [kind] = await viaCallbacks(tv.coop.replyCommand, { commandId: cmd.commandId, commandParams: { ok: true }, to: cmd.from });
  assert.equal(kind, 'success');
  await waitFor(() => onResponse.got.length === 1, { what: 'onResponse' });
  assert.deepEqual(onResponse.got[0], {
    commandId: sent.commandId,
    commandParams: { ok: true },
    commandType: 'play',
    from: tv.self,
    state: 'replied',
    stateCode: 3,
  });
  assert.deepEqual(order, ['success', 'onResponse']);
  await rejectsWith(tv.coop.replyCommand({ commandId: cmd.commandId, to: cmd.from }), 'NOT_FOUND', 'replied twice');

  // An offline target: queued, then LIMIT_REACHED past max_queued_per_terminal (3).
  const tvUser = tv.self.userId;
  const tvId = tv.self.clientIdentify;
  await tv.coop.logout();
  for (let i = 0; i < 3; i++) {
    const r = await phone.coop.sendCommand({ commandType: 'play', to: { appId: 'appTV', userId: tvUser, clientIdentify: tvId } });
    assert.equal(r.state, 'queued');
    assert.equal(r.stateCode, 1);
  }
  await rejectsWith(phone.coop.sendCommand({ commandType: 'play', to: { appId: 'appTV', userId: tvUser, clientIdentify: tvId } }), 'LIMIT_REACHED', 'queue full');
  assert.throws(() => tv.coop.receiveCommand(42), { code: 'INVALID_REQUEST' });
});

test('request(): any documented method, UNKNOWN_METHOD, local checks', opts, async (t) => {
  const { phone } = await pair(t);
  const r = await phone.request('hello', { appId: 'appPhone' });
  assert.equal(r.openId, phone.openId);
  await rejectsWith(phone.request('noSuchMethod'), 'UNKNOWN_METHOD', 'unknown method');
  await rejectsWith(phone.request('has/slash'), 'INVALID_REQUEST', 'bad method name');
  await rejectsWith(phone.request('getMyDevices', [1]), 'INVALID_REQUEST', 'params array');
  await rejectsWith(phone.adminRequest('status'), 'FORBIDDEN', 'admin method as a user');
});

test('adminRequest: the hub account reaches admin methods', opts, async (t) => {
  const admin = createClient();
  admin.coop.initialize({ server: '127.0.0.1', serverPort: hub.broker.port, serverEnableSSL: false, appId: 'admin', clientIdentify: uniq('admin') });
  await admin.coop.login({ userId: 'hearthd', password: hub.broker.password });
  t.after(() => admin.coop.logout());
  const users = await admin.adminRequest('userList');
  assert.ok(Array.isArray(users.users));
  await rejectsWith(admin.adminRequest('userAdd', { userId: 'x' }), 'INVALID_REQUEST', 'no password');
});
