#!/usr/bin/env node
/**
 * Summarizes a V8 .cpuprofile (from `node --cpu-prof`): self time by function and by
 * package, so the hot spots of the webhook show without a GUI.
 *
 *   node bench/profile-summary.js bench/profiles/CPU.*.cpuprofile [--top 40]
 */
import { readFileSync } from 'node:fs';

function where(url) {
  if (url === '') return '(native)';
  const modules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (modules) return modules[1];
  if (url.startsWith('node:')) return 'node:internal';
  const dist = /\/(dist|src|bench)\/(.+)$/.exec(url);
  return dist ? `${dist[1]}/${dist[2]}` : url;
}

export function summarizeProfile(profile) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfMicros = new Map();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let index = 0; index < samples.length; index += 1) {
    const id = samples[index];
    selfMicros.set(id, (selfMicros.get(id) ?? 0) + Math.max(0, deltas[index] ?? 0));
  }
  const functions = new Map();
  const packages = new Map();
  let total = 0;
  for (const [id, micros] of selfMicros) {
    const frame = byId.get(id)?.callFrame;
    if (frame === undefined) continue;
    total += micros;
    const name = `${frame.functionName || '(anonymous)'} ${where(frame.url)}:${frame.lineNumber + 1}`;
    functions.set(name, (functions.get(name) ?? 0) + micros);
    const pkg =
      frame.url === ''
        ? frame.functionName || '(native)'
        : where(frame.url).replace(/\/.*$/, (m) => (where(frame.url).startsWith('dist') ? m : ''));
    packages.set(pkg, (packages.get(pkg) ?? 0) + micros);
  }
  const sorted = (map) => [...map.entries()].sort((a, b) => b[1] - a[1]);
  return { totalMicros: total, functions: sorted(functions), packages: sorted(packages) };
}

if (process.argv[1]?.endsWith('profile-summary.js') === true) {
  const args = process.argv.slice(2);
  const topIndex = args.indexOf('--top');
  const top = topIndex >= 0 ? Number(args[topIndex + 1]) : 40;
  const files = args.filter((arg, index) => arg !== '--top' && index !== topIndex + 1);
  for (const file of files) {
    const summary = summarizeProfile(JSON.parse(readFileSync(file, 'utf8')));
    const pct = (micros) => `${((100 * micros) / summary.totalMicros).toFixed(1).padStart(5)}%`;
    process.stdout.write(
      `${file}: ${(summary.totalMicros / 1e6).toFixed(2)} s sampled\n\nself time by package / area:\n`,
    );
    for (const [name, micros] of summary.packages.slice(0, 25)) {
      process.stdout.write(
        `${pct(micros)} ${(micros / 1000).toFixed(0).padStart(7)} ms  ${name}\n`,
      );
    }
    process.stdout.write('\nself time by function:\n');
    for (const [name, micros] of summary.functions.slice(0, top)) {
      process.stdout.write(
        `${pct(micros)} ${(micros / 1000).toFixed(0).padStart(7)} ms  ${name}\n`,
      );
    }
  }
}
