import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { startEmulator } from '../../src/emulator/index.js';
import { createKmsClient } from '../../src/kms/client.js';
import { createKeyMonitor, type KeyMonitor } from '../../src/kms/monitor.js';
import type { KeySnapshot } from '../../src/kms/types.js';
import { FakeClock } from '../helpers/clock.js';
import { Kms, withEmulator } from '../helpers/emulator.js';
import { emulatorKmsSettings, monitorSettings, trackCalls } from '../helpers/kms.js';
import { eventually } from '../helpers/eventually.js';
import { recordingLogger } from '../helpers/logs.js';

type Emulator = Awaited<ReturnType<typeof startEmulator>>;
interface TestLike {
  teardown(fn: () => unknown): void;
}

function monitorFor(
  t: TestLike,
  emulator: Emulator,
  keyId: string,
  options: {
    clock?: FakeClock;
    refreshIntervalMs?: number;
    maxStalenessMs?: number;
    random?: () => number;
    timeoutMs?: number;
    accessKeyId?: string;
  } = {},
): TrackedMonitor {
  const kms = emulatorKmsSettings(emulator, keyId);
  const api = trackCalls(
    createKmsClient(kms, {
      credential: {
        accessKeyId: options.accessKeyId ?? emulator.accessKeyId,
        accessKeySecret: emulator.accessKeySecret,
      },
      connectTimeoutMs: options.timeoutMs ?? 1000,
      readTimeoutMs: options.timeoutMs ?? 1000,
    }),
  );
  const monitor = createKeyMonitor({
    kms,
    monitor: monitorSettings({
      refreshIntervalMs: options.refreshIntervalMs ?? 200,
      maxStalenessMs: options.maxStalenessMs ?? 2000,
    }),
    logger: recordingLogger().logger,
    api,
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.random ? { random: options.random } : {}),
  });
  t.teardown(() => monitor.stop());
  return Object.assign(monitor, { idle: () => api.idle() });
}

type TrackedMonitor = KeyMonitor & { idle(): Promise<void> };

/** Moves the fake clock by one interval and waits for the lookup its timer started. */
async function nextInterval(
  clock: FakeClock,
  monitor: TrackedMonitor,
  ms?: number,
): Promise<KeySnapshot> {
  if (ms === undefined) await clock.runNext();
  else await clock.advance(ms);
  await monitor.idle();
  return monitor.snapshot();
}

t.test('key lifecycle changes are seen within one refresh interval', async (t) => {
  const { emulator, sdk, keyId, admin } = await withEmulator(t);
  const clock = new FakeClock(Date.now());
  const monitor = monitorFor(t, emulator, keyId, {
    clock,
    refreshIntervalMs: 30_000,
    maxStalenessMs: 300_000,
  });
  monitor.start();
  await monitor.firstLookup;
  const first = monitor.snapshot();
  t.equal(first.status, 'usable', 'Enabled: usable');
  const firstVersion = first.key?.primaryKeyVersion;
  t.ok(firstVersion, 'primary version known');
  t.ok(first.key?.rotationTime, 'rotation time known (creation date, never rotated)');

  const steps: {
    name: string;
    change: () => Promise<unknown>;
    expect: (s: KeySnapshot) => boolean;
  }[] = [
    {
      name: 'DisableKey',
      change: () => admin.disableKey(),
      expect: (s) => s.status === 'unusable' && s.reason === 'Disabled',
    },
    {
      name: 'EnableKey',
      change: () => admin.enableKey(),
      expect: (s) => s.status === 'usable',
    },
    {
      name: 'ScheduleKeyDeletion',
      // The raw call: the key admin reads DeleteDate back, one DescribeKey too many here.
      change: () =>
        sdk.scheduleKeyDeletion(
          new Kms.ScheduleKeyDeletionRequest({ keyId, pendingWindowInDays: 7 }),
        ),
      expect: (s) => s.reason === 'PendingDeletion' && s.key?.deleteDate !== undefined,
    },
    {
      name: 'CancelKeyDeletion',
      change: () => admin.cancelKeyDeletion(),
      expect: (s) => s.status === 'usable' && s.key?.deleteDate === undefined,
    },
    {
      name: 'CreateKeyVersion (rotate)',
      change: () => admin.createKeyVersion(),
      expect: (s) =>
        s.status === 'usable' &&
        s.key?.primaryKeyVersion !== firstVersion &&
        s.key?.lastRotationDate !== undefined &&
        s.key.rotationTime?.getTime() === s.key.lastRotationDate.getTime(),
    },
  ];
  for (const step of steps) {
    await step.change();
    t.ok(monitor.snapshot().lastSuccessAt, `${step.name}: not seen before the next lookup`);
    const seen = await nextInterval(clock, monitor, 30_000);
    t.ok(step.expect(seen), `${step.name}: seen after one refresh interval`);
  }
  t.equal(emulator.requestCount('DescribeKey'), 1 + steps.length, 'one DescribeKey per interval');
});

t.test('with a real 200ms interval the monitor follows the key by itself', async (t) => {
  const { emulator, keyId, admin } = await withEmulator(t);
  const monitor = monitorFor(t, emulator, keyId, { refreshIntervalMs: 200 });
  monitor.start();
  await monitor.firstLookup;
  t.equal(monitor.snapshot().status, 'usable', 'usable at start');
  await admin.disableKey();
  t.ok(
    await eventually(() => monitor.snapshot().reason === 'Disabled', { timeoutMs: 5000 }),
    'Disabled seen without any explicit refresh',
  );
  await admin.enableKey();
  t.ok(
    await eventually(() => monitor.snapshot().status === 'usable', { timeoutMs: 5000 }),
    'Enabled again seen',
  );
});

t.test('throttling and 5xx bursts: backoff, bounded calls, recovery', async (t) => {
  const { emulator, keyId } = await withEmulator(t);
  const clock = new FakeClock(Date.now());
  const monitor = monitorFor(t, emulator, keyId, {
    clock,
    refreshIntervalMs: 30_000,
    maxStalenessMs: 300_000,
    random: () => 0,
  });
  monitor.start();
  await monitor.firstLookup;
  emulator.faults.failShare(1, 'Rejected.Throttling');
  const start = clock.now();
  let lookups = 0;
  while (clock.now() - start < 10 * 60_000 && lookups < 100) {
    await nextInterval(clock, monitor);
    lookups += 1;
  }
  const calls = emulator.requestCount('DescribeKey');
  // Normal polling is 20 calls in 10 minutes (plus the first); an outage may at most double it.
  t.ok(calls <= 46, `throttled for 10 minutes: at most 46 DescribeKey calls (made ${calls})`);
  t.equal(monitor.snapshot().reason, 'Stale', 'unknown (Stale) after max staleness of throttling');
  t.equal(monitor.snapshot().lastFailure?.code, 'Rejected.Throttling', 'the failure is visible');

  emulator.faults.failShare(1, 'InternalFailure');
  t.equal(
    (await nextInterval(clock, monitor)).lastFailure?.code,
    'InternalFailure',
    '5xx burst seen',
  );
  emulator.faults.reset();
  const recovered = await nextInterval(clock, monitor);
  t.equal(recovered.status, 'usable', 'recovers once KMS answers');
  t.equal(clock.nextDelay(), 30_000, 'back to the normal interval');
});

t.test('latency beyond the timeout: unknown after max staleness, never a hang', async (t) => {
  const { emulator, keyId } = await withEmulator(t);
  const clock = new FakeClock(Date.now());
  const monitor = monitorFor(t, emulator, keyId, {
    clock,
    refreshIntervalMs: 30_000,
    maxStalenessMs: 90_000,
    timeoutMs: 250,
  });
  monitor.start();
  await monitor.firstLookup;
  emulator.faults.setLatency(5000);
  const slow = await nextInterval(clock, monitor, 30_000);
  t.equal(slow.lastFailure?.code, 'Timeout', 'the call times out');
  t.equal(slow.status, 'usable', 'the last answer still counts within max staleness');
  for (let step = 0; step < 10 && monitor.snapshot().status !== 'unknown'; step += 1) {
    await nextInterval(clock, monitor);
  }
  t.equal(monitor.snapshot().reason, 'Stale', 'unknown (Stale) after max staleness');
  await monitor.stop();
  t.equal(clock.pending, 0, 'stop() leaves no timer');
});

t.test('the monitor recovers after the emulator restarts on the same port', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kms-monitor-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const statePath = join(dir, 'state.json');
  const accessKeys = [{ id: 'LTAItestrestart000000001', secret: 'restart-secret-000000000000000' }];
  let emulator = await startEmulator({
    host: '127.0.0.1',
    port: 0,
    keys: [''],
    statePath,
    accessKeys,
  });
  t.teardown(() => emulator.close());
  const keyId = emulator.keyIds[0] ?? '';
  const port = Number(emulator.endpoint.split(':').at(-1));
  const clock = new FakeClock(Date.now());
  const monitor = monitorFor(t, emulator, keyId, {
    clock,
    refreshIntervalMs: 30_000,
    maxStalenessMs: 300_000,
  });
  monitor.start();
  await monitor.firstLookup;
  t.equal(monitor.snapshot().status, 'usable', 'usable before the restart');

  await emulator.close();
  const down = await nextInterval(clock, monitor, 30_000);
  t.equal(down.lastFailure?.code, 'NetworkError', 'emulator down: NetworkError');
  t.equal(down.status, 'usable', 'still usable within max staleness');

  emulator = await startEmulator({ host: '127.0.0.1', port, keys: [keyId], statePath, accessKeys });
  t.equal(emulator.keyIds[0], keyId, 'same key after the restart');
  let back = monitor.snapshot();
  for (let step = 0; step < 5 && back.lastFailure !== undefined; step += 1) {
    back = await nextInterval(clock, monitor);
  }
  t.equal(back.status, 'usable', 'usable after the restart');
  t.equal(back.lastFailure, undefined, 'recovered: no failure');
});

t.test('verdicts from the emulator', async (t) => {
  const { emulator, sdk, keyId } = await withEmulator(t);
  const missing = await monitorFor(t, emulator, 'key-not-there').refresh();
  t.equal(missing.reason, 'NotFound', 'unknown key id: NotFound');
  const noAlias = await monitorFor(t, emulator, 'alias/nope').refresh();
  t.equal(noAlias.reason, 'NotFound', 'unknown alias: NotFound');

  emulator.faults.denyAccessKey(emulator.accessKeyId);
  const denied = await monitorFor(t, emulator, keyId).refresh();
  t.equal(denied.reason, 'NoPermission', 'denied access key: NoPermission');
  emulator.faults.reset();

  await sdk.createAlias(new Kms.CreateAliasRequest({ keyId, aliasName: 'alias/guard' }));
  const viaAlias = await monitorFor(t, emulator, 'alias/guard').refresh();
  t.equal(viaAlias.configuredKeyId, 'alias/guard', 'alias as configured');
  t.equal(viaAlias.key?.keyId, keyId, 'alias resolved to the KeyId');
  const arn = viaAlias.key?.arn ?? '';
  const viaArn = await monitorFor(t, emulator, arn).refresh();
  t.equal(viaArn.key?.keyId, keyId, 'ARN resolved to the KeyId');

  const created = await sdk.createKey(new Kms.CreateKeyRequest({ origin: 'EXTERNAL' }));
  const externalId = created.keyMetadata.keyId;
  const pending = await monitorFor(t, emulator, externalId).refresh();
  t.equal(pending.reason, 'PendingImport', 'EXTERNAL key without material: PendingImport');
  emulator.importKeyMaterial(externalId, { expireTime: Date.now() + 3 * 86_400_000 });
  const imported = await monitorFor(t, emulator, externalId).refresh();
  t.equal(imported.status, 'usable', 'imported material: usable');
  t.ok(imported.key?.materialExpireTime, 'material expiry known');
});
