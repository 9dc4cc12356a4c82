/**
 * Secret writes through the real kube-apiserver (+ etcd) with Secrets encrypted at rest by
 * `kms-secret-guard kms-plugin` (KMS emulator behind it), by the in-tree aesgcm provider, and
 * not at all (identity): creates per second, p50/p99 latency, interleaved repetitions (every
 * repetition starts a fresh cluster per provider, rotating which goes first), and the KMS
 * calls the plugin made per 1,000 writes.
 *
 *   npm run build && node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/encryption.ts
 *
 * BENCH_WRITES (default 3000) Secrets per measurement, BENCH_ENCRYPTION_REPS (default 3),
 * BENCH_CONCURRENCY (default 8). Prints human lines and, last, one JSON line.
 */
import { createSecrets } from '../test/helpers/reencrypt.js';
import { startCluster, type EncryptionMode } from '../test/e2e/harness/index.js';

const WRITES = Number(process.env.BENCH_WRITES ?? '3000');
const REPS = Number(process.env.BENCH_ENCRYPTION_REPS ?? '3');
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? '8');
const WARMUP = Math.min(200, Math.ceil(WRITES / 10));
const MODES: EncryptionMode[] = ['kms-plugin', 'aesgcm', 'identity'];

interface Measurement {
  mode: EncryptionMode;
  writes: number;
  createsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** KMS calls during the measured writes, by action (kms-plugin only). */
  kmsCalls?: Record<string, number>;
}

function percentile(sorted: readonly number[], share: number): number {
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(share * sorted.length) - 1));
  return Math.round((sorted[index] ?? 0) * 100) / 100;
}

async function measure(mode: EncryptionMode, rep: number): Promise<Measurement> {
  const cluster = await startCluster({ encryption: mode });
  try {
    const namespace = `bench-${mode}`;
    const created = await cluster.kubectl(['create', 'namespace', namespace]);
    if (created.code !== 0) throw new Error(created.stderr);
    const specs = (prefix: string, count: number) =>
      Array.from({ length: count }, (_, index) => ({
        namespace,
        name: `${prefix}-${rep}-${index}`,
        annotations: {},
      }));
    // Warm-up: connections, the API server's caches, the first data-encryption seed.
    await createSecrets(cluster.kubeConfig(), specs('warm', WARMUP), CONCURRENCY);
    const emulator = cluster.kms?.emulator;
    const actions = ['Encrypt', 'Decrypt', 'DescribeKey'];
    const before = Object.fromEntries(actions.map((a) => [a, emulator?.requestCount(a) ?? 0]));
    const latencies: number[] = [];
    const started = performance.now();
    await createSecrets(cluster.kubeConfig(), specs('w', WRITES), CONCURRENCY, (ms) => {
      latencies.push(ms);
    });
    const seconds = (performance.now() - started) / 1000;
    latencies.sort((a, b) => a - b);
    const result: Measurement = {
      mode,
      writes: WRITES,
      createsPerSecond: Math.round((WRITES / seconds) * 10) / 10,
      p50Ms: percentile(latencies, 0.5),
      p99Ms: percentile(latencies, 0.99),
    };
    if (emulator !== undefined) {
      result.kmsCalls = Object.fromEntries(
        actions.map((a) => [a, emulator.requestCount(a) - (before[a] ?? 0)]),
      );
    }
    return result;
  } finally {
    await cluster.stop();
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

async function main(): Promise<void> {
  const runs: Measurement[] = [];
  for (let rep = 0; rep < REPS; rep += 1) {
    // Rotate the order so no provider always runs first (or last) on a warming machine.
    const order = MODES.map((_, index) => MODES[(index + rep) % MODES.length]!);
    for (const mode of order) {
      const result = await measure(mode, rep);
      runs.push(result);
      console.log(
        `rep ${rep + 1}/${REPS} ${mode}: ${result.createsPerSecond} creates/s, p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms${result.kmsCalls ? `, KMS calls ${JSON.stringify(result.kmsCalls)}` : ''}`,
      );
    }
  }
  const summary = Object.fromEntries(
    MODES.map((mode) => {
      const mine = runs.filter((run) => run.mode === mode);
      const kms = mine.flatMap((run) => (run.kmsCalls ? [run.kmsCalls] : []));
      const perThousand = (action: string) =>
        kms.length === 0
          ? undefined
          : Math.round(
              (kms.reduce((sum, calls) => sum + (calls[action] ?? 0), 0) / (kms.length * WRITES)) *
                1000 *
                100,
            ) / 100;
      return [
        mode,
        {
          createsPerSecond: median(mine.map((run) => run.createsPerSecond)),
          p50Ms: median(mine.map((run) => run.p50Ms)),
          p99Ms: median(mine.map((run) => run.p99Ms)),
          ...(kms.length === 0
            ? {}
            : {
                encryptPer1000Writes: perThousand('Encrypt'),
                decryptPer1000Writes: perThousand('Decrypt'),
                describeKeyPer1000Writes: perThousand('DescribeKey'),
              }),
        },
      ];
    }),
  ) as Record<EncryptionMode, { createsPerSecond: number; p50Ms: number; p99Ms: number }>;
  const ratio =
    Math.round((summary['kms-plugin'].createsPerSecond / summary.aesgcm.createsPerSecond) * 100) /
    100;
  console.log(`kms-plugin / aesgcm throughput: ${ratio}× (goal ≥ 0.9×)`);
  console.log(
    JSON.stringify({ writes: WRITES, reps: REPS, concurrency: CONCURRENCY, summary, ratio, runs }),
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
