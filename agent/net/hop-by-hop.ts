/**
 * Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection and are
 * never forwarded, together with whatever the Connection header names. Both
 * forwarding paths use this one list; each adds its own transport's needs.
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Framing and routing headers a Connection header may not remove. */
const NEVER_NAMED = new Set(['host', 'content-length', 'transfer-encoding']);

/** Lower-case header names listed in Connection header values (`close` and `keep-alive` included, harmlessly). */
export function connectionNamed(values: readonly (string | undefined)[]): Set<string> {
  const out = new Set<string>();
  for (const v of values) {
    if (!v) continue;
    for (const token of v.split(',')) {
      const h = token.trim().toLowerCase();
      if (h && !NEVER_NAMED.has(h)) out.add(h);
    }
  }
  return out;
}
