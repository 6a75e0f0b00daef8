// A request is written to the socket when it is made, not at the end of the turn (client.js
// flush()): also one made inside an event handler, before mqtt.js acknowledges the event. And
// the broker dying under a steady stream of requests — so that the hub is answering one when
// its connection breaks — leaves neither the hub nor the client stuck: both reconnect and
// calls work again.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { internals } from '../src/internals.js';
import { waitFor } from './harness.js';
import { hubForFile, loggedIn, noUnhandledRejections } from './util.js';

noUnhandledRejections();
const file = hubForFile();
const { opts } = file;

/** What is still held back in the client's socket: corks and bytes not yet given to the kernel. */
function heldBack(client) {
  const s = internals(client).conn.mq.stream;
  return { corked: s.writableCorked, buffered: s.writableLength };
}

test('a request is on the wire when the call returns, also from inside a handler', opts, async (t) => {
  const phone = await loggedIn(file.hub, 'alice', 'phone-w', 'appA');
  const tv = await loggedIn(file.hub, 'alice', 'tv-w', 'appA');
  t.after(() => Promise.all([phone.coop.logout(), tv.coop.logout()]));

  const call = phone.coop.getMyDevices();
  assert.deepEqual(heldBack(phone), { corked: 0, buffered: 0 }, 'a plain call');
  await call;

  // Two calls in one turn: both written, in order, before the turn ends.
  const two = [phone.coop.getMyDevices(), phone.coop.getOpenId()];
  assert.deepEqual(heldBack(phone), { corked: 0, buffered: 0 }, 'two calls in one turn');
  await Promise.all(two);

  // replyCommand inside receiveCommand: mqtt.js sends the command's PUBACK only after the
  // handler returns; the reply must not wait for it.
  const inHandler = new Promise((resolve, reject) => {
    tv.coop.receiveCommand((cmd) => {
      const reply = tv.coop.replyCommand({ commandId: cmd.commandId, commandParams: { ok: 1 }, to: cmd.from });
      resolve(heldBack(tv));
      reply.catch(reject);
    });
  });
  const answered = new Promise((resolve, reject) => {
    phone.coop.sendCommand({ commandType: 'ping', to: tv.self, onResponse: resolve }).catch(reject);
  });
  assert.deepEqual(await inHandler, { corked: 0, buffered: 0 }, 'a reply made inside the handler');
  assert.deepEqual((await answered).commandParams, { ok: 1 });
});

test('the broker killed under a steady stream of requests: hub and client come back', opts, async (t) => {
  const extra = { requestTimeout: 3000, reconnectMinMs: 200, reconnectMaxMs: 1000 };
  const phone = await loggedIn(file.hub, 'alice', 'phone-k', 'appA', extra);
  t.after(() => phone.coop.logout());

  // 32 callers, each calling again as soon as its call ended, until the broker is back.
  let running = true;
  let answered = 0;
  const caller = async () => {
    while (running) {
      if (phone.status.state !== 'connected') {
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      await phone.coop.getMyDevices().then(
        () => (answered += 1),
        (e) => assert.ok(['TIMEOUT', 'NOT_CONNECTED'].includes(e.code), e.message),
      );
    }
  };
  const callers = Array.from({ length: 32 }, caller);
  t.after(() => {
    running = false;
    return Promise.all(callers);
  });
  await waitFor(() => answered >= 200, { timeout: 20000, what: '200 calls answered' });

  await file.hub.broker.kill();
  t.after(async () => {
    if (!file.hub.broker.proc) await file.hub.broker.start();
  });
  await waitFor(() => phone.status.state === 'reconnecting', { what: 'reconnecting' });
  await file.hub.broker.start();
  await waitFor(() => phone.status.state === 'connected', { timeout: 20000, what: 'the client connected again (hello answered)' });
  const before = answered;
  await waitFor(() => answered >= before + 200, { timeout: 20000, what: 'the hub answering again' });
  running = false;
  await Promise.all(callers);
  await waitFor(() => phone.pendingCount === 0, { timeout: 5000, what: 'no call pending' });
  // The hub noticed the broker's loss and reconnected by itself (it did not hang in a write).
  assert.match(file.hub.log(), /disconnected from the broker/);
});
