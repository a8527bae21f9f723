/**
 * GuardDuty findings (detector/guardduty/decide.ts, wire-shape.ts): the
 * fixtures' findings as EventBridge events, bare, and SDK-shaped
 * (PascalCase members), damaged structurally, then read and decided against
 * a real gateway registry and in-memory evidence that attests some keys.
 *
 * Properties: never throws; SDK-shaped findings read exactly like their wire
 * form (and the fold keeps every member as a plain field, "__proto__"
 * included); the key a decision names is one the finding carries; only a
 * finding whose key, address and span check out can be archived.
 */
import fc from 'fast-check';
import { boundDepth } from '../../../common/json/bounded-depth.js';
import { MemoryEvidence } from '../../../detector/correlate/memory-evidence.js';
import { compileRegistry } from '../../../detector/correlate/registry.js';
import { EMPTY_INVENTORY, type CorrelationPolicy } from '../../../detector/correlate/types.js';
import { decideGuardDutyFinding, parseGuardDutyFinding } from '../../../detector/guardduty/decide.js';
import { toWireShape, wireFinding } from '../../../detector/guardduty/wire-shape.js';
import { SCHEMA_VERSION } from '../../../protocol/telemetry.js';
import { mutatedJson, stringsIn } from '../lib/mutate.js';
import { readRepoJson } from '../lib/repo-file.js';
import { callParser, deepEqual, ensure, type FuzzTarget } from '../lib/target.js';

let cached: { findings: unknown[]; evidence: MemoryEvidence } | null = null;

function setup(): { findings: unknown[]; evidence: MemoryEvidence } {
  if (cached) return cached;
  const findings = (readRepoJson('test/fixtures/guardduty/get-findings-response.json') as { findings: unknown[] }).findings;
  findings.push(readRepoJson('test/fixtures/guardduty/eventbridge-guardduty-finding.json'));
  const evidence = new MemoryEvidence();
  // Sightings of every fixture key near both ends of its span, so the deep "attested" path runs too.
  for (const f of findings) {
    const view = parseGuardDutyFinding(f);
    if (view.kind !== 'finding' || !view.finding.accessKeyId) continue;
    for (const t of [view.finding.eventFirstSeen, view.finding.eventLastSeen]) {
      if (!t) continue;
      evidence.addRecord('gw1', {
        type: 'observation',
        schema: SCHEMA_VERSION,
        gatewayId: 'gw1',
        firstSeen: t,
        lastSeen: t,
        count: 1,
        clientIp: '10.0.0.5',
        network: 'vpc-prod',
        mode: 'inspect',
        host: 'sts.us-east-1.amazonaws.com',
        port: 443,
        aws: { service: 'sts', region: 'us-east-1', partition: 'aws' },
        accessKeyId: view.finding.accessKeyId,
        action: 'GetCallerIdentity',
        bytesUp: 1,
        bytesDown: 1,
        outcome: 'ok',
      });
      evidence.addRecord('gw1', {
        type: 'heartbeat',
        schema: SCHEMA_VERSION,
        gatewayId: 'gw1',
        time: t,
        agentVersion: 'fuzz',
        startedAt: t,
        uptimeSeconds: 1,
        counts: {},
        spool: { batches: 0, bytes: 0 },
      });
    }
  }
  cached = { findings, evidence };
  return cached;
}

const registry = compileRegistry({
  gateways: [
    { id: 'gw1', egressCidrs: ['203.0.113.0/28'], inspect: true },
    { id: 'gw2', egressCidrs: ['198.51.100.0/29', '2001:db8::/64'], inspect: false },
  ],
});
const policy: CorrelationPolicy = { windowMs: 300_000, heartbeatStaleMs: 120_000, endpointAttestation: 'accept', awsRanges: null };

/** SDK member names: the first letter of every key upper-cased (what toWireShape folds back). */
function toSdkShape(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(toSdkShape);
  if (typeof v !== 'object' || v === null) return v;
  const out: Record<string, unknown> = {};
  for (const [k, c] of Object.entries(v)) {
    Object.defineProperty(out, k.charAt(0).toUpperCase() + k.slice(1), {
      value: toSdkShape(c),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

interface FindingCase {
  value: unknown;
  form: 'wire' | 'envelope' | 'sdk';
}

const finding = fc.nat().map((i) => {
  const all = setup().findings;
  return structuredClone(all[i % all.length]);
});

const findingCase: fc.Arbitrary<FindingCase> = fc
  .tuple(mutatedJson(finding, 5), fc.constantFrom('wire' as const, 'envelope' as const, 'sdk' as const))
  .map(([{ value }, form]) => {
    const bare = typeof value === 'object' && value !== null && 'detail-type' in value ? (value as { detail?: unknown }).detail : value;
    if (form === 'envelope') return { value: { 'detail-type': 'GuardDuty Finding', source: 'aws.guardduty', detail: bare }, form };
    if (form === 'sdk') return { value: toSdkShape(bare), form };
    return { value, form };
  });

/** Every object in a value has a plain prototype: no input key turned into a prototype link. */
function plainEverywhere(v: unknown): boolean {
  const stack = [v];
  while (stack.length > 0) {
    const x = stack.pop();
    if (typeof x !== 'object' || x === null) continue;
    const proto: unknown = Object.getPrototypeOf(x);
    if (proto !== Object.prototype && proto !== Array.prototype && proto !== null) return false;
    stack.push(...Object.values(x));
  }
  return true;
}

/** Whether capitalising and folding back is lossless here: every key starts with a character that survives the case round trip. */
function foldable(v: unknown): boolean {
  const stack = [v];
  while (stack.length > 0) {
    const x = stack.pop();
    if (typeof x !== 'object' || x === null) continue;
    for (const [k, c] of Object.entries(x)) {
      const first = k.charAt(0);
      if (!Array.isArray(x) && (first !== first.toLowerCase() || first.toUpperCase().toLowerCase() !== first)) return false;
      stack.push(c);
    }
  }
  return true;
}

export const guardDutyFindingTarget: FuzzTarget<FindingCase> = {
  name: 'guardduty-finding',
  title: 'GuardDuty finding (EventBridge, bare, SDK-shaped) and its archive decision',
  arbitrary: findingCase,
  check({ value, form }) {
    const bounded = callParser('boundDepth', () => boundDepth(value));
    ensure(bounded !== undefined, 'no answer');
    const wire = callParser('wireFinding', () => wireFinding(bounded.value));
    ensure(plainEverywhere(wire), 'a member became a prototype link while folding SDK names');
    if (form === 'sdk' && foldable(wire)) {
      const again = toWireShape(toSdkShape(wire));
      ensure(deepEqual(again, wire), 'folding SDK names is not the inverse of capitalising them');
    }
    const parsed = callParser('parseGuardDutyFinding', () => parseGuardDutyFinding(wire));
    ensure(parsed !== undefined, 'no answer');
    if (parsed.kind === 'invalid') {
      ensure(typeof parsed.reason === 'string' && parsed.reason !== '', 'invalid without a reason');
      return;
    }
    const strings = stringsIn(value);
    const f = parsed.finding;
    ensure(f.accessKeyId === null || strings.has(f.accessKeyId), () => `key ${f.accessKeyId} is not in the finding`);
    ensure(f.remoteIp === null || strings.has(f.remoteIp), () => `address ${f.remoteIp} is not in the finding`);
    const { evidence } = setup();
    const d = callParser('decideGuardDutyFinding', () =>
      decideGuardDutyFinding(f, {
        registry,
        evidence,
        policy,
        inventory: EMPTY_INVENTORY,
        cloudTrailUses: () => [],
        ownFindings: () => 0,
      }),
    );
    ensure(d !== undefined, 'no decision');
    ensure(d.accessKeyId === f.accessKeyId, 'the decision names another key');
    if (d.decision === 'archive') {
      ensure(d.reason === 'attested' && f.accessKeyId !== null && f.remoteIp !== null, () => `archived for ${d.reason}`);
      ensure(d.evidence.start.length > 0 && d.evidence.end.length > 0, 'archived without evidence at both ends');
    }
    callParser('JSON.stringify of the decision', () => JSON.stringify(d));
  },
};
