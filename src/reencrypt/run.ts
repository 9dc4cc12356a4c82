import type { Writable } from 'node:stream';
import cliProgress from 'cli-progress';
import { ConfigError } from '../config/errors.js';
import type { KmsSettings } from '../config/settings.js';
import { createKmsClient, staticCredentialFromEnv } from '../kms/client.js';
import { requestKeyId } from '../kms/key-id.js';
import { isCredentialProblem, keyVerdictOf, toKmsError } from '../kms/errors.js';
import { explainReason } from '../kms/vocabulary.js';
import { foregroundClock, sleep, type Clock } from '../time/clock.js';
import { formatDuration } from '../config/duration.js';
import { backoffDelayMs, retry } from '../time/retry.js';
import { createSecretMetadataClient, type ListScope } from './kube-client.js';
import { resolveKubeconfig } from './kubeconfig.js';
import {
  formatRotationTime,
  settleWaitMs,
  settledAt,
  type StalenessRule,
  type TargetKey,
} from './plan.js';
import { createTokenBucket } from './rate-limit.js';
import { DEFAULT_BACKOFF } from './retry.js';
import { progressLine, summaryJson, summaryText, sweepExitCode } from './summary.js';
import { runSweep, type SweepObserver, type SweepProgress, type SweepSummary } from './sweep.js';
import { KeyNotUsableError, targetFromKeyMetadata } from './target.js';

/**
 * The `reencrypt` run: KMS lookup, kubeconfig, sweep, progress and summary. The CLI loads
 * this module only when the command runs (it pulls in @kubernetes/client-node, ~75 MB of
 * RSS that `serve` should not pay).
 */

/** What the run may touch of the process (the CLI passes its context). */
export interface ReencryptIo {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdout: Writable;
  readonly stderr: Writable;
  readonly stopSignal: AbortSignal;
  /** Clock for the key check, rate limit, retries and request deadlines; default the system clock. */
  readonly clock?: Clock;
}

export interface ReencryptRequest {
  readonly kms: KmsSettings;
  readonly kubeconfigPath: string | undefined;
  readonly context: string | undefined;
  readonly scope: ListScope;
  readonly dryRun: boolean;
  /** After the rotation, how long the API server may still write under the old version. */
  readonly settleMs: number;
  readonly concurrency: number;
  readonly qps: number;
  readonly pageSize: number;
  /** Wall-clock deadline of each Kubernetes request. */
  readonly requestTimeoutMs: number;
  readonly progressIntervalMs: number;
  readonly json: boolean;
  readonly userAgent: string;
}

const KMS_ATTEMPTS = 4;

/** Returns the exit code; throws ConfigError for configuration mistakes (exit 2). */
export async function runReencrypt(ctx: ReencryptIo, request: ReencryptRequest): Promise<number> {
  const { kms, scope, concurrency, qps } = request;
  const cluster = resolveKubeconfig({
    kubeconfigPath: request.kubeconfigPath,
    context: request.context,
    env: ctx.env,
  });
  const say = (line: string): void => {
    ctx.stderr.write(`reencrypt: ${line}\n`);
  };
  const clock = ctx.clock ?? foregroundClock;

  let target: TargetKey;
  try {
    target = await readTarget(ctx, kms, clock);
  } catch (error) {
    if (error instanceof KeyNotUsableError) {
      say(error.message);
      return 1;
    }
    const failure = toKmsError(error);
    if (isCredentialProblem(failure)) {
      throw new ConfigError(
        `cannot read KMS key ${kms.keyId}: ${failure.code}: ${failure.message}`,
      );
    }
    const verdict = keyVerdictOf(failure);
    const hint =
      verdict === undefined
        ? 'KMS could not be reached; nothing was changed. Run again when it answers.'
        : `${explainReason(verdict, kms.keyId)} Nothing was changed.`;
    say(`cannot read KMS key ${kms.keyId}: ${failure.code}: ${failure.message}; ${hint}`);
    return 1;
  }

  say(
    `${request.dryRun ? 'dry run: ' : ''}key ${target.keyId} primary version ${target.primaryKeyVersion}; cluster ${cluster.server} (${cluster.source}); ${scopeText(scope)}`,
  );

  const rule: StalenessRule = { target, settleMs: request.settleMs };
  if (!request.dryRun && !(await waitForSettle(ctx, rule, request.progressIntervalMs, say))) {
    say('interrupted while waiting for the rotation to settle; nothing was changed.');
    return 1;
  }

  const client = createSecretMetadataClient({
    kubeConfig: cluster.kubeConfig,
    userAgent: request.userAgent,
    maxSockets: concurrency + 1,
    deadlineMs: request.requestTimeoutMs,
    clock,
  });
  const progress = createProgressReporter(ctx, request.progressIntervalMs);
  try {
    const summary = await runSweep({
      client,
      target,
      settleMs: request.settleMs,
      scope,
      dryRun: request.dryRun,
      pageSize: request.pageSize,
      concurrency,
      limiter: createTokenBucket({
        ratePerSecond: qps,
        burst: Math.max(1, Math.min(Math.ceil(qps), concurrency * 2)),
        now: () => clock.now(),
      }),
      backoff: DEFAULT_BACKOFF,
      clock,
      random: Math.random,
      signal: ctx.stopSignal,
      observer: observerOf(progress),
    });
    progress.stop();
    writeSummary(ctx, summary, request.json, say);
    return sweepExitCode(summary);
  } finally {
    progress.stop();
    client.close();
  }
}

/**
 * Before the first patch: wait until the rotation has settled (at most the settle time), as
 * a rewrite earlier could land under the API server's previous seed and stay there. One line
 * when the wait starts and one every progress interval. False when stopped while waiting.
 */
async function waitForSettle(
  ctx: ReencryptIo,
  rule: StalenessRule,
  intervalMs: number,
  say: (line: string) => void,
): Promise<boolean> {
  const clock = ctx.clock ?? foregroundClock;
  const until = clock.now() + settleWaitMs(rule, clock.now());
  const settled = formatRotationTime(new Date(settledAt(rule)));
  const seconds = (ms: number): string => formatDuration(Math.ceil(ms / 1000) * 1000);
  // A function: the signal changes while the wait sleeps.
  const stopped = (): boolean => ctx.stopSignal.aborted;
  let left = until - clock.now();
  if (left > 0) {
    say(
      `waiting ${seconds(left)} until the rotation has settled (${settled}: rotation time + --rotation-settle ${formatDuration(rule.settleMs)}); a rewrite before then could stay under the previous key version. SIGTERM stops the wait.`,
    );
  }
  while (left > 0 && !stopped()) {
    await sleep(clock, Math.min(left, intervalMs), ctx.stopSignal);
    left = until - clock.now();
    if (left > 0 && !stopped()) say(`waiting for the rotation to settle: ${seconds(left)} left`);
  }
  return !stopped();
}

/** Progress to the reporter; each failed Secret named on a line of its own. */
function observerOf(progress: ProgressReporter): SweepObserver {
  return {
    onProgress: (snapshot) => {
      progress.update(snapshot);
    },
    onFailure: (ref, message) => {
      progress.log(`reencrypt: failed ${ref.namespace}/${ref.name}: ${message}\n`);
    },
  };
}

function scopeText(scope: ListScope): string {
  return `${scope.namespace !== undefined ? `namespace ${scope.namespace}` : 'all namespaces'}${scope.labelSelector !== undefined ? `, selector ${scope.labelSelector}` : ''}${scope.fieldSelector !== undefined ? `, field selector ${scope.fieldSelector}` : ''}`;
}

function writeSummary(
  ctx: ReencryptIo,
  summary: SweepSummary,
  json: boolean,
  say: (line: string) => void,
): void {
  if (json) {
    ctx.stdout.write(`${summaryJson(summary)}\n`);
    // The JSON has the facts; the person watching the logs still gets the one line to act on.
    if (summary.fatalError !== undefined) say(`stopped: ${summary.fatalError}`);
    if (summary.interrupted) say('interrupted; run again to continue.');
  } else {
    ctx.stdout.write(summaryText(summary));
  }
}

/** DescribeKey with a few retries on transient KMS trouble (throttling, network). */
async function readTarget(ctx: ReencryptIo, kms: KmsSettings, clock: Clock): Promise<TargetKey> {
  const credential = staticCredentialFromEnv(ctx.env);
  const api = createKmsClient(kms, credential !== undefined ? { credential } : {});
  let lastError: Error | undefined;
  try {
    return await retry(
      async () => {
        // Stopped while waiting to retry: give up with the last error, no new call.
        if (lastError !== undefined && ctx.stopSignal.aborted) throw lastError;
        const metadata = await api.describeKey(requestKeyId(kms.keyId));
        return targetFromKeyMetadata(metadata, clock.now(), kms.keyId);
      },
      {
        maxAttempts: KMS_ATTEMPTS,
        clock,
        signal: ctx.stopSignal,
        nextDelayMs: (error, attempt) => {
          lastError = error instanceof KeyNotUsableError ? error : toKmsError(error);
          return error instanceof KeyNotUsableError || !toKmsError(error).transient
            ? undefined
            : backoffDelayMs(attempt, DEFAULT_BACKOFF, Math.random);
        },
      },
    );
  } catch (error) {
    throw error instanceof KeyNotUsableError ? error : toKmsError(error);
  }
}

interface ProgressReporter {
  update(progress: SweepProgress): void;
  /** Writes a line (to stderr; a bar on stdout redraws on its next update). */
  log(line: string): void;
  stop(): void;
}

/**
 * A progress bar when stdout is a terminal; otherwise a JSON line on stderr every interval
 * (stdout stays for the summary, so `--json` output can be piped).
 */
function createProgressReporter(ctx: ReencryptIo, intervalMs: number): ProgressReporter {
  const isTty = (ctx.stdout as { isTTY?: boolean }).isTTY === true;
  if (isTty) {
    const bar = new cliProgress.SingleBar(
      {
        stream: ctx.stdout,
        format:
          'reencrypt [{bar}] {value}/{total} scanned | stale {stale} | rewritten {rewritten} | skipped {skipped} | failed {failed} | {duration_formatted}',
        hideCursor: true,
        etaBuffer: 50,
      },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    let stopped = false;
    return {
      update(progress) {
        if (stopped) return;
        const payload = {
          stale: progress.stale,
          rewritten: progress.rewritten,
          skipped: progress.skipped,
          failed: progress.failed,
        };
        const total = Math.max(progress.estimatedTotal ?? progress.scanned, progress.scanned);
        if (!started) {
          bar.start(total, progress.scanned, payload);
          started = true;
        } else {
          bar.setTotal(total);
          bar.update(progress.scanned, payload);
        }
      },
      log(line) {
        // The bar redraws itself on the next update.
        ctx.stderr.write(line);
      },
      stop() {
        if (started && !stopped) bar.stop();
        stopped = true;
      },
    };
  }
  let latest: SweepProgress | undefined;
  let printed: SweepProgress | undefined;
  const timer = setInterval(() => {
    if (latest !== undefined && latest !== printed) {
      ctx.stderr.write(`${progressLine(latest)}\n`);
      printed = latest;
    }
  }, intervalMs);
  timer.unref();
  return {
    update(progress) {
      latest = progress;
    },
    log(line) {
      ctx.stderr.write(line);
    },
    stop() {
      clearInterval(timer);
    },
  };
}
