import type { Clock } from '../time/clock.js';
import type { ListScope, SecretMetadataClient } from './kube-client.js';
import { createSecretLister, type ListStep } from './pages.js';
import {
  DEFAULT_ROTATION_SETTLE_MS,
  classifySecret,
  formatRotationTime,
  isStale,
  settledAt,
  stampFor,
  type TargetKey,
  type VersionCounts,
} from './plan.js';
import { WorkerPool } from './pool.js';
import type { RateLimiter } from './rate-limit.js';
import { messageOf } from './requests.js';
import { MAX_CONSECUTIVE_FAILURES, type SweepBackoff } from './retry.js';
import { rewriteSecret, type RewriteContext } from './rewrite.js';
import { SweepState, type SweepObserver, type SweepProgress } from './sweep-state.js';

export type { SweepObserver, SweepProgress } from './sweep-state.js';

/**
 * The sweep: stream Secret metadata page by page, rewrite the stale ones with bounded
 * concurrency and rate. Memory holds one page plus the in-flight rewrites, whatever the
 * number of Secrets. The parts: the page walk (pages.ts), one Secret's rewrite
 * (rewrite.ts), the counters (sweep-state.ts) and the worker pool (pool.ts).
 */

export interface SweepOptions {
  readonly client: SecretMetadataClient;
  readonly target: TargetKey;
  /** After the rotation, how long old-version writes may happen (default 5 min). */
  readonly settleMs?: number;
  readonly scope: ListScope;
  readonly dryRun: boolean;
  readonly pageSize: number;
  readonly concurrency: number;
  /** Shared by every request of the sweep (lists, reads and patches). */
  readonly limiter: RateLimiter;
  readonly backoff: SweepBackoff;
  readonly clock: Clock;
  readonly random: () => number;
  /** Aborting stops taking new work; in-flight patches finish. */
  readonly signal: AbortSignal;
  readonly observer?: SweepObserver;
  /** Bound on list restarts after expired continue tokens. */
  readonly maxListRestarts?: number;
  /** Stop after this many Secrets in a row failed (default MAX_CONSECUTIVE_FAILURES). */
  readonly maxConsecutiveFailures?: number;
}

export interface SweepSummary extends Omit<SweepProgress, 'estimatedTotal' | 'elapsedMs'> {
  readonly dryRun: boolean;
  readonly keyId: string;
  readonly primaryKeyVersion: string;
  readonly rotationTime: string;
  /** rotationTime + the settle time: Secrets last written up to then are stale. */
  readonly settledAt: string;
  /** Secrets under each key version as listed (before rewriting). */
  readonly byVersion: VersionCounts;
  /** Dry run: how many a real run would rewrite (= stale). */
  readonly wouldRewrite: number;
  /** List items the API server sent with their data (refused, counted in `failed`). */
  readonly refused: number;
  readonly listRestarts: number;
  readonly interrupted: boolean;
  /** Why the sweep stopped early (forbidden, unauthorized, list failure). */
  readonly fatalError: string | undefined;
  readonly durationSeconds: number;
}

export async function runSweep(options: SweepOptions): Promise<SweepSummary> {
  const state = new SweepState(
    options.clock,
    options.maxConsecutiveFailures ?? MAX_CONSECUTIVE_FAILURES,
    options.observer,
  );
  // A function, not an inline check: the signal and the state change while the sweep awaits.
  const stopped = (): boolean => options.signal.aborted || state.fatalError !== undefined;
  const lister = createSecretLister({
    ...options,
    maxListRestarts: options.maxListRestarts ?? 10,
    stopped,
  });
  const pool = new WorkerPool(options.concurrency);
  const rewriting: RewriteContext = {
    ...options,
    settleMs: options.settleMs ?? DEFAULT_ROTATION_SETTLE_MS,
    stamp: stampFor(options.target),
  };
  try {
    for (;;) {
      const step = await lister.next();
      if (step.kind === 'failed') state.fatalError = step.message;
      if (step.kind !== 'page') break;
      const handledAll = await handlePage(step, { options, state, pool, rewriting, stopped });
      if (!handledAll) break;
    }
  } finally {
    await pool.drain();
  }
  state.report();
  return summarize(options, rewriting, state, lister.restarts);
}

interface PageContext {
  readonly options: SweepOptions;
  readonly state: SweepState;
  readonly pool: WorkerPool;
  readonly rewriting: RewriteContext;
  readonly stopped: () => boolean;
}

/** Classifies the page's Secrets and starts a rewrite for each stale one; false once stopped. */
async function handlePage(
  step: Extract<ListStep, { kind: 'page' }>,
  { options, state, pool, rewriting, stopped }: PageContext,
): Promise<boolean> {
  const scannedBeforePage = state.scanned;
  if (step.page.refused !== undefined) state.refuse(step.page.refused);
  for (const item of step.fresh) {
    if (stopped()) return false;
    const secretState = classifySecret(item, rewriting);
    state.scan(secretState);
    if (!isStale(secretState) || options.dryRun) continue;
    await pool.whenFree();
    if (stopped()) return false;
    pool.run(() =>
      rewriteSecret(item, rewriting).then(
        (outcome) => {
          state.record(item, outcome);
        },
        (error: unknown) => {
          state.fail(item, messageOf(error));
        },
      ),
    );
  }
  state.estimate(step.page, scannedBeforePage);
  state.report();
  return true;
}

function summarize(
  options: SweepOptions,
  rewriting: RewriteContext,
  state: SweepState,
  listRestarts: number,
): SweepSummary {
  const { target, dryRun } = options;
  const stale = state.tally.stale;
  return {
    dryRun,
    keyId: target.keyId,
    primaryKeyVersion: target.primaryKeyVersion,
    rotationTime: formatRotationTime(target.rotationTime),
    settledAt: formatRotationTime(new Date(settledAt(rewriting))),
    scanned: state.scanned,
    stale,
    rewritten: state.rewritten,
    skipped: state.skipped,
    failed: state.failed,
    byVersion: state.counts(),
    wouldRewrite: dryRun ? stale : 0,
    refused: state.refused,
    listRestarts,
    interrupted: options.signal.aborted,
    fatalError: state.fatalError,
    durationSeconds: Math.round((options.clock.now() - state.startedAt) / 100) / 10,
  };
}
