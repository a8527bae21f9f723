/**
 * replay in a process with a larger young generation. What a slice of records allocates and
 * holds until its commit (events, decisions, kept copies, the undo log) outgrows V8's default
 * semi-space (16 MB) within a few hundred records: it is then promoted and collected later with
 * the million observations of the old generation. V8 sizes the young generation when the process
 * starts (`v8.setFlagsFromString` afterwards changes nothing), so replay runs itself again with
 * `--max-semi-space-size`, unless the flag was given already (on the command line or in
 * NODE_OPTIONS): then it runs as it is, with the size asked for.
 */
import { spawn } from 'node:child_process';

/** The semi-space replay asks for, in MB (the young generation is about three of them). */
export const REPLAY_SEMI_SPACE_MB = 64;

const FLAG = '--max-semi-space-size';

/**
 * The node arguments to run this process again with a larger young generation, or null when the
 * semi-space size is given already (`execArgv`, `nodeOptions`) and this process is to run as it is.
 */
export function relaunchArgs(execArgv: readonly string[], nodeOptions: string, argv: readonly string[]): string[] | null {
  const given = (a: string) =>
    a === FLAG || a.startsWith(`${FLAG}=`) || a === '--max_semi_space_size' || a.startsWith('--max_semi_space_size=');
  if (execArgv.some(given) || nodeOptions.split(/\s+/).some(given)) return null;
  return [...execArgv, `${FLAG}=${REPLAY_SEMI_SPACE_MB}`, ...argv.slice(1)];
}

const FORWARDED: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * Runs `node args` with this process's stdio and resolves with its exit code. A signal this
 * process receives meanwhile is passed on; a child ended by a signal ends this process alike.
 */
export function runRelaunched(args: readonly string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: 'inherit' });
    const pass = (signal: NodeJS.Signals) => child.kill(signal);
    for (const s of FORWARDED) process.on(s, pass);
    child.on('error', (err) => {
      for (const s of FORWARDED) process.off(s, pass);
      reject(err);
    });
    child.on('exit', (code, signal) => {
      for (const s of FORWARDED) process.off(s, pass);
      if (signal !== null) {
        process.kill(process.pid, signal);
        return;
      }
      resolve(code ?? 1);
    });
  });
}
