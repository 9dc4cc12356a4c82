#!/usr/bin/env node
/**
 * Interleaved A/B of two (or more) builds of the webhook: each ROOT is a copy of the tree
 * with its own `dist/` (e.g. `b=$(mktemp -d) && cp -r src package.json tsconfig*.json "$b" &&
 * ln -s "$PWD/node_modules" "$b/" && (cd "$b" && npx tsc -p tsconfig.build.json)`). Every
 * repetition starts each build's `serve` afresh (order alternating), warms it up, then
 * measures /validate and /mutate at concurrency 10: server CPU per request, requests/s, p50,
 * p99 and peak RSS.
 *
 *   node bench/ab.js . "$b"            (BENCH_REPS, default 6; BENCH_DURATION_MS, default 2500)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  cpuSeconds,
  load,
  log,
  peakRssMiB,
  pinRunner,
  serverNodeArgs,
  prepareFiles,
  startKmsEmulator,
  startWebhook,
  stopProcess,
} from './harness.js';

import { stats } from './report.js';

// The load generators this process starts inherit its CPUs: keep them off the server's.
pinRunner();

const roots = process.argv.slice(2).map((root) => resolve(root));
if (roots.length < 2) {
  process.stderr.write('usage: node bench/ab.js ROOT_A ROOT_B [ROOT…]\n');
  process.exit(2);
}
const REPS = Number(process.env.BENCH_REPS ?? 6);
const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 2500);
const PATHS = ['/validate', '/mutate'];

const work = mkdtempSync(join(tmpdir(), 'ksg-ab-'));
const { files } = await prepareFiles(work);
const emulator = await startKmsEmulator();
const samples = new Map(roots.map((root) => [root, { rss: [] }]));
try {
  for (let rep = 0; rep < REPS; rep += 1) {
    for (const root of rep % 2 === 0 ? roots : [...roots].reverse()) {
      const server = await startWebhook({
        files,
        emulator,
        keyId: emulator.keyIds[0],
        logFile: join(work, 'webhook.log'),
        refreshIntervalSeconds: 5,
        cli: join(root, 'dist', 'cli', 'main.js'),
        nodeArgs: serverNodeArgs(),
      });
      try {
        for (const path of PATHS) {
          await load({
            url: `${server.url}${path}`,
            bodyFile: files.small,
            caFile: files.ca,
            concurrency: 10,
            durationMs: 1000,
          });
        }
        for (const path of PATHS) {
          const before = cpuSeconds(server.pid);
          const result = await load({
            url: `${server.url}${path}`,
            bodyFile: files.small,
            caFile: files.ca,
            concurrency: 10,
            durationMs: DURATION_MS,
            warmupMs: 300,
          });
          const cpuMicros =
            ((cpuSeconds(server.pid) - before) * 1e6) /
            Math.max(1, result.requests + result.warmupRequests);
          const entry = samples.get(root);
          (entry[path] ??= []).push({ cpuMicros, ...result });
        }
        samples.get(root).rss.push(peakRssMiB(server.pid));
      } finally {
        await stopProcess(server.child);
      }
    }
    log(`repetition ${rep + 1}/${REPS} done`);
  }
} finally {
  await emulator.close();
  rmSync(work, { recursive: true, force: true });
}
const fmt = (values, digits = 0) => {
  const s = stats(values);
  return `${s.mean.toFixed(digits)} ± ${s.sd.toFixed(digits)} (min ${s.min.toFixed(digits)})`;
};
for (const [root, entry] of samples) {
  for (const path of PATHS) {
    const runs = entry[path];
    log(
      `${root} ${path}: CPU ${fmt(runs.map((r) => r.cpuMicros))} µs/req · ${fmt(runs.map((r) => r.rps))} req/s · p50 ${fmt(
        runs.map((r) => r.latencyMs.p50),
        2,
      )} ms · p99 ${fmt(
        runs.map((r) => r.latencyMs.p99),
        2,
      )} ms`,
    );
  }
  log(`${root} peak RSS ${fmt(entry.rss, 1)} MiB`);
}
