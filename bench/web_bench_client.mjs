// The request round trip of bench/web_bench.py with mqtt.js (the MQTT library of hearth-client
// and the web app), over mqtt:// straight to the broker, mqtts:// and wss:// through the door,
// interleaved. Native TLS (Node's OpenSSL) and WebSocket framing in JIT-compiled JS, like the
// clients the door serves; the harness's paho does both in Python.
//   node bench/web_bench_client.mjs <config.json>  -> prints {path: [ms, ...]} as JSON
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', 'clients', 'js', 'package.json'));
const mqtt = require('mqtt');

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const ca = readFileSync(cfg.ca);

function open(name, url, tls) {
  const clientId = 'bench-js-' + name;
  const base = `hearth/v1/u/${cfg.user}/${clientId}`;
  const c = mqtt.connect(url, {
    clientId, username: cfg.user, password: cfg.password, protocolVersion: 5,
    reconnectPeriod: 0, ...(tls ? { ca, servername: 'localhost' } : {}),
  });
  const waiting = new Map();
  c.on('message', (topic, payload) => {
    const body = JSON.parse(payload.toString());
    const done = waiting.get(body.id);
    if (done) { waiting.delete(body.id); done(body); }
  });
  return new Promise((resolve, reject) => {
    c.once('error', reject);
    c.once('connect', () => {
      c.stream.setNoDelay?.(true);
      c.stream.socket?.setNoDelay?.(true);
      c.subscribe(base + '/res/#', { qos: 1 }, (err) => {
        if (err) return reject(err);
        let n = 0;
        const request = () => new Promise((res, rej) => {
          const id = `${name}-${n++}`;
          const start = process.hrtime.bigint();
          waiting.set(id, (body) => {
            if (!body.ok) return rej(new Error('request failed: ' + JSON.stringify(body)));
            res(Number(process.hrtime.bigint() - start) / 1e6);
          });
          c.publish(base + '/req/getBoundDevices', JSON.stringify({ id }), { qos: 1 });
        });
        resolve({ client: c, request });
      });
    });
  });
}

const paths = {
  direct: await open('direct', `mqtt://127.0.0.1:${cfg.brokerPort}`, false),
  mqtts: await open('mqtts', `mqtts://localhost:${cfg.mqttsPort}`, true),
  wss: await open('wss', `wss://localhost:${cfg.httpsPort}/mqtt`, true),
};
const names = Object.keys(paths);
for (const name of names) for (let i = 0; i < 50; i++) await paths[name].request();
const times = Object.fromEntries(names.map((n) => [n, []]));
for (let i = 0; i < cfg.requests; i++) {
  const k = i % names.length;
  for (const name of [...names.slice(k), ...names.slice(0, k)]) {
    times[name].push(await paths[name].request());
  }
}
for (const p of Object.values(paths)) p.client.end(true);
process.stdout.write(JSON.stringify(times) + '\n');
