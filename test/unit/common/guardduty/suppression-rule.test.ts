import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  MAX_EQUALS_VALUES,
  OUTSIDE_AWS_FINDING_TYPE,
  REMOTE_IPV4_ATTRIBUTE,
  buildSuppressionRule,
  suppressionRuleCli,
  type CreateFilterInput,
} from '../../../../common/guardduty/suppression-rule.js';
import { formatIpv4 } from '../../../../common/cidr/ip.js';

function ok(result: ReturnType<typeof buildSuppressionRule>): { input: CreateFilterInput; notes: string[] } {
  if (!result.ok) throw new Error(result.error);
  return result;
}

const addressesOf = (input: CreateFilterInput): string[] => input.FindingCriteria.Criterion[REMOTE_IPV4_ATTRIBUTE]!.Equals;

describe('buildSuppressionRule', () => {
  it('builds the CreateFilter input AWS documents: ARCHIVE, the finding type, ipAddressV4 Equals the CIDRs', () => {
    const { input, notes } = ok(buildSuppressionRule({ cidrs: ['203.0.113.0/28', '198.51.100.7/32'] }));
    expect(input).toEqual({
      Name: 'egress-witness-gateway-cidrs',
      Description: expect.stringContaining('blind') as string,
      Action: 'ARCHIVE',
      Rank: 1,
      FindingCriteria: {
        Criterion: {
          type: { Equals: ['UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS'] },
          'service.action.awsApiCallAction.remoteIpDetails.ipAddressV4': { Equals: ['203.0.113.0/28', '198.51.100.7'] },
        },
      },
    });
    expect(input).not.toHaveProperty('DetectorId');
    expect(notes).toEqual([]);
    expect(OUTSIDE_AWS_FINDING_TYPE).toBe('UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS');
    // The JSON shape is what `aws guardduty create-filter --cli-input-json` takes.
    expect(JSON.parse(JSON.stringify(input))).toEqual(input);
  });

  it('passes the detector id, name, rank and description through', () => {
    const { input } = ok(
      buildSuppressionRule({
        cidrs: ['203.0.113.1'],
        detectorId: '12abc34d567e8fa901bc2d34e56789f0',
        name: 'gw.dc1_static-1',
        rank: 100,
        description: 'mine',
      }),
    );
    expect(input).toMatchObject({
      DetectorId: '12abc34d567e8fa901bc2d34e56789f0',
      Name: 'gw.dc1_static-1',
      Rank: 100,
      Description: 'mine',
    });
  });

  it('expand lists the 16 addresses of a /28', () => {
    const { input, notes } = ok(buildSuppressionRule({ cidrs: ['203.0.113.0/28'], expand: true }));
    expect(addressesOf(input)).toEqual(Array.from({ length: 16 }, (_, i) => `203.0.113.${i}`));
    expect(notes).toEqual([]);
  });

  it('expand keeps a /24 as a CIDR, with a note', () => {
    const { input, notes } = ok(buildSuppressionRule({ cidrs: ['198.51.100.0/24', '203.0.113.8/30'], expand: true }));
    expect(addressesOf(input)).toEqual(['198.51.100.0/24', '203.0.113.8', '203.0.113.9', '203.0.113.10', '203.0.113.11']);
    expect(notes).toEqual(['198.51.100.0/24: 256 addresses, more than 50; kept as a CIDR']);
  });

  it('a /32 is written as a bare address, and duplicates are dropped', () => {
    const { input } = ok(buildSuppressionRule({ cidrs: ['203.0.113.5/32', '203.0.113.5', '203.0.113.4/31'], expand: true }));
    expect(addressesOf(input)).toEqual(['203.0.113.5', '203.0.113.4']);
  });

  it(`allows ${MAX_EQUALS_VALUES} values and refuses more`, () => {
    const fifty = Array.from({ length: MAX_EQUALS_VALUES }, (_, i) => formatIpv4(0xc6336400 + i));
    expect(addressesOf(ok(buildSuppressionRule({ cidrs: fifty })).input)).toHaveLength(50);
    expect(buildSuppressionRule({ cidrs: [...fifty, '203.0.113.1'] })).toEqual({
      ok: false,
      error: "51 values exceed GuardDuty's limit of 50 per criterion; drop --expand or split the CIDRs over several filters",
    });
  });

  it('refuses an expansion beyond 50 values, which the unexpanded rule fits', () => {
    expect(buildSuppressionRule({ cidrs: ['203.0.113.0/27', '198.51.100.0/27'], expand: true })).toEqual({
      ok: false,
      error: "64 values exceed GuardDuty's limit of 50 per criterion; drop --expand or split the CIDRs over several filters",
    });
    expect(addressesOf(ok(buildSuppressionRule({ cidrs: ['203.0.113.0/27', '198.51.100.0/27'] })).input)).toEqual([
      '203.0.113.0/27',
      '198.51.100.0/27',
    ]);
  });

  it('notes that IPv6 CIDRs cannot be matched, and fails when nothing IPv4 is left', () => {
    const { input, notes } = ok(buildSuppressionRule({ cidrs: ['203.0.113.0/28', '2001:db8::/48'] }));
    expect(addressesOf(input)).toEqual(['203.0.113.0/28']);
    expect(notes).toEqual([
      '2001:db8::/48: IPv6 is not matched by the ipAddressV4 criterion; GuardDuty has no IPv6 filter attribute for it',
    ]);
    expect(buildSuppressionRule({ cidrs: ['2001:db8::/48'] })).toEqual({ ok: false, error: 'no IPv4 egress CIDRs to put in the rule' });
    expect(buildSuppressionRule({ cidrs: [] })).toEqual({ ok: false, error: 'no IPv4 egress CIDRs to put in the rule' });
  });

  it('refuses an invalid CIDR', () => {
    expect(buildSuppressionRule({ cidrs: ['203.0.113.0/33'] })).toEqual({ ok: false, error: '"203.0.113.0/33" is not a valid CIDR' });
  });

  it.each([
    ['ab', false],
    ['abc', true],
    ['a'.repeat(64), true],
    ['a'.repeat(65), false],
    ['has space', false],
    ["quote'd", false],
    ['slash/name', false],
    ['Gw.Dc1_rule-2', true],
  ])('filter name %j valid: %s', (name, valid) => {
    const r = buildSuppressionRule({ cidrs: ['203.0.113.1'], name });
    expect(r.ok).toBe(valid);
    if (!r.ok) expect(r.error).toBe(`filter name "${name}" must be 3-64 of A-Z a-z 0-9 . _ -`);
  });

  it.each([0, 101, 1.5, Number.NaN])('rank %d is refused', (rank) => {
    expect(buildSuppressionRule({ cidrs: ['203.0.113.1'], rank })).toEqual({ ok: false, error: `rank ${rank} must be an integer 1-100` });
  });
});

/** Runs the command through bash with `aws` defined as a function that prints its arguments NUL-separated. */
function shellArgs(command: string): string[] {
  const script = `aws() { if [ "$2" = list-detectors ]; then printf 'DETECTOR'; return; fi; printf '%s\\0' "$@"; }\n${command}\n`;
  const r = spawnSync('bash', ['-c', script], { encoding: 'utf8', cwd: '/' });
  expect(r.status).toBe(0);
  return r.stdout.split('\0').slice(0, -1);
}

describe('suppressionRuleCli', () => {
  const { input } = ok(buildSuppressionRule({ cidrs: ['203.0.113.0/28'], expand: true, detectorId: '12abc34d567e8fa901bc2d34e56789f0' }));

  it('is an `aws guardduty create-filter` command over several lines', () => {
    const text = suppressionRuleCli(input);
    expect(text.startsWith("aws guardduty create-filter \\\n  --detector-id '12abc34d567e8fa901bc2d34e56789f0' \\\n")).toBe(true);
    expect(text).toContain('--action ARCHIVE');
    expect(text).toContain('--rank 1');
  });

  it("parses back: the --finding-criteria JSON is the rule's FindingCriteria", () => {
    const text = suppressionRuleCli(input);
    const m = /--finding-criteria '([^']*)'$/.exec(text);
    expect(m).not.toBeNull();
    expect(JSON.parse(m![1]!)).toEqual(input.FindingCriteria);
  });

  it('is valid shell: every argument arrives whole', () => {
    const withQuote = { ...input, Description: 'the gateway\'s "static" rule; $HOME `id`' };
    const args = shellArgs(suppressionRuleCli(withQuote));
    expect(args).toEqual([
      'guardduty',
      'create-filter',
      '--detector-id',
      '12abc34d567e8fa901bc2d34e56789f0',
      '--name',
      'egress-witness-gateway-cidrs',
      '--description',
      'the gateway\'s "static" rule; $HOME `id`',
      '--action',
      'ARCHIVE',
      '--rank',
      '1',
      '--finding-criteria',
      JSON.stringify(input.FindingCriteria),
    ]);
  });

  it('looks the detector id up when none is given', () => {
    const { input: noId } = ok(buildSuppressionRule({ cidrs: ['203.0.113.1'] }));
    const text = suppressionRuleCli(noId);
    expect(text).toContain('--detector-id "$(aws guardduty list-detectors --query \'DetectorIds[0]\' --output text)"');
    expect(shellArgs(text).slice(2, 4)).toEqual(['--detector-id', 'DETECTOR']);
  });

  it('quotes the JMESPath query of the lookup, so a file named like it cannot be globbed in', () => {
    const { input: noId } = ok(buildSuppressionRule({ cidrs: ['203.0.113.1'] }));
    const dir = mkdtempSync(join(tmpdir(), 'egress-witness-glob-'));
    try {
      writeFileSync(join(dir, 'DetectorIds0'), '');
      const script = `cd "$1"; aws() { if [ "$2" = list-detectors ]; then printf '%s' "$4"; return; fi; printf '%s\\0' "$@"; }\n${suppressionRuleCli(noId)}\n`;
      const r = spawnSync('bash', ['-c', script, 'bash', dir], { encoding: 'utf8' });
      expect(r.status).toBe(0);
      expect(r.stdout.split('\0').slice(2, 4)).toEqual(['--detector-id', 'DetectorIds[0]']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('shell-quotes a given detector id', () => {
    const text = suppressionRuleCli({ ...input, DetectorId: 'abc; echo pwned' });
    expect(text).toContain("--detector-id 'abc; echo pwned' \\\n");
    expect(shellArgs(text).slice(2, 4)).toEqual(['--detector-id', 'abc; echo pwned']);
  });
});
