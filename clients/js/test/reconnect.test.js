// The broker restarted under a connected client: the library's states go reconnecting ->
// connected, calls in flight complete or fail TIMEOUT (never hang), calls made while away fail
// NOT_CONNECTED at once, and after the return the session is whole again (subscriptions,
// presence, hello, sync re-fetch).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ReasonCode } from '../src/index.js';
import { waitFor, sleep } from './harness.js';
import { hubForFile, loggedIn, noUnhandledRejections, rejectsWith, recorder } from './util.js';

noUnhandledRejections();
const file = hubForFile();
const { opts } = file;

test('broker restart: reconnecting -> connected, nothing hangs, the session is restored', opts, async (t) => {
  const extra = { requestTimeout: 3000, reconnectMinMs: 200, reconnectMaxMs: 1000 };
  const phone = await loggedIn(file.hub, 'alice', 'phone-r', 'appA', extra);
  const tv = await loggedIn(file.hub, 'alice', 'tv-r', 'appA', extra);
  t.after(() => Promise.all([phone.coop.logout(), tv.coop.logout()]));
  const states = recorder();
  phone.onConnectionState(states);
  const synced = recorder();
  phone.onSync((type, list) => synced({ type, list }));
  const openId = phone.openId;

  // Calls in flight when the broker dies.
  const inFlight = Array.from({ length: 20 }, () => phone.coop.getMyDevices());
  await file.hub.broker.kill();
  t.after(async () => {
    if (!file.hub.broker.proc) await file.hub.broker.start();
  });
  const outcomes = await Promise.allSettled(inFlight);
  for (const o of outcomes) {
    if (o.status === 'rejected') assert.equal(o.reason.code, 'TIMEOUT', o.reason.message);
    else assert.ok(Array.isArray(o.value));
  }
  // Whatever else was pending (a sync re-fetch, say) ends by its timeout too.
  await waitFor(() => phone.pendingCount === 0, { timeout: 5000, what: 'no call pending' });
  await waitFor(() => phone.status.state === 'reconnecting', { what: 'reconnecting' });
  assert.equal(phone.status.reason, ReasonCode.NETWORK);
  assert.ok(phone.status.attempt >= 1);
  // While away: a new call fails at once.
  await rejectsWith(phone.coop.getMyDevices(), 'NOT_CONNECTED', 'while reconnecting');
  await sleep(1500); // a few attempts, with back-off
  const attempts = states.got.filter((s) => s.state === 'reconnecting').map((s) => s.attempt);
  assert.ok(attempts.length >= 2, JSON.stringify(states.got));
  assert.deepEqual(attempts, [...attempts].sort((a, b) => a - b), 'attempts count up');

  await file.hub.broker.start();
  await waitFor(() => phone.status.state === 'connected' && tv.status.state === 'connected', {
    timeout: 20000,
    what: 'both clients connected again',
  });
  const seq = states.got.map((s) => s.state);
  assert.equal(seq[0], 'reconnecting');
  assert.equal(seq.at(-1), 'connected');
  assert.ok(!seq.includes('disconnected'), JSON.stringify(seq));
  assert.equal(phone.openId, openId, 'hello again, same openId');
  // hearthd reconnects to the broker by itself; then calls work again.
  const mine = await waitFor(() => phone.coop.getMyDevices().catch(() => null), { timeout: 20000, what: 'calls work again' });
  assert.ok(mine.every((d) => d.online), 'presence is online again for both');
  // Re-subscribed: a command reaches the TV, and its reply reaches the phone.
  tv.coop.receiveCommand((cmd) => tv.coop.replyCommand({ commandId: cmd.commandId, commandParams: { back: true }, to: cmd.from }));
  const reply = await new Promise((resolve, reject) => {
    phone.coop.sendCommand({ commandType: 'ping', to: tv.self, onResponse: resolve }).catch(reject);
  });
  assert.deepEqual(reply.commandParams, { back: true });
  // The new session re-fetched the lists (hints sent while away are not stored).
  await waitFor(() => synced.got.some((s) => s.type === 'myDevices'), { what: 'myDevices re-fetched' });
  assert.ok(Array.isArray(synced.got.find((s) => s.type === 'myDevices').list));
});

test('hub (hearthd) down: calls fail TIMEOUT and pending timers are cleared', opts, async (t) => {
  const phone = await loggedIn(file.hub, 'alice', 'phone-h', 'appA', { requestTimeout: 800 });
  t.after(() => phone.coop.logout());
  await file.hub.kill9();
  t.after(() => file.hub.proc || file.hub.start());
  const calls = [phone.coop.getMyDevices(), phone.coop.getOpenId(), phone.things.getBoundDevices()];
  const results = await Promise.allSettled(calls);
  assert.deepEqual(results.map((r) => r.reason && r.reason.code), ['TIMEOUT', 'TIMEOUT', 'TIMEOUT']);
  assert.equal(phone.pendingCount, 0);
  // The seed's fail callback gets {code, message} too.
  const err = await new Promise((resolve) => phone.coop.getAllDevices({ fail: resolve }).catch(() => {}));
  assert.equal(err.code, 'TIMEOUT');
  assert.match(err.message, /no answer/);
  await file.hub.start();
});
