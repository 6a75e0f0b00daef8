// hearth-client overhead: the seed-flow command round trip (sendCommand -> the target's
// receiveCommand -> replyCommand -> the sender's onResponse) through the library, against the
// same round trip by two terminals written by hand on raw mqtt.js that do the protocol work a
// correct app must (the same publishes and acknowledgements on the wire: see `raw` below), on
// the same hub and broker in the same run, in pairs of one each (alternating which goes first)
// so that noise hits both alike. Then commands/s sustained with 32 in flight (library and raw).
//
//   node bench/js_client_bench.mjs [--rounds 2000] [--commands 3000] [--window 32] [--json out.json]
//
// Prints p50/p99 of both, the p50 ratio (target <= 1.05), the median of the pairs' ratios,
// commands/s and the machine's load average around the run. Needs a build in
// build/ (or HEARTH_BUILD_DIR) and `npm ci` in clients/js.

import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const clientDir = path.join(here, '..', 'clients', 'js');
const mqtt = createRequire(path.join(clientDir, 'package.json'))('mqtt');
const { createClient } = await import(path.join(clientDir, 'src', 'index.js'));
const { Hub, missing } = await import(path.join(clientDir, 'test', 'harness.js'));

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const ROUNDS = Number(args.rounds || 2000);
const COMMANDS = Number(args.commands || 3000);
const WINDOW = Number(args.window || 32);

const why = missing();
if (why) {
  console.log(`skipped: ${why}`);
  process.exit(0);
}

const loadBefore = os.loadavg()[0];
const hub = await new Hub({ pluginConfig: { coop_relay: { delivery_window: 1000 } } }).open();
try {
  await hub.addUser('alice', 'alice-secret-1');
  const url = hub.url;

  // --- the library's two terminals
  const lib = async (id) => {
    const c = createClient();
    c.coop.initialize({ url, appId: 'bench', clientIdentify: id, requestTimeout: 30000 });
    await c.coop.login({ userId: 'alice', password: 'alice-secret-1' });
    return c;
  };
  const phone = await lib('lib-phone');
  const tv = await lib('lib-tv');
  tv.coop.receiveCommand((cmd) => {
    tv.coop.replyCommand({ commandId: cmd.commandId, commandParams: cmd.commandParams, to: cmd.from }).catch(() => {});
  });
  const libRound = (seq) =>
    new Promise((resolve, reject) => {
      phone.coop
        .sendCommand({ commandType: 'step', to: tv.self, commandParams: { seq }, onResponse: () => resolve() })
        .catch(reject);
    });

  // --- raw mqtt.js: a terminal written by hand that does the protocol work a correct app must
  // (SPEC §4a, §8), no less and no more: presence + Will, hello, request ids with MQTT 5 Response
  // Topic / Correlation Data, a timeout timer per request, answers matched by Correlation Data,
  // commandResponse matched by the commandId the sendCommand answer returned (events that come
  // before it are kept), repeated commandIds dropped (a bounded set), and replyCommand as the
  // confirmation of each command (a command answered at once needs no ackCommand). The same
  // publishes and acknowledgements on the wire as the library's.
  const raw = async (id) => {
    const base = `hearth/v1/u/alice/${id}`;
    const resPrefix = `${base}/res/`;
    const evtPrefix = `${base}/evt/`;
    const c = await mqtt.connectAsync(url, {
      protocolVersion: 5,
      clientId: id,
      username: 'alice',
      password: 'alice-secret-1',
      keepalive: 30,
      reconnectPeriod: 0,
      will: { topic: `${base}/presence`, payload: 'offline', qos: 1, retain: true },
    });
    c.stream.setNoDelay(true); // as the library does (SPEC §6), or the baseline measures Nagle
    const pending = new Map(); // request id -> {resolve, reject, timer}
    const events = {}; // event name -> handler(data)
    let n = 0;
    const request = (method, params, corr = true) =>
      new Promise((resolve, reject) => {
        const rid = `${id}-${++n}`;
        const timer = setTimeout(() => {
          pending.delete(rid);
          reject(new Error(`${method}: TIMEOUT`));
        }, 30000);
        pending.set(rid, { resolve, reject, timer });
        const props = corr ? { properties: { responseTopic: `${resPrefix}${method}`, correlationData: Buffer.from(rid) } } : {};
        c.publish(`${base}/req/${method}`, JSON.stringify({ id: rid, params }), { qos: 1, ...props });
      });
    c.on('message', (topic, payload, packet) => {
      if (topic.startsWith(resPrefix)) {
        const env = JSON.parse(payload);
        const corr = packet.properties && packet.properties.correlationData;
        const rid = corr ? corr.toString() : env.id;
        const p = pending.get(rid);
        if (!p) return;
        pending.delete(rid);
        clearTimeout(p.timer);
        if (env.ok) p.resolve(env.result);
        else p.reject(new Error(`${env.error.code}: ${env.error.message}`));
      } else if (topic.startsWith(evtPrefix)) {
        const handler = events[topic.slice(evtPrefix.length)];
        if (handler) handler(JSON.parse(payload).data);
      }
    });
    await c.subscribeAsync([`${resPrefix}#`, `${evtPrefix}#`], { qos: 1 });
    await c.publishAsync(`${base}/presence`, 'online', { qos: 1, retain: true });
    await request('hello', { appId: 'bench' });
    return { c, base, request, events };
  };
  const rp = await raw('raw-phone');
  const rt = await raw('raw-tv');
  const rawTo = { appId: 'bench', userId: 'alice', clientIdentify: 'raw-tv' };
  // The TV: each commandId handed over once; replyCommand confirms it.
  const handed = new Set();
  const handedRing = new Array(10000); // the oldest forgotten first, as the library's RecentIds
  let handedPos = 0;
  rt.events.command = (d) => {
    if (handed.has(d.commandId)) return;
    if (handedRing[handedPos] !== undefined) handed.delete(handedRing[handedPos]);
    handedRing[handedPos] = d.commandId;
    handedPos = (handedPos + 1) % handedRing.length;
    handed.add(d.commandId);
    rt.request('replyCommand', { commandId: d.commandId, commandParams: d.commandParams, to: d.from }, d.commandType !== 'bare').catch(() => {});
  };
  // The phone: commandResponse matched by commandId.
  const waiting = new Map(); // commandId -> resolve
  const early = new Map(); // commandId -> commandResponse that came before its sendCommand answer
  rp.events.commandResponse = (d) => {
    const done = waiting.get(d.commandId);
    if (!done) {
      if (early.size < 1000) early.set(d.commandId, d);
      return;
    }
    waiting.delete(d.commandId);
    done(d);
  };
  const rawRound = (seq) =>
    new Promise((resolve, reject) => {
      rp.request('sendCommand', { commandType: 'step', to: rawTo, commandParams: { seq } }).then((r) => {
        const d = early.get(r.commandId);
        if (d) {
          early.delete(r.commandId);
          resolve(d);
        } else {
          waiting.set(r.commandId, resolve);
        }
      }, reject);
    });
  // bare: less than a correct app — no MQTT 5 correlation on either side (the hub answers on
  // the default response topic); shown for what correlation costs, not a baseline.
  const bareRound = (seq) =>
    new Promise((resolve, reject) => {
      rp.request('sendCommand', { commandType: 'bare', to: rawTo, commandParams: { seq } }, false).then((r) => {
        const d = early.get(r.commandId);
        if (d) {
          early.delete(r.commandId);
          resolve(d);
        } else {
          waiting.set(r.commandId, resolve);
        }
      }, reject);
    });

  const time = async (fn) => {
    const t0 = process.hrtime.bigint();
    await fn();
    return Number(process.hrtime.bigint() - t0) / 1e6;
  };
  let seq = 0;
  for (let i = 0; i < 50; i++) {
    await libRound(++seq);
    await rawRound(++seq);
    await bareRound(++seq);
  }
  const libMs = [];
  const rawMs = [];
  const bareMs = [];
  // Pairs in alternating order (library then raw, raw then library): each runs after either
  // equally often, since a round's trailing traffic (the target's replyCommand answer, the
  // hub's commit) overlaps the next round.
  for (let i = 0; i < ROUNDS; i++) {
    if (i % 2 === 0) {
      libMs.push(await time(() => libRound(++seq)));
      rawMs.push(await time(() => rawRound(++seq)));
    } else {
      rawMs.push(await time(() => rawRound(++seq)));
      libMs.push(await time(() => libRound(++seq)));
    }
  }
  for (let i = 0; i < Math.min(ROUNDS, 300); i++) bareMs.push(await time(() => bareRound(++seq)));
  const pct = (a, p) => {
    const s = [...a].sort((x, y) => x - y);
    return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
  };
  const windowed = async (round) => {
    let next = 0;
    const t0 = process.hrtime.bigint();
    const worker = async () => {
      while (next < COMMANDS) {
        next += 1;
        await round(++seq);
      }
    };
    await Promise.all(Array.from({ length: WINDOW }, worker));
    return COMMANDS / (Number(process.hrtime.bigint() - t0) / 1e9);
  };
  // Throughput alternates too: library, raw, library, raw (COMMANDS each time).
  const rates = { lib: [], raw: [] };
  for (let i = 0; i < 2; i++) {
    rates.lib.push(await windowed(libRound));
    rates.raw.push(await windowed(rawRound));
  }
  const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length;
  const libRate = mean(rates.lib);
  const rawRate = mean(rates.raw);

  const result = {
    rounds: ROUNDS,
    library: { p50: pct(libMs, 50), p99: pct(libMs, 99) },
    raw: { p50: pct(rawMs, 50), p99: pct(rawMs, 99) },
    bare: { p50: pct(bareMs, 50), p99: pct(bareMs, 99) },
    window: WINDOW,
    commands: COMMANDS,
    libraryCommandsPerSec: libRate,
    rawCommandsPerSec: rawRate,
  };
  result.p50Ratio = result.library.p50 / result.raw.p50;
  // The median of each pair's own ratio: the two of a pair ran back to back, under the same load.
  result.pairedRatioMedian = pct(libMs.map((x, i) => x / rawMs[i]), 50);
  result.p99Ratio = result.library.p99 / result.raw.p99;
  result.rateRatio = libRate / rawRate;
  // The machine's 1-minute load average before and after: the ratios grow with the load (the
  // library's CPU competes with the hub and the broker for the same cores).
  result.loadAverage = [loadBefore, os.loadavg()[0]];
  console.log(`seed-flow command round trip, ${ROUNDS} each, interleaved (ms; load average ${result.loadAverage.map((x) => x.toFixed(2)).join(' -> ')}):`);
  console.log(`  raw mqtt.js (a correct app by hand)  p50 ${result.raw.p50.toFixed(3)}  p99 ${result.raw.p99.toFixed(3)}`);
  console.log(`  hearth-client                        p50 ${result.library.p50.toFixed(3)}  p99 ${result.library.p99.toFixed(3)}`);
  console.log(`  ratio                                p50 ${result.p50Ratio.toFixed(3)} (target <= 1.05)  p99 ${result.p99Ratio.toFixed(3)}`);
  console.log(`  median of the pairs' own ratios        ${result.pairedRatioMedian.toFixed(3)}`);
  console.log(`  (bare publishes, no MQTT 5 correlation: less than a correct app; ${bareMs.length} after the pairs)  p50 ${result.bare.p50.toFixed(3)}`);
  console.log(`commands/s with ${WINDOW} in flight (${COMMANDS} commands, twice each, alternating): hearth-client ${libRate.toFixed(0)}, raw ${rawRate.toFixed(0)} (ratio ${result.rateRatio.toFixed(3)})`);
  if (args.json) writeFileSync(args.json, JSON.stringify(result, null, 1));

  await phone.coop.logout();
  await tv.coop.logout();
  await rp.c.endAsync();
  await rt.c.endAsync();
} finally {
  await hub.close();
}
