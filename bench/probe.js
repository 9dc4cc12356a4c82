/**
 * Loaded into both servers with `--import` (bench/run.js), so their tails can be explained:
 * an event-loop delay histogram (perf_hooks.monitorEventLoopDelay, 10 ms resolution, the
 * delay beyond each tick) and every GC pause (PerformanceObserver 'gc'). On SIGUSR2 it
 * writes what it saw since the last signal to BENCH_PROBE_FILE (JSON, written whole then
 * renamed) and starts afresh; the runner signals before and after each measured phase.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { constants, monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';

const file = process.env.BENCH_PROBE_FILE;
if (file !== undefined && file !== '') {
  const RESOLUTION_MS = 10;
  const delay = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  delay.enable();
  const KINDS = {
    [constants.NODE_PERFORMANCE_GC_MINOR]: 'scavenge',
    [constants.NODE_PERFORMANCE_GC_MAJOR]: 'markCompact',
    [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
    [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakCallbacks',
  };
  let gc = {};
  let pauses = [];
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = KINDS[entry.detail?.kind ?? entry.kind] ?? 'other';
      const slot = (gc[kind] ??= { count: 0, totalMs: 0, maxMs: 0 });
      slot.count += 1;
      slot.totalMs += entry.duration;
      slot.maxMs = Math.max(slot.maxMs, entry.duration);
      pauses.push(entry.duration);
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  let sequence = 0;
  process.on('SIGUSR2', () => {
    sequence += 1;
    const ms = (ns) => Math.round(ns / 1e3) / 1e3;
    // The histogram holds the whole time between two ticks: the delay is what exceeds the tick.
    const late = (ns) => Math.max(0, ms(ns) - RESOLUTION_MS);
    pauses.sort((a, b) => a - b);
    const report = {
      sequence,
      eventLoopDelayMs: {
        mean: late(delay.mean),
        p50: late(delay.percentile(50)),
        p99: late(delay.percentile(99)),
        max: late(delay.max),
        samples: delay.count,
      },
      gc,
      gcPausesOver1Ms: pauses.filter((pause) => pause > 1).length,
    };
    writeFileSync(`${file}.tmp`, JSON.stringify(report));
    renameSync(`${file}.tmp`, file);
    delay.reset();
    gc = {};
    pauses = [];
  });
}
