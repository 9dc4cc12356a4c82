// Every kustomization under manifests/, rendered with the real `kubectl kustomize` and
// applied with server-side dry-run (server-side apply and client-side apply) to a real
// kube-apiserver: the API server validates, defaults and admits each object exactly as a
// cluster would, without persisting anything. Also proves that the webhook configurations
// the other end-to-end tests register are the shipped ones, that the pod templates pass the
// namespace's Pod Security level, and that a broken render is refused (so this can fail).
//
// cert-manager and Prometheus Operator are not installed (no network): fixtures/crds holds
// structural stand-ins of their CRDs, for dry-run only.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { parseAllDocuments } from 'yaml';
import {
  KUSTOMIZATIONS,
  manifestsWithCertificates,
  type KubeObject,
  type KustomizationPath,
} from '../helpers/manifests.js';
import {
  forLocalWebhook,
  shippedWebhookConfigurations,
  startCluster,
  type Cluster,
  type KubectlResult,
  type WebhookVariant,
} from './harness/index.js';
import {
  APPLY_ARGS,
  FIXTURES,
  dryRunKubectl,
  identities,
  installStandInCrds,
  podFrom,
  podList,
  printed,
  unexpectedWarnings,
  webhookObjects,
  withoutClientConfig,
  type WebhookObject,
} from './harness/dry-run.js';

t.setTimeout(300_000);

const run = promisify(execFile);
const GUARD_NAMESPACE = 'kms-secret-guard';
const CA_INJECTION_ANNOTATION = 'cert-manager.io/inject-ca-from';
/** Overlays whose serving certificate comes from cert-manager (caBundle injected later). */
const CERT_MANAGER_BASED: readonly KustomizationPath[] = [
  'overlays/cert-manager',
  'overlays/strict',
  'examples/ack-pro',
];

interface Render {
  /** kubectl kustomize's output, exactly what a person pipes into kubectl apply. */
  readonly yaml: string;
  readonly objects: KubeObject[];
}

let cluster: Cluster;
let kubectl: (args: string[], input?: string) => Promise<KubectlResult>;
let certificates: { cleanup(): void; caCert: string; root: string } | undefined;
const renders = new Map<KustomizationPath, Render>();
/** What the API server answered to the server-side apply dry-run of each kustomization. */
const answered = new Map<KustomizationPath, KubeObject[]>();

async function render(dir: string): Promise<Render> {
  const { stdout } = await run('kubectl', ['kustomize', dir], {
    timeout: 60_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  const objects = parseAllDocuments(stdout)
    .map((document) => document.toJS() as KubeObject | null)
    .filter((object): object is KubeObject => object !== null);
  return { yaml: stdout, objects };
}

t.before(async () => {
  const started = Date.now();
  cluster = await startCluster();
  kubectl = dryRunKubectl(cluster);
  try {
    const copy = await manifestsWithCertificates();
    certificates = { ...copy, caCert: copy.certificates.caCert };
    for (const path of KUSTOMIZATIONS) renders.set(path, await render(join(copy.root, path)));

    await installStandInCrds(kubectl);

    // Namespaced objects need their Namespace to exist; it is the base's own.
    const namespace = renders.get('base')?.objects.find((object) => object.kind === 'Namespace');
    if (namespace === undefined) throw new Error('the base renders no Namespace');
    const created = await kubectl(['apply', '--server-side', '-f', '-'], JSON.stringify(namespace));
    if (created.code !== 0) throw new Error(`could not create the Namespace: ${created.stderr}`);
    t.comment(`cluster, renders, CRDs and Namespace ready in ${Date.now() - started} ms`);
  } catch (error) {
    certificates?.cleanup();
    await cluster.stop();
    throw error;
  }
});

t.teardown(async () => {
  const started = cluster as Cluster | undefined;
  if (!t.passing() && started !== undefined) process.stderr.write(`${started.logTail()}\n`);
  certificates?.cleanup();
  await started?.stop();
});

for (const path of KUSTOMIZATIONS) {
  t.test(`${path}: the API server accepts every object (dry-run)`, async (t) => {
    const rendered = renders.get(path);
    if (rendered === undefined) throw new Error(`${path} was not rendered`);
    t.ok(rendered.objects.length > 0, `kubectl kustomize ${path} renders objects`);

    for (const mode of ['server-side apply', 'client-side apply'] as const) {
      const result = await kubectl(APPLY_ARGS[mode], rendered.yaml);
      t.equal(result.code, 0, `${mode} --dry-run=server succeeds`, {
        stderr: result.stderr,
      });
      const reported = printed(result.stdout);
      t.same(
        identities(reported),
        identities(rendered.objects),
        `${mode}: the API server reported every rendered object, and nothing else`,
      );
      t.same(unexpectedWarnings(result.stderr), [], `${mode}: the API server raised no warnings`);
      if (mode === 'server-side apply') answered.set(path, reported);
    }

    const webhooks = webhookObjects(answered.get(path) ?? []);
    if (path === 'overlays/self-managed-certs') {
      const caBundle = Buffer.from(certificates?.caCert ?? '').toString('base64');
      t.equal(webhooks.length, 2, 'both webhook configurations are in the render');
      for (const configuration of webhooks) {
        for (const webhook of configuration.webhooks) {
          t.equal(
            webhook.clientConfig?.caBundle,
            caBundle,
            `${webhook.name}: the API server stored the generated CA as caBundle`,
          );
        }
      }
    }
    if (CERT_MANAGER_BASED.includes(path)) {
      t.equal(webhooks.length, 2, 'both webhook configurations are in the render');
      const serving = rendered.objects.find(
        (object) => object.kind === 'Certificate' && object.metadata.name.endsWith('-serving'),
      );
      for (const configuration of webhooks) {
        t.equal(
          configuration.metadata.annotations?.[CA_INJECTION_ANNOTATION],
          `${serving?.metadata.namespace ?? '?'}/${serving?.metadata.name ?? '?'}`,
          `${configuration.kind}: cainjector is pointed at the rendered serving Certificate`,
        );
        for (const webhook of configuration.webhooks) {
          t.equal(
            webhook.clientConfig?.caBundle,
            undefined,
            `${webhook.name}: accepted without a caBundle until cert-manager injects one`,
          );
        }
      }
    }
    if (path === 'overlays/strict') {
      for (const webhook of webhooks.flatMap((configuration) => configuration.webhooks)) {
        t.equal(webhook.failurePolicy, 'Fail', `${webhook.name}: failurePolicy Fail as stored`);
      }
    }
  });
}

t.test('a dry-run persisted nothing', async (t) => {
  const namespaced = await kubectl([
    'get',
    'deployments,jobs,configmaps,secrets,services,serviceaccounts,networkpolicies,poddisruptionbudgets,issuers.cert-manager.io,certificates.cert-manager.io,prometheusrules.monitoring.coreos.com,servicemonitors.monitoring.coreos.com',
    '-n',
    GUARD_NAMESPACE,
    '-o',
    'name',
  ]);
  t.equal(namespaced.code, 0, `kubectl get in ${GUARD_NAMESPACE} works`, {
    stderr: namespaced.stderr,
  });
  t.equal(namespaced.stdout.trim(), '', `no object was created in ${GUARD_NAMESPACE}`);
  const clusterScoped = await kubectl([
    'get',
    'validatingwebhookconfigurations,mutatingwebhookconfigurations,clusterroles,clusterrolebindings',
    '-o',
    'name',
  ]);
  t.equal(clusterScoped.code, 0, 'kubectl get cluster-scoped objects works', {
    stderr: clusterScoped.stderr,
  });
  t.notMatch(clusterScoped.stdout, /kms-secret-guard/, 'no cluster-scoped object was created');
});

t.test('the harness registers the shipped webhook configurations', async (t) => {
  const expected: Record<WebhookVariant, KustomizationPath> = {
    shipped: 'base',
    strict: 'overlays/strict',
  };
  for (const [variant, path] of Object.entries(expected) as [WebhookVariant, KustomizationPath][]) {
    const harness = shippedWebhookConfigurations(variant).configurations.map((configuration) =>
      forLocalWebhook(configuration, 'https://127.0.0.1:8443', certificates?.caCert ?? ''),
    );
    const rendered = webhookObjects(renders.get(path)?.objects ?? []);
    t.equal(harness.length, 2, `${variant}: the harness registers two configurations`);
    t.same(
      harness.map((configuration) => withoutClientConfig(configuration as WebhookObject)),
      rendered.map(withoutClientConfig),
      `${variant}: what the harness registers equals the render of ${path} except clientConfig`,
    );

    // The same comparison after the API server's defaulting, on what it would store.
    const result = await kubectl(
      APPLY_ARGS['server-side apply'],
      JSON.stringify({ apiVersion: 'v1', kind: 'List', items: harness }),
    );
    t.equal(result.code, 0, `${variant}: the harness's configurations pass dry-run`, {
      stderr: result.stderr,
    });
    const stored = webhookObjects(printed(result.stdout));
    t.same(
      stored.map(withoutClientConfig),
      webhookObjects(answered.get(path) ?? []).map(withoutClientConfig),
      `${variant}: as stored by the API server, they equal the shipped ones except clientConfig`,
    );
    for (const webhook of stored.flatMap((configuration) => configuration.webhooks)) {
      t.match(
        webhook.clientConfig?.url,
        /^https:\/\/127\.0\.0\.1:8443\/(validate|mutate)$/,
        `${webhook.name}: only clientConfig differs (a URL to the local webhook)`,
      );
    }
  }
});

t.test('the pod templates pass the namespace Pod Security level (restricted)', async (t) => {
  // The ServiceAccount admission plugin refuses Pods whose ServiceAccount is missing, so
  // the shipped ServiceAccounts are created for real first.
  const accounts = [...renders.values()]
    .flatMap((rendered) => rendered.objects)
    .filter((object) => object.kind === 'ServiceAccount');
  const created = await kubectl(
    ['apply', '--server-side', '-f', '-'],
    JSON.stringify({ apiVersion: 'v1', kind: 'List', items: accounts }),
  );
  t.equal(created.code, 0, 'the ServiceAccounts are created', { stderr: created.stderr });

  const pods = [...renders.entries()].flatMap(([path, rendered]) =>
    rendered.objects
      .filter((object) => object.kind === 'Deployment' || object.kind === 'Job')
      .map((owner) =>
        podFrom(owner, `${path.replace(/[^a-z0-9]+/g, '-')}-${owner.kind.toLowerCase()}`),
      ),
  );
  t.ok(pods.length >= 7, 'every Deployment and Job of every render has a pod template');
  // kubectl create prints several objects as concatenated JSON, so ask for names only.
  const result = await kubectl(
    ['create', '--dry-run=server', '-o', 'name', '-f', '-'],
    podList(pods),
  );
  t.equal(result.code, 0, 'every pod would be admitted', { stderr: result.stderr });
  t.same(
    result.stdout.trim().split('\n').sort(),
    pods.map((pod) => `pod/${pod.metadata.name}`).sort(),
    'every pod was reported',
  );
  t.same(unexpectedWarnings(result.stderr), [], 'without Pod Security warnings');

  // The check can fail: the base's pod without dropped capabilities is refused.
  const base = renders.get('base')?.objects.find((object) => object.kind === 'Deployment');
  if (base === undefined) throw new Error('the base renders no Deployment');
  const weakened = structuredClone(podFrom(base, 'weakened')) as KubeObject & {
    spec: { containers: { securityContext?: Record<string, unknown> }[] };
  };
  for (const container of weakened.spec.containers) delete container.securityContext?.capabilities;
  const refused = await kubectl(
    ['create', '--dry-run=server', '-f', '-'],
    JSON.stringify(weakened),
  );
  t.not(refused.code, 0, 'a pod that keeps its capabilities is refused');
  t.match(refused.stderr, /violates PodSecurity "restricted/, 'by Pod Security admission');
});

t.test('a broken render is refused, so this test can fail', async (t) => {
  const cases = [
    {
      fixture: 'broken/invalid-value',
      error:
        /spec\.template\.spec\.containers\[0\]\.imagePullPolicy: Unsupported value: "Sometimes"/,
      what: 'an invalid value',
    },
    {
      fixture: 'broken/unknown-field',
      error: /readinesProbe/,
      what: 'a misspelt field',
    },
  ];
  for (const { fixture, error, what } of cases) {
    const broken = await render(join(FIXTURES, fixture));
    for (const mode of ['server-side apply', 'client-side apply'] as const) {
      const result = await kubectl(APPLY_ARGS[mode], broken.yaml);
      t.not(result.code, 0, `${mode} --dry-run=server fails on ${what} (${fixture})`);
      t.match(result.stderr, error, `${mode}: the error names the field`);
      t.match(result.stderr, /Deployment|deployments/, `${mode}: the error names the Deployment`);
    }
  }
});
