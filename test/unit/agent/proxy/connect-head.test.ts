import { describe, expect, it } from 'vitest';
import { readConnectHead } from '../../../../agent/proxy/connect-head.js';

const read = (text: string, max = 8192) => readConnectHead(Buffer.from(text, 'latin1'), max);

describe('readConnectHead', () => {
  it('reads a plain CONNECT head and says where the tunnel bytes start', () => {
    const head = 'CONNECT sts.us-east-1.amazonaws.com:443 HTTP/1.1\r\nHost: sts.us-east-1.amazonaws.com:443\r\nUser-Agent:\tx y\r\n\r\n';
    expect(read(`${head}\x16\x03\x01`)).toEqual({ kind: 'connect', authority: 'sts.us-east-1.amazonaws.com:443', headLength: head.length });
    expect(read('CONNECT [::1]:443 HTTP/1.0\r\n\r\n')).toEqual({ kind: 'connect', authority: '[::1]:443', headLength: 30 });
  });

  it.each([
    ['another method', 'GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['a lower-case method', 'connect a:443 HTTP/1.1\r\n\r\n'],
    ['an incomplete head', 'CONNECT a:443 HTTP/1.1\r\nHost: a\r\n'],
    ['no authority', 'CONNECT  HTTP/1.1\r\n\r\n'],
    ['two spaces', 'CONNECT a:443  HTTP/1.1\r\n\r\n'],
    ['user info', 'CONNECT u@a:443 HTTP/1.1\r\n\r\n'],
    ['HTTP/2.0', 'CONNECT a:443 HTTP/2.0\r\n\r\n'],
    ['HTTP/1.2', 'CONNECT a:443 HTTP/1.2\r\n\r\n'],
    ['a bare LF', 'CONNECT a:443 HTTP/1.1\n\r\n'],
    ['a bare LF in a value', 'CONNECT a:443 HTTP/1.1\r\nX: a\nb\r\n\r\n'],
    ['a bare CR in a value', 'CONNECT a:443 HTTP/1.1\r\nX: a\rb\r\n\r\n'],
    ['obs-fold', 'CONNECT a:443 HTTP/1.1\r\nX: a\r\n b\r\n\r\n'],
    ['a space before the colon', 'CONNECT a:443 HTTP/1.1\r\nHost : a\r\n\r\n'],
    ['no colon', 'CONNECT a:443 HTTP/1.1\r\nHost a\r\n\r\n'],
    ['an empty name', 'CONNECT a:443 HTTP/1.1\r\n: a\r\n\r\n'],
    ['Content-Length', 'CONNECT a:443 HTTP/1.1\r\ncontent-LENGTH: 0\r\n\r\n'],
    ['Transfer-Encoding', 'CONNECT a:443 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n'],
    ['a NUL', 'CONNECT a:443 HTTP/1.1\r\nX: \x00\r\n\r\n'],
    ['obs-text', 'CONNECT a:443 HTTP/1.1\r\nX: \xe9\r\n\r\n'],
    ['DEL', 'CONNECT a:443 HTTP/1.1\r\nX: \x7f\r\n\r\n'],
  ])('leaves %s to the HTTP parser', (_name, text) => {
    expect(read(text)).toEqual({ kind: 'other' });
  });

  it('takes a head only within the size limit', () => {
    const head = 'CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n';
    expect(read(head, head.length).kind).toBe('connect');
    expect(read(head, head.length - 1).kind).toBe('other');
  });
});
