// charts/kms-secret-guard against a real kube-apiserver and etcd, with the real Helm and
// kubectl: every documented value set passes a server-side dry run (both apply flavours)
// and the namespace's Pod Security level; the webhook configurations the chart renders,
// registered field for field (only clientConfig points at the local guard), deny a Secret
// write once the KMS key is disabled; and a real `helm install` / `helm upgrade` keeps the
// chart-made certificate, while the pre-delete hook's command, run with the hook's own
// RBAC, removes exactly the release's webhook configurations.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import {
  CHART_DIR,
  CI_VALUE_SETS,
  ciValuesFile,
  parseObjects,
  renderChart,
  type ChartRender,
} from '../helpers/chart.js';
import type { KubeObject } from '../helpers/manifests.js';
import { runTool } from '../helpers/tools.js';
import {
  APPLY_ARGS,
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
import {
  useGuardedCluster,
  type KubectlResult,
  type WebhookConfiguration,
} from './harness/index.js';
import {
  denialMessage,
  secretAnnotations,
  secretManifest,
  waitForAnswer,
  KEY_ID_ANNOTATION,
} from './harness/secrets.js';

t.setTimeout(300_000);

const NS = 'team-helm';
const GUARD_NAMESPACE = 'kms-secret-guard';
/** Where the real `helm install` goes: another release, so its objects are Helm's alone. */
const RELEASE = 'guard';
const RELEASE_NAMESPACE = 'ksg-helm';
const FULLNAME = `${RELEASE}-kms-secret-guard`;
const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

const e2e = useGuardedCluster(t, NS);
let kubectl: (args: string[], input?: string) => Promise<KubectlResult>;
const renders = new Map<string, ChartRender>();
const answered = new Map<string, KubeObject[]>();
const helmHome = mkdtempSync(join(tmpdir(), 'ksg-helm-home-'));
t.teardown(() => {
  rmSync(helmHome, { recursive: true, force: true });
});

/** The real Helm on the e2e cluster, with its caches in a temporary folder. */
const helm = (args: string[]): ReturnType<typeof runTool> =>
  runTool('helm', [...args, '--kubeconfig', e2e.cluster.kubeconfigPath], {
    env: {
      HELM_CACHE_HOME: join(helmHome, 'cache'),
      HELM_CONFIG_HOME: join(helmHome, 'config'),
      HELM_DATA_HOME: join(helmHome, 'data'),
    },
  });

const namespaceObject = (name: string, labels: Record<string, string>): string =>
  JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } });

t.before(async () => {
  kubectl = dryRunKubectl(e2e.cluster);
  // The harness registered the kustomize base's configurations under the chart's names
  // (with a URL); they would merge into the dry runs. The chart's replace them below.
  const cleared = await kubectl([
    'delete',
    'validatingwebhookconfiguration/kms-secret-guard',
    'mutatingwebhookconfiguration/kms-secret-guard',
    '--ignore-not-found',
  ]);
  if (cleared.code !== 0)
    throw new Error(`could not remove the harness's webhooks: ${cleared.stderr}`);
  await installStandInCrds(kubectl);
  // As docs/install-helm.md has people make it: Pod Security restricted, RRSA injection on.
  const created = await kubectl(
    ['apply', '--server-side', '-f', '-'],
    namespaceObject(GUARD_NAMESPACE, {
      'pod-security.kubernetes.io/enforce': 'restricted',
      'pod-identity.alibabacloud.com/injection': 'on',
    }),
  );
  if (created.code !== 0) throw new Error(`could not create ${GUARD_NAMESPACE}: ${created.stderr}`);
  for (const valueSet of CI_VALUE_SETS) renders.set(valueSet, await renderChart({ valueSet }));
});

for (const valueSet of CI_VALUE_SETS) {
  t.test(
    `${valueSet}: the API server accepts every object the chart renders (dry-run)`,
    async (t) => {
      const rendered = renders.get(valueSet);
      if (rendered === undefined) throw new Error(`${valueSet} was not rendered`);
      for (const mode of ['server-side apply', 'client-side apply'] as const) {
        const result = await kubectl(APPLY_ARGS[mode], rendered.yaml);
        t.equal(result.code, 0, `${mode} --dry-run=server succeeds`, { stderr: result.stderr });
        const reported = printed(result.stdout);
        t.same(
          identities(reported),
          identities(rendered.objects),
          `${mode}: every rendered object was reported, and nothing else`,
        );
        t.same(unexpectedWarnings(result.stderr), [], `${mode}: the API server raised no warnings`);
        if (mode === 'server-side apply') answered.set(valueSet, reported);
      }
    },
  );
}

t.test('the pod templates of every value set pass Pod Security (restricted)', async (t) => {
  const objects = [...renders.values()].flatMap((rendered) => rendered.objects);
  const accounts = objects.filter((object) => object.kind === 'ServiceAccount');
  const unique = [...new Map(accounts.map((account) => [account.metadata.name, account])).values()];
  const created = await kubectl(
    ['apply', '--server-side', '-f', '-'],
    JSON.stringify({ apiVersion: 'v1', kind: 'List', items: unique }),
  );
  t.equal(created.code, 0, 'the ServiceAccounts are created', { stderr: created.stderr });
  const pods = [...renders.entries()].flatMap(([valueSet, rendered]) =>
    rendered.objects
      .filter((object) => object.kind === 'Deployment' || object.kind === 'Job')
      .map((owner) =>
        podFrom(owner, `${valueSet}-${owner.metadata.name}`.slice(0, 63).replace(/-+$/, '')),
      ),
  );
  t.ok(
    pods.length >= CI_VALUE_SETS.length * 2,
    'a Deployment and the hook Job per value set, plus the reencrypt Jobs',
  );
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
});

/** The stored configuration in the fields kubectl apply does not add itself. */
function asRegistered(object: WebhookObject): unknown {
  const annotations = Object.fromEntries(
    Object.entries(object.metadata.annotations ?? {}).filter(([key]) => key !== LAST_APPLIED),
  );
  const shape = withoutClientConfig(object) as Record<string, unknown>;
  return { ...shape, annotations: Object.keys(annotations).length === 0 ? undefined : annotations };
}

t.test(
  "the chart's webhook configurations, registered as rendered, deny writes while the key is disabled",
  async (t) => {
    const chartWebhooks = webhookObjects(renders.get('default')?.objects ?? []);
    t.equal(chartWebhooks.length, 2, 'the default render has both configurations');
    const names = chartWebhooks.map(
      (object) => `${object.kind.toLowerCase()}/${object.metadata.name}`,
    );
    const removed = await e2e.cluster.kubectl(['delete', ...names, '--ignore-not-found']);
    t.equal(removed.code, 0, 'any earlier registration of these names is removed', {
      stderr: removed.stderr,
    });
    await e2e.guard.registerWebhooks({
      configurations: chartWebhooks as unknown as WebhookConfiguration[],
    });

    const stored = await e2e.cluster.kubectl(['get', ...names, '-o', 'json']);
    t.equal(stored.code, 0, 'both configurations are stored', { stderr: stored.stderr });
    const registered = webhookObjects(printed(stored.stdout));
    const expected = webhookObjects(answered.get('default') ?? []);
    const byKind = (objects: WebhookObject[]): WebhookObject[] =>
      [...objects].sort((a, b) => a.kind.localeCompare(b.kind));
    t.same(
      byKind(registered).map(asRegistered),
      byKind(expected).map(asRegistered),
      'stored field for field as the API server defaults the chart render, except clientConfig',
    );
    for (const webhook of registered.flatMap((object) => object.webhooks)) {
      t.match(
        webhook.clientConfig?.url,
        /^https:\/\/127\.0\.0\.1:\d+\/(validate|mutate)$/,
        `${webhook.name}: clientConfig is the local guard`,
      );
    }

    const created = await e2e.cluster.kubectl(['apply', '-f', '-'], {
      input: secretManifest(NS, 'helm-before'),
    });
    t.equal(created.code, 0, 'a Secret write passes while the key is Enabled', {
      stderr: created.stderr,
    });
    t.equal(
      (await secretAnnotations(e2e.cluster, NS, 'helm-before'))[KEY_ID_ANNOTATION],
      e2e.guard.keyId,
      "the chart's mutating webhook stamped it",
    );

    await e2e.guard.kms.disableKey();
    t.teardown(() => e2e.guard.kms.enableKey());
    await waitForAnswer(
      e2e.cluster,
      NS,
      'writes to be refused',
      (result) => denialMessage(result) !== undefined,
    );
    const refused = await e2e.cluster.kubectl([
      'create',
      'secret',
      'generic',
      'helm-refused',
      '-n',
      NS,
      '--from-literal=value=e2e',
    ]);
    t.not(refused.code, 0, 'kubectl create secret fails');
    t.match(
      refused.stderr,
      'validate.kms-secret-guard.io',
      "the chart's validating webhook denied it",
    );
    t.match(denialMessage(refused) ?? '', e2e.guard.keyId, 'naming the key id');
    t.match(denialMessage(refused) ?? '', /disabled/i, 'and its state');
    const excluded = await e2e.cluster.kubectl(['apply', '-f', '-'], {
      input: secretManifest(GUARD_NAMESPACE, 'helm-excluded'),
    });
    t.equal(excluded.code, 0, 'the release namespace stays writable (excluded by the chart)', {
      stderr: excluded.stderr,
    });

    await e2e.guard.kms.enableKey();
    await waitForAnswer(e2e.cluster, NS, 'writes to pass again', (result) => result.code === 0);
  },
);

t.test('helm install, upgrade and the pre-delete hook on the real API server', async (t) => {
  const made = await kubectl(
    ['apply', '--server-side', '-f', '-'],
    namespaceObject(RELEASE_NAMESPACE, { 'pod-security.kubernetes.io/enforce': 'restricted' }),
  );
  t.equal(made.code, 0, `namespace ${RELEASE_NAMESPACE} made`, { stderr: made.stderr });

  const missing = await helm([
    'install',
    'no-key',
    CHART_DIR,
    '-n',
    RELEASE_NAMESPACE,
    '--set',
    'kms.region=cn-hangzhou',
  ]);
  t.not(missing.code, 0, 'helm install without kms.keyId fails');
  t.match(missing.stderr, /kms\.keyId is required/, 'and names kms.keyId');

  const install = await helm([
    'install',
    RELEASE,
    CHART_DIR,
    '-n',
    RELEASE_NAMESPACE,
    '--values',
    ciValuesFile('default'),
  ]);
  t.equal(install.code, 0, 'helm install succeeds', { stderr: install.stderr });
  t.match(
    install.stdout,
    `kubectl -n ${RELEASE_NAMESPACE} exec deploy/${FULLNAME} -- kms-secret-guard check`,
    'NOTES: run check in a guard pod',
  );
  t.match(install.stdout, '--dry-run=server', 'NOTES: the server-side dry run of a Secret');
  t.match(
    install.stdout,
    `namespace ${RELEASE_NAMESPACE} lacks the label pod-identity.alibabacloud.com/injection=on`,
    'NOTES: warns that RRSA injection is off for the namespace',
  );

  const read = async (): Promise<{ ca: string; bundles: string[] }> => {
    const secret = await kubectl([
      'get',
      'secret',
      `${FULLNAME}-tls`,
      '-n',
      RELEASE_NAMESPACE,
      '-o',
      'jsonpath={.data.ca\\.crt}',
    ]);
    const bundles = await kubectl([
      'get',
      `validatingwebhookconfiguration/${FULLNAME}`,
      `mutatingwebhookconfiguration/${FULLNAME}`,
      '-o',
      'jsonpath={.items[*].webhooks[*].clientConfig.caBundle}',
    ]);
    return { ca: secret.stdout, bundles: bundles.stdout.split(' ') };
  };
  const first = await read();
  t.ok(first.ca.length > 100, 'the chart-made Secret holds a CA');
  t.same(first.bundles, [first.ca, first.ca], 'both webhooks trust that CA');

  const upgrade = await helm([
    'upgrade',
    RELEASE,
    CHART_DIR,
    '-n',
    RELEASE_NAMESPACE,
    '--reuse-values',
    '--set',
    'guard.logLevel=debug',
  ]);
  t.equal(upgrade.code, 0, 'helm upgrade succeeds', { stderr: upgrade.stderr });
  const level = await kubectl([
    'get',
    'configmap',
    FULLNAME,
    '-n',
    RELEASE_NAMESPACE,
    '-o',
    'jsonpath={.data.LOG_LEVEL}',
  ]);
  t.equal(level.stdout, 'debug', 'the upgrade changed the setting');
  t.same(
    await read(),
    first,
    'and kept the certificate and the caBundle (lookup of the existing Secret)',
  );

  // The hook as Helm would create it, run with its own RBAC: Helm waits for the Job, and
  // this control plane has no controller manager or kubelet to run it, so the test runs
  // the Job's command itself, as the Job's ServiceAccount.
  const shown = await helm(['get', 'hooks', RELEASE, '-n', RELEASE_NAMESPACE]);
  t.equal(shown.code, 0, 'helm get hooks lists the release hooks', { stderr: shown.stderr });
  const hooks = parseObjects(shown.stdout);
  const job = hooks.find((object) => object.kind === 'Job');
  const rbac = hooks.filter((object) => object.kind !== 'Job');
  t.same(
    rbac.map((object) => object.kind).sort(),
    ['ClusterRole', 'ClusterRoleBinding', 'ServiceAccount'],
    'the hook brings its own RBAC',
  );
  const applied = await kubectl(
    ['apply', '--server-side', '-f', '-'],
    JSON.stringify({ apiVersion: 'v1', kind: 'List', items: rbac }),
  );
  t.equal(applied.code, 0, "the hook's RBAC is created", { stderr: applied.stderr });
  const container = (
    job?.spec as
      | {
          template: {
            spec: {
              serviceAccountName: string;
              containers: { command: string[]; args: string[] }[];
            };
          };
        }
      | undefined
  )?.template.spec;
  const account = `system:serviceaccount:${RELEASE_NAMESPACE}:${container?.serviceAccountName ?? '?'}`;
  t.same(container?.containers[0]?.command, ['kubectl'], 'the hook runs kubectl');

  const foreign = await e2e.cluster.kubectl([
    'delete',
    'validatingwebhookconfiguration/kms-secret-guard',
    `--as=${account}`,
    '--wait=false',
  ]);
  t.not(foreign.code, 0, 'the hook cannot delete another webhook configuration');
  t.match(foreign.stderr, /forbidden/i, 'RBAC forbids it');
  const secrets = await e2e.cluster.kubectl([
    'get',
    'secrets',
    '-n',
    RELEASE_NAMESPACE,
    `--as=${account}`,
  ]);
  t.not(secrets.code, 0, 'nor read Secrets');

  const ran = await e2e.cluster.kubectl([
    ...(container?.containers[0]?.args ?? []),
    `--as=${account}`,
  ]);
  t.equal(ran.code, 0, "the hook's command succeeds with the hook's RBAC", { stderr: ran.stderr });
  const left = await e2e.cluster.kubectl([
    'get',
    'validatingwebhookconfigurations,mutatingwebhookconfigurations',
    '-o',
    'name',
  ]);
  t.notMatch(left.stdout, FULLNAME, "the release's webhook configurations are gone");
  t.match(
    left.stdout,
    'validatingwebhookconfiguration.admissionregistration.k8s.io/kms-secret-guard',
    "the guard's own stay",
  );
  const again = await e2e.cluster.kubectl([
    ...(container?.containers[0]?.args ?? []),
    `--as=${account}`,
  ]);
  t.equal(again.code, 0, 'running it again is harmless (--ignore-not-found)', {
    stderr: again.stderr,
  });

  const uninstall = await helm(['uninstall', RELEASE, '-n', RELEASE_NAMESPACE, '--no-hooks']);
  t.equal(uninstall.code, 0, 'helm uninstall succeeds', { stderr: uninstall.stderr });
  const remaining = await kubectl([
    'get',
    'deployments,services,configmaps,secrets',
    '-n',
    RELEASE_NAMESPACE,
    '-o',
    'name',
  ]);
  t.equal(remaining.stdout.trim(), '', 'the release left nothing behind in its namespace');
});
