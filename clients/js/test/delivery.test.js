// Delivery confirmed end to end (SPEC §4a): the target terminal is a separate Node process that
// is SIGKILLed, SIGSTOPped past its keepalive, or leaves with a plain MQTT DISCONNECT (no
// "offline"); commands sent meanwhile reach its app after it returns, each exactly once and in
// send order; and the same with hearthd SIGKILLed in between. The sender hears `delivered`
// for every one (the target's library acknowledged it).

import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { child, waitFor, sleep } from './harness.js';
import { hubForFile, loggedIn, noUnhandledRejections } from './util.js';

noUnhandledRejections();
const here = path.dirname(fileURLToPath(import.meta.url));
const file = hubForFile();
const { opts } = file;
let n = 0;

function target(t, clientId, extraEnv = {}) {
  const c = child(path.join(here, 'fixtures', 'target.mjs'), [], {
    PORT: String(file.hub.broker.port),
    USER_ID: 'alice',
    PASSWORD: 'alice-secret-1',
    CLIENT: clientId,
    ...extraEnv,
  });
  t.after(() => c.kill('SIGKILL'));
  return c;
}

const commandsOf = (c) => c.lines.filter((l) => l.command).map((l) => l.n);

/** Sends `count` numbered commands from `phone` to the target; returns the numbers sent. */
async function sendSome(phone, clientIdentify, count, states) {
  const sent = [];
  for (let i = 0; i < count; i++) {
    const k = ++n;
    const r = await phone.coop.sendCommand({
      commandType: 'step',
      to: { appId: 'appTarget', userId: 'alice', clientIdentify },
      commandParams: { n: k },
      onState: (s) => states.push([k, s.state]),
    });
    assert.ok(['queued', 'offered'].includes(r.state), r.state);
    sent.push(k);
  }
  return sent;
}

/** The new target process gets exactly `expected` (after what it got before), in order. */
async function assertDeliveredOnce(tgt, expected, states) {
  await tgt.waitLine(() => commandsOf(tgt).length >= expected.length, { what: `${expected.length} commands`, timeout: 30000 });
  await sleep(1500); // a repeat handed to the app would show up now
  assert.deepEqual(commandsOf(tgt), expected, 'each command once, in send order');
  await waitFor(() => expected.every((k) => states.some(([m, s]) => m === k && s === 'delivered')), {
    timeout: 15000,
    what: 'delivered states at the sender',
  });
}

async function setup(t) {
  const clientIdentify = `tv${++n}`;
  const phone = await loggedIn(file.hub, 'alice', `phone${++n}`, 'appPhone');
  t.after(() => phone.coop.logout());
  const first = target(t, clientIdentify);
  await first.waitLine((l) => l.ready, { what: 'the target to log in' });
  return { phone, clientIdentify, first };
}

test('target SIGKILLed: commands sent meanwhile arrive once, in order, when it returns', opts, async (t) => {
  const { phone, clientIdentify, first } = await setup(t);
  first.kill('SIGKILL');
  await first.exited;
  const states = [];
  const sent = await sendSome(phone, clientIdentify, 6, states);
  const again = target(t, clientIdentify);
  await assertDeliveredOnce(again, sent, states);
});

test('target SIGSTOPped past its keepalive: commands arrive once, in order, after SIGCONT', opts, async (t) => {
  const clientIdentify = `tv${++n}`;
  const phone = await loggedIn(file.hub, 'alice', `phone${++n}`, 'appPhone');
  t.after(() => phone.coop.logout());
  const tgt = target(t, clientIdentify, { KEEPALIVE: '1' });
  await tgt.waitLine((l) => l.ready, { what: 'the target to log in' });
  const states = [];
  tgt.kill('SIGSTOP');
  // Some commands go out while the broker still holds the frozen session, some after it gave
  // up on it (keepalive 1 s: the Will fires after 1.5 s) and the hub shows it offline.
  const sent = await sendSome(phone, clientIdentify, 3, states);
  await waitFor(async () => {
    const mine = await phone.coop.getMyDevices();
    return mine.some((d) => d.clientIdentify === clientIdentify && !d.online);
  }, { timeout: 15000, what: 'the hub to see the target offline' });
  sent.push(...(await sendSome(phone, clientIdentify, 3, states)));
  tgt.kill('SIGCONT');
  await assertDeliveredOnce(tgt, sent, states);
  // It reconnected by itself: connected again after a reconnecting state.
  const stateLines = tgt.lines.filter((l) => l.state).map((l) => l.state);
  assert.ok(stateLines.includes('reconnecting'), JSON.stringify(stateLines));
  assert.equal(stateLines.at(-1), 'connected');
});

test('target left with a plain DISCONNECT: commands arrive once, in order, on its next run', opts, async (t) => {
  const { phone, clientIdentify, first } = await setup(t);
  first.send({ do: 'plainDisconnect' });
  await first.exited;
  // No Will, no "offline": the hub still believes it online and offers the commands into a
  // session that no longer exists.
  const states = [];
  const sent = await sendSome(phone, clientIdentify, 6, states);
  const mine = await phone.coop.getMyDevices();
  assert.equal(mine.find((d) => d.clientIdentify === clientIdentify).online, true);
  await sleep(300);
  assert.deepEqual(states.filter(([, s]) => s === 'delivered'), [], 'nothing confirmed while away');
  const again = target(t, clientIdentify);
  await assertDeliveredOnce(again, sent, states);
});

test('plain DISCONNECT, then hearthd SIGKILLed and restarted: still once, in order', opts, async (t) => {
  const { phone, clientIdentify, first } = await setup(t);
  first.send({ do: 'plainDisconnect' });
  await first.exited;
  const states = [];
  const sent = await sendSome(phone, clientIdentify, 5, states);
  await file.hub.kill9();
  await file.hub.start();
  await waitFor(() => phone.status.state === 'connected', { what: 'the phone (it stayed connected to the broker)' });
  const again = target(t, clientIdentify);
  await assertDeliveredOnce(again, sent, states);
});

test('target SIGKILLed, then hearthd SIGKILLed and restarted: still once, in order', opts, async (t) => {
  const { phone, clientIdentify, first } = await setup(t);
  first.kill('SIGKILL');
  await first.exited;
  const states = [];
  const sent = await sendSome(phone, clientIdentify, 5, states);
  await file.hub.kill9();
  await file.hub.start();
  const again = target(t, clientIdentify);
  await assertDeliveredOnce(again, sent, states);
});

// A reply the hub lost is given again (docs/coop-api.md, what a crash can lose): the target's
// app replies to a confirmed command while hearthd is frozen, hearthd is then SIGKILLed (the
// reply dies with it: the hub's MQTT session is clean) and restarted; the command is still on
// its disk, and the target's library, whose reply got no answer, sends it again until the hub
// answers, without handing the command to the app a second time. The sender hears it once.
test('a reply lost with the hub is sent again when its command comes back', opts, async (t) => {
  const phone = await loggedIn(file.hub, 'alice', 'phone', 'appPhone');
  const tv = await loggedIn(file.hub, 'alice', 'tv', 'appTv', { requestTimeout: 3000 });
  t.after(() => phone.coop.logout());
  t.after(() => tv.coop.logout());
  const handed = [];
  tv.coop.receiveCommand((cmd) => handed.push(cmd));
  const responses = [];
  const sent = await phone.coop.sendCommand({
    commandType: 'pause',
    to: { appId: 'appTv', userId: 'alice', clientIdentify: 'tv' },
    commandParams: { at: 42 },
    onResponse: (r) => responses.push(r),
  });
  // Answered once the record is on disk (or replied): here the app has not replied yet.
  assert.equal(sent.state, 'offered');
  await waitFor(() => handed.length === 1, { what: 'the command at the tv' });
  // Confirmed (the library's ackCommand after ackDelayMs): the hub will not offer it again, so
  // only the library's own retry can bring the reply back.
  await waitFor(() => tv.coop.toAck.size === 0 && !tv.coop.ackTimer, { what: 'the ackCommand' });
  await sleep(200);

  process.kill(file.hub.proc.pid, 'SIGSTOP');
  const reply = tv.coop.replyCommand({
    commandId: handed[0].commandId,
    commandParams: { paused: true },
    to: handed[0].from,
  });
  await sleep(300); // the reply is at the broker, queued for the frozen hub
  await file.hub.kill9(); // ... and gone with its session
  await assert.rejects(reply, { code: 'TIMEOUT' }); // the app hears its reply was not answered
  assert.deepEqual(responses, []);

  await file.hub.start(); // the command is still on its disk, delivered, awaiting its reply
  await waitFor(() => responses.length === 1, { timeout: 20000, what: 'the reply at the phone' });
  assert.equal(responses[0].commandId, sent.commandId);
  assert.deepEqual(responses[0].commandParams, { paused: true });
  await sleep(1000); // a second hand-over or a second response would show now
  assert.equal(handed.length, 1, 'the app was handed the command once');
  assert.equal(responses.length, 1, 'the phone heard the reply once');
});
