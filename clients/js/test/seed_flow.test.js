// The seed-000 flow as the seed's own sample code, between two Node processes: the phone and
// the TV of examples/ (the very files docs/js-client.md shows), against a real hub.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { Hub, child, missing, SOURCE_DIR } from './harness.js';
import { createClient } from '../src/index.js';
import { noUnhandledRejections } from './util.js';

noUnhandledRejections();
const here = path.dirname(fileURLToPath(import.meta.url));
const examples = path.join(here, '..', 'examples');

test('docs/js-client.md shows the two-terminal example verbatim', () => {
  const doc = readFileSync(path.join(SOURCE_DIR, 'docs', 'js-client.md'), 'utf8');
  for (const f of ['tv.mjs', 'phone.mjs']) {
    const code = readFileSync(path.join(examples, f), 'utf8');
    assert.ok(doc.includes('```js\n' + code + '```'), `docs/js-client.md must include examples/${f} verbatim`);
  }
});

test('seed flow: phone and TV in two processes', async (t) => {
  const why = missing();
  if (why) return t.skip(why);
  const hub = await new Hub().open();
  const cleanups = [];
  t.after(async () => {
    for (const f of cleanups.reverse()) await f();
    await hub.close();
  });
  await hub.addUser('bob', 'bob-secret-1');
  await hub.addUser('alice', 'alice-secret-1');
  const env = { HUB: '127.0.0.1', HUB_PORT: String(hub.broker.port), HUB_TLS: '0' };

  const tv = child(path.join(examples, 'tv.mjs'), [], { ...env, USER_ID: 'bob', PASSWORD: 'bob-secret-1' });
  cleanups.push(() => tv.kill());
  const ready = await tv.waitLine((l) => l.tv === 'ready', { what: 'the TV to log in' });
  assert.match(ready.openId, /^[0-9a-f]{16,}$/);

  const phone = child(path.join(examples, 'phone.mjs'), [], {
    ...env,
    USER_ID: 'alice',
    PASSWORD: 'alice-secret-1',
    TV_OPEN_ID: ready.openId,
  });
  cleanups.push(() => phone.kill());
  const exit = await phone.exited;
  assert.deepEqual(exit, { code: 0, signal: null }, phone.stderr());

  const p = phone.lines;
  const steps = p.map((l) => l.phone);
  assert.deepEqual(steps, ['found', 'asked', 'access granted', 'sent', 'reply'], JSON.stringify(p));
  assert.equal(p[0].deviceName, 'Living room TV');
  assert.equal(p[0].online, true);
  assert.equal(p[2].by, 'living-room-tv');
  assert.equal(p[3].state, 'offered');
  assert.equal(p[4].commandId, p[3].commandId);
  assert.equal(p[4].from, 'living-room-tv');
  assert.deepEqual(p[4].params, { playing: 'https://example.com/v.mp4' });

  // The TV's answer to agree and the phone's command race each other; the rest is ordered.
  const tvSteps = tv.lines.map((l) => l.tv);
  assert.deepEqual([...tvSteps].sort(), ['accessRequest', 'agreed', 'command', 'ready', 'replied'], JSON.stringify(tv.lines));
  const at = (s) => tvSteps.indexOf(s);
  assert.ok(at('ready') < at('accessRequest') && at('accessRequest') < at('agreed') && at('command') < at('replied'));
  const req = tv.lines[at('accessRequest')];
  assert.deepEqual(req.from, { appId: 'com.example.remote', userId: 'alice', clientIdentify: 'alice-phone' });
  assert.deepEqual(req.permissions, ['play']);
  assert.equal(tv.lines[at('command')].commandId, p[3].commandId);
  assert.equal(tv.lines[at('command')].commandType, 'play');

  // The phone logged out: it said "offline" first, so alice's other terminals see it offline.
  const alice = createClient();
  alice.coop.initialize({ server: '127.0.0.1', serverPort: hub.broker.port, serverEnableSSL: false, appId: 'com.example.remote', clientIdentify: 'alice-tablet' });
  await alice.coop.login({ userId: 'alice', password: 'alice-secret-1' });
  cleanups.push(() => alice.coop.logout());
  const mine = await alice.coop.getMyDevices();
  const phoneEntry = mine.find((d) => d.clientIdentify === 'alice-phone');
  assert.deepEqual(phoneEntry, {
    appId: 'com.example.remote',
    clientIdentify: 'alice-phone',
    deviceModel: 'Pixel 8',
    deviceName: "Alice's phone",
    online: false,
    userId: 'alice',
  });
});
