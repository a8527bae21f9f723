/**
 * The streaming `Action=` sniffer for awsQuery form bodies
 * (agent/aws/form-action-sniffer.ts): bodies of form pairs, damaged as text,
 * fed in arbitrary chunks.
 *
 * Properties: never throws; the answer does not depend on how the body is
 * chunked; it equals a whole-body reference reading of the same rules; an
 * action it reports is an operation name that the body carries.
 */
import fc from 'fast-check';
import { FormActionSniffer, isOperationName } from '../../../agent/aws/form-action-sniffer.js';
import { applyTextMutations, textMutation } from '../lib/mutate.js';
import { callParser, ensure, type FuzzTarget } from '../lib/target.js';

interface FormCase {
  body: Buffer;
  cuts: number[];
}

const name = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('Action', 'Act%69on', '%41ction', 'Version', 'action', 'Action+', '+Action', 'Acti%zzon') },
  { weight: 1, arbitrary: fc.string({ maxLength: 24 }) },
);
const value = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom('GetCallerIdentity', 'DescribeInstances', '%47et', '+Get+', '1abc', '', 'Get%zz', 'A'.repeat(129)),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 8 }) },
);

const formCase: fc.Arbitrary<FormCase> = fc
  .tuple(
    fc.array(fc.tuple(name, value, fc.boolean()), { maxLength: 6 }),
    fc.array(textMutation, { maxLength: 3 }),
    fc.array(fc.integer({ min: 0, max: 64 }), { maxLength: 8 }),
    fc.integer({ min: 0, max: 3 }),
  )
  .map(([pairs, ms, cuts, padKiB]) => {
    const text = pairs.map(([k, v, eq]) => (eq ? `${k}=${v}` : k)).join('&');
    // Sometimes a long first parameter, so the 64 KiB bound is reached.
    const pad = padKiB === 3 ? `pad=${'x'.repeat(64 * 1024 - 10)}&` : '';
    return { body: Buffer.from(pad + applyTextMutations(text, ms), 'utf8'), cuts };
  });

function decodeForm(raw: string): string | null {
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch {
    return null;
  }
}

function hasHighByte(latin1: string): boolean {
  for (let i = 0; i < latin1.length; i++) if (latin1.charCodeAt(i) >= 0x80) return true;
  return false;
}

/** The sniffer's rules read off the whole body at once (bytes as latin1 characters). */
function referenceAction(body: Buffer): string | null {
  const limited = body.length > 64 * 1024;
  const text = body.subarray(0, 64 * 1024).toString('latin1');
  const parts = text.split('&');
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] as string;
    const last = i === parts.length - 1;
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    const rawName = part.slice(0, eq);
    if (rawName.length > 18 || hasHighByte(rawName) || decodeForm(rawName) !== 'Action') continue;
    const rawValue = part.slice(eq + 1);
    // The value ends at "&" — or at the end of the body, which is only known when the body is not cut at 64 KiB.
    if (rawValue.length > 384 || hasHighByte(rawValue)) return null;
    if (last && limited) return null;
    const v = decodeForm(rawValue)?.trim();
    return v !== undefined && isOperationName(v) ? v : null;
  }
  return null;
}

function sniff(body: Buffer, cuts: readonly number[]): string | null {
  const s = new FormActionSniffer();
  let at = 0;
  for (const c of cuts) {
    const answer = s.push(body.subarray(at, at + c));
    at += c;
    if (answer !== undefined) return answer;
  }
  const answer = s.push(body.subarray(at));
  return answer !== undefined ? answer : s.end();
}

export const formActionTarget: FuzzTarget<FormCase> = {
  name: 'form-action',
  title: 'awsQuery form body Action sniffer',
  arbitrary: formCase,
  check({ body, cuts }) {
    const chunked = callParser('FormActionSniffer', () => sniff(body, cuts));
    const whole = callParser('FormActionSniffer', () => sniff(body, []));
    ensure(chunked === whole, () => `chunking changed the answer: ${fc.stringify(chunked)} vs ${fc.stringify(whole)}`);
    const want = referenceAction(body);
    ensure(whole === want, () => `answered ${fc.stringify(whole)}, the rules say ${fc.stringify(want)}`);
    if (whole !== null && whole !== undefined) {
      ensure(isOperationName(whole), () => `not an operation name: ${whole}`);
      const parts = body.toString('latin1').split('&');
      ensure(
        parts.some((p) => (decodeForm(p) ?? p).includes(whole)),
        () => `${whole} is not in the body`,
      );
    }
  },
};
