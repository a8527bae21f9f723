// Builds the optional native addon at `npm ci` / `npm install` (the package's install script).
// A failed build is a warning, never a failed install: without the addon the transparent listener
// cannot read a redirected connection's original port and assumes 443 for TLS and 80 for HTTP,
// and the agent says so in its log and on /status.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = join(dirname(fileURLToPath(import.meta.url)), 'original-dst');
// --if-missing (npm test): build only in a tree that has none yet, e.g. a work tree whose node_modules was copied.
if (process.argv.includes('--if-missing') && existsSync(join(dir, 'build/Release/original_dst.node'))) process.exit(0);
const warn = (why) => {
  console.warn(`egress-witness: the original-destination addon was not built (${why}).`);
  console.warn('egress-witness: transparent mode will assume port 443 for TLS and 80 for HTTP; rebuild with: npm run build:native');
};

if (process.platform !== 'linux') {
  console.log('egress-witness: the original-destination addon is Linux-only; skipped');
  process.exit(0);
}
// npm passes its bundled node-gyp on PATH and the configured header folder as npm_config_nodedir.
// Run by hand, a system Node.js (/usr/bin/node) has its headers beside it: use them rather than download.
const args = ['rebuild', `--directory=${dir}`];
const prefix = dirname(dirname(process.execPath));
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include/node/node_api.h'))) args.push(`--nodedir=${prefix}`);
const r = spawnSync('node-gyp', args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
if (r.error || r.status !== 0) {
  rmSync(join(dir, 'build'), { recursive: true, force: true });
  const tail = `${r.stderr ?? ''}`.trim().split('\n').slice(-5).join('\n');
  warn(r.error ? `${r.error.message}; is node-gyp installed?` : `node-gyp exited with ${r.status}`);
  if (tail) console.warn(tail);
  process.exit(0);
}
console.log('egress-witness: built the original-destination addon');
