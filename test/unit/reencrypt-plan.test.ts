import t from 'tap';
import {
  KEY_ID_ANNOTATION,
  KEY_VERSION_ANNOTATION,
  ROTATION_TIME_ANNOTATION,
  VersionTally,
  classifySecret,
  formatRotationTime,
  isAfter,
  isStale,
  listKey,
  REENCRYPTED_AT_ANNOTATION,
  rewritePatchFor,
  settleWaitMs,
  settledAt,
  stampFor,
  type StalenessRule,
  type TargetKey,
} from '../../src/reencrypt/plan.js';
import { FakeClock } from '../helpers/clock.js';

const target: TargetKey = {
  keyId: 'key-1',
  primaryKeyVersion: 'v2',
  rotationTime: new Date('2026-11-28T09:00:00.123Z'),
};
const rule: StalenessRule = { target, settleMs: 5 * 60_000 };
/** Written long after the rotation settled: only the stamp decides. */
const LATE = Date.parse('2026-11-28T10:00:00Z');
const written = (
  annotations: Record<string, string>,
  lastWrittenAt: number | undefined = LATE,
): { annotations: Record<string, string>; lastWrittenAt: number | undefined } => ({
  annotations,
  lastWrittenAt,
});

t.test('the stamp names the resolved key, its primary version and the rotation time', async (t) => {
  t.same(
    stampFor(target),
    {
      [KEY_ID_ANNOTATION]: 'key-1',
      [KEY_VERSION_ANNOTATION]: 'v2',
      [ROTATION_TIME_ANNOTATION]: '2026-11-28T09:00:00Z',
    },
    'three annotations, time in RFC 3339 UTC seconds',
  );
  t.equal(formatRotationTime(new Date(0)), '1970-01-01T00:00:00Z', 'milliseconds dropped');
});

t.test('staleness follows the key-version annotation', async (t) => {
  t.same(classifySecret(written({}), rule), { kind: 'unstamped' }, 'no annotation: unstamped');
  t.same(
    classifySecret(written({ [KEY_VERSION_ANNOTATION]: '' }), rule),
    { kind: 'unstamped' },
    'empty annotation: unstamped',
  );
  t.same(
    classifySecret(written({ [KEY_VERSION_ANNOTATION]: 'v2', [KEY_ID_ANNOTATION]: 'key-1' }), rule),
    { kind: 'current' },
    'current version and key: current',
  );
  t.same(
    classifySecret(written({ [KEY_VERSION_ANNOTATION]: 'v2' }), rule),
    { kind: 'current' },
    'current version without key id: current',
  );
  t.same(
    classifySecret(written({ [KEY_VERSION_ANNOTATION]: 'v1', [KEY_ID_ANNOTATION]: 'key-1' }), rule),
    { kind: 'older', version: 'v1' },
    'older version: stale',
  );
  t.same(
    classifySecret(written({ [KEY_VERSION_ANNOTATION]: 'v2', [KEY_ID_ANNOTATION]: 'key-0' }), rule),
    { kind: 'older', version: 'key-0/v2' },
    'same version id from another key: stale, labelled with that key',
  );
  t.notOk(isStale({ kind: 'current' }), 'current is not stale');
  t.ok(isStale({ kind: 'unstamped' }), 'unstamped is stale');
  t.ok(isStale({ kind: 'older', version: 'v1' }), 'older is stale');
});

t.test('the tally counts Secrets per version without keeping them', async (t) => {
  const tally = new VersionTally();
  for (const state of [
    { kind: 'current' },
    { kind: 'current' },
    { kind: 'unstamped' },
    { kind: 'older', version: 'v1' },
    { kind: 'older', version: 'v0' },
    { kind: 'older', version: 'v1' },
    { kind: 'beforeSettle' },
  ] as const) {
    tally.add(state);
  }
  t.same(
    tally.counts(),
    { current: 2, unstamped: 1, beforeSettle: 1, older: { v0: 1, v1: 2 } },
    'per-version counts, versions sorted',
  );
  t.equal(tally.stale, 5, 'stale = unstamped + written before the rotation settled + older');
});

const current = { [KEY_VERSION_ANNOTATION]: 'v2', [KEY_ID_ANNOTATION]: 'key-1' };

t.test(
  'the rotation window: a current stamp written before the rotation settled is stale',
  async (t) => {
    const boundary = Date.parse('2026-11-28T09:05:00Z');
    t.equal(settledAt(rule), boundary, 'rotation time (whole seconds) + settle');
    t.same(
      classifySecret(written(current, Date.parse('2026-11-28T09:01:00Z')), rule),
      { kind: 'beforeSettle' },
      'written a minute after the rotation (the API server may not have switched): stale',
    );
    t.same(
      classifySecret(written(current, Date.parse('2026-11-28T08:00:00Z')), rule),
      { kind: 'beforeSettle' },
      'written before the rotation with a current stamp: stale',
    );
    t.same(
      classifySecret(written(current, boundary), rule),
      { kind: 'beforeSettle' },
      'written in the boundary second (times are whole seconds): stale',
    );
    t.same(
      classifySecret(written(current, boundary + 1000), rule),
      { kind: 'current' },
      'written the second after: current',
    );
    t.same(
      classifySecret({ annotations: current }, rule),
      { kind: 'beforeSettle' },
      'no time at all: stale',
    );
    t.same(
      classifySecret(written(current, Date.parse('2026-11-28T09:01:00Z')), {
        target,
        settleMs: 30_000,
      }),
      { kind: 'current' },
      'a shorter settle time moves the boundary',
    );
    t.same(
      classifySecret(
        written({ [KEY_VERSION_ANNOTATION]: 'v1' }, Date.parse('2026-11-28T09:01:00Z')),
        rule,
      ),
      { kind: 'older', version: 'v1' },
      'an older stamp is counted by version, whatever the time',
    );
    t.ok(isStale({ kind: 'beforeSettle' }), 'written before the rotation settled is stale');
  },
);

t.test(
  'a rewriting run waits until the rotation settled, never longer than the settle time',
  async (t) => {
    const clock = new FakeClock('2026-11-28T09:01:00Z');
    t.equal(
      settleWaitMs(rule, clock.now()),
      4 * 60_000 + 1000,
      'until the second after the boundary',
    );
    t.equal(
      settleWaitMs(rule, Date.parse('2026-11-28T09:05:01Z')),
      0,
      'from the second after the boundary: no wait',
    );
    t.equal(settleWaitMs(rule, Date.parse('2026-11-28T12:00:00Z')), 0, 'long after: no wait');
    t.equal(
      settleWaitMs(rule, Date.parse('2026-11-28T08:00:00Z')),
      5 * 60_000 + 1000,
      'a rotation time in the future (clock skew): at most the settle time and its second',
    );
    t.equal(
      settleWaitMs(rule, Date.parse('2026-11-28T09:00:00.200Z')),
      5 * 60_000 + 800,
      'started just after the rotation: the first patch lands after the boundary second',
    );
  },
);

t.test('the rewrite patch always changes the stored object', async (t) => {
  const stamp = stampFor(target);
  const first = rewritePatchFor(stamp, Date.parse('2026-11-28T09:06:00.001Z'));
  const second = rewritePatchFor(stamp, Date.parse('2026-11-28T09:06:00.002Z'));
  t.same(
    first,
    { ...stamp, [REENCRYPTED_AT_ANNOTATION]: '2026-11-28T09:06:00.001Z' },
    'the stamp plus the rewrite time in RFC 3339 UTC',
  );
  t.not(
    first[REENCRYPTED_AT_ANNOTATION],
    second[REENCRYPTED_AT_ANNOTATION],
    'two rewrites even a millisecond apart differ, so neither is a no-op the API server skips',
  );
  t.equal(REENCRYPTED_AT_ANNOTATION, 'kms-secret-guard.io/reencrypted-at', 'the annotation name');
});

t.test('resume keys follow etcd key order', async (t) => {
  t.ok(isAfter(listKey('a', 'x'), undefined), 'nothing handled yet: everything is after');
  t.ok(isAfter(listKey('a', 'y'), listKey('a', 'x')), 'later name in the same namespace');
  t.notOk(
    isAfter(listKey('a', 'x'), listKey('a', 'x')),
    'the last handled one is not after itself',
  );
  t.ok(isAfter(listKey('b', 'a'), listKey('a', 'z')), 'a later namespace');
  t.ok(
    isAfter(listKey('a', 'x'), listKey('a-b', 'x')),
    '"a/" sorts after "a-b/" as in etcd ("/" > "-")',
  );
});
