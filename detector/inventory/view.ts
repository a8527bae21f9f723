/** The inventory as the correlation rules read it: the address history of now and the translated networks. */
import type { InventoryView } from '../correlate/types.js';
import type { AddressHistory } from './history.js';

export function inventoryView(history: AddressHistory, translatedNetworks: readonly string[]): InventoryView {
  const translated = new Set(translatedNetworks);
  return {
    knows: (instanceId, atMs) => history.knows(instanceId, atMs),
    ownerAt: (address, atMs) => history.ownerAt(address, atMs),
    addressesAt: (instanceId, atMs) => history.addressesAt(instanceId, atMs),
    isTranslated: (network) => translated.has(network),
  };
}
