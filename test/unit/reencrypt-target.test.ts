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

t.test('an Enabled key yields the target version and rotation time', async (t) => {
  const target = targetFromKeyMetadata(enabled);
  t.equal(target.keyId, 'key-1', 'resolved key id');
  t.equal(target.primaryKeyVersion, 'v2', 'primary version');
  t.equal(target.rotationTime.toISOString(), '2026-11-28T09:00:00.000Z', 'LastRotationDate');
  const never = targetFromKeyMetadata({ ...enabled, lastRotationDate: undefined });
  t.equal(
    never.rotationTime.toISOString(),
    '2026-01-01T00:00:00.000Z',
    'CreationDate when never rotated',
  );
});

t.test('a key that is not Enabled is refused with the reason and the fix', async (t) => {
  t.throws(
    () => targetFromKeyMetadata({ ...enabled, keyState: 'Disabled' }),
    { name: 'KeyNotUsableError', message: /key-1 is Disabled, not Enabled.*Enable the key/ },
    'Disabled',
  );
  t.throws(
    () =>
      targetFromKeyMetadata({
        ...enabled,
        keyState: 'PendingDeletion',
        deleteDate: '2026-12-05T00:00:00Z',
      }),
    { message: /PendingDeletion \(deletion on 2026-12-05T00:00:00Z\)/ },
    'PendingDeletion names the date',
  );
  t.throws(
    () => targetFromKeyMetadata({ ...enabled, primaryKeyVersion: undefined }),
    KeyNotUsableError,
    'no primary version',
  );
  t.throws(
    () => targetFromKeyMetadata({ ...enabled, lastRotationDate: 'bogus' }),
    KeyNotUsableError,
    'unreadable rotation time',
  );
});
