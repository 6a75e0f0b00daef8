// The pairing link (SPEC §7) and CA pinning in Node: a hub CA made here with openssl (ECDSA
// P-256, like the hub's own), the real broker given a TLS listener with it, and the library
// told only `hearth://pair?host=…&port=…&ca=sha256:…`. It logs in over mqtts://; a link with
// another fingerprint is refused before the password is sent (CA_MISMATCH).

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import path from 'node:path';
import { test, before, after } from 'node:test';

import { createClient, parsePairingLink, ReasonCode } from '../src/index.js';
import { Hub, missing, waitFor, freePort } from './harness.js';
import { noUnhandledRejections, rejectsWith } from './util.js';

noUnhandledRejections();

test('parsePairingLink: valid links, and bad ones refused by name', () => {
  const fp = 'AB:'.repeat(31) + 'AB';
  assert.deepEqual(parsePairingLink(`hearth://pair?host=hub.local&port=8443&ca=sha256:${fp}`), {
    host: 'hub.local',
    port: 8443,
    caSha256: 'ab'.repeat(32),
  });
  assert.equal(parsePairingLink(`hearth://pair?host=[fe80::1]&port=8883&ca=sha256:${'0'.repeat(64)}`).host, 'fe80::1');
  for (const [link, why] of [
    ['https://hub.local', /hearth:\/\/pair/],
    [`hearth://pair?port=8443&ca=sha256:${'0'.repeat(64)}`, /host/],
    [`hearth://pair?host=h&port=0&ca=sha256:${'0'.repeat(64)}`, /port/],
    ['hearth://pair?host=h&port=8443&ca=md5:00', /ca/],
    [`hearth://pair?host=h/x&port=8443&ca=sha256:${'0'.repeat(64)}`, /host/],
  ]) {
    assert.throws(() => parsePairingLink(link), (e) => e.code === 'INVALID_REQUEST' && why.test(e.message), link);
  }
});

const why = missing();
const opts = why ? { skip: why } : {};
let hub;
let tlsPort;
let caFingerprint;
let tlsBroker;

function openssl(args, cwd) {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

before(async () => {
  if (why) return;
  hub = await new Hub().open();
  await hub.addUser('alice', 'alice-secret-1');
  const dir = hub.root;
  // A hub CA and a server certificate it signs.
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key'], dir);
  openssl(['req', '-x509', '-new', '-key', 'ca.key', '-sha256', '-days', '3650', '-subj', '/CN=hearth test CA', '-out', 'ca.pem'], dir);
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'server.key'], dir);
  openssl(['req', '-new', '-key', 'server.key', '-subj', '/CN=hub.local', '-out', 'server.csr'], dir);
  writeFileSync(path.join(dir, 'ext.cnf'), 'subjectAltName=DNS:hub.local,IP:127.0.0.1\n');
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '365', '-sha256', '-extfile', 'ext.cnf', '-out', 'server.pem'], dir);
  // The server presents its chain (leaf + CA), as the front door does.
  writeFileSync(path.join(dir, 'chain.pem'), readFileSync(path.join(dir, 'server.pem'), 'utf8') + readFileSync(path.join(dir, 'ca.pem'), 'utf8'));
  caFingerprint = new X509Certificate(readFileSync(path.join(dir, 'ca.pem'))).fingerprint256;
  // The same broker (same accounts) with a TLS listener added.
  tlsPort = await freePort();
  const conf = path.join(hub.broker.dir, 'mosquitto.conf');
  const tlsConf = path.join(dir, 'mosquitto-tls.conf');
  writeFileSync(tlsConf, readFileSync(conf, 'utf8'));
  appendFileSync(tlsConf, `listener ${tlsPort} 127.0.0.1\ncertfile ${path.join(dir, 'chain.pem')}\nkeyfile ${path.join(dir, 'server.key')}\n`);
  await hub.broker.kill();
  tlsBroker = spawn('mosquitto', ['-c', tlsConf], { stdio: 'ignore', detached: true });
  hub.broker.proc = tlsBroker; // so that hub.close() stops it
  await waitFor(async () => (await hub.ctl(['status'], { check: false, timeout: 2 })).code === 0, {
    timeout: 20000,
    what: 'hearthd back on the TLS-enabled broker',
  });
});
after(async () => {
  if (hub) await hub.close();
});

test('pairing link: mqtts:// with the pinned CA logs in; another fingerprint is CA_MISMATCH', opts, async (t) => {
  const c = createClient();
  c.coop.initialize({
    server: 'ignored-when-paired',
    appId: 'appPair',
    clientIdentify: 'paired-phone',
    // The link's port is the front door's https/wss port; this broker speaks plain mqtts.
    pairing: `hearth://pair?host=127.0.0.1&port=8443&ca=sha256:${caFingerprint}`,
    transport: 'mqtts',
    serverSSLPort: tlsPort,
  });
  await c.coop.login({ userId: 'alice', password: 'alice-secret-1' });
  t.after(() => c.coop.logout());
  assert.equal(c.status.state, 'connected');
  const mine = await c.coop.getMyDevices();
  assert.ok(mine.some((d) => d.clientIdentify === 'paired-phone' && d.online));

  const wrong = createClient();
  const states = [];
  wrong.onConnectionState((s) => states.push(s));
  wrong.coop.initialize({
    server: 'x',
    appId: 'appPair',
    clientIdentify: 'mitm-victim',
    pairing: `hearth://pair?host=127.0.0.1&port=8443&ca=sha256:${'0'.repeat(64)}`,
    transport: 'mqtts',
    serverSSLPort: tlsPort,
  });
  await rejectsWith(wrong.coop.login({ userId: 'alice', password: 'alice-secret-1' }), 'CA_MISMATCH', 'wrong pin');
  assert.equal(wrong.status.state, 'disconnected');
  assert.equal(wrong.status.reason, ReasonCode.CA_MISMATCH);

  // Without a pin (or a CA), the hub's own CA is not trusted: the connection never comes up.
  const unpinned = createClient();
  unpinned.coop.initialize({ server: '127.0.0.1', serverSSLPort: tlsPort, appId: 'x', connectTimeout: 2000 });
  await rejectsWith(unpinned.coop.login({ userId: 'alice', password: 'alice-secret-1' }), 'NOT_CONNECTED', 'untrusted CA');
});
