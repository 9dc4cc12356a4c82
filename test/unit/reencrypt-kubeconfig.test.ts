import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import t from 'tap';
import { ConfigError } from '../../src/config/errors.js';
import { resolveKubeconfig } from '../../src/reencrypt/kubeconfig.js';

function kubeconfig(contexts: Record<string, string>, current: string): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: Object.entries(contexts).map(([name, server]) => ({ name, cluster: { server } })),
    users: [{ name: 'u', user: { token: 't' } }],
    contexts: Object.keys(contexts).map((name) => ({
      name,
      context: { cluster: name, user: 'u' },
    })),
    'current-context': current,
  });
}

t.test('resolution order: --kubeconfig, KUBECONFIG, ~/.kube/config, in-cluster', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ksg-kubeconfig-'));
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  const flagFile = join(dir, 'flag.yaml');
  const envA = join(dir, 'a.yaml');
  const envB = join(dir, 'b.yaml');
  const home = join(dir, 'home');
  mkdirSync(join(home, '.kube'), { recursive: true });
  writeFileSync(flagFile, kubeconfig({ flag: 'https://flag:6443' }, 'flag'));
  writeFileSync(envA, kubeconfig({ a: 'https://a:6443' }, 'a'));
  writeFileSync(envB, kubeconfig({ b: 'https://b:6443' }, 'b'));
  writeFileSync(join(home, '.kube', 'config'), kubeconfig({ home: 'https://home:6443' }, 'home'));
  const env = { KUBECONFIG: [envA, join(dir, 'missing.yaml'), envB].join(delimiter), HOME: home };

  t.equal(
    resolveKubeconfig({ kubeconfigPath: flagFile, env }).server,
    'https://flag:6443',
    'the flag wins',
  );
  const merged = resolveKubeconfig({ env });
  t.equal(merged.server, 'https://a:6443', 'KUBECONFIG: the first file sets the context');
  t.equal(
    resolveKubeconfig({ env, context: 'b' }).server,
    'https://b:6443',
    '--context picks a context of a later file',
  );
  t.equal(resolveKubeconfig({ env: { HOME: home } }).server, 'https://home:6443', '~/.kube/config');

  const serviceAccountDir = join(dir, 'sa');
  mkdirSync(serviceAccountDir);
  writeFileSync(join(serviceAccountDir, 'token'), 'token');
  writeFileSync(join(serviceAccountDir, 'ca.crt'), '');
  const inCluster = resolveKubeconfig({
    env: {
      HOME: join(dir, 'nowhere'),
      KUBERNETES_SERVICE_HOST: 'fd00::1',
      KUBERNETES_SERVICE_PORT: '443',
    },
    serviceAccountDir,
  });
  t.equal(inCluster.server, 'https://[fd00::1]:443', 'in-cluster, IPv6 bracketed');
  t.equal(inCluster.source, 'in-cluster service account', 'described');
});

t.test('mistakes are configuration errors that name the fix', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ksg-kubeconfig-'));
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  const file = join(dir, 'k.yaml');
  writeFileSync(file, kubeconfig({ one: 'https://one:6443' }, 'one'));
  t.throws(
    () => resolveKubeconfig({ kubeconfigPath: join(dir, 'nope'), env: {} }),
    { name: 'ConfigError', message: /does not exist/ },
    'missing file',
  );
  t.throws(
    () => resolveKubeconfig({ kubeconfigPath: file, context: 'two', env: {} }),
    { name: 'ConfigError', message: /--context two is not in .*contexts: one/ },
    'unknown context',
  );
  t.throws(
    () => resolveKubeconfig({ env: { HOME: join(dir, 'nowhere') } }),
    ConfigError,
    'nothing to connect with',
  );
  t.throws(
    () =>
      resolveKubeconfig({
        env: {
          HOME: join(dir, 'nowhere'),
          KUBERNETES_SERVICE_HOST: '10.0.0.1',
          KUBERNETES_SERVICE_PORT: '443',
        },
        serviceAccountDir: join(dir, 'no-sa'),
      }),
    { message: /token is missing/ },
    'in a pod without a token',
  );
});
