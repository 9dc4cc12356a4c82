import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import t from 'tap';
import { serviceDnsNames } from '../../src/certs/generate.js';
import { SETTINGS } from '../../src/config/settings.js';
import { createMetrics } from '../../src/server/metrics.js';
import {
  GUARD_NAMESPACE,
  GUARD_SERVICE,
  KUSTOMIZATIONS,
  REPO_ROOT,
  manifestsWithCertificates,
  ofKind,
  only,
  renderKustomization,
  type KubeObject,
  type KustomizationPath,
} from '../helpers/manifests.js';

// Minimal shapes of the fields these tests read.
interface Probe {
  httpGet?: { path?: string; port?: string | number };
}
interface SecurityContext {
  runAsNonRoot?: boolean;
  runAsUser?: number;
  readOnlyRootFilesystem?: boolean;
  allowPrivilegeEscalation?: boolean;
  privileged?: boolean;
  capabilities?: { drop?: string[]; add?: string[] };
  seccompProfile?: { type?: string };
}
interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string }[];
  envFrom?: { configMapRef?: { name: string } }[];
  ports?: { name?: string; containerPort: number }[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  startupProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: SecurityContext;
  volumeMounts?: { name: string; mountPath: string }[];
}
interface PodSpec {
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  securityContext?: SecurityContext;
  containers: Container[];
  volumes?: { name: string; secret?: { secretName: string } }[];
  topologySpreadConstraints?: { topologyKey: string; labelSelector?: unknown }[];
  affinity?: { podAntiAffinity?: unknown };
}
interface PodTemplate {
  metadata: { labels: Record<string, string> };
  spec: PodSpec;
}
interface Webhook {
  name: string;
  admissionReviewVersions: string[];
  sideEffects: string;
  timeoutSeconds?: number;
  failurePolicy?: string;
  namespaceSelector?: {
    matchExpressions?: { key: string; operator: string; values?: string[] }[];
  };
  rules: { apiGroups: string[]; resources: string[]; operations: string[] }[];
  clientConfig: {
    caBundle?: string;
    service?: { name: string; namespace: string; path?: string; port?: number };
  };
}

const PACKAGE_VERSION = (
  JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }
).version;
const SETTING_ENVS = new Set<string>(Object.values(SETTINGS).map((setting) => setting.env));

const fixture = await manifestsWithCertificates();
t.teardown(() => {
  fixture.cleanup();
});
const rendered = new Map<KustomizationPath, KubeObject[]>();
for (const path of KUSTOMIZATIONS) {
  rendered.set(path, await renderKustomization(join(fixture.root, path)));
}
function render(path: KustomizationPath): KubeObject[] {
  const objects = rendered.get(path);
  if (objects === undefined) throw new Error(`${path} was not rendered`);
  return objects;
}

function podTemplate(object: KubeObject): PodTemplate {
  return (object.spec as { template: PodTemplate }).template;
}
function webhooksOf(objects: readonly KubeObject[]): Webhook[] {
  return [
    ...ofKind(objects, 'ValidatingWebhookConfiguration'),
    ...ofKind(objects, 'MutatingWebhookConfiguration'),
  ].flatMap((object) => object.webhooks as Webhook[]);
}
function matches(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([key, value]) => labels[key] === value);
}

t.test('every kustomization renders with kubectl kustomize', async (t) => {
  for (const path of KUSTOMIZATIONS) {
    t.ok(render(path).length > 0, `${path} renders at least one object`);
  }
});

t.test('every namespaced object lives in the guard namespace', async (t) => {
  const clusterScoped = new Set([
    'Namespace',
    'ClusterRole',
    'ClusterRoleBinding',
    'ValidatingWebhookConfiguration',
    'MutatingWebhookConfiguration',
  ]);
  for (const path of KUSTOMIZATIONS) {
    for (const object of render(path)) {
      if (clusterScoped.has(object.kind)) continue;
      t.equal(
        object.metadata.namespace,
        GUARD_NAMESPACE,
        `${path}: ${object.kind} ${object.metadata.name} is in ${GUARD_NAMESPACE}`,
      );
    }
  }
});

/** A Kubernetes memory quantity in MiB (the manifests use Mi and Gi). */
function mebibytes(quantity: string | undefined): number {
  const match = /^(\d+)(Mi|Gi)$/.exec(quantity ?? '');
  if (match === null) return Number.NaN;
  return Number(match[1]) * (match[2] === 'Gi' ? 1024 : 1);
}

/** The value of a numeric V8 flag such as --max-old-space-size=160 in NODE_OPTIONS. */
function v8Flag(nodeOptions: string | undefined, flag: string): number | undefined {
  const match = new RegExp(`(?:^|\\s)--${flag}=(\\d+)(?:\\s|$)`).exec(nodeOptions ?? '');
  return match === null ? undefined : Number(match[1]);
}

t.test('every container is hardened and has resources', async (t) => {
  for (const path of KUSTOMIZATIONS) {
    for (const object of [...ofKind(render(path), 'Deployment'), ...ofKind(render(path), 'Job')]) {
      const spec = podTemplate(object).spec;
      const where = `${path}: ${object.kind} ${object.metadata.name}`;
      t.equal(spec.securityContext?.runAsNonRoot, true, `${where}: pod runAsNonRoot`);
      t.equal(spec.securityContext?.seccompProfile?.type, 'RuntimeDefault', `${where}: seccomp`);
      for (const container of spec.containers) {
        const context = container.securityContext ?? {};
        const name = `${where} container ${container.name}`;
        t.equal(context.runAsNonRoot, true, `${name}: runAsNonRoot`);
        t.equal(context.readOnlyRootFilesystem, true, `${name}: readOnlyRootFilesystem`);
        t.equal(context.allowPrivilegeEscalation, false, `${name}: no privilege escalation`);
        t.not(context.privileged, true, `${name}: not privileged`);
        t.same(context.capabilities?.drop, ['ALL'], `${name}: drops ALL capabilities`);
        t.equal(context.capabilities?.add, undefined, `${name}: adds no capability`);
        t.equal(context.seccompProfile?.type, 'RuntimeDefault', `${name}: seccomp RuntimeDefault`);
        for (const kind of ['requests', 'limits'] as const) {
          t.ok(container.resources?.[kind]?.cpu, `${name}: cpu ${kind}`);
          t.ok(container.resources?.[kind]?.memory, `${name}: memory ${kind}`);
        }
        const nodeOptions = container.env?.find((entry) => entry.name === 'NODE_OPTIONS')?.value;
        const limitMi = mebibytes(container.resources?.limits?.memory);
        const oldSpace = v8Flag(nodeOptions, 'max-old-space-size');
        t.ok(oldSpace !== undefined, `${name}: NODE_OPTIONS bounds the V8 heap (${nodeOptions})`);
        // V8's young generation is three semi-spaces (two + large objects); Node, TLS and the
        // SDK need about 64 MiB outside the heap (bench/RESULTS.md: idle RSS).
        const heapMi =
          (oldSpace ?? Infinity) + 3 * (v8Flag(nodeOptions, 'max-semi-space-size') ?? 16);
        t.ok(
          heapMi + 64 <= limitMi,
          `${name}: heap ${heapMi} MiB + 64 MiB outside it fit the ${limitMi} MiB memory limit`,
        );
        t.match(
          container.image ?? '',
          new RegExp(`(^|/)kms-secret-guard:${PACKAGE_VERSION.replace(/\./g, '\\.')}$`),
          `${name}: image tag is the package version`,
        );
      }
    }
  }
});

t.test('base: Deployment', async (t) => {
  const objects = render('base');
  const deployment = only(objects, 'Deployment', 'kms-secret-guard');
  const spec = deployment.spec as {
    replicas: number;
    selector: { matchLabels: Record<string, string> };
  };
  const template = podTemplate(deployment);
  const container = template.spec.containers[0]!;
  t.equal(spec.replicas, 2, 'two replicas');
  t.ok(matches(spec.selector.matchLabels, template.metadata.labels), 'selector matches the pods');
  t.ok(
    template.spec.topologySpreadConstraints?.some(
      (constraint) => constraint.topologyKey === 'kubernetes.io/hostname',
    ),
    'replicas are spread across nodes',
  );
  t.ok(template.spec.affinity?.podAntiAffinity, 'pod anti-affinity prefers different nodes');
  t.equal(template.spec.automountServiceAccountToken, false, 'no Kubernetes API token mounted');
  only(objects, 'ServiceAccount', template.spec.serviceAccountName);
  t.same(container.args, ['serve'], 'runs serve');

  const env = new Map((container.env ?? []).map((entry) => [entry.name, entry.value]));
  const ports = new Map((container.ports ?? []).map((port) => [port.name, port.containerPort]));
  t.equal(ports.get('https'), 8443, 'admission container port 8443');
  t.equal(ports.get('health'), 8080, 'health container port 8080');
  t.equal(env.get('PORT'), '8443', 'PORT agrees with the https container port');
  t.equal(env.get('HEALTH_PORT'), '8080', 'HEALTH_PORT agrees with the health container port');

  t.equal(container.livenessProbe?.httpGet?.path, '/livez', 'liveness probe on /livez');
  t.equal(container.readinessProbe?.httpGet?.path, '/readyz', 'readiness probe on /readyz');
  for (const probe of [container.livenessProbe, container.readinessProbe, container.startupProbe]) {
    if (probe === undefined) continue;
    t.equal(probe.httpGet?.port, 'health', 'probes use the health port');
    t.not(probe.httpGet?.path, '/healthz/kms', 'no probe on the key check');
  }

  const tlsVolume = template.spec.volumes?.find((volume) => volume.secret !== undefined);
  t.equal(tlsVolume?.secret?.secretName, 'kms-secret-guard-tls', 'TLS Secret mounted');
  const mount = container.volumeMounts?.find((entry) => entry.name === tlsVolume?.name);
  t.ok(mount, 'the TLS volume is mounted');
  t.equal(dirname(env.get('TLS_CERT_FILE') ?? ''), mount?.mountPath, 'TLS_CERT_FILE in the mount');
  t.equal(dirname(env.get('TLS_KEY_FILE') ?? ''), mount?.mountPath, 'TLS_KEY_FILE in the mount');
  t.ok(
    (container.env ?? []).every(
      (entry) => SETTING_ENVS.has(entry.name) || entry.name === 'NODE_OPTIONS',
    ),
    'every env variable is a documented setting',
  );

  const configMapName = container.envFrom?.[0]?.configMapRef?.name;
  const configMap = only(objects, 'ConfigMap', configMapName);
  const data = configMap.data as Record<string, string>;
  for (const key of Object.keys(data)) {
    t.ok(SETTING_ENVS.has(key), `ConfigMap key ${key} is a setting's environment variable`);
  }
  for (const key of ['KMS_KEY_ID', 'KMS_REGION', 'ON_UNKNOWN', 'GUARD_MODE']) {
    t.ok(key in data, `ConfigMap has ${key}`);
  }
  t.equal(data.KMS_KEY_ID, '', 'no made-up key id: the guard refuses to start until it is set');
});

t.test(
  'base: Service, PodDisruptionBudget, NetworkPolicy, ServiceAccount, Namespace',
  async (t) => {
    const objects = render('base');
    const labels = podTemplate(only(objects, 'Deployment')).metadata.labels;
    const service = only(objects, 'Service', GUARD_SERVICE);
    const serviceSpec = service.spec as {
      selector: Record<string, string>;
      ports: { name: string; port: number; targetPort: string | number }[];
    };
    t.ok(matches(serviceSpec.selector, labels), 'Service selects the webhook pods');
    const https = serviceSpec.ports.find((port) => port.port === 443);
    t.equal(https?.targetPort, 'https', 'Service 443 targets the https (8443) container port');

    const budget = only(objects, 'PodDisruptionBudget');
    const budgetSpec = budget.spec as {
      minAvailable: number;
      selector: { matchLabels: Record<string, string> };
    };
    t.equal(budgetSpec.minAvailable, 1, 'PodDisruptionBudget keeps one pod');
    t.ok(matches(budgetSpec.selector.matchLabels, labels), 'PodDisruptionBudget selects the pods');

    interface Peer {
      namespaceSelector?: { matchLabels?: Record<string, string> };
      ipBlock?: { cidr: string };
    }
    interface Rule {
      from?: Peer[];
      to?: Peer[];
      ports?: { port: number; protocol: string }[];
    }
    const policy = only(objects, 'NetworkPolicy').spec as {
      podSelector: { matchLabels: Record<string, string> };
      policyTypes: string[];
      ingress: Rule[];
      egress: Rule[];
    };
    t.ok(matches(policy.podSelector.matchLabels, labels), 'NetworkPolicy selects the pods');
    t.same(policy.policyTypes, ['Ingress', 'Egress'], 'restricts ingress and egress');
    const admission = policy.ingress.find((rule) => rule.ports?.some((port) => port.port === 8443));
    t.equal(admission?.from, undefined, '8443 open to any source (the API server)');
    const health = policy.ingress.find((rule) => rule.ports?.some((port) => port.port === 8080));
    t.equal(
      health?.from?.[0]?.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'],
      'monitoring',
      '8080 only from the monitoring namespace',
    );
    const egressPorts = policy.egress.flatMap((rule) => rule.ports ?? []);
    t.ok(
      egressPorts.some((port) => port.port === 53 && port.protocol === 'UDP'),
      'DNS over UDP',
    );
    t.ok(
      egressPorts.some((port) => port.port === 53 && port.protocol === 'TCP'),
      'DNS over TCP',
    );
    t.ok(
      egressPorts.some((port) => port.port === 443),
      'KMS and STS over 443',
    );

    const account = only(objects, 'ServiceAccount', 'kms-secret-guard');
    t.ok(
      account.metadata.annotations?.['pod-identity.alibabacloud.com/role-name'],
      'ServiceAccount names the RRSA RAM role',
    );
    const namespace = only(objects, 'Namespace', GUARD_NAMESPACE);
    t.equal(
      namespace.metadata.labels?.['pod-identity.alibabacloud.com/injection'],
      'on',
      'namespace enables ack-pod-identity-webhook injection',
    );
    t.equal(ofKind(objects, 'Job').length, 0, 'the base starts no reencrypt Job');
    t.equal(ofKind(objects, 'PrometheusRule').length, 0, 'the base needs no Prometheus CRDs');
  },
);

t.test('webhook configurations in every overlay', async (t) => {
  for (const path of [
    'base',
    'overlays/cert-manager',
    'overlays/self-managed-certs',
    'overlays/strict',
  ] as const) {
    const objects = render(path);
    t.equal(ofKind(objects, 'ValidatingWebhookConfiguration').length, 1, `${path}: one validating`);
    t.equal(ofKind(objects, 'MutatingWebhookConfiguration').length, 1, `${path}: one mutating`);
    const service = only(objects, 'Service', GUARD_SERVICE);
    for (const webhook of webhooksOf(objects)) {
      const where = `${path}: ${webhook.name}`;
      t.same(webhook.admissionReviewVersions, ['v1'], `${where}: admissionReviewVersions [v1]`);
      t.equal(webhook.sideEffects, 'None', `${where}: sideEffects None (server dry-run works)`);
      t.ok((webhook.timeoutSeconds ?? 10) <= 5, `${where}: timeoutSeconds <= 5`);
      const excluded = webhook.namespaceSelector?.matchExpressions?.find(
        (expression) =>
          expression.key === 'kubernetes.io/metadata.name' && expression.operator === 'NotIn',
      );
      for (const namespace of ['kube-system', GUARD_NAMESPACE]) {
        t.ok(excluded?.values?.includes(namespace), `${where}: excludes ${namespace}`);
      }
      t.same(
        webhook.rules.map((rule) => [rule.apiGroups, rule.resources, [...rule.operations].sort()]),
        [[[''], ['secrets'], ['CREATE', 'UPDATE']]],
        `${where}: Secrets CREATE and UPDATE only`,
      );
      t.equal(webhook.clientConfig.service?.name, service.metadata.name, `${where}: our Service`);
      t.equal(webhook.clientConfig.service?.namespace, GUARD_NAMESPACE, `${where}: our namespace`);
      t.equal(webhook.clientConfig.service?.port ?? 443, 443, `${where}: Service port 443`);
      t.match(webhook.clientConfig.service?.path ?? '', /^\/(validate|mutate)$/, `${where}: path`);
      t.equal(
        webhook.failurePolicy,
        path === 'overlays/strict' ? 'Fail' : 'Ignore',
        `${where}: failurePolicy ${path === 'overlays/strict' ? 'Fail' : 'Ignore'}`,
      );
    }
    const paths = webhooksOf(objects)
      .map((webhook) => webhook.clientConfig.service?.path)
      .sort();
    t.same(paths, ['/mutate', '/validate'], `${path}: one /validate and one /mutate webhook`);
  }
});

t.test('cert-manager overlay: issuer chain, certificate and caBundle injection', async (t) => {
  for (const path of ['overlays/cert-manager', 'overlays/strict'] as const) {
    const objects = render(path);
    interface CertificateSpec {
      isCA?: boolean;
      secretName: string;
      dnsNames?: string[];
      usages?: string[];
      privateKey?: { algorithm?: string; size?: number };
      issuerRef: { name: string; kind: string };
    }
    interface IssuerSpec {
      selfSigned?: object;
      ca?: { secretName: string };
    }
    const deploymentSecret = podTemplate(only(objects, 'Deployment')).spec.volumes?.find(
      (volume) => volume.secret,
    )?.secret?.secretName;
    const certificates = ofKind(objects, 'Certificate');
    const serving = certificates.find(
      (certificate) => (certificate.spec as CertificateSpec).secretName === deploymentSecret,
    );
    t.ok(serving, `${path}: a Certificate writes the Secret the Deployment mounts`);
    if (serving === undefined) continue;
    const servingSpec = serving.spec as CertificateSpec;
    t.same(
      servingSpec.dnsNames,
      serviceDnsNames(GUARD_SERVICE, GUARD_NAMESPACE),
      `${path}: serving certificate covers the Service DNS names`,
    );
    t.ok(servingSpec.usages?.includes('server auth'), `${path}: server auth usage`);
    t.same(
      [servingSpec.privateKey?.algorithm, servingSpec.privateKey?.size],
      ['ECDSA', 256],
      `${path}: ECDSA P-256 key`,
    );
    const caIssuer = only(objects, 'Issuer', servingSpec.issuerRef.name);
    const caSecret = (caIssuer.spec as IssuerSpec).ca?.secretName;
    t.ok(caSecret, `${path}: serving certificate is issued by a CA Issuer`);
    const caCertificate = certificates.find(
      (certificate) => (certificate.spec as CertificateSpec).secretName === caSecret,
    );
    t.equal((caCertificate?.spec as CertificateSpec | undefined)?.isCA, true, `${path}: CA cert`);
    const root = only(
      objects,
      'Issuer',
      (caCertificate?.spec as CertificateSpec | undefined)?.issuerRef.name,
    );
    t.ok((root.spec as IssuerSpec).selfSigned, `${path}: the CA is self-signed`);

    for (const kind of ['ValidatingWebhookConfiguration', 'MutatingWebhookConfiguration']) {
      t.equal(
        only(objects, kind).metadata.annotations?.['cert-manager.io/inject-ca-from'],
        `${serving.metadata.namespace ?? ''}/${serving.metadata.name}`,
        `${path}: ${kind} gets its caBundle from the serving Certificate`,
      );
    }
  }
});

t.test('self-managed-certs overlay: Secret from certs/ and the caBundle patched in', async (t) => {
  const objects = render('overlays/self-managed-certs');
  const secret = only(objects, 'Secret');
  t.equal(secret.type, 'kubernetes.io/tls', 'a kubernetes.io/tls Secret');
  const data = secret.data as Record<string, string>;
  const decode = (value: string | undefined): string =>
    Buffer.from((value ?? '').replace(/\s+/g, ''), 'base64').toString('utf8');
  t.equal(decode(data['tls.crt']), fixture.certificates.cert, 'tls.crt from certs/tls.crt');
  t.equal(decode(data['tls.key']), fixture.certificates.key, 'tls.key from certs/tls.key');
  t.equal(decode(data['ca.crt']), fixture.certificates.caCert, 'ca.crt from certs/ca.crt');
  const mounted = podTemplate(only(objects, 'Deployment')).spec.volumes?.find(
    (volume) => volume.secret,
  )?.secret?.secretName;
  t.equal(mounted, secret.metadata.name, 'the Deployment mounts the generated Secret (hash name)');

  const ca = new X509Certificate(fixture.certificates.caCert);
  const cert = new X509Certificate(decode(data['tls.crt']));
  for (const webhook of webhooksOf(objects)) {
    const bundle = decode(webhook.clientConfig.caBundle);
    t.equal(bundle, fixture.certificates.caCert, `${webhook.name}: caBundle is ca.crt`);
  }
  t.ok(cert.verify(ca.publicKey), 'the serving certificate verifies against the caBundle');
  for (const name of serviceDnsNames(GUARD_SERVICE, GUARD_NAMESPACE)) {
    t.ok(cert.checkHost(name), `serving certificate valid for ${name}`);
  }
});

t.test('strict overlay differs from cert-manager only in failurePolicy', async (t) => {
  const strip = (objects: readonly KubeObject[]): string =>
    JSON.stringify(objects).replace(/"failurePolicy":"(Fail|Ignore)"/g, '"failurePolicy":"*"');
  t.equal(
    strip(render('overlays/strict')),
    strip(render('overlays/cert-manager')),
    'same objects apart from failurePolicy',
  );
});

t.test('reencrypt Job and its least-privilege RBAC', async (t) => {
  for (const path of ['reencrypt', 'reencrypt-dry-run'] as const) {
    const objects = render(path);
    const job = only(objects, 'Job');
    const spec = podTemplate(job).spec;
    const container = spec.containers[0]!;
    t.same(container.command, ['kms-secret-guard'], `${path}: runs the kms-secret-guard CLI`);
    t.equal(container.args?.[0], 'reencrypt', `${path}: the reencrypt command`);
    t.equal(
      container.args?.includes('--dry-run'),
      path === 'reencrypt-dry-run',
      `${path}: --dry-run only in the dry-run Job`,
    );
    t.equal(
      container.envFrom?.[0]?.configMapRef?.name,
      'kms-secret-guard',
      `${path}: key settings from the base ConfigMap`,
    );
    const account = only(objects, 'ServiceAccount', spec.serviceAccountName);
    t.not(account.metadata.name, 'kms-secret-guard', `${path}: its own ServiceAccount`);
    t.not(spec.automountServiceAccountToken, false, `${path}: needs its API token`);

    const role = only(objects, 'ClusterRole');
    t.same(
      role.rules,
      [{ apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'patch'] }],
      `${path}: ClusterRole is get, list and patch on Secrets only`,
    );
    const binding = only(objects, 'ClusterRoleBinding');
    t.same(
      binding.roleRef,
      { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata.name },
      `${path}: binding grants that ClusterRole`,
    );
    t.same(
      binding.subjects,
      [{ kind: 'ServiceAccount', name: account.metadata.name, namespace: GUARD_NAMESPACE }],
      `${path}: to the Job's ServiceAccount only`,
    );
  }
  t.not(
    only(render('reencrypt'), 'Job').metadata.name,
    only(render('reencrypt-dry-run'), 'Job').metadata.name,
    'the dry-run Job has its own name',
  );
});

t.test('monitoring: alerts on the guard metrics and a ServiceMonitor', async (t) => {
  const objects = render('monitoring');
  interface RuleGroup {
    rules: { alert: string; expr: string; labels?: { severity?: string } }[];
  }
  const groups = (only(objects, 'PrometheusRule').spec as { groups: RuleGroup[] }).groups;
  const rules = groups.flatMap((group) => group.rules);
  const exprOf = (alert: string): string => rules.find((rule) => rule.alert === alert)?.expr ?? '';
  const expected: [string, string][] = [
    ['KmsSecretGuardKeyUnusable', 'kms_secret_guard_key_usable'],
    ['KmsSecretGuardKeyDeletionScheduled', 'kms_secret_guard_key_deletion_timestamp_seconds'],
    ['KmsSecretGuardKeyStateStale', 'kms_secret_guard_key_state_age_seconds'],
    ['KmsSecretGuardKeyStateUnknown', 'kms_secret_guard_key_status{status="unknown"}'],
    ['KmsSecretGuardNotReporting', 'kms_secret_guard_key_usable'],
    ['KmsSecretGuardKeyRotationOverdue', 'kms_secret_guard_key_next_rotation_timestamp_seconds'],
    ['KmsSecretGuardWebhookErrors', 'kms_secret_guard_admission_requests_total'],
    ['KmsSecretGuardDenyingSecretWrites', 'kms_secret_guard_admission_requests_total'],
  ];
  for (const [alert, metric] of expected) {
    t.ok(exprOf(alert).includes(metric), `${alert} uses ${metric}`);
  }
  const exported = new Set(
    (await createMetrics().registry.getMetricsAsJSON()).map((metric) => metric.name),
  );
  const used = new Set(rules.flatMap((rule) => rule.expr.match(/kms_secret_guard_[a-z_]+/g) ?? []));
  for (const metric of used) {
    t.ok(exported.has(metric), `alerts use ${metric}, which serve exports`);
  }
  for (const rule of rules) {
    t.ok(['critical', 'warning'].includes(rule.labels?.severity ?? ''), `${rule.alert}: severity`);
  }
  const monitor = only(objects, 'ServiceMonitor').spec as {
    selector: { matchLabels: Record<string, string> };
    endpoints: { port: string; path: string }[];
  };
  const service = only(render('base'), 'Service', GUARD_SERVICE);
  t.ok(
    matches(monitor.selector.matchLabels, service.metadata.labels ?? {}),
    'ServiceMonitor selects the Service',
  );
  const ports = (service.spec as { ports: { name: string; targetPort: string }[] }).ports;
  const port = ports.find((entry) => entry.name === monitor.endpoints[0]?.port);
  t.equal(port?.targetPort, 'health', 'scrapes the health listener');
  t.equal(monitor.endpoints[0]?.path, '/metrics', 'scrapes /metrics');
});

t.test(
  'examples/ack-pro: a filled-in installation on top of the cert-manager overlay',
  async (t) => {
    const objects = render('examples/ack-pro');
    const data = only(objects, 'ConfigMap').data as Record<string, string>;
    t.not(data.KMS_KEY_ID, '', 'sets the key id');
    t.not(data.KMS_REGION, '', 'sets the region');
    t.equal(data.GUARD_MODE, 'enforce', 'keeps the other settings of the base');
    t.match(
      podTemplate(only(objects, 'Deployment')).spec.containers[0]?.image ?? '',
      /^registry\.example\.com\//,
      'points the image at a registry',
    );
    t.ok(ofKind(objects, 'Certificate').length > 0, 'includes the cert-manager resources');
    const policy = only(objects, 'NetworkPolicy').spec as {
      ingress: { from?: { namespaceSelector?: { matchLabels?: Record<string, string> } }[] }[];
    };
    t.equal(
      policy.ingress[1]?.from?.[0]?.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'],
      'arms-prom',
      'metrics open to ACK Managed Service for Prometheus',
    );
  },
);
