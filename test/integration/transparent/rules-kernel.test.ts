/**
 * The rules `egress-witness transparent-rules` prints, handed to the real
 * kernel tools inside a network namespace this test creates (root only):
 * `nft -c -f` accepts them for IPv4 and IPv6 ranges, applying them twice
 * leaves one copy, and the iptables-restore / ip6tables-restore input passes
 * `--test` and is idempotent too (with the PREROUTING jump from its header).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNamespace, netnsGate } from '../../helpers/netns.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const bin = join(root, 'dist/cli/main.js');

/** A deterministic ip-ranges.json in AWS's shape: overlapping, duplicated and adjacent prefixes, both families. */
export function syntheticIpRanges(v4Count: number, v6Count: number): string {
  let seed = 0x2f6b1d;
  const next = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return (seed >>> 8) % n;
  };
  const prefixes: { ip_prefix: string; region: string; service: string; network_border_group: string }[] = [];
  for (let i = 0; i < v4Count; i++) {
    const first = [3, 13, 15, 18, 35, 44, 52, 54, 99][next(9)]!;
    const len = 22 + next(11);
    const value = ((first << 24) | (next(256) << 16) | (next(256) << 8) | next(256)) >>> 0;
    const masked = len === 32 ? value : (value & ~((1 << (32 - len)) - 1)) >>> 0;
    const ip = [24, 16, 8, 0].map((s) => (masked >>> s) & 255).join('.');
    const service = ['AMAZON', 'EC2', 'S3', 'CLOUDFRONT'][next(4)]!;
    prefixes.push({ ip_prefix: `${ip}/${len}`, region: 'us-east-1', service, network_border_group: 'us-east-1' });
    if (next(5) === 0) prefixes.push({ ...prefixes[prefixes.length - 1]!, service: 'AMAZON' }); // AWS lists a prefix once per service
  }
  const ipv6_prefixes: { ipv6_prefix: string; region: string; service: string; network_border_group: string }[] = [];
  for (let i = 0; i < v6Count; i++) {
    const top = ['2600:1f', '2a05:d0', '2406:da'][next(3)]!;
    const groups = `${top}${next(256).toString(16).padStart(2, '0')}:${next(0x10000).toString(16)}`;
    const len = [40, 44, 48, 56, 64][next(5)]!;
    const cut = len <= 32 ? `${groups.split(':')[0]}:${groups.split(':')[1]}::` : `${groups}::`;
    ipv6_prefixes.push({ ipv6_prefix: `${cut}/${len}`, region: 'eu-west-1', service: 'AMAZON', network_border_group: 'eu-west-1' });
  }
  return JSON.stringify({ syncToken: '1732000000', createDate: '2026-11-20-22-13-07', prefixes, ipv6_prefixes });
}

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const skip = netnsGate('transparent-rules in the kernel', ['nft']);

describe.skipIf(skip)('transparent-rules output in the kernel', () => {
  let tmp: string;
  let config: string;
  let ranges: string;
  let ns: Awaited<ReturnType<typeof createNamespace>>;

  beforeAll(async () => {
    if (!existsSync(bin)) throw new Error(`${bin} is missing: run "npm run build" first (npm test does)`);
    tmp = await mkdtemp(join(tmpdir(), 'egress-witness-rules-'));
    config = join(tmp, 'agent.yaml');
    ranges = join(tmp, 'ip-ranges.json');
    await writeFile(
      config,
      [
        'gateway: {id: gw-dc1, egress_cidrs: [203.0.113.0/28]}',
        'networks:',
        '  - {name: vpc-prod, cidrs: [10.20.0.0/16, 10.21.0.0/16]}',
        '  - {name: rack, cidrs: [10.30.0.0/20, "fd12:3456:789a::/48"]}',
        'proxy: {allow_destination_cidrs: [10.99.0.0/24]}',
        'transparent: {listen: "[::]:3129"}',
        '',
      ].join('\n'),
    );
    await writeFile(ranges, syntheticIpRanges(3_000, 600));
    ns = await createNamespace();
  });

  afterAll(async () => {
    await ns?.destroy();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  async function rules(...extra: string[]): Promise<string> {
    const r = await cli(['transparent-rules', '--config', config, ...extra]);
    expect(r.stderr.replace(/^note: the jump from PREROUTING.*\n/m, '')).toBe('');
    expect(r.code).toBe(0);
    return r.stdout;
  }

  it('nft -c accepts the ruleset for IPv4 and IPv6 AWS ranges and for every destination', async () => {
    for (const text of [await rules('--aws-ip-ranges', ranges), await rules('--all-destinations')]) {
      expect(text).toMatch(/set destinations_v4 \{/);
      expect(text).toMatch(/set destinations_v6 \{/);
      const check = await ns.run('nft', ['-c', '-f', '-'], { input: text });
      expect(check.stderr).toBe('');
      expect(check.code).toBe(0);
    }
  });

  it('nft -f twice leaves one table, with the same content', async () => {
    const text = await rules('--aws-ip-ranges', ranges);
    expect((await ns.run('nft', ['-f', '-'], { input: text })).code).toBe(0);
    const first = await ns.run('nft', ['list', 'ruleset']);
    expect((await ns.run('nft', ['-f', '-'], { input: text })).code).toBe(0);
    const second = await ns.run('nft', ['list', 'ruleset']);
    expect(second.stdout).toBe(first.stdout);
    expect(second.stdout.match(/^table inet egress_witness \{/gm)).toHaveLength(1);
    expect(second.stdout.match(/redirect to :3129/g)).toHaveLength(2);
    // The kernel holds the merged prefixes the generator counted in its header.
    const v4 = Number(/; (\d+) IPv4 prefixes, (\d+) IPv6 prefixes after merging/.exec(text)?.[1]);
    expect(v4).toBeGreaterThan(1_000);
    const listed = await ns.run('nft', ['--json', 'list', 'set', 'inet', 'egress_witness', 'destinations_v4']);
    const elems = (JSON.parse(listed.stdout) as { nftables: { set?: { elem?: unknown[] } }[] }).nftables.find((x) => x.set)?.set?.elem;
    expect(elems).toHaveLength(v4);
    // Switching to --all-destinations replaces the table as a whole.
    expect((await ns.run('nft', ['-f', '-'], { input: await rules('--all-destinations') })).code).toBe(0);
    const after = await ns.run('nft', ['list', 'ruleset']);
    expect(after.stdout.match(/^table inet egress_witness \{/gm)).toHaveLength(1);
    expect((await ns.run('nft', ['delete', 'table', 'inet', 'egress_witness'])).code).toBe(0);
  });

  it.each([
    ['iptables', 'iptables-restore'],
    ['ip6tables', 'ip6tables-restore'],
  ])('%s output passes --test and applies idempotently', async (format, restore) => {
    const tool = `${restore}`;
    const probe = await ns.run('sh', ['-c', `command -v ${tool}`]);
    if (probe.code !== 0) {
      if (process.env.CI) throw new Error(`${tool} is missing`);
      console.warn(`SKIPPED ${format} check: ${tool} is missing (Debian: iptables)`);
      return;
    }
    const text = await rules('--aws-ip-ranges', ranges, '--format', format);
    const test = await ns.run(tool, ['--test', '--noflush'], { input: text });
    expect(test.stderr).toBe('');
    expect(test.code).toBe(0);
    const jump = /^#\s+(\S+ -t nat -C PREROUTING .*)$/m.exec(text)?.[1];
    expect(jump).toBeDefined();
    for (let i = 0; i < 2; i++) {
      const applied = await ns.run(tool, ['--noflush'], { input: text });
      expect(applied.stderr).toBe('');
      expect((await ns.run('sh', ['-c', jump!])).code).toBe(0);
    }
    const listed = (await ns.run(format, ['-t', 'nat', '-S'])).stdout;
    expect(listed.match(/^-A PREROUTING -p tcp -j EGRESS_WITNESS$/gm)).toHaveLength(1);
    expect(listed.match(/^-N EGRESS_WITNESS$/gm)).toHaveLength(1);
    const redirects = listed.match(/-j REDIRECT --to-ports 3129$/gm)?.length ?? 0;
    expect(redirects).toBe(text.match(/-j REDIRECT --to-ports 3129$/gm)?.length);
    expect(redirects).toBeGreaterThan(format === 'iptables' ? 1_000 : 100);
  });
});
