/**
 * The findings file and the decision record say the same thing the same way where they overlap
 * (docs/findings.md#findings-and-decision-records): a running detector raises findings from
 * CloudTrail records (an attested call, a gateway's address without attestation, an external
 * address twice) and keeps a GuardDuty finding; `egress-witness detector decisions` (the built
 * CLI, a child process) prints the decisions from its store; every finding line is held to the
 * documented table against the record of its latest occurrence, the kept GuardDuty line to the
 * record's `detail`, and the two `jq` projections the table shows give the same lines.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { heartbeat, observation } from '../../unit/detector/scenario.js';
import {
  cloudTrailRecord,
  EXTERNAL_IP,
  GW1_IP,
  newAccessKeyId,
  startDetector,
  waitFor,
  type DetectorHarness,
  type JsonDoc,
} from '../../helpers/detector.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const bin = join(root, 'dist/cli/main.js');
const GD_FINDINGS = join(root, 'test/fixtures/guardduty/get-findings-response.json');

let h: DetectorHarness;
let records: JsonDoc[];
let findingLines: JsonDoc[];
const keys = { attested: newAccessKeyId(), unattested: newAccessKeyId(), external: newAccessKeyId() };

function decisions(): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(process.execPath, [bin, 'detector', 'decisions', '--config', h.configPath, '--since', '1h'], (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
    ),
  );
}

function jsonLines(text: string): JsonDoc[] {
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as JsonDoc);
}

beforeAll(async () => {
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run "npm run build" first (npm test does)`);
  h = await startDetector({ config: { correlation: { grace: '0s' }, guardduty: { webhook_kept: true } } });
  const now = Date.now();
  const t = now - 30_000;
  await h.ingest('gw1', [
    heartbeat('gw1', t - 20_000),
    heartbeat('gw1', t + 10_000),
    observation({ accessKeyId: keys.attested, at: t - 5_000 }),
  ]);
  const posted = await h.postJson('/v1/cloudtrail', [
    cloudTrailRecord({ key: keys.attested, sourceIp: GW1_IP, time: t }),
    cloudTrailRecord({ key: keys.unattested, sourceIp: GW1_IP, time: t }),
    cloudTrailRecord({ key: keys.external, sourceIp: EXTERNAL_IP, time: t - 10_000 }),
    cloudTrailRecord({ key: keys.external, sourceIp: EXTERNAL_IP, time: t }),
  ]);
  expect(posted.json).toMatchObject({ records: 4, decided: 4 });
  // A GuardDuty finding as GuardDuty returns it, kept: its line goes to the findings file too.
  const gd = (JSON.parse(readFileSync(GD_FINDINGS, 'utf8')) as { findings: JsonDoc[] }).findings.find((f) =>
    String(f.id).startsWith('d4e6'),
  )!;
  expect(await h.app.guarddutyProcessor.process(gd)).toMatchObject({ kind: 'decided', decision: { decision: 'keep' } });
  findingLines = await waitFor(() => {
    const lines = existsSync(h.findingsFile) ? jsonLines(readFileSync(h.findingsFile, 'utf8')) : [];
    return lines.length === 4 ? lines : null;
  }, 'three finding lines and one kept GuardDuty line');
  records = jsonLines(await decisions());
});

afterAll(async () => {
  await h?.cleanup();
});

describe('findings file and decision records', () => {
  it('each finding line holds its latest occurrence under the decision record’s names and values', () => {
    const findings = findingLines.filter((l) => l.kind === undefined);
    expect(findings.map((f): unknown => f.egressWitness.rule).sort()).toEqual(['external', 'external', 'gateway-unattested']);
    for (const f of findings) {
      const w = f.egressWitness;
      const record = records.find((r) => r.id === w.eventIds.at(-1))!;
      expect(record, `the decision record of ${w.eventIds.at(-1)}`).toBeDefined();
      expect(record.kind).toBe('cloudtrail');
      // Same name, same value.
      for (const field of ['disposition', 'rule', 'accessKeyId', 'sourceIp', 'gatewayId']) expect(w[field], field).toEqual(record[field]);
      expect(w.reason).toBe(record.detail.reason);
      expect(w.evidence).toEqual(record.detail.evidence);
      // GuardDuty's own places for the same facts.
      expect(f.resource.accessKeyDetails.accessKeyId).toBe(record.accessKeyId);
      expect(f.service.action.awsApiCallAction.remoteIpDetails).toEqual({ ipAddressV4: record.sourceIp });
      expect(Date.parse(f.service.eventLastSeen)).toBe(Date.parse(record.time));
      expect(f.resource.instanceDetails.instanceId).toBe(record.detail.instanceId);
      expect(f.severity).toBeGreaterThanOrEqual(record.detail.severity);
      // Every occurrence is a decision record.
      for (const id of w.eventIds) expect(records.map((r): unknown => r.id)).toContain(id);
    }
    const external = findings.filter((f) => f.egressWitness.rule === 'external');
    expect(external.map((f): unknown[] => [f.service.count, f.egressWitness.gatewayId])).toEqual([
      [1, null],
      [2, null],
    ]);
    expect(findings.find((f) => f.egressWitness.rule === 'gateway-unattested')!.egressWitness.gatewayId).toBe('gw1');
    // The attested call is a decision and no finding.
    expect(records.find((r) => r.accessKeyId === keys.attested)).toMatchObject({ disposition: 'suppressed', rule: 'attested' });
  });

  it('a kept GuardDuty line carries the GuardDuty decision record’s detail unchanged', () => {
    const kept = findingLines.filter((l) => l.kind === 'guardduty-kept');
    expect(kept).toHaveLength(1);
    const record = records.find((r) => r.kind === 'guardduty')!;
    expect(kept[0]!.egressWitness).toEqual(record.detail);
    expect(record).toMatchObject({ disposition: kept[0]!.egressWitness.decision, rule: kept[0]!.egressWitness.reason });
  });

  it('the two jq projections of docs/findings.md read the same lines from both outputs', () => {
    const text = readFileSync(join(root, 'docs/findings.md'), 'utf8');
    const section = text.slice(text.indexOf('## Findings and decision records'), text.indexOf('## Ids and aggregation'));
    const filters = [...section.matchAll(/\| jq -c '([^']+)'|^jq -c '([^']+)'/gm)].map((m) => m[1] ?? m[2]!);
    expect(filters).toHaveLength(2);
    expect(section).toContain('egress-witness detector decisions --config /etc/egress-witness/detector.yaml --disposition finding | jq');
    const fromRecords = execFileSync('jq', ['-c', filters[0]!], {
      input: records
        .filter((r) => r.disposition === 'finding')
        .map((r) => JSON.stringify(r))
        .join('\n'),
      encoding: 'utf8',
    });
    const fromFindings = execFileSync('jq', ['-c', filters[1]!], { input: readFileSync(h.findingsFile, 'utf8'), encoding: 'utf8' });
    const lines = (s: string): string[] => s.split('\n').filter(Boolean).sort();
    expect(lines(fromFindings)).toHaveLength(3);
    expect(lines(fromFindings)).toEqual(lines(fromRecords));
    expect(lines(fromFindings).some((l) => l.includes('null,"reason":null'))).toBe(false);
  });
});
