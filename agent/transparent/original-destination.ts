/**
 * Where a redirected client meant to go: the kernel's record of the original
 * destination (SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST), read through the
 * optional native addon in native/original-dst. The addon is built at
 * install time; when it is missing or fails to load, the reader says so once
 * (`available: false` with the reason) and every read answers 'unavailable',
 * so the listener falls back to 443 for TLS and 80 for HTTP.
 */
import { createRequire } from 'node:module';
import { constants, platform } from 'node:os';
import type { Socket } from 'node:net';
import { canonicalIp } from '../../common/cidr/ip.js';
import { errnoName, findAddon } from '../native/addons.js';

export type OriginalDestination =
  | { readonly kind: 'redirected'; readonly address: string; readonly port: number }
  /** The client connected to the listener itself: no NAT record, or one that names the listener's own address. */
  | { readonly kind: 'not-redirected' }
  | { readonly kind: 'unavailable' }
  | { readonly kind: 'error'; readonly code: string };

export interface OriginalDestinationReader {
  /** Whether the addon loaded; when false, `unavailableReason` says why. */
  readonly available: boolean;
  readonly unavailableReason: string | null;
  read(socket: Socket): OriginalDestination;
}

interface Addon {
  originalDestination(fd: number): { address: string; port: number } | { errno: number };
}

const ADDON = 'native/original-dst/build/Release/original_dst.node';
const UNAVAILABLE: OriginalDestination = Object.freeze({ kind: 'unavailable' });
const NOT_REDIRECTED: OriginalDestination = Object.freeze({ kind: 'not-redirected' });

function socketFd(socket: Socket): number | null {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : null;
}

/** Loads the addon once per call; `addonPath` overrides where it is looked for (tests). */
export function loadOriginalDestinationReader(addonPath: string | null = findAddon(ADDON)): OriginalDestinationReader {
  let addon: Addon | null = null;
  let reason: string | null = null;
  if (platform() !== 'linux') reason = 'original destinations are read on Linux only';
  else if (addonPath === null) reason = `the native addon is not built (${ADDON}); run: npm run build:native`;
  else {
    try {
      addon = createRequire(import.meta.url)(addonPath) as Addon;
      if (typeof addon.originalDestination !== 'function') throw new Error('it has no originalDestination function');
    } catch (err) {
      addon = null;
      reason = `the native addon ${addonPath} did not load: ${(err as Error).message.split('\n')[0] ?? 'unknown error'}`;
    }
  }
  const loaded = addon;
  return {
    available: loaded !== null,
    unavailableReason: reason,
    read(socket) {
      if (loaded === null) return UNAVAILABLE;
      const fd = socketFd(socket);
      if (fd === null) return { kind: 'error', code: 'EBADF' };
      const r = loaded.originalDestination(fd);
      if ('address' in r) {
        // Connection tracking records every connection once NAT is loaded; an unchanged one names the listener itself.
        const self = r.port === socket.localPort && canonicalIp(r.address) === canonicalIp(socket.localAddress ?? '');
        return self ? NOT_REDIRECTED : { kind: 'redirected', address: r.address, port: r.port };
      }
      if (r.errno === constants.errno.ENOENT) return NOT_REDIRECTED;
      return { kind: 'error', code: errnoName(r.errno) ?? `errno ${r.errno}` };
    },
  };
}
