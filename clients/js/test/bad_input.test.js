// Bad input from the hub's side: a "hub" (a raw MQTT client on the real broker, logged in with
// hearthd's account, hearthd itself stopped) that answers garbage, half answers or nothing,
// sends events with unknown fields or for another terminal, and 10,000 calls in flight. The
// library fails each call with a clear code, throws nothing asynchronously, leaks no timer
// and leaves no promise rejection unhandled.

import assert from 'node:assert/strict';
import { test, before, after } from 'node:test';

import mqtt from 'mqtt';

import { internals } from '../src/internals.js';
import { Hub, missing, waitFor, sleep } from './harness.js';
import { loggedIn, noUnhandledRejections, rejectsWith, recorder } from './util.js';

noUnhandledRejections();
const why = missing();
const opts = why ? { skip: why } : {};
let hub;
let fake;
const behaviour = new Map(); // method -> (env, reply) => void
const acks = [];
const requests = [];

before(async () => {
  if (why) return;
  hub = await new Hub().open();
  await hub.addUser('alice', 'alice-secret-1');
  await hub.kill9(); // from here on the fake below plays the hub
  fake = await mqtt.connectAsync(hub.url, {
    protocolVersion: 5,
    clientId: 'fake-hub',
    username: 'hearthd',
    password: hub.broker.password,
  });
  await fake.subscribeAsync('hearth/v1/u/+/+/req/#', { qos: 1 });
  fake.on('message', (topic, payload, packet) => {
    const method = topic.split('/')[6];
    const props = packet.properties || {};
    const reply = (body, { withCorrelation = true } = {}) =>
      fake.publish(props.responseTopic || topic.replace('/req/', '/res/'), typeof body === 'string' ? body : JSON.stringify(body), {
        qos: 1,
        properties: withCorrelation && props.correlationData ? { correlationData: props.correlationData } : {},
      });
    let env;
    try {
      env = JSON.parse(payload.toString());
    } catch {
      return;
    }
    requests.push(method);
    if (method === 'hello') return reply({ id: env.id, ok: true, result: { openId: 'feedface' } });
    if (method === 'ackCommand') {
      acks.push(...env.params.commandIds);
      return reply({ id: env.id, ok: true, result: { acknowledged: env.params.commandIds, unknown: [] } });
    }
    const b = behaviour.get(method);
    if (b) b(env, reply);
  });
});
after(async () => {
  if (fake) await fake.endAsync();
  if (hub) await hub.close();
});

const evt = (c, name, data, event = name) =>
  fake.publishAsync(`hearth/v1/u/${c.self.userId}/${c.self.clientIdentify}/evt/${name}`, typeof data === 'string' ? data : JSON.stringify({ event, ts: Date.now(), data }), { qos: 1 });

test('garbage, half and missing answers fail with clear codes', opts, async (t) => {
  const c = await loggedIn(hub, 'alice', 'bad-1', 'appA', { requestTimeout: 600 });
  t.after(() => c.coop.logout());
  assert.equal(c.openId, 'feedface');
  behaviour.set('getMyDevices', (env, reply) => reply('this is not JSON {'));
  behaviour.set('getAllDevices', (env, reply) => reply({ id: env.id, ok: true, result: {} }));
  behaviour.set('getAccessibleDevices', (env, reply) => reply({ id: env.id, ok: true, result: [] }));
  behaviour.set('getAuthorizedDevices', (env, reply) => reply({ id: env.id, ok: false }));
  behaviour.set('getOpenId', () => {}); // nothing at all
  behaviour.set('getDeviceInfo', (env, reply) => reply({ id: 'someone-else', ok: true, result: {} }, { withCorrelation: false }));
  behaviour.set('removeMyDevice', (env, reply) => reply({ id: env.id, ok: false, error: { code: 'SOMETHING_NEW', message: 'a code from a newer hub' } }));
  behaviour.set('sendCommand', (env, reply) => reply({ id: env.id, ok: true, result: { state: 'queued' } }));
  behaviour.set('getBoundDevices', (env, reply) => reply({ id: env.id, ok: 'yes', result: {} }));

  await rejectsWith(c.coop.getMyDevices(), 'BAD_RESPONSE', 'garbage');
  const e1 = await rejectsWith(c.coop.getAllDevices(), 'BAD_RESPONSE', 'no lists');
  assert.match(e1.message, /authorizedDevices/);
  await rejectsWith(c.coop.getAccessibleDevices(), 'BAD_RESPONSE', 'result not an object');
  await rejectsWith(c.coop.getAuthorizedDevices(), 'BAD_RESPONSE', 'ok:false without error');
  await rejectsWith(c.coop.getOpenId(), 'TIMEOUT', 'no answer');
  await rejectsWith(c.coop.getDeviceInfo({ openId: 'x' }), 'TIMEOUT', 'an answer that is not ours');
  const e2 = await rejectsWith(c.coop.removeMyDevice({ clientIdentify: 'x' }), 'SOMETHING_NEW', 'unknown hub code');
  assert.equal(e2.message, 'a code from a newer hub');
  await rejectsWith(c.coop.sendCommand({ commandType: 'x', to: c.self }), 'BAD_RESPONSE', 'no commandId');
  await rejectsWith(c.things.getBoundDevices(), 'BAD_RESPONSE', 'ok not a boolean');
  // The same through the seed's callbacks: fail gets {code, message}, nothing is thrown.
  const err = await new Promise((resolve) => c.coop.getMyDevices({ fail: resolve }));
  assert.deepEqual(Object.keys(err).sort(), ['code', 'message', 'method']);
  assert.equal(err.code, 'BAD_RESPONSE');
  assert.equal(c.pendingCount, 0, 'no timer left behind');
  assert.equal(c.status.state, 'connected', 'garbage does not take the session down');
});

test('events: unknown fields ignored, garbage dropped, repeats dropped, other terminals ignored', opts, async (t) => {
  const c = await loggedIn(hub, 'alice', 'bad-2', 'appA', { ackDelayMs: 20 });
  t.after(() => c.coop.logout());
  const commands = recorder();
  c.coop.receiveCommand(commands);
  const requestsSeen = recorder();
  c.coop.receiveAccessRequest(requestsSeen);
  const from = { appId: 'appB', userId: 'bob', clientIdentify: 'bob-tv' };
  await evt(c, 'command', 'not json at all');
  await evt(c, 'command', { commandId: 'c0' }); // no type, no from: not a command
  await evt(c, 'command', 'x', 'command'); // data not an object
  await evt(c, 'command', { commandId: 'c1', commandType: 'play', from, commandParams: { a: 1 }, future: 'field', state: 'odd' });
  await evt(c, 'command', { commandId: 'c1', commandType: 'play', from, commandParams: { a: 1 } }); // repeat
  await evt(c, 'command', { commandId: 'c2', commandType: 'play', from }, 'commandState'); // envelope names another event
  await evt(c, 'accessRequest', { commandId: 'r1', from, to: { ...c.self, clientIdentify: 'another-terminal' }, commandParams: { allPermissions: true, permissions: [] } });
  await evt(c, 'accessRequest', { commandId: 'r2', from, commandParams: { allPermissions: false, permissions: ['play', 7], extra: true } });
  await evt(c, 'accessRequest', { commandId: 'r2', from, commandParams: { allPermissions: false, permissions: ['play'] } }); // repeat
  await evt(c, 'accessResponse', { commandId: 'nobody-asked', code: 0, from });
  await evt(c, 'commandResponse', { commandId: 'never-sent', from });
  await evt(c, 'sync', { type: 'noSuchList' });
  await waitFor(() => acks.includes('c1'), { what: 'c1 acknowledged' });
  await sleep(200);
  assert.deepEqual(commands.got, [{ commandId: 'c1', commandParams: { a: 1 }, commandType: 'play', from }]);
  assert.deepEqual(requestsSeen.got, [{ commandId: 'r2', from, commandParams: { allPermissions: false, permissions: ['play'] } }]);
  // The repeat is acknowledged again (the hub offered it again: it did not get the first ack),
  // but never handed to the app twice.
  assert.ok(acks.filter((id) => id === 'c1').length >= 1);
  assert.equal(c.status.state, 'connected');
});

test('commands that arrive before receiveCommand wait for it, unacknowledged until handed over', opts, async (t) => {
  const c = await loggedIn(hub, 'alice', 'bad-3', 'appA', { ackDelayMs: 0 });
  t.after(() => c.coop.logout());
  const from = { appId: 'appB', userId: 'bob', clientIdentify: 'bob-tv' };
  await evt(c, 'command', { commandId: 'early-1', commandType: 'x', from });
  await sleep(300);
  assert.ok(!acks.includes('early-1'), 'not acknowledged before the app has it');
  const got = recorder();
  c.coop.receiveCommand(got);
  assert.deepEqual(got.got.map((x) => x.commandId), ['early-1']);
  await waitFor(() => acks.includes('early-1'), { what: 'acknowledged once handed over' });
});

test('an answer overtaken by its event: success still runs before onResponse', opts, async (t) => {
  // The worst order the wire allows: the hub's accessResponse / commandResponse for a request
  // arrives before the answer that names its commandId. The app must see success first.
  const c = await loggedIn(hub, 'alice', 'bad-order', 'appA');
  t.after(() => {
    behaviour.delete('requestAccessTo');
    behaviour.delete('sendCommand');
    return c.coop.logout();
  });
  const from = { appId: 'appB', userId: 'bob', clientIdentify: 'bob-tv' };
  behaviour.set('requestAccessTo', async (env, reply) => {
    await evt(c, 'accessResponse', { commandId: 'ra-1', code: 0, from });
    reply({ id: env.id, ok: true, result: { commandId: 'ra-1' } });
  });
  behaviour.set('sendCommand', async (env, reply) => {
    await evt(c, 'commandResponse', { commandId: 'sc-1', from, commandResponse: { done: true } });
    reply({ id: env.id, ok: true, result: { commandId: 'sc-1', state: 'delivered' } });
  });
  const order = [];
  await new Promise((resolve) => {
    c.coop.requestAccessTo({
      appId: 'appB', userId: 'bob', clientIdentify: 'bob-tv', allPermissions: true,
      success: (r) => order.push(`success:${r.commandId}`),
      fail: (e) => { order.push(`fail:${e.code}`); resolve(); },
      onResponse: (r) => { order.push(`onResponse:${r.commandId}:${r.code}`); resolve(); },
    });
  });
  await new Promise((resolve) => {
    c.coop.sendCommand({
      commandType: 'play', to: from,
      success: (r) => order.push(`success:${r.commandId}`),
      fail: (e) => { order.push(`fail:${e.code}`); resolve(); },
      onResponse: (r) => { order.push(`onResponse:${r.commandId}`); resolve(); },
    });
  });
  assert.deepEqual(order, ['success:ra-1', 'onResponse:ra-1:0', 'success:sc-1', 'onResponse:sc-1']);
});

test("a sent command's events are read only while it awaits them; the rest is not kept", opts, async (t) => {
  const c = await loggedIn(hub, 'alice', 'bad-watch', 'appA');
  t.after(() => {
    behaviour.delete('sendCommand');
    return c.coop.logout();
  });
  const { coop } = internals(c);
  const from = { appId: 'appB', userId: 'bob', clientIdentify: 'bob-tv' };
  // Nothing sent: events about commands are not even parsed, so none waits in `early`.
  await evt(c, 'commandResponse', { commandId: 'nobody-sent-1', from });
  await evt(c, 'commandState', { commandId: 'nobody-sent-2', state: 'delivered', stateCode: 2 });
  await sleep(100);
  assert.equal(coop.early.map.size, 0, 'events of no awaited command are not kept');
  // A command in flight: an event that overtakes its answer waits for it (the worst order);
  // the states before the response reach onState, the response onResponse, later ones nothing.
  behaviour.set('sendCommand', async (env, reply) => {
    await evt(c, 'commandState', { commandId: 'w-1', state: 'delivered', stateCode: 2, to: from });
    reply({ id: env.id, ok: true, result: { commandId: 'w-1', state: 'offered', stateCode: 6 } });
    await evt(c, 'commandResponse', { commandId: 'w-1', from, commandParams: { ok: 1 } });
    await evt(c, 'commandState', { commandId: 'w-1', state: 'replied', stateCode: 3, to: from });
    await evt(c, 'commandState', { commandId: 'w-1', state: 'timeout', stateCode: 5, to: from });
  });
  const states = recorder();
  const response = await new Promise((resolve, reject) => {
    c.coop.sendCommand({ commandType: 'play', to: from, onState: states, onResponse: resolve }).catch(reject);
  });
  assert.equal(response.commandId, 'w-1');
  assert.deepEqual(response.commandParams, { ok: 1 });
  await sleep(200);
  assert.deepEqual(states.got.map((s) => s.state), ['delivered']);
  assert.equal(coop.sent.size, 0);
  assert.equal(coop.watching, false, 'no command awaits events any more');
  assert.equal(coop.early.map.size, 0, 'nothing left behind');
  // Answered with an error: not awaited either.
  behaviour.set('sendCommand', (env, reply) => reply({ id: env.id, ok: false, error: { code: 'NOT_FOUND', message: 'no such terminal' } }));
  await rejectsWith(c.coop.sendCommand({ commandType: 'play', to: from, onResponse: () => {} }), 'NOT_FOUND');
  await sleep(50);
  assert.equal(coop.watching, false);
});

test('10,000 calls in flight: bounded, and every one settles', opts, async (t) => {
  const c = await loggedIn(hub, 'alice', 'bad-4', 'appA', { requestTimeout: 60000 });
  t.after(() => c.coop.logout());
  // The fake hub answers once it has all of them, so all 10,000 really are in flight together.
  const held = [];
  behaviour.set('getOpenId', (env, reply) => {
    held.push(() => reply({ id: env.id, ok: true, result: { openId: 'o' } }));
    if (held.length === 10000) for (const r of held.splice(0)) r();
  });
  const before = process.memoryUsage().heapUsed;
  const calls = Array.from({ length: 10000 }, () => c.coop.getOpenId());
  assert.equal(c.pendingCount, 10000);
  const peak = process.memoryUsage().heapUsed - before;
  const results = await Promise.allSettled(calls);
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 10000);
  assert.equal(c.pendingCount, 0);
  // A few hundred bytes per call, not megabytes: 10,000 calls stay well under 64 MiB.
  assert.ok(peak < 64 * 1024 * 1024, `heap grew ${peak} bytes for 10,000 calls`);

  // Unanswered: all 10,000 end TIMEOUT, and no timer survives.
  behaviour.set('getOpenId', () => {});
  const d = await loggedIn(hub, 'alice', 'bad-5', 'appA', { requestTimeout: 1500 });
  t.after(() => d.coop.logout());
  const unanswered = await Promise.allSettled(Array.from({ length: 10000 }, () => d.coop.getOpenId()));
  assert.ok(unanswered.every((r) => r.status === 'rejected' && r.reason.code === 'TIMEOUT'));
  assert.equal(d.pendingCount, 0);

  // maxPending bounds it: the call past the limit fails at once.
  const e = await loggedIn(hub, 'alice', 'bad-6', 'appA', { requestTimeout: 1000, maxPending: 100 });
  t.after(() => e.coop.logout());
  const hundred = Array.from({ length: 100 }, () => e.coop.getOpenId());
  await rejectsWith(e.coop.getOpenId(), 'LIMIT_REACHED', 'the 101st');
  await Promise.allSettled(hundred);
});
