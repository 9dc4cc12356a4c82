// 3 s of load against a `serve` child while the key flips and the certificate rotates (the
// soak suite runs the same scenario for longer: npm run test:soak).
import t from 'tap';
import { missingBuild } from '../helpers/reliability.js';
import { loadWithFaults } from '../helpers/reliability-scenarios.js';

const MiB = 1024 * 1024;

t.test(
  'load while the key flips and the certificate rotates',
  { skip: missingBuild() ?? false },
  async (t) => {
    await loadWithFaults(t, {
      durationMs: 3_000,
      concurrency: 4,
      flipEveryMs: 400,
      rotateEveryMs: 1_000,
      heapGrowthBoundBytes: 8 * MiB,
      rssGrowthBoundBytes: 64 * MiB,
    });
  },
);
