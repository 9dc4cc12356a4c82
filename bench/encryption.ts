/**
 * Secret writes through the real kube-apiserver (+ etcd) with Secrets encrypted at rest by
 * `kms-secret-guard kms-plugin` (KMS emulator behind it), by the in-tree aesgcm provider, and
 * not at all (identity): creates per second, p50/p99 latency, interleaved repetitions (every
 * repetition starts a fresh cluster per provider, rotating which goes first), and the KMS
 * calls the plugin made per 1,000 writes, and the CPU per write of kube-apiserver, etcd and
 * the plugin (from /proc), which shows where a gap between the providers is spent.
 *
 *   npm run build && node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/encryption.ts
 *
 * BENCH_WRITES (default 10000) Secrets per measurement, BENCH_ENCRYPTION_REPS (default 5),
 * BENCH_CONCURRENCY (default 8). The throughput goal is judged on the median of the
 * per-repetition ratios (each pair ran back to back on the same machine state). Prints human lines and, last, one JSON line.
 */
import { createSecrets } from '../test/helpers/reencrypt.js';
import { startCluster, type Cluster, type EncryptionMode } from '../test/e2e/harness/index.js';
import { cpuMs, findPid, useEveryCpu } from './processes.js';

const WRITES = Number(process.env.BENCH_WRITES ?? '10000');
const REPS = Number(process.env.BENCH_ENCRYPTION_REPS ?? '5');
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
  /** CPU milliseconds per measured write, by process. */
  cpuMsPerWrite: Record<string, number>;
}

/** The cluster's processes whose CPU a write costs (the plugin only when it runs). */
function clusterPids(cluster: Cluster, mode: EncryptionMode): Record<string, number> {
  return {
    'kube-apiserver': findPid('kube-apiserver', [`--cert-dir=${cluster.workDir}`]),
    etcd: findPid('etcd', [`--data-dir=${cluster.workDir}`]),
    ...(mode === 'kms-plugin' && {
      'kms-plugin': findPid('kms-plugin', [' kms-plugin ', `--listen=${cluster.workDir}`]),
    }),
  };
}

function cpuOf(pids: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuMs(pid)]));
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
    const pids = clusterPids(cluster, mode);
    const cpuBefore = cpuOf(pids);
    const latencies: number[] = [];
    const started = performance.now();
    await createSecrets(cluster.kubeConfig(), specs('w', WRITES), CONCURRENCY, (ms) => {
      latencies.push(ms);
    });
    const seconds = (performance.now() - started) / 1000;
    const cpuAfter = cpuOf(pids);
    latencies.sort((a, b) => a - b);
    const result: Measurement = {
      mode,
      writes: WRITES,
      createsPerSecond: Math.round((WRITES / seconds) * 10) / 10,
      p50Ms: percentile(latencies, 0.5),
      p99Ms: percentile(latencies, 0.99),
      cpuMsPerWrite: Object.fromEntries(
        Object.keys(pids).map((name) => [
          name,
          Math.round((((cpuAfter[name] ?? 0) - (cpuBefore[name] ?? 0)) / WRITES) * 1000) / 1000,
        ]),
      ),
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
  // Under `npm run bench` this process starts pinned to one CPU: the cluster gets both.
  useEveryCpu();
  const runs: Measurement[] = [];
  for (let rep = 0; rep < REPS; rep += 1) {
    // Rotate the order so no provider always runs first (or last) on a warming machine.
    const order = MODES.map((_, index) => MODES[(index + rep) % MODES.length]!);
    for (const mode of order) {
      const result = await measure(mode, rep);
      runs.push(result);
      console.log(
        `rep ${rep + 1}/${REPS} ${mode}: ${result.createsPerSecond} creates/s, p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms, CPU ms/write ${JSON.stringify(result.cpuMsPerWrite)}${result.kmsCalls ? `, KMS calls ${JSON.stringify(result.kmsCalls)}` : ''}`,
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
          cpuMsPerWrite: Object.fromEntries(
            Object.keys(mine[0]?.cpuMsPerWrite ?? {}).map((name) => [
              name,
              median(mine.map((run) => run.cpuMsPerWrite[name] ?? 0)),
            ]),
          ),
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
  ) as Record<
    EncryptionMode,
    {
      createsPerSecond: number;
      p50Ms: number;
      p99Ms: number;
      cpuMsPerWrite: Record<string, number>;
    }
  >;
  // Each repetition ran every provider back to back: its ratio compares like with like.
  const pairedRatios = Array.from({ length: REPS }, (_, rep) => {
    const of = (mode: EncryptionMode) =>
      runs.filter((run) => run.mode === mode)[rep]?.createsPerSecond ?? Number.NaN;
    return Math.round((of('kms-plugin') / of('aesgcm')) * 100) / 100;
  });
  const ratio = median(pairedRatios);
  const ratioOfMedians =
    Math.round((summary['kms-plugin'].createsPerSecond / summary.aesgcm.createsPerSecond) * 100) /
    100;
  const apiServerCpuRatio =
    Math.round(
      ((summary['kms-plugin'].cpuMsPerWrite['kube-apiserver'] ?? 0) /
        (summary.aesgcm.cpuMsPerWrite['kube-apiserver'] ?? 1)) *
        100,
    ) / 100;
  console.log(
    `kms-plugin / aesgcm throughput: ${ratio}× median of the repetitions' ratios (${pairedRatios.join(', ')}), ${ratioOfMedians}× of the medians (goal ≥ 0.9×); kube-apiserver CPU per write ${apiServerCpuRatio}×`,
  );
  console.log(
    JSON.stringify({
      writes: WRITES,
      reps: REPS,
      concurrency: CONCURRENCY,
      summary,
      ratio,
      pairedRatios,
      ratioOfMedians,
      apiServerCpuRatio,
      runs,
    }),
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
