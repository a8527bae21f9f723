/**
 * YAML text → validated config, collecting every problem at once as
 * `path: reason (line L, column C)`. Pure: the caller reads the file.
 *
 *   text ─parse─▶ YAML document ─toJS─▶ plain object ─zod─▶ typed config
 *                     │ syntax errors           │ schema issues (paths)
 *                     └────────── positions from the document ─────────┘
 */
import { LineCounter, parseDocument, isNode, isMap, isScalar, visit, type Document } from 'yaml';
import type { z } from 'zod';

export interface ConfigProblem {
  /** Dotted path with array indexes, e.g. `gateway.egress_cidrs[1]`; empty for the whole file. */
  readonly path: string;
  readonly message: string;
  readonly line?: number;
  readonly column?: number;
}

/** A kind of configuration file (agent, detector) and the top-level sections that only it has. */
export interface ConfigKind {
  readonly name: string;
  readonly markers: readonly string[];
}

export type ConfigResult<T> = { ok: true; value: T } | { ok: false; problems: ConfigProblem[] };

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? String(p) : `.${String(p)}`;
  }
  return out;
}

export function formatProblem(p: ConfigProblem): string {
  const where = p.line !== undefined ? ` (line ${p.line}${p.column !== undefined ? `, column ${p.column}` : ''})` : '';
  return `${p.path === '' ? '(file)' : p.path}: ${p.message}${where}`;
}

/** A header line and each problem on its own indented line, as the CLI prints them. */
export function formatProblems(header: string, problems: readonly ConfigProblem[]): string {
  return `${header}\n${problems.map((p) => `  ${formatProblem(p)}`).join('\n')}\n`;
}

/** Parses YAML (JSON is valid YAML) with positions, or returns the syntax errors. */
export function parseYaml(text: string): { ok: true; doc: Document; lines: LineCounter } | { ok: false; problems: ConfigProblem[] } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true, uniqueKeys: true, logLevel: 'error' });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      problems: doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        const first = (e.message.split('\n')[0] ?? e.code).replace(/ at line \d+, column \d+:?$/, '');
        return { path: '', message: `YAML syntax error: ${first}`, ...(pos ? { line: pos.line, column: pos.col } : {}) };
      }),
    };
  }
  return { ok: true, doc, lines };
}

function positionOf(doc: Document, lines: LineCounter, path: readonly PropertyKey[], atKey = false): { line?: number; column?: number } {
  // An unknown key is reported where the key is written, not at its value.
  if (atKey && path.length > 0) {
    const parent: unknown = path.length === 1 ? doc.contents : doc.getIn(path.slice(0, -1) as unknown[], true);
    if (isMap(parent)) {
      const pair = parent.items.find((p) => isScalar(p.key) && p.key.value === path[path.length - 1]);
      if (pair && isNode(pair.key) && pair.key.range) {
        const pos = lines.linePos(pair.key.range[0]);
        return { line: pos.line, column: pos.col };
      }
    }
  }
  // Walk up until a node with a range exists (a missing key points at its parent).
  for (let n = path.length; n >= 0; n--) {
    const node: unknown = n === 0 ? doc.contents : doc.getIn(path.slice(0, n) as unknown[], true);
    if (isNode(node) && node.range) {
      const pos = lines.linePos(node.range[0]);
      return { line: pos.line, column: pos.col };
    }
  }
  return {};
}

/** Validates YAML text against a zod schema, returning every problem with its position. */
export function loadConfigText<S extends z.ZodType>(text: string, schema: S): ConfigResult<z.output<S>> {
  const parsed = parseYaml(text);
  if (!parsed.ok) return parsed;
  const js = documentToJs(parsed.doc, parsed.lines);
  if (!js.ok) return js;
  return validateConfig(js.value ?? {}, schema, (path, atKey) => positionOf(parsed.doc, parsed.lines, path, atKey));
}

/**
 * An alias inside the node its anchor names (`a: &x {b: *x}`) makes a value
 * that contains itself: no config key accepts one, and the messages about it
 * could never print it. Each such alias is a problem at its own position.
 */
function selfReferences(doc: Document, lines?: LineCounter): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  visit(doc, {
    Alias(_key, alias) {
      const target = alias.resolve(doc);
      if (!target?.range || !alias.range || alias.range[0] < target.range[0] || alias.range[1] > target.range[1]) return;
      const pos = lines?.linePos(alias.range[0]);
      problems.push({
        path: '',
        message: `YAML error: alias *${alias.source} refers to the node that contains it (a value cannot contain itself)`,
        ...(pos ? { line: pos.line, column: pos.col } : {}),
      });
    },
  });
  return problems;
}

/** The document as plain data; unresolved, self-referencing aliases and alias bombs are problems, not exceptions. */
export function documentToJs(doc: Document, lines?: LineCounter): { ok: true; value: unknown } | { ok: false; problems: ConfigProblem[] } {
  const cycles = selfReferences(doc, lines);
  if (cycles.length > 0) return { ok: false, problems: cycles };
  try {
    return { ok: true, value: doc.toJS({ maxAliasCount: 100 }) as unknown };
  } catch (err) {
    return {
      ok: false,
      problems: [{ path: '', message: `YAML error: ${(err as Error).message.split('\n')[0] ?? 'cannot resolve the document'}` }],
    };
  }
}

export function validateConfig<S extends z.ZodType>(
  raw: unknown,
  schema: S,
  locate: (path: readonly PropertyKey[], atKey: boolean) => { line?: number; column?: number } = () => ({}),
): ConfigResult<z.output<S>> {
  const result = schema.safeParse(raw);
  if (result.success) return { ok: true, value: result.data };
  const problems: ConfigProblem[] = [];
  for (const issue of result.error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        const path = [...issue.path, key];
        problems.push({ path: formatPath(path), message: `unknown key "${key}"`, ...locate(path, true) });
      }
      continue;
    }
    problems.push({ path: formatPath(issue.path), message: issue.message, ...locate(issue.path, false) });
  }
  return { ok: false, problems: inLineOrder(problems) };
}

/** Problems as they appear in the file: by line and column (stable), those without a position first. */
export function inLineOrder(problems: readonly ConfigProblem[]): ConfigProblem[] {
  return problems
    .map((p, i) => ({ p, i }))
    .sort((a, b) => (a.p.line ?? 0) - (b.p.line ?? 0) || (a.p.column ?? 0) - (b.p.column ?? 0) || a.i - b.i)
    .map((x) => x.p);
}
