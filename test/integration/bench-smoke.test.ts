// Proves the benchmark's processes still run: bench/load.js against bench/ceiling.js and
// against the webhook, about a second each. Results must be well-formed; speed is never
// asserted here (goals are checked by `npm run bench`).
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { createLogger } from '../../src/logging/logger.js';
import { startServer } from '../../src/server/serve.js';
import { fakeSource, fixture, makeCertDir, serveSettings } from '../helpers/server.js';
import { LogCapture } from '../helpers/logs.js';

const BENCH = fileURLToPath(new URL('../../bench/', import.meta.url));

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

t.test('bench/load.js against bench/ceiling.js and the webhook', async (t) => {
  const certs = await makeCertDir();
  t.teardown(() => certs.cleanup());
  const bodyFile = join(certs.dir, 'review.json');
  await writeFile(bodyFile, JSON.stringify(fixture('secret-create-generatename')));
  const load = { bodyFile, caFile: certs.caFile, durationMs: 800, warmupMs: 100 };

  t.test('ceiling', async (t) => {
    const ceiling = spawn(
      process.execPath,
      [
        join(BENCH, 'ceiling.js'),
        JSON.stringify({ certFile: certs.certFile, keyFile: certs.keyFile, host: '127.0.0.1' }),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
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
