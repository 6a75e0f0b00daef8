// The household web app in a real browser (issue 14): headless Debian chromium driven by
// puppeteer-core against the real stack (mosquitto, hearthd, the front door, simulated lamps),
// with one browser context per user. Screenshots go to BUILD/web-screenshots/. The test fails on
// any console error, page error, failed request or HTTP error the pages see, except the few it
// provokes on purpose (named where they are allowed).
//
// It re-runs itself in a private network namespace (unshare --net, as root) so that the lamps'
// multicast on `lo` never leaves the test and every port is its own. Exit 77 = skipped.

import {spawnSync} from 'node:child_process';
import {existsSync, mkdirSync, readdirSync, readFileSync, rmSync} from 'node:fs';
import {join} from 'node:path';
import {fileURLToPath} from 'node:url';
import assert from 'node:assert/strict';
import {gzipSync} from 'node:zlib';

const SKIP = 77;
const skip = (why) => {
  console.log(`web_app.browser: skipped (${why})`);
  process.exit(SKIP);
};

if (!process.env.HEARTH_SOURCE_DIR) process.env.HEARTH_SOURCE_DIR = fileURLToPath(new URL('../../..', import.meta.url));

if (!process.env.HEARTH_WEB_TEST_NS) {
  if (process.getuid?.() !== 0) skip('needs root for a private network namespace');
  if (!existsSync('/usr/bin/chromium')) skip('/usr/bin/chromium is not installed');
  if (spawnSync('unshare', ['--version']).status !== 0) skip('unshare is missing');
  const r = spawnSync('unshare', ['--net', '--', process.execPath, fileURLToPath(import.meta.url)], {
    stdio: 'inherit',
    env: {...process.env, HEARTH_WEB_TEST_NS: '1'},
  });
  process.exit(r.status ?? 1);
}

for (const cmd of [['ip', 'link', 'set', 'lo', 'up'], ['ip', 'link', 'set', 'lo', 'multicast', 'on'], ['ip', 'route', 'add', '224.0.0.0/4', 'dev', 'lo']]) {
  const r = spawnSync(cmd[0], cmd.slice(1), {encoding: 'utf8'});
  if (r.status !== 0) skip(`${cmd.join(' ')}: ${r.stderr.trim()}`);
}

const {Stack, BUILD, sleep, waitFor} = await import('./stack.mjs');
let puppeteer, jsQR, createClient;
try {
  puppeteer = (await import('puppeteer-core')).default;
  jsQR = (await import('jsqr')).default;
  ({createClient} = await import('hearth-client'));
} catch (e) {
  skip(`npm packages missing (${e.message}); run tools/install-deps.sh`);
}
for (const f of [join(BUILD, 'web', 'index.html'), join(BUILD, 'plugins', 'web.so'), join(BUILD, 'core', 'hearthd')]) {
  if (!existsSync(f)) skip(`${f} is not built`);
}

const SHOTS = join(BUILD, 'web-screenshots');
rmSync(SHOTS, {recursive: true, force: true}); // no picture of an earlier run is left to mislead
mkdirSync(SHOTS, {recursive: true});
const PHONE = {width: 360, height: 740, deviceScaleFactor: 2, isMobile: true, hasTouch: true};
const XSS_NAME = '<img src=x onerror=alert(1)>';
const results = [];
const pages = {}; // who -> page, for screenshots when a step fails
const figures = {};

const stack = new Stack({offlineAfter: '4s', qrTtl: '1m', maxFailedLogins: 5});
let browser;
const problems = []; // console errors, page errors, failed requests
let allowed = []; // regexps of console errors provoked on purpose, per phase

function watch(page, who) {
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const text = m.text();
    if (allowed.some((re) => re.test(text))) return;
    problems.push(`${who} console error: ${text}`);
  });
  page.on('pageerror', (e) => problems.push(`${who} page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`${who} request failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on('response', (r) => r.status() >= 400 && problems.push(`${who} HTTP ${r.status()}: ${r.url()}`));
  page.on('dialog', async (d) => {
    problems.push(`${who} dialog opened (script ran): ${d.message()}`);
    await d.dismiss();
  });
}

function noProblems(step) {
  if (problems.length) throw new Error(`${step}: ${problems.join('\n')}`);
}

async function newUser(name) {
  const ctx = await browser.createBrowserContext();
  const page = await ctx.newPage();
  await page.setViewport(PHONE);
  watch(page, name);
  pages[name] = page;
  // What the first page load transfers (a fresh context: nothing cached), body by body.
  const bodies = [];
  const collect = (r) => bodies.push(r.buffer().then((b) => ({url: r.url(), bytes: b.length, gz: gzipSync(b, {level: 9}).length}), () => null));
  page.on('response', collect);
  await page.goto(stack.url, {waitUntil: 'networkidle0'});
  page.off('response', collect);
  page.firstLoad = (await Promise.all(bodies)).filter(Boolean);
  return page;
}

async function shot(page, name) {
  await sleep(150); // let the last paint settle
  await page.screenshot({path: join(SHOTS, name + '.png')});
}

async function login(page, user, pw = stack.passwords[user]) {
  await page.waitForSelector('#login-user', {visible: true});
  await page.$eval('#login-user', (el) => (el.value = ''));
  await page.type('#login-user', user);
  await page.$eval('#login-password', (el) => (el.value = ''));
  await page.type('#login-password', pw);
  await page.click('#login-submit');
}

async function loggedIn(page) {
  await page.waitForSelector('#device-list', {timeout: 20000});
  await page.waitForSelector('#conn[data-state="connected"]');
}

const text = (page, sel) => page.$eval(sel, (el) => el.textContent);
const waitText = (page, sel, re, timeout = 15000) =>
  page.waitForFunction(
    (s, src, flags) => {
      const el = document.querySelector(s);
      return el && new RegExp(src, flags).test(el.textContent);
    },
    {timeout},
    sel,
    re.source,
    re.flags,
  );

async function openDevice(page, id) {
  await page.evaluate((d) => (location.hash = '#/device/' + encodeURIComponent(d)), id);
  await page.waitForSelector(`.device[data-device-id="${id}"] #members li`);
}

/** Clicks the element a selector names, looking it up again if a re-render replaced it. */
async function clickFresh(page, sel) {
  for (let i = 0; ; i++) {
    try {
      return await page.click(sel);
    } catch (e) {
      if (i >= 4 || !/detached|not clickable|No node/i.test(e.message)) throw e;
      await sleep(200);
    }
  }
}

async function pressTwice(page, handle) {
  await handle.click();
  await handle.click();
}

async function step(name, fn) {
  const t0 = Date.now();
  await fn();
  noProblems(name);
  results.push(`ok   ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  console.log(results.at(-1));
}

/** A hearth-client in Node, logged in over plain MQTT to the test broker (setup only). */
async function nodeClient(user) {
  const c = createClient();
  c.coop.initialize({server: '127.0.0.1', url: `mqtt://127.0.0.1:${stack.brokerPort}`, appId: 'web-test', clientIdentify: `${user}-setup`});
  await c.coop.login({userId: user, password: stack.passwords[user]});
  return c;
}

async function main() {
  await stack.start();
  for (const u of ['alice', 'bob', 'carol']) stack.addUser(u);
  stack.addUser('installer', true);
  const lamps = stack.devsim('lamps', ['--count', '3']);
  const xss = stack.devsim('xss', ['--count', '1', '--prefix', 'xss-', '--name', XSS_NAME]);
  await waitFor(() => /sim-0001/.test(stack.ctl('devices')) && /xss-0001/.test(stack.ctl('devices')), {what: 'the lamps in the inventory'});

  browser = await puppeteer.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    acceptInsecureCerts: true, // the hub's own CA (the front door's self-made certificate)
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', `--user-data-dir=${join(stack.root, 'chrome')}`],
  });

  await step('the app has no way to parse HTML from data (no innerHTML & co. in clients/web/src)', async () => {
    const src = join(process.env.HEARTH_SOURCE_DIR, 'clients', 'web', 'src');
    const files = readdirSync(src, {recursive: true}).filter((f) => f.endsWith('.js'));
    assert.ok(files.length > 5);
    for (const f of files) {
      assert.doesNotMatch(readFileSync(join(src, f), 'utf8'), /innerHTML|outerHTML|insertAdjacentHTML|document\.write/, f);
    }
  });
  const alice = await newUser('alice');
  await step('first page load: at most 250 KB gzipped', async () => {
    const raw = alice.firstLoad.reduce((n, f) => n + f.bytes, 0);
    const gz = alice.firstLoad.reduce((n, f) => n + f.gz, 0);
    figures.firstLoadFiles = alice.firstLoad.map((f) => new URL(f.url).pathname);
    figures.firstLoadBytes = raw;
    figures.firstLoadGzipBytes = gz;
    console.log(`     first load: ${alice.firstLoad.length} files, ${(raw / 1024).toFixed(1)} KiB as sent, ${(gz / 1024).toFixed(1)} KiB gzipped`);
    assert.ok(alice.firstLoad.some((f) => f.url.endsWith('/app.js')), 'app.js is part of the first load');
    assert.ok(!alice.firstLoad.some((f) => /jsQR/.test(f.url)), 'the camera scanner is not part of the first load');
    assert.ok(gz <= 250 * 1024, `first load is ${gz} B gzipped (limit 250 KB)`);
  });
  let firstKey, firstKeyAt, bobKey;

  await step('login: wrong password says so; staying logged in across a reload', async () => {
    await login(alice, 'alice', 'not-her-password');
    await waitText(alice, '#login-error', /Wrong user name or password/);
    await shot(alice, '00-login-wrong-password');
    await login(alice, 'alice');
    await loggedIn(alice);
    await alice.reload({waitUntil: 'load'});
    await loggedIn(alice); // logged in again from the encrypted record, no form
    const stored = await alice.evaluate(async (pw) => {
      const db = await new Promise((res, rej) => {
        const r = indexedDB.open('hearth-web');
        r.onsuccess = () => res(r.result);
        r.onerror = () => rej(r.error);
      });
      const rec = await new Promise((res) => {
        const g = db.transaction('session').objectStore('session').get('current');
        g.onsuccess = () => res(g.result);
      });
      const bytes = new Uint8Array(rec.sealed);
      const needle = new TextEncoder().encode(pw);
      const hay = Array.from(bytes).join(',');
      return {
        extractable: rec.key.extractable,
        inSealed: hay.includes(Array.from(needle).join(',')),
        inStorage: JSON.stringify({...localStorage}).includes(pw) || JSON.stringify({...sessionStorage}).includes(pw),
      };
    }, stack.passwords.alice);
    assert.deepEqual(stored, {extractable: false, inSealed: false, inStorage: false}, 'password kept in clear');
  });

  await step('1. alice provisions sim-0001, sees it online, turns it on and sees the reply', async () => {
    await alice.evaluate(() => (location.hash = '#/add'));
    await alice.click('#provision-begin');
    await alice.waitForSelector('#token-value');
    const token = await text(alice, '#token-value');
    const line = await text(alice, '#devsim-line');
    assert.equal(line, `echo "provision sim-0001 ${token}" > .run/devsim.in`);
    await waitText(alice, '#provision-token .countdown', /valid for \d+ min/);
    await shot(alice, '01a-provision-token');
    lamps.send(`provision sim-0001 ${token}`); // what the printed line feeds make run's FIFO
    await waitText(alice, '.outcome.ok', /is added; you are its owner/);
    await alice.click('#provisioned-link');
    await alice.waitForSelector('.device[data-device-id="sim-0001"] [data-online="true"]');
    await alice.click('#lamp-on');
    await waitText(alice, '#reply', /the device replied: .*on: yes/);
    await waitText(alice, '#lamp-state', /The lamp is on/);
    await shot(alice, '01b-lamp-on');
  });

  const bob = await newUser('bob');
  await step('2. alice shares by QR; bob reads the QR image, scans it, turns the lamp off; alice sees him join', async () => {
    await alice.click('#share-qr');
    await alice.waitForSelector('#qr-canvas');
    firstKey = await text(alice, '#qr-key'); // kept to be scanned after it expires
    firstKeyAt = Date.now();
    await alice.click('#share-qr'); // one fresh key per press
    await alice.waitForFunction((k) => document.querySelector('#qr-key')?.textContent !== k, {}, firstKey);
    const shown = await text(alice, '#qr-key');
    assert.notEqual(shown, firstKey, 'a second press must give a fresh key');
    const img = await alice.$eval('#qr-canvas', (c) => {
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height);
      return {w: d.width, h: d.height, data: Array.from(d.data)};
    });
    const decoded = jsQR(Uint8ClampedArray.from(img.data), img.w, img.h);
    assert.ok(decoded, 'the rendered QR code must decode');
    assert.equal(decoded.data, shown, 'the QR code must carry the key shown under it');
    bobKey = decoded.data;
    const c1 = await text(alice, '#qr-box .countdown');
    await sleep(2100);
    assert.notEqual(await text(alice, '#qr-box .countdown'), c1, 'the countdown must run');
    await shot(alice, '02a-share-qr');

    // bob logs in with the keyboard only: the name field has the focus, Tab, Enter.
    await bob.waitForSelector('#login-user', {visible: true});
    assert.equal(await bob.evaluate(() => document.activeElement?.id), 'login-user');
    await bob.keyboard.type('bob');
    await bob.keyboard.press('Tab');
    await bob.keyboard.type(stack.passwords.bob);
    await bob.keyboard.press('Enter');
    await loggedIn(bob);
    await bob.evaluate(() => (location.hash = '#/scan'));
    await bob.type('#scan-key', decoded.data);
    await bob.click('#scan-submit');
    await waitText(bob, '#scan-outcome', /is shared with you; you are a guest/);
    await shot(bob, '02b-bob-scanned');
    await openDevice(bob, 'sim-0001');
    await bob.click('#lamp-off');
    await waitText(bob, '#reply', /the device replied: .*on: no/);
    await shot(bob, '02c-bob-lamp-off');
    await alice.waitForSelector('#members li[data-user-id="bob"][data-role="guest"]', {timeout: 10000});
    await waitText(alice, '#lamp-state', /The lamp is off/); // bob's command, seen live
    await shot(alice, '02d-alice-members');
  });

  await step('3. bob may not share: the page explains NOT_OWNER', async () => {
    await bob.click('#share-qr');
    await waitText(bob, '#share .outcome.error', /Only the owner may share this device — ask alice.*NOT_OWNER/);
    await shot(bob, '03-bob-not-owner');
  });

  await step('4. alice removes bob; his open page drops the device live', async () => {
    const remove = await alice.$('#members li[data-user-id="bob"] button');
    await pressTwice(alice, remove);
    await waitText(alice, '#members', /^(?!.*bob)/);
    await waitText(bob, '#device-notice', /no longer yours.*removed you/);
    const disabled = await bob.$eval('#lamp-on', (b) => b.disabled);
    assert.equal(disabled, true, 'controls of a device that is gone must be disabled');
    await shot(bob, '04-bob-removed');
    await bob.evaluate(() => (location.hash = '#/devices'));
    await waitText(bob, '#device-list', /No devices yet/);
  });

  await step('invitation by account: bob accepts, gets the lamp back', async () => {
    await alice.type('#share-guest', 'bob');
    await alice.click('#share-account');
    await waitText(alice, '#share .outcome.ok', /bob is invited/);
    await bob.waitForSelector('nav .badge', {timeout: 10000});
    await bob.evaluate(() => (location.hash = '#/invitations'));
    await bob.waitForSelector('#invites-to-me li.invite button.primary');
    await shot(bob, '04b-bob-invitation');
    await bob.click('#invites-to-me li.invite button.primary');
    await waitText(bob, '.view .outcome.ok', /now shared with you/);
    await openDevice(bob, 'sim-0001');
    await alice.waitForSelector('#members li[data-user-id="bob"]', {timeout: 10000});
  });

  await step('5. the lamp is stopped: both pages show it offline within offline_after', async () => {
    await bob.waitForSelector('.device [data-online="true"]');
    const t0 = Date.now();
    lamps.send('silence sim-0001');
    const limit = stack.offlineAfterMs + 3000; // offline_after + the presence check period + slack
    await Promise.all([
      alice.waitForSelector('.titlebar [data-online="false"]', {timeout: limit}),
      bob.waitForSelector('.titlebar [data-online="false"]', {timeout: limit}),
    ]);
    figures.offlineSeenAfterMs = Date.now() - t0;
    await alice.click('#lamp-on');
    await waitText(alice, '#reply', /failed: The device is offline.*OFFLINE/);
    await shot(alice, '05-offline');
  });

  let admin;
  await step('6. the installer adds a user and reads the audit rows of steps 1-4', async () => {
    admin = await newUser('installer');
    await login(admin, 'installer');
    await loggedIn(admin);
    await admin.waitForSelector('nav a[href="#/admin"]');
    await admin.evaluate(() => (location.hash = '#/admin'));
    await admin.type('#admin-new-user', 'dave');
    await admin.click('#admin-add-user');
    await admin.waitForSelector('#admin-new-password');
    const pw = await text(admin, '#admin-new-password');
    assert.match(pw, /^[A-Za-z0-9]{16}$/);
    await admin.waitForSelector('#admin-users li[data-user-id="dave"]');
    assert.match(stack.ctl('user', 'list'), /dave/);
    await admin.waitForSelector('#admin-plugins li[data-plugin="web"]');
    await admin.type('#audit-device', 'sim-0001');
    await admin.click('#audit-go');
    await waitText(admin, '#audit-rows', /shareUse/);
    const readRows = () => admin.$$eval('#audit-rows li', (lis) => lis.map((li) => ({...li.dataset})));
    const rows = await readRows();
    const has = (actor, action, subject) => rows.some((r) => r.actor === actor && r.action === action && (!subject || r.subject === subject));
    assert.ok(has('alice', 'bind', 'alice'), 'audit: alice bound sim-0001 (step 1)');
    assert.ok(has('alice', 'shareCreate'), 'audit: alice created the QR share (step 2)');
    assert.ok(has('bob', 'shareUse'), 'audit: bob scanned it (step 2)');
    assert.ok(rows.some((r) => r.action === 'unbind' && r.subject === 'bob'), 'audit: bob removed (step 4)');
    assert.ok(rows.every((r) => r.deviceId === 'sim-0001'), 'audit device filter');
    await admin.type('#audit-user', 'bob');
    await admin.click('#audit-go');
    await waitText(admin, '#audit-outcome.ok', /entr.*matching/);
    const bobRows = await readRows();
    assert.ok(bobRows.length > 0 && bobRows.every((r) => r.actor === 'bob' || r.subject === 'bob'), 'audit user filter');
    await admin.waitForSelector('#pair-link');
    assert.match(await text(admin, '#pair-link'), /^hearth:\/\/pair\?host=.*ca=sha256:/);
    await admin.evaluate(() => scrollTo(0, 0));
    await shot(admin, '06-admin');
    await admin.evaluate(() => document.querySelector('#audit-device').scrollIntoView());
    await shot(admin, '06b-admin-audit');
  });

  await step('7. the broker restarts: pages say reconnecting… and recover without a reload', async () => {
    // While the broker is down the front door cannot pipe a new WebSocket anywhere.
    allowed = [/WebSocket connection to 'wss:\/\/127\.0\.0\.1:\d+\/mqtt' failed/];
    const marker = await alice.evaluate(() => (window.__sameDocument = Math.random()));
    await stack.stop('broker');
    await Promise.all([alice, bob].map((p) => p.waitForSelector('#conn[data-state="reconnecting"]', {timeout: 20000})));
    await shot(alice, '07a-reconnecting');
    await stack.startBroker();
    await Promise.all([alice, bob].map((p) => p.waitForSelector('#conn[data-state="connected"]', {timeout: 30000})));
    assert.equal(await alice.evaluate(() => window.__sameDocument), marker, 'recovered without a reload');
    allowed = [];
    lamps.send('wake sim-0001');
    await alice.waitForSelector('.titlebar [data-online="true"]', {timeout: 15000});
    await alice.click('#lamp-on');
    await waitText(alice, '#reply', /the device replied: .*on: yes/, 20000);
    await bob.waitForSelector('.titlebar [data-online="true"]', {timeout: 15000});
    await shot(alice, '07b-recovered');
  });

  await step('cooperation: bob asks alice\'s browser for access, she agrees, his command is answered', async () => {
    await alice.evaluate(() => (location.hash = '#/terminals'));
    await waitText(alice, '#my-terminals', /this browser/);
    const openId = await text(alice, '#my-openid');
    assert.match(openId, /^[A-Za-z0-9._:-]{8,}$/);
    await bob.evaluate(() => (location.hash = '#/terminals'));
    await bob.type('#coop-openid', openId);
    await bob.type('#coop-perms', 'ping');
    await bob.click('#coop-ask');
    await waitText(bob, '#coop-ask-outcome', /waiting for the answer/);
    await alice.waitForSelector('#access-requests li button.primary', {timeout: 10000});
    await shot(alice, '07c-access-request');
    await clickFresh(alice, '#access-requests li button.primary');
    await waitText(bob, '#coop-ask-outcome', /agreed/);
    await bob.waitForSelector('#grants-received li form button', {timeout: 10000});
    await clickFresh(bob, '#grants-received li form button');
    await bob.waitForSelector('#commands-sent li[data-command-id]');
    await alice.waitForSelector('#commands-received li button:not([disabled])', {timeout: 10000});
    await clickFresh(alice, '#commands-received li button');
    await bob.waitForSelector('#commands-sent li[data-state="replied"]', {timeout: 10000});
    await shot(bob, '07d-command-replied');
    await alice.waitForSelector('#grants-given li button');
    await pressTwice(alice, await alice.$('#grants-given li button'));
    await waitText(alice, '#grants-given', /granted no terminal/);
  });

  await step('bad input: a device named with HTML is shown as text and runs nothing', async () => {
    await alice.evaluate(() => (location.hash = '#/add'));
    await alice.type('#provision-device', 'xss-0001');
    await alice.click('#provision-begin');
    await alice.waitForSelector('#token-value');
    xss.send(`provision xss-0001 ${await text(alice, '#token-value')}`);
    await waitText(alice, '.outcome.ok', /is added/);
    await alice.evaluate(() => (location.hash = '#/devices'));
    await alice.waitForSelector('#device-list li[data-device-id="xss-0001"]');
    const name = await alice.$eval('#device-list li[data-device-id="xss-0001"] .name', (e) => e.textContent);
    assert.equal(name, XSS_NAME);
    assert.equal(await alice.$$eval('main img', (l) => l.length), 0, 'no <img> may come out of a name');
    await openDevice(alice, 'xss-0001');
    assert.equal(await text(alice, '#device-title'), XSS_NAME);
    await sleep(500);
    await shot(alice, '08-xss-name');
  });

  let carol;
  await step('bad input: share keys that are garbage, used and expired', async () => {
    carol = await newUser('carol');
    await login(carol, 'carol');
    await loggedIn(carol);
    await carol.evaluate(() => (location.hash = '#/scan'));
    const scan = async (key, re) => {
      await carol.$eval('#scan-key', (el) => (el.value = ''));
      await carol.type('#scan-key', key);
      await carol.click('#scan-submit');
      await waitText(carol, '#scan-outcome.error', re);
    };
    await scan('this-is-not-a-key', /not a valid share key.*TOKEN_INVALID/);
    await scan(bobKey, /already used.*TOKEN_USED/); // spent by bob in step 2
    await shot(carol, '09-bad-key');
    // The first key of step 2 expires qr_ttl (1 min) after it was made.
    await sleep(Math.max(0, firstKeyAt + 61000 - Date.now()));
    await scan(firstKey, /expired.*TOKEN_EXPIRED/);
  });

  await step('bad input: 500 devices render within 100 ms and scroll', async () => {
    const setup = await nodeClient('carol');
    const bulk = stack.devsim('bulk', ['--count', '500', '--prefix', 'bulk-', '--period', '3s']);
    await waitFor(() => (stack.ctl('--json', 'devices').match(/"bulk-\d+"/g) || []).length >= 500, {what: '500 bulk lamps in the inventory', timeout: 60000, interval: 1000});
    for (let i = 1; i <= 500; i++) {
      const id = 'bulk-' + String(i).padStart(4, '0');
      const {token} = await setup.things.provisionBegin({deviceId: id});
      bulk.send(`provision ${id} ${token}`);
    }
    await waitFor(async () => (await setup.things.getBoundDevices()).length >= 500, {what: 'carol bound to 500 lamps', timeout: 120000, interval: 1000});
    await setup.coop.logout();
    // Each run: from leaving another page for the list until the frame that shows it (rAF, then
    // the task after it) — the list goes in by screenfuls, so also until all 500 rows are in.
    // Best of 7, since the other processes on a busy machine only ever add to it; all are printed.
    const runs = [];
    const full = [];
    for (let i = 0; i < 7; i++) {
      await carol.evaluate(() => (location.hash = '#/add'));
      await carol.waitForSelector('#provision-begin');
      const [first, all] = await carol.evaluate(async () => {
        const frame = () => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
        const until = (cond) => new Promise((r) => {
          const check = () => (cond() ? r() : requestAnimationFrame(check));
          check();
        });
        // The app's own hashchange listener (registered first) renders the view; this one runs
        // right after it.
        const routed = new Promise((r) => addEventListener('hashchange', r, {once: true}));
        const t0 = performance.now();
        location.hash = '#/devices';
        await routed;
        await until(() => document.querySelector('#device-list li.device'));
        await frame();
        const first = performance.now() - t0;
        await until(() => document.querySelector('#device-list')?.dataset.complete === 'true');
        await frame();
        return [first, performance.now() - t0];
      });
      runs.push(first);
      full.push(all);
    }
    // The same navigation to a small view, for scale: what the busy machine costs by itself.
    const base = [];
    for (let i = 0; i < 7; i++) {
      await carol.evaluate(() => (location.hash = '#/add'));
      await carol.waitForSelector('#provision-begin');
      base.push(await carol.evaluate(async () => {
        const routed = new Promise((r) => addEventListener('hashchange', r, {once: true}));
        const t0 = performance.now();
        location.hash = '#/scan';
        await routed;
        await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
        return performance.now() - t0;
      }));
    }
    figures.smallViewMs = base.map(Math.round);
    console.log(`     for scale, the Scan view: on screen after ${base.map((r) => r.toFixed(0)).join(', ')} ms`);
    await carol.evaluate(() => (location.hash = '#/devices'));
    await carol.waitForSelector('#device-list[data-complete="true"]');
    assert.equal(await carol.$$eval('#device-list li.device', (l) => l.length), 500);
    const ms = Math.min(...runs);
    figures.render500FirstScreenMs = runs.map(Math.round);
    figures.render500AllRowsMs = full.map(Math.round);
    console.log(`     500 devices: on screen after ${runs.map((r) => r.toFixed(0)).join(', ')} ms; all rows in after ${full.map((r) => r.toFixed(0)).join(', ')} ms`);
    assert.ok(ms <= 100, `the list of 500 devices took at best ${ms.toFixed(1)} ms to show (limit 100 ms)`);
    await carol.evaluate(() => document.querySelector('#device-list li:last-child').scrollIntoView());
    const lastVisible = await carol.$eval('#device-list li:last-child', (li) => li.getBoundingClientRect().bottom <= innerHeight + 1);
    assert.ok(lastVisible, 'the end of the list must scroll into view');
    await shot(carol, '10-500-devices');
    await stack.stop('bulk');
  });

  await step('logout: offline first, then the login form; a reload stays logged out', async () => {
    await alice.click('#logout');
    await alice.waitForSelector('#login-user');
    const users = JSON.parse(stack.ctl('--json', 'user', 'list')).users;
    assert.equal(users.find((u) => u.userId === 'alice').online, 0, 'alice\'s browser said offline before leaving');
    await alice.reload({waitUntil: 'load'});
    await alice.waitForSelector('#login-user');
  });

  await step('bad input: wrong passwords until the front door locks the address out', async () => {
    // The door closes a locked-out address's connections before TLS: the browser logs the
    // failed WebSocket, which is what this step provokes.
    allowed = [/WebSocket connection to 'wss:\/\/127\.0\.0\.1:\d+\/mqtt' failed/];
    for (let i = 0; i < 6; i++) {
      await login(alice, 'alice', 'wrong-' + i);
      await alice.waitForFunction(() => !document.querySelector('#login-submit').disabled && /\S/.test(document.querySelector('#login-error').textContent), {timeout: 20000});
    }
    await waitText(alice, '#login-error', /refuses this address for 15 minutes after too many failed logins/);
    // ... and it was the door's lockout (its counters in the hub status), not a dead hub.
    const find = (o, k) => (o && typeof o === 'object' ? (k in o ? o[k] : Object.values(o).map((v) => find(v, k)).find((v) => v !== undefined)) : undefined);
    await waitFor(() => find(JSON.parse(stack.ctl('--json', 'status')), 'refusedLockedOut') >= 1, {what: 'the door to count a refused locked-out connection'});
    assert.ok(find(JSON.parse(stack.ctl('--json', 'status')), 'lockouts') >= 1, 'the door locked the address out');
    await shot(alice, '11-locked-out');
    allowed = [];
  });
}

let failed = false;
try {
  await main();
} catch (e) {
  failed = true;
  console.error('FAILED:', e.stack || e);
  for (const [who, page] of Object.entries(pages)) {
    await page.screenshot({path: join(SHOTS, `FAILED-${who}.png`), fullPage: true}).catch(() => {});
  }
  console.error('--- hearthd log (tail) ---\n' + stack.tail('hearthd', 60));
} finally {
  await browser?.close().catch(() => {});
  await stack.close();
}
console.log(`screenshots: ${SHOTS}`);
console.log('figures: ' + JSON.stringify(figures));
console.log(`${results.length} passed, ${failed ? 1 : 0} failed`);
process.exit(failed ? 1 : 0);
