// The same library in headless Chromium (Debian's /usr/bin/chromium driven by puppeteer-core;
// no browser is downloaded): the browser bundle from the build tree logs in over WebSocket,
// sends a command to a Node terminal and gets its reply, receives one and replies, and logs
// out; no unhandled rejection, no console error.
//   1. through the front door (plugin web: https:// page, wss:///mqtt, the hub's own CA), when
//      web.so is built; the Node terminal uses the pairing link (wss://, CA pinned);
//   2. always: through a WebSocket-to-TCP pipe written here, in front of the real broker.

import assert from 'node:assert/strict';
import { X509Certificate, createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, copyFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test, after } from 'node:test';

import { WebSocketServer } from 'ws';

import { createClient } from '../src/index.js';
import { Hub, missing, freePort, BUILD_DIR } from './harness.js';
import { loggedIn, noUnhandledRejections } from './util.js';

noUnhandledRejections();

const CHROMIUM = '/usr/bin/chromium';
const BUNDLE_DIR = process.env.HEARTH_CLIENT_BUNDLE_DIR || path.join(BUILD_DIR, 'clients', 'js');
const BUNDLE = path.join(BUNDLE_DIR, 'hearth-client.js');

function whyNot(plugins) {
  if (!existsSync(CHROMIUM)) return `${CHROMIUM} is not installed`;
  if (!existsSync(BUNDLE)) return `the browser bundle is not built (${BUNDLE})`;
  return missing(plugins);
}

const PAGE = `<!doctype html><meta charset="utf-8"><title>hearth-client in a browser</title><link rel="icon" href="data:,">
<h1>hearth-client</h1><pre id="log"></pre>
<script src="page.js"></script>
<script src="hearth-client.js"></script>`;
// An external script: the front door's Content-Security-Policy allows no inline script.
const PAGE_JS = `window.rejections = [];
window.addEventListener('unhandledrejection', (e) => window.rejections.push(String(e.reason)));
window.log = (line) => { document.getElementById('log').textContent += line + '\\n'; };
`;

/** What the page does, written against the seed API. Runs in the browser. */
async function pageFlow({ server, port, ssl, userId, password, tv }) {
  /* global mtl, hearth */
  const states = [];
  hearth.onConnectionState((s) => {
    states.push(s.state);
    window.log(`state ${s.state} (${s.reasonName})`);
  });
  mtl.coop.initialize({ server, wssPort: port, serverEnableSSL: ssl, appId: 'appWeb', clientIdentify: 'browser-1', deviceName: 'Browser' });
  const received = [];
  mtl.coop.receiveCommand((cmd) => {
    received.push(cmd);
    window.log(`command ${cmd.commandType} from ${cmd.from.clientIdentify}`);
    mtl.coop.replyCommand({ commandId: cmd.commandId, commandParams: { seen: true }, to: cmd.from });
  });
  await new Promise((resolve, reject) => mtl.coop.login({ userId, password, success: resolve, fail: (e) => reject(new Error(`login: ${e.code} ${e.message}`)) }));
  window.log(`logged in, openId ${hearth.openId}`);
  const reply = await new Promise((resolve, reject) =>
    mtl.coop.sendCommand({ commandType: 'play', to: tv, commandParams: { url: 'https://example.com/v.mp4' }, onResponse: resolve, fail: reject }),
  );
  window.log(`reply ${JSON.stringify(reply.commandParams)}`);
  const mine = await mtl.coop.getMyDevices();
  window.log(`my devices: ${mine.map((d) => d.clientIdentify + (d.online ? ' (online)' : '')).join(', ')}`);
  // Wait for the TV's command to us.
  for (let i = 0; i < 200 && received.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
  const failed = await mtl.coop.getDeviceInfo({ openId: '0000' }).catch((e) => e.code);
  window.log(`getDeviceInfo of an unknown openId: ${failed}`);
  await mtl.coop.logout();
  return { states, reply: reply.commandParams, mine: mine.map((d) => d.clientIdentify).sort(), received: received.map((c) => c.commandType), failed, rejections: window.rejections };
}

async function runInChromium(t, pageUrl, args, flowArgs) {
  const { default: puppeteer } = await import('puppeteer-core');
  const profile = mkdtempSync(path.join(os.tmpdir(), 'hearth-chromium-'));
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`, ...args],
  });
  t.after(async () => {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  });
  const page = await browser.newPage();
  const consoleErrors = [];
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  await page.goto(pageUrl, { waitUntil: 'load' });
  const result = await page.evaluate(pageFlow, flowArgs);
  if (process.env.HEARTH_SCREENSHOT) await page.screenshot({ path: process.env.HEARTH_SCREENSHOT });
  return { result, consoleErrors };
}

/** A Node TV that replies to commands and sends the browser one of its own. */
async function nodeTv(t, client) {
  client.coop.receiveCommand((cmd) => {
    client.coop.replyCommand({ commandId: cmd.commandId, commandParams: { playing: cmd.commandParams.url }, to: cmd.from });
    client.coop.sendCommand({ commandType: 'notify', to: cmd.from, commandParams: { text: 'now playing' } }).catch(() => {});
  });
  t.after(() => client.coop.logout());
  return client;
}

function checkResult(result, consoleErrors, tvId) {
  assert.deepEqual(result.reply, { playing: 'https://example.com/v.mp4' });
  assert.deepEqual(result.received, ['notify']);
  assert.ok(result.mine.includes('browser-1') && result.mine.includes(tvId), JSON.stringify(result.mine));
  assert.equal(result.failed, 'NOT_FOUND');
  assert.deepEqual(result.states, ['connecting', 'connected', 'disconnected']);
  assert.deepEqual(result.rejections, []);
  assert.deepEqual(consoleErrors, []);
}

test('in Chromium through the front door (wss://, the hub CA)', { skip: whyNot(['coop_relay', 'web']) || false }, async (t) => {
  const httpsPort = await freePort();
  const www = mkdtempSync(path.join(os.tmpdir(), 'hearth-www-'));
  t.after(() => rmSync(www, { recursive: true, force: true }));
  writeFileSync(path.join(www, 'index.html'), PAGE);
  writeFileSync(path.join(www, 'page.js'), PAGE_JS);
  copyFileSync(BUNDLE, path.join(www, 'hearth-client.js'));
  const hub = await new Hub({
    plugins: ['coop_relay', 'web'],
    pluginConfig: { web: { listen: ['127.0.0.1'], https_port: httpsPort, mqtts_port: 0, metrics_listen: '', www_dir: www } },
  }).open();
  t.after(() => hub.close());
  await hub.addUser('alice', 'alice-secret-1');
  const pair = await hub.admin('pair');
  assert.match(pair.url, /^hearth:\/\/pair\?/);
  // The Node TV comes in through the front door as well, with nothing but the pairing link.
  const tv = createClient();
  tv.coop.initialize({ server: 'unused', appId: 'appTV', clientIdentify: 'tv-door', pairing: pair.url });
  await tv.coop.login({ userId: 'alice', password: 'alice-secret-1' });
  await nodeTv(t, tv);
  // Chromium trusts the hub's CA by its public key, nothing else.
  const ca = new X509Certificate(readFileSync(path.join(hub.stateDir, 'web', 'ca.pem')));
  const spki = createHash('sha256').update(ca.publicKey.export({ type: 'spki', format: 'der' })).digest('base64');
  const { result, consoleErrors } = await runInChromium(t, `https://127.0.0.1:${httpsPort}/`, [`--ignore-certificate-errors-spki-list=${spki}`], {
    server: '127.0.0.1',
    port: httpsPort,
    ssl: true,
    userId: 'alice',
    password: 'alice-secret-1',
    tv: tv.self,
  });
  checkResult(result, consoleErrors, 'tv-door');
});

test('in Chromium through a local WebSocket pipe to the broker', { skip: whyNot(['coop_relay']) || false }, async (t) => {
  const hub = await new Hub().open();
  t.after(() => hub.close());
  await hub.addUser('alice', 'alice-secret-1');
  await nodeTv(t, await loggedIn(hub, 'alice', 'tv-pipe', 'appTV'));
  // http://127.0.0.1:PORT/ serves the page and the bundle; ws://127.0.0.1:PORT/mqtt is piped
  // byte for byte to the broker's TCP port.
  const server = http.createServer((req, res) => {
    if (req.url === '/') return res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
    if (req.url === '/page.js') return res.writeHead(200, { 'content-type': 'text/javascript' }).end(PAGE_JS);
    if (req.url === '/hearth-client.js') return res.writeHead(200, { 'content-type': 'text/javascript' }).end(readFileSync(BUNDLE));
    res.writeHead(404).end();
  });
  const wss = new WebSocketServer({ server, path: '/mqtt', handleProtocols: (p) => (p.has('mqtt') ? 'mqtt' : false) });
  wss.on('connection', (ws) => {
    const tcp = net.connect({ host: '127.0.0.1', port: hub.broker.port });
    ws.on('message', (data) => tcp.write(data));
    tcp.on('data', (data) => ws.send(data));
    ws.on('close', () => tcp.destroy());
    tcp.on('close', () => ws.close());
    tcp.on('error', () => ws.close());
    ws.on('error', () => tcp.destroy());
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => {
    for (const c of wss.clients) c.terminate();
    wss.close();
    server.closeAllConnections(); // Chromium keeps its HTTP connection alive
    server.close(r);
  }));
  const port = server.address().port;
  const { result, consoleErrors } = await runInChromium(t, `http://127.0.0.1:${port}/`, [], {
    server: '127.0.0.1',
    port,
    ssl: false,
    userId: 'alice',
    password: 'alice-secret-1',
    tv: { appId: 'appTV', userId: 'alice', clientIdentify: 'tv-pipe' },
  });
  checkResult(result, consoleErrors, 'tv-pipe');
});

after(() => {});
