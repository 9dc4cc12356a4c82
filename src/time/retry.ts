import { sleep, type Clock } from './clock.js';

/** The one backoff and the one retry loop of the product (KMS monitor, reencrypt, KMS lookups). */

export interface BackoffPolicy {
  /** Ceiling of the first retry's delay. */
  readonly baseMs: number;
  /** No delay is ever longer (a server's Retry-After included). */
  readonly maxMs: number;
}

/**
 * Delay before retry number `retry` (1 = first retry): exponential with "equal jitter",
 * random in [ceiling/2, ceiling] where ceiling = min(maxMs, baseMs·2^(retry-1)). Many
 * clients failing together spread their retries, yet even unlucky draws wait at least half
 * the ceiling (no hot loop). `atLeastMs` (a server's Retry-After) is a lower bound, capped
 * at maxMs too.
 */
export function backoffDelayMs(
  retry: number,
  policy: BackoffPolicy,
  random: () => number,
  atLeastMs = 0,
): number {
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(Math.max(retry, 1) - 1, 30));
  const jittered = ceiling / 2 + Math.min(Math.max(random(), 0), 1) * (ceiling / 2);
  return Math.round(Math.max(jittered, Math.min(policy.maxMs, Math.max(0, atLeastMs))));
}

export interface RetryOptions {
  /** Total attempts, the first included. */
  readonly maxAttempts: number;
  readonly clock: Clock;
  /** Aborting stops retrying: the last error is thrown. */
  readonly signal?: AbortSignal | undefined;
  /**
   * After a failed attempt (not the last): the wait in ms before the next one, or undefined
   * to give up (the error is thrown). May do async work (e.g. re-read before a retry).
   */
  readonly nextDelayMs: (
    error: unknown,
    attempt: number,
  ) => number | undefined | Promise<number | undefined>;
}

/** Runs `attempt` until it succeeds, the policy gives up, attempts run out or `signal` aborts. */
export async function retry<T>(
  attempt: (attemptNumber: number) => Promise<T>,
  options: RetryOptions,
): Promise<T> {
  for (let attemptNumber = 1; ; attemptNumber += 1) {
    try {
      return await attempt(attemptNumber);
    } catch (error) {
      if (attemptNumber >= options.maxAttempts || options.signal?.aborted === true) throw error;
      const delayMs = await options.nextDelayMs(error, attemptNumber);
      if (delayMs === undefined) throw error;
      if (delayMs > 0) await sleep(options.clock, delayMs, options.signal);
    }
  }
}
