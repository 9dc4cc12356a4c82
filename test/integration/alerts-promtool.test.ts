// The shipped alerts proved by Prometheus's own tools (promtool from scripts/promtool.sh):
// `promtool check rules` on the rules of manifests/monitoring and of the chart,
// `promtool test rules` on test/promtool/*.test.yaml (every alert fires after its `for:`
// with its labels and annotations, and stays silent on healthy series and on the boundary),
// proof that those tests catch a broken rule, and `promtool check metrics` on a real
// /metrics scrape of `serve` and of `kms-plugin` against the KMS emulator.
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parse, stringify } from 'yaml';
import { runServe } from '../../src/cli/commands/serve.js';
import type { CliContext } from '../../src/cli/context.js';
import type { RunningServer } from '../../src/server/serve.js';
import { renderChart } from '../helpers/chart.js';
import { Kms, withEmulator } from '../helpers/emulator.js';
import { MANIFESTS, REPO_ROOT, only } from '../helpers/manifests.js';
import { eventually } from '../helpers/eventually.js';
import { httpGet, postReview } from '../helpers/http.js';
import { LogCapture } from '../helpers/logs.js';
import { startPluginUnderTest } from '../helpers/kms-plugin.js';
import { fixture, makeCertDir, serveSettings } from '../helpers/server.js';
import { runTool } from '../helpers/tools.js';

interface Rule {
  alert: string;
  expr: string;
  for?: string;
}
interface Group {
  name: string;
  rules: Rule[];
}
interface AlertCase {
  alertname: string;
  exp_alerts?: unknown[];
}
interface RuleTest {
  name: string;
  alert_rule_test?: AlertCase[];
}

const TESTS_DIR = join(REPO_ROOT, 'test', 'promtool');
const TEST_FILES = readdirSync(TESTS_DIR)
  .filter((file) => file.endsWith('.test.yaml'))
  .sort();
const shippedGroups = (
  parse(readFileSync(join(MANIFESTS, 'monitoring', 'prometheusrule.yaml'), 'utf8')) as {
    spec: { groups: Group[] };
  }
).spec.groups;
const shippedRules = shippedGroups.flatMap((group) => group.rules);

const work = mkdtempSync(join(tmpdir(), 'ksg-promtool-'));
t.teardown(() => {
  rmSync(work, { recursive: true, force: true });
});

/** A folder holding rules.yaml (these groups) and copies of the unit test files. */
function ruleFolder(name: string, groups: readonly Group[]): string {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'rules.yaml'), stringify({ groups }));
  for (const file of TEST_FILES) copyFileSync(join(TESTS_DIR, file), join(dir, file));
  return dir;
}

const testRules = (
  dir: string,
  files: readonly string[] = TEST_FILES,
): ReturnType<typeof runTool> => runTool('promtool', ['test', 'rules', ...files], { cwd: dir });

t.test("promtool check rules: the shipped rules and the chart's", async (t) => {
  const monitoring = await renderChart({ valueSet: 'monitoring' });
  const chartGroups = (only(monitoring.objects, 'PrometheusRule').spec as { groups: Group[] })
    .groups;
  for (const [what, groups] of [
    ['manifests/monitoring/prometheusrule.yaml', shippedGroups],
    ["the chart's PrometheusRule", chartGroups],
  ] as const) {
    const dir = ruleFolder(
      what === 'manifests/monitoring/prometheusrule.yaml' ? 'shipped' : 'chart',
      groups,
    );
    const result = await runTool('promtool', ['check', 'rules', 'rules.yaml'], { cwd: dir });
    t.equal(result.code, 0, `${what}: promtool check rules succeeds`, {
      output: result.stdout + result.stderr,
    });
    t.match(
      result.stdout,
      `SUCCESS: ${shippedRules.length} rules found`,
      `${what}: all ${shippedRules.length} rules`,
    );
  }
});

t.test('promtool test rules: every alert fires when it should and only then', async (t) => {
  t.ok(TEST_FILES.length >= 2, `unit test files: ${TEST_FILES.join(', ')}`);
  const result = await testRules(ruleFolder('shipped', shippedGroups));
  t.equal(result.code, 0, 'promtool test rules succeeds', {
    output: result.stdout + result.stderr,
  });
  for (const file of TEST_FILES)
    t.match(result.stdout, new RegExp(`Unit Testing:\\s+${file}\\s+SUCCESS`), `${file}: SUCCESS`);

  const cases = TEST_FILES.flatMap((file) =>
    (parse(readFileSync(join(TESTS_DIR, file), 'utf8')) as { tests: RuleTest[] }).tests.flatMap(
      (test) => test.alert_rule_test ?? [],
    ),
  );
  for (const rule of shippedRules) {
    const mine = cases.filter((entry) => entry.alertname === rule.alert);
    t.ok(
      mine.some((entry) => (entry.exp_alerts ?? []).length > 0),
      `${rule.alert}: a case where it fires`,
    );
    t.ok(
      mine.some((entry) => (entry.exp_alerts ?? []).length === 0),
      `${rule.alert}: a case where it stays silent`,
    );
  }
});

t.test('the unit tests catch a broken rule', async (t) => {
  const mutations: {
    alert: string;
    file: string;
    what: string;
    change: (rule: Rule) => Rule;
    failing: RegExp;
  }[] = [
    {
      alert: 'KmsSecretGuardKeyStateStale',
      file: 'key.test.yaml',
      what: '>= 300 instead of > 300',
      change: (rule) => ({ ...rule, expr: rule.expr.replace('> 300', '>= 300') }),
      failing: /KeyStateStale stays silent at exactly 300 s/,
    },
    {
      alert: 'KmsSecretGuardWebhookErrors',
      file: 'webhook.test.yaml',
      what: '>= 0.05 instead of > 0.05',
      change: (rule) => ({ ...rule, expr: rule.expr.replace('> 0.05', '>= 0.05') }),
      failing: /WebhookErrors stays silent at exactly 5 %/,
    },
    {
      alert: 'KmsSecretGuardKeyUnusable',
      file: 'key.test.yaml',
      what: 'key_usable == 0 alone (an unknown key would page)',
      change: (rule) => ({ ...rule, expr: 'max(kms_secret_guard_key_usable) == 0' }),
      failing: /KeyUnusable stays silent/,
    },
    {
      alert: 'KmsSecretGuardKeyStateUnknown',
      file: 'key.test.yaml',
      what: 'a shorter for:',
      change: (rule) => ({ ...rule, for: '1m' }),
      failing: /KeyStateUnknown fires after 5m/,
    },
    {
      alert: 'KmsSecretGuardKeyRotationOverdue',
      file: 'rotation.test.yaml',
      what: 'no for:',
      change: (rule) => {
        const copy = { ...rule };
        delete copy.for;
        return copy;
      },
      failing: /KeyRotationOverdue fires once the rotation is over a day late/,
    },
  ];
  for (const mutation of mutations) {
    const groups = shippedGroups.map((group) => ({
      ...group,
      rules: group.rules.map((rule) =>
        rule.alert === mutation.alert ? mutation.change(rule) : rule,
      ),
    }));
    t.not(
      JSON.stringify(groups),
      JSON.stringify(shippedGroups),
      `${mutation.alert}: the mutation (${mutation.what}) changes the rules`,
    );
    const result = await testRules(ruleFolder(`mutant-${mutation.alert}`, groups), [mutation.file]);
    t.not(result.code, 0, `${mutation.alert} with ${mutation.what}: promtool test rules fails`);
    t.match(
      result.stdout + result.stderr,
      mutation.failing,
      `${mutation.alert}: the failing test is the one about it`,
    );
  }
});

t.test('promtool check metrics: a real /metrics scrape of serve is clean', async (t) => {
  const { emulator, sdk, keyId } = await withEmulator(t);
  const certs = await makeCertDir();
  t.teardown(() => certs.cleanup());
  const stop = new AbortController();
  t.teardown(() => {
    stop.abort('teardown');
  });
  const ctx: CliContext = {
    env: {},
    stdout: new LogCapture(),
    stderr: new LogCapture(),
    stopSignal: stop.signal,
    exitCode: -1,
  };
  let listening: (server: RunningServer) => void = () => undefined;
  const up = new Promise<RunningServer>((resolve) => {
    listening = resolve;
  });
  const running = runServe(
    ctx,
    serveSettings(certs, {
      kms: {
        keyId,
        regionId: emulator.regionId,
        endpoint: emulator.endpoint,
        protocol: emulator.protocol,
      },
      monitor: { refreshIntervalMs: 200, maxStalenessMs: 5_000 },
    }),
    {
      host: '127.0.0.1',
      credential: { accessKeyId: emulator.accessKeyId, accessKeySecret: emulator.accessKeySecret },
      onListening: (server) => {
        listening(server);
      },
    },
  );
  const server = await up;
  t.ok(
    await eventually(async () => (await httpGet(`${server.healthUrl}/readyz`)).status === 200),
    'serve is ready',
  );
  // Every series family populated: admissions of each webhook, then a scheduled deletion
  // (deletion timestamp, unusable status, denials).
  for (const path of ['/validate', '/mutate']) {
    await postReview(
      `${server.admissionUrl}${path}`,
      fixture('secret-create-generatename'),
      certs.caCert,
    );
  }
  await sdk.scheduleKeyDeletion(
    new Kms.ScheduleKeyDeletionRequest({ keyId, pendingWindowInDays: 7 }),
  );
  t.ok(
    await eventually(async () => (await httpGet(`${server.healthUrl}/healthz/kms`)).status === 503),
    'the guard sees the scheduled deletion',
  );
  await postReview(
    `${server.admissionUrl}/validate`,
    fixture('secret-create-generatename'),
    certs.caCert,
  );

  const scrape = await httpGet(`${server.healthUrl}/metrics`);
  t.equal(scrape.status, 200, 'GET /metrics answers 200');
  for (const family of [
    'kms_secret_guard_admission_requests_total',
    'kms_secret_guard_key_usable',
    'kms_secret_guard_key_status',
    'kms_secret_guard_key_deletion_timestamp_seconds',
    'kms_secret_guard_key_state_age_seconds',
  ]) {
    t.match(scrape.body, new RegExp(`^${family}(\\{| )`, 'm'), `the scrape has ${family}`);
  }
  t.match(scrape.body, /decision="denied"/, 'the scrape counts the denial');
  const result = await runTool('promtool', ['check', 'metrics'], { input: scrape.body });
  t.equal(result.code, 0, 'promtool check metrics succeeds', {
    output: result.stdout + result.stderr,
  });
  t.equal((result.stdout + result.stderr).trim(), '', 'and reports no problem');

  const broken = await runTool('promtool', ['check', 'metrics'], {
    input: '# HELP requests Requests.\n# TYPE requests counter\nrequests 1\n',
  });
  t.not(
    broken.code,
    0,
    'promtool check metrics fails on a counter without _total (so this can fail)',
  );
  stop.abort('done');
  await running;
});

t.test('promtool check metrics: a real /metrics scrape of kms-plugin is clean', async (t) => {
  const { emulator, keyId } = await withEmulator(t);
  const { client, plugin } = await startPluginUnderTest(t, emulator, keyId);
  // Every series family populated: Status, an Encrypt and its Decrypt, and a refused request.
  await client.status();
  const sealed = await client.encrypt(Buffer.from('a data key seed of 32 bytes.....'));
  await client.decrypt(sealed.ciphertext, sealed.key_id);
  await client.decrypt(Buffer.alloc(0), sealed.key_id).catch(() => undefined);

  const scrape = await httpGet(`${plugin.healthUrl}/metrics`);
  t.equal(scrape.status, 200, 'GET /metrics answers 200');
  t.match(scrape.body, /Encrypt/, 'the scrape counts the Encrypt call');
  const result = await runTool('promtool', ['check', 'metrics'], { input: scrape.body });
  t.equal(result.code, 0, 'promtool check metrics succeeds on the plugin scrape', {
    output: result.stdout + result.stderr,
  });
  t.equal((result.stdout + result.stderr).trim(), '', 'and reports no problem');
});
