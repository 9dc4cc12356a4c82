// Secret canaries: values planted in Secret data must never come back out of the guard — not in
// its logs (trace level), metrics, health endpoints, error bodies or admission responses.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { withEmulator } from '../helpers/emulator.js';
import { fixture, makeCertDir } from '../helpers/server.js';
import { missingBuild, postOversized, spawnServe } from '../helpers/reliability.js';
import { serveEnv } from '../helpers/reliability-scenarios.js';
import { httpGet, httpsCall } from '../helpers/http.js';
import { eventually } from '../helpers/eventually.js';

/** Every form a planted value could leak in: raw, base64 (as in `data`), and hex. */
function forms(canary: string): string[] {
  return [
    canary,
    Buffer.from(canary).toString('base64'),
    Buffer.from(canary).toString('base64url'),
    Buffer.from(canary).toString('hex'),
  ];
}

function leaks(text: string, canaries: string[]): string[] {
  return canaries.flatMap(forms).filter((form) => text.includes(form));
}

t.test('Secret canaries never leave the guard', { skip: missingBuild() ?? false }, async (t) => {
  const { emulator, keyId, admin } = await withEmulator(t);
  const certs = await makeCertDir();
  t.teardown(() => certs.cleanup());
  const child = await spawnServe(t, await serveEnv(emulator, keyId, certs, { LOG_LEVEL: 'trace' }));
  t.ok(
    await eventually(async () => (await httpGet(`${child.healthUrl}/readyz`)).status === 200, {
      timeoutMs: 10_000,
    }),
    'the serve child is ready',
  );

  const canaries = Array.from(
    { length: 6 },
    (_, index) => `CANARY${index}x${randomBytes(12).toString('hex')}`,
  );
  const [inData, inStringData, inOldData, inBadJson, inBigBody, inWrongType] = canaries as [
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  const review = fixture('secret-update');
  const object = review.request.object;
  const oldObject = review.request.oldObject;
  if (object === null || oldObject === null) throw new Error('fixture without objects');
  object.data = { token: Buffer.from(inData).toString('base64') };
  object.stringData = { password: inStringData };
  oldObject.data = { token: Buffer.from(inOldData).toString('base64') };
  const body = JSON.stringify(review);
  const url = (webhook: string) => `${child.admissionUrl}/${webhook}`;
  const call = (webhook: string, payload: string | Buffer, contentType = 'application/json') =>
    httpsCall(url(webhook), {
      ca: certs.caCert,
      body: payload,
      headers: { 'content-type': contentType },
      timeoutMs: 30_000,
    });

  const responses: { what: string; status: number; body: string }[] = [];
  const record = async (what: string, answer: Promise<{ status: number; body: string }>) => {
    const result = await answer;
    responses.push({ what, status: result.status, body: result.body });
    // A patch is base64: decode it so a leak inside it is seen too.
    try {
      const patch = (JSON.parse(result.body) as { response?: { patch?: string } }).response?.patch;
      if (patch !== undefined) {
        responses.push({
          what: `${what} (decoded patch)`,
          status: result.status,
          body: Buffer.from(patch, 'base64').toString('utf8'),
        });
      }
    } catch {
      // not JSON: scanned as text anyway
    }
    return result;
  };

  const allowed = await record('validate, key Enabled', call('validate', body));
  t.equal(allowed.status, 200, 'a canary Secret is admitted while the key is Enabled');
  const mutated = await record('mutate, key Enabled', call('mutate', body));
  t.match(mutated.body, /"patch"/, 'and stamped');

  await admin.disableKey();
  t.ok(
    await eventually(async () => (await httpGet(`${child.healthUrl}/healthz/kms`)).status === 503, {
      timeoutMs: 10_000,
    }),
    'the guard sees the key Disabled',
  );
  const denied = await record('validate, key Disabled', call('validate', body));
  t.match(denied.body, /"allowed":false/, 'a canary Secret is denied while the key is Disabled');
  await record('mutate, key Disabled', call('mutate', body));

  const badJson = JSON.stringify({ ...review, note: inBadJson }).slice(0, -7);
  const bad = await record('truncated JSON', call('validate', badJson));
  t.equal(bad.status, 400, 'truncated JSON with a canary gets 400');
  const badShape = JSON.stringify({ ...review, request: { uid: 'x', object: inBadJson } });
  const shape = await record('object is a string', call('validate', badShape));
  t.equal(shape.status, 400, 'a review whose object is a canary string gets 400');
  const proto = await record(
    'JSON with __proto__',
    call('validate', `{"__proto__":{"x":"${inBadJson}"},"request":{"uid":"p"}}`),
  );
  t.ok(proto.status < 500, `prototype-poisoning JSON is no 5xx (${proto.status})`);

  const big = fixture('secret-update');
  if (big.request.object !== null) {
    big.request.object.data = { big: Buffer.from(inBigBody.repeat(300_000)).toString('base64') };
  }
  const tooBig = await postOversized(url('mutate'), {
    ca: certs.caCert,
    body: JSON.stringify(big),
    timeoutMs: 30_000,
  });
  responses.push({ what: '8 MiB body', status: tooBig.status, body: tooBig.body });
  t.ok(
    tooBig.status === 413 || tooBig.reset !== undefined,
    `an oversized canary body gets 413 (or a reset before any answer: ${tooBig.reset ?? 'none'})`,
  );
  const wrongType = await record(
    'text/plain',
    call('validate', `token=${inWrongType}`, 'text/plain'),
  );
  t.equal(wrongType.status, 415, 'a canary in a text/plain body gets 415');
  const form = await record(
    'form body',
    call('mutate', `token=${inWrongType}`, 'application/x-www-form-urlencoded'),
  );
  t.equal(form.status, 415, 'a canary in a form body gets 415');

  for (const response of responses) {
    t.same(leaks(response.body, canaries), [], `no canary in the response: ${response.what}`);
  }

  const health: Record<string, string> = {};
  for (const path of ['/livez', '/readyz', '/healthz/kms', '/metrics']) {
    health[path] = (await httpGet(`${child.healthUrl}${path}`)).body;
    t.same(leaks(health[path] ?? '', canaries), [], `no canary on the health port: ${path}`);
  }
  t.match(health['/metrics'], /kms_secret_guard_admission/, '/metrics counted the admissions');

  // Stop the child so every log line is flushed before the scan.
  child.child.kill('SIGTERM');
  const exit = await child.exited;
  t.equal(exit.code, 0, 'the child stopped cleanly');
  const output = child.output();
  t.ok(output.length > 1_000, `the trace-level log was captured (${output.length} bytes)`);
  t.match(output, /"msg":"admission"/, 'it holds the admission lines');
  t.same(leaks(output, canaries), [], 'no canary anywhere in stdout/stderr at trace level');
  t.notOk(
    output.includes(emulator.accessKeySecret),
    'the KMS access key secret is not logged either',
  );
});
