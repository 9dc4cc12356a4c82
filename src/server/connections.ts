import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';

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

/**
 * Connections one source address may hold at once on the admission listener. The API server
 * opens one connection per concurrent admission (HTTP/1.1) and keeps up to 25 idle per
 * replica (client-go), and replicas may reach the webhook through one address (a proxy or
 * SNAT): 256 lets five replicas run 50 admissions at once each, while one pod can no longer
 * take the whole cap.
 */
export const MAX_CONNECTIONS_PER_SOURCE = 256;

interface ConnectionSource {
  on(event: 'connection', listener: (socket: Socket) => void): unknown;
}

/**
 * Closes each connection that would take its source address over `cap` as it arrives
 * (before the TLS handshake, so a refusal costs next to nothing); `onRefused` hears of each.
 */
export function limitConnectionsPerSource(
  server: ConnectionSource,
  cap: number,
  onRefused: (source: string) => void = () => undefined,
): void {
  const open = new Map<string, number>();
  server.on('connection', (socket) => {
    const source = socket.remoteAddress ?? 'unknown';
    const count = (open.get(source) ?? 0) + 1;
    if (count > cap) {
      socket.destroy();
      onRefused(source);
      return;
    }
    open.set(source, count);
    socket.once('close', () => {
      const left = (open.get(source) ?? 1) - 1;
      if (left > 0) open.set(source, left);
      else open.delete(source);
    });
  });
}

/** Calls `report(count, latest)` at most once per `intervalMs`, with the events since the last. */
export function throttled<T>(
  report: (count: number, latest: T) => void,
  intervalMs: number,
  now: () => number = Date.now,
): (event: T) => void {
  let last = Number.NEGATIVE_INFINITY;
  let pending = 0;
  return (event) => {
    pending += 1;
    if (now() - last < intervalMs) return;
    last = now();
    report(pending, event);
    pending = 0;
  };
}
