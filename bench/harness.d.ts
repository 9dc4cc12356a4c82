// Types for the parts of bench/harness.js that the TypeScript benches use.
import type { ChildProcess } from 'node:child_process';

/** utime + stime of a process, in seconds. */
export function cpuSeconds(pid: number): number;

export function startCeiling(
  files: { cert: string; key: string },
  nodeArgs?: readonly string[],
  extraEnv?: Record<string, string>,
  options?: { stamp?: boolean; pin?: boolean },
): Promise<{ name: 'ceiling'; child: ChildProcess; pid: number | undefined; url: string }>;
