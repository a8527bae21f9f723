/**
 * How much text the daemons agree to hold as one string. V8 caps a string at
 * about 512 MiB (2^29 − 24 characters on 64-bit), and JSON.parse needs room
 * beyond the text: a limit above this could never succeed, only cost memory
 * on the way to failing.
 */
export const MAX_TEXT_BYTES = 256 * 1024 * 1024;
