// Proves the benchmark's processes still run: bench/load.js against bench/ceiling.js and
// against the webhook, about a second each. Results must be well-formed; speed is never
// asserted here (goals are checked by `npm run bench`).
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import t, { type Test } from 'tap';
import { createLogger } from '../../src/logging/logger.js';
import { startServer } from '../../src/server/serve.js';
import { fakeSource, fixture, makeCertDir, serveSettings } from '../helpers/server.js';
import { LogCapture } from '../helpers/logs.js';
import { waitFor } from '../helpers/eventually.js';

const BENCH = fileURLToPath(new URL('../../bench/', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface ProbeReport {
  sequence: number;
  eventLoopDelayMs: { p99: number; max: number; samples: number };
  gc: Record<string, { count: number; totalMs: number; maxMs: number }>;
}

interface LoadResult {
  requests: number;
  completed: number;
  errors: number;
  statuses: Record<string, number>;
  seconds: number;
  rps: number;
  latencyMs: { mean: number; p50: number; p90: number; p99: number; max: number };
}

function runNode(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function runLoad(t: Test, spec: Record<string, unknown>): Promise<LoadResult | undefined> {
  const result = await runNode([join(BENCH, 'load.js'), JSON.stringify(spec)]);
  t.equal(result.code, 0, `load.js exits 0 (${result.stderr.slice(0, 300)})`);
  const line = result.stdout.trim().split('\n').pop() ?? '';
  let parsed: LoadResult | undefined;
  t.doesNotThrow(() => {
    parsed = JSON.parse(line) as LoadResult;
  }, 'load.js prints one JSON line');
  return parsed;
}

function checkWellFormed(t: Test, result: LoadResult | undefined, label: string): void {
  if (result === undefined) {
    t.fail(`${label}: no result`);
    return;
  }
  t.ok(result.completed > 0, `${label}: some requests completed`);
  t.equal(result.errors, 0, `${label}: no failed requests`);
  t.equal(result.statuses['200'], result.completed, `${label}: every answer is 200`);
  t.ok(result.seconds > 0, `${label}: measured time is positive`);
  t.ok(Number.isFinite(result.rps) && result.rps > 0, `${label}: requests/s is a positive number`);
  const { p50, p99, max } = result.latencyMs;
  t.ok(p50 > 0 && p50 <= p99 && p99 <= max, `${label}: percentiles are ordered`);
}

type Certs = Awaited<ReturnType<typeof makeCertDir>>;

/** bench/ceiling.js as its own process (killed at teardown); resolves with its port. */
async function startCeiling(
  t: Test,
  certs: Certs,
  nodeArgs: string[] = [],
  env: Record<string, string> = {},
): Promise<{ port: number; pid: number }> {
  const ceiling = spawn(
    process.execPath,
    [
      ...nodeArgs,
      join(BENCH, 'ceiling.js'),
      JSON.stringify({ certFile: certs.certFile, keyFile: certs.keyFile, host: '127.0.0.1' }),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } },
  );
  t.teardown(() => {
    ceiling.kill('SIGKILL');
  });
  const port = await new Promise<number>((resolve, reject) => {
    let buffer = '';
    ceiling.once('exit', (code) => {
      reject(new Error(`ceiling.js exited ${String(code)}`));
    });
    ceiling.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      buffer += chunk;
      const newline = buffer.indexOf('\n');
      if (newline >= 0) resolve((JSON.parse(buffer.slice(0, newline)) as { port: number }).port);
    });
  });
  return { port, pid: ceiling.pid ?? 0 };
}

t.test('bench/load.js against bench/ceiling.js and the webhook', async (t) => {
  const certs = await makeCertDir();
  t.teardown(() => certs.cleanup());
  const bodyFile = join(certs.dir, 'review.json');
  await writeFile(bodyFile, JSON.stringify(fixture('secret-create-generatename')));
  const load = { bodyFile, caFile: certs.caFile, durationMs: 800, warmupMs: 100 };

  t.test('ceiling', async (t) => {
    const { port } = await startCeiling(t, certs);
    t.ok(port > 0, 'ceiling.js reports its port');
    const keepAlive = await runLoad(t, {
      ...load,
      url: `https://127.0.0.1:${port}/validate`,
      concurrency: 4,
    });
    checkWellFormed(t, keepAlive, 'ceiling keep-alive');
    const handshakes = await runLoad(t, {
      ...load,
      url: `https://127.0.0.1:${port}/validate`,
      concurrency: 2,
      durationMs: 300,
      keepAlive: false,
    });
    checkWellFormed(t, handshakes, 'ceiling new connections');
  });

  t.test('webhook', async (t) => {
    const server = await startServer({
      settings: serveSettings(certs),
      logger: createLogger('info', new LogCapture()),
      monitor: fakeSource(),
      host: '127.0.0.1',
    });
    t.teardown(() => server.close());
    for (const path of ['/validate', '/mutate']) {
      const result = await runLoad(t, {
        ...load,
        url: `${server.admissionUrl}${path}`,
        concurrency: 4,
      });
      checkWellFormed(t, result, `webhook ${path}`);
    }
  });

  t.test('load.js refuses a target that is not loopback', async (t) => {
    const result = await runNode([
      join(BENCH, 'load.js'),
      JSON.stringify({ ...load, url: 'https://192.0.2.1:8443/validate' }),
    ]);
    t.not(result.code, 0, 'load.js exits non-zero');
    t.match(result.stderr, /only targets loopback/, 'and says why');
  });
});

// scripts/loadgen.sh exits 3 without a Go toolchain: the bench then skips the Go client too.
// Bounded: a cold Go build of this stdlib-only program takes well under a minute.
const build = spawnSync('bash', [join(ROOT, 'scripts', 'loadgen.sh')], {
  encoding: 'utf8',
  timeout: 300_000,
});

t.test(
  'bench/loadgen (Go) against bench/ceiling.js with bench/probe.js loaded',
  { skip: build.status === 3 ? `no Go toolchain: ${build.stderr.trim()}` : false },
  async (t) => {
    t.equal(
      build.status,
      0,
      `scripts/loadgen.sh builds the Go load generator (${build.stderr.slice(-300)})`,
    );
    const binary = build.stdout.trim();
    const certs = await makeCertDir();
    t.teardown(() => certs.cleanup());
    const bodyFile = join(certs.dir, 'review.json');
    await writeFile(bodyFile, JSON.stringify(fixture('secret-create-generatename')));
    const probeFile = join(certs.dir, 'probe.json');
    const { port, pid } = await startCeiling(
      t,
      certs,
      ['--import', pathToFileURL(join(BENCH, 'probe.js')).href],
      { BENCH_PROBE_FILE: probeFile },
    );
    const run = (spec: Record<string, unknown>) =>
      spawnSync(binary, [JSON.stringify({ bodyFile, caFile: certs.caFile, ...spec })], {
        encoding: 'utf8',
        timeout: 30_000,
      });
    const url = `https://127.0.0.1:${port}/validate`;
    for (const [label, spec] of [
      ['closed loop', { url, concurrency: 4, durationMs: 500, warmupMs: 100 }],
      ['open loop at 500/s', { url, concurrency: 4, durationMs: 500, rate: 500 }],
    ] as const) {
      const result = run(spec);
      t.equal(result.status, 0, `loadgen ${label} exits 0 (${result.stderr.slice(0, 300)})`);
      const parsed = JSON.parse(result.stdout.trim().split('\n').pop() ?? '{}') as LoadResult & {
        protocol: string;
        connections: number;
      };
      checkWellFormed(t, parsed, `loadgen ${label}`);
      t.equal(
        parsed.protocol,
        'HTTP/1.1',
        `loadgen ${label}: HTTP/1.1, as for a Service-referenced webhook`,
      );
      t.ok(parsed.connections >= 1, `loadgen ${label}: counts the connections it opened`);
    }
    const open = JSON.parse(
      run({ url, concurrency: 2, durationMs: 400, rate: 200 }).stdout,
    ) as LoadResult;
    t.ok(
      open.requests <= 81,
      `the open loop sends no more than its rate allows (${open.requests} in 0.4 s at 200/s)`,
    );
    const refused = run({ url: 'https://192.0.2.1:8443/validate' });
    t.equal(refused.status, 2, 'loadgen refuses a target that is not loopback');
    t.match(refused.stderr, /only targets loopback/, 'and says why');

    process.kill(pid, 'SIGUSR2');
    const report = await waitFor(
      'the probe report',
      () => JSON.parse(readFileSync(probeFile, 'utf8')) as ProbeReport,
      { timeoutMs: 10_000 },
    );
    t.equal(report.sequence, 1, 'bench/probe.js answers SIGUSR2 with its first report');
    t.ok(report.eventLoopDelayMs.samples > 0, 'with event-loop delay samples');
    t.ok(
      Object.values(report.gc).every((kind) => kind.count > 0 && kind.maxMs <= kind.totalMs),
      'and a tally of the GC pauses it saw',
    );
  },
);
