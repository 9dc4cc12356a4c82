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
  stampFor,
  type TargetKey,
} from '../../src/reencrypt/plan.js';

const target: TargetKey = {
  keyId: 'key-1',
  primaryKeyVersion: 'v2',
  rotationTime: new Date('2026-11-28T09:00:00.123Z'),
};

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
  t.same(classifySecret({}, target), { kind: 'unstamped' }, 'no annotation: unstamped');
  t.same(
    classifySecret({ [KEY_VERSION_ANNOTATION]: '' }, target),
    { kind: 'unstamped' },
    'empty annotation: unstamped',
  );
  t.same(
    classifySecret({ [KEY_VERSION_ANNOTATION]: 'v2', [KEY_ID_ANNOTATION]: 'key-1' }, target),
    { kind: 'current' },
    'current version and key: current',
  );
  t.same(
    classifySecret({ [KEY_VERSION_ANNOTATION]: 'v2' }, target),
    { kind: 'current' },
    'current version without key id: current',
  );
  t.same(
    classifySecret({ [KEY_VERSION_ANNOTATION]: 'v1', [KEY_ID_ANNOTATION]: 'key-1' }, target),
    { kind: 'older', version: 'v1' },
    'older version: stale',
  );
  t.same(
    classifySecret({ [KEY_VERSION_ANNOTATION]: 'v2', [KEY_ID_ANNOTATION]: 'key-0' }, target),
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
  ] as const) {
    tally.add(state);
  }
  t.same(
    tally.counts(),
    { current: 2, unstamped: 1, older: { v0: 1, v1: 2 } },
    'per-version counts, versions sorted',
  );
  t.equal(tally.stale, 4, 'stale = unstamped + older');
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
