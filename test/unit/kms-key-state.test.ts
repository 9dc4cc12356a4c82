import t from 'tap';
import {
  classifyKey,
  factsFromMetadata,
  initialObservations,
  outcomeFromError,
  recordOutcome,
} from '../../src/kms/classify.js';
import { describeKeyState } from '../../src/kms/key-state.js';
import { explainReason, UNKNOWN_REASONS, UNUSABLE_REASONS } from '../../src/kms/vocabulary.js';
import { apiError, KEY_ID, metadata } from '../helpers/kms.js';

const NOW = Date.parse('2026-11-28T09:00:00Z');
const settings = { maxStalenessMs: 300_000, refreshIntervalMs: 30_000 };

t.test('the key state of a usable key', async (t) => {
  const observations = recordOutcome(initialObservations('alias/k8s'), {
    kind: 'found',
    facts: factsFromMetadata(
      metadata({ lastRotationDate: '2026-06-01T12:00:00.123Z', primaryKeyVersion: 'v-2' }),
    ),
    at: new Date(NOW - 5000),
  });
  const report = describeKeyState({
    ...classifyKey(observations, NOW, settings),
    warnings: ['a warning'],
  });
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

t.test('the key state of unusable and unknown keys', async (t) => {
  const denied = recordOutcome(
    initialObservations(KEY_ID),
    outcomeFromError(apiError('Forbidden.NoPermission', 403), new Date(NOW)),
  );
  const report = describeKeyState(classifyKey(denied, NOW, settings));
  t.equal(report.state, 'NoPermission', 'verdict as state');
  t.equal(report.usable, false, 'not usable');
  t.equal(report.error?.code, 'Forbidden.NoPermission', 'error code');
  t.equal(report.error?.requestId, 'req-fake', 'request id');

  const never = describeKeyState(classifyKey(initialObservations(KEY_ID), NOW, settings));
  t.equal(never.state, 'Unknown', 'unknown state');
  t.equal(never.reason, 'NeverFetched', 'reason');
  t.equal(never.ageSeconds, null, 'no age');
  t.equal(never.keyId, KEY_ID, 'configured id when nothing resolved');

  const reasons = [...UNUSABLE_REASONS, ...UNKNOWN_REASONS];
  for (const reason of reasons) {
    t.match(explainReason(reason, KEY_ID), KEY_ID, `${reason}: the explanation names the key`);
  }
});

t.test("lastRotation is KMS's LastRotationDate; rotationTime is what the stamp uses", async (t) => {
  const view = (overrides: Parameters<typeof metadata>[0]) =>
    describeKeyState(
      classifyKey(
        recordOutcome(initialObservations(KEY_ID), {
          kind: 'found',
          facts: factsFromMetadata(metadata(overrides)),
          at: new Date(NOW),
        }),
        NOW,
        settings,
      ),
    );
  const never = view({ creationDate: '2026-01-01T00:00:00Z', lastRotationDate: undefined });
  t.equal(never.rotationTime, '2026-01-01T00:00:00Z', 'never rotated: the stamp uses CreationDate');
  t.equal(never.lastRotation, null, 'never rotated: no last rotation is invented');

  const rotated = view({
    creationDate: '2026-01-01T00:00:00Z',
    lastRotationDate: '2026-06-01T12:00:00Z',
  });
  t.equal(rotated.rotationTime, '2026-06-01T12:00:00Z', 'rotated: the stamp uses LastRotationDate');
  t.equal(rotated.lastRotation, '2026-06-01T12:00:00Z', "rotated: KMS's LastRotationDate");
});

t.test('the key state carries the warnings classification computed', async (t) => {
  const scheduled = recordOutcome(initialObservations(KEY_ID), {
    kind: 'found',
    facts: factsFromMetadata(metadata({ deleteDate: '2026-12-05T00:00:00Z' })),
    at: new Date(NOW),
  });
  const snapshot = classifyKey(scheduled, NOW, settings);
  t.match(snapshot.warnings, [/scheduled for deletion/], 'the snapshot has the warning');
  t.same(describeKeyState(snapshot).warnings, snapshot.warnings, 'the view shows the same ones');
});
