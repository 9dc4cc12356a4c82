import t from 'tap';
import {
  isCredentialProblem,
  keyVerdictOf,
  KmsError,
  scrubMessage,
  toKmsError,
} from '../../src/kms/errors.js';

/** The shape @alicloud/tea-typescript's ResponseError has for an API error answer. */
function sdkApiError(code: string, status: number, message: string): Error {
  const requestId = 'ABCD-1234';
  return Object.assign(
    new Error(`${code}Error: code: ${status}, ${message} requestid: ${requestId}`),
    {
      code: `${code}Error`,
      data: { Code: code, Message: message, RequestId: requestId, HttpStatus: status },
    },
  );
}

function errno(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

t.test('SDK API errors', async (t) => {
  const table = [
    { code: 'Rejected.Throttling', status: 429, transient: true },
    { code: 'Throttling', status: 400, transient: true },
    { code: 'InternalFailure', status: 500, transient: true },
    { code: 'ServiceUnavailableTemporary', status: 503, transient: true },
    { code: 'Forbidden.KeyNotFound', status: 404, transient: false },
    { code: 'Forbidden.NoPermission', status: 403, transient: false },
    { code: 'InvalidAccessKeyId.NotFound', status: 404, transient: false },
  ];
  for (const row of table) {
    const error = toKmsError(sdkApiError(row.code, row.status, 'Something happened.'));
    t.equal(error.code, row.code, `${row.code}: code without the Error suffix`);
    t.equal(error.httpStatus, row.status, `${row.code}: HTTP status`);
    t.equal(error.requestId, 'ABCD-1234', `${row.code}: request id`);
    t.equal(error.transient, row.transient, `${row.code}: transient ${row.transient}`);
    t.equal(error.message, 'Something happened.', `${row.code}: KMS message`);
  }
  const noBody = toKmsError(
    Object.assign(new Error('FooError: code: 502, bad gateway requestid: undefined'), {
      code: 'FooError',
    }),
  );
  t.equal(noBody.code, 'Foo', 'code taken from the SDK name when the body has none');
  t.equal(noBody.httpStatus, 502, 'status parsed from the message');
  t.equal(noBody.transient, true, '5xx is transient');
});

t.test('network, timeout, TLS and credential errors', async (t) => {
  const refused = toKmsError(
    errno(
      'ECONNREFUSED',
      'connect ECONNREFUSED 127.0.0.1:1POST http://127.0.0.1:1/?Action=DescribeKey&AccessKeyId=LTAIsecret&Signature=abc failed.',
    ),
  );
  t.equal(refused.code, 'NetworkError', 'refused connection');
  t.equal(refused.transient, true, 'network trouble is transient');
  t.notMatch(refused.message, /AccessKeyId|Signature|LTAI/, 'the signed query string is scrubbed');

  const timeout = toKmsError(
    Object.assign(new Error('ReadTimeout: 2000. POST /?x=y failed.'), {
      name: 'RequestTimeoutError',
    }),
  );
  t.equal(timeout.code, 'Timeout', 'httpx timeouts');
  t.equal(timeout.transient, true, 'timeouts are transient');

  t.equal(toKmsError(errno('ECONNRESET', 'socket hang up')).code, 'NetworkError', 'reset');
  t.equal(toKmsError(new Error('socket hang up')).code, 'NetworkError', 'hang up without errno');
  const tls = toKmsError(errno('DEPTH_ZERO_SELF_SIGNED_CERT', 'self-signed certificate'));
  t.equal(tls.code, 'TlsError', 'TLS failures');
  t.equal(tls.transient, false, 'TLS failures are configuration');
  const html = toKmsError(new SyntaxError('Unexpected token < in JSON at position 0'));
  t.equal(html.code, 'InvalidResponse', 'a non-JSON answer');

  const chain = toKmsError(
    new Error(
      'unable to get credentials from any of the providers in the chain: unable to get credentials from enviroment variables, get metadata token failed',
    ),
  );
  t.equal(chain.code, 'CredentialsMissing', 'credential chain failure');
  t.equal(chain.transient, false, 'not transient');
  t.match(chain.message, /ALIBABA_CLOUD_ACCESS_KEY_ID/, 'names the access key variables');
  t.match(chain.message, /RRSA/, 'mentions RRSA');
  t.ok(isCredentialProblem(chain), 'a credential problem');

  const weird = toKmsError('boom');
  t.equal(weird.code, 'UnexpectedError', 'anything else');
  t.equal(weird.transient, false, 'unexpected errors are not retried fast');

  const existing = new KmsError({ code: 'X', message: 'y' });
  t.equal(toKmsError(existing), existing, 'a KmsError passes through');
});

t.test('verdicts', async (t) => {
  const mk = (code: string) => new KmsError({ code, message: code });
  t.equal(keyVerdictOf(mk('Forbidden.KeyNotFound')), 'NotFound', 'key not found');
  t.equal(keyVerdictOf(mk('Forbidden.AliasNotFound')), 'NotFound', 'alias not found');
  t.equal(keyVerdictOf(mk('Forbidden.NoPermission')), 'NoPermission', 'no permission');
  t.equal(keyVerdictOf(mk('InvalidAccessKeyId.NotFound')), undefined, 'bad access key: no verdict');
  t.ok(isCredentialProblem(mk('SignatureDoesNotMatch')), 'wrong secret is a credential problem');
  t.equal(scrubMessage('a ?b=c d'), 'a d', 'scrub removes query strings');
  const toSign =
    'Specified signature is not matched with our calculation. server string to sign is:POST&%2F&AccessKeyId%3DLTAIabc%26SecurityToken%3DCAN%252BARY%26Timestamp%3D1';
  t.equal(
    scrubMessage(toSign),
    'Specified signature is not matched with our calculation. server string to sign is: [redacted]',
    'the quoted string to sign is dropped',
  );
  t.equal(
    scrubMessage('denied for AccessKeyId=LTAIabc&SecurityToken%3DCAN%252BARY%26x and more'),
    'denied for AccessKeyId=[redacted]&SecurityToken%3D[redacted]%26x and more',
    'credential parameters left elsewhere are blanked',
  );
});

t.test('httpx request suffixes are dropped from messages', async (t) => {
  t.equal(
    scrubMessage('socket hang upPOST http://127.0.0.1:1/?Action=DescribeKey&Signature=x failed.'),
    'socket hang up',
    'hang up',
  );
  t.equal(
    scrubMessage('ReadTimeout: 2000. POST /?Action=DescribeKey failed.'),
    'ReadTimeout: 2000.',
    'read timeout',
  );
});
