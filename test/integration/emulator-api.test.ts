import t from 'tap';
import { Kms, sdkError, withEmulator } from '../helpers/emulator.js';

// Every KMS action the emulator implements, driven by the real @alicloud/kms20160120 SDK.

t.test('CreateKey, DescribeKey and ListKeys', async (t) => {
  const { emulator, sdk, keyId } = await withEmulator(t);
  const created = await sdk.createKey(new Kms.CreateKeyRequest({ description: 'secrets at rest' }));
  const meta = created.keyMetadata;
  t.match(meta.keyId, /^[0-9a-f-]{36}$/, 'CreateKey returns a generated key id');
  t.equal(meta.keyState, 'Enabled', 'a new key is Enabled');
  t.equal(meta.description, 'secrets at rest', 'description kept');
  t.equal(meta.keySpec, 'Aliyun_AES_256', 'default KeySpec');
  t.equal(meta.keyUsage, 'ENCRYPT/DECRYPT', 'default KeyUsage');
  t.equal(meta.origin, 'Aliyun_KMS', 'default Origin');
  t.equal(meta.protectionLevel, 'SOFTWARE', 'default ProtectionLevel');
  t.equal(meta.arn, `acs:kms:cn-hangzhou:1234567890123456:key/${meta.keyId}`, 'ARN format');
  t.match(meta.creationDate, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/, 'ISO-8601 UTC date');
  t.equal(meta.lastRotationDate, meta.creationDate, 'never rotated: LastRotationDate is creation');
  t.equal(meta.automaticRotation, 'Disabled', 'no automatic rotation by default');
  t.ok(meta.primaryKeyVersion, 'has a primary key version');
  t.notOk(meta.deleteDate, 'no DeleteDate while not pending deletion');

  const described = await sdk.describeKey(new Kms.DescribeKeyRequest({ keyId: meta.keyId }));
  t.same(described.keyMetadata, meta, 'DescribeKey returns the same metadata as CreateKey');
  t.ok(described.requestId, 'every answer carries a RequestId');

  const listed = await sdk.listKeys(new Kms.ListKeysRequest({}));
  t.equal(listed.totalCount, 2, 'seeded key + created key');
  t.same(
    listed.keys.key.map((k) => k.keyId),
    [keyId, meta.keyId],
    'Keys.Key[] lists both in creation order',
  );
  t.equal(
    listed.keys.key[0]?.keyArn,
    `acs:kms:cn-hangzhou:1234567890123456:key/${keyId}`,
    'KeyArn',
  );
  t.equal(emulator.requestCount('ListKeys'), 1, 'requestCount per action');
  t.equal(emulator.requestCount(), 3, 'requestCount in total');
});

t.test('ListKeys paginates like KMS', async (t) => {
  const { sdk } = await withEmulator(t, { keys: ['k1', 'k2', 'k3', 'k4', 'k5'] });
  const page2 = await sdk.listKeys(new Kms.ListKeysRequest({ pageNumber: 2, pageSize: 2 }));
  t.equal(page2.pageNumber, 2, 'PageNumber echoed');
  t.equal(page2.pageSize, 2, 'PageSize echoed');
  t.equal(page2.totalCount, 5, 'TotalCount counts all keys');
  t.same(
    page2.keys.key.map((k) => k.keyId),
    ['k3', 'k4'],
    'second page',
  );
  const defaults = await sdk.listKeys(new Kms.ListKeysRequest({}));
  t.equal(defaults.pageSize, 10, 'default PageSize 10');
  t.equal(defaults.pageNumber, 1, 'default PageNumber 1');
  const beyond = await sdk.listKeys(new Kms.ListKeysRequest({ pageNumber: 9, pageSize: 2 }));
  t.same(beyond.keys.key, [], 'a page past the end is empty');
  const error = await sdkError(sdk.listKeys(new Kms.ListKeysRequest({ pageSize: 101 })));
  t.equal(error.data?.Code, 'InvalidParameter', 'PageSize above 100 is refused');
});

t.test('EnableKey and DisableKey; crypto refused while Disabled', async (t) => {
  const { sdk, keyId } = await withEmulator(t);
  const { ciphertextBlob } = await sdk.encrypt(new Kms.EncryptRequest({ keyId, plaintext: 'hi' }));
  await sdk.disableKey(new Kms.DisableKeyRequest({ keyId }));
  const state = await sdk.describeKey(new Kms.DescribeKeyRequest({ keyId }));
  t.equal(state.keyMetadata.keyState, 'Disabled', 'DisableKey → Disabled');
  for (const [name, call] of [
    ['Encrypt', sdk.encrypt(new Kms.EncryptRequest({ keyId, plaintext: 'x' }))],
    ['Decrypt', sdk.decrypt(new Kms.DecryptRequest({ ciphertextBlob }))],
    ['GenerateDataKey', sdk.generateDataKey(new Kms.GenerateDataKeyRequest({ keyId }))],
  ] as const) {
    const error = await sdkError(call);
    t.equal(error.data?.Code, 'Rejected.Disabled', `${name} refused while Disabled`);
    t.equal(error.data?.HttpStatus, 409, `${name}: HTTP 409`);
  }
  await sdk.enableKey(new Kms.EnableKeyRequest({ keyId }));
  const back = await sdk.decrypt(new Kms.DecryptRequest({ ciphertextBlob }));
  t.equal(back.plaintext, 'hi', 'EnableKey → decrypts again');
});

t.test('ScheduleKeyDeletion and CancelKeyDeletion', async (t) => {
  let now = Date.now();
  const { sdk, keyId } = await withEmulator(t, { now: () => now, timestampClock: Date.now });
  const start = now;
  await sdk.scheduleKeyDeletion(
    new Kms.ScheduleKeyDeletionRequest({ keyId, pendingWindowInDays: 7 }),
  );
  const pending = await sdk.describeKey(new Kms.DescribeKeyRequest({ keyId }));
  t.equal(pending.keyMetadata.keyState, 'PendingDeletion', 'scheduled → PendingDeletion');
  t.equal(
    pending.keyMetadata.deleteDate,
    new Date(start + 7 * 86_400_000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    'DeleteDate = now + window',
  );
  const refused = await sdkError(sdk.encrypt(new Kms.EncryptRequest({ keyId, plaintext: 'x' })));
  t.equal(refused.data?.Code, 'Rejected.PendingDeletion', 'crypto refused while PendingDeletion');
  t.equal(refused.data?.HttpStatus, 409, 'HTTP 409');
  const enable = await sdkError(sdk.enableKey(new Kms.EnableKeyRequest({ keyId })));
  t.equal(enable.data?.Code, 'Rejected.UnexpectedState', 'EnableKey refused while PendingDeletion');

  await sdk.cancelKeyDeletion(new Kms.CancelKeyDeletionRequest({ keyId }));
  const cancelled = await sdk.describeKey(new Kms.DescribeKeyRequest({ keyId }));
  t.equal(
    cancelled.keyMetadata.keyState,
    'Enabled',
    'cancelled → Enabled (Alibaba Cloud KMS rule)',
  );
  t.notOk(cancelled.keyMetadata.deleteDate, 'DeleteDate cleared');
  const again = await sdkError(sdk.cancelKeyDeletion(new Kms.CancelKeyDeletionRequest({ keyId })));
  t.equal(again.data?.Code, 'Rejected.UnexpectedState', 'cancel without a pending deletion fails');

  for (const days of [6, 367]) {
    const error = await sdkError(
      sdk.scheduleKeyDeletion(
        new Kms.ScheduleKeyDeletionRequest({ keyId, pendingWindowInDays: days }),
      ),
    );
    t.equal(error.data?.Code, 'InvalidParameter', `PendingWindowInDays ${days} refused`);
  }
  const missing = await sdkError(
    sdk.scheduleKeyDeletion(new Kms.ScheduleKeyDeletionRequest({ keyId })),
  );
  t.equal(missing.data?.Code, 'MissingParameter', 'PendingWindowInDays is required');
  t.equal(missing.data?.HttpStatus, 400, 'MissingParameter is HTTP 400');

  await sdk.scheduleKeyDeletion(
    new Kms.ScheduleKeyDeletionRequest({ keyId, pendingWindowInDays: 7 }),
  );
  now += 7 * 86_400_000 + 1000;
  const gone = await sdkError(sdk.describeKey(new Kms.DescribeKeyRequest({ keyId })));
  t.equal(gone.data?.Code, 'Forbidden.KeyNotFound', 'after DeleteDate the key is deleted');
});

t.test(
  'CreateKeyVersion, ListKeyVersions, DescribeKeyVersion; old ciphertext still decrypts',
  async (t) => {
    const { sdk, keyId } = await withEmulator(t);
    const before = await sdk.describeKey(new Kms.DescribeKeyRequest({ keyId }));
    const old = await sdk.encrypt(new Kms.EncryptRequest({ keyId, plaintext: 'old secret' }));
    t.equal(
      old.keyVersionId,
      before.keyMetadata.primaryKeyVersion,
      'Encrypt uses the primary version',
    );

    const rotated = await sdk.createKeyVersion(new Kms.CreateKeyVersionRequest({ keyId }));
    t.equal(rotated.keyVersion.keyId, keyId, 'CreateKeyVersion names the key');
    t.not(rotated.keyVersion.keyVersionId, old.keyVersionId, 'a new version id');
    const after = await sdk.describeKey(new Kms.DescribeKeyRequest({ keyId }));
    t.equal(
      after.keyMetadata.primaryKeyVersion,
      rotated.keyVersion.keyVersionId,
      'new primary version',
    );
    t.equal(
      after.keyMetadata.lastRotationDate,
      rotated.keyVersion.creationDate,
      'LastRotationDate updated',
    );
    t.equal(after.keyMetadata.keyId, keyId, 'the key id stays the same');

    const fresh = await sdk.encrypt(new Kms.EncryptRequest({ keyId, plaintext: 'new secret' }));
    t.equal(
      fresh.keyVersionId,
      rotated.keyVersion.keyVersionId,
      'new ciphertext uses the new version',
    );
    const decryptedOld = await sdk.decrypt(
      new Kms.DecryptRequest({ ciphertextBlob: old.ciphertextBlob }),
    );
    t.equal(decryptedOld.plaintext, 'old secret', 'old-version ciphertext decrypts after rotation');
    t.equal(decryptedOld.keyVersionId, old.keyVersionId, 'Decrypt reports the old version');

    const versions = await sdk.listKeyVersions(new Kms.ListKeyVersionsRequest({ keyId }));
    t.equal(versions.totalCount, 2, 'two versions');
    t.same(
      versions.keyVersions.keyVersion.map((v) => v.keyVersionId),
      [old.keyVersionId, rotated.keyVersion.keyVersionId],
      'KeyVersions.KeyVersion[] oldest first',
    );
    const page = await sdk.listKeyVersions(
      new Kms.ListKeyVersionsRequest({ keyId, pageNumber: 2, pageSize: 1 }),
    );
    t.same(
      page.keyVersions.keyVersion.map((v) => v.keyVersionId),
      [rotated.keyVersion.keyVersionId],
      'ListKeyVersions paginates',
    );

    const described = await sdk.describeKeyVersion(
      new Kms.DescribeKeyVersionRequest({ keyId, keyVersionId: old.keyVersionId }),
    );
    t.equal(described.keyVersion.keyVersionId, old.keyVersionId, 'DescribeKeyVersion');
    t.match(described.keyVersion.creationDate, /Z$/, 'version CreationDate in UTC');
    const unknown = await sdkError(
      sdk.describeKeyVersion(new Kms.DescribeKeyVersionRequest({ keyId, keyVersionId: 'nope' })),
    );
    t.equal(unknown.data?.HttpStatus, 404, 'unknown key version → 404');
  },
);

t.test('UpdateRotationPolicy; automatic rotation happens when due', async (t) => {
  let now = Date.now();
  const { sdk, keyId } = await withEmulator(t, { now: () => now, timestampClock: Date.now });
  await sdk.updateRotationPolicy(
    new Kms.UpdateRotationPolicyRequest({
      keyId,
      enableAutomaticRotation: true,
      rotationInterval: '2592000s',
    }),
  );
  const enabled = await sdk.describeKey(new Kms.DescribeKeyRequest({ keyId }));
  t.equal(enabled.keyMetadata.automaticRotation, 'Enabled', 'AutomaticRotation Enabled');
  t.equal(enabled.keyMetadata.rotationInterval, '2592000s', 'RotationInterval in seconds');
  const next = Date.parse(enabled.keyMetadata.lastRotationDate) + 2_592_000_000;
  t.equal(
    Date.parse(enabled.keyMetadata.nextRotationDate),
    next,
    'NextRotationDate = last + interval',
  );

  now = next + 1000;
  const after = await sdk.describeKey(new Kms.DescribeKeyRequest({ keyId }));
  t.not(
    after.keyMetadata.primaryKeyVersion,
    enabled.keyMetadata.primaryKeyVersion,
    'once NextRotationDate passed, a new primary version exists',
  );
  t.equal(
    Date.parse(after.keyMetadata.lastRotationDate),
    Math.floor(next / 1000) * 1000,
    'LastRotationDate is the rotation that fell due',
  );
  const old = await sdk.listKeyVersions(new Kms.ListKeyVersionsRequest({ keyId }));
  t.equal(old.totalCount, 2, 'the old version is kept');

  await sdk.updateRotationPolicy(
    new Kms.UpdateRotationPolicyRequest({ keyId, enableAutomaticRotation: false }),
  );
  const disabled = await sdk.describeKey(new Kms.DescribeKeyRequest({ keyId }));
  t.equal(disabled.keyMetadata.automaticRotation, 'Disabled', 'AutomaticRotation Disabled');
  t.notOk(disabled.keyMetadata.nextRotationDate, 'no NextRotationDate without rotation');
  const bad = await sdkError(
    sdk.updateRotationPolicy(
      new Kms.UpdateRotationPolicyRequest({
        keyId,
        enableAutomaticRotation: true,
        rotationInterval: '1d',
      }),
    ),
  );
  t.equal(bad.data?.Code, 'InvalidParameter', 'an interval under 7 days is refused');
});

t.test('CreateAlias and ListAliases; alias and ARN accepted wherever a KeyId is', async (t) => {
  const { sdk, keyId } = await withEmulator(t, { regionId: 'cn-shanghai' });
  await sdk.createAlias(new Kms.CreateAliasRequest({ keyId, aliasName: 'alias/cluster-secrets' }));
  const aliases = await sdk.listAliases(new Kms.ListAliasesRequest({}));
  t.equal(aliases.totalCount, 1, 'one alias');
  t.same(
    aliases.aliases.alias[0],
    {
      keyId,
      aliasName: 'alias/cluster-secrets',
      aliasArn: 'acs:kms:cn-shanghai:1234567890123456:alias/cluster-secrets',
    },
    'Aliases.Alias[] entry',
  );
  const refs = [
    'alias/cluster-secrets',
    `acs:kms:cn-shanghai:1234567890123456:key/${keyId}`,
    'acs:kms:cn-shanghai:1234567890123456:alias/cluster-secrets',
  ];
  for (const ref of refs) {
    const d = await sdk.describeKey(new Kms.DescribeKeyRequest({ keyId: ref }));
    t.equal(d.keyMetadata.keyId, keyId, `DescribeKey resolves ${ref} to the key id`);
    const e = await sdk.encrypt(new Kms.EncryptRequest({ keyId: ref, plaintext: 'p' }));
    t.equal(e.keyId, keyId, `Encrypt via ${ref} reports the key id`);
  }
  await sdk.disableKey(new Kms.DisableKeyRequest({ keyId: 'alias/cluster-secrets' }));
  const state = await sdk.describeKey(new Kms.DescribeKeyRequest({ keyId }));
  t.equal(state.keyMetadata.keyState, 'Disabled', 'DisableKey via alias');

  const duplicate = await sdkError(
    sdk.createAlias(new Kms.CreateAliasRequest({ keyId, aliasName: 'alias/cluster-secrets' })),
  );
  t.equal(duplicate.data?.Code, 'Rejected.AlreadyExists', 'an alias name is unique');
  const badName = await sdkError(
    sdk.createAlias(new Kms.CreateAliasRequest({ keyId, aliasName: 'nope' })),
  );
  t.equal(badName.data?.Code, 'InvalidParameter', 'alias names start with alias/');
  const missingAlias = await sdkError(
    sdk.describeKey(new Kms.DescribeKeyRequest({ keyId: 'alias/none' })),
  );
  t.equal(missingAlias.data?.Code, 'Forbidden.AliasNotFound', 'unknown alias');
  t.equal(missingAlias.data?.HttpStatus, 404, 'unknown alias is HTTP 404');
  const otherRegion = await sdkError(
    sdk.describeKey(
      new Kms.DescribeKeyRequest({ keyId: `acs:kms:cn-hangzhou:1234567890123456:key/${keyId}` }),
    ),
  );
  t.equal(otherRegion.data?.Code, 'Forbidden.KeyNotFound', 'an ARN of another region is not found');
});

t.test('Encrypt, Decrypt and GenerateDataKey with real AES-GCM', async (t) => {
  const { sdk, keyId } = await withEmulator(t);
  const plaintext = 'ünïcode ✓ data key material';
  const enc = await sdk.encrypt(new Kms.EncryptRequest({ keyId, plaintext }));
  t.not(enc.ciphertextBlob, plaintext, 'ciphertext differs from plaintext');
  t.notMatch(
    Buffer.from(enc.ciphertextBlob, 'base64').toString('utf8'),
    /data key material/,
    'not readable',
  );
  const again = await sdk.encrypt(new Kms.EncryptRequest({ keyId, plaintext }));
  t.not(again.ciphertextBlob, enc.ciphertextBlob, 'random IV: same plaintext, different blob');
  const dec = await sdk.decrypt(new Kms.DecryptRequest({ ciphertextBlob: enc.ciphertextBlob }));
  t.equal(dec.plaintext, plaintext, 'round trip');
  t.equal(dec.keyId, keyId, 'Decrypt names the key');

  const bytes = Buffer.from(enc.ciphertextBlob, 'base64');
  bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 1;
  const tampered = await sdkError(
    sdk.decrypt(new Kms.DecryptRequest({ ciphertextBlob: bytes.toString('base64') })),
  );
  t.equal(tampered.data?.Code, 'InvalidParameter', 'a tampered blob does not decrypt');
  const garbage = await sdkError(
    sdk.decrypt(new Kms.DecryptRequest({ ciphertextBlob: 'bm9wZQ==' })),
  );
  t.equal(garbage.data?.Code, 'InvalidParameter', 'a foreign blob is refused');

  const withContext = await sdk.encrypt(
    new Kms.EncryptRequest({
      keyId,
      plaintext: 'ctx',
      encryptionContext: { cluster: 'prod', ns: 'a' },
    }),
  );
  const good = await sdk.decrypt(
    new Kms.DecryptRequest({
      ciphertextBlob: withContext.ciphertextBlob,
      encryptionContext: { ns: 'a', cluster: 'prod' },
    }),
  );
  t.equal(good.plaintext, 'ctx', 'same EncryptionContext (any order) decrypts');
  const wrong = await sdkError(
    sdk.decrypt(
      new Kms.DecryptRequest({
        ciphertextBlob: withContext.ciphertextBlob,
        encryptionContext: { ns: 'b' },
      }),
    ),
  );
  t.equal(wrong.data?.Code, 'InvalidParameter', 'a different EncryptionContext fails');

  const dataKey = await sdk.generateDataKey(new Kms.GenerateDataKeyRequest({ keyId }));
  t.equal(Buffer.from(dataKey.plaintext, 'base64').length, 32, 'AES_256 data key by default');
  t.equal(dataKey.keyId, keyId, 'GenerateDataKey names the key');
  t.ok(dataKey.keyVersionId, 'and the version');
  const unwrapped = await sdk.decrypt(
    new Kms.DecryptRequest({ ciphertextBlob: dataKey.ciphertextBlob }),
  );
  t.equal(unwrapped.plaintext, dataKey.plaintext, 'the data key blob decrypts to the data key');
  const short = await sdk.generateDataKey(
    new Kms.GenerateDataKeyRequest({ keyId, numberOfBytes: 16 }),
  );
  t.equal(Buffer.from(short.plaintext, 'base64').length, 16, 'NumberOfBytes honoured');

  const missing = await sdkError(sdk.encrypt(new Kms.EncryptRequest({ keyId })));
  t.equal(missing.data?.Code, 'MissingParameter', 'Plaintext is required');
  const unknown = await sdkError(
    sdk.encrypt(new Kms.EncryptRequest({ keyId: 'no-such-key', plaintext: 'x' })),
  );
  t.equal(unknown.data?.Code, 'Forbidden.KeyNotFound', 'unknown key');
  t.equal(unknown.data?.HttpStatus, 404, 'unknown key is HTTP 404');
});

t.test('Origin=EXTERNAL keys wait in PendingImport', async (t) => {
  const { emulator, sdk } = await withEmulator(t);
  const created = await sdk.createKey(new Kms.CreateKeyRequest({ origin: 'EXTERNAL' }));
  const keyId = created.keyMetadata.keyId;
  t.equal(created.keyMetadata.keyState, 'PendingImport', 'EXTERNAL → PendingImport');
  t.equal(created.keyMetadata.origin, 'EXTERNAL', 'Origin EXTERNAL');
  const refused = await sdkError(sdk.encrypt(new Kms.EncryptRequest({ keyId, plaintext: 'x' })));
  t.equal(refused.data?.Code, 'Rejected.PendingImport', 'crypto refused while PendingImport');
  t.equal(refused.data?.HttpStatus, 409, 'HTTP 409');

  const expireTime = Date.now() + 3 * 86_400_000;
  emulator.importKeyMaterial(keyId, { expireTime });
  const imported = await sdk.describeKey(new Kms.DescribeKeyRequest({ keyId }));
  t.equal(imported.keyMetadata.keyState, 'Enabled', 'imported material → Enabled');
  t.equal(
    imported.keyMetadata.materialExpireTime,
    new Date(expireTime).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    'MaterialExpireTime reported',
  );
  const ok = await sdk.encrypt(new Kms.EncryptRequest({ keyId, plaintext: 'x' }));
  t.equal(ok.keyId, keyId, 'usable after import');
});

t.test('expired imported material puts the key back into PendingImport', async (t) => {
  let now = Date.now();
  const { emulator, sdk } = await withEmulator(t, { now: () => now, timestampClock: Date.now });
  const created = await sdk.createKey(new Kms.CreateKeyRequest({ origin: 'EXTERNAL' }));
  const keyId = created.keyMetadata.keyId;
  emulator.importKeyMaterial(keyId, { expireTime: now + 86_400_000 });
  const blob = (await sdk.encrypt(new Kms.EncryptRequest({ keyId, plaintext: 'x' })))
    .ciphertextBlob;
  now += 86_400_000;
  const expired = await sdk.describeKey(new Kms.DescribeKeyRequest({ keyId }));
  t.equal(
    expired.keyMetadata.keyState,
    'PendingImport',
    'MaterialExpireTime passed → PendingImport',
  );
  const refused = await sdkError(sdk.decrypt(new Kms.DecryptRequest({ ciphertextBlob: blob })));
  t.equal(refused.data?.Code, 'Rejected.PendingImport', 'Decrypt refused until material returns');
  emulator.importKeyMaterial(keyId);
  const back = await sdk.decrypt(new Kms.DecryptRequest({ ciphertextBlob: blob }));
  t.equal(back.plaintext, 'x', 're-imported material decrypts the old ciphertext');
});
