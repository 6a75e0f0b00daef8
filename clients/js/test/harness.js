// Test harness for hearth-client: a real mosquitto (tools/hearth-broker: Dynamic Security,
// free port, private temp dir) and a real hearthd, as tests/integration/harness.py starts
// them. Everything started here is stopped by close(), also when a test fails (use
// `t.after(() => hub.close())`), and on process exit.

import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, existsSync, symlinkSync, mkdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
export const SOURCE_DIR = process.env.HEARTH_SOURCE_DIR || path.resolve(here, '..', '..', '..');
export const BUILD_DIR = process.env.HEARTH_BUILD_DIR || path.join(SOURCE_DIR, 'build');
export const HEARTHD = path.join(BUILD_DIR, 'core', 'hearthd');
export const HEARTHCTL = path.join(BUILD_DIR, 'tools', 'hearthctl');
const PLUGIN_DIRS = [path.join(BUILD_DIR, 'plugins'), path.join(BUILD_DIR, 'tests', 'plugins')];
const execFileP = promisify(execFile);

const live = new Set(); // child processes to kill on exit
process.on('exit', () => {
  for (const p of live) killGroup(p, 'SIGKILL');
});

function killGroup(proc, signal) {
  try {
    process.kill(-proc.pid, signal);
  } catch {
    try {
      proc.kill(signal);
    } catch {
      // already gone
    }
  }
}

/** SIGKILLs a child's process group and waits until it is gone. */
async function kill9(p) {
  if (!p) return;
  const gone = new Promise((r) => p.once('exit', r));
  killGroup(p, 'SIGKILL');
  if (p.exitCode === null && p.signalCode === null) await gone;
  live.delete(p);
}

/** Why the real hub cannot run here, or null. Tests call t.skip(reason) with it. */
export function missing(plugins = ['coop_relay']) {
  if (!existsSync(HEARTHD)) return `hearthd is not built (${HEARTHD})`;
  if (!existsSync(HEARTHCTL)) return `hearthctl is not built (${HEARTHCTL})`;
  for (const name of plugins) {
    if (!PLUGIN_DIRS.some((d) => existsSync(path.join(d, `${name}.so`)))) return `plugin ${name}.so is not built`;
  }
  return null;
}

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value (or throws after timeoutMs). */
export async function waitFor(fn, { timeout = 10000, interval = 25, what = 'condition' } = {}) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(interval);
  }
}

function accepts(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export class Broker {
  constructor(root, port) {
    this.dir = path.join(root, 'broker');
    this.port = port;
    this.proc = null;
  }

  async start() {
    this.proc = spawn(path.join(SOURCE_DIR, 'tools', 'hearth-broker'), [this.dir, String(this.port), 'hearthd'], {
      stdio: 'ignore',
      detached: true,
    });
    live.add(this.proc);
    await waitFor(() => accepts(this.port), { timeout: 15000, what: `mosquitto on ${this.port}` });
  }

  get password() {
    return readFileSync(path.join(this.dir, 'broker.pass'), 'utf8').trim();
  }

  async kill() {
    const p = this.proc;
    this.proc = null;
    await kill9(p);
  }
}

export class Hub {
  /**
   * @param {{plugins?: string[], pluginConfig?: object}} [opts]
   */
  constructor({ plugins = ['coop_relay'], pluginConfig = {} } = {}) {
    this.root = mkdtempSync(path.join(os.tmpdir(), 'hearth-js-'));
    this.plugins = plugins;
    this.pluginConfig = pluginConfig;
    this.stateDir = path.join(this.root, 'state');
    this.pluginDir = path.join(this.root, 'plugins');
    this.configPath = path.join(this.root, 'hearth.yaml');
    this.logPath = path.join(this.root, 'hearthd.log');
    this.proc = null;
    this.passwords = {};
  }

  async open() {
    mkdirSync(this.pluginDir);
    for (const name of this.plugins) {
      const dir = PLUGIN_DIRS.find((d) => existsSync(path.join(d, `${name}.so`)));
      if (!dir) throw new Error(`plugin ${name}.so is not built`);
      symlinkSync(path.join(dir, `${name}.so`), path.join(this.pluginDir, `${name}.so`));
    }
    this.broker = new Broker(this.root, await freePort());
    await this.broker.start();
    const lines = [
      'hub:',
      `  state_dir: ${JSON.stringify(this.stateDir)}`,
      `  plugin_dir: ${JSON.stringify(this.pluginDir)}`,
      '  log_level: debug',
      'broker:',
      `  port: ${this.broker.port}`,
      `  password_file: ${JSON.stringify(path.join(this.broker.dir, 'broker.pass'))}`,
      '  reconnect_min: 1s',
      '  reconnect_max: 2s',
      `plugins: ${JSON.stringify(this.pluginConfig)}`,
    ];
    writeFileSync(this.configPath, lines.join('\n') + '\n');
    await this.start();
    return this;
  }

  get url() {
    return `mqtt://127.0.0.1:${this.broker.port}`;
  }

  async start() {
    const log = (await import('node:fs')).openSync(this.logPath, 'a');
    this.proc = spawn(HEARTHD, ['--config', this.configPath], { stdio: ['ignore', log, log], detached: true });
    live.add(this.proc);
    await waitFor(async () => {
      if (this.proc.exitCode !== null) throw new Error(`hearthd exited ${this.proc.exitCode}:\n${this.log()}`);
      return (await this.ctl(['status'], { check: false, timeout: 2 })).code === 0;
    }, { timeout: 20000, interval: 100, what: 'hearthd to answer' });
  }

  log() {
    try {
      return readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  async kill9() {
    const p = this.proc;
    this.proc = null;
    await kill9(p);
  }

  async ctl(args, { check = true, timeout = 10 } = {}) {
    try {
      const r = await execFileP(HEARTHCTL, ['--config', this.configPath, '--timeout', String(timeout), ...args], {
        timeout: (timeout + 10) * 1000,
      });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (e) {
      if (check) throw new Error(`hearthctl ${args.join(' ')} failed: ${e.stdout || ''} ${e.stderr || e.message}`);
      return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout || '', stderr: e.stderr || '' };
    }
  }

  /** Adds a broker account; returns its password. */
  async addUser(userId, password = `pw-${Math.random().toString(16).slice(2, 14)}`) {
    await this.ctl(['user', 'add', userId, '--password', password]);
    this.passwords[userId] = password;
    return password;
  }

  /** An admin call through hearthctl; returns the result object (throws on an error). */
  async admin(method, params = {}) {
    const r = await this.ctl(['--json', 'call', method, JSON.stringify(params)]);
    return JSON.parse(r.stdout);
  }

  async close() {
    await this.kill9();
    if (this.broker) await this.broker.kill();
    if (process.env.HEARTH_KEEP_TMP) console.log('kept', this.root);
    else rmSync(this.root, { recursive: true, force: true });
  }
}

/** Starts a Node child process running `file` with `args`; collects its JSON-lines output. */
export function child(file, args = [], env = {}) {
  const proc = spawn(process.execPath, [file, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
    detached: true,
  });
  live.add(proc);
  const lines = [];
  let buf = '';
  let err = '';
  proc.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        lines.push(JSON.parse(line));
      } catch {
        lines.push({ text: line });
      }
    }
  });
  proc.stderr.on('data', (d) => {
    err += d;
  });
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  exited.then(() => live.delete(proc));
  return {
    proc,
    lines,
    exited,
    stderr: () => err,
    send: (obj) => proc.stdin.write(JSON.stringify(obj) + '\n'),
    kill: (sig = 'SIGKILL') => killGroup(proc, sig),
    /** Waits for an output line matching `pred`. */
    waitLine: (pred, opts = {}) =>
      waitFor(() => lines.find(pred), { what: opts.what || 'a line from the child', timeout: opts.timeout || 15000 }).catch((e) => {
        throw new Error(`${e.message}\nchild stderr:\n${err}\nlines: ${JSON.stringify(lines).slice(0, 2000)}`);
      }),
  };
}
