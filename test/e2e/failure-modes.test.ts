// warn mode, and what the API server does when the webhook itself is down: the shipped
// failurePolicy (Ignore) lets writes through unstamped; the strict overlay (Fail) refuses.
import t from 'tap';
import {
  shippedWebhookConfigurations,
  useGuardedCluster,
  type KubectlResult,
} from './harness/index.js';
import {
  denialMessage,
  KEY_ID_ANNOTATION,
  KEY_VERSION_ANNOTATION,
  secretAnnotations,
  waitForAnswer,
} from './harness/secrets.js';

t.setTimeout(300_000);

const NS = 'team-b';

const e2e = useGuardedCluster(t, NS);

const createSecret = (name: string): Promise<KubectlResult> =>
  e2e.cluster.kubectl(['create', 'secret', 'generic', name, '-n', NS, '--from-literal=value=e2e']);

t.test('the shipped configurations are what the API server runs', async (t) => {
  const { configurations } = shippedWebhookConfigurations('shipped');
  for (const shipped of configurations) {
    const kind = shipped.kind.toLowerCase();
    const name = String((shipped.metadata as { name?: unknown } | undefined)?.name);
    const live = await e2e.cluster.kubectl(['get', kind, name, '-o', 'json']);
    t.equal(live.code, 0, `${shipped.kind} ${name} is registered`);
    const webhooks = (JSON.parse(live.stdout) as { webhooks: Record<string, unknown>[] }).webhooks;
    for (const [index, expected] of shipped.webhooks.entries()) {
      const actual = webhooks[index] ?? {};
      for (const field of [
        'name',
        'failurePolicy',
        'sideEffects',
        'timeoutSeconds',
        'admissionReviewVersions',
        'matchPolicy',
        'namespaceSelector',
        'rules',
      ]) {
        t.same(actual[field], expected[field], `${String(expected.name)}: ${field} as shipped`);
      }
      t.match(
        (actual.clientConfig as { url?: string } | undefined)?.url,
        /^https:\/\/127\.0\.0\.1:\d+\/(validate|mutate)$/,
        `${String(expected.name)}: only clientConfig points at the local webhook`,
      );
    }
  }
});

t.test('6. warn mode: writes allowed while the key is Disabled, kubectl warns', async (t) => {
  await e2e.guard.kms.disableKey();
  await waitForAnswer(
    e2e.cluster,
    NS,
    'enforce mode to refuse',
    (r) => denialMessage(r) !== undefined,
  );

  await e2e.guard.startServe({ mode: 'warn' });
  const created = await createSecret('warned');
  t.equal(
    created.code,
    0,
    `kubectl create secret succeeds in warn mode (${created.stderr.trim()})`,
  );
  t.match(created.stderr, /^Warning: /m, 'kubectl prints a warning');
  t.match(created.stderr, e2e.guard.keyId, 'the warning names the key id');
  const annotations = await secretAnnotations(e2e.cluster, NS, 'warned');
  t.equal(annotations[KEY_VERSION_ANNOTATION], undefined, 'an unusable key stamps no version');

  await e2e.guard.kms.enableKey();
  await e2e.guard.startServe({ mode: 'enforce' });
  await waitForAnswer(e2e.cluster, NS, 'enforce mode to allow', (r) => r.code === 0);
});

t.test('7a. webhook stopped, shipped failurePolicy Ignore: writes succeed unstamped', async (t) => {
  const stamped = await createSecret('while-running');
  t.equal(stamped.code, 0, 'a write succeeds while the webhook runs');
  t.equal(
    (await secretAnnotations(e2e.cluster, NS, 'while-running'))[KEY_ID_ANNOTATION],
    e2e.guard.keyId,
    'and is stamped',
  );

  await e2e.guard.stopServe();
  // Even a Disabled key cannot refuse anything when nobody answers the API server.
  await e2e.guard.kms.disableKey();
  const created = await createSecret('while-stopped');
  t.equal(created.code, 0, `kubectl create secret succeeds (${created.stderr.trim()})`);
  const annotations = await secretAnnotations(e2e.cluster, NS, 'while-stopped');
  t.equal(annotations[KEY_ID_ANNOTATION], undefined, 'the Secret is not stamped');
  const updated = await e2e.cluster.kubectl([
    'label',
    'secret',
    'while-running',
    '-n',
    NS,
    'touched=yes',
  ]);
  t.equal(updated.code, 0, 'updates succeed too');
});

t.test('7b. webhook stopped, strict overlay (failurePolicy Fail): writes refused', async (t) => {
  let source: string;
  try {
    ({ source } = await e2e.guard.registerWebhooks({ variant: 'strict', waitUntilActive: false }));
  } catch (error) {
    const { configurations } = shippedWebhookConfigurations('shipped');
    t.comment(`strict overlay unavailable (${String(error)}); using the shipped ones with Fail`);
    const strict = configurations.map((configuration) => ({
      ...configuration,
      webhooks: configuration.webhooks.map((webhook) => ({ ...webhook, failurePolicy: 'Fail' })),
    }));
    await e2e.guard.registerWebhooks({ configurations: strict, waitUntilActive: false });
    source = 'shipped configurations with failurePolicy Fail';
  }
  t.comment(`strict webhook configurations from ${source}`);
  const live = await e2e.cluster.kubectl([
    'get',
    'validatingwebhookconfigurations',
    '-o',
    'jsonpath={.items[*].webhooks[*].failurePolicy}',
  ]);
  t.match(live.stdout, 'Fail', 'the registered validating webhook fails closed');

  const { result } = await waitForAnswer(
    e2e.cluster,
    NS,
    'the API server to refuse writes with the webhook down',
    (r) => r.code !== 0,
  );
  t.match(result.stderr, /failed calling webhook/, 'the API server could not call the webhook');
  const created = await createSecret('strict-stopped');
  t.not(created.code, 0, 'kubectl create secret is refused');
  t.match(created.stderr, /kms-secret-guard\.io/, 'the error names our webhook');

  const system = await e2e.cluster.kubectl([
    'create',
    'secret',
    'generic',
    'system-secret',
    '-n',
    'kube-system',
    '--from-literal=value=e2e',
  ]);
  t.equal(system.code, 0, 'kube-system stays writable even in strict mode');
});
