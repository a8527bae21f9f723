/**
 * `egress-witness transparent-rules` and `check-config` on a transparent
 * section, as a user runs them: the built CLI as a child process.
 * The kernel accepting the output is tested in test/integration/transparent/rules-kernel.test.ts.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const bin = join(root, 'dist/cli/main.js');
const GATEWAY = 'gateway: {id: gw-dc1, egress_cidrs: [203.0.113.0/28]}\nnetworks: [{name: lab, cidrs: [10.20.0.0/16, "fd12::/48"]}]\n';
const RANGES = JSON.stringify({
  createDate: '2026-11-20-22-13-07',
  prefixes: [{ ip_prefix: '52.94.0.0/22', region: 'us-east-1', service: 'AMAZON' }],
  ipv6_prefixes: [{ ipv6_prefix: '2600:1f18::/32', region: 'us-east-1', service: 'AMAZON' }],
});

let tmp: string;
const file = (name: string) => join(tmp, name);

beforeAll(async () => {
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run "npm run build" first (npm test does)`);
  tmp = await mkdtemp(join(tmpdir(), 'egress-witness-trules-'));
  await writeFile(file('agent.yaml'), `${GATEWAY}transparent: {listen: "[::]:3129"}\n`);
  await writeFile(file('no-transparent.yaml'), GATEWAY);
  await writeFile(file('v4-listener.yaml'), `${GATEWAY}transparent: {listen: "0.0.0.0:3129"}\n`);
  await writeFile(file('loopback-listener.yaml'), `${GATEWAY}transparent: {listen: "127.0.0.1:3129"}\n`);
  await writeFile(file('port-zero.yaml'), `${GATEWAY}transparent: {listen: "[::]:0"}\n`);
  await writeFile(file('broken.yaml'), `${GATEWAY}transparent: {ports: [443, 8443, 443], bind: x}\n`);
  await writeFile(file('ip-ranges.json'), RANGES);
  await writeFile(file('truncated.json'), RANGES.slice(0, 60));
});

afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { cwd: root }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('egress-witness transparent-rules', () => {
  it('--help explains the hook, idempotence and --noflush, with examples', async () => {
    const r = await run(['transparent-rules', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--aws-ip-ranges <file>');
    expect(r.stdout).toContain('--all-destinations');
    expect(r.stdout.replace(/\s+/g, ' ')).toContain('(choices: "nft", "iptables", "ip6tables", default: "nft")');
    expect(r.stdout).toContain('applying it twice leaves one copy');
    expect(r.stdout).toContain('iptables-restore --noflush');
  });

  it('prints the nft ruleset on stdout and nothing on stderr', async () => {
    const r = await run(['transparent-rules', '--config', file('agent.yaml'), '--aws-ip-ranges', file('ip-ranges.json')]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^#!\/usr\/sbin\/nft -f\n/);
    expect(r.stdout).toContain('ip6 saddr @clients_v6 ip6 daddr @destinations_v6 tcp dport { 443, 80 } counter redirect to :3129');
  });

  it('prints iptables-restore input, and the jump reminder on stderr', async () => {
    const r = await run(['transparent-rules', '-c', file('agent.yaml'), '--all-destinations', '--format', 'iptables']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^\*nat$/m);
    expect(r.stdout).toMatch(/^COMMIT$/m);
    expect(r.stderr).toBe(
      'note: the jump from PREROUTING is not part of iptables-restore input; add it once with the command in the header\n',
    );
  });

  it.each([
    [[], 'transparent-rules: give --aws-ip-ranges FILE (AWS ip-ranges.json) to redirect connections to AWS, or --all-destinations\n'],
    [
      ['--all-destinations', '--aws-ip-ranges', 'x.json'],
      'transparent-rules: give either --aws-ip-ranges or --all-destinations, not both\n',
    ],
  ])('refuses %j as a usage error: exit 2', async (extra, message) => {
    const r = await run(['transparent-rules', '--config', file('agent.yaml'), ...extra]);
    expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({ code: 2, stdout: '', stderr: message });
  });

  it('refuses a config without a transparent section, saying what to add', async () => {
    const r = await run(['transparent-rules', '--config', file('no-transparent.yaml'), '--all-destinations']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `transparent-rules: ${file('no-transparent.yaml')} has no transparent section: add one with transparent.listen, e.g. "[::]:3129" (see docs/transparent.md)\n`,
    );
  });

  it('refuses an invalid config with every problem as path: reason', async () => {
    const r = await run(['transparent-rules', '--config', file('broken.yaml'), '--all-destinations']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `${file('broken.yaml')}: invalid agent configuration\n` +
        '  transparent.listen: required: the transparent listener address, e.g. "[::]:3129" (IPv4 and IPv6) or "0.0.0.0:3129" (line 3, column 14)\n' +
        '  transparent.bind: unknown key "bind" (line 3, column 40)\n',
    );
  });

  it('refuses a listener on port 0 (the rules need a fixed port)', async () => {
    const r = await run(['transparent-rules', '--config', file('port-zero.yaml'), '--all-destinations']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("transparent-rules: transparent.listen has port 0: the rules need the listener's fixed port (1-65535)\n");
  });

  it.each([
    ['truncated.json', /^ {2}not JSON \(/m],
    ['agent.yaml', /^ {2}not JSON \(/m],
    ['missing.json', /no such file/],
  ])('refuses the ranges file %s', async (name, problem) => {
    const r = await run(['transparent-rules', '--config', file('agent.yaml'), '--aws-ip-ranges', file(name)]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(problem);
  });

  it('warns when the listener cannot receive what is redirected to it', async () => {
    const v4 = await run(['transparent-rules', '--config', file('v4-listener.yaml'), '--all-destinations']);
    expect(v4.code).toBe(0);
    expect(v4.stderr).toBe(
      'note: transparent.listen is IPv4-only (0.0.0.0) but some clients are IPv6: listen on "[::]:PORT" to receive both\n',
    );
    const lo = await run(['transparent-rules', '--config', file('loopback-listener.yaml'), '--all-destinations']);
    expect(lo.stderr).toContain('note: transparent.listen is bound to 127.0.0.1: a redirect delivers to the address of the interface');
  });
});

describe('egress-witness check-config with a transparent section', () => {
  it('summarizes the listener', async () => {
    const r = await run(['check-config', file('agent.yaml')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('listen 0.0.0.0:3128, transparent [::]:3129 (ports 443 80), tunnel-only');
  });

  it('reports every problem of the section as path: reason', async () => {
    const r = await run(['check-config', file('broken.yaml')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `${file('broken.yaml')}: invalid agent configuration (2 problems)\n` +
        '  transparent.listen: required: the transparent listener address, e.g. "[::]:3129" (IPv4 and IPv6) or "0.0.0.0:3129" (line 3, column 14)\n' +
        '  transparent.bind: unknown key "bind" (line 3, column 40)\n',
    );
  });
});
