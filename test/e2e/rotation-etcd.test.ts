// Rotation under load, proved in etcd: Secrets are written continuously while KMS rotates the
// key, so some land in the rotation window (the guard already stamps the new version, the API
// server still encrypts under the old seed). After the settle time `reencrypt` (the real CLI,
// a child process) must leave no Secret under the old version, a second run must find nothing,
// and no Secret's data may change.
import t from 'tap';
import {
  decodeKmsV2Value,
  etcdRange,
  secretKey,
  useGuardedCluster,
  waitFor,
  type KmsV2Envelope,
} from './harness/index.js';
import { KEY_VERSION_ANNOTATION } from './harness/secrets.js';
import { runReencrypt } from './harness/reencrypt-cli.js';
import { createSecrets } from '../helpers/reencrypt.js';
import { FIELD_MANAGER } from '../../src/reencrypt/kube-client.js';

// Cluster start, ~1 Status poll of writes, the settle wait and three sweeps.
t.setTimeout(600_000);

const NS = 'rotation-etcd';
/** Long enough for the API server's Status poll (~60 s) to have switched. */
const SETTLE = '90s';
const MAX_WRITES = 400;
const BATCH = 3;
const e2e = useGuardedCluster(t, NS);

const kmsOf = () => {
  const kms = e2e.cluster.kms;
  if (kms === undefined) throw new Error('the e2e cluster does not encrypt through kms-plugin');
  return kms;
};

const reencrypt = (args: string[]) => runReencrypt(e2e.cluster, SETTLE, args);

interface ApiSecret {
  metadata: {
    name: string;
    annotations?: Record<string, string>;
    managedFields?: { manager?: string; time?: string }[];
  };
  data?: Record<string, string>;
}

async function secretsViaApi(): Promise<Map<string, ApiSecret>> {
  const listed = await e2e.cluster.kubectl([
    'get',
    'secrets',
    '-n',
    NS,
    '-o',
    'json',
    '--show-managed-fields',
  ]);
  if (listed.code !== 0) throw new Error(`kubectl get secrets: ${listed.stderr}`);
  const items = (JSON.parse(listed.stdout) as { items: ApiSecret[] }).items;
  return new Map(items.map((item) => [item.metadata.name, item]));
}

/** Every Secret of the cluster as etcd holds it: etcd key → envelope. */
async function envelopesInEtcd(): Promise<Map<string, KmsV2Envelope>> {
  const stored = await etcdRange(e2e.cluster.etcdUrl, '/registry/secrets/');
  return new Map(stored.map(({ key, value }) => [key, decodeKmsV2Value(value)]));
}

t.test(
  'rotation under load: after reencrypt no Secret in etcd is under the old version',
  async (t) => {
    const { keyId, kms } = kmsOf();
    const oldVersion = (await kms.describeKey()).primaryKeyVersion;
    const oldKeyId = `${keyId}/${oldVersion}`;

    // The writer: small batches, about one a second, bounded in count.
    const written: string[] = [];
    const writer = { running: true, failures: 0 };
    const writing = (async () => {
      while (writer.running && written.length < MAX_WRITES) {
        const batch = Array.from({ length: BATCH }, (_, index) => ({
          namespace: NS,
          name: `w-${String(written.length + index).padStart(4, '0')}`,
          annotations: {},
        }));
        try {
          await createSecrets(e2e.cluster.kubeConfig(), batch, BATCH);
          written.push(...batch.map((secret) => secret.name));
        } catch {
          writer.failures += 1;
        }
        await new Promise((resolve) => setTimeout(resolve, 700));
      }
    })();
    const stopWriter = async (): Promise<void> => {
      writer.running = false;
      await writing;
    };
    t.teardown(stopWriter);
    await waitFor(
      'writes before the rotation',
      async () => (written.length >= 9 ? true : undefined),
      {
        timeoutMs: 60_000,
      },
    );

    const rotatedAt = Date.now();
    const newVersion = await kms.createKeyVersion();
    const newKeyId = `${keyId}/${newVersion}`;
    // Writes go on until the API server encrypts new ones under the new version.
    const switchedAfterMs = await waitFor(
      'the API server to encrypt new writes under the new version',
      async () => {
        const latest = written.at(-1);
        if (latest === undefined) return undefined;
        const raw = await e2e.cluster.etcdGet(secretKey(NS, latest));
        const envelope = raw === undefined ? undefined : decodeKmsV2Value(raw);
        return envelope?.object.keyID === newKeyId ? Date.now() - rotatedAt : undefined;
      },
      { timeoutMs: 200_000, intervalMs: 1_000 },
    );
    const countAtSwitch = written.length;
    await waitFor(
      'a few writes after the switch',
      async () => (written.length >= countAtSwitch + 2 * BATCH ? true : undefined),
      { timeoutMs: 60_000 },
    );
    await stopWriter();
    t.comment(
      `${written.length} Secrets written; new writes under ${newVersion} ${switchedAfterMs} ms after CreateKeyVersion`,
    );
    t.equal(writer.failures, 0, 'no write failed during the rotation');

    const before = await envelopesInEtcd();
    const api = await secretsViaApi();
    const inWindow = written.filter(
      (name) =>
        before.get(secretKey(NS, name))?.object.keyID === oldKeyId &&
        api.get(name)?.metadata.annotations?.[KEY_VERSION_ANNOTATION] === newVersion,
    );
    const underOld = [...before.values()].filter((envelope) => envelope.object.keyID === oldKeyId);
    t.comment(
      `before reencrypt: ${underOld.length} Secrets under ${oldVersion}, ${inWindow.length} of them stamped ${newVersion} (the window)`,
    );
    t.ok(
      inWindow.length > 0,
      'some Secrets were written in the window: stamped with the new version, envelope under the old',
    );

    const dry = await reencrypt(['--dry-run']);
    t.ok(
      dry.summary.byVersion.beforeSettle >= inWindow.length,
      `the dry run counts the window Secrets as stale by the window (${dry.summary.byVersion.beforeSettle})`,
    );
    t.ok(
      dry.summary.wouldRewrite >= underOld.length,
      `it would rewrite at least every Secret under the old version (${dry.summary.wouldRewrite} ≥ ${underOld.length})`,
    );
    t.notMatch(dry.stderr, /waiting/, 'a dry run does not wait');

    const startedAt = Date.now();
    const first = await reencrypt([]);
    const firstMs = Date.now() - startedAt;
    const settledAt = Date.parse(first.summary.settledAt);
    t.comment(
      `reencrypt: ${first.summary.rewritten} rewritten in ${firstMs} ms (settled at ${first.summary.settledAt}, started ${Math.round((settledAt - startedAt) / 1000)} s before)`,
    );
    t.equal(first.summary.failed, 0, 'no Secret failed');
    t.ok(first.summary.rewritten >= underOld.length, 'it rewrote at least the old-version ones');
    if (startedAt < settledAt) {
      t.match(
        first.stderr,
        /waiting \d+s until the rotation has settled/,
        'started before the rotation settled: it said it waits',
      );
      t.ok(Date.now() >= settledAt, 'and finished only after the settle time');
    }

    const after = await envelopesInEtcd();
    const stillOld = [...after.entries()].filter(
      ([, envelope]) => envelope.object.keyID !== newKeyId,
    );
    t.equal(
      stillOld.length,
      0,
      `every Secret in etcd is under ${newVersion} (${after.size} Secrets; not yet: ${stillOld
        .slice(0, 5)
        .map(([key]) => key)
        .join(', ')})`,
    );
    t.equal(
      [...after.values()].filter((envelope) => envelope.object.keyID === oldKeyId).length,
      0,
      `count 0 on ${oldVersion}`,
    );

    const second = await reencrypt([]);
    t.equal(second.summary.stale, 0, 'a second run finds nothing stale');
    t.equal(second.summary.rewritten, 0, 'and rewrites nothing');
    t.notMatch(second.stderr, /waiting/, 'nor waits (the rotation has settled)');

    const apiAfter = await secretsViaApi();
    let sameData = 0;
    for (const name of written) {
      const value = apiAfter.get(name)?.data?.value;
      if (
        value === api.get(name)?.data?.value &&
        value === Buffer.from(`e2e-secret-value-${name}`).toString('base64')
      ) {
        sameData += 1;
      }
    }
    t.equal(sameData, written.length, 'no Secret’s data changed (compared through the API)');
    const rewrittenTimes = [...apiAfter.values()].flatMap((secret) =>
      (secret.metadata.managedFields ?? [])
        .filter((entry) => entry.manager === FIELD_MANAGER)
        .map((entry) => Date.parse(entry.time ?? '')),
    );
    t.ok(rewrittenTimes.length > 0, 'reencrypt’s writes are recorded in managedFields');
    t.ok(
      rewrittenTimes.every((time) => time > settledAt),
      'every one of them after the rotation settled',
    );
  },
);
