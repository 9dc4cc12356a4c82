import type { Clock } from '../time/clock.js';
import type { SecretMetadataPage, SecretRef } from './kube-client.js';
import { VersionTally, type SecretState, type VersionCounts } from './plan.js';
import type { RewriteOutcome } from './rewrite.js';

/** What the sweep has done so far: counters, the version tally, outcomes and why it stopped. */

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

/** A list item the API server sent with its data: dropped, never shown. */
export const REFUSED_MESSAGE =
  'the API server sent this Secret with its data in a metadata-only list; refused (the data was neither kept nor shown)';

export class SweepState {
  scanned = 0;
  rewritten = 0;
  skipped = 0;
  failed = 0;
  refused = 0;
  estimatedTotal: number | undefined;
  /** Why the sweep stops early (forbidden, unauthorized, list failure, too many failures). */
  fatalError: string | undefined;
  readonly tally = new VersionTally();
  readonly startedAt: number;
  #consecutiveFailures = 0;

  constructor(
    readonly clock: Clock,
    readonly maxConsecutiveFailures: number,
    readonly observer: SweepObserver | undefined,
  ) {
    this.startedAt = clock.now();
  }

  scan(state: SecretState): void {
    this.scanned += 1;
    this.tally.add(state);
  }

  /** Records one rewrite's outcome and reports progress. */
  record(ref: SecretRef, outcome: RewriteOutcome): void {
    if (outcome.kind === 'failed') {
      if (outcome.fatal !== undefined) this.fatalError ??= outcome.fatal;
      this.fail(ref, outcome.message);
    } else if (outcome.kind !== 'interrupted') {
      this[outcome.kind] += 1;
      this.#consecutiveFailures = 0;
    }
    this.report();
  }

  /** One Secret failed; `message` (if any) goes to the observer. */
  fail(ref: SecretRef, message: string | undefined): void {
    this.failed += 1;
    if (message !== undefined) this.observer?.onFailure?.(ref, message);
    this.#consecutiveFailures += 1;
    if (this.#consecutiveFailures >= this.maxConsecutiveFailures) {
      this.fatalError ??= `${this.#consecutiveFailures} Secrets in a row could not be rewritten (see the failures above); stopped instead of repeating the same error. Fix the cause and run again.`;
    }
  }

  /** Items sent with their data: each one a failure, named, its content never looked at. */
  refuse(refs: readonly SecretRef[]): void {
    for (const ref of refs) {
      this.refused += 1;
      this.fail(ref, REFUSED_MESSAGE);
    }
  }

  /** After a page: scanned + what the server says is left, or exact at the end. */
  estimate(page: SecretMetadataPage, scannedBeforePage: number): void {
    this.estimatedTotal =
      page.remainingItemCount !== undefined
        ? scannedBeforePage + page.items.length + page.remainingItemCount
        : page.continueToken === undefined
          ? this.scanned
          : undefined;
  }

  progress(): SweepProgress {
    return {
      scanned: this.scanned,
      rewritten: this.rewritten,
      skipped: this.skipped,
      failed: this.failed,
      stale: this.tally.stale,
      estimatedTotal: this.estimatedTotal,
      elapsedMs: this.clock.now() - this.startedAt,
    };
  }

  report(): void {
    this.observer?.onProgress?.(this.progress());
  }

  counts(): VersionCounts {
    return this.tally.counts();
  }
}
