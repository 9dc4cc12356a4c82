import t from 'tap';
import { randomUUID } from 'node:crypto';
import { withEmulator } from '../helpers/emulator.js';
import { sha256Hex, signV3 } from '../../src/emulator/signature-v3.js';
import type { RunningEmulator } from '../../src/emulator/index.js';

// Signature V3 (ACS3-HMAC-SHA256) checks with hand-made requests. The real SDKs that sign
// V3 (Python, Go) are proven in test/interop; these show each rejection and each way of
// putting parameters.

interface V3Options {
  method?: 'GET' | 'POST';
  query?: Record<string, string>;
  body?: string;
  contentType?: string;
  headers?: Record<string, string>;
  /** Headers dropped after signing (still listed in SignedHeaders). */
  drop?: string[];
  signedHeaders?: string[];
  authorization?: (signature: string, signedHeaders: string) => string;
  secret?: string;
}

function isoNow(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

async function v3Call(
  emulator: RunningEmulator,
  options: V3Options = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const method = options.method ?? 'POST';
  const query = Object.entries(options.query ?? {});
  const body = options.body ?? '';
  const headers: Record<string, string> = {
    host: emulator.endpoint,
    'x-acs-action': 'DescribeKey',
    'x-acs-version': '2016-01-20',
    'x-acs-date': isoNow(),
    'x-acs-signature-nonce': randomUUID(),
    'x-acs-content-sha256': sha256Hex(body),
    ...(options.contentType === undefined ? {} : { 'content-type': options.contentType }),
    ...options.headers,
  };
  const signedHeaders =
    options.signedHeaders ??
    Object.keys(headers)
      .filter((name) => name === 'host' || name.startsWith('x-acs-') || name === 'content-type')
      .sort();
  const signature = signV3(
    {
      method,
      path: '/',
      query,
      headers: toDistinct(headers),
      signedHeaders,
      payloadHash: headers['x-acs-content-sha256'] ?? '',
    },
    options.secret ?? emulator.accessKeySecret,
  );
  const list = signedHeaders.join(';');
  headers.authorization =
    options.authorization?.(signature, list) ??
    `ACS3-HMAC-SHA256 Credential=${emulator.accessKeyId},SignedHeaders=${list},Signature=${signature}`;
  for (const name of options.drop ?? []) Reflect.deleteProperty(headers, name);
  const search = new URLSearchParams(query).toString().replace(/\+/g, '%20');
  const response = await fetch(`${emulator.url}/${search === '' ? '' : `?${search}`}`, {
    method,
    headers,
    ...(method === 'POST' ? { body } : {}),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

function toDistinct(headers: Record<string, string>): Record<string, string[]> {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]]));
}

function codeOf(answer: { status: number; body: Record<string, unknown> }): [number, unknown] {
  return [answer.status, answer.body.Code];
}

t.test('V3 requests: query, form and JSON parameters, GET and POST', async (t) => {
  const { emulator, keyId } = await withEmulator(t);
  const get = await v3Call(emulator, { method: 'GET', query: { KeyId: keyId, Empty: '' } });
  t.equal(get.status, 200, 'GET with the parameters in the query (an empty value included)');
  t.equal((get.body.KeyMetadata as { KeyId: string }).KeyId, keyId, 'answers DescribeKey');
  const context = { purpose: "a b*c~d!'()" };
  const encrypted = await v3Call(emulator, {
    headers: { 'x-acs-action': 'Encrypt' },
    contentType: 'application/json; charset=utf-8',
    body: JSON.stringify({ KeyId: keyId, Plaintext: 'secret words', EncryptionContext: context }),
  });
  t.equal(encrypted.status, 200, 'POST with a JSON body');
  const decrypted = await v3Call(emulator, {
    headers: { 'x-acs-action': 'Decrypt' },
    contentType: 'application/x-www-form-urlencoded',
    body: new URLSearchParams({
      CiphertextBlob: String(encrypted.body.CiphertextBlob),
      EncryptionContext: JSON.stringify(context),
    }).toString(),
  });
  t.equal(decrypted.body.Plaintext, 'secret words', 'POST with a form body (context as JSON)');
  const byParam = await v3Call(emulator, {
    query: { Action: 'DescribeKey', Version: '2016-01-20', KeyId: keyId },
    headers: { 'x-acs-action': '', 'x-acs-version': '' },
  });
  t.equal(byParam.status, 200, 'Action and Version as parameters instead of x-acs-* headers');
  const badJson = await v3Call(emulator, { contentType: 'application/json', body: '{"KeyId":' });
  t.same(codeOf(badJson), [400, 'InvalidParameter'], 'a JSON body that does not parse');
  const noAction = await v3Call(emulator, { headers: { 'x-acs-action': '' } });
  t.same(codeOf(noAction), [400, 'MissingParameter'], 'no action anywhere');
});

t.test('V3 rejections', async (t) => {
  const { emulator, keyId } = await withEmulator(t);
  const query = { KeyId: keyId };
  const wrong = await v3Call(emulator, { query, secret: 'wrong' });
  t.same(codeOf(wrong), [400, 'SignatureDoesNotMatch'], 'a wrong secret');
  t.match(
    wrong.body.Message,
    /server string to sign is:ACS3-HMAC-SHA256\n[0-9a-f]{64}/,
    'names the string to sign',
  );
  t.same(
    Object.keys(wrong.body).sort(),
    ['Code', 'HostId', 'HttpStatus', 'Message', 'Recommend', 'RequestId'],
    'the error body of V1',
  );
  const body = await v3Call(emulator, {
    query,
    contentType: 'application/x-www-form-urlencoded',
    body: 'Extra=1',
    headers: { 'x-acs-content-sha256': sha256Hex('') },
  });
  t.same(codeOf(body), [400, 'SignatureDoesNotMatch'], 'x-acs-content-sha256 is not the body');
  const nonce = randomUUID();
  t.equal(
    (await v3Call(emulator, { query, headers: { 'x-acs-signature-nonce': nonce } })).status,
    200,
    'a fresh nonce',
  );
  const replay = await v3Call(emulator, { query, headers: { 'x-acs-signature-nonce': nonce } });
  t.same(codeOf(replay), [400, 'SignatureNonceUsed'], 'a replayed nonce');
  const old = new Date(Date.now() - 16 * 60_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const skew = await v3Call(emulator, { query, headers: { 'x-acs-date': old } });
  t.same(codeOf(skew), [400, 'InvalidTimeStamp.Expired'], 'x-acs-date 16 minutes old');
  const format = await v3Call(emulator, { query, headers: { 'x-acs-date': 'yesterday' } });
  t.same(codeOf(format), [400, 'InvalidTimeStamp.Format'], 'x-acs-date not ISO 8601');
  const unknown = await v3Call(emulator, {
    query,
    authorization: (s, h) =>
      `ACS3-HMAC-SHA256 Credential=LTAInobody,SignedHeaders=${h},Signature=${s}`,
  });
  t.same(codeOf(unknown), [404, 'InvalidAccessKeyId.NotFound'], 'an unknown access key id');
  // (fetch always sends host.)
  for (const name of ['x-acs-date', 'x-acs-signature-nonce', 'x-acs-content-sha256']) {
    const missing = await v3Call(emulator, { query, drop: [name] });
    t.same(codeOf(missing), [400, 'IncompleteSignature'], `${name} missing: IncompleteSignature`);
  }
  const unsigned = await v3Call(emulator, {
    query,
    signedHeaders: ['host', 'x-acs-content-sha256', 'x-acs-signature-nonce'],
  });
  t.same(codeOf(unsigned), [400, 'IncompleteSignature'], 'x-acs-date left out of SignedHeaders');
  const token = await v3Call(emulator, {
    query,
    signedHeaders: ['host', 'x-acs-content-sha256', 'x-acs-date', 'x-acs-signature-nonce'],
    headers: { 'x-acs-security-token': 'token' },
  });
  t.same(codeOf(token), [400, 'IncompleteSignature'], 'an unsigned x-acs-security-token');
  const partial = await v3Call(emulator, {
    query,
    authorization: (s) => `ACS3-HMAC-SHA256 Credential=${emulator.accessKeyId},Signature=${s}`,
  });
  t.same(codeOf(partial), [400, 'IncompleteSignature'], 'no SignedHeaders in Authorization');
  const sm3 = await v3Call(emulator, {
    query,
    authorization: (s, h) =>
      `ACS3-HMAC-SM3 Credential=${emulator.accessKeyId},SignedHeaders=${h},Signature=${s}`,
  });
  t.same(codeOf(sm3), [400, 'IncompleteSignature'], 'another algorithm');
  const v4 = await v3Call(emulator, {
    query,
    authorization: (s, h) =>
      `ACS4-HMAC-SHA256 Credential=${emulator.accessKeyId}/20261201/cn-hangzhou/kms/aliyun_v4_request,SignedHeaders=${h},Signature=${s}`,
  });
  t.same(
    codeOf(v4),
    [400, 'IncompleteSignature'],
    'signature v4 (ACS4) is named, not taken for v1.0',
  );
  t.match(v4.body.Message, /not ACS4-HMAC-SHA256/, 'the message names the algorithm');
});

t.test('STS pairs need their token in either dialect', async (t) => {
  const { emulator, keyId } = await withEmulator(t, {
    accessKeys: [{ id: 'STS.pair', secret: 'sts-secret', securityToken: 'the-token' }],
  });
  const ok = await v3Call(emulator, {
    query: { KeyId: keyId },
    headers: { 'x-acs-security-token': 'the-token' },
  });
  t.equal(ok.status, 200, 'the right token');
  const other = await v3Call(emulator, {
    query: { KeyId: keyId },
    headers: { 'x-acs-security-token': 'other' },
  });
  t.same(codeOf(other), [400, 'InvalidSecurityToken.MismatchWithAccessKey'], 'another token');
  const none = await v3Call(emulator, { query: { KeyId: keyId } });
  t.same(codeOf(none), [400, 'InvalidSecurityToken.MismatchWithAccessKey'], 'no token');
});
