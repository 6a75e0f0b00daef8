// Helpers shared by the tests: clients logged in to a test hub, and a guard that fails a test
// file on any unhandled promise rejection (the library must never leave one behind).

import assert from 'node:assert/strict';
import { after, before } from 'node:test';

import { createClient } from '../src/index.js';
import { Hub, missing } from './harness.js';

const unhandled = [];
process.on('unhandledRejection', (reason) => {
  unhandled.push(reason);
});

/** Registers a file-level check that no promise rejection went unhandled. */
export function noUnhandledRejections() {
  after(async () => {
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(unhandled.map(String), [], 'unhandled promise rejections');
  });
}

/**
 * A client initialized for `hub` and logged in as `userId`.
 * @returns {Promise<import('../index.d.ts').HearthClient>}
 */
export async function loggedIn(hub, userId, clientIdentify, appId = 'app', extra = {}) {
  const c = createClient();
  c.coop.initialize({
    server: '127.0.0.1',
    serverPort: hub.broker.port,
    serverEnableSSL: false,
    appId,
    clientIdentify,
    deviceModel: `model-${clientIdentify}`,
    deviceName: `name ${clientIdentify}`,
    requestTimeout: 10000,
    ...extra,
  });
  await c.coop.login({ userId, password: hub.passwords[userId] });
  return c;
}

export function endpoint(c) {
  return c.self;
}

/** Asserts a promise rejects with `code`; returns the error. */
export async function rejectsWith(promise, code, what = '') {
  try {
    await promise;
  } catch (e) {
    assert.equal(e.code, code, `${what}: expected ${code}, got ${e.code}: ${e.message}`);
    assert.equal(typeof e.message, 'string');
    return e;
  }
  assert.fail(`${what}: expected ${code}, but it succeeded`);
}

/** Collects what a callback receives. */
export function recorder() {
  const got = [];
  const fn = (x) => got.push(x);
  fn.got = got;
  return fn;
}

/**
 * One hub for a test file, with the user alice: opened before the file's tests and closed
 * after them. `file.hub` is the hub; `file.opts` skips every test (with the reason) on a
 * machine that lacks what it needs.
 */
export function hubForFile() {
  const why = missing();
  const file = { hub: null, opts: why ? { skip: why } : {} };
  before(async () => {
    if (why) return;
    file.hub = await new Hub().open();
    await file.hub.addUser('alice', 'alice-secret-1');
  });
  after(async () => {
    if (file.hub) await file.hub.close();
  });
  return file;
}
