// hearth-client overhead: the seed-flow command round trip (sendCommand -> the target's
// receiveCommand -> replyCommand -> the sender's onResponse) through the library, against the
// same round trip done with raw mqtt.js publishes of the same requests, on the same hub and
// broker in the same run, interleaved one round trip at a time so that noise hits both alike.
// Then commands/s sustained with 32 in flight (library and raw).
//
//   node bench/js_client_bench.mjs [--rounds 1000] [--commands 3000] [--window 32] [--json out.json]
//
// Prints p50/p99 of both, the p50 ratio (target <= 1.05) and commands/s. Needs a build in
// build/ (or HEARTH_BUILD_DIR) and `npm ci` in clients/js.

import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
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
const ROUNDS = Number(args.rounds || 1000);
const COMMANDS = Number(args.commands || 3000);
const WINDOW = Number(args.window || 32);

const why = missing();
if (why) {
  console.log(`skipped: ${why}`);
  process.exit(0);
}

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

  // --- raw mqtt.js: the same requests, published by hand (presence, hello, ids, matching)
  const raw = async (id) => {
    const base = `hearth/v1/u/alice/${id}`;
    const c = await mqtt.connectAsync(url, {
      protocolVersion: 5,
      clientId: id,
      username: 'alice',
      password: 'alice-secret-1',
      will: { topic: `${base}/presence`, payload: 'offline', qos: 1, retain: true },
    });
    c.stream.setNoDelay(true); // as the library does (SPEC §6), or the baseline measures Nagle
    await c.subscribeAsync([`${base}/res/#`, `${base}/evt/#`], { qos: 1 });
    await c.publishAsync(`${base}/presence`, 'online', { qos: 1, retain: true });
    const hello = new Promise((resolve) => c.once('message', resolve));
    await c.publishAsync(`${base}/req/hello`, JSON.stringify({ id: 'h', params: { appId: 'bench' } }), { qos: 1 });
    await hello;
    return { c, base };
  };
  const rp = await raw('raw-phone');
  const rt = await raw('raw-tv');
  const rawTo = { appId: 'bench', userId: 'alice', clientIdentify: 'raw-tv' };
  let rid = 0;
  rt.c.on('message', (topic, payload) => {
    if (!topic.endsWith('/evt/command')) return;
    const d = JSON.parse(payload).data;
    rt.c.publish(`${rt.base}/req/replyCommand`, JSON.stringify({ id: `r${++rid}`, params: { commandId: d.commandId, commandParams: d.commandParams, to: d.from } }), { qos: 1 });
  });
  const waiting = new Map(); // seq -> resolve
  rp.c.on('message', (topic, payload) => {
    if (!topic.endsWith('/evt/commandResponse')) return;
    const d = JSON.parse(payload).data;
    const done = waiting.get(d.commandParams.seq);
    if (done) {
      waiting.delete(d.commandParams.seq);
      done();
    }
  });
  // corr: the same request with MQTT 5 Response Topic + Correlation Data, as the library sends
  // it: the same bytes on the wire, so the difference to the library is the library itself.
  const rawRound = (seq, corr = false) =>
    new Promise((resolve) => {
      waiting.set(seq, resolve);
      const props = corr ? { properties: { responseTopic: `${rp.base}/res/sendCommand`, correlationData: Buffer.from(`s${seq}`) } } : {};
      rp.c.publish(`${rp.base}/req/sendCommand`, JSON.stringify({ id: `s${seq}`, params: { commandType: 'step', to: rawTo, commandParams: { seq } } }), { qos: 1, ...props });
    });
  const rawCorrRound = (seq) => rawRound(seq, true);

  const time = async (fn) => {
    const t0 = process.hrtime.bigint();
    await fn();
    return Number(process.hrtime.bigint() - t0) / 1e6;
  };
  let seq = 0;
  for (let i = 0; i < 50; i++) {
    await libRound(++seq);
    await rawRound(++seq);
  }
  const libMs = [];
  const rawMs = [];
  const corrMs = [];
  const kinds = [
    [libMs, libRound],
    [rawMs, rawRound],
    [corrMs, rawCorrRound],
  ];
  for (let i = 0; i < ROUNDS; i++) {
    // Rotate which goes first, so that none always runs right after another.
    for (let k = 0; k < 3; k++) {
      const [into, round] = kinds[(i + k) % 3];
      into.push(await time(() => round(++seq)));
    }
  }
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
  const libRate = await windowed(libRound);
  const rawRate = await windowed(rawRound);
  const corrRate = await windowed(rawCorrRound);

  const result = {
    rounds: ROUNDS,
    library: { p50: pct(libMs, 50), p99: pct(libMs, 99) },
    raw: { p50: pct(rawMs, 50), p99: pct(rawMs, 99) },
    rawWithCorrelation: { p50: pct(corrMs, 50), p99: pct(corrMs, 99) },
    window: WINDOW,
    commands: COMMANDS,
    libraryCommandsPerSec: libRate,
    rawCommandsPerSec: rawRate,
    rawWithCorrelationCommandsPerSec: corrRate,
  };
  result.p50Ratio = result.library.p50 / result.raw.p50;
  result.p99Ratio = result.library.p99 / result.raw.p99;
  result.p50RatioSameWire = result.library.p50 / result.rawWithCorrelation.p50;
  console.log(`seed-flow command round trip, ${ROUNDS} each, interleaved (ms):`);
  console.log(`  raw mqtt.js     p50 ${result.raw.p50.toFixed(3)}  p99 ${result.raw.p99.toFixed(3)}`);
  console.log(`  raw + MQTT 5 correlation (the library's wire format)  p50 ${result.rawWithCorrelation.p50.toFixed(3)}  p99 ${result.rawWithCorrelation.p99.toFixed(3)}`);
  console.log(`  hearth-client   p50 ${result.library.p50.toFixed(3)}  p99 ${result.library.p99.toFixed(3)}`);
  console.log(`  ratio to raw    p50 ${result.p50Ratio.toFixed(3)} (target <= 1.05)  p99 ${result.p99Ratio.toFixed(3)}`);
  console.log(`  ratio to raw + correlation  p50 ${result.p50RatioSameWire.toFixed(3)}`);
  console.log(`commands/s with ${WINDOW} in flight (${COMMANDS} commands): hearth-client ${libRate.toFixed(0)}, raw mqtt.js ${rawRate.toFixed(0)}, raw + correlation ${corrRate.toFixed(0)}`);
  if (args.json) writeFileSync(args.json, JSON.stringify(result, null, 1));

  await phone.coop.logout();
  await tv.coop.logout();
  await rp.c.endAsync();
  await rt.c.endAsync();
} finally {
  await hub.close();
}
