import t from 'tap';
import fc from 'fast-check';
import { decideValidation } from '../../src/admission/index.js';
import {
  denialMessage,
  explainReason,
  fitWarning,
  isUnusableReason,
  MAX_WARNING_LENGTH,
  UNKNOWN_REASONS,
  UNKNOWN_WORDING,
  unknownDenialMessage,
  UNUSABLE_REASONS,
  UNUSABLE_WORDING,
  WARNINGS,
} from '../../src/kms/vocabulary.js';
import { KEY_ID } from '../helpers/kms.js';
import { fixture, unusableSnapshot } from '../helpers/server.js';

const LONG_ARN = `acs:kms:cn-hangzhou:1234567890123456:alias/${'cluster-secrets-'.repeat(6)}`;
const LONG_ID = `key-${'x'.repeat(300)}`;
const DELETE_DATE = new Date('2026-12-05T10:00:00Z');
const EXPIRY = new Date('2026-11-27T00:00:00Z');

/** What each denial must say about the key's state (the KMS state or the problem). */
const STATE_WORDS: Record<(typeof UNUSABLE_REASONS)[number], RegExp> = {
  Disabled: /is Disabled/,
  PendingDeletion: /is PendingDeletion and will be deleted on 2026-12-05T10:00:00Z/,
  PendingImport: /is PendingImport/,
  NotFound: /was not found/,
  NoPermission: /permission .* was denied \(Forbidden\.NoPermission\)/,
  MaterialExpired: /imported key material .* expired on 2026-11-27T00:00:00Z/,
};

/** The remedy each denial must name. */
const REMEDY_WORDS: Record<(typeof UNUSABLE_REASONS)[number], RegExp> = {
  Disabled: /Enable the key in KMS \(EnableKey\)/,
  PendingDeletion: /Cancel the deletion in KMS \(CancelKeyDeletion\)/,
  PendingImport: /Import the key material in KMS \(GetParametersForImport, ImportKeyMaterial\)/,
  NotFound: /Check the key id and region .*\(--kms-key-id, --kms-region\)/,
  NoPermission: /Grant the cluster's RAM role kms:Encrypt, kms:Decrypt and kms:DescribeKey/,
  MaterialExpired: /Re-import the key material in KMS \(ImportKeyMaterial\)/,
};

t.test('every reason has every text', async (t) => {
  t.same(
    [...UNUSABLE_REASONS, ...UNKNOWN_REASONS].sort(),
    [
      'Disabled',
      'MaterialExpired',
      'NeverFetched',
      'NoPermission',
      'NotFound',
      'PendingDeletion',
      'PendingImport',
      'Stale',
    ],
    'the reasons of the key model',
  );
  for (const reason of UNUSABLE_REASONS) {
    const wording = UNUSABLE_WORDING[reason];
    t.match(wording.problem, /\S/, `${reason}: a problem`);
    t.match(wording.remedy, /\S/, `${reason}: a remedy`);
    t.match(wording.explanation(KEY_ID), KEY_ID, `${reason}: the explanation names the key`);
    t.match(wording.denial(KEY_ID, {}), KEY_ID, `${reason}: the denial names the key`);
    t.ok(isUnusableReason(reason), `${reason}: is an unusable reason`);
  }
  for (const reason of UNKNOWN_REASONS) {
    t.match(UNKNOWN_WORDING[reason].explanation(KEY_ID), KEY_ID, `${reason}: explanation`);
    t.match(UNKNOWN_WORDING[reason].explanation(KEY_ID), /unknown/, `${reason}: says unknown`);
    t.match(UNKNOWN_WORDING[reason].detail(600), /\S/, `${reason}: a detail`);
    t.notOk(isUnusableReason(reason), `${reason}: is not an unusable reason`);
  }
  t.equal(UNKNOWN_WORDING.Stale.detail(600.4), 'no KMS answer for 600s', 'Stale: how long');
  t.equal(UNKNOWN_WORDING.NeverFetched.detail(undefined), 'KMS has not answered yet', 'never');
  for (const reason of [...UNUSABLE_REASONS, ...UNKNOWN_REASONS]) {
    t.match(explainReason(reason, KEY_ID), KEY_ID, `${reason}: explainReason names the key`);
  }
});

t.test('a denial names the key id, its state, the consequence and the remedy', async (t) => {
  for (const reason of UNUSABLE_REASONS) {
    const message = denialMessage(reason, KEY_ID, {
      deleteDate: DELETE_DATE,
      materialExpireTime: EXPIRY,
    });
    t.match(message, /^Secret writes are blocked: /, `${reason}: says what happened`);
    t.match(message, KEY_ID, `${reason}: the key id`);
    t.match(message, STATE_WORDS[reason], `${reason}: the state`);
    t.match(
      message,
      /cannot encrypt this Secret|lost for good/,
      `${reason}: the consequence for Secrets`,
    );
    t.match(message, REMEDY_WORDS[reason], `${reason}: the remedy`);
    t.match(message, /and retry\.$/, `${reason}: ends with what to do`);
  }
  t.notMatch(
    denialMessage('PendingDeletion', KEY_ID, {}),
    /will be deleted on/,
    'no deletion date: none is invented',
  );
  const unknown = unknownDenialMessage(KEY_ID, 'KMS has not answered yet');
  t.match(unknown, /state of KMS key .* is unknown \(KMS has not answered yet\)/, 'unknown: state');
  t.match(unknown, /--on-unknown deny/, 'unknown: names the setting');
  t.match(unknown, /GET \/healthz\/kms/, 'unknown: where to look');
});

t.test('/validate denies with the vocabulary words', async (t) => {
  const request = fixture('secret-update').request;
  for (const reason of UNUSABLE_REASONS) {
    const snapshot = unusableSnapshot(reason);
    const decision = decideValidation(request, snapshot, { mode: 'enforce', onUnknown: 'allow' });
    t.equal(
      decision.status?.message,
      denialMessage(reason, snapshot.key?.keyId ?? snapshot.configuredKeyId, snapshot.key ?? {}),
      `${reason}: the denial is the vocabulary's`,
    );
    const warned = decideValidation(request, snapshot, { mode: 'warn', onUnknown: 'allow' });
    t.same(
      warned.warnings,
      [WARNINGS.wouldDeny(snapshot.key?.keyId ?? snapshot.configuredKeyId, reason)],
      `${reason}: the warn-mode warning is the vocabulary's`,
    );
  }
});

t.test('warnings stay under 120 characters with long key ids and ARNs', async (t) => {
  for (const keyId of [KEY_ID, LONG_ARN, LONG_ID]) {
    const warnings = [
      ...UNUSABLE_REASONS.map((reason) => WARNINGS.wouldDeny(keyId, reason)),
      WARNINGS.stateUnknown(keyId, 'no KMS answer for 86400s', true),
      WARNINGS.stateUnknown(keyId, 'KMS has not answered yet', false),
      WARNINGS.deletionScheduled(keyId, DELETE_DATE),
      WARNINGS.materialExpiring(keyId, EXPIRY),
      WARNINGS.lookupsFailing(keyId, 86_400_000),
    ];
    for (const warning of warnings) {
      t.ok(warning.length < 120, `${warning.length} characters: ${warning}`);
    }
    if (keyId === KEY_ID) {
      t.ok(
        warnings.every((warning) => warning.includes(KEY_ID)),
        'a short key id is kept whole',
      );
    } else {
      t.ok(
        warnings.every((warning) => warning.includes('…')),
        'a long key id is shortened',
      );
    }
    UNUSABLE_REASONS.forEach((reason, index) => {
      t.ok(
        warnings[index]?.endsWith(`; ${UNUSABLE_WORDING[reason].remedy}.`),
        `${reason}: the remedy is kept whole`,
      );
    });
    t.match(warnings.at(-1), /KMS lookups are failing$/, 'lookups failing: advice kept');
    t.match(warnings.at(-2), /reimport it$/, 'material expiring: advice kept');
    t.match(warnings.at(-3), /cancel it$/, 'deletion scheduled: advice kept');
  }
});

t.test('property: fitWarning never exceeds the limit and keeps the advice', async (t) => {
  fc.assert(
    fc.property(fc.string({ maxLength: 2048 }), (keyId) => {
      const fitted = fitWarning(keyId, (id) => `KMS key ${id} is Disabled; run EnableKey.`);
      return fitted.length <= MAX_WARNING_LENGTH && fitted.endsWith('; run EnableKey.');
    }),
  );
  t.pass('held for generated key ids');
  t.equal(MAX_WARNING_LENGTH, 119, 'the limit: shorter than 120 characters');
});
