// Soak: 20 s of load while the key flips and the certificate rotates; heap after GC bounded.
import t from 'tap';
import { missingBuild } from '../helpers/reliability.js';
import { loadWithFaults, shutdownUnderLoad } from '../helpers/reliability-scenarios.js';

const MiB = 1024 * 1024;

t.test(
  'soak: 20 s load with key flips and certificate rotation',
  { skip: missingBuild() ?? false },
  async (t) => {
    await loadWithFaults(t, {
      durationMs: 20_000,
      concurrency: 8,
      flipEveryMs: 500,
      rotateEveryMs: 2_000,
      heapGrowthBoundBytes: 8 * MiB,
      rssGrowthBoundBytes: 128 * MiB,
    });
  },
);

t.test('soak: SIGTERM after 10 s of load', { skip: missingBuild() ?? false }, async (t) => {
  await shutdownUnderLoad(t, { loadBeforeSignalMs: 10_000, concurrency: 12, exitBoundMs: 15_000 });
});

t.test(
  'soak: SIGTERM after 10 s of load on kept-alive connections',
  { skip: missingBuild() ?? false },
  async (t) => {
    await shutdownUnderLoad(t, {
      loadBeforeSignalMs: 10_000,
      concurrency: 12,
      exitBoundMs: 15_000,
      keepAlive: true,
    });
  },
);
