import t from 'tap';
import { unusableMessage } from '../../src/kms/vocabulary.js';
import { PluginError } from '../../src/plugin/errors.js';
import { formatKeyId, matchKeyId, parseKeyId } from '../../src/plugin/key-id.js';
import { checkCiphertext, checkPlaintext, MAX_PLAINTEXT_BYTES } from '../../src/plugin/limits.js';
import { decideStatus } from '../../src/plugin/status.js';
import type { UnusableReason } from '../../src/kms/types.js';
import { KEY_ID } from '../helpers/kms.js';
import { keyFacts, unknownSnapshot, unusableSnapshot, usableSnapshot } from '../helpers/server.js';

const FIVE_MINUTES = 300_000;

function statusError(run: () => unknown): PluginError {
  try {
    run();
  } catch (error) {
    if (error instanceof PluginError) return error;
    throw error;
  }
  throw new Error('expected a PluginError');
}

t.test(
  'key_id: <KeyId>/<KeyVersionId>, parsed back; bare ids, aliases and ARNs stay whole',
  async (t) => {
    t.equal(formatKeyId('key-abc', 'ver-1'), 'key-abc/ver-1', 'formatted');
    t.same(parseKeyId('key-abc/ver-1'), { keyId: 'key-abc', keyVersionId: 'ver-1' }, 'parsed');
    t.same(
      parseKeyId('key-abc'),
      { keyId: 'key-abc', keyVersionId: undefined },
      'bare id (ack-kms-plugin)',
    );
    t.same(
      parseKeyId('alias/secrets'),
      { keyId: 'alias/secrets', keyVersionId: undefined },
      'alias',
    );
    const arn = 'acs:kms:cn-hangzhou:123:key/key-abc';
    t.same(parseKeyId(arn), { keyId: arn, keyVersionId: undefined }, 'ARN');
  },
);

t.test('key_id ownership', async (t) => {
  t.equal(matchKeyId('key-abc/ver-1', 'key-abc', undefined), 'ours', 'same key id, a version');
  t.equal(matchKeyId('key-abc', 'alias/secrets', 'key-abc'), 'ours', 'bare resolved id');
  t.equal(matchKeyId('alias/secrets', 'alias/secrets', 'key-abc'), 'ours', 'the configured alias');
  t.equal(
    matchKeyId('acs:kms:cn-hangzhou:123:key/key-abc', 'key-abc', 'key-abc'),
    'ours',
    'ARN of the key',
  );
  t.equal(matchKeyId('key-other/ver-1', 'key-abc', 'key-abc'), 'other', 'another key id');
  t.equal(
    matchKeyId('alias/other', 'key-abc', 'key-abc'),
    'undecided',
    'another alias: KMS decides',
  );
  t.equal(
    matchKeyId('key-other/v', 'alias/secrets', undefined),
    'undecided',
    'alias not yet resolved',
  );
});

t.test('Status per key state', async (t) => {
  const usable = decideStatus(usableSnapshot(), FIVE_MINUTES);
  const facts = keyFacts();
  t.same(
    usable,
    { version: 'v2', healthz: 'ok', keyId: `${facts.keyId}/${facts.primaryKeyVersion ?? ''}` },
    'usable: ok',
  );

  for (const reason of [
    'Disabled',
    'PendingDeletion',
    'PendingImport',
    'NotFound',
    'NoPermission',
    'MaterialExpired',
  ] as UnusableReason[]) {
    const snapshot = unusableSnapshot(reason);
    const error = statusError(() => decideStatus(snapshot, FIVE_MINUTES));
    t.equal(
      error.message,
      unusableMessage(snapshot, reason),
      `${reason}: the guard's denial message`,
    );
  }

  const stale = decideStatus(unknownSnapshot('Stale'), FIVE_MINUTES);
  t.equal(stale.keyId, usable.keyId, 'stale: the last good key_id');
  t.not(stale.healthz, 'ok', 'stale: healthz is not ok');
  t.match(stale.healthz, /600s.*5m/, 'stale: says how long and the limit');

  const staleDisabled = unknownSnapshot('Stale');
  const disabledFacts = { ...staleDisabled, key: keyFacts({ keyState: 'Disabled' }) };
  const lastKnown = statusError(() => decideStatus(disabledFacts, FIVE_MINUTES));
  t.equal(lastKnown.code, 'FAILED_PRECONDITION', 'stale after Disabled: still an error');
  t.match(lastKnown.message, /is Disabled.*Last known state/, 'stale after Disabled: says so');

  const never = statusError(() => decideStatus(unknownSnapshot('NeverFetched'), FIVE_MINUTES));
  t.equal(never.code, 'UNAVAILABLE', 'never fetched: UNAVAILABLE');
  t.match(never.message, KEY_ID, 'never fetched: names the key');
  t.match(never.message, /Rejected\.Throttling/, 'never fetched: names the last error');
});

t.test('input limits', async (t) => {
  t.equal(checkPlaintext(Buffer.alloc(32)), undefined, 'a 32-byte seed is fine');
  t.equal(checkPlaintext(Buffer.alloc(MAX_PLAINTEXT_BYTES)), undefined, 'the limit itself is fine');
  t.equal(
    checkPlaintext(Buffer.alloc(MAX_PLAINTEXT_BYTES + 1))?.code,
    'INVALID_ARGUMENT',
    'one more byte is refused',
  );
  t.equal(checkCiphertext(Buffer.from('QUJD')), undefined, 'base64 text is fine');
  t.equal(
    checkCiphertext(Buffer.from('QUJ'))?.code,
    'INVALID_ARGUMENT',
    'truncated base64 is refused',
  );
  t.equal(checkCiphertext(Buffer.from('QU J'))?.code, 'INVALID_ARGUMENT', 'spaces are refused');
});
