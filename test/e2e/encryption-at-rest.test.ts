// Secrets encrypted at rest through `kms-secret-guard kms-plugin`: what etcd really holds,
// what a key rotation does to new writes, that the guard's stamp agrees with the envelope, and
// what a plugin restart under load costs. The real kube-apiserver is the plugin's gRPC client.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import {
  decodeKmsV2Value,
  REPO_ROOT,
  secretKey,
  useGuardedCluster,
  waitFor,
  type KmsV2Envelope,
} from './harness/index.js';
import { KEY_VERSION_ANNOTATION, secretAnnotations } from './harness/secrets.js';
import { readValue } from './harness/writes.js';

t.setTimeout(300_000);

const NS = 'at-rest';
const e2e = useGuardedCluster(t, NS);

const kmsOf = () => {
  const kms = e2e.cluster.kms;
  if (kms === undefined) throw new Error('the e2e cluster does not encrypt through kms-plugin');
  return kms;
};

async function createSecret(name: string, value: string) {
  return e2e.cluster.kubectl([
    'create',
    'secret',
    'generic',
    name,
    '-n',
    NS,
    `--from-literal=value=${value}`,
  ]);
}

async function stored(name: string): Promise<{ raw: Buffer; envelope: KmsV2Envelope }> {
  const raw = await e2e.cluster.etcdGet(secretKey(NS, name));
  if (raw === undefined) throw new Error(`etcd has no ${secretKey(NS, name)}`);
  return { raw, envelope: decodeKmsV2Value(raw) };
}

function versionOf(envelope: KmsV2Envelope): string {
  return envelope.object.keyID.split('/')[1] ?? '';
}

async function primaryVersion(): Promise<string> {
  return (await kmsOf().kms.describeKey()).primaryKeyVersion;
}

t.test(
  'a Secret is stored encrypted by the KMS v2 plugin; kubectl reads it in clear',
  async (t) => {
    const { keyId, provider } = kmsOf();
    const canary = 'CANARY-at-rest-3f9d1c7a';
    const created = await createSecret('canary', canary);
    t.equal(created.code, 0, `kubectl create secret (${created.stderr.trim()})`);

    const { raw, envelope } = await stored('canary');
    t.ok(
      raw.subarray(0, 40).toString('latin1').startsWith(`k8s:enc:kms:v2:${provider}:`),
      `stored with the prefix k8s:enc:kms:v2:${provider}:`,
    );
    const version = await primaryVersion();
    t.equal(
      envelope.object.keyID,
      `${keyId}/${version}`,
      'the envelope key_id is <KeyId>/<primary version>',
    );
    t.ok(
      envelope.object.encryptedDEKSource.length > 0,
      'the envelope carries the KMS-encrypted seed',
    );
    t.match(
      envelope.object.encryptedDEKSource.toString('latin1'),
      /^[A-Za-z0-9+/]+=*$/,
      'the encrypted seed is a KMS CiphertextBlob',
    );
    for (const [what, needle] of [
      ['the canary', canary],
      ['its base64', Buffer.from(canary).toString('base64')],
    ] as const) {
      t.equal(raw.indexOf(needle), -1, `${what} appears nowhere in etcd's bytes`);
    }

    t.equal(
      await readValue(e2e.cluster, NS, 'canary'),
      canary,
      'kubectl get returns the value in clear',
    );

    const annotations = await secretAnnotations(e2e.cluster, NS, 'canary');
    t.equal(
      annotations[KEY_VERSION_ANNOTATION],
      versionOf(envelope),
      "the guard's key-version stamp and the envelope's version agree",
    );
  },
);

t.test(
  'after CreateKeyVersion, new Secrets carry the new version within one Status poll',
  async (t) => {
    const { keyId, kms, plugin } = kmsOf();
    const before = await stored('canary').catch(async () => {
      await createSecret('canary', 'x');
      return stored('canary');
    });
    const next = await kms.createKeyVersion();
    const newKeyId = `${keyId}/${next}`;
    t.not(before.envelope.object.keyID, newKeyId, 'the old envelope names the old version');
    await waitFor(
      'kms-plugin to see the new primary version',
      async () => {
        const response = await fetch(`${plugin.healthUrl}/healthz/kms`);
        const report = (await response.json()) as { primaryKeyVersion?: string };
        return report.primaryKeyVersion === next ? true : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 250 },
    );
    const seenAt = Date.now();

    // kube-apiserver polls Status every minute while healthy; the next poll re-keys.
    let attempt = 0;
    const envelope = await waitFor(
      'a new Secret to carry the new key version',
      async () => {
        attempt += 1;
        const name = `after-rotation-${attempt}`;
        const created = await createSecret(name, 'rotated');
        if (created.code !== 0) throw new Error(created.stderr);
        const { envelope: current } = await stored(name);
        return current.object.keyID === newKeyId ? { name, current } : undefined;
      },
      { timeoutMs: 110_000, intervalMs: 2_000 },
    );
    const afterMs = Date.now() - seenAt;
    t.comment(`new writes carried ${newKeyId} ${afterMs} ms after the plugin saw it`);
    t.ok(
      afterMs <= 100_000,
      `within one Status poll of the plugin seeing it (60 s poll + slack; took ${afterMs} ms)`,
    );
    t.equal(envelope.current.object.keyID, newKeyId, 'the envelope names the new version');

    const metrics = await e2e.cluster.kubectl(['get', '--raw', '/metrics']);
    const hash = `sha256:${createHash('sha256').update(newKeyId).digest('hex')}`;
    const statusLines = metrics.stdout
      .split('\n')
      .filter((line) =>
        line.startsWith('apiserver_envelope_encryption_key_id_hash_status_last_timestamp_seconds{'),
      );
    const newest = statusLines
      .map((line) => ({ line, value: Number(line.split(' ').pop()) }))
      .sort((a, b) => b.value - a.value)[0];
    t.match(
      newest?.line,
      `key_id_hash="${hash}"`,
      'the newest key_id hash from Status is the sha256 of the new key_id',
    );
    t.match(newest?.line, `provider_name="kms-secret-guard"`, 'for this provider');
    t.ok(
      metrics.stdout
        .split('\n')
        .some(
          (line) =>
            line.startsWith('apiserver_envelope_encryption_key_id_hash_total{') &&
            line.includes(hash) &&
            line.includes('transformation_type="to_storage"'),
        ),
      'writes are counted under the new key_id hash',
    );

    // Outside the rotation window, the guard's stamp and the envelope agree again.
    await e2e.guard.waitForKeyHealth(
      'the new primary version',
      (report) => report.primaryKeyVersion === next,
    );
    const created = await createSecret('after-window', 'x');
    t.equal(created.code, 0, 'a write after the window');
    const { envelope: after } = await stored('after-window');
    const stamp = (await secretAnnotations(e2e.cluster, NS, 'after-window'))[
      KEY_VERSION_ANNOTATION
    ];
    t.equal(stamp, versionOf(after), "the guard's stamp and the envelope's version agree");
    t.equal(stamp, next, 'both name the new version');
  },
);

t.test(
  'kms-plugin restarted under load: writes go on; /readyz names kms-providers while it is down',
  async (t) => {
    const { plugin } = kmsOf();
    const results: { at: number; ok: boolean }[] = [];
    const writer = { running: true };
    const load = (async () => {
      for (let index = 0; writer.running && index < 2_000; index += 1) {
        const created = await createSecret(`load-${index}`, 'load');
        results.push({ at: Date.now(), ok: created.code === 0 });
      }
    })();
    await waitFor('some writes', async () => (results.length >= 3 ? true : undefined), {
      timeoutMs: 60_000,
    });

    const downAt = Date.now();
    await plugin.stop();
    const readyz = await waitFor(
      'kube-apiserver /readyz to report the KMS provider',
      async () => {
        const answer = await e2e.cluster.kubectl(['get', '--raw', '/readyz?verbose']);
        const text = `${answer.stdout}\n${answer.stderr}`;
        return answer.code !== 0 && text.includes('[-]kms-providers') ? text : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 1_000 },
    );
    t.match(
      readyz,
      /\[-\]kms-providers failed/,
      '/readyz names kms-providers while the plugin is down',
    );
    const writesWhileDown = results.filter((result) => result.at > downAt).length;
    await plugin.start();
    const upAt = Date.now();
    await waitFor(
      'kube-apiserver /readyz to be ok again',
      async () =>
        (await e2e.cluster.kubectl(['get', '--raw', '/readyz'])).code === 0 ? true : undefined,
      { timeoutMs: 90_000, intervalMs: 1_000 },
    );
    const countAtUp = results.length;
    await waitFor(
      'writes after the restart',
      async () => (results.length >= countAtUp + 3 ? true : undefined),
      { timeoutMs: 60_000 },
    );
    writer.running = false;
    await load;

    t.comment(
      `${results.length} writes, ${writesWhileDown} while the plugin was down for ${upAt - downAt} ms`,
    );
    t.ok(writesWhileDown > 0, 'writes were made while the plugin was down');
    let longestFailure = 0;
    let failingSince: number | undefined;
    for (const result of results) {
      if (!result.ok) failingSince ??= result.at;
      else if (failingSince !== undefined) {
        longestFailure = Math.max(longestFailure, result.at - failingSince);
        failingSince = undefined;
      }
    }
    t.equal(failingSince, undefined, 'the last writes succeed');
    t.ok(
      longestFailure <= upAt - downAt,
      `no write fails for longer than the restart (longest failing run ${longestFailure} ms)`,
    );
    t.equal(
      results.filter((result) => !result.ok).length,
      0,
      'in fact no write failed: the API server writes under its cached seed',
    );
  },
);

t.test('the shipped static-pod manifest is a Pod the API server accepts', async (t) => {
  const manifest = readFileSync(
    join(REPO_ROOT, 'manifests', 'kms-plugin', 'kms-plugin.yaml'),
    'utf8',
  )
    .replaceAll('<KEY_ID>', kmsOf().keyId)
    .replaceAll('<REGION>', 'cn-hangzhou')
    .replaceAll('<RAM_ROLE_NAME>', 'kms-plugin');
  // This cluster runs no controller-manager: the ServiceAccount admission needs the default SA.
  const account = await e2e.cluster.kubectl([
    'create',
    'serviceaccount',
    'default',
    '-n',
    'kube-system',
  ]);
  t.ok(
    account.code === 0 || account.stderr.includes('AlreadyExists'),
    'kube-system/default exists',
  );
  const dryRun = await e2e.cluster.kubectl(
    ['create', '--dry-run=server', '-f', '-', '-o', 'json'],
    {
      input: manifest,
    },
  );
  t.equal(dryRun.code, 0, `server-side dry-run create (${dryRun.stderr.trim()})`);
  const pod = JSON.parse(dryRun.stdout || '{}') as {
    spec?: { containers?: { args?: string[] }[] };
  };
  t.ok(
    pod.spec?.containers?.[0]?.args?.includes('kms-plugin'),
    'it runs kms-secret-guard kms-plugin',
  );
  t.ok(
    pod.spec?.containers?.[0]?.args?.includes('--listen=/var/run/kmsplugin/socket.sock'),
    'on the socket the EncryptionConfiguration example names',
  );
  const config = readFileSync(
    join(REPO_ROOT, 'manifests', 'kms-plugin', 'encryption-config.yaml'),
    'utf8',
  );
  t.match(
    config,
    'endpoint: unix:///var/run/kmsplugin/socket.sock',
    'the EncryptionConfiguration example dials that socket',
  );
});
