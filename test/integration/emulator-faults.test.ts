import t from 'tap';
import { Kms, sdkError, sdkFor, withEmulator } from '../helpers/emulator.js';

// Fault injection, in-process (emulator.faults) and over HTTP (/_emulator/faults).

t.test('failShare answers with the chosen KMS error code and status', async (t) => {
  const { emulator, sdk, keyId } = await withEmulator(t);
  for (const [code, status] of [
    ['Rejected.Throttling', 429],
    ['InternalFailure', 500],
    ['ServiceUnavailableTemporary', 503],
    ['Throttling', 400],
  ] as const) {
    emulator.faults.failShare(1, code);
    const error = await sdkError(sdk.describeKey(new Kms.DescribeKeyRequest({ keyId })));
    t.equal(error.code, `${code}Error`, `${code}: SDK error code`);
    t.equal(error.data?.Code, code, `${code}: body Code`);
    t.equal(error.data?.HttpStatus, status, `${code}: HTTP ${status}`);
    t.match(error.message, new RegExp(`code: ${status}, `), `${code}: status in the SDK message`);
  }
  emulator.faults.reset();
  const ok = await sdk.describeKey(new Kms.DescribeKeyRequest({ keyId }));
  t.equal(ok.keyMetadata.keyState, 'Enabled', 'reset() clears the fault');
});

t.test('failShare limited to chosen actions, and partial shares', async (t) => {
  let roll = 0;
  const rolls = [0.1, 0.9];
  const { emulator, sdk, keyId } = await withEmulator(t, {
    random: () => rolls[roll++ % rolls.length] ?? 0,
  });
  emulator.faults.failShare(1, 'Rejected.Throttling', ['Encrypt']);
  const encrypt = await sdkError(sdk.encrypt(new Kms.EncryptRequest({ keyId, plaintext: 'x' })));
  t.equal(encrypt.data?.Code, 'Rejected.Throttling', 'the chosen action fails');
  const describe = await sdk.describeKey(new Kms.DescribeKeyRequest({ keyId }));
  t.equal(describe.keyMetadata.keyId, keyId, 'other actions are untouched');

  emulator.faults.failShare(0.5, 'InternalFailure');
  roll = 0;
  const first = await sdkError(sdk.describeKey(new Kms.DescribeKeyRequest({ keyId })));
  t.equal(first.data?.Code, 'InternalFailure', 'a roll under the share fails');
  const second = await sdk.describeKey(new Kms.DescribeKeyRequest({ keyId }));
  t.equal(second.keyMetadata.keyId, keyId, 'a roll over the share succeeds');
  t.throws(
    () => {
      emulator.faults.failShare(1.5, 'InternalFailure');
    },
    /share must be between 0 and 1/,
    'a share above 1 is refused',
  );
});

t.test('a denied access key gets Forbidden.NoPermission', async (t) => {
  const { emulator, sdk, keyId } = await withEmulator(t);
  emulator.faults.denyAccessKey(emulator.accessKeyId);
  const error = await sdkError(sdk.describeKey(new Kms.DescribeKeyRequest({ keyId })));
  t.equal(error.code, 'Forbidden.NoPermissionError', 'SDK error code');
  t.equal(error.data?.HttpStatus, 403, 'HTTP 403');
  emulator.faults.denyAccessKey(emulator.accessKeyId, false);
  const ok = await sdk.describeKey(new Kms.DescribeKeyRequest({ keyId }));
  t.equal(ok.keyMetadata.keyId, keyId, 'allowed again');
});

t.test('dropped connections make the SDK fail, not hang', async (t) => {
  const { emulator, sdk, keyId } = await withEmulator(t);
  emulator.faults.dropConnections(1);
  const error = await sdkError(sdk.describeKey(new Kms.DescribeKeyRequest({ keyId })));
  t.match(
    error.message,
    /socket hang up|ECONNRESET/,
    `the SDK rejects: ${error.message.slice(0, 60)}`,
  );
  t.notOk(error.data, 'no KMS answer body');
  t.equal(emulator.requestCount('DescribeKey'), 1, 'the dropped call was counted');
  emulator.faults.dropConnections(0);
  const ok = await sdk.describeKey(new Kms.DescribeKeyRequest({ keyId }));
  t.equal(ok.keyMetadata.keyId, keyId, 'answers again');
});

t.test('latency delays answers, within the SDK read timeout the call still succeeds', async (t) => {
  const { emulator, keyId } = await withEmulator(t);
  emulator.faults.setLatency(30);
  const ok = await sdkFor(emulator).describeKey(new Kms.DescribeKeyRequest({ keyId }));
  t.equal(ok.keyMetadata.keyId, keyId, 'answered after the delay');
  emulator.faults.setLatency(2000);
  const impatient = sdkFor(emulator, { readTimeout: 100 });
  const error = await sdkError(impatient.describeKey(new Kms.DescribeKeyRequest({ keyId })));
  t.match(error.message, /timeout/i, 'a read timeout shorter than the latency fails the call');
});

t.test('HTTP admin routes', async (t) => {
  const { emulator, sdk, keyId } = await withEmulator(t);
  const post = await fetch(`${emulator.url}/_emulator/faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      failShare: 1,
      failCode: 'ServiceUnavailableTemporary',
      failActions: ['DescribeKey'],
    }),
  });
  t.equal(post.status, 200, 'POST /_emulator/faults');
  const described = (await post.json()) as { failCode: string };
  t.equal(described.failCode, 'ServiceUnavailableTemporary', 'echoes the faults');
  const error = await sdkError(sdk.describeKey(new Kms.DescribeKeyRequest({ keyId })));
  t.equal(error.data?.HttpStatus, 503, 'the fault applies');

  await fetch(`${emulator.url}/_emulator/faults`, {
    method: 'POST',
    body: JSON.stringify({ failShare: 0, deniedAccessKeys: [emulator.accessKeyId] }),
  });
  const denied = await sdkError(sdk.describeKey(new Kms.DescribeKeyRequest({ keyId })));
  t.equal(denied.data?.Code, 'Forbidden.NoPermission', 'deniedAccessKeys over HTTP');

  const reset = await fetch(`${emulator.url}/_emulator/faults`, { method: 'DELETE' });
  t.equal(reset.status, 200, 'DELETE /_emulator/faults');
  const ok = await sdk.describeKey(new Kms.DescribeKeyRequest({ keyId }));
  t.equal(ok.keyMetadata.keyId, keyId, 'faults cleared');

  const bad = await fetch(`${emulator.url}/_emulator/faults`, {
    method: 'POST',
    body: JSON.stringify({ dropShare: 'all' }),
  });
  t.equal(bad.status, 400, 'malformed fault settings are refused');
  t.match(await bad.text(), /dropShare must be a number/, 'and named');

  const keys = (await (await fetch(`${emulator.url}/_emulator/keys`)).json()) as {
    keys: { KeyId: string; KeyState: string }[];
  };
  t.same(
    keys.keys.map((k) => [k.KeyId, k.KeyState]),
    [[keyId, 'Enabled']],
    'GET /_emulator/keys lists keys without material',
  );
  t.notMatch(JSON.stringify(keys), /material/i, 'no key material over the admin route');

  const counts = (await (await fetch(`${emulator.url}/_emulator/requests`)).json()) as {
    total: number;
  };
  t.equal(counts.total, emulator.requestCount(), 'GET /_emulator/requests');
  t.equal(emulator.requestCount(), 3, 'admin calls are not KMS API calls');
  const unknown = await fetch(`${emulator.url}/_emulator/nothing`);
  t.equal(unknown.status, 404, 'unknown admin route');
});

t.test('material import over HTTP (PendingImport → Enabled)', async (t) => {
  const { emulator, sdk } = await withEmulator(t);
  const created = await sdk.createKey(new Kms.CreateKeyRequest({ origin: 'EXTERNAL' }));
  const keyId = created.keyMetadata.keyId;
  const imported = await fetch(`${emulator.url}/_emulator/keys/${keyId}/material`, {
    method: 'POST',
    body: JSON.stringify({ expireTime: '2099-01-01T00:00:00Z' }),
  });
  t.equal(imported.status, 200, 'POST /_emulator/keys/KEY/material');
  const d = await sdk.describeKey(new Kms.DescribeKeyRequest({ keyId }));
  t.equal(d.keyMetadata.keyState, 'Enabled', 'key Enabled');
  t.equal(d.keyMetadata.materialExpireTime, '2099-01-01T00:00:00Z', 'MaterialExpireTime');
  const notExternal = await fetch(
    `${emulator.url}/_emulator/keys/${emulator.keyIds[0] ?? ''}/material`,
    {
      method: 'POST',
    },
  );
  t.equal(notExternal.status, 409, 'only EXTERNAL keys take material');
});
