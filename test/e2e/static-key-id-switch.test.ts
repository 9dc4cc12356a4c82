// Moving a cluster from a static-key_id plugin (a test double of ack-kms-plugin's KMS v2
// output) to kms-plugin under the same provider name: the Secrets it wrote stay readable after
// kube-apiserver restarts on kms-plugin, and `reencrypt` moves every one of them to a
// versioned key_id `<KeyId>/<version>`. Before the switch, a KMS rotation changes nothing.
import t from 'tap';
import {
  decodeKmsV2Value,
  ensureNamespace,
  etcdRange,
  secretKey,
  startCluster,
  waitFor,
  type Cluster,
  type KmsV2Envelope,
} from './harness/index.js';
import { runReencrypt } from './harness/reencrypt-cli.js';
import { ACK_ANNOTATIONS } from './harness/static-key-id-plugin.js';
import { createSecret, lastStatusAnswer, readValue, readyz } from './harness/writes.js';
import { sleep } from '../helpers/eventually.js';

// Cluster start, one forced Status check (20 s apart), an API server restart, two sweeps.
t.setTimeout(420_000);

const NS = 'static-key-id';
const OLD_SECRETS = 5;
/** kube-apiserver answers /readyz from its last Status for this long (kmsPluginHealthzPositiveTTL). */
const HEALTHZ_TTL_MS = 20_000;

let started: Cluster | undefined;
const clusterOf = (): Cluster => {
  if (started === undefined) throw new Error('the e2e cluster did not start (see before())');
  return started;
};
const kmsOf = () => {
  const kms = clusterOf().kms;
  if (kms?.staticKeyIdPlugin === undefined) throw new Error('not a static-key-id cluster');
  return { ...kms, double: kms.staticKeyIdPlugin };
};

t.before(async () => {
  started = await startCluster({ encryption: 'static-key-id' });
  await ensureNamespace(started, NS);
});
t.teardown(async () => {
  if (!t.passing() && started !== undefined) process.stderr.write(`${started.logTail()}\n`);
  await started?.stop();
});

const canary = (index: number): string => `CANARY-static-${index}-7c2e`;

async function envelope(name: string): Promise<KmsV2Envelope> {
  const raw = await clusterOf().etcdGet(secretKey(NS, name));
  if (raw === undefined) throw new Error(`etcd has no ${secretKey(NS, name)}`);
  return decodeKmsV2Value(raw);
}

async function create(name: string, value: string): Promise<void> {
  const created = await createSecret(clusterOf(), NS, name, value);
  if (created.code !== 0) throw new Error(`kubectl create secret ${name}: ${created.stderr}`);
}

t.test(
  'Secrets written by a static-key_id plugin stay readable on kms-plugin; reencrypt versions them',
  async (t) => {
    const cluster = clusterOf();
    const { keyId, kms, provider, double, emulator } = kmsOf();
    const firstVersion = (await kms.describeKey()).primaryKeyVersion;

    for (let index = 0; index < OLD_SECRETS; index += 1)
      await create(`old-${index}`, canary(index));
    const first = await envelope('old-0');
    t.equal(first.provider, provider, `stored under the provider name ${provider}`);
    t.equal(first.object.keyID, keyId, 'the envelope key_id is the bare key id (static)');
    t.match(
      first.object.encryptedDEKSource.toString('latin1'),
      /^[A-Za-z0-9+/]+=*$/,
      'the encrypted seed is the CiphertextBlob text, as ack-kms-plugin stores it',
    );
    t.equal(
      first.object.annotations[ACK_ANNOTATIONS.keyVersionId]?.toString(),
      firstVersion,
      'its annotations carry the key version that encrypted the seed',
    );
    t.equal(
      first.object.annotations[ACK_ANNOTATIONS.regionId]?.toString(),
      emulator.regionId,
      'and the region',
    );
    t.ok(double.calls.Encrypt >= 1, 'the double encrypted the seed');

    // Rotate: a static key_id never tells kube-apiserver, so new writes stay on the old seed.
    const rotated = await kms.createKeyVersion();
    const statusBefore = await lastStatusAnswer(cluster, provider);
    await sleep(HEALTHZ_TTL_MS + 1_000);
    // /readyz makes kube-apiserver ask Status again once its last answer is 20 s old.
    t.ok((await readyz(cluster)).ok, 'kube-apiserver is ready on the double');
    const statusAfter = await lastStatusAnswer(cluster, provider);
    t.ok(
      (statusAfter?.seconds ?? 0) > (statusBefore?.seconds ?? 0),
      'kube-apiserver asked Status after the rotation',
    );
    t.equal(statusAfter?.keyIdHash, statusBefore?.keyIdHash, 'and got the same key_id');
    await create('after-rotation', 'x');
    const afterRotation = await envelope('after-rotation');
    t.same(
      afterRotation.object.encryptedDEKSource,
      first.object.encryptedDEKSource,
      'a write after the rotation still uses the seed made before it',
    );
    t.equal(
      afterRotation.object.annotations[ACK_ANNOTATIONS.keyVersionId]?.toString(),
      firstVersion,
      `so it is still protected by ${firstVersion}, not ${rotated}`,
    );

    // The switch, as on a control-plane node: kms-plugin up, the config edited, a restart.
    await cluster.switchToKmsPlugin();
    t.pass('kube-apiserver restarted on kms-plugin under the same provider name');
    for (let index = 0; index < OLD_SECRETS; index += 1) {
      t.equal(
        await readValue(cluster, NS, `old-${index}`),
        canary(index),
        `old-${index}, written by the double, reads back through kms-plugin`,
      );
    }
    await create('after-switch', 'x');
    const versioned = `${keyId}/${rotated}`;
    t.equal(
      (await envelope('after-switch')).object.keyID,
      versioned,
      'a new write carries the versioned key_id of the current primary version',
    );

    const settle = '1s';
    const { summary } = await runReencrypt(cluster, settle);
    t.equal(summary.failed, 0, 'reencrypt: no Secret failed');
    t.ok(summary.rewritten >= OLD_SECRETS + 1, `it rewrote the old Secrets (${summary.rewritten})`);
    const stored = await etcdRange(cluster.etcdUrl, '/registry/secrets/');
    const notVersioned = stored.filter(
      ({ value }) => decodeKmsV2Value(value).object.keyID !== versioned,
    );
    t.equal(
      notVersioned.length,
      0,
      `every Secret in etcd (${stored.length}) now carries ${versioned}; not yet: ${notVersioned
        .slice(0, 5)
        .map(({ key }) => key)
        .join(', ')}`,
    );
    t.equal(
      stored.filter(({ value }) => decodeKmsV2Value(value).object.keyID === keyId).length,
      0,
      'count 0 under the static key_id',
    );
    for (let index = 0; index < OLD_SECRETS; index += 1) {
      t.equal(
        await readValue(cluster, NS, `old-${index}`),
        canary(index),
        `old-${index}'s data is unchanged`,
      );
    }
    const again = await waitFor(
      'a second reencrypt run',
      async () => (await runReencrypt(cluster, settle)).summary,
      { timeoutMs: 120_000 },
    );
    t.equal(again.rewritten, 0, 'a second run rewrites nothing');
  },
);
