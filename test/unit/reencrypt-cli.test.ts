import { join } from 'node:path';
import t from 'tap';
import { unreachableKubeconfig } from '../helpers/reencrypt.js';
import { runCaptured } from '../helpers/cli.js';

/** Usage and configuration mistakes stop `reencrypt` before any request, with exit code 2. */

// Never contacted: every case here ends before the first Kubernetes request.
const { dir, kubeconfigPath } = unreachableKubeconfig(t, 'ksg-reencrypt-cli-');

function run(
  argv: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return runCaptured(['reencrypt', ...argv], { env: { HOME: dir, ...env } });
}

const kms = ['--kms-key-id', 'key-1', '--kms-endpoint', '127.0.0.1:1', '--kms-protocol', 'http'];

t.test('--help lists the flags', async (t) => {
  const result = await run(['--help']);
  t.equal(result.code, 0, 'exit 0');
  for (const flag of [
    '--dry-run',
    '--namespace',
    '--selector',
    '--field-selector',
    '--concurrency',
    '--qps',
    '--kubeconfig',
    '--context',
    '--json',
    '--kms-key-id',
    '--page-size',
    '--request-timeout',
    '--rotation-settle',
    'ROTATION_SETTLE',
  ]) {
    t.match(result.stdout, flag, `mentions ${flag}`);
  }
});

t.test('configuration mistakes exit 2 with one line naming the fix', async (t) => {
  const cases: [string[], RegExp][] = [
    [['--kubeconfig', kubeconfigPath], /--kms-key-id \/ KMS_KEY_ID is required/],
    [
      [...kms, '--kubeconfig', kubeconfigPath, '--concurrency', '0'],
      /--concurrency must be a whole number from 1 to 64/,
    ],
    [[...kms, '--kubeconfig', kubeconfigPath, '--qps', 'fast'], /--qps must be a positive number/],
    [
      [...kms, '--kubeconfig', kubeconfigPath, '--page-size', '-5'],
      /--page-size must be a whole number/,
    ],
    [
      [...kms, '--kubeconfig', kubeconfigPath, '--progress-interval', 'often'],
      /--progress-interval must be a positive duration/,
    ],
    [
      [...kms, '--kubeconfig', kubeconfigPath, '--rotation-settle', 'soon'],
      /--rotation-settle \/ ROTATION_SETTLE must be a positive duration/,
    ],
    [[...kms, '--kubeconfig', join(dir, 'missing')], /kubeconfig file .*missing .*does not exist/],
    [[...kms, '--kubeconfig', kubeconfigPath, '--context', 'prod'], /--context prod is not in/],
    [
      [
        '--kms-key-id',
        'key-1',
        '--kms-endpoint',
        'kms.example.com',
        '--kms-protocol',
        'http',
        '--kubeconfig',
        kubeconfigPath,
      ],
      /http is refused/,
    ],
    [[...kms], /no Kubernetes connection found/],
  ];
  for (const [argv, message] of cases) {
    const result = await run(argv);
    t.equal(result.code, 2, `exit 2 for ${argv.slice(-2).join(' ')}`);
    t.match(result.stderr, message, `message for ${argv.slice(-2).join(' ')}`);
  }
});

t.test('ROTATION_SETTLE is read from the environment, the flag wins', async (t) => {
  const fromEnv = await run([...kms, '--kubeconfig', kubeconfigPath], { ROTATION_SETTLE: '0s' });
  t.equal(fromEnv.code, 2, 'a bad ROTATION_SETTLE exits 2');
  t.match(fromEnv.stderr, /ROTATION_SETTLE must be a positive duration/, 'names the variable');
  const flagWins = await run([...kms, '--kubeconfig', kubeconfigPath, '--rotation-settle', 'x'], {
    ROTATION_SETTLE: '5m',
  });
  t.match(flagWins.stderr, /got "x"/, 'the flag is the value checked');
});

t.test('KMS unreachable: exit 1, nothing attempted in the cluster', async (t) => {
  const result = await run([...kms, '--kubeconfig', kubeconfigPath], {
    ALIBABA_CLOUD_ACCESS_KEY_ID: 'LTAI-test',
    ALIBABA_CLOUD_ACCESS_KEY_SECRET: 'secret',
  });
  t.equal(result.code, 1, 'exit 1');
  t.match(result.stderr, /cannot read KMS key key-1: .*nothing was changed/, 'says what happened');
  t.equal(result.stdout, '', 'no summary: the sweep never started');
});
