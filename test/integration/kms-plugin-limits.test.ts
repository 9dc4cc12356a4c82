import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { createKmsAdmin } from '../../src/emulator/admin.js';
import type { RunningEmulator } from '../../src/emulator/index.js';
import { createKmsClient, type KmsEncryptResult } from '../../src/kms/client.js';
import { loadKmsV2Package, MAX_RECEIVE_MESSAGE_BYTES } from '../../src/plugin/grpc-server.js';
import { withEmulator } from '../helpers/emulator.js';
import { eventually } from '../helpers/eventually.js';
import { httpGet } from '../helpers/http.js';
import { emulatorKmsSettings } from '../helpers/kms.js';
import { grpcError, startPluginUnderTest } from '../helpers/kms-plugin.js';

// Robustness of kms-plugin under a misbehaving or overloaded caller and a lagging KMS: a grpc-js
// client on the real unix socket, the emulator behind the real SDK client (wrapped where a test
// must hold a KMS answer back or replay an older one).

const SEED = Buffer.alloc(32, 9);

function realClient(emulator: RunningEmulator, keyId: string) {
  return createKmsClient(emulatorKmsSettings(emulator, keyId), {
    credential: { accessKeyId: emulator.accessKeyId, accessKeySecret: emulator.accessKeySecret },
  });
}

/** A promise the test resolves by hand. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open: () => void = () => undefined;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/** The real client whose Encrypts wait at `held.gate` before they reach KMS. */
function heldEncrypts(emulator: RunningEmulator, keyId: string) {
  const real = realClient(emulator, keyId);
  const held = { gate: gate(), reached: 0 };
  const api: typeof real = {
    ...real,
    encrypt: async (id, plaintext) => {
      held.reached += 1;
      await held.gate.promise;
      return real.encrypt(id, plaintext);
    },
  };
  return { api, held };
}

async function metricsText(healthUrl: string): Promise<string> {
  return (await httpGet(`${healthUrl}/metrics`)).body;
}

function callCount(metrics: string, method: string, code: string): number {
  const line = new RegExp(
    `kms_secret_guard_plugin_calls_total\\{method="${method}",code="${code}"\\} (\\d+)`,
  ).exec(metrics);
  return Number(line?.[1] ?? 0);
}

type RawUnary = (
  request: unknown,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, reply: unknown) => void,
) => grpc.ClientUnaryCall;

/** A raw grpc-js client: for requests the helper's client does not build (annotations, cancel). */
function rawClient(
  t: { teardown(fn: () => unknown): void },
  socketPath: string,
): Record<'Encrypt' | 'Decrypt', RawUnary> & grpc.Client {
  const Client = loadKmsV2Package().KeyManagementService;
  const client = new Client(
    `unix:${socketPath}`,
    grpc.credentials.createInsecure(),
  ) as unknown as Record<'Encrypt' | 'Decrypt', RawUnary> & grpc.Client;
  t.teardown(() => {
    client.close();
  });
  return client;
}

function rawCall(
  client: Record<'Encrypt' | 'Decrypt', RawUnary>,
  method: 'Encrypt' | 'Decrypt',
  request: unknown,
): Promise<grpc.ServiceError | null> {
  return new Promise((resolve) => {
    client[method](request, { deadline: Date.now() + 10_000 }, (error) => {
      resolve(error);
    });
  });
}

t.test(
  '200 Encrypts failing with a key error cause a bounded number of DescribeKeys',
  async (t) => {
    const { emulator, keyId } = await withEmulator(t);
    const minRefreshGapMs = 2_000;
    const { client } = await startPluginUnderTest(t, emulator, keyId, { minRefreshGapMs });
    const before = emulator.requestCount('DescribeKey');
    emulator.faults.failShare(1, 'Forbidden.KeyNotFound', ['Encrypt']);
    const started = Date.now();
    const codes = new Map<number, number>();
    for (let round = 0; round < 10; round += 1) {
      const errors = await Promise.all(
        Array.from({ length: 20 }, () => grpcError(client.encrypt(SEED))),
      );
      for (const error of errors) codes.set(error.code, (codes.get(error.code) ?? 0) + 1);
    }
    const elapsedMs = Date.now() - started;
    t.equal(codes.get(grpc.status.NOT_FOUND), 200, 'all 200 Encrypts answered NOT_FOUND');
    // Let a trailing refresh (at most one) run, then count.
    await eventually(() => emulator.requestCount('DescribeKey') > before, { timeoutMs: 5_000 });
    await new Promise((resolve) => setTimeout(resolve, minRefreshGapMs + 200));
    const describes = emulator.requestCount('DescribeKey') - before;
    const bound = 2 + Math.ceil((Date.now() - started) / minRefreshGapMs);
    t.ok(describes >= 1, `the key errors did refresh the key state (${describes} DescribeKey)`);
    t.ok(
      describes <= bound,
      `${describes} DescribeKey for 200 failures in ${elapsedMs} ms (at most one per ${minRefreshGapMs} ms: ${bound})`,
    );

    // Failures that say nothing about the key never refresh it.
    emulator.faults.reset();
    await new Promise((resolve) => setTimeout(resolve, minRefreshGapMs + 200));
    const quiet = emulator.requestCount('DescribeKey');
    emulator.faults.failShare(1, 'Rejected.Throttling', ['Encrypt']);
    for (let index = 0; index < 20; index += 1) await grpcError(client.encrypt(SEED));
    for (let index = 0; index < 20; index += 1) {
      await grpcError(client.decrypt(Buffer.from('bm90LWEta21zLWJsb2I='), ''));
    }
    t.equal(
      emulator.requestCount('DescribeKey'),
      quiet,
      'throttling and garbage ciphertexts cause no DescribeKey',
    );
  },
);

t.test('Status never goes back to an older key version', async (t) => {
  const { emulator, keyId } = await withEmulator(t);
  const real = realClient(emulator, keyId);
  let replayOlder = false;
  let older: Awaited<ReturnType<typeof real.describeKey>> | undefined;
  const hold = gate();
  let holding = false;
  const api: typeof real = {
    ...real,
    // A lagging KMS replica: the answer recorded before the rotation.
    describeKey: async (id) => {
      const answer = await real.describeKey(id);
      older ??= answer;
      return replayOlder ? older : answer;
    },
    // An Encrypt answered by KMS before the rotation but delivered after the refresh.
    encrypt: async (id, plaintext): Promise<KmsEncryptResult> => {
      const answer = await real.encrypt(id, plaintext);
      if (holding) await hold.promise;
      return answer;
    },
  };
  const { client, plugin, logs } = await startPluginUnderTest(t, emulator, keyId, {
    api,
    minRefreshGapMs: 1,
  });
  const admin = createKmsAdmin(emulator, keyId);
  const v1 = (await admin.describeKey()).primaryKeyVersion;
  t.equal((await client.status()).key_id, `${keyId}/${v1}`, 'Status: v1');

  holding = true;
  const late = client.encrypt(SEED);
  t.ok(
    await eventually(() => emulator.requestCount('Encrypt') === 1, { timeoutMs: 5_000 }),
    'an Encrypt under v1 was answered by KMS and is held back',
  );
  const v2 = await admin.createKeyVersion();
  await plugin.monitor.refresh();
  t.equal((await client.status()).key_id, `${keyId}/${v2}`, 'Status: v2 after the refresh');
  hold.open();
  t.equal((await late).key_id, `${keyId}/${v1}`, 'the late Encrypt names v1, its real version');
  // Its mismatch asks for a refresh; whatever that refresh or a lagging replica answers:
  replayOlder = true;
  await plugin.monitor.refresh();
  t.equal(plugin.monitor.snapshot().key?.primaryKeyVersion, v1, 'the monitor now holds v1');
  for (let index = 0; index < 5; index += 1) {
    t.equal((await client.status()).key_id, `${keyId}/${v2}`, `Status ${index + 1}: still v2`);
  }
  t.match(
    logs.text(),
    /older primary key version than the one already reported/,
    'the ignored older answer is logged',
  );
  t.match(
    await metricsText(plugin.healthUrl),
    new RegExp(`kms_secret_guard_plugin_key_id_info\\{key_id="${keyId}/${v2}"\\} 1`),
    'the metrics report v2 too',
  );
  replayOlder = false;
  const v3 = await admin.createKeyVersion();
  await plugin.monitor.refresh();
  t.equal((await client.status()).key_id, `${keyId}/${v3}`, 'a newer version is followed');
});

t.test('a cap on concurrent Encrypt/Decrypt: beyond it RESOURCE_EXHAUSTED', async (t) => {
  const { emulator, keyId } = await withEmulator(t);
  const { api, held } = heldEncrypts(emulator, keyId);
  const { client, plugin } = await startPluginUnderTest(t, emulator, keyId, {
    api,
    maxInFlight: 2,
  });
  const calls = Array.from({ length: 5 }, () =>
    client.encrypt(SEED).then(
      () => undefined,
      (error: unknown) => error as grpc.ServiceError,
    ),
  );
  t.ok(
    await eventually(
      async () =>
        callCount(await metricsText(plugin.healthUrl), 'Encrypt', 'RESOURCE_EXHAUSTED') === 3,
      { timeoutMs: 5_000 },
    ),
    'three calls beyond the cap were answered at once',
  );
  t.equal(held.reached, 2, 'only two calls reached KMS');
  held.gate.open();
  const results = await Promise.all(calls);
  const refused = results.filter((result) => result !== undefined);
  t.equal(results.length - refused.length, 2, 'the two within the cap succeeded');
  t.equal(refused.length, 3, 'three were refused');
  for (const error of refused) {
    t.equal(error.code, grpc.status.RESOURCE_EXHAUSTED, 'RESOURCE_EXHAUSTED');
    t.match(
      error.details,
      /2 KMS calls are already in flight, the plugin's limit; the API server retries/,
      'a clear message',
    );
  }
  t.equal((await client.status()).healthz, 'ok', 'Status is never capped');
  await client.encrypt(SEED);
  t.pass('after the burst, calls succeed again');
});

t.test('a cancelled call or a passed deadline: answered at once, not waited for', async (t) => {
  const { emulator, keyId } = await withEmulator(t);
  const { api, held } = heldEncrypts(emulator, keyId);
  const { plugin, socketPath, logs } = await startPluginUnderTest(t, emulator, keyId, {
    api,
    maxInFlight: 1,
  });
  const raw = rawClient(t, socketPath);

  // Deadline: the client gives up after 300 ms while KMS is held.
  const late = await new Promise<grpc.ServiceError | null>((resolve) => {
    raw.Encrypt({ plaintext: SEED, uid: 'deadline' }, { deadline: Date.now() + 300 }, resolve);
  });
  t.equal(late?.code, grpc.status.DEADLINE_EXCEEDED, 'the client sees DEADLINE_EXCEEDED');
  t.ok(
    await eventually(
      async () =>
        callCount(await metricsText(plugin.healthUrl), 'Encrypt', 'DEADLINE_EXCEEDED') === 1,
    ),
    'the plugin answered the call DEADLINE_EXCEEDED without waiting for KMS',
  );
  t.equal(held.reached, 1, 'one KMS call is still held');
  // The abandoned KMS call keeps its slot until KMS answers: the cap bounds KMS calls.
  const busy = await rawCall(raw, 'Encrypt', { plaintext: SEED, uid: 'busy' });
  t.equal(busy?.code, grpc.status.RESOURCE_EXHAUSTED, 'its KMS call still counts against the cap');
  held.gate.open();
  t.ok(
    await eventually(
      async () => (await rawCall(raw, 'Encrypt', { plaintext: SEED, uid: 'after' })) === null,
    ),
    'once KMS answered, the slot is free again',
  );

  // Cancellation: the client cancels while KMS is held.
  held.gate = gate();
  const before = held.reached;
  const cancelled = new Promise<grpc.ServiceError | null>((resolve) => {
    const call = raw.Encrypt(
      { plaintext: SEED, uid: 'cancel' },
      { deadline: Date.now() + 10_000 },
      resolve,
    );
    void eventually(() => held.reached > before, { timeoutMs: 5_000 }).then(() => {
      call.cancel();
    });
  });
  t.equal((await cancelled)?.code, grpc.status.CANCELLED, 'the client sees CANCELLED');
  t.ok(
    await eventually(
      async () => callCount(await metricsText(plugin.healthUrl), 'Encrypt', 'CANCELLED') === 1,
    ),
    'the plugin recorded the call as CANCELLED while KMS was still held',
  );
  held.gate.open();
  t.notMatch(logs.text(), /unexpected error/, 'no unexpected error in the logs');
});

t.test('messages above the receive limit are refused before they are read', async (t) => {
  const { emulator, keyId } = await withEmulator(t);
  const { client, socketPath } = await startPluginUnderTest(t, emulator, keyId);
  const raw = rawClient(t, socketPath);
  const good = await client.encrypt(SEED);
  t.ok(
    MAX_RECEIVE_MESSAGE_BYTES < 64 * 1024,
    `the receive limit is small (${MAX_RECEIVE_MESSAGE_BYTES} bytes)`,
  );

  // kube-apiserver allows 32 KiB of annotations: such a Decrypt still fits.
  const annotations = { 'big.example.com': Buffer.alloc(31 * 1024, 1) };
  t.equal(
    await rawCall(raw, 'Decrypt', {
      ciphertext: good.ciphertext,
      key_id: good.key_id,
      uid: 'a',
      annotations,
    }),
    null,
    'a Decrypt with 31 KiB of annotations is served',
  );
  const huge = await rawCall(raw, 'Decrypt', {
    ciphertext: good.ciphertext,
    key_id: good.key_id,
    uid: 'b',
    annotations: { 'big.example.com': Buffer.alloc(MAX_RECEIVE_MESSAGE_BYTES, 1) },
  });
  t.equal(huge?.code, grpc.status.RESOURCE_EXHAUSTED, 'a larger Decrypt: RESOURCE_EXHAUSTED');
  t.match(huge?.details, /larger than max/, 'grpc-js says the message is too large');
  const bigEncrypt = await rawCall(raw, 'Encrypt', {
    plaintext: Buffer.alloc(MAX_RECEIVE_MESSAGE_BYTES),
    uid: 'c',
  });
  t.equal(bigEncrypt?.code, grpc.status.RESOURCE_EXHAUSTED, 'a larger Encrypt: RESOURCE_EXHAUSTED');
  t.equal((await client.status()).healthz, 'ok', 'the plugin still serves');
});
