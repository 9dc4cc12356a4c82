import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { systemClock, type Clock } from '../time/clock.js';

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
 * Connections one source address may hold at once on the admission listener (default of
 * --max-connections-per-source). The API server opens one connection per concurrent
 * admission (HTTP/1.1) and keeps up to 25 idle per replica (client-go), and replicas may reach
 * the webhook through one address (a proxy or SNAT): 256 lets five replicas run 50 admissions
 * at once each, while one pod can no longer take the whole cap.
 */
export const MAX_CONNECTIONS_PER_SOURCE = 256;

/**
 * A source holding at most this many connections is treated as the API server's pool: its
 * unused connections wait for a first request as long as a kept-alive one may idle. client-go
 * keeps up to 25 idle per replica, so two replicas behind one address fit.
 */
export const PATIENT_SHARE = 64;

interface ConnectionSource {
  on(event: 'connection', listener: (socket: Socket) => void): unknown;
}

/** Connections held per source address, as limitConnectionsPerSource counts them. */
export interface SourceTracker {
  held(source: string): number;
}

/**
 * Closes each connection that would take its source address over `cap` (0: no cap) as it
 * arrives (before the TLS handshake, so a refusal costs next to nothing); `onRefused` hears of
 * each. Returns the per-source counts.
 */
export function limitConnectionsPerSource(
  server: ConnectionSource,
  cap: number,
  onRefused: (source: string) => void = () => undefined,
): SourceTracker {
  const open = new Map<string, number>();
  server.on('connection', (socket) => {
    const source = socket.remoteAddress ?? 'unknown';
    const count = (open.get(source) ?? 0) + 1;
    if (cap > 0 && count > cap) {
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
  return { held: (source) => open.get(source) ?? 0 };
}

export interface FirstRequestDeadlines {
  /** A source over the patient share must start its first request within this long. */
  readonly impatientMs: number;
  /** Any other source within this long (as long as a kept-alive connection may idle). */
  readonly patientMs: number;
  readonly patientShare: number;
}

/** The connections still waiting for their first request since the TLS handshake. */
export interface UnusedConnections {
  /**
   * A drain must not wait for them (Node closes only connections idle after a request): each
   * one, and each handshake completing from now on, is closed unless it starts a request
   * within `graceMs`. A client that dialed for a request sends it within milliseconds; a
   * pooled spare never does. Returns how many were waiting.
   */
  drain(graceMs: number): number;
}

interface SecureConnectionSource {
  on(event: 'secureConnection', listener: (socket: TLSSocket) => void): unknown;
  on(event: 'request', listener: (request: IncomingMessage) => void): unknown;
}

/**
 * After the TLS handshake a connection must start a request, or it is closed. At
 * `impatientMs` the connection is closed if its source holds more than the patient share (so
 * a holder is trimmed to the share); otherwise it may wait until `patientMs`. The API
 * server's own pool must never meet the short deadline: Go dials for a request, but if another
 * connection frees first the new one idles in the pool (up to 90 s), and a POST written to a
 * connection the server just closed is not retried (docs/hardening.md). Once a request is in,
 * the request limit (limitRequestTime) and Node's keep-alive timeout apply.
 */
export function closeUnusedAfterHandshake(
  server: SecureConnectionSource,
  sources: SourceTracker,
  deadlines: FirstRequestDeadlines,
  clock: Clock = systemClock,
): UnusedConnections {
  const timers = new Map<Socket, unknown>();
  const stop = (socket: Socket): void => {
    const timer = timers.get(socket);
    if (timer === undefined) return;
    clock.clearTimeout(timer);
    timers.delete(socket);
  };
  const closeAfter = (socket: Socket, ms: number): void => {
    timers.set(
      socket,
      clock.setTimeout(() => {
        timers.delete(socket);
        socket.destroy();
      }, ms),
    );
  };
  // Closed here but not yet gone from `sources`: timers firing together trim a source to
  // its share, no further.
  const closing = new Map<string, number>();
  const patient = (socket: TLSSocket): void => {
    const source = socket.remoteAddress ?? 'unknown';
    const pending = closing.get(source) ?? 0;
    if (sources.held(source) - pending > deadlines.patientShare) {
      closing.set(source, pending + 1);
      socket.once('close', () => {
        const left = (closing.get(source) ?? 1) - 1;
        if (left > 0) closing.set(source, left);
        else closing.delete(source);
      });
      socket.destroy();
      return;
    }
    closeAfter(socket, Math.max(0, deadlines.patientMs - deadlines.impatientMs));
  };
  let drainGraceMs: number | undefined;
  server.on('secureConnection', (socket) => {
    socket.once('close', () => {
      stop(socket);
    });
    // Draining: a handshake that was under way gets the same short grace as the others.
    if (drainGraceMs !== undefined) {
      closeAfter(socket, drainGraceMs);
      return;
    }
    timers.set(
      socket,
      clock.setTimeout(() => {
        timers.delete(socket);
        patient(socket);
      }, deadlines.impatientMs),
    );
  });
  server.on('request', (request) => {
    stop(request.socket);
  });
  return {
    drain: (graceMs) => {
      drainGraceMs = graceMs;
      const waiting = [...timers.keys()];
      for (const socket of waiting) {
        stop(socket);
        closeAfter(socket, graceMs);
      }
      return waiting.length;
    },
  };
}

interface RequestSource {
  on(
    event: 'request',
    listener: (
      request: IncomingMessage,
      response: {
        readonly headersSent: boolean;
        once(event: 'close', listener: () => void): unknown;
      },
    ) => void,
  ): unknown;
}

const REQUEST_TIMEOUT_BODY =
  '{"error":"Request Timeout","message":"Client Timeout","statusCode":408}';

/**
 * Each request must be answered within `ms` of its headers, or it gets a 408 and its
 * connection is closed. Node's own requestTimeout cannot do this here: it runs from the
 * connection's start for a first request, so it would also close the unused connections
 * closeUnusedAfterHandshake lets wait (and Node wants headersTimeout ≤ requestTimeout).
 */
export function limitRequestTime(
  server: RequestSource,
  ms: number,
  clock: Clock = systemClock,
): void {
  server.on('request', (request, response) => {
    const timer = clock.setTimeout(() => {
      const socket = request.socket;
      if (!response.headersSent && socket.writable) {
        socket.write(
          `HTTP/1.1 408 Request Timeout\r\nContent-Length: ${String(REQUEST_TIMEOUT_BODY.length)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${REQUEST_TIMEOUT_BODY}`,
        );
      }
      socket.destroySoon();
    }, ms);
    response.once('close', () => {
      clock.clearTimeout(timer);
    });
  });
}

/**
 * What a throttled reporter tells: events since the last report, the latest, and counts per
 * distinct event (the first `MAX_DISTINCT` of them; `count` is always exact).
 */
export interface ThrottledReport<T> {
  readonly count: number;
  readonly latest: T;
  readonly byEvent: ReadonlyMap<T, number>;
}

const MAX_DISTINCT = 16;

/**
 * Reports at most once per `intervalMs`: the first event at once, later ones folded into the
 * next report, and the tail of a burst reported `intervalMs` after the last report.
 */
export function throttled<T>(
  report: (summary: ThrottledReport<T>) => void,
  intervalMs: number,
  clock: Clock = systemClock,
): (event: T) => void {
  let last = Number.NEGATIVE_INFINITY;
  let pending = new Map<T, number>();
  let count = 0;
  let latest: T | undefined;
  let flushTimer: unknown;
  const flush = (): void => {
    flushTimer = undefined;
    if (count === 0 || latest === undefined) return;
    last = clock.now();
    report({ count, latest, byEvent: pending });
    pending = new Map();
    count = 0;
  };
  return (event) => {
    count += 1;
    latest = event;
    const seen = pending.get(event);
    if (seen !== undefined || pending.size < MAX_DISTINCT) pending.set(event, (seen ?? 0) + 1);
    const since = clock.now() - last;
    if (since >= intervalMs) flush();
    else flushTimer ??= clock.setTimeout(flush, intervalMs - since);
  };
}
