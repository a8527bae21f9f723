export interface Output {
  /** Text, or bytes already encoded (UTF-8). */
  stdout(text: string | Uint8Array): void;
  stderr(text: string): void;
}
