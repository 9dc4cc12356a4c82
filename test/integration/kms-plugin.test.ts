import { status as grpcStatus } from '@grpc/grpc-js';
import t from 'tap';
import { createKmsAdmin } from '../../src/emulator/admin.js';
import { createKmsClient } from '../../src/kms/client.js';
import { withEmulator, Kms, sdkFor } from '../helpers/emulator.js';
import { eventually } from '../helpers/eventually.js';
import { grpcError, startPluginUnderTest } from '../helpers/kms-plugin.js';
import { httpGet } from '../helpers/http.js';
import { emulatorKmsSettings } from '../helpers/kms.js';

// kms-plugin in-process, the KMS emulator behind it through the real @alicloud/kms20160120
// SDK, and a grpc-js client on the real unix socket speaking the vendored KMS v2 api.proto.

const SEED = Buffer.alloc(32, 7);

t.test('Encrypt/Decrypt round trip; key_id is <KeyId>/<primary version>', async (t) => {
  const { emulator, keyId } = await withEmulator(t);
  const { client, plugin } = await startPluginUnderTest(t, emulator, keyId);
  const version = (await createKmsAdmin(emulator, keyId).describeKey()).primaryKeyVersion;

  const status = await client.status();
  t.same(
    status,
    { version: 'v2', healthz: 'ok', key_id: `${keyId}/${version}` },
    'Status: ok with the primary version',
  );

  const encrypted = await client.encrypt(SEED);
  t.equal(encrypted.key_id, `${keyId}/${version}`, 'Encrypt names the version that encrypted');
  t.match(
    encrypted.ciphertext.toString('utf8'),
    /^[A-Za-z0-9+/]+=*$/,
    'the ciphertext is the CiphertextBlob text',
  );
  t.same(
    encrypted.annotations,
    {},
    'Encrypt returns no annotations (each would be stored and validated with every Secret)',
  );
  const decrypted = await client.decrypt(encrypted.ciphertext, encrypted.key_id);
  t.same(decrypted, SEED, 'Decrypt returns the plaintext');

  // What ack-kms-plugin writes: Encrypt(Plaintext = base64(seed)), ciphertext = blob bytes,
  // key_id = the configured key id. This plugin reads it under the same provider name.
  const sdk = sdkFor(emulator);
  const ack = await sdk.encrypt(
    new Kms.EncryptRequest({ keyId, plaintext: SEED.toString('base64') }),
  );
  t.same(
    await client.decrypt(Buffer.from(ack.ciphertextBlob), keyId),
    SEED,
    'a ciphertext written by ack-kms-plugin decrypts',
  );
  // And the other way round: what this plugin wrote is what ack-kms-plugin decrypts.
  const back = await sdk.decrypt(
    new Kms.DecryptRequest({ ciphertextBlob: encrypted.ciphertext.toString('utf8') }),
  );
  t.same(
    Buffer.from(back.plaintext, 'base64'),
    SEED,
    'ack-kms-plugin would decrypt what this plugin wrote',
  );

  // After a rotation: older ciphertext still decrypts; Encrypt moves on and Status agrees.
  const next = await createKmsAdmin(emulator, keyId).createKeyVersion();
  const rotated = await client.encrypt(SEED);
  t.equal(rotated.key_id, `${keyId}/${next}`, 'Encrypt reports the new version');
  t.ok(
    await eventually(async () => (await client.status()).key_id === `${keyId}/${next}`),
    'Status follows the version Encrypt used (snapshot refreshed)',
  );
  t.same(
    await client.decrypt(encrypted.ciphertext, encrypted.key_id),
    SEED,
    'the older version still decrypts',
  );

  const metrics = (await httpGet(`${plugin.healthUrl}/metrics`)).body;
  t.match(
    metrics,
    /kms_secret_guard_plugin_calls_total\{method="Encrypt",code="OK"\} 2/,
    'metrics count Encrypt calls',
  );
  t.match(
    metrics,
    /kms_secret_guard_plugin_calls_total\{method="Decrypt",code="OK"\} 3/,
    'metrics count Decrypt calls',
  );
  t.match(
    metrics,
    /kms_secret_guard_plugin_call_duration_seconds_bucket\{le="[^"]+",method="Status"\}/,
    'metrics have latency',
  );
  t.match(
    metrics,
    new RegExp(`kms_secret_guard_plugin_key_id_info\\{key_id="${keyId}/${next}"\\} 1`),
    'metrics name the key_id in use',
  );
  t.match(
    metrics,
    /kms_secret_guard_kms_calls_total\{action="Encrypt",result="ok"\} 2/,
    'KMS Encrypt calls are counted',
  );
  for (const path of ['/livez', '/readyz', '/healthz/kms']) {
    t.equal((await httpGet(`${plugin.healthUrl}${path}`)).status, 200, `${path} is 200`);
  }
});

t.test('Status answers from memory: no KMS call per Status', async (t) => {
  const { emulator, keyId } = await withEmulator(t);
  const { client } = await startPluginUnderTest(t, emulator, keyId);
  const before = emulator.requestCount();
  for (let index = 0; index < 20; index += 1) await client.status();
  t.equal(emulator.requestCount(), before, '20 Status calls, 0 KMS calls');
});

t.test(
  'Status for every unusable key state: the guard denial message as a gRPC error',
  async (t) => {
    const { emulator, keyId } = await withEmulator(t);
    const admin = createKmsAdmin(emulator, keyId);
    const { client, plugin } = await startPluginUnderTest(t, emulator, keyId);
    const refreshThenStatus = async () => {
      await plugin.monitor.refresh();
      return grpcError(client.status());
    };

    await admin.disableKey();
    let error = await refreshThenStatus();
    t.equal(error.code, grpcStatus.FAILED_PRECONDITION, 'Disabled: FAILED_PRECONDITION');
    t.match(error.details, `KMS key ${keyId} is Disabled`, 'Disabled: names key and state');
    t.match(error.details, /EnableKey/, 'Disabled: names the remedy');
    await admin.enableKey();

    await admin.scheduleKeyDeletion(7);
    error = await refreshThenStatus();
    t.match(
      error.details,
      /PendingDeletion.*CancelKeyDeletion/,
      'PendingDeletion: state and remedy',
    );
    await admin.cancelKeyDeletion();

    emulator.faults.denyAccessKey(emulator.accessKeyId);
    error = await refreshThenStatus();
    t.equal(error.code, grpcStatus.PERMISSION_DENIED, 'no permission: PERMISSION_DENIED');
    t.match(
      error.details,
      /kms:Encrypt, kms:Decrypt and kms:DescribeKey/,
      'no permission: names the RAM actions',
    );
    emulator.faults.denyAccessKey(emulator.accessKeyId, false);

    await plugin.monitor.refresh();
    t.equal((await client.status()).healthz, 'ok', 'usable again: ok');
  },
);

t.test('Status: not found, PendingImport and expired material', async (t) => {
  const { emulator } = await withEmulator(t);
  const missing = await startPluginUnderTest(t, emulator, 'key-does-not-exist');
  const notFound = await grpcError(missing.client.status());
  t.equal(notFound.code, grpcStatus.NOT_FOUND, 'not found: NOT_FOUND');
  t.match(notFound.details, /was not found.*--kms-key-id, --kms-region/, 'not found: remedy');

  const sdk = sdkFor(emulator);
  const created = await sdk.createKey(new Kms.CreateKeyRequest({ origin: 'EXTERNAL' }));
  const external = created.keyMetadata.keyId;
  const pending = await startPluginUnderTest(t, emulator, external);
  const pendingError = await grpcError(pending.client.status());
  t.match(
    pendingError.details,
    /PendingImport.*ImportKeyMaterial/,
    'PendingImport: state and remedy',
  );

  emulator.importKeyMaterial(external, { expireTime: Date.now() - 1000 });
  await pending.plugin.monitor.refresh();
  const expired = await grpcError(pending.client.status());
  t.ok(
    /expired|PendingImport/.test(expired.details),
    `expired material is refused (${expired.details})`,
  );
});

t.test(
  'Status: never fetched is an error; stale keeps the last key_id with a non-ok healthz',
  async (t) => {
    const { emulator, keyId } = await withEmulator(t);
    emulator.faults.failShare(1, 'InternalFailure');
    const never = await startPluginUnderTest(t, emulator, keyId);
    const error = await grpcError(never.client.status());
    t.equal(error.code, grpcStatus.UNAVAILABLE, 'never fetched: UNAVAILABLE');
    t.match(error.details, /has not been read from KMS yet/, 'never fetched: says so');
    emulator.faults.reset();

    const { client, plugin } = await startPluginUnderTest(t, emulator, keyId, {
      monitor: { refreshIntervalMs: 100, maxStalenessMs: 300 },
    });
    const good = await client.status();
    t.equal(good.healthz, 'ok', 'ok while KMS answers');
    emulator.faults.failShare(1, 'InternalFailure', ['DescribeKey']);
    t.ok(
      await eventually(async () => (await client.status()).healthz !== 'ok', {
        timeoutMs: 5_000,
      }),
      'healthz turns non-ok once stale',
    );
    const stale = await client.status();
    t.equal(stale.key_id, good.key_id, 'stale: the last good key_id');
    t.match(stale.healthz, /unknown.*max-staleness/, 'stale: healthz says why');
    t.equal(
      (await httpGet(`${plugin.healthUrl}/healthz/kms`)).status,
      503,
      '/healthz/kms is 503 while stale',
    );
    t.equal(
      (await httpGet(`${plugin.healthUrl}/readyz`)).status,
      200,
      '/readyz stays 200 (it never depends on the key)',
    );
    const encrypted = await client.encrypt(SEED);
    t.same(
      await client.decrypt(encrypted.ciphertext, encrypted.key_id),
      SEED,
      'Encrypt/Decrypt still work (only DescribeKey fails)',
    );
  },
);

t.test('bad input: a clear gRPC error, never a crash', async (t) => {
  const { emulator, keyId } = await withEmulator(t);
  const { client } = await startPluginUnderTest(t, emulator, keyId);
  const good = await client.encrypt(SEED);

  const cases: [string, () => Promise<unknown>, number, RegExp][] = [
    [
      'empty plaintext',
      () => client.encrypt(Buffer.alloc(0)),
      grpcStatus.INVALID_ARGUMENT,
      /plaintext is empty/,
    ],
    [
      'plaintext too large',
      () => client.encrypt(Buffer.alloc(5000, 1)),
      grpcStatus.INVALID_ARGUMENT,
      /5000 bytes.*at most 4096/,
    ],
    [
      'empty ciphertext',
      () => client.decrypt(Buffer.alloc(0), good.key_id),
      grpcStatus.INVALID_ARGUMENT,
      /ciphertext is empty/,
    ],
    [
      'ciphertext over 1 KiB',
      () => client.decrypt(Buffer.alloc(1025, 65), good.key_id),
      grpcStatus.INVALID_ARGUMENT,
      /1025 bytes.*at most 1024/,
    ],
    [
      'not base64',
      () => client.decrypt(Buffer.from([0, 1, 2, 3, 255]), good.key_id),
      grpcStatus.INVALID_ARGUMENT,
      /not a KMS CiphertextBlob/,
    ],
    [
      'base64 but not a KMS blob',
      () => client.decrypt(Buffer.from('bm90LWEta21zLWJsb2I='), good.key_id),
      grpcStatus.INVALID_ARGUMENT,
      /not a KMS CiphertextBlob of this account, or it was altered/,
    ],
    [
      'key_id above 1 KiB',
      () => client.decrypt(good.ciphertext, 'k'.repeat(1025)),
      grpcStatus.INVALID_ARGUMENT,
      /key_id is 1025 bytes.*at most 1024/,
    ],
  ];
  for (const [what, call, code, message] of cases) {
    const error = await grpcError(call());
    t.equal(error.code, code, `${what}: ${grpcStatus[code]}`);
    t.match(error.details, message, `${what}: clear message`);
  }

  t.same(
    await client.decrypt(good.ciphertext, good.key_id),
    SEED,
    'the plugin still serves after bad input',
  );
});

t.test('no plaintext, ciphertext or DEK in the logs at trace level (canary)', async (t) => {
  const { emulator, keyId } = await withEmulator(t);
  const { client, logs } = await startPluginUnderTest(t, emulator, keyId, { logLevel: 'trace' });
  const canary = Buffer.from('CANARY-dek-5b2e9c41-0000000000000', 'utf8');
  const encrypted = await client.encrypt(canary);
  await client.decrypt(encrypted.ciphertext, encrypted.key_id);
  await grpcError(client.decrypt(Buffer.from('bm90LWEta21zLWJsb2I='), encrypted.key_id));
  await client.status();
  const text = logs.text();
  t.match(text, /"level":"trace"/, 'trace lines were written');
  for (const [what, needle] of [
    ['plaintext', canary.toString('utf8')],
    ['plaintext (base64)', canary.toString('base64')],
    ['ciphertext', encrypted.ciphertext.toString('utf8')],
    ['ciphertext prefix', encrypted.ciphertext.toString('utf8').slice(0, 24)],
  ] as const) {
    t.notOk(text.includes(needle), `no ${what} in the logs`);
  }
});

t.test('Decrypt: ciphertexts of other keys stay readable; KMS decides, not key_id', async (t) => {
  const { emulator, keyId } = await withEmulator(t);
  const { client, plugin, logs } = await startPluginUnderTest(t, emulator, keyId);
  const sdk = sdkFor(emulator);
  const version = (await createKmsAdmin(emulator, keyId).describeKey()).primaryKeyVersion;
  // The key the alias pointed at before it was retargeted, or ack-kms-plugin's static key.
  const previous = (await sdk.createKey(new Kms.CreateKeyRequest({}))).keyMetadata.keyId;
  const blob = Buffer.from(
    (
      await sdk.encrypt(
        new Kms.EncryptRequest({ keyId: previous, plaintext: SEED.toString('base64') }),
      )
    ).ciphertextBlob,
  );

  for (const [what, storedKeyId] of [
    ["ack-kms-plugin's static key_id (the bare KeyId)", previous],
    ['an alias the plugin is not configured with', 'alias/cluster-secrets-old'],
    ["this plugin's key_id of the alias's previous key", `${previous}/key-version-old`],
    ["a key_id naming the plugin's own key", `${keyId}/${version}`],
    ['no key_id', ''],
  ] as const) {
    t.same(await client.decrypt(blob, storedKeyId), SEED, `${what}: decrypts`);
  }
  const metrics = (await httpGet(`${plugin.healthUrl}/metrics`)).body;
  t.match(
    metrics,
    new RegExp(`kms_secret_guard_plugin_other_key_decrypts_total\\{key_id="${previous}"\\} 5`),
    'each Decrypt of another key is counted, by its KeyId',
  );
  const warnings = logs.lines().filter((line) => line.level === 'warn');
  t.equal(warnings.length, 5, 'one warning per Decrypt of another key');
  t.match(
    warnings[0],
    { ciphertextKeyId: new RegExp(`^${previous}/`), pluginKeyId: keyId },
    'the warning names both keys',
  );
  t.notOk(logs.text().includes(blob.toString('utf8').slice(0, 24)), 'no ciphertext in the logs');
  t.notOk(logs.text().includes(SEED.toString('base64')), 'no plaintext in the logs');

  // Garbage, and keys KMS will not decrypt with: KMS's answer, mapped clearly.
  const garbage = await grpcError(client.decrypt(Buffer.from('bm90LWEta21zLWJsb2I='), previous));
  t.equal(garbage.code, grpcStatus.INVALID_ARGUMENT, 'not a KMS blob: INVALID_ARGUMENT');
  emulator.faults.failShare(1, 'Forbidden.KeyNotAuthorized', ['Decrypt']);
  const denied = await grpcError(client.decrypt(blob, previous));
  emulator.faults.reset();
  t.equal(
    denied.code,
    grpcStatus.PERMISSION_DENIED,
    'a key the RAM policy denies: PERMISSION_DENIED',
  );
  t.match(
    denied.details,
    /Forbidden\.KeyNotAuthorized.*kms:Decrypt.*the key that encrypted this ciphertext/,
    'names the KMS code and the RAM action on the ciphertext key',
  );
  await createKmsAdmin(emulator, previous).disableKey();
  const disabled = await grpcError(client.decrypt(blob, previous));
  t.equal(
    disabled.code,
    grpcStatus.FAILED_PRECONDITION,
    'a disabled other key: FAILED_PRECONDITION',
  );
  t.match(
    disabled.details,
    new RegExp(
      `Rejected\\.Disabled.*${previous}.*The key that encrypted this ciphertext cannot be used`,
    ),
    'names the state and whose key it is',
  );
  t.equal((await client.status()).healthz, 'ok', "the plugin's own key is still ok");
});

t.test(
  'Status: DescribeKey without PrimaryKeyVersion is a clear error, never "/undefined"',
  async (t) => {
    const { emulator, keyId } = await withEmulator(t);
    const real = createKmsClient(emulatorKmsSettings(emulator, keyId), {
      credential: { accessKeyId: emulator.accessKeyId, accessKeySecret: emulator.accessKeySecret },
    });
    const api: typeof real = {
      ...real,
      describeKey: async (id) => ({
        ...(await real.describeKey(id)),
        primaryKeyVersion: undefined,
      }),
    };
    const { client, plugin } = await startPluginUnderTest(t, emulator, keyId, { api });
    const error = await grpcError(client.status());
    t.equal(error.code, grpcStatus.FAILED_PRECONDITION, 'FAILED_PRECONDITION');
    t.match(
      error.details,
      `KMS key ${keyId}: DescribeKey answered without a PrimaryKeyVersion`,
      'says what',
    );
    t.notMatch(error.details, /undefined/, 'no "undefined"');
    const metrics = (await httpGet(`${plugin.healthUrl}/metrics`)).body;
    t.notMatch(metrics, /key_id_info\{/, 'no key_id in the metrics');
    t.notMatch(metrics, /\/undefined/, 'no "/undefined" anywhere in the metrics');
  },
);

t.test('Status: unusable, then KMS unreachable past max staleness → the error stays', async (t) => {
  const { emulator, keyId } = await withEmulator(t);
  const { client, plugin } = await startPluginUnderTest(t, emulator, keyId, {
    monitor: { refreshIntervalMs: 100, maxStalenessMs: 300 },
  });
  const good = await client.status();
  t.equal(good.healthz, 'ok', 'ok at first');
  emulator.faults.denyAccessKey(emulator.accessKeyId);
  await plugin.monitor.refresh();
  const denied = await grpcError(client.status());
  t.equal(denied.code, grpcStatus.PERMISSION_DENIED, 'permission lost: PERMISSION_DENIED');
  // Then KMS stops answering at all: the state turns unknown.
  emulator.faults.denyAccessKey(emulator.accessKeyId, false);
  emulator.faults.failShare(1, 'InternalFailure', ['DescribeKey']);
  t.ok(
    await eventually(() => plugin.monitor.snapshot().status === 'unknown', { timeoutMs: 10_000 }),
    'the key state turned unknown',
  );
  const stillDenied = await grpcError(client.status());
  t.equal(
    stillDenied.code,
    grpcStatus.PERMISSION_DENIED,
    'unknown after unusable: still the error',
  );
  t.match(
    stillDenied.details,
    /Last known state; KMS has not answered since/,
    'says it is the last known state',
  );
  t.notOk(stillDenied.details.includes(good.key_id), 'the last good key_id is not offered');
  emulator.faults.reset();
  t.ok(
    await eventually(async () => (await client.status().catch(() => undefined))?.healthz === 'ok', {
      timeoutMs: 10_000,
    }),
    'KMS answers again with the key usable: ok',
  );

  // The same without any Status call between the verdict and the outage: the plugin learns
  // each lookup's verdict from the monitor itself.
  emulator.faults.denyAccessKey(emulator.accessKeyId);
  await plugin.monitor.refresh();
  emulator.faults.denyAccessKey(emulator.accessKeyId, false);
  emulator.faults.failShare(1, 'InternalFailure', ['DescribeKey']);
  t.ok(
    await eventually(() => plugin.monitor.snapshot().status === 'unknown', { timeoutMs: 10_000 }),
    'unknown again',
  );
  t.equal(
    (await grpcError(client.status())).code,
    grpcStatus.PERMISSION_DENIED,
    'a verdict no Status call saw still decides',
  );
  emulator.faults.reset();
});
