import t from 'tap';
import { runCli } from '../../src/cli/program.js';
import type { KeyStateView } from '../../src/kms/key-state.js';
import { systemClock } from '../../src/time/clock.js';
import { Kms, withEmulator } from '../helpers/emulator.js';
import { captureContext } from '../helpers/cli.js';

type Emulator = Awaited<ReturnType<typeof withEmulator>>['emulator'];

function envFor(emulator: Emulator, accessKeyId = emulator.accessKeyId) {
  return {
    ALIBABA_CLOUD_ACCESS_KEY_ID: accessKeyId,
    ALIBABA_CLOUD_ACCESS_KEY_SECRET: emulator.accessKeySecret,
    KMS_ENDPOINT: emulator.endpoint,
    KMS_PROTOCOL: 'http',
  };
}

async function check(env: Record<string, string>, args: string[]) {
  const { ctx, stdout, stderr } = captureContext({ env });
  const code = await runCli(['check', ...args], ctx);
  return { code, stdout: stdout(), stderr: stderr() };
}

async function checkJson(env: Record<string, string>, args: string[]) {
  const result = await check(env, [...args, '--json']);
  return { ...result, report: JSON.parse(result.stdout) as KeyStateView };
}

t.test('check: each key state', async (t) => {
  const { emulator, sdk, keyId, admin } = await withEmulator(t);
  const env = envFor(emulator);

  const enabled = await check(env, ['--kms-key-id', keyId]);
  t.equal(enabled.code, 0, 'Enabled: exit 0');
  t.match(enabled.stdout, /State:\s+Enabled/, 'human report shows the state');
  t.match(enabled.stdout, /Usable:\s+yes/, 'and that it is usable');
  t.match(enabled.stdout, /Primary version:\s+\S+/, 'and the primary version');
  t.match(
    enabled.stdout,
    /Rotation time:\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/,
    'and the rotation time',
  );
  t.equal(enabled.stderr, '', 'nothing on stderr');

  const json = await checkJson(env, ['--kms-key-id', keyId]);
  t.equal(json.code, 0, '--json: exit 0');
  for (const field of [
    'keyId',
    'state',
    'usable',
    'reason',
    'primaryKeyVersion',
    'lastRotation',
    'nextRotation',
    'deleteDate',
    'checkedAt',
    'ageSeconds',
  ]) {
    t.ok(field in json.report, `--json has ${field}`);
  }
  t.equal(json.report.keyId, keyId, 'keyId');
  t.equal(json.report.state, 'Enabled', 'state');
  t.equal(json.report.usable, true, 'usable');
  t.equal(json.report.reason, null, 'no reason');

  await sdk.createAlias(new Kms.CreateAliasRequest({ keyId, aliasName: 'alias/k8s' }));
  const alias = await checkJson(env, ['--kms-key-id', 'alias/k8s']);
  t.equal(alias.report.configuredKeyId, 'alias/k8s', 'alias as configured');
  t.equal(alias.report.keyId, keyId, 'alias resolved');
  const human = await check(env, ['--kms-key-id', 'alias/k8s']);
  t.match(human.stdout, `alias/k8s → ${keyId}`, 'human report shows configured and resolved id');

  await admin.disableKey();
  const disabled = await check(env, ['--kms-key-id', keyId]);
  t.equal(disabled.code, 1, 'Disabled: exit 1');
  t.match(disabled.stdout, /Usable:\s+no — KMS key \S+ is Disabled/, 'says why');
  t.match(disabled.stdout, /EnableKey/, 'and what to do');
  t.equal((await checkJson(env, ['--kms-key-id', keyId])).report.reason, 'Disabled', 'json reason');
  await admin.enableKey();

  await admin.scheduleKeyDeletion(7);
  const deleting = await checkJson(env, ['--kms-key-id', keyId]);
  t.equal(deleting.code, 1, 'PendingDeletion: exit 1');
  t.equal(deleting.report.state, 'PendingDeletion', 'state PendingDeletion');
  t.match(deleting.report.deleteDate, /^\d{4}-/, 'deletion date shown');
  const deletingHuman = await check(env, ['--kms-key-id', keyId]);
  t.match(deletingHuman.stdout, /CancelKeyDeletion/, 'tells how to cancel');
  await admin.cancelKeyDeletion();

  await admin.createKeyVersion();
  const rotated = await checkJson(env, ['--kms-key-id', keyId]);
  t.equal(rotated.code, 0, 'after rotation: exit 0');
  t.match(rotated.report.lastRotation, /^\d{4}-/, 'last rotation shown');
  t.equal(
    rotated.report.rotationTime,
    rotated.report.lastRotation,
    'rotation time = last rotation',
  );

  const external = await sdk.createKey(new Kms.CreateKeyRequest({ origin: 'EXTERNAL' }));
  const pendingImport = await checkJson(env, ['--kms-key-id', external.keyMetadata.keyId]);
  t.equal(pendingImport.code, 1, 'PendingImport: exit 1');
  t.equal(pendingImport.report.reason, 'PendingImport', 'reason PendingImport');

  const missing = await check(env, ['--kms-key-id', 'key-missing']);
  t.equal(missing.code, 1, 'NotFound: exit 1');
  t.match(missing.stdout, /State:\s+NotFound/, 'state NotFound');
  t.match(missing.stdout, /--kms-region/, 'suggests checking the region');
  t.equal(
    (await checkJson(env, ['--kms-key-id', 'alias/none'])).report.reason,
    'NotFound',
    'missing alias: NotFound',
  );

  emulator.faults.denyAccessKey(emulator.accessKeyId);
  const denied = await checkJson(env, ['--kms-key-id', keyId]);
  t.equal(denied.code, 1, 'NoPermission: exit 1');
  t.equal(denied.report.state, 'NoPermission', 'state NoPermission');
  t.equal(denied.report.error?.code, 'Forbidden.NoPermission', 'the KMS error code');
  emulator.faults.reset();
});

t.test('check: unreachable, slow and misconfigured', async (t) => {
  const { emulator, keyId } = await withEmulator(t);
  const env = envFor(emulator);

  emulator.faults.setLatency(3000);
  const slow = await check(env, ['--kms-key-id', keyId, '--timeout', '200ms']);
  t.equal(slow.code, 1, 'timeout: exit 1');
  t.match(slow.stderr, /cannot reach KMS at http:\/\/127\.0\.0\.1:\d+ \(Timeout/, 'one clear line');
  t.equal(slow.stderr.trim().split('\n').length, 1, 'exactly one line');
  emulator.faults.reset();

  emulator.faults.failShare(1, 'Rejected.Throttling');
  const throttled = await checkJson(env, ['--kms-key-id', keyId]);
  t.equal(throttled.code, 1, 'throttled: exit 1');
  t.equal(throttled.report.status, 'unknown', 'json status unknown');
  t.equal(throttled.report.error?.code, 'Rejected.Throttling', 'json error code');
  emulator.faults.reset();

  const wrongKey = await check(envFor(emulator, 'LTAInotknown0000000000'), ['--kms-key-id', keyId]);
  t.equal(wrongKey.code, 2, 'unknown access key: configuration, exit 2');
  t.match(wrongKey.stderr, /ALIBABA_CLOUD_ACCESS_KEY_ID/, 'names the variables to fix');

  await emulator.close();
  const down = await check(env, ['--kms-key-id', keyId]);
  t.equal(down.code, 1, 'unreachable: exit 1');
  t.match(
    down.stderr,
    /^kms-secret-guard: cannot reach KMS at .*NetworkError.*retry\.\n$/,
    'one line',
  );
  t.equal(down.stdout, '', 'no report without an answer');

  const noKey = await check(env, []);
  t.equal(noKey.code, 2, 'missing key id: exit 2');
  t.match(noKey.stderr, /--kms-key-id \/ KMS_KEY_ID is required/, 'names the setting');

  const badTimeout = await check(env, ['--kms-key-id', keyId, '--timeout', 'soon']);
  t.equal(badTimeout.code, 2, 'bad --timeout: exit 2');
  t.match(badTimeout.stderr, /--timeout must be a positive duration/, 'says so');

  const plainHttp = await check({ ...env, KMS_ENDPOINT: 'kms.example.com' }, [
    '--kms-key-id',
    keyId,
  ]);
  t.equal(plainHttp.code, 2, 'http to a non-loopback endpoint: exit 2');
});

t.test('check takes its clock from the context (checkedAt, lookup time)', async (t) => {
  const { emulator, keyId } = await withEmulator(t);
  const { ctx, stdout } = captureContext({ env: envFor(emulator) });
  const fixed = Date.parse('2030-01-02T03:04:05Z');
  const code = await runCli(['check', '--kms-key-id', keyId, '--json'], {
    ...ctx,
    clock: { ...systemClock, now: () => fixed },
  });
  const report = JSON.parse(stdout()) as KeyStateView;
  t.equal(code, 0, 'usable');
  t.equal(report.checkedAt, '2030-01-02T03:04:05Z', 'checkedAt is the injected time');
  t.equal(report.lastSuccessAt, '2030-01-02T03:04:05Z', 'so is the lookup time');
  t.equal(report.ageSeconds, 0, 'age measured on the same clock');
});
