// The alerting rules in observability/prometheus: promtool accepts them and passes their unit tests, every alert
// has its annotations and a runbook section that exists, and the unit tests cover each alert firing and not firing.
// (That the rules name only metrics the daemons export is checked against a live scrape in
// test/integration/observability/exported-metrics.test.ts.)
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { runPromtool } from '../common/metrics/promtool.js';
import { markdownAnchors } from '../../helpers/markdown.js';

const dir = resolve('observability/prometheus');
const RULES = 'egress-witness.rules.yml';
const TESTS = 'egress-witness.rules.test.yml';

interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RulesFile {
  groups: { name: string; rules: AlertRule[] }[];
}
interface RulesTestFile {
  rule_files: string[];
  tests: { name: string; alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[];
}

const rules = parse(readFileSync(join(dir, RULES), 'utf8')) as RulesFile;
const alerts = rules.groups.flatMap((g) => g.rules);
const unitTests = parse(readFileSync(join(dir, TESTS), 'utf8')) as RulesTestFile;
const scratch = mkdtempSync(join(tmpdir(), 'ew-rules-'));

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('observability/prometheus/egress-witness.rules.yml', () => {
  it('passes promtool check rules', async () => {
    const r = await runPromtool(['check', 'rules', RULES], '', dir);
    expect(r.output).toContain(`SUCCESS: ${alerts.length} rules found`);
    expect(r.code).toBe(0);
  });

  it('passes its promtool unit tests', async () => {
    const r = await runPromtool(['test', 'rules', TESTS], '', dir);
    expect(r.output).toContain('SUCCESS');
    expect(r.code).toBe(0);
  });

  it('the unit tests can fail: one expected label changed makes promtool test rules fail', async () => {
    copyFileSync(join(dir, RULES), join(scratch, RULES));
    const text = readFileSync(join(dir, TESTS), 'utf8');
    const broken = text.replace(
      "exp_labels: { severity: critical, job: egress-witness-agent, instance: 'gw1:9464' }",
      "exp_labels: { severity: warning, job: egress-witness-agent, instance: 'gw1:9464' }",
    );
    expect(broken).not.toBe(text);
    writeFileSync(join(scratch, TESTS), broken);
    const r = await runPromtool(['test', 'rules', TESTS], '', scratch);
    expect(r.code).not.toBe(0);
    expect(r.output).toContain('FAILED');
    expect(r.output).toContain('alertname: EgressWitnessAgentDown');
  });

  it('promtool check rules rejects a broken expression (the check above can fail)', async () => {
    writeFileSync(
      join(scratch, 'broken.rules.yml'),
      'groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: rate(egress_witness_denied_total[5m]\n',
    );
    const r = await runPromtool(['check', 'rules', 'broken.rules.yml'], '', scratch);
    expect(r.code).not.toBe(0);
  });

  it('covers what an operator needs to hear about', () => {
    expect(alerts.map((a) => a.alert).sort()).toEqual(
      [
        'EgressWitnessAgentDown',
        'EgressWitnessDetectorDown',
        'EgressWitnessNotReady',
        'EgressWitnessReloadFailed',
        'EgressWitnessTunnelsNearCap',
        'EgressWitnessTunnelLimitReached',
        'EgressWitnessTlsInterceptFailures',
        'EgressWitnessEgressOutsideCidrs',
        'EgressWitnessEgressCheckFailing',
        'EgressWitnessSpoolGrowing',
        'EgressWitnessSpoolNearCap',
        'EgressWitnessTelemetryDropped',
        'EgressWitnessTelemetrySinkFailing',
        'EgressWitnessTelemetryDeadLettered',
        'EgressWitnessShippingFailing',
        'EgressWitnessTelemetryUnauthorized',
        'EgressWitnessGatewaySilent',
        'EgressWitnessFindings',
        'EgressWitnessFindingsUnverified',
        'EgressWitnessCloudTrailLag',
        'EgressWitnessCloudTrailFilesFailing',
        'EgressWitnessIngestFailing',
        'EgressWitnessWebhookFailing',
        'EgressWitnessGuardDutyArchiveFailing',
        'EgressWitnessGuardDutyPollFailing',
        'EgressWitnessSecurityHubExportStalled',
        'EgressWitnessSecurityHubFindingsRefused',
      ].sort(),
    );
  });

  it('gives every alert a severity, a summary, a description and a runbook section of docs/operations.md', () => {
    const anchors = markdownAnchors(readFileSync(resolve('docs/operations.md'), 'utf8'));
    const problems: string[] = [];
    for (const a of alerts) {
      if (!['critical', 'warning'].includes(a.labels?.severity ?? '')) problems.push(`${a.alert}: severity`);
      if (!a.annotations?.summary) problems.push(`${a.alert}: summary`);
      if ((a.annotations?.description ?? '').length < 40) problems.push(`${a.alert}: description`);
      const url = a.annotations?.runbook_url ?? '';
      const m = /^docs\/operations\.md#([a-z0-9-]+)$/.exec(url);
      if (!m) problems.push(`${a.alert}: runbook_url ${url}`);
      else if (!anchors.has(m[1]!) || m[1] !== a.alert.toLowerCase())
        problems.push(`${a.alert}: no section #${m[1]} in docs/operations.md`);
    }
    expect(problems).toEqual([]);
  });

  it('has unit tests with each alert firing and not firing', () => {
    expect(unitTests.rule_files).toEqual([RULES]);
    const cases = unitTests.tests.flatMap((t) => t.alert_rule_test ?? []);
    const missing = alerts.flatMap((a) => {
      const mine = cases.filter((c) => c.alertname === a.alert);
      return [
        ...(mine.some((c) => c.exp_alerts.length > 0) ? [] : [`${a.alert}: never firing`]),
        ...(mine.some((c) => c.exp_alerts.length === 0) ? [] : [`${a.alert}: never quiet`]),
      ];
    });
    expect(missing).toEqual([]);
  });
});
