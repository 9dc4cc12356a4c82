import {
  VersionTally,
  classifySecret,
  formatRotationTime,
  isAfter,
  isStale,
  listKey,
  stampFor,
  type TargetKey,
  type VersionCounts,
} from './plan.js';
import type { RateLimiter } from './rate-limit.js';
import {
  MAX_CONSECUTIVE_FAILURES,
  backoffDelayMs,
  isFatal,
  isRetryable,
  type BackoffPolicy,
} from './retry.js';
import {
  KubeApiError,
  type ListScope,
  type SecretMetadata,
  type SecretMetadataClient,
  type SecretRef,
} from './kube-client.js';

/**
 * The sweep: stream Secret metadata page by page, rewrite the stale ones with bounded
 * concurrency and rate. Memory holds one page plus the in-flight rewrites, whatever the
 * number of Secrets.
 */

export interface SweepClock {
  now(): number;
  /** Resolves after `ms`, or early when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export interface SweepOptions {
  readonly client: SecretMetadataClient;
  readonly target: TargetKey;
  readonly scope: ListScope;
  readonly dryRun: boolean;
  readonly pageSize: number;
  readonly concurrency: number;
  /** Shared by every request of the sweep (lists, reads and patches). */
  readonly limiter: RateLimiter;
  readonly backoff: BackoffPolicy;
  readonly clock: SweepClock;
  readonly random: () => number;
  /** Aborting stops taking new work; in-flight patches finish. */
  readonly signal: AbortSignal;
  readonly observer?: SweepObserver;
  /** Bound on list restarts after expired continue tokens. */
  readonly maxListRestarts?: number;
  /** Stop after this many Secrets in a row failed (default MAX_CONSECUTIVE_FAILURES). */
  readonly maxConsecutiveFailures?: number;
}

export interface SweepProgress {
  readonly scanned: number;
  readonly stale: number;
  readonly rewritten: number;
  readonly skipped: number;
  readonly failed: number;
  /** scanned + what the server says is left (absent with selectors). */
  readonly estimatedTotal: number | undefined;
  readonly elapsedMs: number;
}

export interface SweepObserver {
  onProgress?(progress: SweepProgress): void;
  /** One Secret could not be rewritten (names only, never data). */
  onFailure?(ref: SecretRef, message: string): void;
}

export interface SweepSummary extends Omit<SweepProgress, 'estimatedTotal' | 'elapsedMs'> {
  readonly dryRun: boolean;
  readonly keyId: string;
  readonly primaryKeyVersion: string;
  readonly rotationTime: string;
  /** Secrets under each key version as listed (before rewriting). */
  readonly byVersion: VersionCounts;
  /** Dry run: how many a real run would rewrite (= stale). */
  readonly wouldRewrite: number;
  readonly listRestarts: number;
  readonly interrupted: boolean;
  /** Why the sweep stopped early (forbidden, unauthorized, list failure). */
  readonly fatalError: string | undefined;
  readonly durationSeconds: number;
}

type Outcome = 'rewritten' | 'skipped' | 'failed' | 'interrupted';

export async function runSweep(options: SweepOptions): Promise<SweepSummary> {
  const { client, target, scope, clock, signal, observer } = options;
  const startedAt = clock.now();
  const stamp = stampFor(target);
  const tally = new VersionTally();
  const counters = { scanned: 0, rewritten: 0, skipped: 0, failed: 0 };
  let estimatedTotal: number | undefined;
  let fatalError: string | undefined;
  let listRestarts = 0;
  const maxListRestarts = options.maxListRestarts ?? 10;
  const inFlight = new Set<Promise<void>>();
  const maxConsecutiveFailures = options.maxConsecutiveFailures ?? MAX_CONSECUTIVE_FAILURES;
  let consecutiveFailures = 0;

  const progress = (): SweepProgress => ({
    ...counters,
    stale: tally.stale,
    estimatedTotal,
    elapsedMs: clock.now() - startedAt,
  });
  const report = (): void => observer?.onProgress?.(progress());
  // Functions, not inline checks: the signal changes while the sweep awaits.
  const interrupted = (): boolean => signal.aborted;
  const stopped = (): boolean => interrupted() || fatalError !== undefined;

  async function throttle(): Promise<void> {
    const wait = options.limiter.reserve();
    if (wait > 0) await clock.sleep(wait, signal);
  }

  async function withRetries<T>(what: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt += 1) {
      await throttle();
      try {
        return await what();
      } catch (error) {
        const kind = error instanceof KubeApiError ? error.kind : 'network';
        if (!isRetryable(kind) || attempt >= options.backoff.maxAttempts || signal.aborted) {
          throw error;
        }
        const retryAfter = error instanceof KubeApiError ? error.retryAfterSeconds : undefined;
        await clock.sleep(
          backoffDelayMs(attempt, options.backoff, options.random, retryAfter),
          signal,
        );
      }
    }
  }

  async function rewrite(listed: SecretMetadata): Promise<Outcome> {
    let resourceVersion = listed.resourceVersion;
    for (let attempt = 1; ; attempt += 1) {
      if (interrupted()) return 'interrupted';
      await throttle();
      // Not sent yet: leave it for the next run rather than start new work after a stop.
      if (interrupted()) return 'interrupted';
      try {
        await client.patchAnnotations(listed, resourceVersion, stamp);
        return 'rewritten';
      } catch (error) {
        const failure =
          error instanceof KubeApiError
            ? error
            : new KubeApiError('network', undefined, String(error));
        if (failure.kind === 'notFound') return 'skipped';
        if (isFatal(failure.kind)) {
          fatalError ??= fatalMessage(failure, 'patch');
          return 'failed';
        }
        if (!isRetryable(failure.kind) || attempt >= options.backoff.maxAttempts) {
          observer?.onFailure?.(listed, failure.message);
          return 'failed';
        }
        if (interrupted()) return 'interrupted';
        if (failure.kind === 'conflict') {
          // Someone else wrote the Secret: re-read its metadata; it may be current already
          // (e.g. the mutating webhook stamped it), or gone.
          try {
            const latest = await withRetries(() => client.get(listed));
            if (latest === undefined) return 'skipped';
            if (!isStale(classifySecret(latest.annotations, target))) return 'skipped';
            resourceVersion = latest.resourceVersion;
          } catch (readError) {
            const kind = readError instanceof KubeApiError ? readError.kind : 'network';
            if (isFatal(kind) && readError instanceof KubeApiError) {
              fatalError ??= fatalMessage(readError, 'get');
            } else {
              observer?.onFailure?.(listed, messageOf(readError));
            }
            return 'failed';
          }
          continue;
        }
        await clock.sleep(
          backoffDelayMs(attempt, options.backoff, options.random, failure.retryAfterSeconds),
          signal,
        );
      }
    }
  }

  function failedOne(ref: SecretRef, message: string | undefined): void {
    counters.failed += 1;
    if (message !== undefined) observer?.onFailure?.(ref, message);
    consecutiveFailures += 1;
    if (consecutiveFailures >= maxConsecutiveFailures) {
      fatalError ??= `${consecutiveFailures} Secrets in a row could not be rewritten (see the failures above); stopped instead of repeating the same error. Fix the cause and run again.`;
    }
  }

  function dispatch(item: SecretMetadata): void {
    const task = rewrite(item).then(
      (outcome) => {
        if (outcome === 'failed') failedOne(item, undefined);
        else if (outcome !== 'interrupted') {
          counters[outcome] += 1;
          consecutiveFailures = 0;
        }
        report();
      },
      (error: unknown) => {
        failedOne(item, messageOf(error));
      },
    );
    const tracked = task.finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
  }

  let continueToken: string | undefined;
  let lastHandled: string | undefined;
  let resuming = false;
  let scannedBeforePage = 0;
  try {
    sweep: for (;;) {
      if (stopped()) break;
      let page;
      try {
        const token = continueToken;
        page = await withRetries(() => client.listPage(scope, options.pageSize, token));
      } catch (error) {
        if (error instanceof KubeApiError && error.kind === 'expired') {
          listRestarts += 1;
          if (listRestarts > maxListRestarts) {
            fatalError = `list secrets: the continue token expired ${listRestarts} times; run again (finished Secrets are skipped).`;
            break;
          }
          // With the server's fresh token we continue from the latest snapshot; without it
          // we restart and skip everything up to the last Secret handled (key order).
          continueToken = error.continueToken;
          resuming = continueToken === undefined;
          continue;
        }
        if (signal.aborted) break;
        fatalError =
          error instanceof KubeApiError && isFatal(error.kind)
            ? fatalMessage(error, 'list')
            : `cannot list secrets: ${messageOf(error)}`;
        break;
      }
      scannedBeforePage = counters.scanned;
      for (const item of page.items) {
        if (stopped()) break sweep;
        const key = listKey(item.namespace, item.name);
        if (resuming && !isAfter(key, lastHandled)) continue;
        resuming = false;
        lastHandled = key;
        const state = classifySecret(item.annotations, target);
        counters.scanned += 1;
        tally.add(state);
        if (!isStale(state) || options.dryRun) continue;
        while (inFlight.size >= options.concurrency) await Promise.race(inFlight);
        if (stopped()) break sweep;
        dispatch(item);
      }
      estimatedTotal =
        page.remainingItemCount !== undefined
          ? scannedBeforePage + page.items.length + page.remainingItemCount
          : page.continueToken === undefined
            ? counters.scanned
            : undefined;
      report();
      if (page.continueToken === undefined) break;
      continueToken = page.continueToken;
    }
  } finally {
    await Promise.all(inFlight);
  }
  report();
  const stale = tally.stale;
  return {
    dryRun: options.dryRun,
    keyId: target.keyId,
    primaryKeyVersion: target.primaryKeyVersion,
    rotationTime: formatRotationTime(target.rotationTime),
    scanned: counters.scanned,
    stale,
    rewritten: counters.rewritten,
    skipped: counters.skipped,
    failed: counters.failed,
    byVersion: tally.counts(),
    wouldRewrite: options.dryRun ? stale : 0,
    listRestarts,
    interrupted: signal.aborted,
    fatalError,
    durationSeconds: Math.round((clock.now() - startedAt) / 100) / 10,
  };
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

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
