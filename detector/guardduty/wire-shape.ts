/**
 * The SDK returns findings with its member names (`Id`, `Service`,
 * `RemoteIpDetails`…); EventBridge carries the wire names (`id`, `service`,
 * `remoteIpDetails`…). Folding the first letter turns the former into the latter.
 */
export function toWireShape(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(toWireShape);
  if (value instanceof Date) return value.toISOString();
  if (!value || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    // defineProperty, not assignment: a member named "__proto__" must stay a plain field, not become the prototype.
    Object.defineProperty(out, k.charAt(0).toLowerCase() + k.slice(1), {
      value: toWireShape(v),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

/** A finding as the rules read it: SDK/CLI-shaped (PascalCase) findings are folded, others pass as they are. */
export function wireFinding(raw: unknown): unknown {
  return raw && typeof raw === 'object' && !Array.isArray(raw) && 'Id' in raw && !('id' in raw) ? toWireShape(raw) : raw;
}
