import t from 'tap';
import {
  KEY_ID_ANNOTATION,
  KEY_VERSION_ANNOTATION,
  ROTATION_TIME_ANNOTATION,
  type TargetKey,
} from '../../src/reencrypt/plan.js';
import { KubeApiError } from '../../src/reencrypt/kube-client.js';
import { createTokenBucket } from '../../src/reencrypt/rate-limit.js';
import { runSweep, type SweepOptions } from '../../src/reencrypt/sweep.js';
import { REENCRYPTED_AT_ANNOTATION } from '../../src/reencrypt/plan.js';
import { MemorySecrets } from '../helpers/reencrypt.js';
import { FakeClock } from '../helpers/clock.js';

const target: TargetKey = {
  keyId: 'key-1',
  primaryKeyVersion: 'v3',
  rotationTime: new Date('2026-11-28T09:00:00Z'),
};
const stamped = (version: string): Record<string, string> => ({
  [KEY_ID_ANNOTATION]: 'key-1',
  [KEY_VERSION_ANNOTATION]: version,
});

/** 3 namespaces × 10 Secrets: per namespace 4 current, 3 on v2, 2 on v1, 1 unstamped. */
function seeded(): MemorySecrets {
  const secrets = new MemorySecrets();
  for (const namespace of ['ns-a', 'ns-b', 'ns-c']) {
    for (let index = 0; index < 10; index += 1) {
      const name = `s-${String(index).padStart(2, '0')}`;
      if (index < 4) secrets.add(namespace, name, stamped('v3'));
      else if (index < 7) secrets.add(namespace, name, stamped('v2'));
      else if (index < 9) secrets.add(namespace, name, stamped('v1'));
      else secrets.add(namespace, name);
    }
  }
  return secrets;
}

function options(
  client: MemorySecrets,
  overrides: Partial<SweepOptions> = {},
): SweepOptions & { clock: FakeClock } {
  const clock = new FakeClock(1_000_000, { timersFireAtOnce: true });
  return {
    client,
    target,
    scope: {},
    dryRun: false,
    pageSize: 7,
    concurrency: 3,
    limiter: createTokenBucket({ ratePerSecond: 1000, burst: 1000, now: () => clock.now() }),
    backoff: { baseMs: 100, maxMs: 5000, maxAttempts: 5 },
    clock,
    random: () => 0.5,
    signal: new AbortController().signal,
    ...overrides,
  } as SweepOptions & { clock: FakeClock };
}

t.test(
  'rewrites exactly the stale Secrets, page by page, within the concurrency bound',
  async (t) => {
    const secrets = seeded();
    const before = new Map(
      [...secrets.secrets].map(([key, value]) => [key, value.resourceVersion]),
    );
    const summary = await runSweep(options(secrets));
    t.equal(summary.scanned, 30, 'every Secret scanned');
    t.equal(summary.stale, 18, '6 stale per namespace');
    t.equal(summary.rewritten, 18, 'all stale rewritten');
    t.equal(summary.failed, 0, 'none failed');
    t.same(
      summary.byVersion,
      { current: 12, unstamped: 3, beforeSettle: 0, older: { v1: 6, v2: 9 } },
      'by version',
    );
    t.equal(secrets.patches.length, 18, 'one patch per stale Secret');
    t.equal(new Set(secrets.patches).size, 18, 'no Secret patched twice');
    t.ok(secrets.maxInFlight <= 3, `at most 3 patches in flight (saw ${secrets.maxInFlight})`);
    t.equal(secrets.listCalls, 5, '30 Secrets in pages of 7');
    for (const [key, stored] of secrets.secrets) {
      t.equal(stored.annotations[KEY_VERSION_ANNOTATION], 'v3', `${key} is current`);
      const wasCurrent =
        key.endsWith('00') || key.endsWith('01') || key.endsWith('02') || key.endsWith('03');
      if (!wasCurrent) {
        t.same(
          [stored.annotations[KEY_ID_ANNOTATION], stored.annotations[ROTATION_TIME_ANNOTATION]],
          ['key-1', '2026-11-28T09:00:00Z'],
          `${key} stamped with key id and rotation time`,
        );
      }
      t.equal(
        stored.resourceVersion === before.get(key),
        wasCurrent,
        `${key}: resourceVersion ${wasCurrent ? 'unchanged' : 'changed'}`,
      );
    }
    t.equal(summary.interrupted, false, 'not interrupted');
    t.equal(summary.fatalError, undefined, 'no fatal error');
  },
);

t.test('a second run finds nothing to do', async (t) => {
  const secrets = seeded();
  await runSweep(options(secrets));
  const patches = secrets.patches.length;
  const again = await runSweep(options(secrets));
  t.equal(again.stale, 0, 'nothing stale');
  t.equal(secrets.patches.length, patches, 'no new patch');
});

t.test(
  'the rotation window: current stamps written before it settled are rewritten once',
  async (t) => {
    const secrets = new MemorySecrets();
    // The API server's clock during the window: 09:02, two minutes after the rotation.
    secrets.writeTime = () => Date.parse('2026-11-28T09:02:00Z');
    secrets.add('ns', 'in-window', stamped('v3'));
    secrets.add('ns', 'old', stamped('v2'));
    secrets.writeTime = () => Date.parse('2026-11-28T09:06:00Z');
    secrets.add('ns', 'settled', stamped('v3'));
    const settleMs = 5 * 60_000;
    const dry = await runSweep(options(secrets, { dryRun: true, settleMs }));
    t.same(
      dry.byVersion,
      { current: 1, unstamped: 0, beforeSettle: 1, older: { v2: 1 } },
      'dry run: one stale by version, one by the window, one current',
    );
    t.equal(dry.wouldRewrite, 2, 'both stale ones would be rewritten');
    t.equal(dry.settledAt, '2026-11-28T09:05:00Z', 'the summary names when the rotation settled');
    t.equal(secrets.patches.length, 0, 'the dry run patched nothing');

    const run = await runSweep(options(secrets, { settleMs }));
    t.equal(run.rewritten, 2, 'the window Secret is rewritten as well as the old one');
    t.same([...secrets.patches].sort(), ['ns/in-window', 'ns/old'], 'exactly those two');
    for (const body of secrets.patchBodies) {
      t.match(
        body[REENCRYPTED_AT_ANNOTATION],
        /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/,
        'each patch carries reencrypted-at (RFC 3339 UTC), so even a current stamp changes the object',
      );
    }
    const again = await runSweep(options(secrets, { settleMs }));
    t.equal(again.stale, 0, 'a second run: nothing stale (the rewrites were written after 09:05)');
    t.equal(secrets.patches.length, 2, 'and no new patch');
  },
);

t.test(
  'a rewrite the API server records before the rotation settled fails (clocks apart) and stays stale',
  async (t) => {
    const secrets = new MemorySecrets();
    secrets.writeTime = () => Date.parse('2026-11-28T09:02:00Z');
    secrets.add('ns', 'in-window', stamped('v3'));
    // This machine thinks the rotation settled; the API server's clock says 09:04, before 09:05.
    secrets.writeTime = () => Date.parse('2026-11-28T09:04:00Z');
    const failures: string[] = [];
    const settleMs = 5 * 60_000;
    const observer = { onFailure: (_ref: unknown, message: string) => failures.push(message) };
    const early = await runSweep(options(secrets, { settleMs, observer }));
    t.equal(early.failed, 1, 'the early rewrite counts as failed');
    t.equal(early.rewritten, 0, 'not as rewritten');
    t.match(
      failures[0],
      /recorded this rewrite at 2026-11-28T09:04:00Z, not after the rotation settled \(2026-11-28T09:05:00Z\).*run again later/,
      'the message gives both times and what to do',
    );
    secrets.writeTime = () => Date.parse('2026-11-28T09:06:00Z');
    const again = await runSweep(options(secrets, { settleMs }));
    t.equal(again.stale, 1, 'the next run still finds it stale');
    t.equal(again.rewritten, 1, 'and rewrites it once the clocks agree');
    t.equal(again.failed, 0, 'without failure');
  },
);

t.test(
  'a write time that does not move (managedFields stripped) is not a clock failure',
  async (t) => {
    const secrets = new MemorySecrets();
    secrets.writeTime = () => Date.parse('2026-11-28T09:02:00Z');
    secrets.add('ns', 'stripped', stamped('v2'));
    // Without managedFields the API server reports creationTimestamp, which never moves.
    const run = await runSweep(options(secrets, { settleMs: 5 * 60_000 }));
    t.equal(run.rewritten, 1, 'rewritten');
    t.equal(run.failed, 0, 'not failed');
  },
);

t.test('--dry-run counts but changes nothing', async (t) => {
  const secrets = seeded();
  const summary = await runSweep(options(secrets, { dryRun: true }));
  t.equal(summary.wouldRewrite, 18, 'would rewrite the stale ones');
  t.equal(summary.rewritten, 0, 'rewrote none');
  t.equal(secrets.patches.length, 0, 'no patch sent');
  t.same(summary.byVersion.older, { v1: 6, v2: 9 }, 'older versions reported');
});

t.test('namespace scope is passed to the list', async (t) => {
  const secrets = seeded();
  const summary = await runSweep(options(secrets, { scope: { namespace: 'ns-b' } }));
  t.equal(summary.scanned, 10, 'only ns-b');
  t.ok(
    secrets.patches.every((key) => key.startsWith('ns-b/')),
    'only ns-b patched',
  );
});

t.test(
  'a conflict re-reads: still stale → patched; made current meanwhile → skipped',
  async (t) => {
    const secrets = seeded();
    const touched = new Set<string>();
    secrets.onPatchStart = (ref) => {
      const key = `${ref.namespace}/${ref.name}`;
      if (touched.has(key)) return;
      touched.add(key);
      // Someone else writes first: s-04 gets an unrelated change, s-05 gets stamped current.
      if (ref.name === 's-04') secrets.write(ref.namespace, ref.name, { other: 'x' });
      if (ref.name === 's-05') secrets.write(ref.namespace, ref.name, stamped('v3'));
      if (ref.name === 's-06') secrets.secrets.delete(key);
    };
    const summary = await runSweep(options(secrets));
    t.equal(summary.stale, 18, 'stale as listed');
    t.equal(summary.skipped, 6, 'made current (3) or deleted (3) meanwhile: skipped');
    t.equal(summary.rewritten, 12, 'the rest rewritten, including the conflicting s-04s');
    t.equal(summary.failed, 0, 'none failed');
    t.equal(
      secrets.secrets.get('ns-a/s-04')?.annotations[KEY_VERSION_ANNOTATION],
      'v3',
      's-04 current',
    );
    t.equal(
      secrets.secrets.get('ns-a/s-04')?.annotations.other,
      'x',
      'the other writer kept its change',
    );
  },
);

t.test('429 and 5xx are retried with backoff, honouring Retry-After', async (t) => {
  const secrets = seeded();
  const failures = new Map<string, number>();
  secrets.beforePatch = (ref) => {
    const key = `${ref.namespace}/${ref.name}`;
    const seen = failures.get(key) ?? 0;
    if (key === 'ns-a/s-04' && seen < 2) {
      failures.set(key, seen + 1);
      return new KubeApiError('throttled', 429, 'too many requests', { retryAfterSeconds: 3 });
    }
    if (key === 'ns-b/s-04' && seen < 1) {
      failures.set(key, seen + 1);
      return new KubeApiError('serverError', 503, 'unavailable');
    }
    return undefined;
  };
  const opts = options(secrets);
  const summary = await runSweep(opts);
  t.equal(summary.rewritten, 18, 'all rewritten in the end');
  t.equal(summary.failed, 0, 'none failed');
  t.equal(opts.clock.sleeps.filter((ms) => ms === 3000).length, 2, 'slept Retry-After (3 s) twice');
  t.ok(opts.clock.sleeps.includes(75), 'backoff with jitter for the 503 (100 ms × [0.5, 1])');
});

t.test('a Secret that keeps failing fails alone, after bounded attempts', async (t) => {
  const secrets = seeded();
  let attempts = 0;
  const failed: string[] = [];
  secrets.beforePatch = (ref) => {
    if (ref.namespace !== 'ns-c' || ref.name !== 's-09') return undefined;
    attempts += 1;
    return new KubeApiError('serverError', 500, 'etcd timeout');
  };
  const summary = await runSweep(
    options(secrets, {
      observer: { onFailure: (ref, message) => failed.push(`${ref.name}: ${message}`) },
    }),
  );
  t.equal(attempts, 5, 'five attempts');
  t.equal(summary.failed, 1, 'one failed');
  t.equal(summary.rewritten, 17, 'the others rewritten');
  t.same(failed, ['s-09: etcd timeout'], 'the failure is reported by name');
});

t.test('422 is not retried', async (t) => {
  const secrets = seeded();
  let attempts = 0;
  secrets.beforePatch = (ref) => {
    if (ref.namespace !== 'ns-a' || ref.name !== 's-09') return undefined;
    attempts += 1;
    return new KubeApiError('rejected', 422, 'invalid');
  };
  const summary = await runSweep(options(secrets));
  t.equal(attempts, 1, 'one attempt');
  t.equal(summary.failed, 1, 'failed');
});

t.test('many Secrets failing in a row stop the sweep', async (t) => {
  const secrets = seeded();
  secrets.beforePatch = () =>
    new KubeApiError('rejected', 403, 'admission webhook "guard" denied the request: key disabled');
  const failures: string[] = [];
  const summary = await runSweep(
    options(secrets, {
      concurrency: 2,
      maxConsecutiveFailures: 5,
      observer: { onFailure: (ref) => failures.push(ref.name) },
    }),
  );
  t.ok(
    summary.failed >= 5 && summary.failed <= 7,
    `stopped after about 5 failures (${summary.failed})`,
  );
  t.match(summary.fatalError, /5 Secrets in a row could not be rewritten/, 'says why it stopped');
  t.equal(failures.length, summary.failed, 'each failure named');
  t.equal(summary.rewritten, 0, 'nothing rewritten');
});

t.test('a success resets the failure streak', async (t) => {
  const secrets = seeded();
  secrets.beforePatch = (ref) =>
    ref.name === 's-09' || ref.name === 's-08'
      ? new KubeApiError('rejected', 422, 'invalid')
      : undefined;
  const summary = await runSweep(options(secrets, { concurrency: 1, maxConsecutiveFailures: 3 }));
  t.equal(summary.failed, 6, 'two failures per namespace');
  t.equal(summary.fatalError, undefined, 'never three in a row');
  t.equal(summary.rewritten, 12, 'the rest rewritten');
});

t.test('403 stops the sweep with a message naming the fix, not retried', async (t) => {
  const secrets = seeded();
  let attempts = 0;
  secrets.beforePatch = () => {
    attempts += 1;
    return new KubeApiError(
      'forbidden',
      403,
      'patch secret ns-a/s-04: HTTP 403: secrets "s-04" is forbidden: User "lister" cannot patch resource "secrets" in API group "" in the namespace "ns-a"',
    );
  };
  const summary = await runSweep(options(secrets, { concurrency: 1 }));
  t.equal(attempts, 1, 'one patch attempted, then the sweep stopped');
  t.match(
    summary.fatalError,
    /^forbidden: .*cannot patch resource "secrets".*grant the reencrypt ClusterRole/,
    'clear message',
  );
  t.equal(summary.rewritten, 0, 'nothing rewritten');
  t.ok(summary.scanned < 30, 'stopped scanning');
});

t.test('a list that is forbidden ends with a clear message', async (t) => {
  const secrets = seeded();
  secrets.beforeList = () =>
    new KubeApiError('forbidden', 403, 'list secrets: HTTP 403: cannot list resource "secrets"');
  const summary = await runSweep(options(secrets));
  t.match(summary.fatalError, /forbidden: .*cannot list secrets/, 'names the verb');
  t.equal(summary.scanned, 0, 'nothing scanned');
});

t.test('an expired continue token restarts the list without counting twice', async (t) => {
  const secrets = seeded();
  secrets.beforeList = (call, token) =>
    call === 3 && token !== undefined
      ? new KubeApiError('expired', 410, 'continue token expired')
      : undefined;
  const summary = await runSweep(options(secrets));
  t.equal(summary.listRestarts, 1, 'one restart');
  t.equal(summary.scanned, 30, 'each Secret scanned once');
  t.equal(summary.rewritten, 18, 'all stale rewritten');
  t.equal(new Set(secrets.patches).size, secrets.patches.length, 'none twice');
});

t.test('an expired continue token with a fresh token continues from it', async (t) => {
  const secrets = seeded();
  let failedOnce = false;
  secrets.beforeList = (_call, token) => {
    if (token !== undefined && !failedOnce) {
      failedOnce = true;
      return new KubeApiError('expired', 410, 'expired', { continueToken: token });
    }
    return undefined;
  };
  const summary = await runSweep(options(secrets));
  t.equal(summary.listRestarts, 1, 'one restart');
  t.equal(summary.scanned, 30, 'each Secret scanned once');
});

t.test('interrupted: stops taking work, finishes in-flight patches, resumes later', async (t) => {
  const secrets = seeded();
  const controller = new AbortController();
  secrets.onPatchStart = () => {
    if (secrets.patches.length >= 4) controller.abort();
  };
  const first = await runSweep(options(secrets, { signal: controller.signal, concurrency: 2 }));
  t.ok(first.interrupted, 'reported as interrupted');
  t.ok(first.rewritten >= 4 && first.rewritten < 18, `some rewritten (${first.rewritten})`);
  t.equal(secrets.inFlight, 0, 'no patch left in flight');
  const second = await runSweep(options(secrets));
  t.equal(second.stale, 18 - first.rewritten, 'the second run sees only what is left');
  t.equal(secrets.patches.length, 18, 'eighteen patches in total');
  t.equal(new Set(secrets.patches).size, 18, 'no Secret rewritten twice');
});

t.test('the rate limiter spaces requests on the clock', async (t) => {
  const secrets = seeded();
  const clock = new FakeClock(1_000_000, { timersFireAtOnce: true });
  const summary = await runSweep(
    options(secrets, {
      clock,
      limiter: createTokenBucket({ ratePerSecond: 10, burst: 1, now: () => clock.now() }),
    }),
  );
  // 5 lists + 18 patches = 23 requests at 10/s after the first: at least 2.2 s of clock.
  t.ok(summary.durationSeconds >= 2.2, `took ${summary.durationSeconds}s of fake time`);
  t.equal(summary.rewritten, 18, 'all rewritten');
});

t.test('progress reports an estimated total', async (t) => {
  const secrets = seeded();
  const totals: (number | undefined)[] = [];
  await runSweep(
    options(secrets, { observer: { onProgress: (p) => totals.push(p.estimatedTotal) } }),
  );
  t.equal(totals.at(-1), 30, 'the final estimate is exact');
  t.ok(
    totals.filter((total) => total !== undefined).every((total) => total === 30),
    'the server estimate is stable',
  );
});
