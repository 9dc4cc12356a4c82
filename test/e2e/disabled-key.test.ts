// A Disabled key on the encrypting cluster, with and without the guard in front: the harm the
// guard prevents, shown. Without it, kube-apiserver keeps writing Secrets under its cached
// seed until the seed's 3-minute write lifetime (counted from the last good Status answer)
// runs out, then answers HTTP 500; with it, the same writes are denied at once. Re-enabling
// the key restores writes on the API server's next Status poll.
import t from 'tap';
import {
  decodeKmsV2Value,
  secretKey,
  shippedWebhookConfigurations,
  useGuardedCluster,
  waitFor,
} from './harness/index.js';
import {
  annotationsInDryRun,
  denialMessage,
  dryRunCreate,
  KEY_ID_ANNOTATION,
  secretManifest,
  waitForAnswer,
} from './harness/secrets.js';
import {
  lastStatusAnswer,
  readValue,
  readyz,
  startWriter,
  writtenValue,
  type WriteResult,
} from './harness/writes.js';

// Cluster start, the guard's denials, then one write-seed lifetime (3 min) without the guard.
t.setTimeout(720_000);

const NS = 'disabled-key';
/** kube-apiserver's kmsv2PluginWriteDEKSourceMaxTTL (fixed in k8s.io/apiserver). */
const WRITE_SEED_LIFETIME_MS = 180_000;
/** Its Status poll while healthy (kmsv2PluginHealthzPositiveInterval) … */
const HEALTHY_POLL_MS = 60_000;
/** … and while the plugin fails (kmsv2PluginHealthzNegativeInterval). */
const FAILING_POLL_MS = 10_000;
/** The plugin's and the guard's --refresh-interval in the harness. */
const REFRESH_MS = 1_000;
/** For a loaded 2-core machine: kubectl calls take a second or more each. */
const SLACK_MS = 20_000;
const EXPIRED =
  /encryptedDEKSource with keyID hash "(sha256:[0-9a-f]+)" expired at (\S+) \(current time is (\S+)\)/;

const e2e = useGuardedCluster(t, NS);

const kmsOf = () => {
  const kms = e2e.cluster.kms;
  if (kms === undefined) throw new Error('the e2e cluster does not encrypt through kms-plugin');
  return kms;
};

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

async function pluginSeesUsable(usable: boolean): Promise<number> {
  const { plugin } = kmsOf();
  await waitFor(
    `kms-plugin to report the key ${usable ? 'usable' : 'unusable'}`,
    async () => {
      const report = (await (await fetch(`${plugin.healthUrl}/healthz/kms`)).json()) as {
        usable?: boolean;
      };
      return report.usable === usable ? true : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 200 },
  );
  return Date.now();
}

t.test('guard present: writes on a Disabled key are denied at once, dry runs alike', async (t) => {
  const { kms, keyId } = kmsOf();
  const before = await e2e.cluster.kubectl(['apply', '-f', '-'], {
    input: secretManifest(NS, 'guarded', 'before'),
  });
  t.equal(before.code, 0, `a write while the key is Enabled succeeds (${before.stderr.trim()})`);

  const disabledAt = Date.now();
  await kms.disableKey();
  t.teardown(() => kms.enableKey());
  let attempts = 0;
  const denied = await waitFor(
    'the guard to deny a real write',
    async () => {
      attempts += 1;
      const created = await e2e.cluster.kubectl([
        'create',
        'secret',
        'generic',
        `guarded-${attempts}`,
        '-n',
        NS,
        '--from-literal=value=e2e',
      ]);
      return denialMessage(created);
    },
    { timeoutMs: 30_000, intervalMs: 200 },
  );
  const deniedAfterMs = Date.now() - disabledAt;
  t.comment(`guard present: the first write was denied ${seconds(deniedAfterMs)} after DisableKey`);
  t.ok(
    deniedAfterMs <= REFRESH_MS + SLACK_MS,
    `denied within one refresh interval (+ slack), not after minutes (${seconds(deniedAfterMs)})`,
  );
  t.match(denied, keyId, 'the denial names the key id');
  t.match(denied, /Disabled/, 'and its state');

  const real = await e2e.cluster.kubectl(['apply', '-f', '-'], {
    input: secretManifest(NS, 'guarded', 'after'),
  });
  const dry = await e2e.cluster.kubectl(['apply', '--dry-run=server', '-f', '-'], {
    input: secretManifest(NS, 'guarded', 'after'),
  });
  t.not(real.code, 0, 'kubectl apply (an update) is refused');
  t.not(dry.code, 0, 'kubectl apply --dry-run=server is refused');
  t.equal(denialMessage(dry), denialMessage(real), 'the dry run gets the same answer');
  t.equal(denialMessage(real), denied, 'the same message as the create');
  t.equal(await readValue(e2e.cluster, NS, 'guarded'), 'before', 'the stored Secret is unchanged');

  await kms.enableKey();
  await waitForAnswer(e2e.cluster, NS, 'the guard to allow again', (r) => r.code === 0);
});

/** The longest time from `since` to a successful write, and the first failed write after it. */
function timeline(results: readonly WriteResult[], since: number) {
  const after = results.filter((result) => result.at > since);
  const firstFailure = after.find((result) => !result.ok);
  const okBeforeFailure = after.filter(
    (result) => result.ok && (firstFailure === undefined || result.at < firstFailure.at),
  );
  const okAfterFailure =
    firstFailure === undefined
      ? []
      : after.filter((result) => result.ok && result.at > firstFailure.at);
  return { firstFailure, lastOk: okBeforeFailure.at(-1), okBeforeFailure, okAfterFailure };
}

t.test(
  'guard absent: writes go on for up to 3 minutes after DisableKey, then HTTP 500; re-enable restores them',
  async (t) => {
    const { kms, provider } = kmsOf();
    // Unregister the webhooks and wait until the API server no longer calls them.
    for (const configuration of shippedWebhookConfigurations('shipped').configurations) {
      const name = String((configuration.metadata as { name?: unknown } | undefined)?.name);
      const deleted = await e2e.cluster.kubectl([
        'delete',
        configuration.kind.toLowerCase(),
        name,
        '--ignore-not-found',
      ]);
      t.equal(deleted.code, 0, `${configuration.kind} ${name} unregistered`);
    }
    await waitFor(
      'the API server to stop calling the webhooks',
      async () => {
        const answer = await dryRunCreate(e2e.cluster, NS);
        return answer.code === 0 && annotationsInDryRun(answer)[KEY_ID_ANNOTATION] === undefined
          ? true
          : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );

    const writer = startWriter(e2e.cluster, NS, 'w', { pauseMs: 1_000, maxWrites: 600 });
    t.teardown(() => writer.stop());
    await waitFor(
      'writes before DisableKey',
      async () => (writer.results.length >= 3 ? true : undefined),
      {
        timeoutMs: 60_000,
      },
    );
    t.equal(
      writer.results.filter((result) => !result.ok).length,
      0,
      'every write succeeds while the key is Enabled',
    );
    const seedBefore = await storedSeed('w-0000');

    const disabledAt = Date.now();
    await kms.disableKey();
    t.teardown(() => kms.enableKey());
    const pluginSawAt = await pluginSeesUsable(false);
    // /readyz asks the plugin (Status) at once; a failing answer does not extend the seed.
    const red = await waitFor(
      'kube-apiserver /readyz to fail kms-providers',
      async () => {
        const answer = await readyz(e2e.cluster);
        return !answer.ok && answer.text.includes('[-]kms-providers') ? answer : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 1_000 },
    );
    const redAt = Date.now();
    t.match(red.text, /\[-\]kms-providers failed/, '/readyz names kms-providers as failing');
    // kubectl prints the body inside one quoted, \n-escaped string.
    t.comment(`/readyz: ${/\[-\]kms-providers failed[^\\\n"]*/.exec(red.text)?.[0] ?? ''}`);
    const okWhileRed = await waitFor(
      'a successful write while /readyz is red',
      async () =>
        writer.results.some((result) => result.ok && result.at > redAt) ? true : undefined,
      { timeoutMs: 30_000, intervalMs: 500 },
    ).catch(() => false);
    t.ok(okWhileRed, 'yet Secret writes still succeed while /readyz is red');

    const failure = await waitFor(
      'the first failed write',
      async () => timeline(writer.results, disabledAt).firstFailure,
      { timeoutMs: WRITE_SEED_LIFETIME_MS + HEALTHY_POLL_MS + 60_000, intervalMs: 1_000 },
    );
    const status = await lastStatusAnswer(e2e.cluster, provider);
    const verbose = await e2e.cluster.kubectl([
      'create',
      'secret',
      'generic',
      'after-expiry',
      '-n',
      NS,
      '--from-literal=value=e2e',
      '-v=6',
    ]);
    await waitFor(
      'a few more writes after the first failure',
      async () =>
        writer.results.filter((result) => result.at > failure.at).length >= 3 ? true : undefined,
      { timeoutMs: 60_000, intervalMs: 500 },
    );

    const { lastOk, okBeforeFailure, okAfterFailure } = timeline(writer.results, disabledAt);
    const okForMs = (lastOk?.at ?? disabledAt) - disabledAt;
    const failedAfterMs = failure.at - disabledAt;
    const expired = EXPIRED.exec(failure.error);
    const expiredAt = Date.parse(expired?.[2] ?? '');
    const statusMs = (status?.seconds ?? 0) * 1000;
    t.comment(
      [
        `guard absent, DisableKey at 0 s:`,
        `kms-plugin saw it at ${seconds(pluginSawAt - disabledAt)},`,
        `/readyz red at ${seconds(redAt - disabledAt)},`,
        `${okBeforeFailure.length} writes succeeded after DisableKey, the last at ${seconds(okForMs)},`,
        `the first failed at ${seconds(failedAfterMs)};`,
        `last good Status ${seconds(statusMs - disabledAt)}, seed expired at ${seconds(expiredAt - disabledAt)}`,
      ].join(' '),
    );
    t.comment(`the error: ${failure.error}`);

    t.ok(okBeforeFailure.length > 0, 'writes kept succeeding after DisableKey');
    t.ok(
      okForMs >= WRITE_SEED_LIFETIME_MS - HEALTHY_POLL_MS - SLACK_MS,
      `for minutes: at least 3 min less one Status poll (${seconds(okForMs)})`,
    );
    t.ok(
      failedAfterMs <= WRITE_SEED_LIFETIME_MS + REFRESH_MS + SLACK_MS,
      `writes failed no later than 3 min + the plugin's refresh (+ slack) (${seconds(failedAfterMs)})`,
    );
    t.equal(okAfterFailure.length, 0, 'once a write failed, every later one fails too');
    t.match(failure.error, /Internal error occurred/, 'kubectl reports an internal error');
    t.ok(expired, 'the error says the write seed (encryptedDEKSource) expired');
    t.equal(expired?.[1], status?.keyIdHash, 'it names the hash of the key_id in use');
    t.ok(
      Math.abs(expiredAt - (statusMs + WRITE_SEED_LIFETIME_MS)) <= 5_000,
      `it expired 3 min after the last good Status answer (${expired?.[2] ?? '?'} vs ${new Date(statusMs).toISOString()})`,
    );
    t.ok(
      statusMs <= pluginSawAt + 1_000,
      'the last good Status answer came before the plugin saw the key Disabled',
    );
    t.match(
      verbose.stderr,
      /status="500 Internal Server Error"/,
      'the API server answers HTTP 500',
    );
    t.equal(
      await readValue(e2e.cluster, NS, 'w-0000'),
      writtenValue('w-0000'),
      'reads keep working (the API server caches the decrypted seed)',
    );

    // Re-enable: the API server polls the failing plugin every 10 s; the first good answer
    // extends the same seed, and writes succeed again.
    const enabledAt = Date.now();
    await kms.enableKey();
    const recovered = await waitFor(
      'a successful write after EnableKey',
      async () => writer.results.find((result) => result.ok && result.at > enabledAt),
      { timeoutMs: FAILING_POLL_MS + REFRESH_MS + 60_000, intervalMs: 500 },
    );
    const recoveredAfterMs = recovered.at - enabledAt;
    const green = await waitFor(
      'kube-apiserver /readyz to be ok again',
      async () => ((await readyz(e2e.cluster)).ok ? Date.now() : undefined),
      { timeoutMs: 60_000, intervalMs: 1_000 },
    );
    await writer.stop();
    t.comment(
      `EnableKey at 0 s: writes succeeded again at ${seconds(recoveredAfterMs)}, /readyz ok at ${seconds(green - enabledAt)}`,
    );
    t.ok(
      recoveredAfterMs <= REFRESH_MS + FAILING_POLL_MS + SLACK_MS,
      `writes succeed again within one refresh interval + one Status poll (+ slack) (${seconds(recoveredAfterMs)})`,
    );
    t.equal(
      writer.results.filter((result) => result.at > recovered.at && !result.ok).length,
      0,
      'and keep succeeding',
    );
    t.equal(
      await readValue(e2e.cluster, NS, recovered.name),
      writtenValue(recovered.name),
      'the Secret written after re-enabling reads back',
    );
    t.same(
      await storedSeed(recovered.name),
      seedBefore,
      'under the same seed as before DisableKey: the API server extended it, no new Encrypt',
    );
  },
);

async function storedSeed(name: string): Promise<Buffer | undefined> {
  const raw = await e2e.cluster.etcdGet(secretKey(NS, name));
  return raw === undefined ? undefined : decodeKmsV2Value(raw).object.encryptedDEKSource;
}
