import type { BackoffPolicy } from '../time/retry.js';

/** Pure retry policy of the sweep: which failures are worth another attempt, and when. */

/** How a failed Kubernetes request is treated. */
export type FailureKind =
  /** resourceVersion precondition failed: re-read and retry if still stale. */
  | 'conflict'
  /** The Secret was deleted meanwhile: skip it. */
  | 'notFound'
  /** RBAC (or an admission webhook) refused: every other Secret would fail the same way. */
  | 'forbidden'
  | 'unauthorized'
  /** 429 Too Many Requests (API Priority and Fairness, max-in-flight). */
  | 'throttled'
  | 'serverError'
  | 'network'
  /** 410 Gone: the list's continue token expired. */
  | 'expired'
  /** Anything else (400, 422, …): this Secret fails, the sweep goes on. */
  | 'rejected';

export function failureKindOfStatus(status: number, message = ''): FailureKind {
  if (status === 409) return 'conflict';
  if (status === 404) return 'notFound';
  // An admission webhook's denial concerns that one object (a policy may refuse only some
  // Secrets); RBAC's 403 concerns every Secret the sweep would touch.
  if (status === 403)
    return /admission webhook .* denied the request/.test(message) ? 'rejected' : 'forbidden';
  if (status === 401) return 'unauthorized';
  if (status === 429) return 'throttled';
  if (status === 410) return 'expired';
  if (status >= 500) return 'serverError';
  return 'rejected';
}

export function isRetryable(kind: FailureKind): boolean {
  return (
    kind === 'conflict' || kind === 'throttled' || kind === 'serverError' || kind === 'network'
  );
}

/** Failures that end the sweep: retrying other Secrets would only repeat them. */
export function isFatal(kind: FailureKind): boolean {
  return kind === 'forbidden' || kind === 'unauthorized';
}

/** The sweep's backoff: the shared policy plus a bound on attempts per request. */
export interface SweepBackoff extends BackoffPolicy {
  /** Total attempts per request, the first included. */
  readonly maxAttempts: number;
}

/**
 * After this many Secrets in a row failed (after their retries) the sweep stops: the API
 * server or a webhook refuses everything, and going on would only repeat the same error.
 */
export const MAX_CONSECUTIVE_FAILURES = 20;

export const DEFAULT_BACKOFF: SweepBackoff = { baseMs: 250, maxMs: 30_000, maxAttempts: 5 };

/** Parses a Retry-After header: delta-seconds or an HTTP date. */
export function parseRetryAfter(header: string | undefined, now: number): number | undefined {
  if (header === undefined || header.trim() === '') return undefined;
  const trimmed = header.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, Math.ceil((date - now) / 1000));
}
