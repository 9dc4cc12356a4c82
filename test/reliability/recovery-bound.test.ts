// How long after a KMS outage ends can the guard still report "unknown"? The next lookup
// comes at the current backoff delay, so recovery takes up to the longest backoff.
import t from 'tap';
import { monitorBackoff } from '../../src/kms/monitor.js';
import { backoffDelayMs } from '../../src/time/retry.js';

const DEFAULTS = { refreshIntervalMs: 30_000, maxStalenessMs: 300_000 };

t.test('the longest wait before the next lookup after an outage', async (t) => {
  const longest = Math.max(
    ...Array.from({ length: 40 }, (_, index) =>
      backoffDelayMs(index + 1, monitorBackoff(DEFAULTS), () => 1),
    ),
  );
  t.ok(
    longest <= DEFAULTS.maxStalenessMs / 2,
    `bounded: never more than half the max staleness (${longest} ms)`,
  );
  const shortest = Math.min(
    ...Array.from({ length: 40 }, (_, index) =>
      backoffDelayMs(index + 1, monitorBackoff(DEFAULTS), () => 0),
    ),
  );
  t.ok(shortest >= 250, `and never a hot loop: at least ${shortest} ms between lookups`);
  t.ok(
    longest <= DEFAULTS.refreshIntervalMs,
    `recovery within one refresh interval after a long outage (longest backoff ${longest} ms vs refresh ${DEFAULTS.refreshIntervalMs} ms)`,
  );
});
