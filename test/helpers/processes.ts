/**
 * Child processes of the tests, the e2e harness and the benchmarks: process groups with a
 * reaper that outlives a crashed test, and free loopback ports.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, closeSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** A child process in its own process group, its output in a log file. */
export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly logPath: string;
  /** Resolves with the exit code (or signal name) once the process has ended. */
  readonly exited: Promise<number | string>;
  hasExited(): boolean;
  /** SIGTERM to the whole process group, then SIGKILL after graceMs. */
  stop(graceMs?: number): Promise<void>;
  /** The last lines of the log file, for failure messages. */
  logTail(lines?: number): string;
}

// When present, setpriv makes the kernel kill the child if this test process dies in any
// way (even SIGKILL), so no etcd or kube-apiserver outlives a crashed test.
const SETPRIV = '/usr/bin/setpriv';

/**
 * Starts a long-running child: detached (own process group, so stop() reaches every
 * descendant), stdout and stderr appended to logPath, and registered with the reaper.
 */
export function startProcess(
  reaper: ProcessReaper,
  name: string,
  command: string,
  args: readonly string[],
  options: { logPath: string; env?: NodeJS.ProcessEnv; cwd?: string },
): ManagedProcess {
  const logFd = openSync(options.logPath, 'a');
  const [file, argv] = existsSync(SETPRIV)
    ? [SETPRIV, ['--pdeathsig', 'KILL', '--', command, ...args]]
    : [command, [...args]];
  let child: ChildProcess;
  try {
    child = spawn(file, argv, {
      detached: true,
      stdio: ['ignore', logFd, logFd],
      env: options.env ?? process.env,
      cwd: options.cwd,
    });
  } finally {
    closeSync(logFd);
  }
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${name} (${command})`);
  // A failed test must not hang on its children: the reaper kills them when Node exits.
  child.unref();
  let ended = false;
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      ended = true;
      reaper.forget(pid);
      resolve(code ?? signal ?? 'unknown');
    });
    child.once('error', () => {
      ended = true;
      reaper.forget(pid);
      resolve('spawn error');
    });
  });
  reaper.track(pid);
  const logTail = (lines = 30): string => {
    try {
      return readFileSync(options.logPath, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  };
  return {
    name,
    pid,
    logPath: options.logPath,
    exited,
    hasExited: () => ended,
    logTail,
    async stop(graceMs = 5000) {
      if (ended) return;
      signalGroup(pid, 'SIGTERM');
      const outcome = await Promise.race([exited, sleep(graceMs, 'timeout' as const)]);
      if (outcome === 'timeout') {
        signalGroup(pid, 'SIGKILL');
        await Promise.race([exited, sleep(2000)]);
      }
    },
  };
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}

/**
 * Kills every tracked process group when this test process exits or is told to stop,
 * even when a test failed before its teardown ran. One reaper per cluster, removed by
 * dispose() once the cluster has stopped cleanly.
 */
export class ProcessReaper {
  readonly #pids = new Set<number>();
  readonly #cleanups: (() => void)[] = [];
  readonly #onExit = (): void => {
    this.killAll();
    for (const cleanup of this.#cleanups.splice(0)) {
      try {
        cleanup();
      } catch {
        // Best effort while exiting.
      }
    }
  };
  readonly #onSignal = (signal: NodeJS.Signals): void => {
    this.#onExit();
    this.dispose();
    // Keep the default "terminate" behaviour when nobody else handles the signal.
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  };

  constructor() {
    process.on('exit', this.#onExit);
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.on(signal, this.#onSignal);
    }
  }

  /** Runs (synchronously) when the test process exits before dispose(), after the kills. */
  atExit(cleanup: () => void): void {
    this.#cleanups.push(cleanup);
  }

  track(pid: number): void {
    this.#pids.add(pid);
  }

  forget(pid: number): void {
    this.#pids.delete(pid);
  }

  killAll(): void {
    for (const pid of this.#pids) signalGroup(pid, 'SIGKILL');
    this.#pids.clear();
  }

  dispose(): void {
    process.off('exit', this.#onExit);
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.off(signal, this.#onSignal);
    }
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it). */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  if (port === undefined) throw new Error('no port assigned');
  return port;
}

/** count distinct free ports: all held open together so the OS cannot hand one out twice. */
export async function freePorts(count: number): Promise<number[]> {
  const servers = Array.from({ length: count }, () => createServer());
  try {
    return await Promise.all(
      servers.map(
        (server) =>
          new Promise<number>((resolve, reject) => {
            server.once('error', reject);
            server.listen(0, '127.0.0.1', () => {
              const address = server.address();
              if (address === null || typeof address === 'string') reject(new Error('no port'));
              else resolve(address.port);
            });
          }),
      ),
    );
  } finally {
    await Promise.all(
      servers.map(
        (server) =>
          new Promise<void>((resolve) => {
            if (server.listening)
              server.close(() => {
                resolve();
              });
            else resolve();
          }),
      ),
    );
  }
}
