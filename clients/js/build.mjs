// Builds the browser bundles of hearth-client into the build tree (never into the source tree):
//   hearth-client.mjs  ES module: import { mtl, hearth } from './hearth-client.mjs'
//   hearth-client.js   classic script: sets window.mtl and window.hearth (the seed's globals)
// Usage: node build.mjs OUTDIR   (CMake passes build/clients/js). Prints each file's size.
import { statSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.resolve(process.argv[2] || path.join(here, '..', '..', 'build', 'clients', 'js'));

let esbuild;
try {
  esbuild = await import('esbuild');
} catch {
  console.warn('hearth-client: esbuild is not installed (run tools/install-deps.sh: npm ci); bundle skipped');
  process.exit(0);
}

const common = {
  entryPoints: [path.join(here, 'src', 'index.js')],
  bundle: true,
  minify: true,
  sourcemap: true,
  platform: 'browser',
  target: ['es2020'],
  // Node-only modules are loaded lazily by the CA pinning code, which a browser never runs.
  external: ['node:tls', 'node:crypto'],
  legalComments: 'linked',
  logLevel: 'warning',
};

await esbuild.build({ ...common, format: 'esm', outfile: path.join(outdir, 'hearth-client.mjs') });
await esbuild.build({
  ...common,
  format: 'iife',
  globalName: 'hearthClient',
  footer: { js: 'globalThis.mtl=hearthClient.mtl;globalThis.hearth=hearthClient.hearth;' },
  outfile: path.join(outdir, 'hearth-client.js'),
});

for (const f of ['hearth-client.mjs', 'hearth-client.js']) {
  const p = path.join(outdir, f);
  const gz = gzipSync(readFileSync(p)).length;
  console.log(`hearth-client: ${p} ${(statSync(p).size / 1024).toFixed(1)} KiB (${(gz / 1024).toFixed(1)} KiB gzip)`);
}
