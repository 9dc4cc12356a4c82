#!/usr/bin/env node
// The process edge: the only place that reads process.env, listens for signals and exits.
import type { CliContext } from './context.js';

// Signal handlers come first, before the (slow) import of the commands, so a SIGTERM that
// arrives while the process is still loading is a graceful stop, not exit 143.
const stop = new AbortController();
let signals = 0;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    signals += 1;
    // A second signal means "now": do not wait for a graceful close.
    if (signals > 1) process.exit(130);
    stop.abort(signal);
  });
}

const ctx: CliContext = {
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  stopSignal: stop.signal,
  exitCode: 0,
};

try {
  const { runCli } = await import('./program.js');
  process.exitCode = await runCli(process.argv.slice(2), ctx);
} catch (error) {
  process.stderr.write(
    `kms-secret-guard: unexpected error: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exitCode = 1;
}
