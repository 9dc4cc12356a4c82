/**
 * What the guard adds to a Secret write where users feel it: Secret creates and updates
 * through the real kube-apiserver (+ etcd, Secrets encrypted at rest by `kms-secret-guard
 * kms-plugin`), with the guard's webhook configurations registered as shipped (rendered from
 * manifests/base, clientConfig rewritten to a `url`), in the one-call shape
 * (components/single-webhook), and not registered at all; and, for reference, the
 * single-webhook configuration pointed at bench/ceiling.js answering the same stamp (the
 * least any stamping webhook costs behind kube-apiserver).
 *
 * One cluster and one `serve` (the Deployment's NODE_OPTIONS) for the whole run; each
 * repetition measures every variant, rotating which goes first. The client is in this
 * process: keep-alive HTTPS (one connection per worker) with the cluster admin's client
 * certificate, closed loop, `concurrency` workers. CPU per write of kube-apiserver, etcd,
 * serve and kms-plugin comes from /proc/PID/stat over each measured phase.
 *
 *   npm run build && node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/e2e.ts
 *
 * BENCH_QUICK=1 (1 repetition, short phases), BENCH_E2E_SHAPES (default
 * shipped,single-webhook,ceiling),
 * BENCH_E2E_REPS (default 3), BENCH_E2E_PHASE_MS
 * (default 4000 measured per phase, after a warm-up), BENCH_E2E_CONCURRENCY (default 1,10,50),
 * BENCH_E2E_PROFILE=1 (serve under --cpu-prof, profiles in bench/profiles/),
 * BENCH_E2E_PPROF=1 (kube-apiserver's Go CPU profile of each variant's first create phase at
 * concurrency 10, in bench/profiles/; compare with `go tool pprof -top -diff_base=A B`),
 * BENCH_NODE_ARGS (serve's Node.js flags), BENCH_OUT (RESULTS.md path), BENCH_E2E_JSON.
 * Writes its own block of bench/RESULTS.md; prints human lines and, last, one JSON line.
 */
import { Agent, request } from 'node:https';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  REPO_ROOT,
  componentWebhookConfigurations,
  shippedWebhookConfigurations,
  startCluster,
  startGuard,
  type Cluster,
  type Guard,
  type WebhookConfiguration,
} from '../test/e2e/harness/index.js';
import { cpuMs, findPid, useEveryCpu } from './processes.js';
import { startCeiling } from './harness.js';
import { forLocalWebhook } from '../test/e2e/harness/webhooks.js';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const QUICK = process.env.BENCH_QUICK === '1';
const REPS = Number(process.env.BENCH_E2E_REPS ?? (QUICK ? '1' : '3'));
const PHASE_MS = Number(process.env.BENCH_E2E_PHASE_MS ?? (QUICK ? '1500' : '4000'));
const WARMUP_MS = QUICK ? 300 : 800;
const CONCURRENCIES = (process.env.BENCH_E2E_CONCURRENCY ?? '1,10,50')
  .split(',')
  .map((value) => Number(value));
const PROFILE = process.env.BENCH_E2E_PROFILE === '1';
const PPROF = process.env.BENCH_E2E_PPROF === '1';
const OUT = process.env.BENCH_OUT ?? join(BENCH_DIR, 'RESULTS.md');
const JSON_OUT = process.env.BENCH_E2E_JSON ?? join(BENCH_DIR, 'e2e-results.json');
const NAMESPACE = 'bench-e2e';
const DATA_BYTES = 512;
const START = '<!-- bench:e2e:start -->';
const END = '<!-- bench:e2e:end -->';

/** `unguarded`: no webhook registered; the others are webhook shapes (WebhookShape). */
type Variant = 'unguarded' | 'shipped' | 'single-webhook' | 'ceiling';
type Shape = Exclude<Variant, 'unguarded'>;
type Operation = 'create' | 'update';
const PROCESSES = ['kube-apiserver', 'etcd', 'serve', 'kms-plugin', 'client'] as const;
type ProcessName = (typeof PROCESSES)[number];

interface Phase {
  variant: Variant;
  rep: number;
  operation: Operation;
  concurrency: number;
  writes: number;
  errors: number;
  firstError: string | undefined;
  writesPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU milliseconds per write, by process. */
  cpuMsPerWrite: Record<ProcessName, number>;
  /** Admission requests serve answered per write (0 unguarded). */
  admissionsPerWrite: number;
}

// ---------------------------------------------------------------- processes and CPU

/** The processes a write may cost CPU in; `ceiling` while the e2e ceiling server runs. */
type Pids = Record<Exclude<ProcessName, 'client'>, number> & { ceiling?: number };

function processPids(cluster: Cluster, guard: Guard, ceiling: Ceiling | undefined): Pids {
  const port = new URL(guard.admissionUrl).port;
  return {
    ...(ceiling !== undefined && { ceiling: ceiling.pid }),
    'kube-apiserver': findPid('kube-apiserver', [`--cert-dir=${cluster.workDir}`]),
    etcd: findPid('etcd', [`--data-dir=${cluster.workDir}`]),
    serve: findPid('serve', [' serve ', `--port=${port}`]),
    'kms-plugin': findPid('kms-plugin', [' kms-plugin ', `--listen=${cluster.workDir}`]),
  };
}

function cpuSnapshot(pids: Pids): Record<ProcessName, number> {
  const usage = process.cpuUsage();
  return {
    'kube-apiserver': cpuMs(pids['kube-apiserver']),
    etcd: cpuMs(pids.etcd),
    // The webhook server: serve, or the ceiling standing in for it (the other one idles).
    serve: cpuMs(pids.serve) + (pids.ceiling === undefined ? 0 : cpuMs(pids.ceiling)),
    'kms-plugin': cpuMs(pids['kms-plugin']),
    client: (usage.user + usage.system) / 1000,
  };
}

// ---------------------------------------------------------------- the Kubernetes client

interface Client {
  agent: Agent;
  host: string;
  port: number;
  /** The client certificate and CA, for a request outside the agent's pool. */
  tls: { ca?: Buffer | string; cert?: Buffer | string; key?: Buffer | string };
}

async function clientFor(cluster: Cluster, concurrency: number): Promise<Client> {
  const options: { ca?: Buffer | string; cert?: Buffer | string; key?: Buffer | string } = {};
  await cluster.kubeConfig().applyToHTTPSOptions(options);
  const url = new URL(cluster.server);
  const agent = new Agent({
    keepAlive: true,
    maxSockets: concurrency,
    ...(options.ca === undefined ? {} : { ca: options.ca }),
    ...(options.cert === undefined ? {} : { cert: options.cert }),
    ...(options.key === undefined ? {} : { key: options.key }),
  });
  return { agent, host: url.hostname, port: Number(url.port), tls: options };
}

function call(
  client: Client,
  method: string,
  path: string,
  body: string | undefined,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        agent: client.agent,
        host: client.host,
        port: client.port,
        method,
        path,
        headers: {
          accept: 'application/json',
          ...(body === undefined
            ? {}
            : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }),
        },
        timeout: 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

const FILLER = 'x'.repeat(DATA_BYTES);

function secretBody(name: string, version: number): string {
  const value = Buffer.from(`${version}:${FILLER}`.slice(0, DATA_BYTES)).toString('base64');
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: NAMESPACE, labels: { app: 'bench-e2e' } },
    type: 'Opaque',
    data: { payload: value },
  });
}

/** kube-apiserver's CPU profile over most of a measured phase (it runs with --profiling). */
async function saveApiServerProfile(client: Client, file: string): Promise<void> {
  const seconds = Math.max(1, Math.floor(PHASE_MS / 1000) - 1);
  const profile = await new Promise<Buffer>((resolve, reject) => {
    const req = request(
      {
        // Its own connection: the workers' pool must keep its `concurrency` sockets.
        agent: false,
        ...client.tls,
        host: client.host,
        port: client.port,
        path: `/debug/pprof/profile?seconds=${seconds}`,
        timeout: (seconds + 30) * 1000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          if (res.statusCode === 200) resolve(Buffer.concat(chunks));
          else reject(new Error(`pprof answered HTTP ${String(res.statusCode)}`));
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('pprof timed out')));
    req.on('error', reject);
    req.end();
  });
  const dir = join(BENCH_DIR, 'profiles');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, file), profile);
  console.log(`kube-apiserver profile: bench/profiles/${file}`);
}

// ---------------------------------------------------------------- phases

function percentile(sorted: readonly number[], share: number): number {
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(share * sorted.length) - 1));
  return Math.round((sorted[index] ?? 0) * 100) / 100;
}

async function admissionCount(guard: Guard): Promise<number> {
  const res = await fetch(`${guard.healthUrl}/metrics`);
  const text = await res.text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('kms_secret_guard_admission_requests_total{')) {
      total += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return total;
}

interface PhaseSpec {
  variant: Variant;
  rep: number;
  operation: Operation;
  concurrency: number;
}

interface PhaseContext {
  cluster: Cluster;
  guard: Guard;
  pids: Pids;
  ceiling: Ceiling | undefined;
}

/** Secrets each worker created, which the update phase that follows rewrites. */
type Created = string[][];

async function runPhase(spec: PhaseSpec, context: PhaseContext, created: Created): Promise<Phase> {
  const client = await clientFor(context.cluster, spec.concurrency);
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const started = performance.now();
  const measureFrom = started + WARMUP_MS;
  const deadline = measureFrom + PHASE_MS;
  let cpuBefore: Record<ProcessName, number> | undefined;
  let admissionsBefore = 0;
  let pprof: Promise<void> = Promise.resolve();
  const warmupDone = new Promise<void>((resolve) =>
    setTimeout(() => {
      cpuBefore = cpuSnapshot(context.pids);
      if (PPROF && spec.rep === 0 && spec.concurrency === 10 && spec.operation === 'create') {
        pprof = saveApiServerProfile(client, `kube-apiserver-${spec.variant}-create-c10.pb.gz`);
      }
      void admissionCount(context.guard).then((count) => {
        admissionsBefore = count;
        resolve();
      });
    }, WARMUP_MS),
  );
  const worker = async (index: number): Promise<void> => {
    const mine = created[index] ?? [];
    created[index] = mine;
    let sequence = 0;
    while (performance.now() < deadline) {
      sequence += 1;
      const name =
        spec.operation === 'create'
          ? `${spec.variant}-r${spec.rep}-c${spec.concurrency}-w${index}-${sequence}`
          : (mine[sequence % Math.max(1, mine.length)] ?? `missing-${index}`);
      const path =
        spec.operation === 'create'
          ? `/api/v1/namespaces/${NAMESPACE}/secrets`
          : `/api/v1/namespaces/${NAMESPACE}/secrets/${name}`;
      const t0 = performance.now();
      let status = 0;
      let text = '';
      try {
        ({ status, body: text } = await call(
          client,
          spec.operation === 'create' ? 'POST' : 'PUT',
          path,
          secretBody(name, sequence),
        ));
      } catch (error) {
        text = error instanceof Error ? error.message : String(error);
      }
      const t1 = performance.now();
      const ok = status === 201 || status === 200;
      if (ok && spec.operation === 'create') mine.push(name);
      if (t0 < measureFrom || t1 > deadline) continue;
      if (ok) latencies.push(t1 - t0);
      else {
        errors += 1;
        firstError ??= `${status} ${text.slice(0, 300)}`;
      }
    }
  };
  await Promise.all(Array.from({ length: spec.concurrency }, (_, index) => worker(index)));
  await warmupDone;
  const cpuAfter = cpuSnapshot(context.pids);
  await pprof;
  const admissions = (await admissionCount(context.guard)) - admissionsBefore;
  client.agent.destroy();
  latencies.sort((a, b) => a - b);
  const writes = latencies.length;
  const before = cpuBefore ?? cpuAfter;
  const perWrite = (name: ProcessName): number =>
    Math.round(((cpuAfter[name] - before[name]) / Math.max(1, writes)) * 1000) / 1000;
  return {
    ...spec,
    writes,
    errors,
    firstError,
    writesPerSecond: Math.round((writes / (PHASE_MS / 1000)) * 10) / 10,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    cpuMsPerWrite: Object.fromEntries(PROCESSES.map((name) => [name, perWrite(name)])) as Record<
      ProcessName,
      number
    >,
    admissionsPerWrite: Math.round((admissions / Math.max(1, writes)) * 100) / 100,
  };
}

// ---------------------------------------------------------------- switching variants

/** One server-side dry-run create through the API server. */
async function dryRunCreate(cluster: Cluster): Promise<string> {
  const client = await clientFor(cluster, 1);
  try {
    const res = await call(
      client,
      'POST',
      `/api/v1/namespaces/${NAMESPACE}/secrets?dryRun=All`,
      secretBody(`probe-${Date.now()}`, 0),
    );
    if (res.status !== 201) throw new Error(`dry-run create: ${res.status} ${res.body}`);
    return res.body;
  } finally {
    client.agent.destroy();
  }
}

/** Admissions serve answers for one server-side dry-run create. */
async function admissionsPerDryRun(cluster: Cluster, guard: Guard): Promise<number> {
  const before = await admissionCount(guard);
  await dryRunCreate(cluster);
  return (await admissionCount(guard)) - before;
}

/**
 * Waits until `check` holds twice in a row (every configuration has reached the API
 * server's informer), for up to 60 s; `describe` says what was seen last.
 */
async function waitForWebhooks(
  check: () => Promise<boolean>,
  describe: () => string,
): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if ((await check()) && (await check())) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(describe());
}

/** Waits until the API server calls serve `expected` times per write (informer lag). */
async function waitForAdmissions(cluster: Cluster, guard: Guard, expected: number): Promise<void> {
  let seen = -1;
  await waitForWebhooks(
    async () => (seen = await admissionsPerDryRun(cluster, guard)) === expected,
    () => `the API server called the webhook ${seen} times per write, expected ${expected}`,
  );
}

interface WebhookShape {
  configurations: WebhookConfiguration[];
  source: string;
  webhooksPerWrite: number;
}

function shape(found: { configurations: WebhookConfiguration[]; source: string }): WebhookShape {
  return {
    ...found,
    source: found.source.replace(`${REPO_ROOT}/`, ''),
    webhooksPerWrite: found.configurations.reduce((sum, c) => sum + c.webhooks.length, 0),
  };
}

const SINGLE_WEBHOOK = shape(componentWebhookConfigurations('single-webhook', 1));
const SHAPES: Record<Shape, WebhookShape> = {
  shipped: shape(shippedWebhookConfigurations('shipped')),
  'single-webhook': SINGLE_WEBHOOK,
  // The single-webhook configuration pointed at bench/ceiling.js (stamping): what any
  // stamping webhook costs behind kube-apiserver, with almost nothing spent in the webhook.
  ceiling: { ...SINGLE_WEBHOOK, source: 'bench/ceiling.js with the single-webhook configuration' },
};
const MEASURED_SHAPES = (process.env.BENCH_E2E_SHAPES ?? 'shipped,single-webhook,ceiling')
  .split(',')
  .filter((name): name is Shape => name in SHAPES);
const VARIANTS: Variant[] = ['unguarded', ...MEASURED_SHAPES];
/** Every configuration name any shape registers: all are removed before the next variant. */
const ALL_CONFIGURATIONS = Object.values(SHAPES).flatMap((s) => s.configurations);

interface Ceiling {
  pid: number;
  url: string;
  stop(): void;
}

/** bench/ceiling.js stamping, with serve's certificate and heap flags, on every CPU. */
async function startStampingCeiling(guard: Guard, nodeArgs: string[]): Promise<Ceiling> {
  const started = await startCeiling(
    { cert: guard.tlsFiles.certPath, key: guard.tlsFiles.keyPath },
    nodeArgs.filter((arg) => !arg.startsWith('--cpu-prof')),
    {},
    { stamp: true, pin: false },
  );
  if (started.pid === undefined) throw new Error('the ceiling has no pid');
  return {
    pid: started.pid,
    url: started.url,
    stop: () => {
      started.child.kill('SIGTERM');
    },
  };
}

/** Waits until dry-run creates come back stamped by the ceiling. */
async function waitForCeiling(cluster: Cluster): Promise<void> {
  await waitForWebhooks(
    async () => (await dryRunCreate(cluster)).includes('ceiling-0000'),
    () => 'the API server never called the ceiling webhook',
  );
}

async function setVariant(
  cluster: Cluster,
  guard: Guard,
  ceiling: Ceiling | undefined,
  variant: Variant,
): Promise<void> {
  const removed = new Set<string>();
  for (const configuration of ALL_CONFIGURATIONS) {
    const name = String((configuration.metadata as { name?: unknown } | undefined)?.name);
    const key = `${configuration.kind.toLowerCase()}/${name}`;
    if (removed.has(key)) continue;
    removed.add(key);
    const deleted = await cluster.kubectl(['delete', key, '--ignore-not-found']);
    if (deleted.code !== 0) throw new Error(`could not delete ${key}: ${deleted.stderr}`);
  }
  if (variant === 'unguarded') {
    await waitForAdmissions(cluster, guard, 0);
    return;
  }
  if (variant === 'ceiling') {
    if (ceiling === undefined) throw new Error('the ceiling server is not running');
    const local = SHAPES.ceiling.configurations.map((configuration) =>
      forLocalWebhook(configuration, ceiling.url, guard.caCert),
    );
    const applied = await cluster.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: local }),
    });
    if (applied.code !== 0) throw new Error(`could not register the ceiling: ${applied.stderr}`);
    await waitForCeiling(cluster);
    return;
  }
  const chosen = SHAPES[variant];
  await guard.registerWebhooks({ waitUntilActive: false, configurations: chosen.configurations });
  await waitForAdmissions(cluster, guard, chosen.webhooksPerWrite);
}

// ---------------------------------------------------------------- summary and report

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return 0;
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] ?? 0)
    : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

const round = (value: number, digits = 2): number => {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
};

interface Stat {
  writesPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

interface Row {
  shape: Shape;
  operation: Operation;
  concurrency: number;
  unguarded: Stat;
  guarded: Stat;
  /** Paired per repetition, then the median over repetitions. */
  throughputRatio: number;
  throughputRatioRange: [number, number];
  addedP50Ms: number;
  addedP99Ms: number;
  cpuMsPerWrite: { unguarded: Record<ProcessName, number>; guarded: Record<ProcessName, number> };
  admissionsPerWrite: number;
}

function summarizeOne(
  phases: Phase[],
  shape: Shape,
  operation: Operation,
  concurrency: number,
): Row {
  const mine = phases.filter((p) => p.operation === operation && p.concurrency === concurrency);
  const of = (variant: Variant) => mine.filter((p) => p.variant === variant);
  const pairs = Array.from({ length: REPS }, (_, rep) => ({
    u: of('unguarded').find((p) => p.rep === rep),
    g: of(shape).find((p) => p.rep === rep),
  })).filter(
    (pair): pair is { u: Phase; g: Phase } => pair.u !== undefined && pair.g !== undefined,
  );
  const ratios = pairs.map(({ u, g }) => g.writesPerSecond / Math.max(0.001, u.writesPerSecond));
  const stat = (variant: Variant): Stat => ({
    writesPerSecond: round(median(of(variant).map((p) => p.writesPerSecond)), 1),
    p50Ms: round(median(of(variant).map((p) => p.p50Ms))),
    p99Ms: round(median(of(variant).map((p) => p.p99Ms))),
  });
  const cpu = (variant: Variant) =>
    Object.fromEntries(
      PROCESSES.map((name) => [
        name,
        round(median(of(variant).map((p) => p.cpuMsPerWrite[name])), 3),
      ]),
    ) as Record<ProcessName, number>;
  return {
    shape,
    operation,
    concurrency,
    unguarded: stat('unguarded'),
    guarded: stat(shape),
    throughputRatio: round(median(ratios)),
    throughputRatioRange: [round(Math.min(...ratios)), round(Math.max(...ratios))],
    addedP50Ms: round(median(pairs.map(({ u, g }) => g.p50Ms - u.p50Ms))),
    addedP99Ms: round(median(pairs.map(({ u, g }) => g.p99Ms - u.p99Ms))),
    cpuMsPerWrite: { unguarded: cpu('unguarded'), guarded: cpu(shape) },
    admissionsPerWrite: median(of(shape).map((p) => p.admissionsPerWrite)),
  };
}

function summarize(phases: Phase[]): Row[] {
  return MEASURED_SHAPES.flatMap((shape) =>
    (['create', 'update'] as const).flatMap((operation) =>
      CONCURRENCIES.map((concurrency) => summarizeOne(phases, shape, operation, concurrency)),
    ),
  );
}

interface Goal {
  name: string;
  pass: boolean;
  measured: string;
}

/** The goals, for each measured shape (the shipped one is what a default install gets). */
function goals(rows: Row[]): Goal[] {
  const result: Goal[] = [];
  for (const row of rows) {
    // The ceiling is the reference for what is ours, not a goal of its own.
    if (row.shape === 'ceiling') continue;
    const label = `${row.shape}, ${row.operation}`;
    if (row.concurrency === 1) {
      result.push({
        name: `${label}: p50 added ≤ 1 ms at concurrency 1`,
        pass: row.addedP50Ms <= 1,
        measured: `+${row.addedP50Ms} ms (${row.unguarded.p50Ms} → ${row.guarded.p50Ms} ms)`,
      });
    }
    if (row.concurrency === 10) {
      result.push({
        name: `${label}: throughput ≥ 0.9× unguarded at concurrency 10`,
        pass: row.throughputRatio >= 0.9,
        measured: `${row.throughputRatio}× (${row.throughputRatioRange[0]}–${row.throughputRatioRange[1]}; ${row.unguarded.writesPerSecond} → ${row.guarded.writesPerSecond} writes/s)`,
      });
    }
  }
  return result;
}

function cpuCell(cpu: Record<ProcessName, number>): string {
  return PROCESSES.filter((name) => name !== 'client')
    .map((name) => cpu[name].toFixed(2))
    .join(' / ');
}

/** Each guard shape against the stamping ceiling: what is the guard's, not kube-apiserver's. */
function ceilingLines(rows: Row[]): string[] {
  const ceilingOf = (row: Row) =>
    rows.find(
      (c) =>
        c.shape === 'ceiling' && c.operation === row.operation && c.concurrency === row.concurrency,
    );
  const compared = rows.flatMap((row) => {
    const ceiling = row.shape === 'ceiling' ? undefined : ceilingOf(row);
    return ceiling === undefined ? [] : [{ row, ceiling }];
  });
  if (compared.length === 0) return [];
  return [
    '',
    "The ceiling is bench/ceiling.js (a bare node:https server answering the same three-annotation stamp) behind the single-webhook configuration: the least any stamping webhook costs a write through kube-apiserver. serve is not called then (admissions per write 0); the serve CPU column is the ceiling's.",
    '',
    '| shape | write | c | ceiling ÷ unguarded writes/s | shape ÷ ceiling writes/s | p50 over the ceiling ms | kube-apiserver CPU ms/write: shape / ceiling | webhook server CPU ms/write: shape / ceiling |',
    '|---|---|---|---|---|---|---|---|',
    ...compared.map(
      ({ row, ceiling }) =>
        `| ${row.shape} | ${row.operation} | ${row.concurrency} | ${ceiling.throughputRatio} | ${round(row.guarded.writesPerSecond / Math.max(1, ceiling.guarded.writesPerSecond))} | ${round(row.guarded.p50Ms - ceiling.guarded.p50Ms)} | ${row.cpuMsPerWrite.guarded['kube-apiserver'].toFixed(2)} / ${ceiling.cpuMsPerWrite.guarded['kube-apiserver'].toFixed(2)} | ${row.cpuMsPerWrite.guarded.serve.toFixed(2)} / ${ceiling.cpuMsPerWrite.guarded.serve.toFixed(2)} |`,
    ),
  ];
}

function renderBlock(data: {
  rows: Row[];
  goals: Goal[];
  settings: Record<string, unknown>;
  machine: string;
}): string {
  const lines = [
    START,
    `## End to end: Secret writes through kube-apiserver (${String(data.settings.date)})`,
    '',
    `Machine: ${data.machine}.`,
    `Settings: kube-apiserver ${String(data.settings.kubernetes)} + etcd, Secrets encrypted at rest by \`kms-secret-guard kms-plugin\` (KMS emulator); \`serve\` with \`${String(data.settings.serveNodeArgs)}\`; shapes: ${String(data.settings.webhooks)} (clientConfig rewritten to a \`url\`), unguarded = none registered; ${REPS} repetitions per variant on one cluster, order rotating; ${PHASE_MS} ms measured per phase after ${WARMUP_MS} ms of warm-up; Secrets of ${DATA_BYTES} bytes; client in the runner's process over keep-alive HTTPS/1.1 with a client certificate, one connection per worker; wall time ${String(data.settings.wallSeconds)} s.`,
    'Values are medians over the repetitions; ratio and added latency are paired per repetition (guarded − unguarded), then the median. CPU is ms per write from /proc/PID/stat (10 ms ticks: read the columns as ±0.1 ms at low rates).',
    '',
    '| goal | result | measured |',
    '|---|---|---|',
    ...data.goals.map((g) => `| ${g.name} | **${g.pass ? 'PASS' : 'FAIL'}** | ${g.measured} |`),
    '',
    '| shape | write | c | unguarded writes/s, p50 / p99 ms | guarded writes/s, p50 / p99 ms | ratio (min–max) | added p50 / p99 ms | admissions per write | CPU ms/write unguarded: apiserver / etcd / serve / plugin | guarded |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...data.rows.map(
      (r) =>
        `| ${r.shape} | ${r.operation} | ${r.concurrency} | ${r.unguarded.writesPerSecond}, ${r.unguarded.p50Ms} / ${r.unguarded.p99Ms} | ${r.guarded.writesPerSecond}, ${r.guarded.p50Ms} / ${r.guarded.p99Ms} | ${r.throughputRatio} (${r.throughputRatioRange[0]}–${r.throughputRatioRange[1]}) | ${r.addedP50Ms} / ${r.addedP99Ms} | ${r.admissionsPerWrite} | ${cpuCell(r.cpuMsPerWrite.unguarded)} | ${cpuCell(r.cpuMsPerWrite.guarded)} |`,
    ),
    ...ceilingLines(data.rows),
    END,
  ];
  return lines.join('\n');
}

function writeBlock(block: string): void {
  let existing = '';
  try {
    existing = readFileSync(OUT, 'utf8');
  } catch {
    existing = '# Benchmark results\n';
  }
  const start = existing.indexOf(START);
  const end = existing.indexOf(END);
  const next =
    start !== -1 && end > start
      ? `${existing.slice(0, start)}${block}${existing.slice(end + END.length)}`
      : `${existing.trimEnd()}\n\n${block}\n`;
  writeFileSync(OUT, next);
}

function machineLine(): string {
  const model = cpus()[0]?.model.trim() ?? 'unknown CPU';
  return `${cpus().length} CPUs, ${model}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Node.js ${process.version}`;
}

/** The Deployment's NODE_OPTIONS (heap flags), so serve's costs are a pod's. */
function serveNodeArgs(): string[] {
  const override = process.env.BENCH_NODE_ARGS;
  const base =
    override ??
    /- name: NODE_OPTIONS\s+value: (.+)/
      .exec(readFileSync(join(REPO_ROOT, 'manifests', 'base', 'deployment.yaml'), 'utf8'))?.[1]
      ?.trim() ??
    '';
  const args = base.split(/\s+/).filter((arg) => arg !== '');
  if (!PROFILE) return args;
  const dir = join(BENCH_DIR, 'profiles');
  mkdirSync(dir, { recursive: true });
  return [...args, '--cpu-prof', `--cpu-prof-dir=${dir}`];
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  useEveryCpu();
  const wallStart = Date.now();
  const nodeArgs = serveNodeArgs();
  const cluster = await startCluster({
    encryption: 'kms-plugin',
    ...(PPROF && { extraApiServerFlags: ['--profiling=true'] }),
  });
  let guard: Guard | undefined;
  let stopCeiling = (): void => undefined;
  const phases: Phase[] = [];
  try {
    guard = await startGuard(cluster, {
      refreshInterval: '30s',
      maxStaleness: '5m',
      nodeArgs,
    });
    const made = await cluster.kubectl(['create', 'namespace', NAMESPACE]);
    if (made.code !== 0) throw new Error(made.stderr);
    const ceiling = MEASURED_SHAPES.includes('ceiling')
      ? await startStampingCeiling(guard, nodeArgs)
      : undefined;
    stopCeiling = () => ceiling?.stop();
    const pids = processPids(cluster, guard, ceiling);
    const context: PhaseContext = { cluster, guard, pids, ceiling };
    console.log(
      `e2e: ${REPS} repetitions × (${VARIANTS.join(', ')}) × concurrency ${CONCURRENCIES.join('/')} × (create, update), ${PHASE_MS} ms per phase`,
    );
    // JIT and connection warm-up of every process, not measured.
    await setVariant(cluster, guard, context.ceiling, 'shipped');
    await runPhase(
      { variant: 'shipped', rep: -1, operation: 'create', concurrency: 10 },
      context,
      [],
    );
    for (let rep = 0; rep < REPS; rep += 1) {
      // Rotate the order so no variant always runs first (or last) on a warming machine.
      const order = VARIANTS.map((_, index) => VARIANTS[(index + rep) % VARIANTS.length]!);
      for (const variant of order) {
        await setVariant(cluster, guard, context.ceiling, variant);
        for (const concurrency of CONCURRENCIES) {
          const created: Created = [];
          for (const operation of ['create', 'update'] as const) {
            const phase = await runPhase(
              { variant, rep, operation, concurrency },
              context,
              created,
            );
            phases.push(phase);
            console.log(
              `rep ${rep + 1} ${variant.padEnd(14)} ${operation} c${concurrency}: ${phase.writesPerSecond} writes/s, p50 ${phase.p50Ms} ms, p99 ${phase.p99Ms} ms, admissions/write ${phase.admissionsPerWrite}, CPU ms/write ${JSON.stringify(phase.cpuMsPerWrite)}${phase.errors > 0 ? `, ${phase.errors} errors (${phase.firstError ?? ''})` : ''}`,
            );
            if (phase.errors > phase.writes / 100) {
              throw new Error(
                `${variant} ${operation} c${concurrency}: ${phase.errors} failed writes: ${phase.firstError ?? ''}`,
              );
            }
          }
        }
      }
    }
  } finally {
    stopCeiling();
    await guard?.stop();
    await cluster.stop();
  }
  const rows = summarize(phases);
  const checked = goals(rows);
  for (const goal of checked)
    console.log(`${goal.pass ? 'PASS' : 'FAIL'}  ${goal.name}: ${goal.measured}`);
  const settings = {
    date: new Date().toISOString(),
    quick: QUICK,
    reps: REPS,
    phaseMs: PHASE_MS,
    warmupMs: WARMUP_MS,
    concurrencies: CONCURRENCIES,
    dataBytes: DATA_BYTES,
    serveNodeArgs: nodeArgs.join(' '),
    webhooks: MEASURED_SHAPES.map(
      (name) =>
        `${name} = ${SHAPES[name].source} (webhook calls per write: ${SHAPES[name].webhooksPerWrite})`,
    ).join('; '),
    kubernetes: /^K8S_VERSION=(\S+)/m.exec(
      readFileSync(join(REPO_ROOT, 'scripts', 'k8s-binaries', 'versions.env'), 'utf8'),
    )?.[1],
    wallSeconds: Math.round((Date.now() - wallStart) / 1000),
  };
  writeFileSync(
    JSON_OUT,
    `${JSON.stringify({ machine: machineLine(), settings, rows, goals: checked, phases }, null, 2)}\n`,
  );
  writeBlock(renderBlock({ rows, goals: checked, settings, machine: machineLine() }));
  console.log(`wrote the end-to-end block of ${OUT}`);
  console.log(JSON.stringify({ settings, goals: checked, rows }));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
