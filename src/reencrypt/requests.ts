import { sleep, type Clock } from '../time/clock.js';
import { backoffDelayMs, retry } from '../time/retry.js';
import { KubeApiError } from './kube-client.js';
import type { RateLimiter } from './rate-limit.js';
import { isRetryable, type SweepBackoff } from './retry.js';

/** How the sweep paces its requests: one rate limit, one backoff and one stop signal for all. */
export interface RequestPacing {
  /** Shared by every request of the sweep (lists, reads and patches). */
  readonly limiter: RateLimiter;
  readonly backoff: SweepBackoff;
  readonly clock: Clock;
  readonly random: () => number;
  /** Aborting stops taking new work and ends waits early. */
  readonly signal: AbortSignal;
}

/** Waits for this request's slot of the rate limit. */
export async function throttle(pacing: RequestPacing): Promise<void> {
  const wait = pacing.limiter.reserve();
  if (wait > 0) await sleep(pacing.clock, wait, pacing.signal);
}

/** A failure as the retry policy sees it: whatever did not come from the API server is a network failure. */
export function asKubeFailure(error: unknown): KubeApiError {
  return error instanceof KubeApiError
    ? error
    : new KubeApiError('network', undefined, String(error));
}

/** The wait before retry number `retry` of a failed request; a server's Retry-After is a lower bound. */
export function retryDelayMs(pacing: RequestPacing, failure: KubeApiError, retry: number): number {
  return backoffDelayMs(
    retry,
    pacing.backoff,
    pacing.random,
    (failure.retryAfterSeconds ?? 0) * 1000,
  );
}

/** A request (list, read) throttled before each attempt and retried while its failure is transient. */
export function withRetries<T>(pacing: RequestPacing, request: () => Promise<T>): Promise<T> {
  return retry(
    async () => {
      await throttle(pacing);
      return await request();
    },
    {
      maxAttempts: pacing.backoff.maxAttempts,
      clock: pacing.clock,
      signal: pacing.signal,
      nextDelayMs: (error, attempt) => {
        const failure = asKubeFailure(error);
        return isRetryable(failure.kind) ? retryDelayMs(pacing, failure, attempt) : undefined;
      },
    },
  );
}

/** The one line a person reads when the identity may not do what the sweep needs. */
export function fatalMessage(error: KubeApiError, verb: 'list' | 'get' | 'patch'): string {
  if (error.kind === 'unauthorized') {
    return `unauthorized: ${error.message}. The kubeconfig's credentials were rejected: refresh them (or the service account token) and run again.`;
  }
  if (/admission webhook/i.test(error.message)) {
    return `denied by an admission webhook: ${error.message}. Fix what it names (e.g. the KMS key state: kms-secret-guard check) and run again.`;
  }
  return `forbidden: ${error.message}. This identity cannot ${verb} secrets: grant the reencrypt ClusterRole (get, list, patch on secrets; see manifests/) and run again.`;
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
