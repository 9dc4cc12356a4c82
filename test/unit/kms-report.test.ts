import t from 'tap';
import {
  classifyKey,
  factsFromMetadata,
  initialObservations,
  outcomeFromError,
  recordOutcome,
} from '../../src/kms/classify.js';
import { explainReason, keyReport } from '../../src/kms/report.js';
import { apiError, KEY_ID, metadata } from '../helpers/kms.js';

const NOW = Date.parse('2026-11-28T09:00:00Z');
const settings = { maxStalenessMs: 300_000 };

t.test('report of a usable key', async (t) => {
  const observations = recordOutcome(initialObservations('alias/k8s'), {
    kind: 'found',
    facts: factsFromMetadata(
      metadata({ lastRotationDate: '2026-06-01T12:00:00.123Z', primaryKeyVersion: 'v-2' }),
    ),
    at: new Date(NOW - 5000),
  });
  const report = keyReport(classifyKey(observations, NOW, settings), ['a warning']);
  t.equal(report.keyId, KEY_ID, 'resolved key id');
  t.equal(report.configuredKeyId, 'alias/k8s', 'configured key id');
  t.equal(report.state, 'Enabled', 'KMS state');
  t.equal(report.usable, true, 'usable');
  t.equal(report.reason, null, 'no reason');
  t.equal(report.primaryKeyVersion, 'v-2', 'primary version');
  t.equal(report.lastRotation, '2026-06-01T12:00:00Z', 'RFC 3339 UTC, no millis');
  t.equal(report.rotationTime, report.lastRotation, 'rotation time');
  t.equal(report.checkedAt, '2026-11-28T09:00:00Z', 'checkedAt');
  t.equal(report.ageSeconds, 5, 'age');
  t.same(report.warnings, ['a warning'], 'warnings');
  t.equal(report.error, null, 'no error');
});

t.test('report of unusable and unknown keys', async (t) => {
  const denied = recordOutcome(
    initialObservations(KEY_ID),
    outcomeFromError(apiError('Forbidden.NoPermission', 403), new Date(NOW)),
  );
  const report = keyReport(classifyKey(denied, NOW, settings));
  t.equal(report.state, 'NoPermission', 'verdict as state');
  t.equal(report.usable, false, 'not usable');
  t.equal(report.error?.code, 'Forbidden.NoPermission', 'error code');
  t.equal(report.error?.requestId, 'req-fake', 'request id');

  const never = keyReport(classifyKey(initialObservations(KEY_ID), NOW, settings));
  t.equal(never.state, 'Unknown', 'unknown state');
  t.equal(never.reason, 'NeverFetched', 'reason');
  t.equal(never.ageSeconds, null, 'no age');
  t.equal(never.keyId, KEY_ID, 'configured id when nothing resolved');

  const reasons = [
    'Disabled',
    'PendingDeletion',
    'PendingImport',
    'NotFound',
    'NoPermission',
    'MaterialExpired',
    'NeverFetched',
    'Stale',
  ] as const;
  for (const reason of reasons) {
    t.match(explainReason(reason, KEY_ID), KEY_ID, `${reason}: the explanation names the key`);
  }
});
