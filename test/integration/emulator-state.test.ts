import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { startEmulator } from '../../src/emulator/index.js';
import { Kms, sdkError, sdkFor } from '../helpers/emulator.js';

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'kms-emulator-'));
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

const accessKeys = [{ id: 'LTAIstate', secret: 'state-secret' }];

t.test('--state persists keys, versions, material and aliases across a restart', async (t) => {
  const statePath = join(tempDir(t), 'kms.json');
  const first = await startEmulator({ statePath, keys: ['key-a'], accessKeys });
  t.teardown(() => first.close());
  const sdk1 = sdkFor(first);
  const oldBlob = (
    await sdk1.encrypt(new Kms.EncryptRequest({ keyId: 'key-a', plaintext: 'v1 secret' }))
  ).ciphertextBlob;
  const rotated = await sdk1.createKeyVersion(new Kms.CreateKeyVersionRequest({ keyId: 'key-a' }));
  await sdk1.createAlias(new Kms.CreateAliasRequest({ keyId: 'key-a', aliasName: 'alias/kept' }));
  const created = await sdk1.createKey(new Kms.CreateKeyRequest({ description: 'second' }));
  await sdk1.disableKey(new Kms.DisableKeyRequest({ keyId: created.keyMetadata.keyId }));
  await first.close();

  t.ok(existsSync(statePath), 'state file written');
  t.equal(statSync(statePath).mode & 0o777, 0o600, 'state file is private (it holds key material)');
  t.same(readdirSync(join(statePath, '..')), ['kms.json'], 'no temp file left behind');

  const second = await startEmulator({ statePath, keys: ['key-a'], accessKeys });
  t.teardown(() => second.close());
  const sdk2 = sdkFor(second);
  const decrypted = await sdk2.decrypt(new Kms.DecryptRequest({ ciphertextBlob: oldBlob }));
  t.equal(decrypted.plaintext, 'v1 secret', 'old-version ciphertext decrypts after restart');
  const described = await sdk2.describeKey(new Kms.DescribeKeyRequest({ keyId: 'alias/kept' }));
  t.equal(described.keyMetadata.keyId, 'key-a', 'alias survived');
  t.equal(
    described.keyMetadata.primaryKeyVersion,
    rotated.keyVersion.keyVersionId,
    'primary version survived (seeding an existing id keeps it)',
  );
  const other = await sdk2.describeKey(
    new Kms.DescribeKeyRequest({ keyId: created.keyMetadata.keyId }),
  );
  t.equal(other.keyMetadata.keyState, 'Disabled', 'key state survived');
  t.equal(other.keyMetadata.description, 'second', 'description survived');
  const versions = await sdk2.listKeyVersions(new Kms.ListKeyVersionsRequest({ keyId: 'key-a' }));
  t.equal(versions.totalCount, 2, 'both versions survived');
});

t.test('versions made by a due automatic rotation are saved before they encrypt', async (t) => {
  const statePath = join(tempDir(t), 'kms.json');
  let now = Date.now();
  const clocks = { now: () => now, timestampClock: Date.now };
  const first = await startEmulator({ statePath, keys: ['rot'], accessKeys, ...clocks });
  t.teardown(() => first.close());
  const sdk1 = sdkFor(first);
  await sdk1.updateRotationPolicy(
    new Kms.UpdateRotationPolicyRequest({
      keyId: 'rot',
      enableAutomaticRotation: true,
      rotationInterval: '7d',
    }),
  );
  now += 8 * 86_400_000;
  const encrypted = await sdk1.encrypt(
    new Kms.EncryptRequest({ keyId: 'rot', plaintext: 'after' }),
  );
  await first.close();

  const second = await startEmulator({ statePath, accessKeys, ...clocks });
  t.teardown(() => second.close());
  const sdk2 = sdkFor(second);
  const back = await sdk2.decrypt(
    new Kms.DecryptRequest({ ciphertextBlob: encrypted.ciphertextBlob }),
  );
  t.equal(back.plaintext, 'after', 'ciphertext of the auto-rotated version decrypts after restart');
  t.equal(back.keyVersionId, encrypted.keyVersionId, 'same version');
});

t.test('without statePath nothing is kept', async (t) => {
  const first = await startEmulator({ keys: ['key-a'], accessKeys });
  const blob = (
    await sdkFor(first).encrypt(new Kms.EncryptRequest({ keyId: 'key-a', plaintext: 'x' }))
  ).ciphertextBlob;
  await first.close();
  const second = await startEmulator({ keys: ['key-a'], accessKeys });
  t.teardown(() => second.close());
  const error = await sdkError(
    sdkFor(second).decrypt(new Kms.DecryptRequest({ ciphertextBlob: blob })),
  );
  t.equal(
    error.data?.Code,
    'InvalidParameter',
    'new random material cannot decrypt old ciphertext',
  );
});

t.test('a corrupt state file stops start-up with its path', async (t) => {
  const statePath = join(tempDir(t), 'broken.json');
  writeFileSync(statePath, '{"format": 99}');
  await t.rejects(
    startEmulator({ statePath }),
    /broken\.json is not a kms-emulator state file/,
    'refused',
  );
  t.equal(readFileSync(statePath, 'utf8'), '{"format": 99}', 'and left untouched');
});
