import t from 'tap';
import { createLogger } from '../../src/logging/logger.js';
import { PluginError } from '../../src/plugin/errors.js';
import { createRefreshTrigger } from '../../src/plugin/refresh.js';
import { createPluginService } from '../../src/plugin/service.js';
import type { KmsCryptoApi } from '../../src/kms/client.js';
import { FakeClock } from '../helpers/clock.js';
import { apiError } from '../helpers/kms.js';
import { LogCapture } from '../helpers/logs.js';
import { usableSnapshot } from '../helpers/server.js';

function countingRefresh(): {
  refresh: () => Promise<void>;
  count: () => number;
  finish: () => void;
} {
  let count = 0;
  let finish: () => void = () => undefined;
  return {
    refresh: () => {
      count += 1;
      return new Promise<void>((resolve) => {
        finish = resolve;
      });
    },
    count: () => count,
    finish: () => {
      finish();
    },
  };
}

t.test('refresh trigger: one at a time, at most one per gap, one trailing', async (t) => {
  const clock = new FakeClock();
  const monitor = countingRefresh();
  const trigger = createRefreshTrigger({ refresh: monitor.refresh, minIntervalMs: 5_000, clock });

  for (let index = 0; index < 200; index += 1) trigger.request();
  t.equal(monitor.count(), 1, '200 requests at once: one refresh');
  monitor.finish();
  await clock.advance(0);
  t.equal(monitor.count(), 1, 'the requests during it wait for the gap');
  await clock.advance(4_999);
  t.equal(monitor.count(), 1, 'not before the gap has passed');
  await clock.advance(1);
  t.equal(monitor.count(), 2, 'one trailing refresh at the end of the gap');
  monitor.finish();
  await clock.advance(60_000);
  t.equal(monitor.count(), 2, 'no request since: no more refreshes');

  trigger.request();
  t.equal(monitor.count(), 3, 'a request after a quiet gap refreshes at once');
  monitor.finish();
  trigger.request();
  trigger.stop();
  await clock.advance(10_000);
  t.equal(monitor.count(), 3, 'stop() cancels the pending trailing refresh');
  t.equal(clock.pending, 0, 'no timer is left');
});

t.test('a call cancelled before it reached KMS never calls KMS', async (t) => {
  let kmsCalls = 0;
  const kms: KmsCryptoApi = {
    encrypt: () => {
      kmsCalls += 1;
      return Promise.reject(apiError('Forbidden.KeyNotFound', 404));
    },
    decrypt: () => {
      kmsCalls += 1;
      return Promise.reject(apiError('Forbidden.KeyNotFound', 404));
    },
  };
  let refreshes = 0;
  const service = createPluginService({
    configuredKeyId: 'key-1',
    maxStalenessMs: 300_000,
    refreshIntervalMs: 30_000,
    kms,
    monitor: {
      snapshot: () => usableSnapshot(),
      refresh: () => {
        refreshes += 1;
        return Promise.resolve();
      },
    },
    logger: createLogger('silent', new LogCapture()),
    clock: new FakeClock(),
  });
  t.teardown(() => {
    service.stop();
  });
  const aborted = AbortSignal.abort('cancelled');
  const cancelled = await service
    .encrypt({ plaintext: Buffer.alloc(32), uid: 'u' }, aborted)
    .catch((error: unknown) => error);
  t.ok(cancelled instanceof PluginError, 'a PluginError');
  t.equal((cancelled as PluginError).code, 'CANCELLED', 'CANCELLED');
  t.equal(kmsCalls, 0, 'KMS was not called');

  const notFound = await service
    .decrypt({ ciphertext: Buffer.from('QUJD'), uid: 'u', keyId: '' })
    .catch((error: unknown) => error);
  t.equal((notFound as PluginError).code, 'NOT_FOUND', 'a key error from KMS: NOT_FOUND');
  t.match(
    (notFound as PluginError).message,
    /no longer exists.*data is lost/,
    'Decrypt says whose key',
  );
  t.equal(refreshes, 1, 'a key error asks for one refresh');
});
