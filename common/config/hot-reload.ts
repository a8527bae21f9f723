/**
 * What SIGHUP may change. A reload takes the new values of the listed hot
 * paths and keeps the running value of everything else (listeners, state
 * directories, telemetry destination…), reporting those that differ so the
 * operator knows a restart is needed. Pure.
 */

type Tree = Record<string, unknown>;

/**
 * Every dotted path of a config type (`proxy`, `proxy.allowed_ports`, …): a
 * section (optional or nullable alike) recurses, arrays and scalars are
 * leaves. Hot-reload key lists are typed with it, so a key that is not in
 * the schema does not compile.
 */
export type ConfigPath<T, Depth extends unknown[] = []> = Depth['length'] extends 5
  ? never
  : T extends readonly unknown[]
    ? never
    : T extends object
      ? {
          [K in keyof T & string]:
            | K
            | (NonNullable<T[K]> extends readonly unknown[]
                ? never
                : NonNullable<T[K]> extends object
                  ? `${K}.${ConfigPath<NonNullable<T[K]>, [...Depth, unknown]>}`
                  : never);
        }[keyof T & string]
      : never;

function getPath(obj: unknown, path: readonly string[]): unknown {
  let cur = obj;
  for (const p of path) cur = cur !== null && typeof cur === 'object' ? (cur as Tree)[p] : undefined;
  return cur;
}

/** Leaf paths ("a.b.c") of a plain object; arrays and non-plain values are leaves. */
function leaves(obj: unknown, prefix: string[] = [], out: string[][] = []): string[][] {
  if (obj !== null && typeof obj === 'object' && !Array.isArray(obj)) {
    const entries = Object.entries(obj as Tree);
    if (entries.length === 0) out.push(prefix);
    for (const [k, v] of entries) leaves(v, [...prefix, k], out);
  } else {
    out.push(prefix);
  }
  return out;
}

function isHot(path: readonly string[], hot: readonly string[]): boolean {
  const dotted = path.join('.');
  return hot.some((h) => dotted === h || dotted.startsWith(`${h}.`));
}

function setPath(obj: Tree, path: readonly string[], value: unknown): void {
  let cur = obj;
  for (let i = 0; i < path.length - 1; i++) {
    const k = path[i] as string;
    const next = cur[k];
    cur[k] = next !== null && typeof next === 'object' && !Array.isArray(next) ? { ...(next as Tree) } : {};
    cur = cur[k] as Tree;
  }
  cur[path[path.length - 1] as string] = value;
}

/** Whether every section above `path` is an object in `obj` (a hot key inside an absent section cannot apply alone). */
function parentsPresent(obj: unknown, path: readonly string[]): boolean {
  const parent = getPath(obj, path.slice(0, -1));
  return parent !== null && typeof parent === 'object' && !Array.isArray(parent);
}

/**
 * The config to run after a reload: `running` with every hot path replaced by
 * `next`'s value, plus the non-hot paths whose new value waits for a restart.
 * A hot key inside a section that is absent (null) before or after the reload
 * does not apply: switching the section on or off needs a restart.
 */
export function applyHotReload<T extends object>(
  running: T,
  next: T,
  hot: readonly ConfigPath<T>[],
): { effective: T; needsRestart: string[] } {
  const applied = (hot as readonly string[]).filter((h) => parentsPresent(running, h.split('.')) && parentsPresent(next, h.split('.')));
  const effective = structuredClone(running) as Tree;
  for (const h of applied) setPath(effective, h.split('.'), structuredClone(getPath(next, h.split('.'))));
  const needsRestart = new Set<string>();
  for (const path of [...leaves(running), ...leaves(next)]) {
    if (path.length === 0 || isHot(path, applied)) continue;
    if (JSON.stringify(getPath(running, path)) !== JSON.stringify(getPath(next, path))) needsRestart.add(path.join('.'));
  }
  return { effective: effective as T, needsRestart: [...needsRestart].sort() };
}

/** The reload_partial message: "a keeps its running value", "a, b keep their running values". */
export function restartNeededMessage(keys: readonly string[]): string {
  return keys.length === 1
    ? `configuration reloaded; ${keys[0]} keeps its running value until a restart (docs/configuration.md#what-sighup-reloads)`
    : `configuration reloaded; ${keys.join(', ')} keep their running values until a restart (docs/configuration.md#what-sighup-reloads)`;
}
