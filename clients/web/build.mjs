// Builds the web app into a directory of static files for the front door (plugins.web.www_dir):
//   node build.mjs --out BUILD/web
// esbuild bundles src/main.js (with hearth-client, mqtt and qrcode) into one ES module; jsqr is
// split into a chunk that loads only when the camera is used. Prints the gzipped size of what
// the first page load transfers (index.html, app.css, favicon, app.js and its static imports)
// and fails above the budget.

import {build} from 'esbuild';
import {gzipSync} from 'node:zlib';
import {copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {dirname, join, relative, resolve} from 'node:path';
import {fileURLToPath} from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const outArg = args.indexOf('--out');
const out = resolve(outArg >= 0 ? args[outArg + 1] : join(here, '..', '..', 'build', 'web'));
const BUDGET = 250 * 1024;

rmSync(out, {recursive: true, force: true});
mkdirSync(out, {recursive: true});

const result = await build({
  entryPoints: {app: join(here, 'src', 'main.js')},
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  minify: true,
  sourcemap: 'linked',
  legalComments: 'linked',
  outdir: out,
  chunkNames: 'chunks/[name]-[hash]',
  metafile: true,
  logLevel: 'warning',
  define: {'process.env.NODE_ENV': '"production"'},
  // hearth-client pins the hub CA with node:tls in Node only; a browser never loads those.
  external: ['node:*'],
});

for (const f of ['index.html', 'app.css', 'favicon.svg']) copyFileSync(join(here, 'src', f), join(out, f));

// What the first load fetches: the page, its stylesheet and icon, the entry and every chunk it
// imports statically (dynamic imports — the camera scanner — are left out).
const outputs = result.metafile.outputs;
const key = (abs) => relative(process.cwd(), abs).split('\\').join('/');
const first = new Set();
const visit = (file) => {
  if (first.has(file)) return;
  first.add(file);
  for (const imp of outputs[file]?.imports || []) if (imp.kind === 'import-statement') visit(imp.path);
};
visit(key(join(out, 'app.js')));
let gz = 0;
let raw = 0;
const rows = [];
for (const f of [...['index.html', 'app.css', 'favicon.svg'].map((n) => key(join(out, n))), ...first]) {
  const bytes = readFileSync(f);
  const z = gzipSync(bytes, {level: 9}).length;
  raw += bytes.length;
  gz += z;
  rows.push(`${relative(out, f).padEnd(28)} ${String(bytes.length).padStart(8)} B  ${String(z).padStart(7)} B gz`);
}
const lazy = Object.keys(outputs).filter((f) => f.endsWith('.js') && !first.has(f));
const summary = {firstLoadBytes: raw, firstLoadGzipBytes: gz, budgetGzipBytes: BUDGET, files: [...first].map((f) => relative(out, f)), lazy: lazy.map((f) => relative(out, f))};
writeFileSync(out.replace(/\/?$/, '') + '-size.json', JSON.stringify(summary, null, 2) + '\n');
console.log(`hearth web app → ${out}`);
for (const r of rows) console.log('  ' + r);
console.log(`  first load: ${(raw / 1024).toFixed(1)} KiB, ${(gz / 1024).toFixed(1)} KiB gzipped (budget ${BUDGET / 1024} KiB); lazy: ${lazy.map((f) => relative(out, f)).join(', ') || 'none'}`);
if (gz > BUDGET) {
  console.error(`hearth web app: first load is ${gz} B gzipped, over the ${BUDGET} B budget`);
  process.exit(1);
}
