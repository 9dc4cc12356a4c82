import t from 'tap';
import { KeyStore } from '../../src/emulator/store.js';
import { EmulatedKms, rotationInterval, isoDate } from '../../src/emulator/actions.js';
import { decryptBlob, encryptBlob, newKeyMaterial, parseBlob } from '../../src/emulator/crypto.js';
import { KmsApiError } from '../../src/emulator/errors.js';
import { FaultState, parseFaultSettings } from '../../src/emulator/faults.js';
import { isLoopback } from '../../src/emulator/http.js';

const DAY = 86_400_000;
const start = Date.parse('2026-11-28T09:00:00Z');

function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (error) {
    return error instanceof KmsApiError ? `${error.code} ${error.httpStatus}` : String(error);
  }
}

t.test('ciphertext blobs', async (t) => {
  const material = newKeyMaterial();
  const aad = Buffer.from('ctx');
  const blob = encryptBlob({ keyId: 'k', versionId: 'v' }, material, Buffer.from('hello'), aad);
  const parsed = parseBlob(blob);
  t.match(parsed, { keyId: 'k', versionId: 'v' }, 'the header names key and version');
  t.equal(parsed && decryptBlob(parsed, material, aad)?.toString(), 'hello', 'decrypts');
  t.equal(parsed && decryptBlob(parsed, newKeyMaterial(), aad), undefined, 'other material fails');
  t.equal(parsed && decryptBlob(parsed, material, Buffer.from('x')), undefined, 'other AAD fails');
  t.equal(parseBlob(''), undefined, 'empty is not a blob');
  t.equal(parseBlob(Buffer.from([1, 200, 1]).toString('base64')), undefined, 'truncated header');
});

t.test('key lifecycle with a fake clock', async (t) => {
  let now = start;
  const store = new KeyStore(() => now);
  const api = new EmulatedKms(store, 'cn-hangzhou');
  const key = store.createKey({ keyId: 'k' });
  t.equal(key.state, 'Enabled', 'new keys are Enabled');
  store.scheduleDeletion(key, 7);
  t.equal(key.deleteDate, start + 7 * DAY, 'DeleteDate');
  t.equal(
    codeOf(() => {
      store.disable(key);
    }),
    'Rejected.UnexpectedState 409',
    'no DisableKey while pending',
  );
  t.equal(
    codeOf(() => {
      store.scheduleDeletion(key, 7);
    }),
    'Rejected.UnexpectedState 409',
    'no double schedule',
  );
  now = start + 7 * DAY - 1;
  t.ok(store.get('k'), 'still there just before DeleteDate');
  store.createAlias('alias/k', key);
  now = start + 7 * DAY;
  t.equal(store.get('k'), undefined, 'deleted at DeleteDate');
  t.same(store.listAliases(), [], 'its aliases go with it');
  t.equal(
    codeOf(() => store.resolve('alias/k', api.arnPrefix)),
    'Forbidden.AliasNotFound 404',
    'alias gone',
  );
});

t.test('automatic rotation catches up with one version', async (t) => {
  let now = start;
  const store = new KeyStore(() => now);
  const key = store.createKey({ automaticRotation: true, rotationIntervalSeconds: 7 * 86_400 });
  t.equal(store.nextRotationDate(key), start + 7 * DAY, 'next = creation + interval');
  now = start + 30 * DAY;
  store.get(key.keyId);
  t.equal(key.versions.length, 2, 'one new version even after several intervals');
  t.equal(store.lastRotationDate(key), start + 28 * DAY, 'dated at the latest due rotation');
  t.equal(store.nextRotationDate(key), start + 35 * DAY, 'next rotation moves on');
  store.disable(key);
  now = start + 100 * DAY;
  store.get(key.keyId);
  t.equal(key.versions.length, 2, 'a Disabled key does not rotate');
});

t.test('imported material expires back to PendingImport', async (t) => {
  let now = start;
  const store = new KeyStore(() => now);
  const key = store.createKey({ origin: 'EXTERNAL' });
  t.equal(key.state, 'PendingImport', 'EXTERNAL starts PendingImport');
  t.equal(
    codeOf(() => store.rotate(key)),
    'Rejected.UnexpectedState 409',
    'EXTERNAL keys do not rotate',
  );
  store.importMaterial(key, start + DAY);
  t.equal(key.state, 'Enabled', 'import enables');
  store.scheduleDeletion(key, 30);
  store.cancelDeletion(key);
  t.equal(key.state, 'Enabled', 'CancelKeyDeletion returns to Enabled');
  now = start + DAY;
  store.get(key.keyId);
  t.equal(key.state, 'PendingImport', 'expired material → PendingImport');
  store.scheduleDeletion(key, 7);
  store.cancelDeletion(key);
  t.equal(key.state, 'PendingImport', 'cancelling deletion of an expired key → PendingImport');
  const material = key.versions[0]?.material;
  store.importMaterial(key, null);
  t.equal(key.state, 'Enabled', 're-import enables again');
  t.equal(key.versions[0]?.material, material, 'with the same material (old ciphertext decrypts)');
  t.equal(
    codeOf(() => {
      store.importMaterial(store.createKey(), null);
    }),
    'Rejected.UnexpectedState 409',
    'only EXTERNAL keys import',
  );
});

t.test('rotation intervals and dates', async (t) => {
  t.equal(rotationInterval('2592000s'), 2_592_000, 'seconds');
  t.equal(rotationInterval('30d'), 2_592_000, 'days');
  t.equal(rotationInterval('168h'), 604_800, 'hours');
  for (const bad of ['6d', '366d', '30', 'monthly', '1.5d']) {
    t.equal(
      codeOf(() => rotationInterval(bad)),
      'InvalidParameter 400',
      `${bad} refused`,
    );
  }
  t.equal(
    isoDate(Date.parse('2026-11-28T09:00:00.999Z')),
    '2026-11-28T09:00:00Z',
    'no milliseconds',
  );
});

t.test('fault settings', async (t) => {
  const faults = new FaultState(() => 0.5);
  faults.apply(
    parseFaultSettings({
      failShare: 0.6,
      failCode: 'Rejected.Throttling',
      failActions: ['Encrypt'],
    }),
  );
  t.equal(
    faults.failureFor('Encrypt'),
    'Rejected.Throttling',
    'picked when the roll is under the share',
  );
  t.equal(faults.failureFor('Decrypt'), undefined, 'other actions untouched');
  faults.failShare(0.4, 'InternalFailure');
  t.equal(faults.failureFor('Encrypt'), undefined, 'not picked when the roll is over the share');
  faults.dropConnections(0.6);
  t.ok(faults.shouldDrop(), 'drops under the share');
  faults.reset();
  t.notOk(faults.shouldDrop(), 'reset clears drops');
  t.same(faults.describe().deniedAccessKeys, [], 'and denials');
  t.throws(() => parseFaultSettings([]), /expected a JSON object/, 'arrays refused');
  t.throws(
    () => parseFaultSettings({ latencyMs: '5' }),
    /latencyMs must be a number/,
    'types checked',
  );
  t.throws(
    () => parseFaultSettings({ failActions: [1] }),
    /failActions must be an array of strings/,
    'lists checked',
  );
  t.throws(
    () => {
      faults.setLatency(-1);
    },
    /latency must be >= 0/,
    'negative latency refused',
  );
});

t.test('loopback detection for the admin routes', async (t) => {
  for (const address of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) {
    t.ok(isLoopback(address), `${address} is loopback`);
  }
  for (const address of ['10.0.0.1', '::ffff:10.0.0.1', '0.0.0.0', undefined]) {
    t.notOk(isLoopback(address), `${String(address)} is not loopback`);
  }
});
