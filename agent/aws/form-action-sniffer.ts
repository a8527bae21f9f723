/**
 * Finds `Action=Op` in an application/x-www-form-urlencoded body as it streams
 * past (awsQuery / ec2Query requests put the operation there), without holding
 * the body: it keeps at most one parameter name (18 bytes, the longest
 * percent-encoding of "Action") and one candidate value (384 bytes, the
 * longest encoding of a 128-character name), and reads no further than
 * 64 KiB.
 *
 * push() answers:
 *   string     the action, once the whole `Action` value has been seen;
 *   null       certainly no usable action (bad value, or the 64 KiB bound passed);
 *   undefined  not known yet — push more, or call end() when the body ends.
 * The first definite answer is final; later calls repeat it.
 */

export const FORM_SNIFF_LIMIT_BYTES = 64 * 1024;

/** AWS operation names: a letter, then letters and digits (underscore tolerated), at most 128. */
const OPERATION_NAME = /^[A-Za-z][A-Za-z0-9_]{0,127}$/;

export function isOperationName(s: string): boolean {
  return OPERATION_NAME.test(s);
}

const AMPERSAND = 0x26;
const EQUALS = 0x3d;
const MAX_NAME_BYTES = 'Action'.length * 3;
const MAX_VALUE_BYTES = 128 * 3;

type State = 'name' | 'skip-name' | 'skip-value' | 'action-value';

export class FormActionSniffer {
  #state: State = 'name';
  #buffer = '';
  #consumed = 0;
  #answer: string | null | undefined = undefined;

  push(chunk: Uint8Array): string | null | undefined {
    if (this.#answer !== undefined) return this.#answer;
    const room = FORM_SNIFF_LIMIT_BYTES - this.#consumed;
    const usable = Math.min(room, chunk.length);
    for (let i = 0; i < usable; i++) {
      const answer = this.#byte(chunk[i] ?? 0);
      if (answer !== undefined) return this.#settle(answer);
    }
    this.#consumed += usable;
    if (chunk.length > room) return this.#settle(null);
    return undefined;
  }

  /** The body ended: a trailing `Action=Op` without "&" counts. */
  end(): string | null {
    if (this.#answer !== undefined) return this.#answer;
    return this.#settle(this.#state === 'action-value' ? actionFromValue(this.#buffer) : null);
  }

  #settle(answer: string | null): string | null {
    this.#answer = answer;
    this.#buffer = '';
    return answer;
  }

  #byte(b: number): string | null | undefined {
    switch (this.#state) {
      case 'name':
        if (b === AMPERSAND) this.#buffer = '';
        else if (b === EQUALS) this.#startValue();
        else if (this.#buffer.length >= MAX_NAME_BYTES || b >= 0x80) this.#state = 'skip-name';
        else this.#buffer += String.fromCharCode(b);
        return undefined;
      case 'skip-name':
        if (b === AMPERSAND) this.#startName();
        else if (b === EQUALS) this.#state = 'skip-value';
        return undefined;
      case 'skip-value':
        if (b === AMPERSAND) this.#startName();
        return undefined;
      case 'action-value':
        if (b === AMPERSAND) return actionFromValue(this.#buffer);
        if (this.#buffer.length >= MAX_VALUE_BYTES || b >= 0x80) return null;
        this.#buffer += String.fromCharCode(b);
        return undefined;
    }
  }

  #startName(): void {
    this.#state = 'name';
    this.#buffer = '';
  }

  #startValue(): void {
    this.#state = decodeForm(this.#buffer) === 'Action' ? 'action-value' : 'skip-value';
    this.#buffer = '';
  }
}

function decodeForm(raw: string): string | null {
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch {
    return null;
  }
}

function actionFromValue(raw: string): string | null {
  const value = decodeForm(raw)?.trim();
  return value !== undefined && isOperationName(value) ? value : null;
}
