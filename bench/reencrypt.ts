/**
 * Benchmark of `kms-secret-guard reencrypt` against a real kube-apiserver + etcd (the e2e
 * harness) and the KMS emulator: sweep throughput and the CLI process's peak RSS.
 *
 *   npm run build && node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/reencrypt.ts
 *
 * BENCH_SECRETS (default 10000) sets the number of Secrets; BENCH_QPS / BENCH_CONCURRENCY
 * (default 1000 / 8) the sweep's limits. Prints human lines and, last, one JSON line.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmulator } from '../src/emulator/index.js';
import {
  KEY_ID_ANNOTATION,
  KEY_VERSION_ANNOTATION,
  ROTATION_TIME_ANNOTATION,
} from '../src/reencrypt/plan.js';
import { createKmsAdmin } from '../src/emulator/admin.js';
import { cliPath, startCluster } from '../test/e2e/harness/index.js';
import { createSecrets } from '../test/helpers/reencrypt.js';

const SECRETS = Number(process.env.BENCH_SECRETS ?? '10000');
const QPS = process.env.BENCH_QPS ?? '1000';
const CONCURRENCY = process.env.BENCH_CONCURRENCY ?? '8';
const NAMESPACES = 10;
const SMALL = Math.min(2000, SECRETS);

interface Measured {
  wallSeconds: number;
  peakRssMiB: number;
  summary: { scanned: number; rewritten: number; failed: number; durationSeconds: number };
}

async function main(): Promise<void> {
  const cli = cliPath();
  const work = mkdtempSync(join(tmpdir(), 'ksg-bench-reencrypt-'));
  // Preloaded into the CLI process: records its peak RSS when it exits.
  const rssFile = join(work, 'max-rss');
  const preload = join(work, 'max-rss.cjs');
  writeFileSync(
    preload,
    `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(rssFile)}, String(process.resourceUsage().maxRSS)));\n`,
  );
  const cluster = await startCluster();
  const emulator = await startEmulator({ keys: [''] });
  try {
    const keyId = emulator.keyIds[0]!;
    const kms = createKmsAdmin(emulator, keyId);
    const old = (await kms.describeKey()).primaryKeyVersion;
    await kms.createKeyVersion();

    const namespaces = Array.from({ length: NAMESPACES }, (_, index) => `bench-${index}`);
    const created = await cluster.kubectl(['create', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'List',
        items: namespaces.map((name) => ({
          apiVersion: 'v1',
          kind: 'Namespace',
          metadata: { name },
        })),
      }),
    });
    if (created.code !== 0) throw new Error(`namespaces: ${created.stderr}`);
    const specs = Array.from({ length: SECRETS }, (_, index) => ({
      namespace: namespaces[index % NAMESPACES]!,
      name: `bench-${String(index).padStart(6, '0')}`,
      annotations: {
        [KEY_ID_ANNOTATION]: keyId,
        [KEY_VERSION_ANNOTATION]: old,
        [ROTATION_TIME_ANNOTATION]: '2026-01-01T00:00:00Z',
      },
    }));

    const sweep = (args: string[]): Promise<Measured> =>
      new Promise((resolve, reject) => {
        const started = process.hrtime.bigint();
        const child = spawn(
          process.execPath,
          [
            '--require',
            preload,
            cli,
            'reencrypt',
            '--kms-key-id',
            keyId,
            '--kms-endpoint',
            emulator.endpoint,
            '--kms-protocol',
            'http',
            '--kubeconfig',
            cluster.kubeconfigPath,
            '--json',
            '--progress-interval',
            '1h',
            // The key rotated seconds ago: measure the sweep, not the settle wait.
            '--rotation-settle',
            '1ms',
            ...args,
          ],
          {
            env: {
              PATH: process.env.PATH ?? '',
              HOME: work,
              ALIBABA_CLOUD_ACCESS_KEY_ID: emulator.accessKeyId,
              ALIBABA_CLOUD_ACCESS_KEY_SECRET: emulator.accessKeySecret,
            },
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        );
        let stdout = '';
        let stderr = '';
        child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
        child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
        child.once('error', reject);
        child.once('close', (code) => {
          if (code !== 0) {
            reject(new Error(`reencrypt exited ${code}: ${stderr}\n${stdout}`));
            return;
          }
          resolve({
            wallSeconds: Number(process.hrtime.bigint() - started) / 1e9,
            peakRssMiB: Number(readFileSync(rssFile, 'utf8')) / 1024,
            summary: JSON.parse(stdout) as Measured['summary'],
          });
        });
      });

    const print = (label: string, measured: Measured, count: number): void => {
      const rate = count / measured.summary.durationSeconds;
      process.stdout.write(
        `${label.padEnd(34)} ${String(count).padStart(6)} Secrets in ${measured.summary.durationSeconds.toFixed(1)}s sweep (${measured.wallSeconds.toFixed(1)}s process) = ${rate.toFixed(0)}/s, peak RSS ${measured.peakRssMiB.toFixed(1)} MiB\n`,
      );
    };

    const seedStarted = Date.now();
    await createSecrets(cluster.kubeConfig(), specs.slice(0, SMALL));
    const smallScan = await sweep(['--dry-run', '--qps', QPS]);
    print('dry-run scan', smallScan, SMALL);
    await createSecrets(cluster.kubeConfig(), specs.slice(SMALL));
    process.stdout.write(
      `seeded ${SECRETS} stale Secrets in ${((Date.now() - seedStarted) / 1000).toFixed(1)}s (create time, not part of the sweep)\n`,
    );
    const fullScan = await sweep(['--dry-run', '--qps', QPS]);
    print('dry-run scan', fullScan, SECRETS);
    const rewrite = await sweep(['--qps', QPS, '--concurrency', CONCURRENCY]);
    print(`rewrite (qps ${QPS}, concurrency ${CONCURRENCY})`, rewrite, SECRETS);
    if (rewrite.summary.rewritten !== SECRETS || rewrite.summary.failed !== 0) {
      throw new Error(`expected ${SECRETS} rewritten, got ${JSON.stringify(rewrite.summary)}`);
    }
    const verify = await sweep(['--dry-run', '--qps', QPS]);
    print('verify (nothing stale)', verify, SECRETS);
    process.stdout.write(
      `${JSON.stringify({
        bench: 'reencrypt',
        secrets: SECRETS,
        qps: Number(QPS),
        concurrency: Number(CONCURRENCY),
        scanPerSecond: Math.round(SECRETS / fullScan.summary.durationSeconds),
        rewritePerSecond: Math.round(SECRETS / rewrite.summary.durationSeconds),
        peakRssMiB: {
          [`scan${SMALL}`]: Math.round(smallScan.peakRssMiB),
          [`scan${SECRETS}`]: Math.round(fullScan.peakRssMiB),
          [`rewrite${SECRETS}`]: Math.round(rewrite.peakRssMiB),
        },
      })}\n`,
    );
  } finally {
    await emulator.close();
    await cluster.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
