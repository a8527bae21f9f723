/**
 * Mutators that start from a structured, valid input and damage it a little,
 * so the parser gets past its first checks and its inner paths run. Each
 * mutation is plain data (positions are taken modulo the input's length), so
 * fast-check can shrink a failing case to the fewest, simplest mutations.
 */
import fc from 'fast-check';

// ── bytes ────────────────────────────────────────────────────────────────────

export type ByteMutation =
  | { op: 'set'; at: number; value: number }
  | { op: 'truncate'; at: number }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'delete'; at: number; count: number }
  | { op: 'u16'; at: number; value: number }
  | { op: 'u24'; at: number; value: number }
  | { op: 'append'; bytes: Uint8Array };

/** Lengths that sit on the edges of length checks. */
const EDGE_U16 = [0, 1, 2, 3, 4, 5, 31, 32, 33, 0x7f, 0x80, 0xff, 0x100, 0x3fff, 0x4000, 0x4001, 0x7fff, 0x8000, 0xfffe, 0xffff];

export const byteMutation: fc.Arbitrary<ByteMutation> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 8 }) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('u16' as const),
      at: fc.nat(),
      value: fc.oneof(fc.constantFrom(...EDGE_U16), fc.integer({ min: 0, max: 0xffff })),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('u24' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 0xffffff }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('append' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }) }) },
);

export function applyByteMutations(input: Uint8Array, mutations: readonly ByteMutation[]): Buffer {
  let b = Buffer.from(input);
  for (const m of mutations) {
    const n = b.length;
    switch (m.op) {
      case 'set':
        if (n > 0) b[m.at % n] = m.value;
        break;
      case 'truncate':
        b = b.subarray(0, m.at % (n + 1));
        break;
      case 'insert': {
        const at = m.at % (n + 1);
        b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
        break;
      }
      case 'delete': {
        const at = n === 0 ? 0 : m.at % n;
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.count)]);
        break;
      }
      case 'u16':
        if (n >= 2) b.writeUInt16BE(m.value, m.at % (n - 1));
        break;
      case 'u24':
        if (n >= 3) b.writeUIntBE(m.value, m.at % (n - 2), 3);
        break;
      case 'append':
        b = Buffer.concat([b, m.bytes]);
        break;
    }
  }
  return b;
}

// ── text ─────────────────────────────────────────────────────────────────────

export type TextMutation =
  | { op: 'insert'; at: number; text: string }
  | { op: 'delete'; at: number; count: number }
  | { op: 'replace'; at: number; count: number; text: string }
  | { op: 'repeat'; at: number; count: number; times: number }
  | { op: 'case'; at: number; count: number };

/** Characters that matter to the text formats fuzzed here: separators, escapes, quotes, controls, non-ASCII. */
const INTERESTING = [
  ' ',
  '\t',
  '\n',
  '\r',
  ',',
  ';',
  ':',
  '=',
  '&',
  '?',
  '#',
  '/',
  '\\',
  '%',
  '%2F',
  '%3D',
  '%26',
  '%zz',
  '%',
  '+',
  '*',
  '.',
  '[',
  ']',
  '{',
  '}',
  '"',
  "'",
  '-',
  '_',
  '\u0000',
  '\u00e9',
  '\u{1f600}',
  '\ufeff',
  'AWS4',
  'aws4_request',
  'Credential=',
  'AKIA',
  'ASIA',
  '0',
  '9',
  'Z',
  'z',
  '::',
  '[::1]',
  '0x',
  '..',
];

export const insertText: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...INTERESTING) },
  { weight: 1, arbitrary: fc.string({ maxLength: 8 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 4 }) },
);

export const textMutation: fc.Arbitrary<TextMutation> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant('insert' as const), at: fc.nat(), text: insertText }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 12 }) }) },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('replace' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 6 }), text: insertText }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('repeat' as const),
      at: fc.nat(),
      count: fc.integer({ min: 1, max: 24 }),
      times: fc.integer({ min: 2, max: 40 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('case' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 16 }) }) },
);

export function applyTextMutations(input: string, mutations: readonly TextMutation[]): string {
  let s = input;
  for (const m of mutations) {
    const at = m.at % (s.length + 1);
    switch (m.op) {
      case 'insert':
        s = s.slice(0, at) + m.text + s.slice(at);
        break;
      case 'delete':
        s = s.slice(0, at) + s.slice(at + m.count);
        break;
      case 'replace':
        s = s.slice(0, at) + m.text + s.slice(at + m.count);
        break;
      case 'repeat':
        s = s.slice(0, at) + s.slice(at, at + m.count).repeat(m.times) + s.slice(at + m.count);
        break;
      case 'case': {
        const part = s.slice(at, at + m.count);
        const flipped = [...part].map((c) => (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase())).join('');
        s = s.slice(0, at) + flipped + s.slice(at + m.count);
        break;
      }
    }
  }
  return s;
}

/** A string arbitrary: the structured text as it is, or with up to `max` mutations. */
export function mutatedText(base: fc.Arbitrary<string>, max = 4): fc.Arbitrary<{ text: string; base: string; mutated: boolean }> {
  return fc
    .tuple(base, fc.array(textMutation, { maxLength: max }))
    .map(([b, ms]) => ({ text: applyTextMutations(b, ms), base: b, mutated: ms.length > 0 }));
}

// ── JSON values ──────────────────────────────────────────────────────────────

export type JsonMutation =
  | { op: 'delete'; path: number[] }
  | { op: 'set'; path: number[]; value: unknown }
  | { op: 'retype'; path: number[]; to: number }
  | { op: 'nest'; path: number[]; depth: number }
  | { op: 'proto'; path: number[]; value: unknown }
  | { op: 'rename'; path: number[] };

const path = fc.array(fc.nat(), { minLength: 1, maxLength: 6 });
const jsonLeaf = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom('', ' ', '1.0', '2024-05-01T12:00:00Z', 'AssumedRole', 'ASIAEXAMPLEEXAMPLE12', '203.0.113.10', '::1', 'x'.repeat(300)),
);
export const jsonValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: jsonLeaf },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
);

export const jsonMutation: fc.Arbitrary<JsonMutation> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant('delete' as const), path }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('set' as const), path, value: jsonValue }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('retype' as const), path, to: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('nest' as const), path, depth: fc.integer({ min: 1, max: 300 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('proto' as const), path, value: jsonValue }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('rename' as const), path }) },
);

type Container = Record<string, unknown> | unknown[];
const isContainer = (v: unknown): v is Container => typeof v === 'object' && v !== null;

/** Walks `path` (indexes taken modulo the number of children) and returns the last container and the key in it. */
function locate(root: Container, path: readonly number[]): { parent: Container; key: string | number } | null {
  let parent: Container = root;
  for (let i = 0; i < path.length; i++) {
    const keys: (string | number)[] = Array.isArray(parent) ? parent.map((_, k) => k) : Object.keys(parent);
    if (keys.length === 0) return null;
    const key = keys[(path[i] as number) % keys.length] as string | number;
    const child: unknown = (parent as Record<string | number, unknown>)[key];
    if (i === path.length - 1 || !isContainer(child)) return { parent, key };
    parent = child;
  }
  return null;
}

function retype(v: unknown, to: number): unknown {
  const options: unknown[] = [
    null,
    typeof v === 'string' ? Number(v) : String(JSON.stringify(v) ?? ''),
    [v],
    { value: v },
    typeof v === 'number' ? -v : 0,
    typeof v === 'boolean' ? !v : true,
    typeof v === 'string' ? v.toUpperCase() : '',
    typeof v === 'string' ? `${v}\u0000` : v,
  ];
  return options[to % options.length];
}

function setOwn(target: Container, key: string | number, value: unknown): void {
  // defineProperty so that "__proto__" becomes a plain field, as JSON.parse makes it.
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/** A deep copy of `value` with the mutations applied; the input is left alone. */
export function applyJsonMutations(value: unknown, mutations: readonly JsonMutation[]): unknown {
  const root: { v: unknown } = { v: structuredClone(value) };
  for (const m of mutations) {
    const spot = locate(root, [0, ...m.path]);
    if (!spot) continue;
    const { parent, key } = spot;
    const current = (parent as Record<string | number, unknown>)[key];
    switch (m.op) {
      case 'delete':
        if (Array.isArray(parent) && typeof key === 'number') parent.splice(key, 1);
        else delete (parent as Record<string | number, unknown>)[key];
        break;
      case 'set':
        setOwn(parent, key, structuredClone(m.value));
        break;
      case 'retype':
        setOwn(parent, key, retype(current, m.to));
        break;
      case 'nest': {
        let v: unknown = current;
        for (let i = 0; i < m.depth; i++) v = i % 2 === 0 ? [v] : { v };
        setOwn(parent, key, v);
        break;
      }
      case 'proto':
        if (isContainer(current) && !Array.isArray(current)) setOwn(current, '__proto__', structuredClone(m.value));
        else setOwn(parent, '__proto__', structuredClone(m.value));
        break;
      case 'rename':
        if (!Array.isArray(parent) && typeof key === 'string') {
          delete parent[key];
          setOwn(parent, key.charAt(0).toUpperCase() === key.charAt(0) ? key.toLowerCase() : key.toUpperCase(), current);
        }
        break;
    }
  }
  return root.v;
}

/** A JSON value arbitrary: the structured value, or a copy with up to `max` mutations. */
export function mutatedJson(base: fc.Arbitrary<unknown>, max = 4): fc.Arbitrary<{ value: unknown; base: unknown; mutated: boolean }> {
  return fc
    .tuple(base, fc.array(jsonMutation, { maxLength: max }))
    .map(([b, ms]) => ({ value: ms.length === 0 ? b : applyJsonMutations(b, ms), base: b, mutated: ms.length > 0 }));
}

/** Every string anywhere in a JSON value (keys included). */
export function stringsIn(value: unknown, out: Set<string> = new Set()): Set<string> {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'string') out.add(v);
    else if (isContainer(v)) {
      for (const [k, c] of Object.entries(v)) {
        out.add(k);
        stack.push(c);
      }
    }
  }
  return out;
}
