import t from 'tap';
import type { KmsKeyMetadata } from '../../src/kms/client.js';
import { KeyNotUsableError, targetFromKeyMetadata } from '../../src/reencrypt/target.js';

const enabled: KmsKeyMetadata = {
  requestId: 'r',
  keyId: 'key-1',
  arn: undefined,
  keyState: 'Enabled',
  keySpec: 'Aliyun_AES_256',
  keyUsage: 'ENCRYPT/DECRYPT',
  origin: 'Aliyun_KMS',
  protectionLevel: 'SOFTWARE',
  creationDate: '2026-01-01T00:00:00Z',
  primaryKeyVersion: 'v2',
  lastRotationDate: '2026-11-28T09:00:00Z',
  nextRotationDate: undefined,
  automaticRotation: 'Disabled',
  rotationInterval: undefined,
  deleteDate: undefined,
  deletionProtection: undefined,
  materialExpireTime: undefined,
};

const now = Date.parse('2026-11-28T12:00:00Z');

t.test('an Enabled key yields the target version and rotation time', async (t) => {
  const target = targetFromKeyMetadata(enabled, now);
  t.equal(target.keyId, 'key-1', 'resolved key id');
  t.equal(target.primaryKeyVersion, 'v2', 'primary version');
  t.equal(target.rotationTime.toISOString(), '2026-11-28T09:00:00.000Z', 'LastRotationDate');
  const never = targetFromKeyMetadata({ ...enabled, lastRotationDate: undefined }, now);
  t.equal(
    never.rotationTime.toISOString(),
    '2026-01-01T00:00:00.000Z',
    'CreationDate when never rotated',
  );
  const future = targetFromKeyMetadata(
    { ...enabled, origin: 'EXTERNAL', materialExpireTime: '2027-01-01T00:00:00Z' },
    now,
  );
  t.equal(future.primaryKeyVersion, 'v2', 'imported material that has not expired is fine');
});

t.test('a key that is not usable is refused with the reason and the fix', async (t) => {
  t.throws(
    () => targetFromKeyMetadata({ ...enabled, keyState: 'Disabled' }, now),
    {
      name: 'KeyNotUsableError',
      message: /key-1 is Disabled.*enable the key \(EnableKey\).*Nothing was changed/,
    },
    'Disabled',
  );
  t.throws(
    () =>
      targetFromKeyMetadata(
        { ...enabled, keyState: 'PendingDeletion', deleteDate: '2026-12-05T00:00:00Z' },
        now,
      ),
    { message: /scheduled for deletion.*Deletion date: 2026-12-05T00:00:00Z/ },
    'PendingDeletion names the date',
  );
  t.throws(
    () => targetFromKeyMetadata({ ...enabled, keyState: 'PendingImport' }, now),
    { message: /key-1 is waiting for imported key material/ },
    'PendingImport',
  );
  t.throws(
    () => targetFromKeyMetadata({ ...enabled, primaryKeyVersion: undefined }, now),
    KeyNotUsableError,
    'no primary version',
  );
  t.throws(
    () =>
      targetFromKeyMetadata({ ...enabled, lastRotationDate: 'bogus', creationDate: 'bogus' }, now),
    KeyNotUsableError,
    'unreadable rotation time',
  );
});

t.test(
  'an Enabled key whose imported material has expired is refused, as the monitor does',
  async (t) => {
    const expired = {
      ...enabled,
      origin: 'EXTERNAL',
      materialExpireTime: '2026-11-28T11:59:59Z',
    };
    t.throws(
      () => targetFromKeyMetadata(expired, now),
      {
        name: 'KeyNotUsableError',
        message:
          /imported key material of KMS key key-1 has expired: import new key material.*Nothing was changed/,
      },
      'MaterialExpired is not a target',
    );
    t.throws(
      () => targetFromKeyMetadata({ ...expired, materialExpireTime: '2026-11-28T12:00:00Z' }, now),
      KeyNotUsableError,
      'material expiring exactly now counts as expired (same rule as classifyKey)',
    );
  },
);
