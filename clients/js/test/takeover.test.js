// A second login with the same clientIdentify takes the terminal over: the first instance ends
// `disconnected` with reason KICKED and stops, the second is not disturbed (no reconnect, its
// calls and commands work), and the two never take turns. mosquitto 2.0 closes the first
// connection's socket without an MQTT 5 DISCONNECT (the test records which packets reached it),
// so the library reads the terminal's retained presence before reconnecting (src/takeover.js).
// Directly over TCP, and through the front door (plugin web) over wss:// and mqtts://. A
// connection that merely dropped still reconnects (its own instance is on the presence).

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { createClient } from '../src/index.js';
import { internals } from '../src/internals.js';
import { Hub, missing, freePort, waitFor, sleep } from './harness.js';
import { loggedIn, noUnhandledRejections, rejectsWith, recorder } from './util.js';

noUnhandledRejections();

const EXTRA = { requestTimeout: 3000, reconnectMinMs: 200, reconnectMaxMs: 1000 };

/** Records the MQTT packets the broker sends to a client's current connection after now. */
function packetsOf(client) {
  const got = [];
  internals(client).conn.mq.on('packetreceive', (p) => got.push(p.cmd === 'disconnect' ? `disconnect 0x${(p.reasonCode || 0).toString(16)}` : p.cmd));
  return got;
}

/**
 * `login()` makes a client logged in as alice with clientIdentify `id`. The first is taken over
 * by the second; checks both sides and returns what reached the first connection.
 */
async function takeover(t, login, id) {
  const phone = await login('phone-' + id);
  t.after(() => phone.coop.logout());
  const first = await login(id);
  t.after(() => first.coop.logout());
  const firstStates = recorder();
  first.onConnectionState(firstStates);
  const packets = packetsOf(first);
  const inFlight = first.coop.getMyDevices();

  const second = await login(id);
  t.after(() => second.coop.logout());
  const secondStates = recorder();
  second.onConnectionState(secondStates);

  await waitFor(() => first.status.state === 'disconnected', { timeout: 10000, what: 'the first instance to stop' });
  assert.equal(first.status.reasonName, 'KICKED', JSON.stringify(first.status));
  assert.deepEqual(firstStates.got.map((s) => `${s.state} ${s.reasonName}`).filter((s, i, all) => s !== all[i - 1]).slice(-1), ['disconnected KICKED']);
  // A call in flight at the takeover settles (its answer, or the session's end), never hangs.
  await inFlight.then(
    (list) => assert.ok(Array.isArray(list)),
    (e) => assert.ok(['NOT_CONNECTED', 'TIMEOUT'].includes(e.code), e.message),
  );
  await rejectsWith(first.coop.getMyDevices(), 'NOT_CONNECTED', 'the replaced instance');

  // The first keeps quiet; the second was never thrown off.
  await sleep(2500);
  assert.equal(first.status.state, 'disconnected');
  assert.deepEqual(secondStates.got, [], 'the second instance stayed connected');
  assert.equal(second.status.state, 'connected');

  // The terminal works, as the second instance: lists, and a command to it.
  const mine = await second.coop.getMyDevices();
  assert.ok(mine.some((d) => d.clientIdentify === id && d.online), JSON.stringify(mine));
  second.coop.receiveCommand((cmd) => second.coop.replyCommand({ commandId: cmd.commandId, commandParams: { by: 'second' }, to: cmd.from }));
  const reply = await new Promise((resolve, reject) => {
    phone.coop.sendCommand({ commandType: 'ping', to: second.self, onResponse: resolve }).catch(reject);
  });
  assert.deepEqual(reply.commandParams, { by: 'second' });
  // What the broker sent the first connection when it was replaced: mosquitto 2.0.11 sends no
  // DISCONNECT (only the socket's end); a broker that does must say 0x8E.
  t.diagnostic(`packets to the replaced connection: ${JSON.stringify(packets)}`);
  for (const p of packets.filter((x) => x.startsWith('disconnect'))) assert.equal(p, 'disconnect 0x8e');
  return packets;
}

const why = missing();

test('takeover over TCP: the first instance ends KICKED, the second is undisturbed', { skip: why || false }, async (t) => {
  const hub = await new Hub().open();
  t.after(() => hub.close());
  await hub.addUser('alice', 'alice-secret-1');
  await takeover(t, (id) => loggedIn(hub, 'alice', id, 'appA', EXTRA), 'tv-tcp');
});

test('a dropped connection (no takeover) reconnects; presence carries its instance', { skip: why || false }, async (t) => {
  const hub = await new Hub().open();
  t.after(() => hub.close());
  await hub.addUser('alice', 'alice-secret-1');
  const tv = await loggedIn(hub, 'alice', 'tv-drop', 'appA', EXTRA);
  t.after(() => tv.coop.logout());
  const states = recorder();
  tv.onConnectionState(states);
  for (let i = 0; i < 2; i++) {
    internals(tv).conn.mq.stream.destroy(); // the socket dies under the session
    await waitFor(() => states.got.some((s) => s.state === 'reconnecting'), { what: 'reconnecting' });
    await waitFor(() => tv.status.state === 'connected', { timeout: 10000, what: 'connected again' });
    states.got.length = 0;
  }
  assert.ok(Array.isArray(await tv.coop.getMyDevices()));
});

test('takeover through the front door, wss:// and mqtts://', { skip: missing(['coop_relay', 'web']) || false }, async (t) => {
  const httpsPort = await freePort();
  const mqttsPort = await freePort();
  const www = mkdtempSync(path.join(os.tmpdir(), 'hearth-www-'));
  t.after(() => rmSync(www, { recursive: true, force: true }));
  const hub = await new Hub({
    plugins: ['coop_relay', 'web'],
    pluginConfig: { web: { listen: ['127.0.0.1'], https_port: httpsPort, mqtts_port: mqttsPort, metrics_listen: '', www_dir: www } },
  }).open();
  t.after(() => hub.close());
  await hub.addUser('alice', 'alice-secret-1');
  const pairing = (await hub.admin('pair')).url;
  const viaDoor = (transport) => async (id) => {
    const c = createClient();
    c.coop.initialize({ server: 'unused', appId: 'appA', clientIdentify: id, pairing, transport, serverSSLPort: mqttsPort, ...EXTRA });
    await c.coop.login({ userId: 'alice', password: 'alice-secret-1' });
    return c;
  };
  await t.test('wss://', (tt) => takeover(tt, viaDoor('wss'), 'tv-wss'));
  await t.test('mqtts://', (tt) => takeover(tt, viaDoor('mqtts'), 'tv-mqtts'));
});
