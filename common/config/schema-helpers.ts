/** zod building blocks shared by the agent and detector config schemas. */
import { z } from 'zod';
import { LOG_LEVELS } from '../log/levels.js';
import { parseCidr } from '../cidr/cidr-set.js';
import { parseDuration, parseSize } from './units.js';

const SHOW_MAX = 120;

/** A value as the user wrote it, for messages: at most 120 characters, and never a throw (a BigInt or a cycle). */
export const show = (v: unknown): string => {
  let text: string;
  try {
    text = JSON.stringify(v) ?? String(v);
  } catch {
    text = Object.prototype.toString.call(v);
  }
  return text.length > SHOW_MAX ? `${text.slice(0, SHOW_MAX)}…` : text;
};

/** Error text for a required key: "required: …" when absent, "expected …, got …" when present but mistyped. */
export function required(what: string, expected: string): (issue: { input: unknown }) => string {
  return (issue) => (issue.input === undefined ? `required: ${what}` : `expected ${expected}, got ${show(issue.input)}`);
}

export const cidr = z.string({ error: (i) => `expected a CIDR string, got ${show(i.input)}` }).superRefine((v, ctx) => {
  const p = parseCidr(v);
  if (!p.ok) ctx.addIssue({ code: 'custom', message: p.reason });
});

export const cidrList = z.array(cidr, { error: (i) => `expected a list of CIDRs, got ${show(i.input)}` });

export const duration = z
  .union([z.string(), z.number()], { error: (i) => `expected a duration like "10s" or "5m", got ${show(i.input)}` })
  .transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === null) {
      ctx.addIssue({ code: 'custom', message: `${show(v)} is not a duration (use ms, s, m, h, d: "10s", "5m", "1h30m")` });
      return z.NEVER;
    }
    return ms;
  });

/** A duration that must be more than zero (intervals and timeouts: 0 would spin or never wait). */
export const positiveDuration = duration.refine((ms) => ms > 0, 'must be more than 0');

export const size = z
  .union([z.string(), z.number()], { error: (i) => `expected a size like "64MiB", got ${show(i.input)}` })
  .transform((v, ctx) => {
    const bytes = parseSize(v);
    if (bytes === null) {
      ctx.addIssue({ code: 'custom', message: `${show(v)} is not a size (use B, KiB, MiB, GiB or KB, MB, GB: "1GiB")` });
      return z.NEVER;
    }
    return bytes;
  });

export const positiveInt = (what: string) =>
  z
    .number({ error: (i) => `expected ${what} (a positive integer), got ${show(i.input)}` })
    .int(`expected ${what} to be an integer`)
    .positive(`expected ${what} to be positive`);

export const port = z
  .number({ error: (i) => `expected a port number, got ${show(i.input)}` })
  .int()
  .min(1, 'port must be 1-65535')
  .max(65535, 'port must be 1-65535');

function toListenAddress(v: string, ctx: z.core.$RefinementCtx<string>): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(v.trim());
  const portNum = m ? Number(m[3]) : NaN;
  if (!m || portNum > 65535) {
    ctx.addIssue({ code: 'custom', message: `${show(v)} is not a listen address (use "host:port", "[::1]:port" or ":port")` });
    return z.NEVER;
  }
  return { host: m[1] ?? (m[2] === '' ? '0.0.0.0' : (m[2] ?? '0.0.0.0')), port: portNum, text: v.trim() };
}

/** `host:port`, `[v6]:port` or `:port` (all interfaces). */
export const listenAddress = z.string({ error: (i) => `expected "host:port", got ${show(i.input)}` }).transform(toListenAddress);

/** A listen address that has no default: absent reads `required: …`. */
export const requiredListenAddress = (what: string) => z.string({ error: required(what, '"host:port"') }).transform(toListenAddress);
export type ListenAddress = { host: string; port: number; text: string };

export const nullablePath = z.string().min(1, 'path must not be empty').nullable().default(null);

export const logLevel = z.enum(LOG_LEVELS, {
  error: (i) => `expected one of ${LOG_LEVELS.join(', ')}; got ${show(i.input)}`,
});

export const url = (schemes: string[]) =>
  z.string().superRefine((v, ctx) => {
    let u: URL;
    try {
      u = new URL(v);
    } catch {
      ctx.addIssue({ code: 'custom', message: `"${v}" is not a URL` });
      return;
    }
    if (!schemes.includes(u.protocol.replace(/:$/, '')))
      ctx.addIssue({ code: 'custom', message: `"${v}" must use ${schemes.join(' or ')}` });
  });
