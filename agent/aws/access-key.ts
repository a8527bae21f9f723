/**
 * Facts an access key ID gives away offline: what kind of credential it is and,
 * for current-generation keys, the owning account. Key IDs are not secrets, but
 * logs still show them masked.
 *
 * Account decoding (Aidan Steele 2020, corrected by Tal Be'ery 2023): the 16
 * characters after the 4-character prefix are base32 for 10 bytes; the first
 * 6 bytes, big-endian, masked with 0x7FFFFFFFFF80 and shifted right by 7, are
 * the account number. Older keys (5th character I or J) do not encode it.
 */

export type AccessKeyKind = 'temporary' | 'long-term' | 'bearer' | 'context' | 'unknown';

const BASE32_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const KEY_SHAPE = /^[A-Z2-7]{20}$/;
const MAX_ACCOUNT_ID = 999_999_999_999n;

const KIND_BY_PREFIX: Readonly<Record<string, AccessKeyKind>> = {
  ASIA: 'temporary',
  AKIA: 'long-term',
  ABIA: 'bearer',
  ACCA: 'context',
};

export function keyKind(id: string): AccessKeyKind {
  return KIND_BY_PREFIX[id.slice(0, 4)] ?? 'unknown';
}

/** 20 base32 characters with one of the access key prefixes (AKIA, ASIA, ABIA, ACCA). */
export function isAccessKeyId(s: string): boolean {
  return KEY_SHAPE.test(s) && keyKind(s) !== 'unknown';
}

/**
 * The 12-digit account that owns the key, or null when the ID is not 20
 * base32 characters, predates the encoding (5th character I or J) or
 * decodes to more than 12 digits (no account AWS issued).
 * Only the shape is checked, not the prefix.
 */
export function accountIdFromAccessKey(id: string): string | null {
  if (!KEY_SHAPE.test(id)) return null;
  const fifth = id[4];
  if (fifth === 'I' || fifth === 'J') return null;
  // 48 bits are needed and 10 characters carry 50: accumulate those, drop the last 2.
  let bits = 0n;
  for (const ch of id.slice(4, 14)) bits = (bits << 5n) | BigInt(BASE32_ALPHABET.indexOf(ch));
  const firstSixBytes = bits >> 2n;
  const account = (firstSixBytes & 0x7fffffffff80n) >> 7n;
  // 41 bits reach 13 digits: such a key was not issued by AWS, and the wire carries 12-digit accounts only.
  if (account > MAX_ACCOUNT_ID) return null;
  return account.toString().padStart(12, '0');
}
