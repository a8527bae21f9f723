/**
 * Runs an AWS SDK v3 command against a request handler that records the
 * signed request and never touches the network, so tests can feed real SDK
 * output (headers, query, body) to the attribution code.
 */
export interface CapturedRequest {
  method: string;
  host: string;
  /** Request-target as on the request line. */
  target: string;
  /** Lower-case names, as Node's HTTP parser presents them. */
  headers: Record<string, string>;
  body: Uint8Array;
}

interface SdkHttpRequest {
  method: string;
  hostname: string;
  path: string;
  query?: Record<string, string | string[] | null | undefined>;
  headers: Record<string, string>;
  body?: unknown;
}

export const TEST_CREDENTIALS = {
  accessKeyId: 'ASIAY34FZKBOKMUTVV7A',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
  sessionToken: 'IQoJb3JpZ2luX2VjEXAMPLETOKENVALUEFwZXN0LTEiRzBFAiEAexampleSessionTokenDoNotUse',
} as const;

class Captured extends Error {
  constructor(readonly request: CapturedRequest) {
    super('captured');
  }
}

function targetOf(req: SdkHttpRequest): string {
  const pairs: string[] = [];
  for (const [name, value] of Object.entries(req.query ?? {})) {
    const values = value === null || value === undefined ? [null] : Array.isArray(value) ? value : [value];
    for (const v of values) pairs.push(v === null ? encodeURIComponent(name) : `${encodeURIComponent(name)}=${encodeURIComponent(v)}`);
  }
  return pairs.length === 0 ? req.path : `${req.path}?${pairs.join('&')}`;
}

function bodyOf(body: unknown): Uint8Array {
  if (body === undefined || body === null) return new Uint8Array();
  if (typeof body === 'string') return new TextEncoder().encode(body);
  if (body instanceof Uint8Array) return body;
  return new Uint8Array();
}

/** A `requestHandler` for SDK client config. */
export const capturingHandler = {
  handle(request: SdkHttpRequest): Promise<never> {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(request.headers)) headers[k.toLowerCase()] = v;
    return Promise.reject(
      new Captured({
        method: request.method,
        host: request.hostname,
        target: targetOf(request),
        headers,
        body: bodyOf(request.body),
      }),
    );
  },
};

/** Sends `command` with `client` and returns the request the SDK would have put on the wire. */
export async function capture(client: { send(command: never): Promise<unknown> }, command: unknown): Promise<CapturedRequest> {
  try {
    await client.send(command as never);
  } catch (err) {
    if (err instanceof Captured) return err.request;
    throw err;
  }
  throw new Error('the SDK did not send a request');
}
