/**
 * The systemd units and install.sh: static checks of the unit files, the
 * verdicts of `systemd-analyze verify` and `systemd-analyze security` (offline:
 * PID 1 need not be systemd), sysusers.d/tmpfiles.d applied to a scratch root,
 * and install.sh run against a small fixture checkout into a staging prefix.
 *
 * systemd-analyze, systemd-sysusers and systemd-tmpfiles come from the Debian
 * package `systemd`; without it these tests fail rather than skip.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const systemdDir = path.join(repoRoot, 'systemd');
const installScript = path.join(systemdDir, 'install.sh');
const UNITS = ['egress-witness-agent.service', 'egress-witness-detector.service'] as const;
const LAUNCHER = '/opt/egress-witness/bin/egress-witness';
const MAX_EXPOSURE = 2.0;

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'egress-witness-systemd-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

let scratchCount = 0;
function scratchDir(name: string): string {
  const dir = path.join(scratch, `${name}-${++scratchCount}`);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

function run(file: string, args: readonly string[], cwd = scratch): RunResult {
  const r = spawnSync(file, args, { cwd, encoding: 'utf8', env: { ...process.env, SYSTEMD_PAGER: '', SYSTEMD_COLORS: '0' } });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function requireSystemdTools(): void {
  for (const tool of ['systemd-analyze', 'systemd-sysusers', 'systemd-tmpfiles']) {
    const probe = spawnSync(tool, ['--version'], { encoding: 'utf8' });
    if (probe.error || probe.status !== 0) {
      throw new Error(`${tool} is not installed: install the Debian package "systemd" (apt-get install -y systemd); CI installs it`);
    }
  }
}

/** The unit's [Service]/[Unit]/[Install] assignments in file order, comments dropped. */
function unitAssignments(text: string): Array<[key: string, value: string]> {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#') && !line.startsWith(';') && !line.startsWith('['))
    .map((line) => {
      const eq = line.indexOf('=');
      return [line.slice(0, eq), line.slice(eq + 1)] as [string, string];
    });
}

function values(text: string, key: string): string[] {
  return unitAssignments(text)
    .filter(([k]) => k === key)
    .map(([, v]) => v);
}

function readUnit(unit: string): string {
  return fs.readFileSync(path.join(systemdDir, unit), 'utf8');
}

/** A copy of the unit whose launcher is an existing binary: verify insists that ExecStart= binaries exist. */
function unitWithExistingBinary(unit: string): string {
  const dir = scratchDir('unit');
  const file = path.join(dir, unit);
  fs.writeFileSync(file, readUnit(unit).replaceAll(LAUNCHER, process.execPath));
  return file;
}

describe.each(UNITS)('%s', (unit) => {
  const daemon = unit.includes('agent') ? 'agent' : 'detector';
  const configFile = `/etc/egress-witness/${daemon}.yaml`;
  const text = readUnit(unit);

  it('runs the installed launcher as a notify service that checks its config first', () => {
    expect(values(text, 'Type')).toEqual(['notify']);
    expect(values(text, 'NotifyAccess')).toEqual(['all']);
    expect(values(text, 'ExecStart')).toEqual([`${LAUNCHER} ${daemon} --config ${configFile}`]);
    expect(values(text, 'ExecStartPre')).toEqual([`${LAUNCHER} check-config ${configFile}`]);
    expect(values(text, 'ExecReload')).toEqual(['/bin/kill -HUP $MAINPID']);
    expect(values(text, 'Restart')).toEqual(['on-failure']);
    expect(values(text, 'RestartSec')).toEqual(['2s']);
    expect(values(text, 'TimeoutStopSec')).toEqual(['45s']);
    expect(values(text, 'KillMode')).toEqual(['mixed']);
    expect(values(text, 'Environment')).toEqual(['NODE_ENV=production']);
  });

  it('runs as the static sysusers.d user with a persistent state directory', () => {
    expect(values(text, 'User')).toEqual(['egress-witness']);
    expect(values(text, 'Group')).toEqual(['egress-witness']);
    expect(values(text, 'DynamicUser')).toEqual([]);
    expect(values(text, 'StateDirectory')).toEqual(['egress-witness']);
    expect(values(text, 'StateDirectoryMode')).toEqual(['0750']);
    expect(values(text, 'ConfigurationDirectory')).toEqual(['egress-witness']);
    expect(values(text, 'LimitNOFILE')).toEqual([daemon === 'agent' ? '1048576' : '65536']);
  });

  it('holds no capabilities and never sets MemoryDenyWriteExecute=yes (V8 needs W+X memory)', () => {
    expect(values(text, 'CapabilityBoundingSet')).toEqual(['']);
    expect(values(text, 'AmbientCapabilities')).toEqual(['']);
    expect(values(text, 'MemoryDenyWriteExecute').filter((v) => !['no', 'false', '0', 'off'].includes(v))).toEqual([]);
    expect(text).not.toMatch(/^\s*MemoryDenyWriteExecute\s*=\s*(yes|true|1|on)\s*$/im);
    expect(values(text, 'RestrictAddressFamilies')).toEqual(['AF_INET AF_INET6 AF_UNIX']);
  });

  it('keeps every sandbox setting that its exposure score was measured with', () => {
    const expected: Record<string, string[]> = {
      NoNewPrivileges: ['yes'],
      ProtectSystem: ['strict'],
      ProtectHome: ['yes'],
      PrivateTmp: ['yes'],
      PrivateMounts: ['yes'],
      PrivateDevices: ['yes'],
      DevicePolicy: ['closed'],
      PrivateUsers: ['yes'],
      ProtectKernelTunables: ['yes'],
      ProtectKernelModules: ['yes'],
      ProtectKernelLogs: ['yes'],
      ProtectControlGroups: ['yes'],
      ProtectClock: ['yes'],
      ProtectHostname: ['yes'],
      ProtectProc: ['invisible'],
      ProcSubset: ['pid'],
      RestrictNamespaces: ['yes'],
      RestrictRealtime: ['yes'],
      RestrictSUIDSGID: ['yes'],
      LockPersonality: ['yes'],
      RemoveIPC: ['yes'],
      UMask: ['0077'],
      SystemCallArchitectures: ['native'],
      SystemCallErrorNumber: ['EPERM'],
      SystemCallFilter: ['@system-service @pkey', '~@privileged @resources'],
    };
    const actual = Object.fromEntries(Object.keys(expected).map((key) => [key, values(text, key)]));
    expect(actual).toEqual(expected);
  });

  it('passes systemd-analyze verify', () => {
    requireSystemdTools();
    const file = unitWithExistingBinary(unit);
    const r = run('systemd-analyze', ['verify', '--man=no', '--recursive-errors=no', file], path.dirname(file));
    expect(r.stderr).not.toMatch(/Unknown|Failed to parse|Invalid/);
    expect(r.status, r.stderr).toBe(0);
  });

  it(`has an exposure of at most ${MAX_EXPOSURE} in systemd-analyze security`, () => {
    requireSystemdTools();
    const file = unitWithExistingBinary(unit);
    const r = run('systemd-analyze', ['security', '--offline=yes', `--threshold=${MAX_EXPOSURE * 10}`, file], path.dirname(file));
    const match = /Overall exposure level for \S+: (\d+\.\d+)/.exec(r.stdout);
    expect(match, `${r.stdout}\n${r.stderr}`).not.toBeNull();
    expect(Number(match![1])).toBeLessThanOrEqual(MAX_EXPOSURE);
    expect(r.status, r.stdout).toBe(0);
  });
});

describe('sysusers.d and tmpfiles.d', () => {
  // systemd-tmpfiles must chown to root:egress-witness: as root only (CI and these machines run as root).
  it.skipIf(process.getuid?.() !== 0)('create the user and a root-owned config directory readable by its group', () => {
    requireSystemdTools();
    const root = scratchDir('root');
    fs.mkdirSync(path.join(root, 'etc'));
    const sysusers = run('systemd-sysusers', [`--root=${root}`, path.join(systemdDir, 'egress-witness.sysusers.conf')]);
    expect(sysusers.status, sysusers.stderr).toBe(0);
    const passwd = fs.readFileSync(path.join(root, 'etc/passwd'), 'utf8');
    const user = passwd.split('\n').find((l) => l.startsWith('egress-witness:'));
    expect(user).toMatch(/^egress-witness:x:\d+:\d+:egress-witness daemons:\/var\/lib\/egress-witness:/);
    const gid = Number(user!.split(':')[3]);

    const tmpfiles = run('systemd-tmpfiles', [`--root=${root}`, '--create', path.join(systemdDir, 'egress-witness.tmpfiles.conf')]);
    expect(tmpfiles.status, tmpfiles.stderr).toBe(0);
    const st = fs.statSync(path.join(root, 'etc/egress-witness'));
    expect(st.mode & 0o7777).toBe(0o750);
    expect([st.uid, st.gid]).toEqual([0, gid]);
  });
});

// --- install.sh ----------------------------------------------------------------

const CLI_HELP = 'fixture cli: usage';

/** A built checkout in miniature: one production and two dev dependencies (one scoped). */
function makeFixtureCheckout(): string {
  const dir = scratchDir('checkout');
  const write = (rel: string, content: string): void => {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), content);
  };
  const manifest = {
    name: 'egress-witness-fixture',
    version: '1.0.0',
    dependencies: { 'prod-a': '1.0.0' },
    devDependencies: { 'dev-b': '1.0.0', '@fixture-dev/c': '1.0.0' },
  };
  write('package.json', JSON.stringify(manifest, null, 2));
  write(
    'package-lock.json',
    JSON.stringify(
      {
        name: manifest.name,
        version: manifest.version,
        lockfileVersion: 3,
        requires: true,
        packages: {
          '': { ...manifest },
          'node_modules/prod-a': { version: '1.0.0' },
          'node_modules/dev-b': { version: '1.0.0', dev: true },
          'node_modules/@fixture-dev/c': { version: '1.0.0', dev: true },
        },
      },
      null,
      2,
    ),
  );
  for (const name of ['prod-a', 'dev-b', '@fixture-dev/c']) {
    write(`node_modules/${name}/package.json`, JSON.stringify({ name, version: '1.0.0' }));
  }
  write('dist/cli/main.js', `console.log(${JSON.stringify(CLI_HELP)});\n`);
  write('config/agent.example.yaml', '# agent example\n');
  write('config/detector.example.yaml', '# detector example\n');
  fs.mkdirSync(path.join(dir, 'systemd'));
  for (const file of [...UNITS, 'egress-witness.sysusers.conf', 'egress-witness.tmpfiles.conf']) {
    fs.copyFileSync(path.join(systemdDir, file), path.join(dir, 'systemd', file));
  }
  return dir;
}

/** The Node.js running the suite, when it is older than the supported lines (development machines on Node.js 20). */
const unsupportedNode = Number(process.versions.node.split('.')[0]) < 22;

function install(args: readonly string[], opts: { strictNode?: boolean } = {}): RunResult {
  const allow = unsupportedNode && !opts.strictNode && !args.includes('--help') ? ['--allow-unsupported-node'] : [];
  return run('bash', [installScript, ...allow, ...args]);
}

/** Every entry under root: path, type, mode, size and content hash (or link target). */
function treeListing(root: string): string[] {
  const lines: string[] = [];
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
      const relPath = path.join(rel, name);
      const abs = path.join(root, relPath);
      const st = fs.lstatSync(abs);
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isSymbolicLink()) lines.push(`${relPath} link ${mode} -> ${fs.readlinkSync(abs)}`);
      else if (st.isDirectory()) {
        lines.push(`${relPath} dir ${mode}`);
        walk(relPath);
      } else {
        const hash = createHash('sha256').update(fs.readFileSync(abs)).digest('hex');
        lines.push(`${relPath} file ${mode} ${st.size} ${hash}`);
      }
    }
  };
  walk('');
  return lines;
}

describe('install.sh', () => {
  const prefix = path.join(scratch, 'prefix');
  let checkout: string;
  let first: RunResult;
  let firstListing: string[];

  beforeAll(() => {
    checkout = makeFixtureCheckout();
    first = install(['--source', checkout, '--prefix', prefix]);
    firstListing = fs.existsSync(prefix) ? treeListing(prefix) : [];
  });

  it('is executable and documents its options', () => {
    expect(fs.statSync(installScript).mode & 0o111).not.toBe(0);
    const r = install(['--help']);
    expect(r.status).toBe(0);
    for (const option of ['--prefix', '--source', '--node', '--allow-unsupported-node', '--skip-deps', '--no-start'])
      expect(r.stdout).toContain(option);
  });

  it('requires the Node.js version that package.json declares', () => {
    const engines = (JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { engines: { node: string } }).engines
      .node;
    const script = fs.readFileSync(installScript, 'utf8');
    expect(`>=${/^readonly MIN_NODE=(\S+)$/m.exec(script)?.[1]}`).toBe(engines);
  });

  it('installs the application, a launcher, the units and the example configs into the prefix', () => {
    expect(first.status, first.stderr).toBe(0);
    const launcher = path.join(prefix, LAUNCHER);
    expect(fs.statSync(launcher).mode & 0o777).toBe(0o755);
    const node = run('bash', ['-c', 'command -v node']).stdout.trim();
    expect(fs.readFileSync(launcher, 'utf8')).toContain(
      `\nexec "${node}" --no-memory-reducer "/opt/egress-witness/dist/cli/main.js" "$@"\n`,
    );
    expect(fs.readlinkSync(path.join(prefix, 'usr/local/bin/egress-witness'))).toBe(LAUNCHER);

    const app = path.join(prefix, 'opt/egress-witness');
    expect(fs.readFileSync(path.join(app, 'dist/cli/main.js'), 'utf8')).toContain(CLI_HELP);
    expect(fs.existsSync(path.join(app, 'node_modules/prod-a/package.json'))).toBe(true);
    expect(fs.existsSync(path.join(app, 'node_modules/dev-b'))).toBe(false);
    expect(fs.existsSync(path.join(app, 'node_modules/@fixture-dev'))).toBe(false);

    for (const unit of UNITS) {
      expect(fs.readFileSync(path.join(prefix, 'etc/systemd/system', unit), 'utf8')).toBe(readUnit(unit));
    }
    expect(fs.existsSync(path.join(prefix, 'usr/lib/sysusers.d/egress-witness.conf'))).toBe(true);
    expect(fs.existsSync(path.join(prefix, 'usr/lib/tmpfiles.d/egress-witness.conf'))).toBe(true);
    expect(fs.statSync(path.join(prefix, 'etc/egress-witness')).mode & 0o777).toBe(0o750);
    for (const name of ['agent', 'detector']) {
      const config = path.join(prefix, `etc/egress-witness/${name}.yaml`);
      expect(fs.readFileSync(config, 'utf8')).toBe(`# ${name} example\n`);
      expect(fs.statSync(config).mode & 0o777).toBe(0o640);
    }
    expect(first.stdout).toContain('A real install');
    expect(first.stdout).toContain('systemd-sysusers');
    expect(first.stdout).toContain('systemctl daemon-reload');
  });

  it('changes nothing when run a second time', () => {
    const second = install(['--source', checkout, '--prefix', prefix]);
    expect(second.status, second.stderr).toBe(0);
    expect(second.stdout).toMatch(/^unchanged +\S+\/opt\/egress-witness$/m);
    expect(second.stdout).not.toMatch(/^installed/m);
    expect(treeListing(prefix)).toEqual(firstListing);
  });

  it('never overwrites an operator config', () => {
    const own = scratchDir('prefix-own');
    fs.mkdirSync(path.join(own, 'etc/egress-witness'), { recursive: true });
    fs.writeFileSync(path.join(own, 'etc/egress-witness/agent.yaml'), 'mine: true\n', { mode: 0o600 });
    const r = install(['--source', checkout, '--prefix', own, '--skip-deps']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^kept .*agent\.yaml/m);
    expect(fs.readFileSync(path.join(own, 'etc/egress-witness/agent.yaml'), 'utf8')).toBe('mine: true\n');
    expect(fs.statSync(path.join(own, 'etc/egress-witness/agent.yaml')).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(path.join(own, 'etc/egress-witness/detector.yaml'), 'utf8')).toBe('# detector example\n');
    expect(fs.existsSync(path.join(own, 'opt/egress-witness/node_modules'))).toBe(false);
  });

  it('swaps in a changed build whole, leaving no staging folders behind', () => {
    const target = scratchDir('prefix-upgrade');
    expect(install(['--source', checkout, '--prefix', target]).status).toBe(0);
    const next = scratchDir('checkout-next');
    fs.cpSync(checkout, next, { recursive: true });
    fs.writeFileSync(path.join(next, 'dist/cli/main.js'), `console.log(${JSON.stringify(`${CLI_HELP} v2`)});\n`);
    const r = install(['--source', next, '--prefix', target]);
    expect(r.status, r.stderr).toBe(0);
    expect(fs.readFileSync(path.join(target, 'opt/egress-witness/dist/cli/main.js'), 'utf8')).toContain('v2');
    expect(fs.readdirSync(path.join(target, 'opt'))).toEqual(['egress-witness']);
  });

  it('takes both native addons where they are built, and names each one that is not', () => {
    const relay = 'native/tunnel-relay/build/Release/tunnel_relay.node';
    const odst = 'native/original-dst/build/Release/original_dst.node';
    expect(first.stdout).toContain(`note: ${relay} is not built`);
    expect(first.stdout).toContain(`note: ${odst} is not built`);
    const withRelay = scratchDir('checkout-relay');
    fs.cpSync(checkout, withRelay, { recursive: true });
    fs.mkdirSync(path.join(withRelay, path.dirname(relay)), { recursive: true });
    fs.writeFileSync(path.join(withRelay, relay), 'relay addon');
    const target = scratchDir('prefix-relay');
    const r = install(['--source', withRelay, '--prefix', target]);
    expect(r.status, r.stderr).toBe(0);
    expect(fs.readFileSync(path.join(target, 'opt/egress-witness', relay), 'utf8')).toBe('relay addon');
    expect(r.stdout).not.toContain(`note: ${relay}`);
    expect(r.stdout).toContain(`note: ${odst} is not built`);
  });

  it('refuses a checkout that is not built', () => {
    const unbuilt = scratchDir('checkout-unbuilt');
    fs.cpSync(checkout, unbuilt, { recursive: true });
    fs.rmSync(path.join(unbuilt, 'dist'), { recursive: true });
    const target = scratchDir('prefix-unbuilt');
    const r = install(['--source', unbuilt, '--prefix', target]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('dist/cli/main.js is missing');
    expect(fs.readdirSync(target)).toEqual([]);
  });

  const fakeNodeDirs: string[] = [];
  afterAll(() => {
    for (const d of fakeNodeDirs) fs.rmSync(d, { recursive: true, force: true });
  });

  /**
   * A stand-in Node.js that reports `version` and runs the real one for everything else. It lives under the
   * scratch folder, which the script refuses later (hidden from the services): reaching that refusal proves the
   * version was accepted.
   */
  function nodeReporting(version: string): string {
    // Always under /tmp, whatever the scratch folder: the later refusal is what proves the version passed.
    const dir = fs.mkdtempSync(`/tmp/egress-witness-node-${version}-`);
    fakeNodeDirs.push(dir);
    const fake = path.join(dir, 'node');
    fs.writeFileSync(fake, `#!/bin/sh\nif [ "$1" = -p ]; then echo ${version}; exit 0; fi\nexec "${process.execPath}" "$@"\n`, {
      mode: 0o755,
    });
    return fake;
  }

  it('refuses a Node.js older than the supported lines', () => {
    const r = install(['--source', checkout, '--prefix', scratchDir('prefix-old'), '--node', nodeReporting('18.19.0')]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('18.19.0');
    expect(r.stderr).toContain('too old');
  });

  it('refuses Node.js 20 unless told it is a development tree, and then warns', () => {
    const node20 = nodeReporting('20.20.2');
    const refused = install(['--source', checkout, '--prefix', scratchDir('prefix-20'), '--node', node20], { strictNode: true });
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toContain('Node.js 22 or 24');
    const allowed = install(
      ['--allow-unsupported-node', '--source', checkout, '--prefix', scratchDir('prefix-20-allowed'), '--node', node20],
      {
        strictNode: true,
      },
    );
    expect(allowed.stderr).toContain('past its end of life and unsupported');
    expect(allowed.stderr).toContain('hidden from the sandboxed services');
  });

  it('accepts the supported lines without a warning', () => {
    for (const version of ['22.13.0', '24.11.1']) {
      const r = install(['--source', checkout, '--prefix', scratchDir(`prefix-${version}`), '--node', nodeReporting(version)], {
        strictNode: true,
      });
      expect(r.stderr).not.toContain('too old');
      expect(r.stderr).not.toContain('unsupported');
      expect(r.stderr).toContain('hidden from the sandboxed services');
    }
  });

  it.skipIf(!/^\/(var\/)?tmp\//.test(scratch))('refuses a Node.js that ProtectHome=/PrivateTmp= would hide from the services', () => {
    const hidden = path.join(scratchDir('tmp-node'), 'node');
    fs.symlinkSync(process.execPath, hidden);
    const r = install(['--source', checkout, '--prefix', scratchDir('prefix-hidden'), '--node', hidden]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('hidden from the sandboxed services');
  });
});
