/** Running CLI commands in-process: a CliContext whose output the test reads back. */
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { CliContext } from '../../src/cli/context.js';
import { runCli } from '../../src/cli/program.js';
import { LogCapture } from './logs.js';

export interface CaptureOptions {
  readonly env?: Record<string, string | undefined>;
  /** Called with every chunk written to stderr (e.g. to stop the command at a line). */
  readonly onStderr?: (text: string) => void;
  /** Make stdout look like a terminal (what cli-progress reads). */
  readonly tty?: boolean;
  /** Default: a signal of its own, aborted by `stop()`. */
  readonly signal?: AbortSignal;
}

export interface CapturedContext {
  readonly ctx: CliContext;
  readonly stdout: () => string;
  readonly stderr: () => string;
  /** Aborts the context's stop signal, as SIGTERM would. */
  readonly stop: (reason?: string) => void;
}

/** An in-process CliContext whose output the test reads back. */
export function captureContext(options: CaptureOptions = {}): CapturedContext {
  const stdout = Object.assign(
    new LogCapture(),
    options.tty === true ? { isTTY: true, columns: 160 } : {},
  );
  const stderr = new LogCapture(options.onStderr);
  const controller = new AbortController();
  return {
    ctx: {
      env: options.env ?? {},
      stdout,
      stderr,
      stopSignal: options.signal ?? controller.signal,
      exitCode: 0,
    },
    stdout: () => stdout.text(),
    stderr: () => stderr.text(),
    stop: (reason = 'test') => {
      controller.abort(reason);
    },
  };
}

/** Runs one command line in-process to its end; returns its exit code and output. */
export async function runCaptured(
  argv: readonly string[],
  options: CaptureOptions = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const captured = captureContext(options);
  const code = await runCli(argv, captured.ctx);
  return { code, stdout: captured.stdout(), stderr: captured.stderr() };
}

/** A TCP port on 127.0.0.1 held by a listener until the test ends (for "port in use" tests). */
export async function occupyPort(t: { teardown(fn: () => unknown): void }): Promise<number> {
  const server: Server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      resolve();
    });
  });
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      }),
  );
  return (server.address() as AddressInfo).port;
}
