/**
 * The parts of an HTTP request the AWS attribution code reads: a lower-cased
 * header map as Node gives it, and the request-target split into path and
 * query. Decoding never throws; a value that is not valid percent-encoding
 * decodes to null so callers can tell "absent" from "garbled".
 */

/** Header names are lower case; a repeated header arrives as an array. */
export type HeaderMap = Readonly<Record<string, string | string[] | undefined>>;

export type HeaderValue = { kind: 'absent' } | { kind: 'single'; value: string } | { kind: 'repeated' };

export function headerValue(headers: HeaderMap, name: string): HeaderValue {
  const raw = headers[name];
  if (raw === undefined) return { kind: 'absent' };
  if (typeof raw === 'string') return { kind: 'single', value: raw };
  if (raw.length === 0) return { kind: 'absent' };
  if (raw.length === 1) return { kind: 'single', value: raw[0] ?? '' };
  return { kind: 'repeated' };
}

/** The header's value when it was sent exactly once, otherwise undefined. */
export function singleHeader(headers: HeaderMap, name: string): string | undefined {
  const h = headerValue(headers, name);
  return h.kind === 'single' ? h.value : undefined;
}

export interface SplitTarget {
  /** Always starts with "/"; "/" when the target has no path (authority or asterisk form). */
  path: string;
  /** Raw query without the "?", "" when there is none. */
  query: string;
}

/**
 * Accepts origin-form ("/p?q") and absolute-form ("http://h/p?q", what a
 * forward proxy receives for plain HTTP). A fragment never belongs to a
 * request-target, so anything after "#" is dropped.
 */
export function splitTarget(target: string): SplitTarget {
  let rest = target;
  const hash = rest.indexOf('#');
  if (hash !== -1) rest = rest.slice(0, hash);
  const scheme = /^[a-z][a-z0-9+.-]*:\/\/[^/?]*/i.exec(rest);
  if (scheme) rest = rest.slice(scheme[0].length);
  const q = rest.indexOf('?');
  const path = q === -1 ? rest : rest.slice(0, q);
  const query = q === -1 ? '' : rest.slice(q + 1);
  return { path: path.startsWith('/') ? path : '/', query };
}

export interface QueryParam {
  /** Decoded name; null when the raw name is not valid percent-encoding. */
  name: string | null;
  /** Decoded value ("" for a bare name); null when not valid percent-encoding. */
  value: string | null;
  hasValue: boolean;
}

/** `+` is a space, as in application/x-www-form-urlencoded; AWS encodes a literal plus as %2B. */
export function decodeComponent(raw: string): string | null {
  const spaced = raw.replace(/\+/g, ' ');
  if (!spaced.includes('%')) return spaced;
  try {
    return decodeURIComponent(spaced);
  } catch {
    return null;
  }
}

export function parseQuery(query: string): QueryParam[] {
  if (query === '') return [];
  const params: QueryParam[] = [];
  for (const part of query.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const rawName = eq === -1 ? part : part.slice(0, eq);
    const rawValue = eq === -1 ? '' : part.slice(eq + 1);
    params.push({ name: decodeComponent(rawName), value: decodeComponent(rawValue), hasValue: eq !== -1 });
  }
  return params;
}

/** Parameters whose decoded name equals `name`, compared case-insensitively. */
export function paramsNamed(params: readonly QueryParam[], name: string): QueryParam[] {
  const wanted = name.toLowerCase();
  return params.filter((p) => p.name !== null && p.name.toLowerCase() === wanted);
}
