// Builds the optional native addons at `npm ci` / `npm install` (the package's install script).
// A failed build is a warning, never a failed install:
// - original-dst: without it the transparent listener cannot read a redirected connection's
//   original port and assumes 443 for TLS and 80 for HTTP, and the agent says so in its log and on /status;
// - tunnel-relay: without it tunnels are relayed in JavaScript (`proxy.tunnel_relay`), and the agent says so in its log.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ADDONS = [
  {
    dir: 'original-dst',
    file: 'original_dst.node',
    what: 'original-destination addon',
    without: 'transparent mode will assume port 443 for TLS and 80 for HTTP',
  },
  {
    dir: 'tunnel-relay',
    file: 'tunnel_relay.node',
    what: 'tunnel relay addon',
    without: 'tunnels will be relayed in JavaScript',
  },
];

const root = dirname(fileURLToPath(import.meta.url));
if (process.platform !== 'linux') {
  console.log('egress-witness: the native addons are Linux-only; skipped');
  process.exit(0);
}
// npm passes its bundled node-gyp on PATH and the configured header folder as npm_config_nodedir.
// Run by hand, a system Node.js (/usr/bin/node) has its headers beside it: use them rather than download.
const prefix = dirname(dirname(process.execPath));
const nodedir = !process.env.npm_config_nodedir && existsSync(join(prefix, 'include/node/node_api.h')) ? [`--nodedir=${prefix}`] : [];

for (const addon of ADDONS) {
  const dir = join(root, addon.dir);
  // --if-missing (npm test): build only in a tree that has none yet, e.g. a work tree whose node_modules was copied.
  if (process.argv.includes('--if-missing') && existsSync(join(dir, 'build/Release', addon.file))) continue;
  const r = spawnSync('node-gyp', ['rebuild', `--directory=${dir}`, ...nodedir], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    rmSync(join(dir, 'build'), { recursive: true, force: true });
    const tail = `${r.stderr ?? ''}`.trim().split('\n').slice(-5).join('\n');
    console.warn(
      `egress-witness: the ${addon.what} was not built (${r.error ? `${r.error.message}; is node-gyp installed?` : `node-gyp exited with ${r.status}`}).`,
    );
    console.warn(`egress-witness: ${addon.without}; rebuild with: npm run build:native`);
    if (tail) console.warn(tail);
    continue;
  }
  console.log(`egress-witness: built the ${addon.what}`);
}
