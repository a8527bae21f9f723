/**
 * The documentation in docs/ is kept in step with the code: every metric,
 * configuration key, correlation rule, proxy error reason, telemetry field and
 * findings field the code defines is documented, nothing documented is gone
 * from the code, and every link between the pages resolves.
 *
 * Closed string unions that exist only as types (ProxyFailure, RuleName, …)
 * are read with the TypeScript compiler, so a new member fails here until the
 * docs mention it.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createAgentMetrics } from '../../../agent/metrics/metrics.js';
import { createDetectorMetrics } from '../../../detector/metrics/metrics.js';
import { agentConfigSchema } from '../../../agent/config/schema.js';
import { detectorConfigSchema } from '../../../detector/config/schema.js';
import { failureAnswer, type ProxyFailure } from '../../../agent/proxy/failures.js';
import { CORRELATION_RULES } from '../../../detector/correlate/decide.js';
import type { Decision } from '../../../detector/correlate/types.js';
import { batchSchema, heartbeatSchema, observationSchema, KEY_KINDS, OUTCOMES } from '../../../protocol/telemetry.js';
import { normalizeRecord } from '../../../detector/cloudtrail/parse.js';
import { findingFromDecision } from '../../../detector/findings/shape.js';
import { markdownAnchors, markdownProse } from '../../helpers/markdown.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const docsDir = join(root, 'docs');

function doc(name: string): string {
  return readFileSync(join(docsDir, name), 'utf8');
}

/** Every Markdown file under docs/, as paths relative to docs/. */
function docFiles(dir = docsDir): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? docFiles(join(dir, e.name)) : e.name.endsWith('.md') ? [relative(docsDir, join(dir, e.name))] : [],
  );
}

const allDocs = docFiles()
  .map((f) => doc(f))
  .join('\n');

/** The document's text outside fenced code blocks. */
const prose = markdownProse;

/** The words a document writes as inline code: `like_this`. */
function inlineCode(text: string): Set<string> {
  return new Set([...prose(text).matchAll(/`([^`\n]+)`/g)].map((m) => m[1]!));
}

function missingFrom(words: Iterable<string>, documented: Set<string>): string[] {
  return [...new Set(words)].filter((w) => !documented.has(w)).sort();
}

// --- closed unions read from the TypeScript sources -------------------------------------------

const SOURCES = {
  failures: join(root, 'agent/proxy/failures.ts'),
  types: join(root, 'detector/correlate/types.ts'),
  guardduty: join(root, 'detector/guardduty/decide.ts'),
  inspector: join(root, 'agent/inspect/inspector.ts'),
  transparent: join(root, 'agent/transparent/transparent-listener.ts'),
};

// No lib and no imports: the unions below are self-contained, and this keeps the program fast.
const program = ts.createProgram(Object.values(SOURCES), { noResolve: true, noLib: true, types: [], noEmit: true });
const checker = program.getTypeChecker();

function aliasType(file: string, name: string): ts.Type {
  const source = program.getSourceFile(file);
  if (!source) throw new Error(`${file} is not in the program`);
  let found: ts.TypeAliasDeclaration | undefined;
  ts.forEachChild(source, (node) => {
    if (ts.isTypeAliasDeclaration(node) && node.name.text === name) found = node;
  });
  if (!found) throw new Error(`type ${name} not found in ${file}`);
  return checker.getTypeAtLocation(found.name);
}

/** The string literals of a type (a literal or a union of literals); other members are ignored. */
function stringLiterals(type: ts.Type): string[] {
  return (type.isUnion() ? type.types : [type]).filter((t) => t.isStringLiteral()).map((t) => t.value);
}

function literalUnion(file: string, name: string): string[] {
  const values = stringLiterals(aliasType(file, name));
  if (values.length === 0) throw new Error(`type ${name} in ${file} has no string literal members`);
  return values;
}

/** One value of every ProxyFailure variant: each `reason` literal, a placeholder `code` where the variant has one. */
function everyProxyFailure(): ProxyFailure[] {
  const union = aliasType(SOURCES.failures, 'ProxyFailure');
  return (union.isUnion() ? union.types : [union]).flatMap((member) => {
    const prop = (n: string): ts.Type | null => {
      const symbol = member.getProperty(n);
      return symbol ? checker.getTypeOfSymbol(symbol) : null;
    };
    const kinds = stringLiterals(prop('kind')!);
    const reasons = prop('reason');
    const code = prop('code') !== null ? { code: 'ETEST' } : {};
    return kinds.flatMap((kind) =>
      reasons === null ? [{ kind, ...code }] : stringLiterals(reasons).map((reason) => ({ kind, reason, ...code })),
    ) as ProxyFailure[];
  });
}

// --- zod schemas ------------------------------------------------------------------------------

interface SchemaNode {
  def: { type: string; innerType?: SchemaNode; in?: SchemaNode; element?: SchemaNode; shape?: Record<string, SchemaNode> };
  shape?: Record<string, SchemaNode>;
}

/** Every key of a zod object schema at any depth, as `a.b`, with `[]` for list elements (`networks[].name`). */
function keyPaths(schema: SchemaNode, prefix = ''): string[] {
  const def = schema.def;
  switch (def.type) {
    case 'default':
    case 'nullable':
    case 'optional':
    case 'readonly':
    case 'catch':
      return keyPaths(def.innerType!, prefix);
    case 'pipe':
      return keyPaths(def.in!, prefix);
    case 'array':
      return prefix === '' ? [] : keyPaths(def.element!, `${prefix}[]`);
    case 'object':
      return Object.entries(def.shape ?? schema.shape ?? {}).flatMap(([key, value]) => {
        const path = prefix === '' ? key : `${prefix}.${key}`;
        return [path, ...keyPaths(value, path)];
      });
    default:
      return [];
  }
}

const agentKeys = keyPaths(agentConfigSchema);
const detectorKeys = keyPaths(detectorConfigSchema);

// --- tests ------------------------------------------------------------------------------------

describe('docs/metrics.md', () => {
  const documented = inlineCode(doc('metrics.md'));

  async function registered(create: (r: Registry) => unknown): Promise<string[]> {
    const registry = new Registry();
    create(registry);
    return (await registry.getMetricsAsJSON()).map((m) => m.name);
  }

  it('documents every agent metric', async () => {
    const names = await registered((r) => createAgentMetrics(r, { version: 'test', nodeVersion: 'test' }));
    expect(names.length).toBeGreaterThan(25);
    expect(missingFrom(names, documented)).toEqual([]);
  });

  it('documents every detector metric', async () => {
    const names = await registered((r) => createDetectorMetrics(r, { version: 'test', nodeVersion: 'test' }));
    expect(names.length).toBeGreaterThan(15);
    expect(missingFrom(names, documented)).toEqual([]);
  });

  it('names no egress_witness metric that the code does not register', async () => {
    const known = new Set([
      ...(await registered((r) => createAgentMetrics(r, { version: 'test', nodeVersion: 'test' }))),
      ...(await registered((r) => createDetectorMetrics(r, { version: 'test', nodeVersion: 'test' }))),
    ]);
    const mentioned = [...allDocs.matchAll(/\begress_witness_[a-z0-9_]+/g)].map((m) => m[0]);
    expect(mentioned.length).toBeGreaterThan(40);
    // A histogram's series, or a prefix as in `grep egress_witness_spool_`, are fine too.
    const exists = (n: string): boolean =>
      known.has(n) || known.has(n.replace(/_(bucket|sum|count)$/, '')) || [...known].some((k) => k.startsWith(`${n.replace(/_$/, '')}_`));
    expect([...new Set(mentioned)].filter((n) => !exists(n)).sort()).toEqual([]);
  });
});

describe('docs/configuration.md', () => {
  const text = doc('configuration.md');
  const documented = inlineCode(text);

  it('documents every key of the agent file', () => {
    expect(agentKeys.length).toBeGreaterThan(40);
    expect(agentKeys).toContain('networks[].cidrs');
    expect(missingFrom(agentKeys, documented)).toEqual([]);
  });

  it('documents every key of the detector file', () => {
    expect(detectorKeys.length).toBeGreaterThan(35);
    expect(detectorKeys).toContain('gateways[].secret_file');
    expect(missingFrom(detectorKeys, documented)).toEqual([]);
  });

  it('has a table row for no key that the schemas lack', () => {
    const known = new Set([...agentKeys, ...detectorKeys]);
    const rows = [...prose(text).matchAll(/^\| `([a-z_[\].]+)` \|/gm)].map((m) => m[1]!);
    expect(rows.length).toBeGreaterThan(70);
    expect(rows.filter((k) => !known.has(k))).toEqual([]);
  });
});

describe('docs/detection.md', () => {
  const ruleNames = literalUnion(SOURCES.types, 'RuleName');

  it('documents every correlation rule', () => {
    expect(ruleNames.length).toBeGreaterThanOrEqual(10);
    expect(missingFrom(ruleNames, inlineCode(doc('detection.md')))).toEqual([]);
  });

  it('lists the rules in the order decide() runs them', () => {
    const order = CORRELATION_RULES.map((r) => r.name);
    expect(new Set(order)).toEqual(new Set(ruleNames));
    const table = [...prose(doc('detection.md')).matchAll(/^\| (\d+) \| `([a-z-]+)` \|/gm)].map((m) => m[2]);
    expect(table).toEqual(order);
  });
});

describe('proxy error reasons', () => {
  const failures = everyProxyFailure();
  const answers = failures.map((f) => failureAnswer(f));

  it('documents every X-Egress-Witness-Error reason', () => {
    expect(answers.length).toBeGreaterThan(25);
    expect(
      missingFrom(
        answers.map((a) => a.reason),
        inlineCode(allDocs),
      ),
    ).toEqual([]);
  });

  it('gives each reason the status the proxy answers with', () => {
    const table = new Map([...prose(doc('operations.md')).matchAll(/^\| (\d{3}) \| `([^`]+)` \|/gm)].map((m) => [m[2]!, Number(m[1])]));
    const wrong = answers
      .filter((a) => table.get(a.reason) !== a.status)
      .map((a) => `${a.reason}: code ${a.status}, docs ${table.get(a.reason) ?? 'none'}`);
    expect(wrong).toEqual([]);
  });
});

describe('docs/telemetry.md', () => {
  const documented = inlineCode(doc('telemetry.md'));

  it('documents every field of a batch, an observation and a heartbeat', () => {
    const fields = [batchSchema, observationSchema, heartbeatSchema].flatMap((s) => Object.keys(s.shape));
    expect(fields.length).toBeGreaterThan(35);
    expect(missingFrom(fields, documented)).toEqual([]);
  });

  it('lists every outcome and key kind', () => {
    expect(missingFrom([...OUTCOMES, ...KEY_KINDS], inlineCode(allDocs))).toEqual([]);
  });
});

describe('docs/findings.md', () => {
  /** Leaf paths of a value: `resource.accessKeyDetails.accessKeyId`; lists and `remoteIpDetails` count as leaves. */
  function leafPaths(value: unknown, prefix = ''): string[] {
    if (value === null || typeof value !== 'object' || Array.isArray(value) || prefix.endsWith('remoteIpDetails')) return [prefix];
    return Object.entries(value).flatMap(([k, v]) => leafPaths(v, prefix === '' ? k : `${prefix}.${k}`));
  }

  it('documents every field of a finding', () => {
    const normalized = normalizeRecord({
      eventVersion: '1.11',
      eventID: 'e-1',
      eventTime: '2026-01-01T00:00:00Z',
      eventSource: 'sts.amazonaws.com',
      eventName: 'GetCallerIdentity',
      awsRegion: 'us-east-1',
      sourceIPAddress: '203.0.113.5',
      userAgent: 'aws-cli/2',
      errorCode: 'AccessDenied',
      recipientAccountId: '609629065308',
      userIdentity: {
        type: 'AssumedRole',
        arn: 'arn:aws:sts::609629065308:assumed-role/app-role/i-0a1b2c3d4e5f60718',
        principalId: 'AROAEXAMPLE:i-0a1b2c3d4e5f60718',
        accessKeyId: 'ASIAY34FZKBOKMUTVV7A',
        sessionContext: { ec2RoleDelivery: '2.0' },
      },
    });
    if (normalized.kind !== 'event') throw new Error(normalized.reason);
    const decision: Decision = {
      eventId: 'e-1',
      eventTime: '2026-01-01T00:00:00Z',
      accessKeyId: 'ASIAY34FZKBOKMUTVV7A',
      sourceIPAddress: '203.0.113.5',
      disposition: 'finding',
      rule: 'gateway-unattested',
      severity: 8,
      gatewayId: 'gw-a',
      evidence: [],
      instanceId: 'i-0a1b2c3d4e5f60718',
      reason: 'test',
    };
    const finding = findingFromDecision(decision, normalized.event, {
      accountId: '609629065308',
      region: 'us-east-1',
      nowIso: '2026-01-01T00:01:00Z',
    });
    const paths = leafPaths(finding);
    expect(paths).toContain('service.action.awsApiCallAction.userAgent');
    expect(paths).toContain('egressWitness.gatewayId');
    expect(missingFrom(paths, inlineCode(doc('findings.md')))).toEqual([]);
  });
});

describe('docs/guardduty.md and docs/inspection.md', () => {
  it('documents every GuardDuty decision reason', () => {
    expect(missingFrom(literalUnion(SOURCES.guardduty, 'GuardDutyReason'), inlineCode(doc('guardduty.md')))).toEqual([]);
  });

  it('documents every TLS interception failure cause', () => {
    expect(missingFrom(literalUnion(SOURCES.inspector, 'InterceptFailureCause'), inlineCode(doc('inspection.md')))).toEqual([]);
  });

  it('documents every way a client earns automatic passthrough', () => {
    expect(missingFrom(literalUnion(SOURCES.inspector, 'PassthroughCause'), inlineCode(doc('inspection.md')))).toEqual([]);
  });
});

describe('docs/transparent.md', () => {
  it('documents every reason a redirected connection is closed before it is routed', () => {
    expect(missingFrom(literalUnion(SOURCES.transparent, 'TransparentRejectReason'), inlineCode(doc('transparent.md')))).toEqual([]);
  });
});

describe('links between the pages', () => {
  const anchors = markdownAnchors;

  it('every relative link points at an existing page and heading', () => {
    const broken: string[] = [];
    const files = docFiles();
    expect(files.length).toBeGreaterThanOrEqual(14);
    for (const file of files) {
      for (const m of prose(doc(file)).matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1]!;
        if (/^[a-z]+:/.test(target)) continue;
        const [path, anchor] = target.split('#') as [string, string | undefined];
        const targetFile = path === '' ? file : relative(docsDir, resolve(docsDir, dirname(file), path));
        if (!targetFile.endsWith('.md') && anchor === undefined && existsSync(join(docsDir, targetFile))) continue; // e.g. a JSON Schema
        if (!files.includes(targetFile)) {
          broken.push(`${file}: ${target} (no such page)`);
          continue;
        }
        if (anchor !== undefined && !anchors(doc(targetFile)).has(anchor)) broken.push(`${file}: ${target} (no such heading)`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('docs/README.md links every page', () => {
    const index = doc('README.md');
    const unlinked = docFiles().filter((f) => f !== 'README.md' && !index.includes(`](${f})`));
    expect(unlinked).toEqual([]);
  });
});
