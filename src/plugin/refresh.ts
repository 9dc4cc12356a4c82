/**
 * Refreshes of the key snapshot that Encrypt/Decrypt ask for (a KMS answer the snapshot does
 * not know yet). kube-apiserver retries failed calls, so under load every failure would
 * otherwise be one more DescribeKey against the account's shared KMS QPS budget: at most one
 * refresh per `minIntervalMs`, concurrent requests share it, and a request inside the quiet
 * period is kept as one trailing refresh at its end (a rotation seen then is not lost).
 */
import type { Clock } from '../time/clock.js';

/** Not more often than this (or the refresh interval, when shorter). */
export const DEFAULT_MIN_REFRESH_GAP_MS = 5_000;

export interface RefreshTrigger {
  /** Asks for a refresh; never waits for it and never throws. */
  request(): void;
  /** Cancels a pending trailing refresh; later requests are ignored. */
  stop(): void;
}

export function createRefreshTrigger(options: {
  readonly refresh: () => Promise<unknown>;
  readonly minIntervalMs: number;
  readonly clock: Clock;
}): RefreshTrigger {
  const { refresh, minIntervalMs, clock } = options;
  let lastStartedAt: number | undefined;
  let running = false;
  let pending: unknown;
  let wanted = false;
  let stopped = false;

  const start = (): void => {
    wanted = false;
    running = true;
    lastStartedAt = clock.now();
    refresh()
      .catch(() => undefined)
      .finally(() => {
        running = false;
        if (wanted) schedule();
      });
  };

  function schedule(): void {
    if (stopped || running || pending !== undefined) {
      wanted = wanted || running;
      return;
    }
    const waitMs = lastStartedAt === undefined ? 0 : lastStartedAt + minIntervalMs - clock.now();
    if (waitMs <= 0) {
      start();
      return;
    }
    pending = clock.setTimeout(() => {
      pending = undefined;
      if (!stopped) start();
    }, waitMs);
  }

  return {
    request: schedule,
    stop() {
      stopped = true;
      if (pending !== undefined) clock.clearTimeout(pending);
      pending = undefined;
    },
  };
}
