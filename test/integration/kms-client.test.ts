import t from 'tap';
import { createKmsClient, KmsError } from '../../src/kms/client.js';
import { Kms, sdkError, withEmulator } from '../helpers/emulator.js';
import { describeKeyVersion, listKeyVersions } from '../helpers/key-versions.js';
import { emulatorKmsSettings } from '../helpers/kms.js';

t.test('the real SDK against the emulator over loopback', async (t) => {
  const { emulator, sdk, keyId } = await withEmulator(t);
  const credential = {
    accessKeyId: emulator.accessKeyId,
    accessKeySecret: emulator.accessKeySecret,
  };
  const api = createKmsClient(emulatorKmsSettings(emulator, keyId), { credential });

  const meta = await api.describeKey(keyId);
  t.equal(meta.keyId, keyId, 'DescribeKey returns the KeyId');
  t.equal(meta.keyState, 'Enabled', 'seeded key is Enabled');
  t.ok(meta.primaryKeyVersion, 'has a primary key version');
  t.ok(meta.creationDate, 'has a creation date');
  t.ok(meta.requestId, 'has a request id');

  await sdk.createKeyVersion(new Kms.CreateKeyVersionRequest({ keyId }));
  const versions = await listKeyVersions(sdk, keyId);
  t.equal(versions.length, 2, 'ListKeyVersions sees both versions');
  const rotated = await api.describeKey(keyId);
  t.not(rotated.primaryKeyVersion, meta.primaryKeyVersion, 'rotation changes the primary version');
  t.ok(
    versions.some((version) => version.keyVersionId === rotated.primaryKeyVersion),
    'the primary version is listed',
  );
  const primary = await describeKeyVersion(sdk, keyId, rotated.primaryKeyVersion ?? '');
  t.equal(primary.keyVersionId, rotated.primaryKeyVersion, 'DescribeKeyVersion answers');

  await sdk.createAlias(new Kms.CreateAliasRequest({ keyId, aliasName: 'alias/k8s-secrets' }));
  t.equal(
    (await api.describeKey('alias/k8s-secrets')).keyId,
    keyId,
    'an alias resolves to the KeyId',
  );
  const arn = meta.arn ?? '';
  t.match(arn, /^acs:kms:/, 'the key has an ARN');
  t.equal((await api.describeKey(arn)).keyId, keyId, 'an ARN resolves to the KeyId');

  const missing = await sdkError(api.describeKey('key-does-not-exist'));
  t.ok(missing instanceof KmsError, 'errors are KmsError');
  const notFound = missing as unknown as KmsError;
  t.equal(notFound.code, 'Forbidden.KeyNotFound', 'code without the SDK suffix');
  t.equal(notFound.httpStatus, 404, 'HTTP status');
  t.ok(notFound.requestId, 'request id');
  t.equal(notFound.transient, false, 'not transient');
});

t.test('errors from the wire are normalized', async (t) => {
  const { emulator, keyId } = await withEmulator(t);
  const credential = {
    accessKeyId: emulator.accessKeyId,
    accessKeySecret: emulator.accessKeySecret,
  };
  const api = createKmsClient(emulatorKmsSettings(emulator, keyId), {
    credential,
    connectTimeoutMs: 300,
    readTimeoutMs: 300,
  });
  const table = [
    { fault: 'Rejected.Throttling', status: 429 },
    { fault: 'InternalFailure', status: 500 },
    { fault: 'ServiceUnavailableTemporary', status: 503 },
  ];
  for (const row of table) {
    emulator.faults.failShare(1, row.fault);
    const error = (await sdkError(api.describeKey(keyId))) as unknown as KmsError;
    t.equal(error.code, row.fault, `${row.fault}: code`);
    t.equal(error.httpStatus, row.status, `${row.fault}: status`);
    t.equal(error.transient, true, `${row.fault}: transient`);
  }
  emulator.faults.reset();

  emulator.faults.denyAccessKey(emulator.accessKeyId);
  const denied = (await sdkError(api.describeKey(keyId))) as unknown as KmsError;
  t.equal(denied.code, 'Forbidden.NoPermission', 'a denied access key: NoPermission');
  emulator.faults.reset();

  const wrongSecret = createKmsClient(emulatorKmsSettings(emulator, keyId), {
    credential: { accessKeyId: emulator.accessKeyId, accessKeySecret: 'wrong' },
  });
  const signature = (await sdkError(wrongSecret.describeKey(keyId))) as unknown as KmsError;
  t.equal(signature.code, 'SignatureDoesNotMatch', 'a wrong secret');

  // KMS quotes its string to sign, which holds the AccessKeyId and the STS token (RRSA).
  const stsToken = 'STS-CANARY-TOKEN+abc/def==';
  const wrongWithToken = createKmsClient(emulatorKmsSettings(emulator, keyId), {
    credential: {
      accessKeyId: emulator.accessKeyId,
      accessKeySecret: 'wrong',
      securityToken: stsToken,
    },
  });
  const leaked = (await sdkError(wrongWithToken.describeKey(keyId))) as unknown as KmsError;
  t.equal(leaked.code, 'SignatureDoesNotMatch', 'a wrong secret with an STS token');
  t.notMatch(leaked.message, /STS-CANARY/, 'the STS token is not in the message');
  t.notMatch(
    leaked.message,
    new RegExp(emulator.accessKeyId),
    'the AccessKeyId is not in the message',
  );

  emulator.faults.setLatency(2000);
  const slow = (await sdkError(api.describeKey(keyId))) as unknown as KmsError;
  t.equal(slow.code, 'Timeout', 'latency beyond the read timeout is a Timeout');
  t.equal(slow.transient, true, 'timeouts are transient');
  emulator.faults.reset();

  emulator.faults.dropConnections(1);
  const dropped = (await sdkError(api.describeKey(keyId))) as unknown as KmsError;
  t.equal(dropped.code, 'NetworkError', 'a dropped connection is a NetworkError');
  t.notMatch(dropped.message, /Signature|AccessKeyId/, 'no signed URL in the message');
  emulator.faults.reset();

  await emulator.close();
  const closed = (await sdkError(api.describeKey(keyId))) as unknown as KmsError;
  t.equal(closed.code, 'NetworkError', 'a closed endpoint is a NetworkError');
  t.equal(closed.transient, true, 'and transient');
});
