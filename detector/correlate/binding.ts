/**
 * Instance binding: instance-role credentials belong to one instance (the
 * role session is named after it), so the routed client that presents them
 * should be that instance. The inventory says which instance held a client
 * address at the event's time; a client in a translated network (NAT before
 * the gateway) shows the NAT's address and binds to nothing.
 *
 *   client in a translated network          → translated
 *   key's instance unknown at the time      → unknown
 *   client address held by that instance    → instance
 *   otherwise                               → other (the client's own instance, if known, is named)
 */
import { nearestSightings, toEvidence } from './evidence.js';
import { MAX_EVIDENCE, type Binding, type Evidence, type InventoryView, type Sighting } from './types.js';

export interface ClientBinding {
  binding: Binding;
  /** The instance that held the client address then; null when none is known (or the address is translated). */
  clientInstanceId: string | null;
}

/** Strongest first: the evidence a rule records is of the strongest binding it has. */
export const BINDING_RANK: Readonly<Record<Binding, number>> = { instance: 0, translated: 1, unknown: 2, other: 3 };

/** How a client relates to the key's instance at `atMs` (the table above). */
export function bindingOf(
  client: Pick<Sighting, 'clientIp' | 'network'>,
  keyInstanceId: string | null,
  inventory: InventoryView,
  atMs: number,
  /** Asked instead of the inventory whether it knows the key's instance (an event asks once for all its clients). */
  known: { keyInstanceKnown(): boolean } | null = null,
): ClientBinding {
  if (client.network !== null && inventory.isTranslated(client.network)) return { binding: 'translated', clientInstanceId: null };
  const owner = inventory.ownerAt(client.clientIp, atMs);
  // An address the key's instance held is `instance` without asking: holding it then is knowing the instance then.
  if (owner !== null && owner === keyInstanceId) return { binding: 'instance', clientInstanceId: owner };
  const knows = known !== null ? known.keyInstanceKnown() : keyInstanceId !== null && inventory.knows(keyInstanceId, atMs);
  return { binding: knows ? 'other' : 'unknown', clientInstanceId: owner };
}

/**
 * The nearest sightings to `atMs` as evidence (evidence.ts nearestEvidence), each with its
 * client's binding (the same client and network bind alike): keys in the same order, the binding last.
 */
export function nearestBoundEvidence(
  sightings: readonly Sighting[],
  atMs: number,
  binder: { binding(client: Pick<Sighting, 'clientIp' | 'network'>): ClientBinding },
  max = MAX_EVIDENCE,
): Evidence[] {
  return nearestSightings(sightings, atMs, max).map((s) => {
    const b = binder.binding(s);
    const e = toEvidence(s, atMs);
    e.binding = b.binding;
    e.clientInstanceId = b.clientInstanceId;
    return e;
  });
}
