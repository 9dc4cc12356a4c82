import t from 'tap';
import { unreachableKubeconfig } from '../helpers/reencrypt.js';
import { captureContext } from '../helpers/cli.js';
import { runCli } from '../../src/cli/program.js';
import { startEmulator } from '../../src/emulator/index.js';

/** `reencrypt` reads its target key through the real SDK from the emulator, as check does. */

// Nothing listens at its API server: the run is stopped as soon as the key was read.
const { dir, kubeconfigPath } = unreachableKubeconfig(t, 'ksg-reencrypt-kms-');

t.test(
  'an ARN key id is reduced to the key id before DescribeKey, as the monitor does',
  async (t) => {
    const emulator = await startEmulator({ keys: [''] });
    t.teardown(() => emulator.close());
    const keyId = emulator.keyIds[0] ?? '';
    // Another account's ARN: the emulator refuses it unless the client sends just the key id.
    const arn = `acs:kms:${emulator.regionId}:9999999999999999:key/${keyId}`;
    const captured = captureContext({
      env: {
        HOME: dir,
        ALIBABA_CLOUD_ACCESS_KEY_ID: emulator.accessKeyId,
        ALIBABA_CLOUD_ACCESS_KEY_SECRET: emulator.accessKeySecret,
      },
      // The key was accepted: stop before the sweep retries the unreachable cluster.
      onStderr: (text) => {
        if (text.includes('primary version')) captured.stop();
      },
    });
    await runCli(
      [
        'reencrypt',
        '--kms-key-id',
        arn,
        '--kms-endpoint',
        emulator.endpoint,
        '--kms-protocol',
        'http',
        '--kubeconfig',
        kubeconfigPath,
        '--dry-run',
      ],
      captured.ctx,
    );
    const stderr = captured.stderr();
    t.match(stderr, new RegExp(`key ${keyId} primary version \\S+`), 'the ARN key was accepted');
    t.notMatch(stderr, /cannot read KMS key/, 'no lookup failure');
    t.equal(emulator.requestCount('DescribeKey'), 1, 'one DescribeKey');
  },
);
