// SIGTERM to a `serve` child during load: nothing sent before the signal is dropped.
import t from 'tap';
import { missingBuild } from '../helpers/reliability.js';
import {
  shutdownUnderLoad,
  shutdownWithHeldConnections,
} from '../helpers/reliability-scenarios.js';

t.test('SIGTERM during load', { skip: missingBuild() ?? false }, async (t) => {
  await shutdownUnderLoad(t, { loadBeforeSignalMs: 1_000, concurrency: 6, exitBoundMs: 15_000 });
});

t.test(
  'SIGTERM during load on kept-alive connections',
  { skip: missingBuild() ?? false },
  async (t) => {
    await shutdownUnderLoad(t, {
      loadBeforeSignalMs: 1_000,
      concurrency: 6,
      exitBoundMs: 15_000,
      keepAlive: true,
    });
  },
);

t.test(
  'SIGTERM with idle and never-used kept-alive connections open',
  { skip: missingBuild() ?? false },
  async (t) => {
    await shutdownWithHeldConnections(t);
  },
);
