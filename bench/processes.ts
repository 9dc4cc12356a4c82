/**
 * CPU time of the harness' child processes, for the benchmarks that run a real cluster
 * (bench/e2e.ts, bench/encryption.ts): find a process by its command line, read its CPU.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { cpus } from 'node:os';
import { cpuSeconds } from './harness.js';

/** utime + stime of a process in milliseconds. */
export function cpuMs(pid: number): number {
  return cpuSeconds(pid) * 1000;
}

/** The pid whose command line contains every one of `parts` (the harness' processes). */
export function findPid(what: string, parts: string[]): number {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch {
      continue;
    }
    if (cmdline.startsWith('/usr/bin/setpriv')) continue;
    if (parts.every((part) => cmdline.includes(part))) return Number(entry);
  }
  throw new Error(`could not find the ${what} process (${parts.join(' ')})`);
}

/**
 * `npm run bench` pins its runner (and so the benchmarks it starts) off CPU 0 for the
 * component bench; a cluster started from here must use every CPU, as a control-plane node
 * does, so this process widens its affinity first (its children inherit it).
 */
export function useEveryCpu(): void {
  try {
    execFileSync('taskset', ['-apc', `0-${cpus().length - 1}`, String(process.pid)], {
      stdio: 'ignore',
    });
  } catch {
    // No taskset: nothing was pinned either.
  }
}
