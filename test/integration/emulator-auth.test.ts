import t from 'tap';
import RpcUtil from '@alicloud/rpc-util';
import { Kms, sdkError, sdkFor, withEmulator } from '../helpers/emulator.js';
import type { RunningEmulator } from '../../src/emulator/index.js';

// Signature v1.0 checks: the real SDK succeeds; hand-crafted requests (signed with the SDK's
// own rpc-util code) show each rejection.

function timestamp(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

interface Crafted {
  secret?: string;
  accessKeyId?: string;
  nonce?: string;
  timestampMs?: number;
  extra?: Record<string, string>;
  tamper?: (params: Record<string, string>) => void;
  omit?: string;
}

async function craftedCall(
  emulator: RunningEmulator,
  keyId: string,
  options: Crafted = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const params: Record<string, string> = {
    Action: 'DescribeKey',
    Format: 'json',
    Version: '2016-01-20',
    Timestamp: timestamp(options.timestampMs ?? Date.now()),
    SignatureNonce: options.nonce ?? `nonce-${Math.random().toString(36).slice(2)}`,
    SignatureMethod: 'HMAC-SHA1',
    SignatureVersion: '1.0',
    AccessKeyId: options.accessKeyId ?? emulator.accessKeyId,
    KeyId: keyId,
    ...options.extra,
  };
  params.Signature = RpcUtil.default.getSignatureV1(
    params,
    'POST',
    options.secret ?? emulator.accessKeySecret,
  );
  options.tamper?.(params);
  if (options.omit !== undefined) Reflect.deleteProperty(params, options.omit);
  const response = await fetch(`${emulator.url}/?${new URLSearchParams(params).toString()}`, {
    method: 'POST',
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

t.test('a correctly signed hand-crafted request succeeds', async (t) => {
  const { emulator, keyId } = await withEmulator(t);
  const ok = await craftedCall(emulator, keyId, { extra: { Description: "it's (*) !" } });
  t.equal(ok.status, 200, 'HTTP 200');
  t.equal((ok.body.KeyMetadata as { KeyId: string }).KeyId, keyId, 'answers DescribeKey');
});

t.test('parameters in a form body are signed and read like query parameters', async (t) => {
  const { emulator, keyId } = await withEmulator(t);
  const params: Record<string, string> = {
    Action: 'DescribeKey',
    Format: 'json',
    Version: '2016-01-20',
    Timestamp: timestamp(Date.now()),
    SignatureNonce: 'form-nonce',
    SignatureMethod: 'HMAC-SHA1',
    SignatureVersion: '1.0',
    AccessKeyId: emulator.accessKeyId,
    KeyId: keyId,
  };
  params.Signature = RpcUtil.default.getSignatureV1(params, 'POST', emulator.accessKeySecret);
  const response = await fetch(`${emulator.url}/`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(params).toString(),
  });
  t.equal(response.status, 200, 'HTTP 200');
  const body = (await response.json()) as { KeyMetadata: { KeyId: string } };
  t.equal(body.KeyMetadata.KeyId, keyId, 'answers DescribeKey');
});

t.test('bad signature', async (t) => {
  const { emulator, keyId } = await withEmulator(t);
  const wrongSecret = await craftedCall(emulator, keyId, { secret: 'not-the-secret' });
  t.equal(wrongSecret.status, 400, 'HTTP 400');
  t.equal(wrongSecret.body.Code, 'SignatureDoesNotMatch', 'SignatureDoesNotMatch');
  t.equal(wrongSecret.body.HttpStatus, 400, 'HttpStatus in the body');
  t.match(
    wrongSecret.body.Message,
    /server string to sign is:POST&%2F&/,
    'names the string to sign',
  );
  t.ok(wrongSecret.body.RequestId, 'RequestId in the body');
  const changedAfterSigning = await craftedCall(emulator, keyId, {
    tamper: (p) => {
      p.KeyId = 'another-key';
    },
  });
  t.equal(
    changedAfterSigning.body.Code,
    'SignatureDoesNotMatch',
    'a parameter changed after signing',
  );

  const sdk = sdkFor(emulator, { accessKeySecret: 'wrong' });
  const error = await sdkError(sdk.describeKey(new Kms.DescribeKeyRequest({ keyId })));
  t.equal(error.code, 'SignatureDoesNotMatchError', 'the SDK error code is <Code>Error');
  t.match(
    error.message,
    /^SignatureDoesNotMatchError: code: 400, Specified signature/,
    'SDK message',
  );
  t.equal(error.data?.Code, 'SignatureDoesNotMatch', 'the body is in error.data');
});

t.test('unknown access key', async (t) => {
  const { emulator, keyId } = await withEmulator(t);
  const crafted = await craftedCall(emulator, keyId, { accessKeyId: 'LTAInobody' });
  t.equal(crafted.status, 404, 'HTTP 404');
  t.equal(crafted.body.Code, 'InvalidAccessKeyId.NotFound', 'InvalidAccessKeyId.NotFound');
  const sdk = sdkFor(emulator, { accessKeyId: 'LTAInobody' });
  const error = await sdkError(sdk.describeKey(new Kms.DescribeKeyRequest({ keyId })));
  t.equal(error.code, 'InvalidAccessKeyId.NotFoundError', 'SDK error code');
  t.equal(error.data?.HttpStatus, 404, 'SDK error data HttpStatus');
});

t.test('replayed nonce', async (t) => {
  const { emulator, keyId } = await withEmulator(t);
  const first = await craftedCall(emulator, keyId, { nonce: 'same-nonce' });
  t.equal(first.status, 200, 'first use of a nonce succeeds');
  const replay = await craftedCall(emulator, keyId, { nonce: 'same-nonce' });
  t.equal(replay.status, 400, 'HTTP 400');
  t.equal(replay.body.Code, 'SignatureNonceUsed', 'SignatureNonceUsed');
});

t.test('skewed timestamp', async (t) => {
  const { emulator, keyId } = await withEmulator(t);
  for (const offsetMinutes of [-16, 16]) {
    const skewed = await craftedCall(emulator, keyId, {
      timestampMs: Date.now() + offsetMinutes * 60_000,
    });
    t.equal(skewed.status, 400, `${offsetMinutes} min: HTTP 400`);
    t.equal(
      skewed.body.Code,
      'InvalidTimeStamp.Expired',
      `${offsetMinutes} min: InvalidTimeStamp.Expired`,
    );
  }
  const within = await craftedCall(emulator, keyId, { timestampMs: Date.now() - 14 * 60_000 });
  t.equal(within.status, 200, '14 minutes off is accepted');
  const malformed = await craftedCall(emulator, keyId, { extra: { Timestamp: 'yesterday' } });
  t.equal(malformed.body.Code, 'InvalidTimeStamp.Format', 'a malformed Timestamp');
});

t.test('the emulator clock decides the timestamp window', async (t) => {
  const { emulator, keyId } = await withEmulator(t, { now: () => Date.now() + 3_600_000 });
  const sdk = sdkFor(emulator);
  const error = await sdkError(sdk.describeKey(new Kms.DescribeKeyRequest({ keyId })));
  t.equal(
    error.data?.Code,
    'InvalidTimeStamp.Expired',
    'an SDK an hour behind the emulator is refused',
  );
});

t.test('missing and invalid common parameters', async (t) => {
  const { emulator, keyId } = await withEmulator(t);
  for (const name of ['Signature', 'SignatureNonce', 'AccessKeyId', 'Version', 'Action']) {
    const missing = await craftedCall(emulator, keyId, { omit: name });
    t.equal(missing.body.Code, 'MissingParameter', `missing ${name}: MissingParameter`);
    t.equal(missing.status, 400, `missing ${name}: HTTP 400`);
  }
  const noTimestamp = await craftedCall(emulator, keyId, { omit: 'Timestamp' });
  t.same(
    [noTimestamp.status, noTimestamp.body.Code],
    [400, 'IllegalTimestamp'],
    'missing Timestamp: IllegalTimestamp 400 (the KMS documentation sample)',
  );
  const version = await craftedCall(emulator, keyId, { extra: { Version: '2019-01-01' } });
  t.equal(version.body.Code, 'InvalidVersion', 'another API version');
  const action = await craftedCall(emulator, keyId, { extra: { Action: 'CreateSecret' } });
  t.equal(action.body.Code, 'InvalidAction.NotFound', 'an action the emulator does not know');
  t.equal(action.status, 404, 'unknown action: HTTP 404');
  const method = await craftedCall(emulator, keyId, { extra: { SignatureMethod: 'HMAC-SHA256' } });
  t.equal(method.body.Code, 'InvalidParameter', 'only HMAC-SHA1');
});

t.test('several access keys; SecurityToken passes through', async (t) => {
  const { emulator, keyId } = await withEmulator(t, {
    accessKeys: [
      { id: 'LTAIfirst', secret: 'first-secret' },
      { id: 'LTAIsecond', secret: 'second-secret' },
    ],
  });
  t.equal(emulator.accessKeyId, 'LTAIfirst', 'accessKeyId is the first pair');
  const second = sdkFor(emulator, { accessKeyId: 'LTAIsecond', accessKeySecret: 'second-secret' });
  const d = await second.describeKey(new Kms.DescribeKeyRequest({ keyId }));
  t.equal(d.keyMetadata.keyId, keyId, 'the second pair works too');
  const sts = await craftedCall(emulator, keyId, { extra: { SecurityToken: 'token' } });
  t.equal(sts.status, 200, 'a signed SecurityToken is accepted');
});
