import t from 'tap';
import { unusableMessage } from '../../src/kms/vocabulary.js';
import { PluginError } from '../../src/plugin/errors.js';
import { formatKeyId } from '../../src/plugin/key-id.js';
import {
  checkCiphertext,
  checkKeyId,
  checkPlaintext,
  MAX_PLAINTEXT_BYTES,
} from '../../src/plugin/limits.js';
import {
  decideStatus as decideWithMemory,
  EMPTY_STATUS_MEMORY,
  rememberSnapshot,
  type StatusMemory,
} from '../../src/plugin/status.js';
import type { KeySnapshot, UnusableReason } from '../../src/kms/types.js';
import { KEY_ID } from '../helpers/kms.js';
import {
  keyFacts,
  NOW,
  unknownSnapshot,
  unusableSnapshot,
  usableSnapshot,
} from '../helpers/server.js';

const FIVE_MINUTES = 300_000;

/** Status of one snapshot seen on its own (what a fresh plugin answers). */
function decideStatus(snapshot: KeySnapshot, maxStalenessMs: number) {
  return decideWithMemory(
    snapshot,
    rememberSnapshot(EMPTY_STATUS_MEMORY, snapshot).memory,
    maxStalenessMs,
  );
}

/** Folds snapshots in order, as the monitor produces them. */
function remember(...snapshots: KeySnapshot[]): StatusMemory {
  return snapshots.reduce(
    (memory, snapshot) => rememberSnapshot(memory, snapshot).memory,
    EMPTY_STATUS_MEMORY,
  );
}

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
  'key_id: <KeyId>/<KeyVersionId>; Decrypt checks a stored key_id only for size',
  async (t) => {
    t.equal(formatKeyId('key-abc', 'ver-1'), 'key-abc/ver-1', 'formatted');
    for (const stored of [
      '',
      'key-abc/ver-1',
      'key-other',
      'alias/old',
      'acs:kms:cn-hangzhou:1:key/k',
    ]) {
      t.equal(checkKeyId(stored), undefined, `key_id "${stored}" is accepted (KMS decides)`);
    }
    t.equal(checkKeyId('k'.repeat(1024)), undefined, '1 KiB is accepted');
    const tooLong = checkKeyId('k'.repeat(1025));
    t.equal(tooLong?.code, 'INVALID_ARGUMENT', 'above 1 KiB is refused');
    t.match(tooLong?.message, /1025 bytes.*at most 1024/, 'the refusal says why');
  },
);

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

t.test(
  'Status: a key without PrimaryKeyVersion is a clear error, never "/undefined"',
  async (t) => {
    const snapshot = usableSnapshot({ key: keyFacts({ primaryKeyVersion: undefined }) });
    const error = statusError(() => decideStatus(snapshot, FIVE_MINUTES));
    t.equal(error.code, 'FAILED_PRECONDITION', 'FAILED_PRECONDITION');
    t.match(
      error.message,
      /without a PrimaryKeyVersion.*symmetric key/,
      'says what and what to do',
    );
    t.notMatch(error.message, /undefined/, 'no "undefined" in the message');

    // The alias now points at a key without versions: the old key's key_id is not reported.
    const before = usableSnapshot();
    const retargeted = usableSnapshot({
      key: keyFacts({ keyId: 'key-new', primaryKeyVersion: undefined }),
    });
    const moved = statusError(() =>
      decideWithMemory(retargeted, remember(before, retargeted), FIVE_MINUTES),
    );
    t.match(moved.message, /key-new: DescribeKey answered without/, 'names the new key');
  },
);

t.test('Status: the key_id never goes back to an older version', async (t) => {
  const v1 = usableSnapshot({
    key: keyFacts({ primaryKeyVersion: 'v1', rotationTime: new Date('2026-01-01T00:00:00Z') }),
  });
  const v2 = usableSnapshot({
    key: keyFacts({ primaryKeyVersion: 'v2', rotationTime: new Date('2026-06-01T00:00:00Z') }),
  });
  const keyIdAfter = (...snapshots: KeySnapshot[]): string => {
    const memory = remember(...snapshots);
    const last = snapshots.at(-1) ?? v1;
    return decideWithMemory(last, memory, FIVE_MINUTES).keyId;
  };
  t.equal(keyIdAfter(v1, v2), `${KEY_ID}/v2`, 'v1 → v2 moves on');
  t.equal(keyIdAfter(v1, v2, v1), `${KEY_ID}/v2`, 'v2 → v1 (an older snapshot) keeps v2');
  const ignored = rememberSnapshot(remember(v1, v2), v1);
  t.equal(ignored.ignoredOlder, 'v1', 'the older version is reported as ignored');

  // Without rotation times, a version once replaced is never reported again.
  const bare = (version: string) =>
    usableSnapshot({ key: keyFacts({ primaryKeyVersion: version, rotationTime: undefined }) });
  t.equal(
    keyIdAfter(bare('a'), bare('b'), bare('a')),
    `${KEY_ID}/b`,
    'a retired version stays retired',
  );
  t.equal(keyIdAfter(bare('a'), bare('b'), bare('c')), `${KEY_ID}/c`, 'a new version is followed');

  // An older version seen first (a lagging replica at start) is replaced by a newer one.
  t.equal(keyIdAfter(v2, v1, v2), `${KEY_ID}/v2`, 'older ignored, newer kept');

  // Another key (the alias was retargeted) is followed, whatever its rotation time.
  const other = usableSnapshot({
    key: keyFacts({
      keyId: 'key-other',
      primaryKeyVersion: 'o1',
      rotationTime: new Date('2025-01-01T00:00:00Z'),
    }),
  });
  t.equal(keyIdAfter(v2, other), 'key-other/o1', 'a retargeted alias is followed');
  t.ok(
    remember(...Array.from({ length: 100 }, (_, index) => bare(`v${index}`))).retired.length <= 32,
    'the retired versions are bounded',
  );
});

t.test('Status: unusable, then KMS unreachable past max staleness → still the error', async (t) => {
  for (const reason of ['NoPermission', 'NotFound', 'Disabled', 'MaterialExpired'] as const) {
    const unusable = {
      ...unusableSnapshot(reason),
      key: unusableSnapshot(reason).key ?? keyFacts(),
    };
    // What the monitor shows once stale: unknown, the old facts (Enabled for a verdict).
    const stale = {
      ...unknownSnapshot('Stale'),
      key: reason === 'NotFound' || reason === 'NoPermission' ? keyFacts() : unusable.key,
    };
    const memory = remember(usableSnapshot(), unusable, stale);
    const error = statusError(() => decideWithMemory(stale, memory, FIVE_MINUTES));
    t.match(error.message, /Last known state/, `${reason} then stale: the error stays`);
    t.equal(
      error.message.startsWith(unusableMessage(unusable, reason)),
      true,
      `${reason} then stale: the guard's message for ${reason}`,
    );
  }
  const recovered = remember(
    unusableSnapshot('NoPermission'),
    usableSnapshot(),
    unknownSnapshot('Stale'),
  );
  t.match(
    decideWithMemory(unknownSnapshot('Stale'), recovered, FIVE_MINUTES).healthz,
    /unknown/,
    'usable last, then stale: the last key_id with a non-ok healthz',
  );
  const expiredMeanwhile = usableSnapshot({
    status: 'unknown',
    reason: 'Stale',
    key: keyFacts({ materialExpireTime: new Date(NOW.getTime() - 1000), origin: 'EXTERNAL' }),
  });
  t.equal(
    statusError(() =>
      decideWithMemory(
        expiredMeanwhile,
        remember(usableSnapshot(), expiredMeanwhile),
        FIVE_MINUTES,
      ),
    ).code,
    'FAILED_PRECONDITION',
    'imported material that expired during the outage: an error',
  );
});
