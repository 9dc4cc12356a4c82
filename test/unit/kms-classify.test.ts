import t from 'tap';
import {
  classifyKey,
  classifySingleLookup,
  factsFromMetadata,
  initialObservations,
  keyWarnings,
  outcomeFromError,
  recordOutcome,
} from '../../src/kms/classify.js';
import { formatRfc3339 } from '../../src/kms/dates.js';
import { requestKeyId } from '../../src/kms/key-id.js';
import type { KeyObservations } from '../../src/kms/types.js';
import { MAX_WARNING_LENGTH } from '../../src/kms/vocabulary.js';
import { apiError, KEY_ID, metadata } from '../helpers/kms.js';

const NOW = Date.parse('2026-11-28T09:00:00Z');
const settings = { maxStalenessMs: 300_000, refreshIntervalMs: 30_000 };
const DAY = 86_400_000;

function found(overrides: Parameters<typeof metadata>[0] = {}, atMs = NOW): KeyObservations {
  return recordOutcome(initialObservations('alias/k8s'), {
    kind: 'found',
    facts: factsFromMetadata(metadata(overrides)),
    at: new Date(atMs),
  });
}

t.test('key states map to a status and reason', async (t) => {
  const table = [
    { name: 'Enabled', meta: { keyState: 'Enabled' }, status: 'usable', reason: undefined },
    { name: 'Disabled', meta: { keyState: 'Disabled' }, status: 'unusable', reason: 'Disabled' },
    {
      name: 'PendingDeletion',
      meta: { keyState: 'PendingDeletion', deleteDate: '2026-12-05T00:00:00Z' },
      status: 'unusable',
      reason: 'PendingDeletion',
    },
    {
      name: 'PendingImport',
      meta: { keyState: 'PendingImport', origin: 'EXTERNAL' },
      status: 'unusable',
      reason: 'PendingImport',
    },
    {
      name: 'imported material expired',
      meta: { keyState: 'Enabled', origin: 'EXTERNAL', materialExpireTime: '2026-11-28T08:59:59Z' },
      status: 'unusable',
      reason: 'MaterialExpired',
    },
    {
      name: 'imported material still valid',
      meta: { keyState: 'Enabled', origin: 'EXTERNAL', materialExpireTime: '2027-11-28T00:00:00Z' },
      status: 'usable',
      reason: undefined,
    },
    {
      name: 'an unknown KMS state',
      meta: { keyState: 'Archived' },
      status: 'unusable',
      reason: 'Disabled',
    },
  ] as const;
  for (const row of table) {
    const snapshot = classifyKey(found(row.meta), NOW, settings);
    t.equal(snapshot.status, row.status, `${row.name}: status ${row.status}`);
    t.equal(snapshot.reason, row.reason, `${row.name}: reason ${String(row.reason)}`);
  }
});

t.test('verdicts from KMS errors are authoritative', async (t) => {
  const table = [
    { code: 'Forbidden.KeyNotFound', status: 404, reason: 'NotFound' },
    { code: 'Forbidden.AliasNotFound', status: 404, reason: 'NotFound' },
    { code: 'Forbidden.NoPermission', status: 403, reason: 'NoPermission' },
  ] as const;
  for (const row of table) {
    const observations = recordOutcome(
      found(),
      outcomeFromError(apiError(row.code, row.status), new Date(NOW + 1000)),
    );
    const snapshot = classifyKey(observations, NOW + 2000, settings);
    t.equal(snapshot.status, 'unusable', `${row.code} makes the key unusable`);
    t.equal(snapshot.reason, row.reason, `${row.code} → ${row.reason}`);
    t.equal(snapshot.lastFailure?.code, row.code, `${row.code} is the last failure`);
    t.equal(snapshot.lastSuccessAt?.getTime(), NOW + 1000, 'a verdict counts as an answer');
    t.equal(snapshot.key?.keyId, KEY_ID, 'earlier facts are kept for context');
  }
});

t.test('transient failures keep the last answer until it is stale', async (t) => {
  const failed = recordOutcome(
    found(),
    outcomeFromError(apiError('Rejected.Throttling', 429), new Date(NOW + 10_000)),
  );
  const fresh = classifyKey(failed, NOW + 10_000, settings);
  t.equal(fresh.status, 'usable', 'still usable right after a throttled call');
  t.equal(fresh.lastFailure?.code, 'Rejected.Throttling', 'the failure is visible');
  t.equal(fresh.lastFailure?.transient, true, 'throttling is transient');
  t.equal(fresh.ageSeconds, 10, 'age counts from the last success');

  const edge = classifyKey(failed, NOW + 300_000, settings);
  t.equal(edge.status, 'usable', 'exactly max staleness is still fresh');
  const stale = classifyKey(failed, NOW + 300_001, settings);
  t.equal(stale.status, 'unknown', 'older than max staleness is unknown');
  t.equal(stale.reason, 'Stale', 'reason Stale');
  t.equal(stale.key?.primaryKeyVersion, 'v-1', 'stale snapshot still carries the last facts');

  const staleVerdict = recordOutcome(
    initialObservations(KEY_ID),
    outcomeFromError(apiError('Forbidden.KeyNotFound', 404), new Date(NOW)),
  );
  t.equal(
    classifyKey(staleVerdict, NOW + 400_000, settings).reason,
    'Stale',
    'a verdict also goes stale',
  );
});

t.test('never fetched', async (t) => {
  const none = classifyKey(initialObservations(KEY_ID), NOW, settings);
  t.equal(none.status, 'unknown', 'no lookup yet: unknown');
  t.equal(none.reason, 'NeverFetched', 'reason NeverFetched');
  t.equal(none.firstLookupDone, false, 'first lookup not done');
  t.equal(none.ageSeconds, undefined, 'no age');

  const failedFirst = recordOutcome(
    initialObservations(KEY_ID),
    outcomeFromError(apiError('NetworkError'), new Date(NOW)),
  );
  const snapshot = classifyKey(failedFirst, NOW, settings);
  t.equal(snapshot.reason, 'NeverFetched', 'a failed first lookup is still NeverFetched');
  t.equal(snapshot.firstLookupDone, true, 'but the first lookup is done');

  const credentials = recordOutcome(
    initialObservations(KEY_ID),
    outcomeFromError(apiError('InvalidAccessKeyId.NotFound', 404), new Date(NOW)),
  );
  t.equal(
    classifyKey(credentials, NOW, settings).status,
    'unknown',
    "a bad access key is the guard's problem, not a verdict about the key",
  );
});

t.test('a success after a verdict clears it', async (t) => {
  const denied = recordOutcome(
    found(),
    outcomeFromError(apiError('Forbidden.NoPermission', 403), new Date(NOW)),
  );
  const back = recordOutcome(denied, {
    kind: 'found',
    facts: factsFromMetadata(metadata()),
    at: new Date(NOW + 1000),
  });
  const snapshot = classifyKey(back, NOW + 1000, settings);
  t.equal(snapshot.status, 'usable', 'usable again');
  t.equal(snapshot.lastFailure, undefined, 'failure cleared');
});

t.test('rotation time and dates', async (t) => {
  const never = factsFromMetadata(metadata({ creationDate: '2026-01-01T00:00:00Z' }));
  t.equal(never.rotationTime?.toISOString(), '2026-01-01T00:00:00.000Z', 'never rotated: creation');
  const rotated = factsFromMetadata(
    metadata({ lastRotationDate: '2026-06-01T12:00:00Z', primaryKeyVersion: 'v-2' }),
  );
  t.equal(
    rotated.rotationTime?.toISOString(),
    '2026-06-01T12:00:00.000Z',
    'rotated: last rotation',
  );
  const bad = factsFromMetadata(metadata({ deleteDate: 'not a date', creationDate: undefined }));
  t.equal(bad.deleteDate, undefined, 'an unparsable date is absent');
  t.equal(bad.rotationTime, undefined, 'no dates: no rotation time');
  t.equal(never.lastRotationDate, undefined, 'never rotated: KMS sent no LastRotationDate');
  t.equal(
    rotated.lastRotationDate?.toISOString(),
    '2026-06-01T12:00:00.000Z',
    "rotated: KMS's LastRotationDate verbatim",
  );
  t.equal(formatRfc3339(new Date(NOW + 123)), '2026-11-28T09:00:00Z', 'RFC 3339 without millis');
});

t.test('ARNs and aliases for DescribeKey', async (t) => {
  t.equal(requestKeyId(KEY_ID), KEY_ID, 'a key id passes');
  t.equal(requestKeyId('alias/k8s'), 'alias/k8s', 'an alias passes');
  t.equal(requestKeyId(`acs:kms:cn-hangzhou:123:key/${KEY_ID}`), KEY_ID, 'key ARN → key id');
  t.equal(requestKeyId('acs:kms:cn-hangzhou:123:alias/k8s'), 'alias/k8s', 'alias ARN → alias');
});

t.test('warnings for a usable key', async (t) => {
  const table = [
    { name: 'healthy', meta: {}, lastSuccess: NOW, expect: [] },
    {
      name: 'deletion scheduled',
      meta: { deleteDate: '2026-12-05T00:00:00Z' },
      lastSuccess: NOW,
      expect: [/scheduled for deletion at 2026-12-05T00:00:00Z/],
    },
    {
      name: 'material expires in 3 days',
      meta: { materialExpireTime: new Date(NOW + 3 * DAY).toISOString() },
      lastSuccess: NOW,
      expect: [/imported key material expires/],
    },
    {
      name: 'material expires in 8 days',
      meta: { materialExpireTime: new Date(NOW + 8 * DAY).toISOString() },
      lastSuccess: NOW,
      expect: [],
    },
    {
      name: 'lookups failing',
      meta: {},
      lastSuccess: NOW - 61_000,
      expect: [/last confirmed 61s ago/],
    },
    { name: 'one missed refresh', meta: {}, lastSuccess: NOW - 59_000, expect: [] },
    {
      name: 'everything at once, with a very long key id',
      meta: {
        keyId: `key-${'x'.repeat(150)}`,
        deleteDate: '2026-12-05T00:00:00Z',
        materialExpireTime: new Date(NOW + DAY).toISOString(),
      },
      lastSuccess: NOW - 200_000,
      expect: [/deletion/, /material/, /last confirmed 3m ago/],
    },
  ];
  for (const row of table) {
    const snapshot = classifyKey(found(row.meta, row.lastSuccess), NOW, settings);
    const warnings = keyWarnings(snapshot, 30_000, NOW);
    t.same(
      snapshot.warnings,
      warnings,
      `${row.name}: classification puts the warnings on the snapshot`,
    );
    t.equal(warnings.length, row.expect.length, `${row.name}: ${row.expect.length} warnings`);
    row.expect.forEach((pattern, index) => {
      t.match(warnings[index], pattern, `${row.name}: warning ${index} says what is wrong`);
    });
    for (const text of warnings) {
      t.ok(text.length <= MAX_WARNING_LENGTH, `${row.name}: "${text}" is under 120 characters`);
    }
  }
  const disabled = classifyKey(
    found({ keyState: 'Disabled', deleteDate: '2026-12-05T00:00:00Z' }),
    NOW,
    settings,
  );
  t.same(keyWarnings(disabled, 30_000, NOW), [], 'no warnings unless the key is usable');
  t.same(disabled.warnings, [], 'and none on the snapshot of an unusable key');
});

t.test('the refresh interval of the settings decides the lookups-failing warning', async (t) => {
  const observations = found({}, NOW - 61_000);
  t.match(
    classifyKey(observations, NOW, settings).warnings,
    [/last confirmed 61s ago; KMS lookups are failing/],
    'older than two 30 s intervals: warned',
  );
  t.same(
    classifyKey(observations, NOW, { ...settings, refreshIntervalMs: 60_000 }).warnings,
    [],
    'within two 60 s intervals: no warning',
  );
  t.same(
    classifyKey(initialObservations(KEY_ID), NOW, settings).warnings,
    [],
    'an unknown key has no warnings (admission words those itself)',
  );
});

t.test('a single lookup (check, reencrypt) is neither stale nor overdue', async (t) => {
  const found = {
    kind: 'found',
    facts: factsFromMetadata(metadata({ deleteDate: '2026-12-05T00:00:00Z' })),
    at: new Date(NOW - 3_600_000),
  } as const;
  const snapshot = classifySingleLookup('alias/k8s', found, NOW);
  t.equal(snapshot.status, 'usable', 'an hour-old answer is not stale');
  t.equal(snapshot.configuredKeyId, 'alias/k8s', 'configured id kept');
  t.match(snapshot.warnings, [/scheduled for deletion/], 'deletion warning');
  t.equal(snapshot.warnings.length, 1, 'but no lookups-failing warning');
});
