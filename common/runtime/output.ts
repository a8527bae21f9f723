export interface Output {
  stdout(text: string): void;
  stderr(text: string): void;
}
