#!/usr/bin/env node
/**
 * `npm run bench:profile`: the webhook under `node --cpu-prof` while bench/load.js drives
 * /validate and /mutate at concurrency 10 (and, with BENCH_PROFILE_BIG=1, the 1 MiB UPDATE),
 * then prints the self-time summary of the profile (bench/profile-summary.js).
 * BENCH_PROFILE_TARGET=ceiling profiles bench/ceiling.js instead, for comparison;
 * BENCH_CONCURRENCY sets the concurrency of the 2 KB phases (default 10); BENCH_CLIENT=go drives
 * them with bench/loadgen (the client shaped like kube-apiserver's) instead of bench/load.js.
 * Profiles are kept in bench/profiles/ (git-ignored material: delete at will).
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BENCH_DIR,
  cpuSeconds,
  goLoadgen,
  load,
  loadGo,
  log,
  peakRssMiB,
  pinRunner,
  serverNodeArgs,
  prepareFiles,
  startCeiling,
  startKmsEmulator,
  startWebhook,
  stopProcess,
} from './harness.js';

import { summarizeProfile } from './profile-summary.js';

// The load generators this process starts inherit its CPUs: keep them off the server's.
pinRunner();

const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 5000);
const BIG = process.env.BENCH_PROFILE_BIG === '1';
const TARGET = process.env.BENCH_PROFILE_TARGET ?? 'webhook';
const go = process.env.BENCH_CLIENT === 'go' ? goLoadgen() : undefined;
if (go?.missing !== undefined) throw new Error(`BENCH_CLIENT=go: ${go.missing}`);
const client = go?.binary !== undefined ? (spec) => loadGo(go.binary, spec) : load;
const profileDir = join(BENCH_DIR, 'profiles');
mkdirSync(profileDir, { recursive: true });
const work = mkdtempSync(join(tmpdir(), 'ksg-profile-'));
const { files } = await prepareFiles(work);
const emulator = await startKmsEmulator();
const before = new Set(readdirSync(profileDir));
try {
  const server =
    TARGET === 'ceiling'
      ? await startCeiling(files, [...serverNodeArgs(), '--cpu-prof', '--cpu-prof-dir', profileDir])
      : await startWebhook({
          files,
          emulator,
          keyId: emulator.keyIds[0],
          logFile: join(work, 'webhook.log'),
          refreshIntervalSeconds: 5,
          profileDir,
          nodeArgs: serverNodeArgs(),
          // Another build to compare (e.g. a copy of the tree with a change): its dist/cli/main.js.
          ...(process.env.BENCH_CLI !== undefined ? { cli: process.env.BENCH_CLI } : {}),
        });
  try {
    const paths = BIG ? [] : ['/validate', '/mutate'];
    for (const path of paths) {
      const cpuBefore = cpuSeconds(server.pid);
      const result = await client({
        url: `${server.url}${path}`,
        bodyFile: files.small,
        caFile: files.ca,
        concurrency: Number(process.env.BENCH_CONCURRENCY ?? 10),
        durationMs: DURATION_MS,
        warmupMs: 500,
      });
      const cpuMicros =
        ((cpuSeconds(server.pid) - cpuBefore) * 1e6) / (result.requests + result.warmupRequests);
      log(
        `${TARGET} ${path} c${process.env.BENCH_CONCURRENCY ?? 10}: ${result.rps} req/s, p50 ${result.latencyMs.p50} ms, p99 ${result.latencyMs.p99} ms, server CPU ${cpuMicros.toFixed(0)} µs/request`,
      );
    }
    if (BIG) {
      const result = await load({
        url: `${server.url}/validate`,
        bodyFile: files.big,
        caFile: files.ca,
        concurrency: 1,
        durationMs: DURATION_MS,
        maxRequests: 200,
      });
      log(`1 MiB UPDATE: p50 ${result.latencyMs.p50} ms, p99 ${result.latencyMs.p99} ms`);
    }
    log(`peak RSS ${peakRssMiB(server.pid).toFixed(1)} MiB`);
  } finally {
    await stopProcess(server.child);
  }
} finally {
  await emulator.close();
  rmSync(work, { recursive: true, force: true });
}
const fresh = readdirSync(profileDir)
  .filter((name) => !before.has(name) && name.endsWith('.cpuprofile'))
  .map((name) => join(profileDir, name))
  .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
if (fresh[0] === undefined) throw new Error('the webhook wrote no .cpuprofile');
const summary = summarizeProfile(JSON.parse(readFileSync(fresh[0], 'utf8')));
const pct = (micros) => `${((100 * micros) / summary.totalMicros).toFixed(1).padStart(5)}%`;
log(`\n${fresh[0]}\nself time by package / area:`);
for (const [name, micros] of summary.packages.slice(0, 20)) log(`${pct(micros)}  ${name}`);
log('\nself time by function:');
for (const [name, micros] of summary.functions.slice(0, 35)) log(`${pct(micros)}  ${name}`);
