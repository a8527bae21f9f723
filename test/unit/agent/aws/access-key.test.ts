import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { accountIdFromAccessKey, isAccessKeyId, keyKind } from '../../../../agent/aws/access-key.js';
import { maskAccessKeyId } from '../../../../common/log/redact.js';

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** Builds a key ID that encodes `account`: generation bit set, account in bits 46..7 of the first 6 bytes. */
function encodeKey(prefix: string, account: bigint, tail: bigint): string {
  const firstSix = (1n << 47n) | (account << 7n);
  let bits = (firstSix << 32n) | tail; // 80 bits
  let out = '';
  for (let i = 0; i < 16; i++) {
    out = (BASE32[Number(bits & 31n)] ?? '') + out;
    bits >>= 5n;
  }
  return prefix + out;
}

describe('accountIdFromAccessKey', () => {
  it.each([
    // Aidan Steele / Tal Be'ery published vector.
    ['ASIAY34FZKBOKMUTVV7A', '609629065308'],
    // Computed independently with Python's base64.b32decode and the same mask/shift.
    ['AKIAQYLPMN5HHHFPZAM2', '052310077262'],
    // Constructed: 0x800000000000 | 123456789012 << 7, then 4 zero bytes, base32-encoded.
    ['AKIARZPUZDIKAAAAAAAA', '123456789012'],
    // Constructed: account 1 with noise in the masked-off low 7 bits and in the tail bytes.
    ['ASIAQAAAAAAA2UJDIVTY', '000000000001'],
    ['AKIAAAAAAAAAAAAAAAAA', '000000000000'],
  ])('%s → %s', (id, account) => {
    expect(accountIdFromAccessKey(id)).toBe(account);
  });

  it.each([
    ['AKIAIOSFODNN7EXAMPLE', 'old generation, 5th character I'],
    ['AKIAJABCDEFGHIJKLMNO', 'old generation, 5th character J'],
    ['AKIAY34FZKBOKMUTVV7', '19 characters'],
    ['ASIAY34FZKBOKMUTVV7AA', '21 characters'],
    ['asiay34fzkbokmutvv7a', 'lower case'],
    ['ASIAY34FZKBOKMUTVV1A', 'digit 1 is not base32'],
    ['ASIAY34FZKBOKMUTVV8A', 'digit 8 is not base32'],
    ['', 'empty'],
  ])('%s → null (%s)', (id) => {
    expect(accountIdFromAccessKey(id)).toBeNull();
  });

  it('round-trips any 12-digit account through a constructed key', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 999_999_999_999n }),
        fc.bigInt({ min: 0n, max: (1n << 32n) - 1n }),
        fc.constantFrom('AKIA', 'ASIA'),
        (account, tail, prefix) => {
          const id = encodeKey(prefix, account, tail);
          expect(isAccessKeyId(id)).toBe(true);
          expect(accountIdFromAccessKey(id)).toBe(account.toString().padStart(12, '0'));
        },
      ),
    );
  });

  // 41 bits decode to 13 digits: a client signing with such a made-up key ID must not put an account
  // the telemetry schema refuses into an observation (the detector would refuse the whole batch).
  it.each([
    ['AKIAPAAAAAAAAAAAAAAA', 'decodes to 1030792151040'],
    ['ASIA7777777777777777', 'all bits set'],
  ])('%s → null (%s)', (id) => {
    expect(accountIdFromAccessKey(id)).toBeNull();
  });

  it('answers 12 digits or null for every key of the access-key shape', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.constantFrom(...BASE32.split('')), minLength: 16, maxLength: 16 }),
        fc.constantFrom('AKIA', 'ASIA'),
        (rest, prefix) => {
          const r = accountIdFromAccessKey(prefix + rest);
          expect(r === null || /^\d{12}$/.test(r)).toBe(true);
        },
      ),
    );
  });

  it('never throws on arbitrary input', () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        const r = accountIdFromAccessKey(s);
        expect(r === null || /^\d{12}$/.test(r)).toBe(true);
      }),
    );
  });
});

describe('keyKind', () => {
  it.each([
    ['ASIAY34FZKBOKMUTVV7A', 'temporary'],
    ['AKIAQYLPMN5HHHFPZAM2', 'long-term'],
    ['ABIAQYLPMN5HHHFPZAM2', 'bearer'],
    ['ACCAQYLPMN5HHHFPZAM2', 'context'],
    ['AROAQYLPMN5HHHFPZAM2', 'unknown'],
    ['AIDAQYLPMN5HHHFPZAM2', 'unknown'],
    ['', 'unknown'],
  ] as const)('%s → %s', (id, kind) => {
    expect(keyKind(id)).toBe(kind);
  });
});

describe('isAccessKeyId', () => {
  it.each([
    ['ASIAY34FZKBOKMUTVV7A', true],
    ['AKIAIOSFODNN7EXAMPLE', true],
    ['AROAY34FZKBOKMUTVV7A', false],
    ['ASIAY34FZKBOKMUTVV7', false],
    ['ASIAY34FZKBOKMUTVV0A', false],
    ['asiay34fzkbokmutvv7a', false],
    [' ASIAY34FZKBOKMUTVV7A', false],
  ] as const)('%s → %s', (s, ok) => {
    expect(isAccessKeyId(s)).toBe(ok);
  });
});

describe('maskAccessKeyId (keys as logs show them)', () => {
  it('keeps the first and last four characters', () => {
    expect(maskAccessKeyId('ASIAY34FZKBOKMUTVV7A')).toBe('ASIA…VV7A');
  });

  it('hides short values entirely', () => {
    expect(maskAccessKeyId('ASIAVV7A')).toBe('…');
    expect(maskAccessKeyId('')).toBe('…');
  });

  it('never shows the middle of a key', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Z2-7]{20}$/), (id) => {
        const masked = maskAccessKeyId(id);
        expect(masked).toHaveLength(9);
        expect(masked).not.toContain(id.slice(4, 16));
      }),
    );
  });
});
