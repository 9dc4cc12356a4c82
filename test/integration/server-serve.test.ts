import t from 'tap';
import { runServe } from '../../src/cli/commands/serve.js';
import { runCli } from '../../src/cli/program.js';
import type { CliContext } from '../../src/cli/context.js';
import type { RunningServer } from '../../src/server/serve.js';
import { withEmulator } from '../helpers/emulator.js';
import { decodePatch, fixture, makeCertDir, serveSettings } from '../helpers/server.js';
import { eventually } from '../helpers/eventually.js';
import { httpGet, postReview } from '../helpers/http.js';
import { LogCapture } from '../helpers/logs.js';

function context(env: Record<string, string> = {}) {
  const stop = new AbortController();
  const stdout = new LogCapture();
  const stderr = new LogCapture();
  const ctx: CliContext = { env, stdout, stderr, stopSignal: stop.signal, exitCode: -1 };
  return { ctx, stop, stdout, stderr };
}

t.test('serve against the KMS emulator: real SDK, real HTTPS, graceful stop', async (t) => {
  const { emulator, keyId, admin } = await withEmulator(t);
  const certs = await makeCertDir();
  t.teardown(() => certs.cleanup());
  const { ctx, stop, stdout } = context();
  t.teardown(() => {
    stop.abort('teardown');
  });
  let listening: (server: RunningServer) => void = () => undefined;
  const up = new Promise<RunningServer>((resolve) => {
    listening = resolve;
  });
  const settings = serveSettings(certs, {
    kms: {
      keyId,
      regionId: emulator.regionId,
      endpoint: emulator.endpoint,
      protocol: emulator.protocol,
    },
    monitor: { refreshIntervalMs: 200, maxStalenessMs: 5_000 },
  });
  const running = runServe(ctx, settings, {
    host: '127.0.0.1',
    credential: { accessKeyId: emulator.accessKeyId, accessKeySecret: emulator.accessKeySecret },
    onListening: (server) => {
      listening(server);
    },
  });
  const server = await up;

  t.ok(
    await eventually(async () => (await httpGet(`${server.healthUrl}/readyz`)).status === 200),
    '/readyz turns 200 after the first lookup',
  );
  const kms = (await httpGet(`${server.healthUrl}/healthz/kms`)).answer();
  t.match(kms, { keyId, state: 'Enabled', usable: true }, '/healthz/kms reports the emulator key');

  const allowed = (
    await postReview(
      `${server.admissionUrl}/validate`,
      fixture('secret-create-generatename'),
      certs.caCert,
    )
  ).answer();
  t.equal(allowed.response.allowed, true, 'a Secret CREATE is allowed while the key is Enabled');
  const mutated = (
    await postReview(
      `${server.admissionUrl}/mutate`,
      fixture('secret-create-generatename'),
      certs.caCert,
    )
  ).answer();
  const patch = decodePatch(mutated);
  t.match(
    patch,
    [{ op: 'add', path: '/metadata/annotations', value: { 'kms-secret-guard.io/key-id': keyId } }],
    'the mutation stamps the resolved key id',
  );

  await admin.disableKey();
  t.ok(
    await eventually(async () => {
      const answer = (
        await postReview(`${server.admissionUrl}/validate`, fixture('secret-update'), certs.caCert)
      ).answer();
      return !answer.response.allowed;
    }),
    'after DisableKey (real SDK) the next refresh makes Secret writes denied',
  );
  const denied = (
    await postReview(`${server.admissionUrl}/validate`, fixture('secret-update'), certs.caCert)
  ).answer();
  t.match(
    denied.response.status?.message,
    /is Disabled.*EnableKey/,
    'the denial explains the remedy',
  );
  t.equal(
    (await httpGet(`${server.healthUrl}/readyz`)).status,
    200,
    '/readyz stays 200 while the key is Disabled',
  );

  const metrics = (await httpGet(`${server.healthUrl}/metrics`)).body;
  t.match(
    metrics,
    /kms_secret_guard_kms_calls_total\{action="DescribeKey",result="ok"\} \d+/,
    'KMS calls counted via onKmsCall',
  );
  t.match(
    metrics,
    /kms_secret_guard_key_state\{state="Disabled"\} 1/,
    'key state gauge follows KMS',
  );

  stop.abort('SIGTERM');
  await running;
  t.equal(ctx.exitCode, 0, 'serve exits 0 after the stop signal');
  await t.rejects(httpGet(`${server.healthUrl}/livez`), 'listeners are closed');
  const lines = stdout.lines();
  t.ok(
    lines.some((line) => line.msg === 'admission'),
    'JSON logs went to ctx.stdout',
  );
});

t.test('admissions never call KMS: the hot path reads only the snapshot', async (t) => {
  const { emulator, keyId } = await withEmulator(t);
  const certs = await makeCertDir();
  t.teardown(() => certs.cleanup());
  const { ctx, stop } = context();
  let listening: (server: RunningServer) => void = () => undefined;
  const up = new Promise<RunningServer>((resolve) => {
    listening = resolve;
  });
  const running = runServe(
    ctx,
    serveSettings(certs, {
      kms: { keyId, regionId: emulator.regionId, endpoint: emulator.endpoint, protocol: 'http' },
      monitor: { refreshIntervalMs: 3_600_000, maxStalenessMs: 7_200_000 },
      logLevel: 'silent',
    }),
    {
      host: '127.0.0.1',
      credential: { accessKeyId: emulator.accessKeyId, accessKeySecret: emulator.accessKeySecret },
      onListening: (server) => {
        listening(server);
      },
    },
  );
  t.teardown(async () => {
    stop.abort('teardown');
    await running;
  });
  const server = await up;
  t.ok(
    await eventually(async () => (await httpGet(`${server.healthUrl}/readyz`)).status === 200),
    'ready after the first lookup',
  );
  const before = emulator.requestCount();
  for (let index = 0; index < 20; index += 1) {
    const answer = await postReview(
      `${server.admissionUrl}/validate`,
      fixture('secret-update'),
      certs.caCert,
    );
    t.equal(answer.status, 200, `admission ${index} answered`);
  }
  t.equal(emulator.requestCount(), before, '20 admissions made no KMS call');
});

t.test('serve with bad configuration: one line, exit code 2', async (t) => {
  const missing = context({});
  t.equal(await runCli(['serve'], missing.ctx), 2, 'missing TLS files → exit 2');
  t.match(
    missing.stderr.text(),
    /^kms-secret-guard: --tls-cert \/ TLS_CERT_FILE is required/,
    'names the setting',
  );
  t.equal(missing.stderr.text().trim().split('\n').length, 1, 'one line');

  const unreadable = context({
    TLS_CERT_FILE: '/nonexistent/tls.crt',
    TLS_KEY_FILE: '/nonexistent/tls.key',
    KMS_KEY_ID: 'key-1',
    KMS_ENDPOINT: '127.0.0.1:1',
    KMS_PROTOCOL: 'http',
  });
  t.equal(await runCli(['serve'], unreadable.ctx), 2, 'unreadable TLS files → exit 2');
  t.equal(unreadable.stdout.text(), '', 'no KMS lookup was logged: configuration is checked first');
  t.match(
    unreadable.stderr.text(),
    /cannot read --tls-cert \/ TLS_CERT_FILE file \/nonexistent\/tls\.crt/,
    'says which file',
  );

  const badMode = context({
    TLS_CERT_FILE: 'a',
    TLS_KEY_FILE: 'b',
    KMS_KEY_ID: 'k',
    KMS_REGION: 'cn-hangzhou',
  });
  t.equal(await runCli(['serve', '--mode', 'audit'], badMode.ctx), 2, 'bad --mode → exit 2');
  t.match(
    badMode.stderr.text(),
    /--mode \/ GUARD_MODE must be one of enforce, warn/,
    'names the choices',
  );
});
