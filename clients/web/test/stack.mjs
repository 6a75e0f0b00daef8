// The real stack the browser test runs against: mosquitto (dynsec, tools/hearth-broker),
// hearthd with wifi_lan + web (the front door) + coop_relay, and hearth-devsim lamps on the
// loopback interface. Everything lives in a private temp dir and is stopped in close(), also
// when the test fails. Runs inside the private network namespace browser.test.mjs makes.

import {spawn, spawnSync} from 'node:child_process';
import {mkdtempSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync, openSync} from 'node:fs';
import {createServer, connect as tcpConnect} from 'node:net';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {randomBytes} from 'node:crypto';

export const SOURCE = process.env.HEARTH_SOURCE_DIR;
export const BUILD = process.env.HEARTH_BUILD_DIR || join(SOURCE, 'build');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const {port} = s.address();
      s.close(() => resolve(port));
    });
  });
}

function accepts(port) {
  return new Promise((resolve) => {
    const c = tcpConnect({host: '127.0.0.1', port}, () => (c.destroy(), resolve(true)));
    c.on('error', () => resolve(false));
  });
}

export async function waitFor(fn, {timeout = 15000, what = 'condition', interval = 100} = {}) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(interval);
  }
}

export const password = () => randomBytes(12).toString('base64url');

export class Stack {
  constructor({offlineAfter = '4s', qrTtl = '1m', maxFailedLogins = 5} = {}) {
    this.root = mkdtempSync(join(tmpdir(), 'hearth-web-'));
    this.procs = new Map(); // name -> ChildProcess
    this.offlineAfterMs = parseInt(offlineAfter, 10) * 1000;
    this.opts = {offlineAfter, qrTtl, maxFailedLogins};
    this.passwords = {};
  }

  log(name) {
    return openSync(join(this.root, name + '.log'), 'a');
  }

  spawn(name, cmd, args, {stdin = 'ignore'} = {}) {
    const fd = this.log(name);
    const p = spawn(cmd, args, {stdio: [stdin, fd, fd], detached: true});
    p.on('exit', () => this.procs.get(name) === p && this.procs.delete(name));
    this.procs.set(name, p);
    return p;
  }

  async stop(name, signal = 'SIGTERM') {
    const p = this.procs.get(name);
    if (!p || p.exitCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    try {
      process.kill(-p.pid, signal);
    } catch {
      return;
    }
    await Promise.race([gone, sleep(10000)]);
    if (p.exitCode === null && p.signalCode === null) {
      try {
        process.kill(-p.pid, 'SIGKILL');
      } catch {}
      await gone;
    }
  }

  async startBroker() {
    this.spawn('broker', join(SOURCE, 'tools', 'hearth-broker'), [join(this.root, 'broker'), String(this.brokerPort), 'hearthd']);
    await waitFor(() => accepts(this.brokerPort), {what: `mosquitto on ${this.brokerPort}`});
  }

  ctl(...args) {
    const r = spawnSync(join(BUILD, 'tools', 'hearthctl'), ['--config', this.config, '--timeout', '5', ...args], {encoding: 'utf8', timeout: 20000});
    if (r.status !== 0) throw new Error(`hearthctl ${args.join(' ')} failed (${r.status}): ${r.stdout} ${r.stderr}`);
    return r.stdout;
  }

  async start() {
    this.brokerPort = await freePort();
    this.httpsPort = await freePort();
    this.mqttsPort = await freePort();
    this.www = join(BUILD, 'web');
    if (!existsSync(join(this.www, 'index.html'))) throw new Error(`${this.www} is not built`);
    await this.startBroker();
    const pluginDir = join(this.root, 'plugins');
    mkdirSync(pluginDir);
    for (const p of ['wifi_lan', 'web', 'coop_relay']) {
      const so = join(BUILD, 'plugins', p + '.so');
      if (!existsSync(so)) throw new Error(`plugin ${p}.so is not built`);
      symlinkSync(so, join(pluginDir, p + '.so'));
    }
    const j = JSON.stringify;
    this.config = join(this.root, 'hearth.yaml');
    writeFileSync(
      this.config,
      [
        'hub:',
        `  state_dir: ${j(join(this.root, 'state'))}`,
        `  plugin_dir: ${j(pluginDir)}`,
        '  log_level: debug',
        'broker:',
        `  port: ${this.brokerPort}`,
        `  password_file: ${j(join(this.root, 'broker', 'broker.pass'))}`,
        '  reconnect_min: 200ms',
        '  reconnect_max: 1s',
        'admin:',
        '  users: [hearthd, installer]',
        'binding:',
        `  share: {qr_ttl: ${this.opts.qrTtl}}`,
        'plugins:',
        `  wifi_lan: ${j({interfaces: ['lo'], probe_period: '1s', offline_after: this.opts.offlineAfter})}`,
        `  web: ${j({
          listen: ['127.0.0.1'],
          https_port: this.httpsPort,
          mqtts_port: this.mqttsPort,
          www_dir: this.www,
          max_failed_logins: this.opts.maxFailedLogins,
          metrics_listen: '',
        })}`,
        '  coop_relay: {}',
        '',
      ].join('\n'),
    );
    this.spawn('hearthd', join(BUILD, 'core', 'hearthd'), ['--config', this.config]);
    await waitFor(() => {
      if (!this.procs.has('hearthd')) throw new Error('hearthd exited:\n' + this.tail('hearthd'));
      return spawnSync(join(BUILD, 'tools', 'hearthctl'), ['--config', this.config, '--timeout', '1', 'status']).status === 0;
    }, {what: 'hearthd to answer', timeout: 20000});
    await waitFor(() => accepts(this.httpsPort), {what: `the front door on ${this.httpsPort}`});
    this.url = `https://127.0.0.1:${this.httpsPort}/`;
  }

  tail(name, n = 40) {
    try {
      return readFileSync(join(this.root, name + '.log'), 'utf8').split('\n').slice(-n).join('\n');
    } catch {
      return '';
    }
  }

  addUser(userId, admin = false) {
    const pw = password();
    this.ctl('user', 'add', userId, '--password', pw);
    if (admin) {
      // hearthd grants its admin role to admin.users when it connects; a user made afterwards
      // gets it from the broker's dynsec directly (what an installer does once at set-up).
      const brokerPass = readFileSync(join(this.root, 'broker', 'broker.pass'), 'utf8').trim();
      const r = spawnSync('mosquitto_ctrl', ['-h', '127.0.0.1', '-p', String(this.brokerPort), '-u', 'hearthd', '-P', brokerPass,
        'dynsec', 'addClientRole', userId, 'hearth-admin'], {encoding: 'utf8'});
      if (r.status !== 0) throw new Error('mosquitto_ctrl addClientRole failed: ' + r.stdout + r.stderr);
    }
    this.passwords[userId] = pw;
    return pw;
  }

  /** A simulated lamp set: its stdin takes devsim commands (`provision DEV TOKEN`, ...). */
  devsim(name, args) {
    const p = this.spawn(name, join(BUILD, 'tools', 'hearth-devsim', 'hearth-devsim'), ['--interface', 'lo', '--period', '1s', ...args], {stdin: 'pipe'});
    return {
      send: (line) => p.stdin.write(line + '\n'),
      proc: p,
    };
  }

  async restartBroker() {
    await this.stop('broker');
    await sleep(300);
    await this.startBroker();
  }

  async close() {
    for (const name of [...this.procs.keys()].reverse()) await this.stop(name);
    if (process.env.HEARTH_KEEP_TMP) console.log('kept', this.root);
    else rmSync(this.root, {recursive: true, force: true});
  }
}
