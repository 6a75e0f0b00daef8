// A reply the hub lost is given again (docs/coop-api.md, what a crash can lose): the target's
// app replies while hearthd is frozen, hearthd is then SIGKILLed (the reply dies with it: the
// hub's MQTT session is clean) and restarted; the command is still on its disk and comes back
// to the target, whose library sends the app's reply again without handing the command to the
// app a second time. The sender hears the reply once.

import assert from 'node:assert/strict';
import { test, before, after } from 'node:test';

import { Hub, missing, waitFor, sleep } from './harness.js';
import { loggedIn, noUnhandledRejections } from './util.js';

noUnhandledRejections();
const why = missing();
const opts = why ? { skip: why } : {};
let hub;

before(async () => {
  if (why) return;
  hub = await new Hub().open();
  await hub.addUser('alice', 'alice-secret-1');
});
after(async () => {
  if (hub) await hub.close();
});

test('a reply lost with the hub is sent again when its command comes back', opts, async (t) => {
  const phone = await loggedIn(hub, 'alice', 'phone', 'appPhone');
  const tv = await loggedIn(hub, 'alice', 'tv', 'appTv', { requestTimeout: 3000 });
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

  process.kill(hub.proc.pid, 'SIGSTOP');
  const reply = tv.coop.replyCommand({
    commandId: handed[0].commandId,
    commandParams: { paused: true },
    to: handed[0].from,
  });
  await sleep(300); // the reply is at the broker, queued for the frozen hub
  await hub.kill9(); // ... and gone with its session
  await assert.rejects(reply, { code: 'TIMEOUT' }); // the app hears its reply was not answered
  assert.deepEqual(responses, []);

  await hub.start(); // offers the command again: it is still on disk
  await waitFor(() => responses.length === 1, { timeout: 15000, what: 'the reply at the phone' });
  assert.equal(responses[0].commandId, sent.commandId);
  assert.deepEqual(responses[0].commandParams, { paused: true });
  await sleep(1000); // a second hand-over or a second response would show now
  assert.equal(handed.length, 1, 'the app was handed the command once');
  assert.equal(responses.length, 1, 'the phone heard the reply once');
});
