import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runCli } from '../../src/cli/program.js';
import { startEmulator } from '../../src/emulator/index.js';
import {
  createSecretMetadataClient,
  type SecretMetadata,
} from '../../src/reencrypt/kube-client.js';
import {
  KEY_ID_ANNOTATION,
  KEY_VERSION_ANNOTATION,
  ROTATION_TIME_ANNOTATION,
} from '../../src/reencrypt/plan.js';
import { createKmsAdmin, startCluster } from './harness/index.js';
import {
  carriesSecretData,
  createSecrets,
  readAuditLog,
  type AuditEvent,
} from '../helpers/reencrypt.js';
import { captureContext } from '../helpers/cli.js';

/**
 * `reencrypt` against a real kube-apiserver (+ etcd) with an audit log of every Secret
 * request, and the KMS emulator over loopback. The mutating webhook is not registered here:
 * the test sets the annotations directly to build a cluster after two rotations.
 */

// Seeding 2,000 Secrets and three sweeps: about a minute on 2 busy cores; generous bound.
t.setTimeout(300_000);

const NAMESPACES = ['rx-alpha', 'rx-beta', 'rx-gamma', 'rx-delta'];
const PER_NAMESPACE = 520; // 2,080 Secrets
const USER_AGENT_PREFIX = 'kms-secret-guard-reencrypt/';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

t.test('reencrypt rewrites exactly the stale Secrets, never reading their data', async (t) => {
  const cluster = await startCluster({ audit: true });
  t.teardown(() => cluster.stop());
  const emulator = await startEmulator({ keys: [''] });
  t.teardown(() => emulator.close());
  const home = mkdtempSync(join(tmpdir(), 'ksg-reencrypt-home-'));
  t.teardown(() => {
    rmSync(home, { recursive: true, force: true });
  });
  const keyId = emulator.keyIds[0]!;
  const kms = createKmsAdmin(emulator, keyId);
  const v0 = (await kms.describeKey()).primaryKeyVersion;
  const v1 = await kms.createKeyVersion();
  const v2 = await kms.createKeyVersion();
  t.equal((await kms.describeKey()).primaryKeyVersion, v2, 'the key rotated twice');
  // This test is about stamps: with a 1 ms settle time a Secret is stale by the window only if
  // written in the rotation's second, so the Secrets are created from the second after it.
  await new Promise((resolve) => setTimeout(resolve, 2000));

  // Current, two older versions and unstamped, interleaved in every namespace.
  const kinds = ['current', 'v1', 'v0', 'unstamped'] as const;
  const specs = NAMESPACES.flatMap((namespace) =>
    Array.from({ length: PER_NAMESPACE }, (_, index) => {
      const kind = kinds[index % kinds.length]!;
      const version = kind === 'current' ? v2 : kind === 'v1' ? v1 : kind === 'v0' ? v0 : undefined;
      return {
        namespace,
        name: `secret-${String(index).padStart(4, '0')}`,
        kind,
        annotations:
          version === undefined
            ? {}
            : {
                [KEY_ID_ANNOTATION]: keyId,
                [KEY_VERSION_ANNOTATION]: version,
                [ROTATION_TIME_ANNOTATION]: '2026-01-01T00:00:00Z',
              },
      };
    }),
  );
  const total = specs.length;
  const staleTotal = specs.filter((spec) => spec.kind !== 'current').length;
  const namespaceList = JSON.stringify({
    apiVersion: 'v1',
    kind: 'List',
    items: NAMESPACES.map((name) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } })),
  });
  const created = await cluster.kubectl(['create', '-f', '-'], { input: namespaceList });
  t.equal(created.code, 0, `namespaces created ${created.stderr}`);
  const seedStarted = Date.now();
  await createSecrets(cluster.kubeConfig(), specs);
  t.comment(`created ${total} Secrets in ${Date.now() - seedStarted} ms`);

  // The test reads metadata with the same metadata-only client, under its own user agent.
  const observer = createSecretMetadataClient({
    kubeConfig: cluster.kubeConfig(),
    userAgent: 'reencrypt-e2e-observer',
    maxSockets: 2,
  });
  t.teardown(() => {
    observer.close();
  });
  const snapshot = async (): Promise<Map<string, SecretMetadata>> => {
    const all = new Map<string, SecretMetadata>();
    let token: string | undefined;
    do {
      const page = await observer.listPage({ labelSelector: undefined }, 500, token);
      for (const item of page.items) {
        if (NAMESPACES.includes(item.namespace)) all.set(`${item.namespace}/${item.name}`, item);
      }
      token = page.continueToken;
    } while (token !== undefined);
    return all;
  };
  const initial = await snapshot();
  t.equal(initial.size, total, `${total} Secrets in the cluster`);

  const baseArgs = [
    'reencrypt',
    '--kms-key-id',
    keyId,
    '--kms-endpoint',
    emulator.endpoint,
    '--kms-protocol',
    'http',
    '--rotation-settle',
    '1ms',
  ];
  const env = {
    HOME: home,
    KUBECONFIG: cluster.kubeconfigPath,
    ALIBABA_CLOUD_ACCESS_KEY_ID: emulator.accessKeyId,
    ALIBABA_CLOUD_ACCESS_KEY_SECRET: emulator.accessKeySecret,
  };
  const run = async (
    args: string[],
    options: {
      env?: Record<string, string>;
      onStderr?: (text: string) => void;
      signal?: AbortSignal;
      tty?: boolean;
    } = {},
  ): Promise<Run> => {
    const captured = captureContext({
      env: { ...env, ...options.env },
      tty: options.tty === true,
      ...(options.onStderr !== undefined ? { onStderr: options.onStderr } : {}),
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
    });
    const code = await runCli([...baseArgs, ...args], captured.ctx);
    return { code, stdout: captured.stdout(), stderr: captured.stderr() };
  };

  await t.test('--dry-run reports versions and changes nothing', async (t) => {
    const result = await run(['--dry-run', '--json', '--qps', '200']);
    t.equal(result.code, 0, `exit 0 ${result.stderr}`);
    const summary = JSON.parse(result.stdout) as {
      scanned: number;
      wouldRewrite: number;
      rewritten: number;
      byVersion: { current: number; unstamped: number; older: Record<string, number> };
    };
    t.ok(summary.scanned >= total, `scanned all (${summary.scanned})`);
    t.equal(summary.wouldRewrite, staleTotal, 'would rewrite every stale Secret');
    t.equal(summary.rewritten, 0, 'rewrote nothing');
    t.equal(summary.byVersion.older[v1], total / 4, 'Secrets under v1');
    t.equal(summary.byVersion.older[v0], total / 4, 'Secrets under v0');
    t.ok(summary.byVersion.unstamped >= total / 4, 'unstamped (plus any system Secrets)');
    t.equal(summary.byVersion.current, total / 4, 'current');
    const after = await snapshot();
    const changed = [...after].filter(
      ([key, item]) => initial.get(key)?.resourceVersion !== item.resourceVersion,
    );
    t.equal(changed.length, 0, 'no resourceVersion changed');
  });

  await t.test('--namespace and --field-selector narrow the sweep', async (t) => {
    const result = await run([
      '--dry-run',
      '--json',
      '--namespace',
      'rx-beta',
      '--field-selector',
      'type=Opaque',
      '--page-size',
      '100',
    ]);
    t.equal(result.code, 0, `exit 0 ${result.stderr}`);
    const summary = JSON.parse(result.stdout) as { scanned: number; wouldRewrite: number };
    t.equal(summary.scanned, PER_NAMESPACE, 'only the Secrets of rx-beta, over several pages');
    t.equal(summary.wouldRewrite, (PER_NAMESPACE * 3) / 4, 'its stale ones');
    const none = await run(['--dry-run', '--json', '--selector', 'app=nothing-has-this']);
    t.equal((JSON.parse(none.stdout) as { scanned: number }).scanned, 0, 'a label selector');
  });

  await t.test('on a terminal: a progress bar, then the human summary', async (t) => {
    const result = await run(['--dry-run', '--qps', '200'], { tty: true });
    t.equal(result.code, 0, `exit 0 ${result.stderr}`);
    t.match(result.stdout, /reencrypt \[[^\]]*\] \d+\/\d+ scanned/, 'a progress bar');
    t.match(
      result.stdout,
      new RegExp(`dry run: ${staleTotal} Secrets would be rewritten; nothing was changed`),
      'the summary',
    );
    t.notMatch(result.stderr, /reencrypt\.progress/, 'no JSON progress lines on a terminal');
  });

  await t.test('a user who may list but not patch gets a clear error and exit 1', async (t) => {
    const lister = await cluster.addUser('secret-lister');
    const rbac = JSON.stringify({
      apiVersion: 'v1',
      kind: 'List',
      items: [
        {
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: 'ClusterRole',
          metadata: { name: 'secret-lister' },
          rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list'] }],
        },
        {
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: 'ClusterRoleBinding',
          metadata: { name: 'secret-lister' },
          roleRef: {
            apiGroup: 'rbac.authorization.k8s.io',
            kind: 'ClusterRole',
            name: 'secret-lister',
          },
          subjects: [
            { apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'secret-lister' },
          ],
        },
      ],
    });
    const applied = await cluster.kubectl(['apply', '-f', '-'], { input: rbac });
    t.equal(applied.code, 0, `RBAC applied ${applied.stderr}`);
    const result = await run(['--kubeconfig', lister.kubeconfigPath]);
    t.equal(result.code, 1, 'exit 1');
    t.match(
      result.stdout,
      /forbidden: .*User "secret-lister" cannot patch resource "secrets".*grant the reencrypt ClusterRole/,
      'names the user, the missing verb and the fix',
    );
    t.equal(/rewritten (\d+)/.exec(result.stdout)?.[1], '0', 'nothing rewritten');
    const after = await snapshot();
    const changed = [...after].filter(
      ([key, item]) => initial.get(key)?.resourceVersion !== item.resourceVersion,
    );
    t.equal(changed.length, 0, 'no resourceVersion changed');
  });

  let firstRewritten = 0;
  await t.test('an interrupted run stops early and says to run again', async (t) => {
    const controller = new AbortController();
    const result = await run(
      ['--qps', '300', '--concurrency', '4', '--progress-interval', '100ms'],
      {
        signal: controller.signal,
        onStderr: (text) => {
          for (const line of text.split('\n')) {
            if (!line.startsWith('{')) continue;
            const progress = JSON.parse(line) as { rewritten: number };
            if (progress.rewritten >= 300) controller.abort();
          }
        },
      },
    );
    t.equal(result.code, 1, 'exit 1');
    t.match(result.stdout, /interrupted; run again to continue/, 'says to run again');
    firstRewritten = Number(/rewritten (\d+)/.exec(result.stdout)?.[1] ?? 'NaN');
    t.ok(firstRewritten >= 300 && firstRewritten < staleTotal, `rewrote some (${firstRewritten})`);
    t.match(result.stderr, /"event":"reencrypt.progress"/, 'JSON progress lines without a TTY');
  });

  await t.test('run again: finishes the job, rewriting only what is left', async (t) => {
    const started = Date.now();
    const result = await run(['--qps', '400', '--concurrency', '6', '--json']);
    t.comment(`second run: ${Date.now() - started} ms`);
    t.equal(result.code, 0, `exit 0 ${result.stderr}`);
    const summary = JSON.parse(result.stdout) as {
      rewritten: number;
      failed: number;
      stale: number;
    };
    t.equal(summary.failed, 0, 'none failed');
    t.equal(summary.stale, staleTotal - firstRewritten, 'the second run found only what was left');
    t.equal(summary.rewritten, summary.stale, 'and rewrote all of it');

    const after = await snapshot();
    let wrong = 0;
    let staleUnchanged = 0;
    let currentChanged = 0;
    for (const spec of specs) {
      const key = `${spec.namespace}/${spec.name}`;
      const item = after.get(key);
      if (
        item?.annotations[KEY_VERSION_ANNOTATION] !== v2 ||
        item.annotations[KEY_ID_ANNOTATION] !== keyId
      )
        wrong += 1;
      const moved = item?.resourceVersion !== initial.get(key)?.resourceVersion;
      if (spec.kind === 'current' && moved) currentChanged += 1;
      if (spec.kind !== 'current' && !moved) staleUnchanged += 1;
    }
    t.equal(wrong, 0, 'every Secret is stamped with the current key version');
    t.equal(staleUnchanged, 0, "every stale Secret's resourceVersion changed");
    t.equal(currentChanged, 0, "no current Secret's resourceVersion changed");
    const sample = after.get(`${NAMESPACES[0]}/secret-0001`);
    t.match(
      sample?.annotations[ROTATION_TIME_ANNOTATION],
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
      'rotation time in RFC 3339 seconds',
    );
  });

  await t.test('the audit log: metadata only, and no Secret patched twice', async (t) => {
    const events = await readAuditLog(cluster.auditLogPath!);
    const ours = events.filter(
      (event: AuditEvent) =>
        event.objectRef?.resource === 'secrets' &&
        event.userAgent?.startsWith(USER_AGENT_PREFIX) === true,
    );
    t.ok(ours.length > staleTotal, `the audit log has the sweep's requests (${ours.length})`);
    const verbs = new Set(ours.map((event) => event.verb));
    t.ok(
      [...verbs].every((verb) => ['list', 'get', 'patch'].includes(verb)),
      `only list, get and patch (${[...verbs].join(', ')})`,
    );
    const withData = ours.filter(
      (event) => carriesSecretData(event.responseObject) || carriesSecretData(event.requestObject),
    );
    t.equal(withData.length, 0, 'no request or response carried Secret data');
    // Successful answers are metadata only; refusals (403) carry a Status, logged without a body.
    const kinds = new Set(
      ours
        .filter((event) => event.responseStatus?.code === 200)
        .map((event) => (event.responseObject as { kind?: string } | undefined)?.kind ?? 'none'),
    );
    t.same(
      [...kinds].sort(),
      ['PartialObjectMetadata', 'PartialObjectMetadataList'].filter((kind) => kinds.has(kind)),
      `successful responses were metadata only (${[...kinds].join(', ')})`,
    );
    t.ok(kinds.has('PartialObjectMetadataList'), 'lists answered with PartialObjectMetadataList');
    const patches = new Map<string, number>();
    for (const event of ours) {
      if (event.verb !== 'patch' || event.responseStatus?.code !== 200) continue;
      const key = `${event.objectRef?.namespace}/${event.objectRef?.name}`;
      patches.set(key, (patches.get(key) ?? 0) + 1);
    }
    const twice = [...patches].filter(([, count]) => count > 1);
    t.equal(
      twice.length,
      0,
      'no Secret was rewritten twice across the interrupted and the second run',
    );
    const staleKeys = new Set(
      specs
        .filter((spec) => spec.kind !== 'current')
        .map((spec) => `${spec.namespace}/${spec.name}`),
    );
    t.equal(
      [...staleKeys].filter((key) => patches.get(key) !== 1).length,
      0,
      'every stale Secret was rewritten exactly once',
    );
    t.equal(
      [...patches.keys()].filter(
        (key) => NAMESPACES.includes(key.split('/')[0]!) && !staleKeys.has(key),
      ).length,
      0,
      'no current Secret was patched',
    );
    const forbidden = ours.filter(
      (event) => event.verb === 'patch' && event.responseStatus?.code === 403,
    );
    t.ok(
      forbidden.length >= 1 && forbidden.length <= 4,
      `the unprivileged user's sweep stopped after its first refusals (${forbidden.length})`,
    );
  });

  await t.test(
    'the metadata client: conditional patch, 409 and 404 from the real server',
    async (t) => {
      const ref = { namespace: NAMESPACES[0]!, name: 'secret-0002' };
      const current = await observer.get(ref);
      t.ok(current, 'get returns the metadata');
      t.same(
        Object.keys(current?.annotations ?? {}).sort(),
        [KEY_ID_ANNOTATION, KEY_VERSION_ANNOTATION, ROTATION_TIME_ANNOTATION].sort(),
        'only the stamp annotations are kept',
      );
      await t.rejects(
        observer.patchAnnotations(ref, '1', { [KEY_VERSION_ANNOTATION]: 'x' }),
        { name: 'KubeApiError', kind: 'conflict', status: 409 },
        'an outdated resourceVersion is a conflict',
      );
      t.equal(
        (await observer.get(ref))?.resourceVersion,
        current?.resourceVersion,
        'and changes nothing',
      );
      t.equal(
        await observer.get({ namespace: ref.namespace, name: 'no-such-secret' }),
        undefined,
        'get of a missing Secret: undefined',
      );
      await t.rejects(
        observer.patchAnnotations({ namespace: ref.namespace, name: 'no-such-secret' }, '1', {}),
        { name: 'KubeApiError', kind: 'notFound', status: 404 },
        'patch of a missing Secret: notFound',
      );
    },
  );

  await t.test('a key that is not Enabled: refused, exit 1, nothing changed', async (t) => {
    const before = await snapshot();
    await kms.disableKey();
    const result = await run([]);
    t.equal(result.code, 1, 'exit 1');
    t.match(
      result.stderr,
      new RegExp(`KMS key ${keyId} is Disabled: .*EnableKey.*Nothing was changed`),
      'says why and what to do',
    );
    const after = await snapshot();
    const changed = [...after].filter(
      ([key, item]) => before.get(key)?.resourceVersion !== item.resourceVersion,
    );
    t.equal(changed.length, 0, 'no resourceVersion changed');
    await kms.enableKey();
  });
});
