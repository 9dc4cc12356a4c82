import t from 'tap';
import { createKeyMonitor, monitorBackoff, type KeyMonitorOptions } from '../../src/kms/monitor.js';
import { backoffDelayMs } from '../../src/time/retry.js';
import { FakeClock, settle } from '../helpers/clock.js';
import {
  apiError,
  FakeKmsClient,
  KEY_ID,
  kmsSettings,
  metadata,
  monitorSettings,
} from '../helpers/kms.js';
import { recordingLogger } from '../helpers/logs.js';

const SECOND = 1000;

function setup(overrides: Partial<KeyMonitorOptions> = {}) {
  const clock = new FakeClock();
  const api = new FakeKmsClient();
  const { logger, lines } = recordingLogger();
  const calls: { action: string; result: string; durationSeconds: number }[] = [];
  const monitor = createKeyMonitor({
    kms: kmsSettings(),
    monitor: monitorSettings(),
    logger,
    api,
    clock,
    random: () => 0.5,
    onKmsCall: (call) => calls.push(call),
    ...overrides,
  });
  return { clock, api, monitor, lines, calls };
}

t.test('start: first lookup at once, then once per refresh interval', async (t) => {
  const { clock, api, monitor, calls } = setup();
  t.teardown(() => monitor.stop());
  t.equal(monitor.snapshot().reason, 'NeverFetched', 'unknown before the first lookup');
  monitor.start();
  monitor.start();
  await monitor.firstLookup;
  t.equal(api.describeCalls, 1, 'one DescribeKey at start, even when start() is called twice');
  const first = monitor.snapshot();
  t.equal(first.status, 'usable', 'Enabled key is usable');
  t.equal(first.firstLookupDone, true, 'first lookup done');
  t.equal(clock.nextDelay(), 30 * SECOND, 'next lookup in one refresh interval');

  api.answer = metadata({ keyState: 'Disabled' });
  await clock.advance(30 * SECOND);
  t.equal(api.describeCalls, 2, 'second lookup after one interval');
  t.equal(monitor.snapshot().reason, 'Disabled', 'the change is seen within one interval');
  await clock.advance(10 * 30 * SECOND);
  t.equal(api.describeCalls, 12, 'exactly one call per interval');
  t.same(
    calls.slice(0, 2).map((call) => [call.action, call.result]),
    [
      ['DescribeKey', 'ok'],
      ['DescribeKey', 'ok'],
    ],
    'each KMS call is reported to the metrics hook',
  );
});

t.test('concurrent refresh() callers share one call', async (t) => {
  const { api, monitor } = setup();
  t.teardown(() => monitor.stop());
  api.hold = true;
  const waiting = Array.from({ length: 5 }, () => monitor.refresh());
  await settle();
  t.equal(api.describeCalls, 1, 'five callers, one DescribeKey in flight');
  api.release();
  const snapshots = await Promise.all(waiting);
  t.ok(
    snapshots.every((snapshot) => snapshot.status === 'usable'),
    'every caller gets the result',
  );
  api.hold = false;
  await monitor.refresh();
  t.equal(api.describeCalls, 2, 'a later refresh makes a new call');
});

t.test('snapshot() does no I/O and ages with the clock', async (t) => {
  const { clock, api, monitor } = setup();
  await monitor.refresh();
  for (let read = 0; read < 100; read += 1) monitor.snapshot();
  t.equal(api.describeCalls, 1, 'a hundred snapshots, no KMS call');
  await clock.advance(300 * SECOND);
  t.equal(monitor.snapshot().status, 'usable', 'fresh up to max staleness');
  t.equal(monitor.snapshot().ageSeconds, 300, 'age follows the clock');
  await clock.advance(1);
  t.equal(monitor.snapshot().reason, 'Stale', 'stale past max staleness without any lookup');
  t.equal(api.describeCalls, 1, 'still no call: the monitor was never started');
});

t.test(
  'snapshot() is shared within a clock millisecond, renewed on a lookup or a tick',
  async (t) => {
    const { clock, api, monitor } = setup();
    await monitor.refresh();
    const first = monitor.snapshot();
    t.equal(monitor.snapshot(), first, 'the same millisecond and facts give the same snapshot');
    await clock.advance(1);
    const later = monitor.snapshot();
    t.not(later, first, 'a new millisecond gives a new snapshot');
    t.equal(later.checkedAt.getTime(), first.checkedAt.getTime() + 1, 'taken at the new time');
    api.answer = metadata({ keyState: 'Disabled' });
    await monitor.refresh();
    t.equal(
      monitor.snapshot().reason,
      'Disabled',
      'a lookup in the same millisecond is seen at once',
    );
  },
);

t.test('throttling: exponential backoff with jitter, bounded calls', async (t) => {
  const { clock, api, monitor, calls } = setup({ random: () => 1 });
  t.teardown(() => monitor.stop());
  monitor.start();
  await monitor.firstLookup;
  api.answer = apiError('Rejected.Throttling', 429);
  await clock.advance(30 * SECOND);
  const delays: number[] = [];
  for (let retry = 0; retry < 9; retry += 1) {
    const delay = await clock.runNext();
    if (delay !== undefined) delays.push(delay);
  }
  t.same(
    delays,
    [1, 2, 4, 8, 16, 30, 30, 30, 30].map((s) => s * SECOND),
    'delays double from 1s up to the cap (one refresh interval)',
  );
  t.equal(calls.at(-1)?.result, 'Rejected.Throttling', 'the metrics hook sees the error code');

  api.answer = metadata();
  await clock.runNext();
  t.equal(monitor.snapshot().status, 'usable', 'recovers on the next success');
  t.equal(clock.nextDelay(), 30 * SECOND, 'back to the normal interval after a success');
});

t.test('throttling with unlucky jitter never hammers KMS', async (t) => {
  const { clock, api, monitor } = setup({ random: () => 0 });
  t.teardown(() => monitor.stop());
  api.answer = apiError('Rejected.Throttling', 429);
  monitor.start();
  await clock.advance(10 * 60 * SECOND);
  // Normal polling is 20 calls in 10 minutes; an outage may at most double that.
  t.ok(api.describeCalls <= 45, `at most 45 calls in 10 minutes (made ${api.describeCalls})`);
  t.ok(api.describeCalls >= 8, 'but it keeps trying');
  t.equal(
    monitor.snapshot().reason,
    'NeverFetched',
    'never fetched while throttled from the start',
  );
});

t.test('a 5xx burst keeps the last answer and recovers', async (t) => {
  const { clock, api, monitor, lines } = setup();
  t.teardown(() => monitor.stop());
  monitor.start();
  await monitor.firstLookup;
  api.queuedErrors.push(
    apiError('InternalFailure', 500),
    apiError('ServiceUnavailableTemporary', 503),
    apiError('InternalFailure', 500),
  );
  await clock.advance(30 * SECOND);
  t.equal(monitor.snapshot().status, 'usable', 'still usable during the burst');
  t.equal(monitor.snapshot().lastFailure?.code, 'InternalFailure', 'the failure is visible');
  await clock.advance(10 * SECOND);
  t.equal(api.describeCalls, 5, 'three failures then a success, retried within seconds');
  t.equal(monitor.snapshot().lastFailure, undefined, 'recovered');
  const warnings = lines().filter((line) => line.level === 'warn');
  t.equal(warnings.length, 3, 'each failure is logged as a warning');
  t.equal(warnings[0]?.code, 'InternalFailure', 'with its code');
});

t.test('a call that never answers: unknown after max staleness, never a hang', async (t) => {
  const { clock, api, monitor } = setup({
    monitor: monitorSettings({ refreshIntervalMs: 30 * SECOND, maxStalenessMs: 120 * SECOND }),
    lookupTimeoutMs: 5 * SECOND,
  });
  monitor.start();
  await monitor.firstLookup;
  api.hold = true;
  await clock.advance(30 * SECOND);
  t.equal(api.heldCalls, 1, 'the lookup hangs');
  await clock.advance(5 * SECOND);
  t.equal(monitor.snapshot().lastFailure?.code, 'Timeout', 'the deadline turns it into a timeout');
  t.equal(monitor.snapshot().status, 'usable', 'still within max staleness');
  await clock.advance(90 * SECOND);
  t.equal(monitor.snapshot().status, 'unknown', 'unknown after max staleness');
  t.equal(monitor.snapshot().reason, 'Stale', 'reason Stale');
  await monitor.stop();
  t.equal(clock.pending, 0, 'stop() cancelled every timer');
  t.pass('stop() returned although KMS never answered');
});

t.test('state changes are logged without secrets', async (t) => {
  const { clock, api, monitor, lines } = setup();
  t.teardown(() => monitor.stop());
  monitor.start();
  await monitor.firstLookup;
  api.answer = metadata({ keyState: 'Disabled' });
  await clock.advance(30 * SECOND);
  await clock.advance(30 * SECOND);
  api.answer = metadata({ keyState: 'Enabled', primaryKeyVersion: 'v-2' });
  await clock.advance(30 * SECOND);
  const changes = lines().filter((line) => line.msg === 'KMS key state changed');
  t.same(
    changes.map((line) => [line.level, line.status, line.keyState, line.primaryKeyVersion]),
    [
      ['info', 'usable', 'Enabled', 'v-1'],
      ['info', 'unusable', 'Disabled', 'v-1'],
      ['info', 'usable', 'Enabled', 'v-2'],
    ],
    'one info line per change (not per lookup), including a rotation',
  );
  t.notMatch(
    JSON.stringify(lines()),
    /accessKeySecret|Signature=|AccessKeyId=/,
    'no credentials in the log',
  );
});

t.test('alias and ARN resolve to the KeyId', async (t) => {
  for (const configured of ['alias/k8s-secrets', `acs:kms:cn-hangzhou:123:key/${KEY_ID}`]) {
    const { api, monitor } = setup({ kms: kmsSettings({ keyId: configured }) });
    const snapshot = await monitor.refresh();
    t.equal(snapshot.configuredKeyId, configured, `${configured}: configured id kept`);
    t.equal(snapshot.key?.keyId, KEY_ID, `${configured}: resolved KeyId tracked`);
    t.equal(
      api.requestedKeyIds[0],
      configured.startsWith('alias/') ? configured : KEY_ID,
      `${configured}: DescribeKey gets the alias or the id from the ARN`,
    );
  }
  const { api, monitor, lines } = setup({ kms: kmsSettings({ keyId: 'alias/k8s' }) });
  await monitor.refresh();
  api.answer = metadata({ keyId: 'key-other' });
  await monitor.refresh();
  t.ok(
    lines().some((line) => line.resolvedKeyId === 'key-other' && line.previousKeyId === KEY_ID),
    'an alias pointing to another key is logged',
  );
});

t.test('verdicts and first lookup failures', async (t) => {
  const { api, monitor, calls } = setup();
  api.answer = apiError('NetworkError');
  monitor.start();
  await monitor.firstLookup;
  t.equal(monitor.snapshot().reason, 'NeverFetched', 'first lookup failed: never fetched');
  t.equal(monitor.snapshot().firstLookupDone, true, 'firstLookup resolved anyway');
  api.answer = apiError('Forbidden.KeyNotFound', 404);
  const notFound = await monitor.refresh();
  t.equal(notFound.reason, 'NotFound', 'NotFound is a verdict');
  t.equal(calls.at(-1)?.result, 'Forbidden.KeyNotFound', 'metrics see the code');
  await monitor.stop();
  const after = api.describeCalls;
  await monitor.refresh();
  t.equal(api.describeCalls, after, 'refresh after stop makes no call');
});

t.test('backoff numbers', async (t) => {
  const settings = monitorSettings({ refreshIntervalMs: 200, maxStalenessMs: 2000 });
  t.equal(
    backoffDelayMs(1, monitorBackoff(settings), () => 1),
    200,
    'base is the interval when it is short',
  );
  t.equal(
    backoffDelayMs(5, monitorBackoff(settings), () => 1),
    200,
    'cap one interval',
  );
  t.equal(
    backoffDelayMs(5, monitorBackoff(settings), () => 0),
    100,
    'floor half the ceiling',
  );
  const tight = monitorSettings({ refreshIntervalMs: 30_000, maxStalenessMs: 30_000 });
  t.equal(
    backoffDelayMs(20, monitorBackoff(tight), () => 1),
    15_000,
    'never beyond half the max staleness',
  );
});

t.test('a logger that throws does not stop the refresh loop', async (t) => {
  const { logger } = recordingLogger();
  const broken = logger.child({});
  broken.info = () => {
    throw new Error('log sink broken');
  };
  const { clock, api, monitor } = setup({ logger: { ...logger, child: () => broken } as never });
  t.teardown(() => monitor.stop());
  monitor.start();
  await monitor.firstLookup.catch(() => undefined);
  t.equal(api.describeCalls, 1, 'first lookup made');
  t.equal(clock.nextDelay(), 30 * SECOND, 'the next lookup is still scheduled');
  await clock.advance(30 * SECOND).catch(() => undefined);
  t.equal(api.describeCalls, 2, 'and it runs');
});
