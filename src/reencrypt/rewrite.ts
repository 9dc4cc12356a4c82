import { retry } from '../time/retry.js';
import type { SecretMetadata, SecretMetadataClient } from './kube-client.js';
import {
  classifySecret,
  formatRotationTime,
  isStale,
  rewritePatchFor,
  settledAt,
  type StalenessRule,
} from './plan.js';
import {
  asKubeFailure,
  fatalMessage,
  messageOf,
  retryDelayMs,
  throttle,
  withRetries,
  type RequestPacing,
} from './requests.js';
import { isFatal, isRetryable } from './retry.js';

/** What became of one stale Secret. */
export type RewriteOutcome =
  | { readonly kind: 'rewritten' | 'skipped' | 'interrupted' }
  /** `message`: why this Secret failed; `fatal`: why the whole sweep must stop. */
  | { readonly kind: 'failed'; readonly message?: string; readonly fatal?: string };

export interface RewriteContext extends RequestPacing, StalenessRule {
  readonly client: SecretMetadataClient;
  /** The annotations that mark a Secret as written under the target key version. */
  readonly stamp: Readonly<Record<string, string>>;
}

const REWRITTEN: RewriteOutcome = { kind: 'rewritten' };
const SKIPPED: RewriteOutcome = { kind: 'skipped' };
const INTERRUPTED: RewriteOutcome = { kind: 'interrupted' };

/**
 * Rewrites one listed Secret: a conditional patch of the stamp annotations and
 * REENCRYPTED_AT_ANNOTATION (so the object always changes and the API server writes it
 * under its current seed), retried on
 * transient failures; on a conflict it re-reads the Secret first (it may be current already,
 * e.g. stamped by the mutating webhook, or gone). Never throws.
 */
export async function rewriteSecret(
  listed: SecretMetadata,
  ctx: RewriteContext,
): Promise<RewriteOutcome> {
  let resourceVersion = listed.resourceVersion;
  let lastAttempt = 0;
  /** Set when a re-read after a conflict decided the outcome. */
  let settled: RewriteOutcome | undefined;
  const interrupted = (): boolean => ctx.signal.aborted;
  try {
    return await retry(
      async (attempt) => {
        lastAttempt = attempt;
        if (interrupted()) return INTERRUPTED;
        await throttle(ctx);
        // Not sent yet: leave it for the next run rather than start new work after a stop.
        if (interrupted()) return INTERRUPTED;
        const patch = rewritePatchFor(ctx.stamp, ctx.clock.now());
        return checkedRewrite(
          listed,
          await ctx.client.patchAnnotations(listed, resourceVersion, patch),
          ctx,
        );
      },
      {
        maxAttempts: ctx.backoff.maxAttempts,
        clock: ctx.clock,
        signal: ctx.signal,
        nextDelayMs: async (error, attempt) => {
          const failure = asKubeFailure(error);
          if (!isRetryable(failure.kind)) return undefined;
          if (failure.kind !== 'conflict') return retryDelayMs(ctx, failure, attempt);
          const latest = await rereadIfStale(listed, ctx);
          if ('outcome' in latest) {
            settled = latest.outcome;
            return undefined;
          }
          resourceVersion = latest.resourceVersion;
          return 0;
        },
      },
    );
  } catch (error) {
    return settled ?? outcomeOfFailure(error, lastAttempt, ctx);
  }
}

/**
 * The wait before the first patch follows this machine's clock; the API server's own clock
 * (the write's managedFields time) must agree that the rewrite came after the rotation
 * settled. If it does not (clocks apart), the rewrite may be under the previous key version:
 * it fails, and the next run finds the Secret stale again. Only a write time that moved counts
 * (a cluster that strips managedFields reports creationTimestamp, which never moves).
 */
function checkedRewrite(
  listed: SecretMetadata,
  written: SecretMetadata,
  rule: StalenessRule,
): RewriteOutcome {
  const writtenAt = written.lastWrittenAt;
  const moved = writtenAt !== undefined && writtenAt > (listed.lastWrittenAt ?? -Infinity);
  if (!moved || writtenAt > settledAt(rule)) return REWRITTEN;
  return {
    kind: 'failed',
    message: `the API server recorded this rewrite at ${formatRotationTime(new Date(writtenAt))}, not after the rotation settled (${formatRotationTime(new Date(settledAt(rule)))}): this machine's clock is ahead of the API server's or KMS's, so it may still be under the previous key version; run again later (it is still counted as stale)`,
  };
}

/** The outcome of the patch's last failure (after its retries, or not retried). */
function outcomeOfFailure(error: unknown, attempt: number, ctx: RewriteContext): RewriteOutcome {
  const failure = asKubeFailure(error);
  if (failure.kind === 'notFound') return SKIPPED;
  if (isFatal(failure.kind)) return { kind: 'failed', fatal: fatalMessage(failure, 'patch') };
  if (!isRetryable(failure.kind) || attempt >= ctx.backoff.maxAttempts) {
    return { kind: 'failed', message: failure.message };
  }
  // Retryable with attempts left: only a stop ends it.
  return INTERRUPTED;
}

/** After a conflict: the Secret's new resourceVersion if it is still stale, else the outcome. */
async function rereadIfStale(
  listed: SecretMetadata,
  ctx: RewriteContext,
): Promise<{ outcome: RewriteOutcome } | { resourceVersion: string }> {
  try {
    const latest = await withRetries(ctx, () => ctx.client.get(listed));
    if (latest === undefined) return { outcome: SKIPPED };
    if (!isStale(classifySecret(latest, ctx))) return { outcome: SKIPPED };
    return { resourceVersion: latest.resourceVersion };
  } catch (readError) {
    const failure = asKubeFailure(readError);
    if (isFatal(failure.kind) && failure === readError) {
      return { outcome: { kind: 'failed', fatal: fatalMessage(failure, 'get') } };
    }
    return { outcome: { kind: 'failed', message: messageOf(readError) } };
  }
}
