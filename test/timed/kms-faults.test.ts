// KMS faults injected in the emulator, with the real SDK, monitor and HTTPS server:
// admissions keep coming from the snapshot, the state turns unknown only after max
// staleness, recovers right after the fault clears, and KMS calls stay bounded meanwhile.
import t, { type Test } from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from 'node:https';
import { startEmulator, type RunningEmulator } from '../../src/emulator/index.js';
import { monitorBackoff } from '../../src/kms/monitor.js';
import { backoffDelayMs } from '../../src/time/retry.js';
import type { MonitorSettings } from '../../src/config/settings.js';
import { fixture } from '../helpers/server.js';
import { kubeApiserverProblems, startStack, type Stack } from '../helpers/reliability.js';
import { httpGet, type HttpResult, httpsCall } from '../helpers/http.js';
import { sleep, eventually } from '../helpers/eventually.js';

const REFRESH_MS = 200;
const STALENESS_MS = 1_000;
/** The SDK's own read/connect timeout in these tests (the monitor's client option). */
const KMS_TIMEOUT_MS = 500;
/** The API server's webhook timeout stand-in: admissions must answer well within it. */
const WEBHOOK_TIMEOUT_MS = 1_000;
const SLACK_MS = 1_000;

/**
 * Most KMS calls a monitor can make in `windowMs` while every call fails transiently: the
 * shortest backoff delays (random = 0) summed from the first failure, plus the call in flight.
 */
function maxCallsDuringOutage(windowMs: number, settings: MonitorSettings): number {
  let calls = 1;
  let elapsed = 0;
  for (let failures = 1; failures < 10_000; failures += 1) {
    elapsed += backoffDelayMs(failures, monitorBackoff(settings), () => 0);
    if (elapsed > windowMs) break;
    calls += 1;
  }
  return calls + 1;
}

/** The longest a monitor waits before its next try after a transient failure. */
function maxBackoffMs(settings: MonitorSettings): number {
  return backoffDelayMs(1_000, monitorBackoff(settings), () => 1);
}

interface AdmissionLog {
  readonly results: { status: number; allowed: boolean | undefined; problems: string[] }[];
  readonly errors: string[];
}

/** Sends validate + mutate admissions back to back for `durationMs`, each with a 1 s timeout. */
async function admitFor(stack: Stack, durationMs: number): Promise<AdmissionLog> {
  const agent = new Agent({ keepAlive: true, maxSockets: 2 });
  const log: AdmissionLog = { results: [], errors: [] };
  const stopAt = Date.now() + durationMs;
  try {
    for (let index = 0; Date.now() < stopAt && index < 10_000; index += 1) {
      const webhook = index % 2 === 0 ? 'validate' : 'mutate';
      const review = fixture('secret-update');
      review.request.uid = `fault-${index}`;
      let answer: HttpResult;
      try {
        answer = await httpsCall(`${stack.server.admissionUrl}/${webhook}`, {
          ca: stack.certs.caCert,
          agent,
          body: JSON.stringify(review),
          timeoutMs: WEBHOOK_TIMEOUT_MS,
        });
      } catch (error) {
        log.errors.push(String((error as { code?: string }).code ?? error));
        continue;
      }
      const body = answer.status === 200 ? answer.answer() : undefined;
      log.results.push({
        status: answer.status,
        allowed: body?.response.allowed,
        problems:
          body === undefined ? [] : kubeApiserverProblems(body, review.request.uid, webhook),
      });
      await sleep(10);
    }
  } finally {
    agent.destroy();
  }
  return log;
}

function checkAdmissions(t: Test, log: AdmissionLog, what: string, minimum = 10): void {
  t.same(
    log.errors,
    [],
    `${what}: every admission answered within the ${WEBHOOK_TIMEOUT_MS} ms webhook timeout`,
  );
  t.ok(
    log.results.length >= minimum,
    `${what}: a steady stream of admissions was answered (${log.results.length})`,
  );
  t.ok(
    log.results.every((result) => result.status === 200 && result.allowed === true),
    `${what}: every admission got 200 allowed (snapshot usable, or unknown with on-unknown allow)`,
  );
  t.same(
    log.results.flatMap((result) => result.problems),
    [],
    `${what}: every answer passes the kube-apiserver response checks`,
  );
}

interface Sample {
  readonly at: number;
  readonly status: string;
  readonly ageMs: number | undefined;
}

/** Samples the monitor's snapshot every 20 ms while `work` runs. */
async function sampling<T>(
  stack: Stack,
  work: Promise<T>,
): Promise<{ value: T; samples: Sample[] }> {
  const samples: Sample[] = [];
  const control = { done: false };
  const sampler = (async () => {
    while (!control.done) {
      const snapshot = stack.monitor.snapshot();
      samples.push({
        at: Date.now(),
        status: snapshot.status,
        ageMs:
          snapshot.lastSuccessAt === undefined
            ? undefined
            : Date.now() - snapshot.lastSuccessAt.getTime(),
      });
      await sleep(20);
    }
  })();
  try {
    return { value: await work, samples };
  } finally {
    control.done = true;
    await sampler;
  }
}

/**
 * The staleness rule seen from outside: unknown never earlier than max staleness after the
 * last success (which is at most one refresh + one KMS timeout before the fault began).
 */
function checkStaleness(t: Test, samples: Sample[], faultAt: number, what: string): void {
  const unknown = samples.filter((sample) => sample.status === 'unknown');
  t.ok(
    unknown.every((sample) => sample.ageMs !== undefined && sample.ageMs >= STALENESS_MS),
    `${what}: the state is unknown only when the last success is older than max staleness`,
  );
  const firstUnknown = unknown[0]?.at;
  t.ok(firstUnknown !== undefined, `${what}: the state did turn unknown`);
  t.ok(
    firstUnknown === undefined ||
      firstUnknown >= faultAt + STALENESS_MS - REFRESH_MS - KMS_TIMEOUT_MS,
    `${what}: not before max staleness minus one refresh after the fault began`,
  );
  t.ok(
    samples
      .filter((sample) => sample.status === 'usable')
      .every((sample) => sample.ageMs !== undefined && sample.ageMs < STALENESS_MS + 100),
    `${what}: usable only while the facts are fresher than max staleness`,
  );
}

/** Clears the fault and waits (bounded) until the monitor has a fresh success again. */
async function recovery(stack: Stack, clear: () => void | Promise<void>): Promise<number> {
  const clearedAt = Date.now();
  await clear();
  const ok = await eventually(
    () => {
      const snapshot = stack.monitor.snapshot();
      return (
        snapshot.status === 'usable' &&
        snapshot.lastSuccessAt !== undefined &&
        snapshot.lastSuccessAt.getTime() >= clearedAt
      );
    },
    { timeoutMs: 10_000, intervalMs: 10 },
  );
  return ok ? Date.now() - clearedAt : Number.POSITIVE_INFINITY;
}

const settings: MonitorSettings = { refreshIntervalMs: REFRESH_MS, maxStalenessMs: STALENESS_MS };
/** After a transient fault clears, the next try comes within the longest backoff. */
const TRANSIENT_RECOVERY_BOUND_MS = maxBackoffMs(settings) + KMS_TIMEOUT_MS + SLACK_MS;

type Fault = (emulator: RunningEmulator) => void;

const TRANSIENT_FAULTS: [string, Fault][] = [
  [
    'latency 5 s (beyond the 500 ms KMS timeout)',
    (emulator) => {
      emulator.faults.setLatency(5_000);
    },
  ],
  [
    'every call a 5xx (InternalFailure)',
    (emulator) => {
      emulator.faults.failShare(1, 'InternalFailure');
    },
  ],
  [
    'throttling (Rejected.Throttling)',
    (emulator) => {
      emulator.faults.failShare(1, 'Rejected.Throttling');
    },
  ],
  [
    "the guard's own access key unknown (InvalidAccessKeyId.NotFound): never a denial",
    (emulator) => {
      emulator.faults.failShare(1, 'InvalidAccessKeyId.NotFound');
    },
  ],
  [
    "the guard's own signature rejected (SignatureDoesNotMatch): never a denial",
    (emulator) => {
      emulator.faults.failShare(1, 'SignatureDoesNotMatch');
    },
  ],
  [
    'connection resets (every socket dropped)',
    (emulator) => {
      emulator.faults.dropConnections(1);
    },
  ],
];

for (const [name, inject] of TRANSIENT_FAULTS) {
  t.test(`KMS fault: ${name}`, async (t) => {
    const stack = await startStack(t, {
      refreshIntervalMs: REFRESH_MS,
      maxStalenessMs: STALENESS_MS,
      readTimeoutMs: KMS_TIMEOUT_MS,
      connectTimeoutMs: KMS_TIMEOUT_MS,
    });
    t.equal(stack.monitor.snapshot().status, 'usable', 'the key is usable before the fault');

    const faultAt = Date.now();
    const callsBefore = stack.emulator.requestCount();
    inject(stack.emulator);
    const windowMs = STALENESS_MS + 1_000;
    const { value: log, samples } = await sampling(stack, admitFor(stack, windowMs));
    const calls = stack.emulator.requestCount() - callsBefore;
    checkAdmissions(t, log, name);
    checkStaleness(t, samples, faultAt, name);
    // A connection broken before any answer is retried once at once on a fresh one
    // (retryOnStaleConnection): each lookup then costs two calls.
    const attemptsPerLookup = name.startsWith('connection resets') ? 2 : 1;
    const bound = attemptsPerLookup * maxCallsDuringOutage(windowMs, settings);
    t.ok(
      calls <= bound,
      `KMS calls stay bounded during the outage: ${calls} in ${windowMs} ms ≤ ${bound} (backoff)`,
    );
    t.ok(calls >= 2, `the monitor kept retrying (${calls} calls)`);

    const health = await httpGet(`${stack.server.healthUrl}/healthz/kms`);
    t.equal(health.status, 503, '/healthz/kms is 503 while the state is unknown');
    t.match(health.json(), { state: 'Unknown', usable: false }, 'and says Unknown');
    const ready = await httpGet(`${stack.server.healthUrl}/readyz`);
    t.equal(ready.status, 200, '/readyz stays 200 (readiness never depends on KMS)');

    const recoveredMs = await recovery(stack, () => {
      stack.emulator.faults.reset();
    });
    t.ok(
      recoveredMs <= TRANSIENT_RECOVERY_BOUND_MS,
      `usable again ${recoveredMs} ms after the fault cleared (≤ longest backoff + KMS timeout + slack = ${TRANSIENT_RECOVERY_BOUND_MS} ms)`,
    );
    const after = await admitFor(stack, 300);
    checkAdmissions(t, after, `${name}, after recovery`, 1);
  });
}

t.test('KMS fault: a 5xx burst shorter than max staleness changes nothing', async (t) => {
  const longStaleness = 3_000;
  const stack = await startStack(t, {
    refreshIntervalMs: REFRESH_MS,
    maxStalenessMs: longStaleness,
    readTimeoutMs: KMS_TIMEOUT_MS,
  });
  stack.emulator.faults.failShare(1, 'ServiceUnavailableTemporary');
  const { value: log, samples } = await sampling(stack, admitFor(stack, 600));
  stack.emulator.faults.reset();
  checkAdmissions(t, log, '600 ms burst of 503s');
  t.ok(
    samples.every((sample) => sample.status === 'usable'),
    `the key stayed usable through the burst (${samples.length} samples)`,
  );
  const burstEnded = Date.now();
  const recovered = await eventually(
    () => (stack.monitor.snapshot().lastSuccessAt?.getTime() ?? 0) >= burstEnded,
    { timeoutMs: 5_000 },
  );
  t.ok(recovered, 'a success follows the burst');
});

t.test('KMS fault: denied credentials (Forbidden.NoPermission)', async (t) => {
  const stack = await startStack(t, {
    refreshIntervalMs: REFRESH_MS,
    maxStalenessMs: STALENESS_MS,
    readTimeoutMs: KMS_TIMEOUT_MS,
  });
  const deniedAt = Date.now();
  stack.emulator.faults.denyAccessKey(stack.emulator.accessKeyId);
  const unusable = await eventually(() => stack.monitor.snapshot().reason === 'NoPermission', {
    timeoutMs: 5_000,
    intervalMs: 10,
  });
  t.ok(unusable, 'the lost permission is seen as NoPermission (a definitive state, not unknown)');
  t.ok(
    Date.now() - deniedAt <= REFRESH_MS + KMS_TIMEOUT_MS + SLACK_MS,
    'within one refresh interval (+ call + slack)',
  );
  const review = fixture('secret-update');
  const answer = await httpsCall(`${stack.server.admissionUrl}/validate`, {
    ca: stack.certs.caCert,
    body: JSON.stringify(review),
    timeoutMs: WEBHOOK_TIMEOUT_MS,
  });
  t.equal(answer.status, 200, 'the admission is answered');
  t.equal(answer.answer().response.allowed, false, 'a Secret write is denied');
  t.match(
    answer.answer().response.status,
    { code: 403, message: /permission.*denied.*Grant/ },
    'with 403 and a message naming the cause and remedy',
  );
  const health = await httpGet(`${stack.server.healthUrl}/healthz/kms`);
  t.match(
    health.json(),
    { state: 'NoPermission', usable: false },
    '/healthz/kms says NoPermission',
  );
  t.equal((await httpGet(`${stack.server.healthUrl}/readyz`)).status, 200, '/readyz stays 200');

  const calls = stack.emulator.requestCount();
  await sleep(1_000);
  const perSecond = stack.emulator.requestCount() - calls;
  t.ok(
    perSecond <= Math.ceil(1_000 / REFRESH_MS) + 1,
    `a definitive failure is re-checked once per refresh interval, no faster (${perSecond}/s)`,
  );

  const recoveredMs = await recovery(stack, () => {
    stack.emulator.faults.denyAccessKey(stack.emulator.accessKeyId, false);
  });
  t.ok(
    recoveredMs <= REFRESH_MS + KMS_TIMEOUT_MS + SLACK_MS,
    `usable again ${recoveredMs} ms after the permission came back (≤ one refresh + call + slack)`,
  );
});

t.test('KMS fault: the emulator stops and restarts on the same port', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ksg-restart-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const statePath = join(dir, 'kms-state.json');
  const stack = await startStack(t, {
    refreshIntervalMs: REFRESH_MS,
    maxStalenessMs: STALENESS_MS,
    readTimeoutMs: KMS_TIMEOUT_MS,
    connectTimeoutMs: KMS_TIMEOUT_MS,
    emulator: { statePath },
  });
  const port = Number(stack.emulator.endpoint.split(':').at(-1));
  const accessKey = { id: stack.emulator.accessKeyId, secret: stack.emulator.accessKeySecret };
  const stoppedAt = Date.now();
  await stack.emulator.close();

  const { value: log, samples } = await sampling(stack, admitFor(stack, STALENESS_MS + 800));
  checkAdmissions(t, log, 'KMS down');
  checkStaleness(t, samples, stoppedAt, 'KMS down');

  let restarted: RunningEmulator | undefined;
  const recoveredMs = await recovery(stack, async () => {
    restarted = await startEmulator({
      host: '127.0.0.1',
      port,
      statePath,
      keys: [stack.keyId],
      accessKeys: [accessKey],
    });
  });
  t.teardown(() => restarted?.close());
  t.ok(restarted !== undefined, 'the emulator restarted on the same port with its saved state');
  t.ok(
    recoveredMs <= TRANSIENT_RECOVERY_BOUND_MS,
    `usable again ${recoveredMs} ms after the restart (≤ ${TRANSIENT_RECOVERY_BOUND_MS} ms)`,
  );
  t.equal(stack.monitor.snapshot().key?.keyId, stack.keyId, 'the same key (state file kept it)');
});
