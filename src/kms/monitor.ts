/**
 * Keeps the guard's knowledge of the KMS key fresh off the hot path: one DescribeKey per
 * refresh interval, backoff with equal jitter on transient failures, and a snapshot that is
 * computed from memory (never I/O) so admission requests never wait for KMS.
 */
import type { Logger } from 'pino';
import type { KmsSettings, MonitorSettings } from '../config/settings.js';
import { systemClock, type Clock } from '../time/clock.js';
import { backoffDelayMs, type BackoffPolicy } from '../time/retry.js';
import { createKmsClient, type KmsClient } from './client.js';
import { KmsError, LOCAL_ERROR_CODES, toKmsError } from './errors.js';
import {
  classifyKey,
  factsFromMetadata,
  initialObservations,
  outcomeFromError,
  recordOutcome,
} from './classify.js';
import { requestKeyId } from './key-id.js';
import type { KeyLookupOutcome, KeyObservations, KeySnapshot, KeySnapshotSource } from './types.js';

/** Metrics hook: one call per KMS request; `result` is 'ok' or the error code. */
export type KmsCallObserver = (call: {
  action: string;
  result: string;
  durationSeconds: number;
}) => void;

export interface KeyMonitor extends KeySnapshotSource {
  /** Begins periodic refresh (the first lookup starts at once). */
  start(): void;
  /** One lookup now; concurrent callers share one in-flight call. */
  refresh(): Promise<KeySnapshot>;
  /** Resolves when the first lookup finished (success or failure), or on stop(). */
  readonly firstLookup: Promise<void>;
  /** Cancels timers and waits for the in-flight call. */
  stop(): Promise<void>;
}

export interface KeyMonitorOptions {
  readonly kms: KmsSettings;
  readonly monitor: MonitorSettings;
  readonly logger: Logger;
  /** Default: createKmsClient(kms) with the default credential chain. */
  readonly api?: KmsClient;
  /** Metrics hook, called once per KMS call. */
  readonly onKmsCall?: KmsCallObserver;
  /** Called with the snapshot right after each lookup (kms-plugin's Status memory). */
  readonly onSnapshot?: (snapshot: KeySnapshot) => void;
  /** Default: the system clock; tests pass a fake one. */
  readonly clock?: Clock;
  /** Jitter source in [0, 1). */
  readonly random?: () => number;
  /** Deadline of one lookup, above the client's own timeouts (default 10 s). */
  readonly lookupTimeoutMs?: number;
}

/** First retry after a transient failure waits up to this long (or the refresh interval, if shorter). */
export const BACKOFF_BASE_MS = 1000;
/**
 * Retries never wait longer than one refresh interval (nor half the max staleness): once KMS
 * is back, the guard knows within one interval, as it does when KMS never failed.
 */
export const BACKOFF_CAP_INTERVALS = 1;
export const DEFAULT_LOOKUP_TIMEOUT_MS = 10_000;

/**
 * The monitor's retry delays: equal jitter ([ceiling/2, ceiling], ceiling =
 * min(cap, base·2^(failures-1))), first ceiling BACKOFF_BASE_MS or the refresh interval if
 * shorter, capped at one refresh interval and half the max staleness: retries of many
 * replicas spread out, yet even unlucky draws keep a long outage at no more than twice the
 * normal polling rate against the shared per-account KMS QPS budget.
 */
export function monitorBackoff(settings: MonitorSettings): BackoffPolicy {
  const baseMs = Math.min(BACKOFF_BASE_MS, settings.refreshIntervalMs);
  const maxMs = Math.max(
    baseMs,
    Math.min(BACKOFF_CAP_INTERVALS * settings.refreshIntervalMs, settings.maxStalenessMs / 2),
  );
  return { baseMs, maxMs };
}

function stateKey(snapshot: KeySnapshot): string {
  return [
    snapshot.status,
    snapshot.reason ?? '',
    snapshot.key?.keyId ?? '',
    snapshot.key?.keyState ?? '',
    snapshot.key?.primaryKeyVersion ?? '',
  ].join('|');
}

export function createKeyMonitor(options: KeyMonitorOptions): KeyMonitor {
  const { kms, monitor: settings, logger } = options;
  const clock = options.clock ?? systemClock;
  const random = options.random ?? Math.random;
  const log = logger.child({ component: 'kms-monitor', kmsKeyId: kms.keyId });
  const lookup = createLookup(options, clock, log);
  const logLookup = createLookupLogger(log);
  const timer = createTimer(clock);

  let observations = initialObservations(kms.keyId);
  let inFlight: Promise<KeySnapshot> | undefined;
  let started = false;
  let stopped = false;
  let consecutiveFailures = 0;
  let markFirstLookupDone: () => void = () => undefined;
  const firstLookup = new Promise<void>((resolve) => {
    markFirstLookupDone = resolve;
  });

  // Every admission asks for a snapshot: classify once per observation change and clock
  // millisecond (snapshots are immutable, so requests in the same millisecond share one).
  let latest: { observations: KeyObservations; at: number; snapshot: KeySnapshot } | undefined;
  const snapshot = (): KeySnapshot => {
    const now = clock.now();
    if (latest?.observations !== observations || latest.at !== now) {
      latest = { observations, at: now, snapshot: classifyKey(observations, now, settings) };
    }
    return latest.snapshot;
  };

  function apply(outcome: KeyLookupOutcome): KeySnapshot {
    const previousKeyId = observations.facts?.keyId;
    observations = recordOutcome(observations, outcome);
    consecutiveFailures = outcome.kind === 'failed' ? consecutiveFailures + 1 : 0;
    const delayMs = nextDelayMs(outcome, consecutiveFailures, settings, random);
    try {
      const current = snapshot();
      options.onSnapshot?.(current);
      logLookup({
        outcome,
        current,
        previousKeyId,
        resolvedKeyId: observations.facts?.keyId,
        consecutiveFailures,
        retryInMs: started && !stopped ? delayMs : undefined,
      });
      return current;
    } finally {
      // Whatever logging does, the next lookup is scheduled: the monitor never stops by itself.
      markFirstLookupDone();
      if (started && !stopped) {
        timer.set(delayMs, () => {
          // apply() has already rescheduled; a failure here can only come from logging itself.
          refresh().catch(() => undefined);
        });
      }
    }
  }

  function refresh(): Promise<KeySnapshot> {
    if (stopped) return Promise.resolve(snapshot());
    // Cleared before apply() so that callers woken by this lookup start a fresh one.
    inFlight ??= lookup()
      .finally(() => {
        inFlight = undefined;
      })
      .then(apply);
    return inFlight;
  }

  return {
    snapshot,
    refresh,
    firstLookup,
    start() {
      if (started || stopped) return;
      started = true;
      refresh().catch(() => undefined);
    },
    async stop() {
      stopped = true;
      timer.clear();
      if (inFlight) await inFlight.catch(() => undefined);
      markFirstLookupDone();
    },
  };
}

/** After a transient failure, back off; otherwise wait one refresh interval. */
function nextDelayMs(
  outcome: KeyLookupOutcome,
  consecutiveFailures: number,
  settings: MonitorSettings,
  random: () => number,
): number {
  if (outcome.kind === 'failed' && outcome.failure.transient === true) {
    return backoffDelayMs(consecutiveFailures, monitorBackoff(settings), random);
  }
  return settings.refreshIntervalMs;
}

/** One pending timer at most: setting it again replaces the previous one. */
function createTimer(clock: Clock): { set(ms: number, callback: () => void): void; clear(): void } {
  let handle: unknown;
  const clear = (): void => {
    if (handle !== undefined) clock.clearTimeout(handle);
    handle = undefined;
  };
  return {
    set(ms, callback) {
      clear();
      handle = clock.setTimeout(() => {
        handle = undefined;
        callback();
      }, ms);
    },
    clear,
  };
}

/** One DescribeKey with a deadline, reported to the metrics hook, as an outcome (never throws). */
function createLookup(
  options: KeyMonitorOptions,
  clock: Clock,
  log: Logger,
): () => Promise<KeyLookupOutcome> {
  const lookupTimeoutMs = options.lookupTimeoutMs ?? DEFAULT_LOOKUP_TIMEOUT_MS;
  const api = options.api ?? createKmsClient(options.kms);
  const requestedKeyId = requestKeyId(options.kms.keyId);

  function observeCall(action: string, result: string, startedAt: number): void {
    if (!options.onKmsCall) return;
    try {
      options.onKmsCall({ action, result, durationSeconds: (clock.now() - startedAt) / 1000 });
    } catch (error) {
      log.warn({ err: toKmsError(error).message }, 'KMS call observer failed');
    }
  }

  /** The client has its own timeouts; this deadline only guards against a call that never settles. */
  function withDeadline<T>(work: Promise<T>): Promise<T> {
    let handle: unknown;
    const deadline = new Promise<never>((_, reject) => {
      handle = clock.setTimeout(() => {
        reject(
          new KmsError({
            code: LOCAL_ERROR_CODES.timeout,
            message: `KMS lookup did not finish within ${lookupTimeoutMs} ms`,
            transient: true,
          }),
        );
      }, lookupTimeoutMs);
    });
    return Promise.race([work, deadline]).finally(() => {
      clock.clearTimeout(handle);
    });
  }

  return async () => {
    const startedAt = clock.now();
    try {
      const metadata = await withDeadline(api.describeKey(requestedKeyId));
      observeCall('DescribeKey', 'ok', startedAt);
      return { kind: 'found', facts: factsFromMetadata(metadata), at: new Date(clock.now()) };
    } catch (thrown) {
      const error = toKmsError(thrown);
      observeCall('DescribeKey', error.code, startedAt);
      return outcomeFromError(error, new Date(clock.now()));
    }
  };
}

interface LookupLogEntry {
  readonly outcome: KeyLookupOutcome;
  readonly current: KeySnapshot;
  readonly previousKeyId: string | undefined;
  readonly resolvedKeyId: string | undefined;
  readonly consecutiveFailures: number;
  readonly retryInMs: number | undefined;
}

/** Logs failures and state changes of each lookup (a state is logged once, when it changes). */
function createLookupLogger(log: Logger): (entry: LookupLogEntry) => void {
  let lastStateKey: string | undefined;
  return ({ outcome, current, previousKeyId, resolvedKeyId, consecutiveFailures, retryInMs }) => {
    if (outcome.kind !== 'found') {
      const { failure } = outcome;
      log.warn(
        {
          code: failure.code,
          httpStatus: failure.httpStatus,
          requestId: failure.requestId,
          transient: failure.transient,
          consecutiveFailures,
          retryInMs,
        },
        `KMS DescribeKey failed: ${failure.message}`,
      );
    }
    if (previousKeyId !== undefined && resolvedKeyId !== previousKeyId) {
      log.info(
        { previousKeyId, resolvedKeyId },
        'the configured KMS key id now resolves to a different key',
      );
    }
    const key = stateKey(current);
    if (key !== lastStateKey) {
      lastStateKey = key;
      log.info(
        {
          status: current.status,
          reason: current.reason,
          resolvedKeyId,
          keyState: current.key?.keyState,
          primaryKeyVersion: current.key?.primaryKeyVersion,
        },
        'KMS key state changed',
      );
    }
  };
}

/**
 * True from the moment the first lookup finished, either way (a failed first lookup counts:
 * readiness must not depend on the key being usable, or an unready webhook trips the API
 * server's failurePolicy for every Secret write).
 */
export function firstLookupFinished(
  monitor: KeySnapshotSource & { readonly firstLookup?: Promise<void> },
): () => boolean {
  let finished = false;
  const markFinished = (): void => {
    finished = true;
  };
  void monitor.firstLookup?.then(markFinished, markFinished);
  return () => finished || monitor.snapshot().firstLookupDone;
}

/** Stops the monitor, waiting for its in-flight KMS call at most `capMs` (shutdown must not hang). */
export async function stopMonitorWithin(monitor: KeyMonitor, capMs: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    monitor.stop(),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, capMs);
    }),
  ]);
  clearTimeout(timer);
}
