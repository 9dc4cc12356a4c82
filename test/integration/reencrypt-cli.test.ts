import t from 'tap';
import { unreachableKubeconfig } from '../helpers/reencrypt.js';
import { captureContext } from '../helpers/cli.js';
import { runCli } from '../../src/cli/program.js';
import { startEmulator, type RunningEmulator } from '../../src/emulator/index.js';
import { emulatorKmsFlags } from '../helpers/emulator.js';

/** `reencrypt` reads its target key through the real SDK from the emulator, as check does. */

// Nothing listens at its API server: the run is stopped as soon as the key was read.
const { dir, kubeconfigPath } = unreachableKubeconfig(t, 'ksg-reencrypt-kms-');

/** The emulator's credentials, as the default credential chain reads them. */
function emulatorEnv(emulator: RunningEmulator): Record<string, string> {
  return {
    HOME: dir,
    ALIBABA_CLOUD_ACCESS_KEY_ID: emulator.accessKeyId,
    ALIBABA_CLOUD_ACCESS_KEY_SECRET: emulator.accessKeySecret,
  };
}

t.test(
  'an ARN key id is reduced to the key id before DescribeKey, as the monitor does',
  async (t) => {
    const emulator = await startEmulator({ keys: [''] });
    t.teardown(() => emulator.close());
    const keyId = emulator.keyIds[0] ?? '';
    // Another account's ARN: the emulator refuses it unless the client sends just the key id.
    const arn = `acs:kms:${emulator.regionId}:9999999999999999:key/${keyId}`;
    const captured = captureContext({
      env: emulatorEnv(emulator),
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

t.test(
  'right after a rotation a real run waits for the settle time, with progress; SIGTERM ends the wait and nothing is changed',
  async (t) => {
    // A key just created: its rotation time (CreationDate) is now.
    const emulator = await startEmulator({ keys: [''] });
    t.teardown(() => emulator.close());
    const keyId = emulator.keyIds[0] ?? '';
    const captured = captureContext({
      env: emulatorEnv(emulator),
      // The first progress line of the wait: stop as SIGTERM would.
      onStderr: () => {
        if (captured.stderr().includes('left')) captured.stop('SIGTERM');
      },
    });
    const code = await runCli(
      [
        'reencrypt',
        ...emulatorKmsFlags(emulator, keyId),
        '--kubeconfig',
        kubeconfigPath,
        '--rotation-settle',
        '10m',
        '--progress-interval',
        '50ms',
      ],
      captured.ctx,
    );
    const stderr = captured.stderr();
    const waited =
      /waiting (\S+) until the rotation has settled \(\S+Z: rotation time \+ --rotation-settle 10m\)/.exec(
        stderr,
      );
    t.ok(waited, 'it says how long it waits and until when');
    t.match(
      waited?.[1],
      /^(10m|601s)$/,
      'never longer than the settle time and the boundary second (managedFields keep whole seconds)',
    );
    t.match(
      stderr,
      /waiting for the rotation to settle: \S+ left/,
      'a progress line while waiting',
    );
    t.equal(code, 1, 'stopped while waiting: exit 1');
    t.match(
      stderr,
      /interrupted while waiting for the rotation to settle; nothing was changed/,
      'says nothing was changed',
    );
    t.notMatch(stderr, /cannot|failed/, 'no request to the (unreachable) cluster was attempted');
  },
);
