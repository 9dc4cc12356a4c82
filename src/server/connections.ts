import { readFileSync } from 'node:fs';

/**
 * Concurrent connections the admission listener accepts at most; more are closed as they
 * arrive. The API server keeps a few kept-alive connections per replica and opens more only
 * for concurrent admissions, so this is far above its need, and small enough for the memory
 * limit: ~31 KiB per idle TLS connection, ~1 MiB for 10 reading a large body at once.
 */
export const DEFAULT_MAX_CONNECTIONS = 1024;

/**
 * Descriptors kept free for everything else: the health listener and its clients (kubelet
 * probes, Prometheus), KMS connections, TLS file watches, stdout. Without them a flood of
 * admission connections left /livez hanging once descriptors ran out.
 */
export const DESCRIPTOR_HEADROOM = 128;

/** The connection cap for a process allowed `openFiles` descriptors (undefined: unknown). */
export function admissionConnectionCap(openFiles: number | undefined): number {
  if (openFiles === undefined || !Number.isFinite(openFiles)) return DEFAULT_MAX_CONNECTIONS;
  return Math.max(16, Math.min(DEFAULT_MAX_CONNECTIONS, openFiles - DESCRIPTOR_HEADROOM));
}

/** The soft RLIMIT_NOFILE from /proc/self/limits (Linux); undefined elsewhere or unlimited. */
export function readOpenFilesLimit(file = '/proc/self/limits'): number | undefined {
  try {
    const match = /^Max open files\s+(\d+)/m.exec(readFileSync(file, 'utf8'));
    return match?.[1] === undefined ? undefined : Number(match[1]);
  } catch {
    return undefined;
  }
}
