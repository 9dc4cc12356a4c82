import t from 'tap';
import fc from 'fast-check';
import RpcUtil from '@alicloud/rpc-util';
import {
  canonicalQuery,
  popEncode,
  signatureMatches,
  signRequest,
} from '../../src/emulator/signature.js';
import { RequestAuthenticator, TIMESTAMP_WINDOW_MS } from '../../src/emulator/auth.js';
import { KmsApiError } from '../../src/emulator/errors.js';

t.test('POP percent-encoding', async (t) => {
  t.equal(popEncode("a b!'()*~"), 'a%20b%21%27%28%29%2A~', 'encodes like the POP spec');
  t.equal(popEncode('/'), '%2F', 'slash encoded');
  t.equal(popEncode('ü'), '%C3%BC', 'UTF-8 bytes');
  t.equal(
    canonicalQuery({ b: '2', a: '1', Signature: 'ignored' }),
    'a=1&b=2',
    'sorted by key, Signature left out',
  );
});

t.test('signatures equal those of the SDK (rpc-util getSignatureV1)', async (t) => {
  fc.assert(
    fc.property(
      // rpc-util copies parameters with plain assignment, so "__proto__" cannot be a name.
      fc.dictionary(
        fc.string({ minLength: 1 }).filter((name) => name !== '__proto__'),
        fc.string(),
      ),
      fc.string(),
      fc.constantFrom('POST', 'GET'),
      (params, secret, method) => {
        return (
          signRequest(method, params, secret) ===
          RpcUtil.default.getSignatureV1(params, method, secret)
        );
      },
    ),
  );
  t.pass('100 random parameter sets signed identically');
  const params = { Action: 'DescribeKey', KeyId: 'k' };
  const signature = signRequest('POST', params, 's');
  t.ok(signatureMatches('POST', params, 's', signature), 'a matching signature verifies');
  t.notOk(signatureMatches('POST', params, 't', signature), 'another secret does not');
  t.notOk(signatureMatches('GET', params, 's', signature), 'another method does not');
  t.notOk(signatureMatches('POST', params, 's', 'short'), 'a malformed signature does not');
});

function signed(overrides: Record<string, string>, secret = 'secret'): Record<string, string> {
  const params: Record<string, string> = {
    Action: 'DescribeKey',
    AccessKeyId: 'AK',
    SignatureMethod: 'HMAC-SHA1',
    SignatureVersion: '1.0',
    SignatureNonce: 'n1',
    Timestamp: '2026-11-28T09:00:00Z',
    ...overrides,
  };
  params.Signature = signRequest('POST', params, secret);
  return params;
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (error) {
    return error instanceof KmsApiError ? error.code : 'not a KmsApiError';
  }
}

t.test('RequestAuthenticator with a fake clock', async (t) => {
  let now = Date.parse('2026-11-28T09:00:00Z');
  const auth = new RequestAuthenticator([{ id: 'AK', secret: 'secret' }], () => now);
  t.equal(auth.verify('POST', signed({})), 'AK', 'returns the access key id');
  t.equal(
    codeOf(() => auth.verify('POST', signed({}))),
    'SignatureNonceUsed',
    'nonce reuse',
  );
  t.equal(
    codeOf(() => auth.verify('POST', signed({ SignatureNonce: 'n2' }, 'other'))),
    'SignatureDoesNotMatch',
    'wrong secret',
  );
  t.equal(
    codeOf(() => auth.verify('POST', signed({ SignatureNonce: 'n3' }, 'other'))),
    'SignatureDoesNotMatch',
    'a bad signature does not burn the nonce',
  );
  t.equal(
    codeOf(() => auth.verify('POST', signed({ SignatureNonce: 'n3' }))),
    'ok',
    'n3 still usable',
  );
  t.equal(
    codeOf(() => auth.verify('POST', signed({ AccessKeyId: 'nobody' }))),
    'InvalidAccessKeyId.NotFound',
    'unknown access key',
  );
  now += TIMESTAMP_WINDOW_MS + 1000;
  t.equal(
    codeOf(() => auth.verify('POST', signed({ SignatureNonce: 'n4' }))),
    'InvalidTimeStamp.Expired',
    'more than 15 minutes off',
  );
  now += 2 * TIMESTAMP_WINDOW_MS;
  const fresh = new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z');
  t.equal(
    codeOf(() => auth.verify('POST', signed({ Timestamp: fresh }))),
    'ok',
    'old nonces are forgotten once their timestamps could no longer pass',
  );
  t.equal(
    codeOf(() => auth.verify('POST', signed({ Timestamp: '2026-11-28 09:00:00' }))),
    'InvalidTimeStamp.Format',
    'malformed timestamp',
  );
  t.equal(
    codeOf(() => auth.verify('POST', signed({ SignatureVersion: '2.0' }))),
    'InvalidParameter',
    'only signature version 1.0',
  );
});
