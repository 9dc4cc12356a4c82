// charts/kms-secret-guard with the real Helm (built by scripts/helm.sh): lint --strict and
// template for every documented value set (charts/kms-secret-guard/ci), the schema and the
// chart's own checks refusing bad values with a message naming the value, and each render
// compared object for object with the kustomize folder it stands for. The end-to-end twin
// (test/e2e/helm-chart.test.ts) sends the same renders to a real API server.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { serviceDnsNames } from '../../src/certs/generate.js';
import {
  CHART_DIR,
  CI_VALUE_SETS,
  RELEASE,
  ciValuesFile,
  isHook,
  parseObjects,
  renderChart,
  templateArgs,
  type ChartRender,
} from '../helpers/chart.js';
import {
  GUARD_NAMESPACE,
  GUARD_SERVICE,
  REPO_ROOT,
  manifestsWithCertificates,
  ofKind,
  only,
  renderKustomization,
  type KubeObject,
  type KustomizationPath,
} from '../helpers/manifests.js';
import { runTool } from '../helpers/tools.js';

interface Container {
  name: string;
  env?: { name: string; value?: string }[];
  resources?: { limits?: { memory?: string } };
  args?: string[];
  command?: string[];
}
interface PodTemplate {
  metadata: { labels: Record<string, string> };
  spec: {
    containers: Container[];
    volumes?: { name: string; secret?: { secretName: string } }[];
    serviceAccountName?: string;
  };
}
interface Webhook {
  name: string;
  clientConfig: { caBundle?: string; service?: { name: string; namespace: string } };
  namespaceSelector?: unknown;
  objectSelector?: unknown;
  failurePolicy?: string;
}
type WebhookObject = KubeObject & { webhooks: Webhook[] };

const podTemplate = (object: KubeObject): PodTemplate =>
  (object.spec as { template: PodTemplate }).template;
const webhookObjects = (objects: readonly KubeObject[]): WebhookObject[] =>
  objects.filter((object): object is WebhookObject =>
    ['ValidatingWebhookConfiguration', 'MutatingWebhookConfiguration'].includes(object.kind),
  );
const identity = (object: KubeObject): string => `${object.kind}/${object.metadata.name}`;
const nodeOptions = (container: Container | undefined): string | undefined =>
  container?.env?.find((entry) => entry.name === 'NODE_OPTIONS')?.value;

const fixture = await manifestsWithCertificates();
t.teardown(() => {
  fixture.cleanup();
});
const kustomized = new Map<KustomizationPath, KubeObject[]>();
async function kustomize(path: KustomizationPath): Promise<KubeObject[]> {
  const known = kustomized.get(path);
  if (known !== undefined) return known;
  const objects = await renderKustomization(join(fixture.root, path));
  kustomized.set(path, objects);
  return objects;
}
const charts = new Map<string, ChartRender>();
async function chart(valueSet: string): Promise<ChartRender> {
  const known = charts.get(valueSet);
  if (known !== undefined) return known;
  const rendered = await renderChart({ valueSet });
  charts.set(valueSet, rendered);
  return rendered;
}

t.test('helm lint --strict passes for every documented value set', async (t) => {
  t.ok(
    CI_VALUE_SETS.length >= 8,
    `the chart documents its value sets (${CI_VALUE_SETS.join(', ')})`,
  );
  for (const valueSet of CI_VALUE_SETS) {
    const result = await runTool('helm', [
      'lint',
      '--strict',
      CHART_DIR,
      '--namespace',
      GUARD_NAMESPACE,
      '--values',
      ciValuesFile(valueSet),
    ]);
    t.equal(result.code, 0, `${valueSet}: helm lint --strict succeeds`, { output: result.stdout });
    t.notMatch(result.stdout, /\[(WARNING|ERROR)\]/, `${valueSet}: no lint warning or error`);
  }
});

t.test('the chart is versioned with the package', async (t) => {
  const { version } = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
    version: string;
  };
  const chartYaml = parse(readFileSync(join(CHART_DIR, 'Chart.yaml'), 'utf8')) as {
    version: string;
    appVersion: string;
  };
  t.equal(chartYaml.version, version, 'Chart.yaml version is the package version');
  t.equal(chartYaml.appVersion, version, 'Chart.yaml appVersion is the package version');
  const image = (
    podTemplate(only((await chart('default')).objects, 'Deployment')).spec
      .containers[0] as unknown as { image: string }
  ).image;
  t.equal(image, `kms-secret-guard:${version}`, 'the default image tag is the package version');
});

t.test('helm template renders every documented value set', async (t) => {
  const clusterScoped = new Set([
    'ClusterRole',
    'ClusterRoleBinding',
    'ValidatingWebhookConfiguration',
    'MutatingWebhookConfiguration',
  ]);
  for (const valueSet of CI_VALUE_SETS) {
    const { objects } = await chart(valueSet);
    t.ok(objects.length >= 8, `${valueSet}: renders the guard's objects`);
    t.equal(webhookObjects(objects).length, 2, `${valueSet}: two webhook configurations`);
    for (const object of objects) {
      if (clusterScoped.has(object.kind)) continue;
      t.equal(
        object.metadata.namespace,
        GUARD_NAMESPACE,
        `${valueSet}: ${identity(object)} is in the release namespace`,
      );
    }
  }
});

t.test('bad values are refused before anything is rendered, naming the value', async (t) => {
  const base = ['kms.keyId=key-1', 'kms.region=cn-hangzhou'];
  const cases: [string[], RegExp][] = [
    [['guard.mode=block'], /at '\/guard\/mode': value must be one of 'enforce', 'warn'/],
    [['guard.onUnknown=maybe'], /at '\/guard\/onUnknown': value must be one of 'allow', 'deny'/],
    [['guard.logLevel=loud'], /at '\/guard\/logLevel': value must be one of/],
    [['guard.refreshInterval=soon'], /at '\/guard\/refreshInterval': 'soon' does not match/],
    [['guard.maxStaleness=5'], /at '\/guard\/maxStaleness': got number, want string/],
    [['kms.protocol=ftp'], /at '\/kms\/protocol': value must be one of 'https', 'http'/],
    [['kms.region=Hangzhou'], /at '\/kms\/region': 'Hangzhou' does not match/],
    [
      ['webhooks.failurePolicy=Never'],
      /at '\/webhooks\/failurePolicy': value must be one of 'Ignore', 'Fail'/,
    ],
    [['webhooks.timeoutSeconds=31'], /at '\/webhooks\/timeoutSeconds': maximum: got 31, want 30/],
    [['webhooks.excludedNamespaces[0]=Team_A'], /at '\/webhooks\/excludedNamespaces\/0'/],
    [
      ['resources.limits.memory=1G'],
      /at '\/resources\/limits\/memory': '1G' does not match pattern/,
    ],
    [['image.pullPolicy=Sometimes'], /at '\/image\/pullPolicy': value must be one of/],
    [['image.digest=sha256:abc'], /at '\/image\/digest': 'sha256:abc' does not match/],
    [['replicas=0'], /at '\/replicas': minimum: got 0, want 1/],
    [['monitoring.serviceMonitor.enabled=maybe'], /at '\/monitoring\/serviceMonitor\/enabled'/],
    [['certManager.issuerRef.kind=Vault'], /at '\/certManager\/issuerRef\/kind'/],
    [['kms.keyID=key-1'], /at '\/kms': additional properties 'keyID' not allowed/],
    [['failurePolicy=Fail'], /at '': additional properties 'failurePolicy' not allowed/],
  ];
  for (const [set, message] of cases) {
    const result = await runTool('helm', templateArgs({ set: [...base, ...set] }));
    t.not(result.code, 0, `--set ${set.join(',')} is refused`);
    t.match(
      result.stderr,
      /values don't meet the specifications of the schema/,
      `${set[0] ?? ''}: by the schema`,
    );
    t.match(result.stderr, message, `${set[0] ?? ''}: the message names the value and the rule`);
  }
});

t.test("the chart's own checks: missing key settings, certificates, memory", async (t) => {
  const cases: [string, string[], RegExp][] = [
    [
      'no kms.keyId',
      ['kms.region=cn-hangzhou'],
      /kms\.keyId is required: set it to the KMS key that encrypts the cluster's Secrets/,
    ],
    [
      'no kms.region nor endpoint',
      ['kms.keyId=key-1'],
      /kms\.region is required unless kms\.endpoint is set/,
    ],
    [
      'existingSecret without caBundle',
      [...['kms.keyId=key-1', 'kms.region=cn-hangzhou'], 'tls.existingSecret=mine'],
      /tls\.caBundle is required with tls\.existingSecret/,
    ],
    [
      'cert-manager and existingSecret',
      [
        'kms.keyId=key-1',
        'kms.region=cn-hangzhou',
        'tls.existingSecret=mine',
        'tls.caBundle=LS0tLS1CRUdJTiBDRVJU',
        'certManager.enabled=true',
      ],
      /certManager\.enabled and tls\.existingSecret exclude each other/,
    ],
    [
      'a 128Mi memory limit',
      ['kms.keyId=key-1', 'kms.region=cn-hangzhou', 'resources.limits.memory=128Mi'],
      /resources\.limits\.memory 128Mi leaves a V8 old space of 32 MiB|leaves a V8 old space/,
    ],
    [
      'a heap above the limit',
      ['kms.keyId=key-1', 'kms.region=cn-hangzhou', 'heap.maxOldSpaceSize=200'],
      /heap\.maxOldSpaceSize 200 \+ 3 x heap\.maxSemiSpaceSize 2 \+ 64 MiB outside the heap exceed resources\.limits\.memory 256Mi/,
    ],
  ];
  for (const [what, set, message] of cases) {
    const result = await runTool('helm', templateArgs({ set }));
    t.not(result.code, 0, `${what}: helm template fails`);
    t.match(result.stderr, message, `${what}: the message says which value to set`);
  }
});

/**
 * What a render means, without what only tells who rendered it: labels and annotations
 * (Helm's and kustomize's own, the config checksum) and the release's instance label in
 * selectors. cert-manager's CA injection annotation is meaning, so it stays.
 */
function comparable(object: KubeObject, drop: { caBundle?: boolean } = {}): unknown {
  const strip = (value: unknown, key?: string): unknown => {
    if (Array.isArray(value)) return value.map((item) => strip(item));
    if (value === null || typeof value !== 'object') return value;
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([name]) => name !== 'app.kubernetes.io/instance')
      .filter(([name]) => !(drop.caBundle === true && name === 'caBundle'))
      .map(([name, inner]) => [name, strip(inner, name)] as const);
    const result = Object.fromEntries(entries) as Record<string, unknown>;
    if (key === 'metadata') {
      const annotations = (result.annotations ?? {}) as Record<string, string>;
      delete result.labels;
      delete result.annotations;
      const injected = annotations['cert-manager.io/inject-ca-from'];
      if (injected !== undefined)
        result.annotations = { 'cert-manager.io/inject-ca-from': injected };
    }
    return result;
  };
  const copy = strip({ ...object, metadata: object.metadata }, undefined) as Record<
    string,
    unknown
  >;
  copy.metadata = strip(object.metadata, 'metadata');
  const template = (copy.spec as { template?: { metadata?: unknown } } | undefined)?.template;
  if (template !== undefined) delete template.metadata;
  return copy;
}

interface Pair {
  readonly valueSet: string;
  readonly kustomization: KustomizationPath;
  /** Objects only the chart renders (besides its hooks), by kind/name. */
  readonly chartOnly: readonly string[];
  /** Objects only kustomize renders. */
  readonly kustomizeOnly: readonly string[];
  /** Compare just the kustomization's objects (it installs a part of the chart). */
  readonly partOfChart?: boolean;
  readonly dropCaBundle?: boolean;
}
// The Namespace: Helm installs into an existing namespace (`--create-namespace` or made
// beforehand with its labels, docs/install-helm.md); a chart that owns its namespace loses
// it, and the release record in it, on uninstall.
const NAMESPACE = `Namespace/${GUARD_NAMESPACE}`;
const PAIRS: readonly Pair[] = [
  {
    valueSet: 'default',
    kustomization: 'base',
    chartOnly: ['Secret/kms-secret-guard-tls'],
    kustomizeOnly: [NAMESPACE],
    dropCaBundle: true,
  },
  {
    valueSet: 'cert-manager',
    kustomization: 'overlays/cert-manager',
    chartOnly: [],
    kustomizeOnly: [NAMESPACE],
  },
  {
    valueSet: 'strict',
    kustomization: 'overlays/strict',
    chartOnly: [],
    kustomizeOnly: [NAMESPACE],
  },
  {
    valueSet: 'monitoring',
    kustomization: 'monitoring',
    chartOnly: [],
    kustomizeOnly: [],
    partOfChart: true,
  },
  {
    valueSet: 'reencrypt',
    kustomization: 'reencrypt',
    chartOnly: [],
    kustomizeOnly: [],
    partOfChart: true,
  },
  {
    valueSet: 'reencrypt-dry-run',
    kustomization: 'reencrypt-dry-run',
    chartOnly: [],
    kustomizeOnly: [],
    partOfChart: true,
  },
];

t.test('each value set renders the objects of its kustomization, field for field', async (t) => {
  for (const pair of PAIRS) {
    const where = `${pair.valueSet} ~ ${pair.kustomization}`;
    const chartObjects = (await chart(pair.valueSet)).objects.filter((object) => !isHook(object));
    const kustomizeObjects = (await kustomize(pair.kustomization)).map((object) => {
      if (object.kind !== 'ConfigMap') return object;
      // The base ships the key settings empty; the value set fills them in.
      const data = { ...(object.data as Record<string, string>) };
      const filled = only(chartObjects, 'ConfigMap').data as Record<string, string>;
      t.equal(data.KMS_KEY_ID, '', `${where}: kustomize ships KMS_KEY_ID empty`);
      return {
        ...object,
        data: { ...data, KMS_KEY_ID: filled.KMS_KEY_ID, KMS_REGION: filled.KMS_REGION },
      };
    });
    const kustomizeIds = new Set(kustomizeObjects.map(identity));
    const compared =
      pair.partOfChart === true
        ? chartObjects.filter((object) => kustomizeIds.has(identity(object)))
        : chartObjects;
    t.same(
      compared
        .map(identity)
        .filter((id) => !pair.chartOnly.includes(id))
        .sort(),
      [...kustomizeIds].filter((id) => !pair.kustomizeOnly.includes(id)).sort(),
      `${where}: the same objects (chart only: ${pair.chartOnly.join(', ') || 'none'}; kustomize only: ${pair.kustomizeOnly.join(', ') || 'none'})`,
    );
    for (const object of compared) {
      const twin = kustomizeObjects.find((other) => identity(other) === identity(object));
      if (twin === undefined) continue;
      const drop = { caBundle: pair.dropCaBundle ?? false };
      t.same(
        comparable(object, drop),
        comparable(twin, drop),
        `${where}: ${identity(object)} is the same`,
      );
      if (object.kind === 'Deployment' || object.kind === 'Job') {
        const labels = podTemplate(object).metadata.labels;
        for (const [key, value] of Object.entries(podTemplate(twin).metadata.labels)) {
          t.equal(labels[key], value, `${where}: ${identity(object)} pods carry ${key}=${value}`);
        }
      }
    }
  }
});

t.test('the fields that matter, spelled out for the default render and the base', async (t) => {
  const chartObjects = (await chart('default')).objects;
  const base = await kustomize('base');
  const pick = (objects: KubeObject[]): unknown => {
    const deployment = only(objects, 'Deployment');
    const container = podTemplate(deployment).spec.containers[0] as unknown as Record<
      string,
      unknown
    >;
    const pod = podTemplate(deployment).spec as unknown as Record<string, unknown>;
    return {
      webhooks: webhookObjects(objects).map((object) =>
        object.webhooks.map((webhook) => ({
          ...webhook,
          clientConfig: { service: webhook.clientConfig.service },
        })),
      ),
      probes: [container.livenessProbe, container.readinessProbe, container.startupProbe],
      securityContext: [pod.securityContext, container.securityContext],
      resources: container.resources,
      nodeOptions: nodeOptions(podTemplate(deployment).spec.containers[0]),
      replicas: (deployment.spec as { replicas: number }).replicas,
    };
  };
  t.same(
    pick(chartObjects),
    pick(base),
    'webhook rules, selectors, failure policy, probes, security context, resources, heap flags, replicas',
  );
  t.equal(
    nodeOptions(podTemplate(only(chartObjects, 'Deployment')).spec.containers[0]),
    '--max-old-space-size=160 --max-semi-space-size=2',
    "the default heap flags are the base Deployment's",
  );
});

t.test('heap flags follow the memory limit and keep 64 MiB outside the heap', async (t) => {
  const flag = (options: string | undefined, name: string): number =>
    Number(new RegExp(`--${name}=(\\d+)`).exec(options ?? '')?.[1] ?? Number.NaN);
  for (const [limit, mebibytes] of [
    ['160Mi', 160],
    ['256Mi', 256],
    ['384Mi', 384],
    ['1Gi', 1024],
    ['2Gi', 2048],
  ] as const) {
    const { objects } = await renderChart({
      valueSet: 'default',
      set: [`resources.limits.memory=${limit}`],
    });
    const options = nodeOptions(podTemplate(only(objects, 'Deployment')).spec.containers[0]);
    const oldSpace = flag(options, 'max-old-space-size');
    const heap = oldSpace + 3 * flag(options, 'max-semi-space-size');
    t.equal(
      oldSpace,
      mebibytes - 96,
      `${limit}: old space is the limit minus 96 MiB (${options ?? ''})`,
    );
    t.ok(heap + 64 <= mebibytes, `${limit}: heap ${heap} MiB + 64 MiB fit the limit`);
  }
  const job = only(
    (await chart('reencrypt')).objects.filter((object) => !isHook(object)),
    'Job',
  );
  const base = only(await kustomize('reencrypt'), 'Job');
  t.equal(
    nodeOptions(podTemplate(job).spec.containers[0]),
    nodeOptions(podTemplate(base).spec.containers[0]),
    "the reencrypt Job gets the kustomize Job's heap flag for the same limit",
  );
  const big = await renderChart({
    valueSet: 'reencrypt',
    set: ['reencrypt.resources.limits.memory=1Gi'],
  });
  t.equal(
    nodeOptions(
      podTemplate(
        only(
          big.objects.filter((object) => !isHook(object)),
          'Job',
        ),
      ).spec.containers[0],
    ),
    '--max-old-space-size=512',
    'the reencrypt old space is half its limit',
  );
});

t.test(
  'self-signed: the generated CA is the caBundle and signs the serving certificate',
  async (t) => {
    const { objects } = await chart('default');
    const secret = only(objects, 'Secret', 'kms-secret-guard-tls');
    t.equal(secret.type, 'kubernetes.io/tls', 'a kubernetes.io/tls Secret');
    const data = secret.data as Record<string, string>;
    const decode = (value: string | undefined): string =>
      Buffer.from(value ?? '', 'base64').toString('utf8');
    for (const configuration of webhookObjects(objects)) {
      for (const webhook of configuration.webhooks) {
        t.equal(
          webhook.clientConfig.caBundle,
          data['ca.crt'],
          `${webhook.name}: caBundle is the Secret's ca.crt`,
        );
      }
    }
    const ca = new X509Certificate(decode(data['ca.crt']));
    const cert = new X509Certificate(decode(data['tls.crt']));
    t.ok(cert.verify(ca.publicKey), 'the serving certificate verifies against the CA');
    for (const name of serviceDnsNames(GUARD_SERVICE, GUARD_NAMESPACE)) {
      t.ok(cert.checkHost(name), `the serving certificate is valid for ${name}`);
    }
    t.equal(
      podTemplate(only(objects, 'Deployment')).spec.volumes?.find((volume) => volume.secret)?.secret
        ?.secretName,
      secret.metadata.name,
      'the Deployment mounts it',
    );
  },
);

t.test('existing TLS Secret: mounted, its CA the caBundle, no Secret rendered', async (t) => {
  const { objects } = await chart('existing-secret');
  const values = parse(readFileSync(ciValuesFile('existing-secret'), 'utf8')) as {
    tls: { existingSecret: string; caBundle: string };
  };
  t.equal(ofKind(objects, 'Secret').length, 0, 'the chart renders no Secret');
  t.equal(
    podTemplate(only(objects, 'Deployment')).spec.volumes?.find((volume) => volume.secret)?.secret
      ?.secretName,
    values.tls.existingSecret,
    'the Deployment mounts tls.existingSecret',
  );
  const selfManaged = await kustomize('overlays/self-managed-certs');
  for (const configuration of webhookObjects(objects)) {
    for (const webhook of configuration.webhooks) {
      t.equal(
        webhook.clientConfig.caBundle,
        values.tls.caBundle,
        `${webhook.name}: caBundle is tls.caBundle`,
      );
    }
    const twin = webhookObjects(selfManaged).find((other) => other.kind === configuration.kind);
    t.same(
      comparable(configuration, { caBundle: true }),
      twin === undefined ? undefined : comparable(twin, { caBundle: true }),
      `${configuration.kind}: as overlays/self-managed-certs apart from the CA`,
    );
  }
});

t.test('webhook values: failure policy, timeout, exclusions, selectors', async (t) => {
  const { objects } = await chart('self-managed');
  for (const configuration of webhookObjects(objects)) {
    for (const webhook of configuration.webhooks) {
      t.same(
        webhook.namespaceSelector,
        {
          matchExpressions: [
            {
              key: 'kubernetes.io/metadata.name',
              operator: 'NotIn',
              values: ['kube-system', GUARD_NAMESPACE, 'cert-manager', 'monitoring'],
            },
            { key: 'example.com/kms-guard', operator: 'NotIn', values: ['off'] },
          ],
        },
        `${webhook.name}: kube-system and the release namespace always excluded, plus the extra ones and selector`,
      );
      t.same(
        webhook.objectSelector,
        { matchExpressions: [{ key: 'example.com/unguarded', operator: 'DoesNotExist' }] },
        `${webhook.name}: the object selector`,
      );
      t.equal(
        (webhook as unknown as { timeoutSeconds: number }).timeoutSeconds,
        3,
        `${webhook.name}: timeout`,
      );
    }
  }
  const other = await renderChart({ valueSet: 'default', namespace: 'security', release: 'guard' });
  for (const configuration of webhookObjects(other.objects)) {
    for (const webhook of configuration.webhooks) {
      t.same(
        (webhook.namespaceSelector as { matchExpressions: { values: string[] }[] })
          .matchExpressions[0]?.values,
        ['kube-system', 'security'],
        `${webhook.name}: another release namespace is excluded instead`,
      );
      t.same(
        webhook.clientConfig.service,
        {
          name: 'guard-kms-secret-guard',
          namespace: 'security',
          path: webhook.name.startsWith('validate') ? '/validate' : '/mutate',
          port: 443,
        },
        `${webhook.name}: calls that release's Service`,
      );
    }
  }
  for (const configuration of webhookObjects((await chart('strict')).objects)) {
    t.same(
      configuration.webhooks.map((webhook) => webhook.failurePolicy),
      ['Fail'],
      `strict: ${configuration.kind} Fail`,
    );
  }
});

t.test('scheduling, image, credentials and RRSA values reach the pods', async (t) => {
  const { objects } = await chart('self-managed');
  const deployment = only(objects, 'Deployment');
  const spec = podTemplate(deployment).spec as unknown as Record<string, unknown>;
  const container = (spec.containers as Record<string, unknown>[])[0] ?? {};
  t.equal((deployment.spec as { replicas: number }).replicas, 3, 'replicas');
  t.equal(
    container.image,
    'registry.example.com/platform/kms-secret-guard@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef',
    'image by digest',
  );
  t.equal(container.imagePullPolicy, 'Always', 'pull policy');
  t.equal(spec.priorityClassName, 'system-cluster-critical', 'priorityClassName');
  t.same(spec.nodeSelector, { 'kubernetes.io/os': 'linux' }, 'nodeSelector');
  t.equal((spec.tolerations as unknown[]).length, 1, 'tolerations');
  t.equal(spec.affinity, undefined, 'affinity {} means none');
  t.same(
    spec.topologySpreadConstraints,
    [
      {
        maxSkew: 1,
        topologyKey: 'topology.kubernetes.io/zone',
        whenUnsatisfiable: 'DoNotSchedule',
        labelSelector: {
          matchLabels: {
            'app.kubernetes.io/name': 'kms-secret-guard',
            'app.kubernetes.io/instance': RELEASE,
            'app.kubernetes.io/component': 'webhook',
          },
        },
      },
    ],
    "a spread constraint of your own gets the pods' selector",
  );
  t.same(
    container.envFrom,
    [
      { configMapRef: { name: 'kms-secret-guard' } },
      { secretRef: { name: 'kms-secret-guard-credentials' } },
    ],
    'credentials from the existing Secret',
  );
  t.equal(
    only(objects, 'ServiceAccount', 'kms-secret-guard').metadata.annotations?.[
      'pod-identity.alibabacloud.com/role-name'
    ],
    undefined,
    'no RRSA annotation with rrsa.enabled=false',
  );
  t.equal(ofKind(objects, 'NetworkPolicy').length, 0, 'networkPolicy.enabled=false');
  t.same(
    (only(objects, 'PodDisruptionBudget').spec as { minAvailable: number }).minAvailable,
    2,
    'PDB minAvailable',
  );
  const data = only(objects, 'ConfigMap').data as Record<string, string>;
  t.same(
    data,
    {
      KMS_KEY_ID: 'alias/cluster-secrets',
      KMS_REGION: '',
      KMS_ENDPOINT: 'kms.cn-shanghai.aliyuncs.com',
      KEY_REFRESH_INTERVAL: '1m',
      KEY_MAX_STALENESS: '10m',
      ON_UNKNOWN: 'deny',
      GUARD_MODE: 'warn',
      LOG_LEVEL: 'debug',
    },
    'every serve setting reaches the ConfigMap',
  );
  const ack = (await chart('ack-pro')).objects;
  const ackPod = podTemplate(only(ack, 'Deployment')).spec as unknown as Record<string, unknown>;
  t.same(ackPod.imagePullSecrets, [{ name: 'acr-pull' }], 'imagePullSecrets');
  t.equal(
    (ackPod.containers as { image: string }[])[0]?.image,
    'registry.cn-hangzhou.aliyuncs.com/platform/kms-secret-guard:0.1.0',
    'registry/repository:tag',
  );
  t.equal(
    only(ack, 'ServiceAccount', 'kms-secret-guard').metadata.annotations?.[
      'pod-identity.alibabacloud.com/role-name'
    ],
    'kms-secret-guard',
    'RRSA role-name annotation',
  );
  const policy = only(ack, 'NetworkPolicy').spec as {
    ingress: { from?: { namespaceSelector?: { matchLabels?: Record<string, string> } }[] }[];
  };
  t.equal(
    policy.ingress[1]?.from?.[0]?.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'],
    'arms-prom',
    'metrics namespace',
  );
});

t.test(
  'ServiceMonitor and PrometheusRule: only where the API exists, or when enabled',
  async (t) => {
    const monitoringKinds = (objects: KubeObject[]): string[] =>
      objects
        .filter((object) => object.apiVersion === 'monitoring.coreos.com/v1')
        .map((object) => object.kind)
        .sort();
    t.same(monitoringKinds((await chart('default')).objects), [], 'auto, API absent: none');
    const apiVersions = [
      'monitoring.coreos.com/v1/ServiceMonitor',
      'monitoring.coreos.com/v1/PrometheusRule',
    ];
    t.same(
      monitoringKinds((await renderChart({ valueSet: 'default', apiVersions })).objects),
      ['PrometheusRule', 'ServiceMonitor'],
      'auto, API present: both',
    );
    t.same(
      monitoringKinds(
        (
          await renderChart({
            valueSet: 'default',
            apiVersions,
            set: [
              'monitoring.serviceMonitor.enabled=false',
              'monitoring.prometheusRule.enabled=false',
            ],
          })
        ).objects,
      ),
      [],
      'false, API present: none',
    );
    t.same(
      monitoringKinds((await chart('monitoring')).objects),
      ['PrometheusRule', 'ServiceMonitor'],
      'true, API absent: both',
    );
    const rules = (
      only((await chart('monitoring')).objects, 'PrometheusRule').spec as { groups: unknown }
    ).groups;
    const shipped = (
      only(await kustomize('monitoring'), 'PrometheusRule').spec as { groups: unknown }
    ).groups;
    t.same(rules, shipped, "the chart's alerts are manifests/monitoring's, rule for rule");
    const copy = readFileSync(join(CHART_DIR, 'files', 'prometheusrule.yaml'), 'utf8');
    const original = readFileSync(
      join(fixture.root, '..', 'manifests', 'monitoring', 'prometheusrule.yaml'),
      'utf8',
    );
    t.equal(
      copy,
      original,
      'charts/kms-secret-guard/files/prometheusrule.yaml is a byte-identical copy of manifests/monitoring/prometheusrule.yaml',
    );
  },
);

t.test('reencrypt: rendered only on request, with its least-privilege RBAC', async (t) => {
  const plain = (await chart('default')).objects;
  t.equal(
    ofKind(plain, 'Job').filter((job) => !isHook(job)).length,
    0,
    'no reencrypt Job by default',
  );
  t.equal(
    ofKind(plain, 'ClusterRole').filter((role) => !isHook(role)).length,
    0,
    'no ClusterRole by default',
  );
  const dryRun = podTemplate(
    only(
      (await chart('reencrypt-dry-run')).objects.filter((object) => !isHook(object)),
      'Job',
    ),
  ).spec.containers[0];
  t.same(dryRun?.args, ['reencrypt', '--dry-run', '--json'], 'reencrypt.dryRun adds --dry-run');
  const shown = await runTool(
    'helm',
    templateArgs({ valueSet: 'default', set: ['reencrypt.enabled=true'] }).concat([
      '--show-only',
      'templates/reencrypt.yaml',
    ]),
  );
  t.equal(shown.code, 0, 'the documented --show-only templates/reencrypt.yaml command works', {
    stderr: shown.stderr,
  });
  t.same(
    parseObjects(shown.stdout).map(identity).sort(),
    [
      'ClusterRole/kms-secret-guard-reencrypt',
      'ClusterRoleBinding/kms-secret-guard-reencrypt',
      'Job/kms-secret-guard-reencrypt',
      'ServiceAccount/kms-secret-guard-reencrypt',
    ],
    'and renders just the Job and its RBAC',
  );
});

t.test(
  'pre-delete hook: deletes exactly the two webhook configurations, with RBAC for them alone',
  async (t) => {
    const { objects } = await chart('default');
    const hooks = objects.filter(isHook);
    t.same(
      hooks.map(identity).sort(),
      [
        'ClusterRole/kms-secret-guard-pre-delete',
        'ClusterRoleBinding/kms-secret-guard-pre-delete',
        'Job/kms-secret-guard-pre-delete',
        'ServiceAccount/kms-secret-guard-pre-delete',
      ],
      'a Job, its ServiceAccount and RBAC',
    );
    for (const hook of hooks) {
      t.equal(
        hook.metadata.annotations?.['helm.sh/hook'],
        'pre-delete',
        `${identity(hook)}: a pre-delete hook`,
      );
      t.equal(
        hook.metadata.annotations?.['helm.sh/hook-delete-policy'],
        'before-hook-creation,hook-succeeded',
        `${identity(hook)}: removed after success`,
      );
    }
    const names = webhookObjects(objects).map((object) => object.metadata.name);
    t.same(
      only(hooks, 'ClusterRole').rules,
      [
        {
          apiGroups: ['admissionregistration.k8s.io'],
          resources: ['validatingwebhookconfigurations', 'mutatingwebhookconfigurations'],
          resourceNames: [...new Set(names)],
          verbs: ['get', 'delete'],
        },
      ],
      'get and delete on the two configurations only',
    );
    const job = podTemplate(only(hooks, 'Job'));
    t.same(
      job.spec.containers[0]?.args?.slice(1, 3).sort(),
      webhookObjects(objects)
        .map((object) => `${object.kind.toLowerCase()}/${object.metadata.name}`)
        .sort(),
      'the Job deletes both rendered configurations',
    );
    t.equal(
      job.spec.serviceAccountName,
      'kms-secret-guard-pre-delete',
      'as its own ServiceAccount',
    );
    t.equal(ofKind(objects, 'Job').length, 1, 'no other Job');
    t.equal(
      (
        await renderChart({ valueSet: 'default', set: ['preDeleteHook.enabled=false'] })
      ).objects.filter(isHook).length,
      0,
      'preDeleteHook.enabled=false renders none',
    );
  },
);
