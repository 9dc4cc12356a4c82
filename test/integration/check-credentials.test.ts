import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runCli } from '../../src/cli/program.js';
import { createKmsClient, type KmsError } from '../../src/kms/client.js';
import { sdkError, withEmulator } from '../helpers/emulator.js';
import { emulatorKmsSettings } from '../helpers/kms.js';
import { captureContext } from '../helpers/cli.js';

// The default credential chain reads the process environment and the home directory: this
// file (its own process under tap) empties both so the chain finds nothing, deterministically.
const home = await mkdtemp(join(tmpdir(), 'kms-credentials-'));
t.teardown(() => rm(home, { recursive: true, force: true }));
for (const name of Object.keys(process.env)) {
  if (name.startsWith('ALIBABA_CLOUD_') || name.startsWith('ALICLOUD_')) {
    Reflect.deleteProperty(process.env, name);
  }
}
process.env.HOME = home;
process.env.ALIBABA_CLOUD_ECS_METADATA_DISABLED = 'true';

t.test('check without credentials: one line, exit 2', async (t) => {
  const { emulator, keyId } = await withEmulator(t);
  const { ctx, stdout, stderr } = captureContext({
    env: { KMS_ENDPOINT: emulator.endpoint, KMS_PROTOCOL: 'http', KMS_KEY_ID: keyId },
  });
  const code = await runCli(['check'], ctx);
  t.equal(code, 2, 'missing credentials are a configuration error');
  t.equal(stdout(), '', 'no report');
  const line = stderr();
  t.equal(line.trim().split('\n').length, 1, 'one line');
  t.match(line, /no Alibaba Cloud credentials found/, 'says what is missing');
  t.match(
    line,
    /ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET/,
    'access key variables',
  );
  t.match(line, /RRSA/, 'and the RRSA alternative');
  t.equal(emulator.requestCount(), 0, 'no KMS request was sent');
});

t.test('the default chain recovers once credentials appear', async (t) => {
  const { emulator, keyId } = await withEmulator(t);
  const api = createKmsClient(emulatorKmsSettings(emulator, keyId));
  const missing = (await sdkError(api.describeKey(keyId))) as unknown as KmsError;
  t.equal(missing.code, 'CredentialsMissing', 'no credentials: CredentialsMissing');
  t.equal(missing.transient, false, 'not transient');
  process.env.ALIBABA_CLOUD_ACCESS_KEY_ID = emulator.accessKeyId;
  process.env.ALIBABA_CLOUD_ACCESS_KEY_SECRET = emulator.accessKeySecret;
  t.teardown(() => {
    Reflect.deleteProperty(process.env, 'ALIBABA_CLOUD_ACCESS_KEY_ID');
    Reflect.deleteProperty(process.env, 'ALIBABA_CLOUD_ACCESS_KEY_SECRET');
  });
  const meta = await api.describeKey(keyId);
  t.equal(meta.keyId, keyId, 'the same client signs with the chain once it finds credentials');
});
