// The one-call shape (manifests/components/single-webhook) through a real API server: one
// admission per Secret write, stamped while the key is usable, denied with the guard's
// message while it is Disabled (DELETE still allowed), and writes stamped again once enabled.
import t from 'tap';
import {
  componentWebhookConfigurations,
  ensureNamespace,
  startCluster,
  startGuard,
  type Cluster,
  type Guard,
} from './harness/index.js';
import {
  annotationsInDryRun,
  denialMessage,
  dryRunCreate,
  KEY_ID_ANNOTATION,
  secretAnnotations,
  waitForAnswer,
} from './harness/secrets.js';
import { httpGet } from '../helpers/http.js';

t.setTimeout(300_000);

const NS = 'team-single';
let cluster: Cluster | undefined;
let guard: Guard | undefined;

t.before(async () => {
  cluster = await startCluster();
  guard = await startGuard(cluster);
  const { configurations } = componentWebhookConfigurations('single-webhook', 1);
  await guard.registerWebhooks({ configurations });
  await ensureNamespace(cluster, NS);
});
t.teardown(async () => {
  if (!t.passing() && cluster !== undefined) {
    process.stderr.write(`${cluster.logTail()}\n--- serve\n${guard?.serveLogTail() ?? ''}\n`);
  }
  await guard?.stop();
  await cluster?.stop();
});

async function admissions(webhook: string): Promise<number> {
  const { body } = await httpGet(`${guard!.healthUrl}/metrics`, { timeoutMs: 2000 });
  let total = 0;
  for (const line of body.split('\n')) {
    if (line.startsWith(`kms_secret_guard_admission_requests_total{webhook="${webhook}"`)) {
      total += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return total;
}

t.test('one webhook call per Secret write, stamped while the key is usable', async (t) => {
  const c = cluster!;
  const before = { admit: await admissions('admit'), other: await admissions('validate') };
  const created = await c.kubectl([
    'create',
    'secret',
    'generic',
    'stamped',
    '-n',
    NS,
    '--from-literal=value=e2e',
  ]);
  t.equal(created.code, 0, 'kubectl create secret succeeds', { stderr: created.stderr });
  t.equal((await admissions('admit')) - before.admit, 1, 'the API server called /admit once');
  t.equal((await admissions('validate')) - before.other, 0, 'and never /validate');
  const stored = await secretAnnotations(c, NS, 'stamped');
  t.equal(stored[KEY_ID_ANNOTATION], guard!.keyId, 'the stored Secret carries the key id');
});

t.test('a Disabled key: denied with the guard message, DELETE allowed, then enabled', async (t) => {
  const c = cluster!;
  await guard!.kms.disableKey();
  const { result } = await waitForAnswer(c, NS, 'a denial', (r) => r.code !== 0);
  t.match(result.stderr, /admission webhook "admit\.kms-secret-guard\.io" denied/, 'named admit');
  t.match(denialMessage(result), guard!.keyId, 'the message names the key');
  t.match(denialMessage(result), /Disabled/, 'and its state');
  const deleted = await c.kubectl(['delete', 'secret', 'stamped', '-n', NS]);
  t.equal(deleted.code, 0, 'DELETE is allowed while the key is Disabled', {
    stderr: deleted.stderr,
  });
  await guard!.kms.enableKey();
  const { result: allowed } = await waitForAnswer(
    c,
    NS,
    'writes allowed again',
    (r) => r.code === 0,
  );
  t.equal(
    annotationsInDryRun(allowed)[KEY_ID_ANNOTATION],
    guard!.keyId,
    'a dry-run create is stamped again',
  );
  t.equal((await dryRunCreate(c, NS)).code, 0, 'and admitted');
});
