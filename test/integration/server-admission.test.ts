import t, { type Test } from 'tap';
import { Agent } from 'node:https';
import jsonPatch from 'fast-json-patch';
import { createLogger } from '../../src/logging/logger.js';
import { startServer, type RunningServer } from '../../src/server/serve.js';
import type { ServeSettings } from '../../src/config/settings.js';
import { UNUSABLE_REASONS } from '../../src/kms/vocabulary.js';
import {
  decodePatch,
  fakeSource,
  fixture,
  FIXTURE_NAMES,
  makeCertDir,
  serveSettings,
  unknownSnapshot,
  unusableSnapshot,
  usableSnapshot,
  type CertDir,
  type FakeSnapshotSource,
  injectAdmission,
  type InjectedAdmission,
} from '../helpers/server.js';
import { httpGet, httpsCall, postReview } from '../helpers/http.js';
import { KEY_ID } from '../helpers/kms.js';
import { LogCapture } from '../helpers/logs.js';

const UNUSABLE = UNUSABLE_REASONS;

interface Harness {
  server: RunningServer;
  source: FakeSnapshotSource;
  agent: Agent;
  logs: LogCapture;
}

let certs: CertDir;

t.before(async () => {
  certs = await makeCertDir();
});
t.teardown(async () => {
  await certs.cleanup();
});

async function start(t: Test, overrides: Partial<ServeSettings> = {}): Promise<Harness> {
  const source = fakeSource();
  const logs = new LogCapture();
  const server = await startServer({
    settings: serveSettings(certs, overrides),
    logger: createLogger('info', logs),
    monitor: source,
    host: '127.0.0.1',
  });
  // One keep-alive agent per server, like the API server's connection reuse.
  const agent = new Agent({ keepAlive: true, ca: certs.caCert });
  t.teardown(async () => {
    agent.destroy();
    await server.close();
  });
  return { server, source, agent, logs };
}

/** Over real HTTPS to a started server, or through inject() to an injected app. */
async function review(h: Harness | InjectedAdmission, path: string, body: unknown) {
  if (!('server' in h)) return h.review(path, body);
  const result = await postReview(`${h.server.admissionUrl}${path}`, body, certs.caCert, {
    agent: h.agent,
  });
  return result;
}

t.test('fixture reviews with a usable key', async (t) => {
  const h = await injectAdmission(t);
  for (const name of FIXTURE_NAMES) {
    const sent = fixture(name);
    const validate = await review(h, '/validate', sent);
    t.equal(validate.status, 200, `${name} validate: HTTP 200`);
    const answer = validate.answer();
    t.equal(answer.apiVersion, 'admission.k8s.io/v1', `${name}: apiVersion`);
    t.equal(answer.kind, 'AdmissionReview', `${name}: kind`);
    t.equal(answer.response.uid, sent.request.uid, `${name}: uid echoed`);
    t.equal(answer.response.allowed, true, `${name}: allowed`);
    t.notOk('patch' in answer.response, `${name}: validate never patches`);

    const mutate = (await review(h, '/mutate', sent)).answer();
    t.equal(mutate.response.uid, sent.request.uid, `${name} mutate: uid echoed`);
    t.equal(mutate.response.allowed, true, `${name} mutate: allowed`);
    const guarded = name.startsWith('secret-') && name !== 'secret-delete';
    if (!guarded) {
      t.notOk('patch' in mutate.response, `${name}: not a Secret write, no patch`);
      t.notOk('auditAnnotations' in mutate.response, `${name}: untouched`);
      continue;
    }
    t.equal(mutate.response.patchType, 'JSONPatch', `${name}: JSONPatch`);
    const patch = decodePatch(mutate) as jsonPatch.Operation[];
    const result = jsonPatch.applyPatch(sent.request.object!, patch, true, false).newDocument;
    t.same(
      result.metadata.annotations,
      {
        ...sent.request.object!.metadata.annotations,
        'kms-secret-guard.io/key-id': KEY_ID,
        'kms-secret-guard.io/key-version': 'v-2026-11-28-primary',
        'encryption-key-rotation-time': '2026-11-28T09:00:00Z',
      },
      `${name}: stamped annotations, others kept`,
    );
    t.same(
      result.data ?? result.stringData,
      sent.request.object!.data ?? sent.request.object!.stringData,
      `${name}: data untouched`,
    );
  }
});

t.test('each key state in enforce mode', async (t) => {
  const h = await injectAdmission(t);
  for (const reason of UNUSABLE) {
    h.source.current = unusableSnapshot(reason);
    for (const name of [
      'secret-create-generatename',
      'secret-update',
      'secret-create-dryrun',
    ] as const) {
      const sent = fixture(name);
      const answer = (await review(h, '/validate', sent)).answer();
      t.equal(answer.response.allowed, false, `${reason}/${name}: denied`);
      t.equal(answer.response.status?.code, 403, `${reason}/${name}: 403`);
      t.match(answer.response.status?.message, KEY_ID, `${reason}/${name}: names the key`);
      t.equal(answer.response.auditAnnotations?.['key-reason'], reason, `${reason}: audit reason`);
      const mutate = (await review(h, '/mutate', sent)).answer();
      t.equal(mutate.response.allowed, true, `${reason}/${name}: mutate allows`);
      t.notOk('patch' in mutate.response, `${reason}/${name}: no patch`);
    }
    const deleted = (await review(h, '/validate', fixture('secret-delete'))).answer();
    t.equal(deleted.response.allowed, true, `${reason}: DELETE always allowed`);
    const other = (await review(h, '/validate', fixture('configmap-create'))).answer();
    t.equal(other.response.allowed, true, `${reason}: a ConfigMap passes`);
  }
  h.source.current = unknownSnapshot('NeverFetched');
  const unknown = (await review(h, '/validate', fixture('secret-update'))).answer();
  t.equal(unknown.response.allowed, true, 'unknown + on-unknown allow: allowed');
  t.match(unknown.response.warnings, [/state unknown/], 'with a warning');
  t.equal(unknown.response.auditAnnotations?.['key-state'], 'Unknown', 'audit key-state Unknown');
});

t.test('on-unknown deny and warn mode', async (t) => {
  const deny = await injectAdmission(t, { onUnknown: 'deny' });
  deny.source.current = unknownSnapshot('Stale');
  const denied = (await review(deny, '/validate', fixture('secret-create-generatename'))).answer();
  t.equal(denied.response.allowed, false, 'on-unknown deny: unknown key denies');
  t.equal(denied.response.status?.code, 403, 'with 403');
  t.match(denied.response.status?.message, /--on-unknown deny/, 'naming the setting');

  const warn = await injectAdmission(t, { mode: 'warn' });
  for (const reason of UNUSABLE) {
    warn.source.current = unusableSnapshot(reason);
    const answer = (await review(warn, '/validate', fixture('secret-update'))).answer();
    t.equal(answer.response.allowed, true, `warn mode, ${reason}: allowed`);
    t.equal(answer.response.warnings?.length, 1, `warn mode, ${reason}: one warning`);
    t.ok(
      (answer.response.warnings?.[0] ?? '').length < 120,
      `warn mode, ${reason}: warning is short`,
    );
    t.equal(answer.response.auditAnnotations?.decision, 'warned', `warn mode, ${reason}: audited`);
  }
});

t.test('a 1 MiB Secret UPDATE (object + oldObject) is admitted', async (t) => {
  const h = await start(t);
  const sent = fixture('secret-update');
  const big = Buffer.alloc(1024 * 1024, 7).toString('base64');
  sent.request.object!.data = { blob: big };
  sent.request.oldObject!.data = { blob: big };
  const body = JSON.stringify(sent);
  t.ok(body.length > 2 * 1024 * 1024, 'the review is over 2 MiB on the wire');
  const result = await review(h, '/validate', sent);
  t.equal(result.status, 200, 'HTTP 200');
  t.equal(result.answer().response.allowed, true, 'allowed');
  const mutated = (await review(h, '/mutate', sent)).answer();
  t.equal(mutated.response.patchType, 'JSONPatch', 'and stamped');
});

t.test('bad input is answered with the right status and a clear message, never 500', async (t) => {
  const h = await start(t);
  const url = `${h.server.admissionUrl}/validate`;
  const call = (body: string | Buffer, headers: Record<string, string> = {}, method = 'POST') =>
    httpsCall(url, { ca: certs.caCert, body, headers, method, agent: h.agent });

  const tooBig = Buffer.alloc(7 * 1024 * 1024 + 1, 0x20);
  const cases: [string, () => ReturnType<typeof call>, number, RegExp][] = [
    ['a body over 7 MiB', () => call(tooBig), 413, /larger than .* \(7 MiB\)/],
    [
      'text/plain',
      () => call('{}', { 'content-type': 'text/plain' }),
      415,
      /Content-Type must be application\/json/,
    ],
    [
      'application/yaml',
      () => call('a: 1', { 'content-type': 'application/yaml' }),
      415,
      /Content-Type must be application\/json/,
    ],
    [
      'malformed JSON',
      () => call('{"request": {"uid": "x", "object": {"data": {"k": "SECRET'),
      400,
      /not valid JSON/,
    ],
    ['an empty body', () => call(''), 400, /empty|not valid JSON/],
    [
      'missing request',
      () => call('{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}'),
      400,
      /no "request"/,
    ],
    ['missing uid', () => call('{"request":{"operation":"CREATE"}}'), 400, /no "uid"/],
    ['a JSON array', () => call('[]'), 400, /must be a JSON object/],
    ['a JSON null', () => call('null'), 400, /must be a JSON object/],
    [
      'v1beta1',
      () => call('{"apiVersion":"admission.k8s.io/v1beta1","request":{"uid":"u"}}'),
      400,
      /only admission\.k8s\.io\/v1/,
    ],
    ['GET', () => call('', {}, 'GET'), 404, /POST \/validate/],
    ['no Content-Type', () => call('{}', { 'content-type': '' }), 415, /Content-Type must be/],
  ];
  for (const [label, send, status, message] of cases) {
    const result = await send();
    t.equal(result.status, status, `${label}: HTTP ${status}`);
    t.match(result.json().message, message, `${label}: clear message`);
    t.notMatch(result.body, /SECRET/, `${label}: the body is not echoed`);
  }
  const after = await review(h, '/validate', fixture('secret-update'));
  t.equal(after.status, 200, 'the server still answers after bad input');

  // "__proto__" is a valid Secret data key: answered, and no prototype is polluted.
  const withProto = fixture('secret-update');
  const protoBody = JSON.stringify(withProto).replace(
    '"data":{',
    '"data":{"__proto__":{"polluted":"yes"},',
  );
  t.ok(protoBody.includes('"__proto__"'), 'the review carries a __proto__ data key');
  const protoAnswer = await call(protoBody);
  t.equal(protoAnswer.status, 200, 'a __proto__ data key is answered 200');
  t.equal(
    (Object.prototype as Record<string, unknown>).polluted,
    undefined,
    'Object.prototype is not polluted',
  );

  // What kube-apiserver actually sends: ?timeout=… on the path, JSON with a charset.
  const apiserverStyle = await httpsCall(`${url}?timeout=10s`, {
    ca: certs.caCert,
    agent: h.agent,
    body: JSON.stringify(fixture('secret-update')),
    headers: { 'content-type': 'application/json; charset=utf-8', accept: 'application/json, */*' },
  });
  t.equal(apiserverStyle.status, 200, '?timeout=10s and a charset are accepted');
  t.equal(apiserverStyle.answer().response.allowed, true, 'and answered');
});

t.test('health listener: livez, readyz, healthz/kms and metrics', async (t) => {
  const h = await start(t);
  t.equal((await httpGet(`${h.server.healthUrl}/livez`)).status, 200, '/livez 200');
  t.equal((await httpGet(`${h.server.healthUrl}/readyz`)).status, 200, '/readyz 200');

  const usable = await httpGet(`${h.server.healthUrl}/healthz/kms`);
  t.equal(usable.status, 200, '/healthz/kms 200 while usable');
  t.match(
    usable.json(),
    {
      keyId: KEY_ID,
      state: 'Enabled',
      usable: true,
      reason: null,
      primaryKeyVersion: 'v-2026-11-28-primary',
      lastRotation: '2026-11-28T09:00:00Z',
      nextRotation: '2027-05-27T09:00:00Z',
      deleteDate: null,
      checkedAt: '2026-11-28T10:00:00Z',
      ageSeconds: 5,
    },
    'the key report has every field',
  );
  h.source.current = unusableSnapshot('PendingDeletion');
  const pending = await httpGet(`${h.server.healthUrl}/healthz/kms`);
  t.equal(pending.status, 503, '/healthz/kms 503 while unusable');
  t.match(
    pending.json(),
    { state: 'PendingDeletion', usable: false, deleteDate: '2026-12-05T10:00:00Z' },
    'reports the deletion date',
  );
  t.equal(
    (await httpGet(`${h.server.healthUrl}/readyz`)).status,
    200,
    '/readyz ignores the key state',
  );
  h.source.current = unknownSnapshot('NeverFetched');
  t.equal(
    (await httpGet(`${h.server.healthUrl}/healthz/kms`)).status,
    503,
    '/healthz/kms 503 while unknown',
  );

  h.source.current = usableSnapshot();
  await review(h, '/validate', fixture('secret-update'));
  await review(h, '/mutate', fixture('secret-update'));
  h.source.current = unusableSnapshot('Disabled');
  await review(h, '/validate', fixture('secret-create-generatename'));
  const odd = fixture('secret-update');
  odd.request.operation = 'X'.repeat(40);
  await review(h, '/validate', odd);
  h.server.metrics.onKmsCall({ action: 'DescribeKey', result: 'ok', durationSeconds: 0.02 });
  h.server.metrics.onKmsCall({
    action: 'DescribeKey',
    result: 'Rejected.Throttling',
    durationSeconds: 0.2,
  });
  h.source.current = usableSnapshot();
  const metrics = await httpGet(`${h.server.healthUrl}/metrics`);
  t.equal(metrics.status, 200, '/metrics 200');
  t.match(metrics.headers['content-type'], /text\/plain/, 'Prometheus text format');
  const text = metrics.body;
  const expected = [
    'kms_secret_guard_admission_requests_total{webhook="validate",operation="UPDATE",decision="allowed"} 1',
    'kms_secret_guard_admission_requests_total{webhook="mutate",operation="UPDATE",decision="patched"} 1',
    'kms_secret_guard_admission_requests_total{webhook="validate",operation="CREATE",decision="denied"} 1',
    'kms_secret_guard_admission_requests_total{webhook="validate",operation="other",decision="allowed"} 1',
    'kms_secret_guard_admission_duration_seconds_bucket{le="0.0001",webhook="validate"}',
    'kms_secret_guard_kms_calls_total{action="DescribeKey",result="ok"} 1',
    'kms_secret_guard_kms_calls_total{action="DescribeKey",result="Rejected.Throttling"} 1',
    'kms_secret_guard_kms_call_duration_seconds_count{action="DescribeKey"} 2',
    'kms_secret_guard_key_state{state="Enabled"} 1',
    'kms_secret_guard_key_state{state="Disabled"} 0',
    'kms_secret_guard_key_usable 1',
    'kms_secret_guard_key_status{status="usable"} 1',
    'kms_secret_guard_key_state_age_seconds 5',
    `kms_secret_guard_key_last_rotation_timestamp_seconds ${Date.parse('2026-11-28T09:00:00Z') / 1000}`,
    `kms_secret_guard_key_next_rotation_timestamp_seconds ${Date.parse('2027-05-27T09:00:00Z') / 1000}`,
  ];
  for (const line of expected) t.ok(text.includes(line), `metrics include ${line}`);
  h.source.current = unusableSnapshot('PendingDeletion');
  const later = (await httpGet(`${h.server.healthUrl}/metrics`)).body;
  t.ok(later.includes('kms_secret_guard_key_usable 0'), 'key_usable follows the snapshot');
  t.ok(
    later.includes(
      `kms_secret_guard_key_deletion_timestamp_seconds ${Date.parse('2026-12-05T10:00:00Z') / 1000}`,
    ),
    'deletion timestamp exported',
  );
});

t.test('readyz waits for the first key lookup, not for a usable key', async (t) => {
  const source = fakeSource(unknownSnapshot('NeverFetched'));
  let finish: () => void = () => undefined;
  const firstLookup = new Promise<void>((resolve) => {
    finish = resolve;
  });
  source.current = { ...unknownSnapshot('NeverFetched'), firstLookupDone: false };
  const server = await startServer({
    settings: serveSettings(certs),
    logger: createLogger('silent'),
    monitor: Object.assign(source, { firstLookup }),
    host: '127.0.0.1',
  });
  t.teardown(() => server.close());
  const before = await httpGet(`${server.healthUrl}/readyz`);
  t.equal(before.status, 503, '503 before the first lookup finished');
  t.match(before.json().reason, /first KMS key lookup/, 'says why');
  finish();
  await firstLookup;
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(
    (await httpGet(`${server.healthUrl}/readyz`)).status,
    200,
    '200 after it failed (state unknown)',
  );
});
