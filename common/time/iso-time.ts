/**
 * ISO 8601 times (as Date#toISOString prints them) for the times a decision
 * records: evidence spans, the event's time, the decision's time. Consecutive
 * decisions format times in the same few seconds over and over, so the text up
 * to the second is kept per second (a small table indexed by the second) and
 * only the milliseconds are appended: a replay formats several times per
 * record, and building each from its parts was a good share of the garbage.
 */
import { isoFromMs } from './iso.js';

const SLOTS = 4096;
/** The second each slot holds (NaN: none yet), and its text up to the second ("2026-11-25T00:00:00"). */
const slotSecond = new Float64Array(SLOTS).fill(Number.NaN);
const slotText: string[] = new Array<string>(SLOTS).fill('');
/** ".000Z" … ".999Z" */
const MILLIS = Array.from({ length: 1000 }, (_, i) => `.${String(i).padStart(3, '0')}Z`);
/** 9999-12-31T23:59:59.999Z: later (and earlier than 1970, and fractional) times take the general path. */
const LAST_MS = 253_402_300_799_999;

/** "YYYY-MM-DDTHH:MM:SS" of the second holding `ms` (0 ≤ ms ≤ LAST_MS, an integer). */
function secondText(ms: number): string {
  const second = Math.floor(ms / 1000);
  const slot = second % SLOTS;
  if (slotSecond[slot] === second) return slotText[slot]!;
  const text = isoFromMs(second * 1000).slice(0, 19);
  slotSecond[slot] = second;
  slotText[slot] = text;
  return text;
}

/** `new Date(ms).toISOString()`, throwing the same RangeError for a time it cannot print. */
export function isoTime(ms: number): string {
  if (!Number.isInteger(ms) || ms < 0 || ms > LAST_MS) return isoFromMs(ms);
  return secondText(ms) + MILLIS[ms % 1000]!;
}

/** "HH:MM:SSZ" of a time (the clock time reasons show). */
export function clockTimeOf(ms: number): string {
  if (!Number.isInteger(ms) || ms < 0 || ms > LAST_MS) return `${isoFromMs(ms).slice(11, 19)}Z`;
  return `${secondText(ms).slice(11)}Z`;
}
