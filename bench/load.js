#!/usr/bin/env node
/**
 * Closed-loop HTTPS load generator (its own process, so it never shares a core's event loop
 * with the server it measures). `concurrency` workers each send one request, wait for the
 * whole answer, record its latency with process.hrtime.bigint, and go again until the
 * duration or the request cap is reached. Latencies are kept as sorted samples (a run is
 * bounded, so all samples fit) and reported with microsecond resolution.
 *
 *   node bench/load.js '{"url":"https://127.0.0.1:8443/validate","bodyFile":"review.json",
 *     "caFile":"ca.pem","concurrency":10,"durationMs":2000,"warmupMs":500}'
 *
 * Options (one JSON argument): url (127.0.0.1 or ::1 only), bodyFile, caFile, concurrency,
 * durationMs, maxRequests (default 1e6), warmupMs (requests sent first, not recorded),
 * keepAlive (default true; false = a new TLS connection per request, no session resumption).
 * Prints one JSON line: requests, errors, seconds, rps, latency percentiles in ms.
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';

const HARD_MAX_REQUESTS = 5_000_000;
const HARD_MAX_DURATION_MS = 120_000;

/** @param {number[]} sorted @param {number} q */
function quantile(sorted, q) {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[index];
}

/** @param {number} value */
function round3(value) {
  return Math.round(value * 1000) / 1000;
}

export function parseOptions(json) {
  const raw = JSON.parse(json);
  const url = new URL(raw.url);
  if (url.hostname !== '127.0.0.1' && url.hostname !== '[::1]') {
    throw new Error(`load.js only targets loopback (127.0.0.1 or ::1), got ${url.hostname}`);
  }
  const concurrency = Math.max(1, Math.min(1000, Number(raw.concurrency ?? 1)));
  return {
    url,
    body: readFileSync(raw.bodyFile),
    ca: raw.caFile === undefined ? undefined : readFileSync(raw.caFile),
    concurrency,
    durationMs: Math.min(HARD_MAX_DURATION_MS, Number(raw.durationMs ?? 2000)),
    maxRequests: Math.min(HARD_MAX_REQUESTS, Number(raw.maxRequests ?? 1_000_000)),
    warmupMs: Math.min(HARD_MAX_DURATION_MS, Number(raw.warmupMs ?? 0)),
    keepAlive: raw.keepAlive !== false,
  };
}

/** One POST; resolves with the status code once the whole answer has arrived. */
function send(options, agent) {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        agent,
        hostname: options.url.hostname.replace(/^\[|\]$/g, ''),
        port: options.url.port,
        path: options.url.pathname,
        method: 'POST',
        ca: options.ca,
        servername: '',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json',
          'content-length': options.body.length,
        },
      },
      (res) => {
        let bytes = 0;
        res.on('data', (chunk) => {
          bytes += chunk.length;
        });
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, bytes });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/**
 * Runs workers until `until` (hrtime ns) or `maxRequests`; records latencies when `record`.
 * @returns {Promise<{latencies: number[], statuses: Record<string, number>, errors: number, firstError: string | undefined, requests: number}>}
 */
async function phase(options, agent, until, maxRequests, record) {
  const latencies = [];
  const statuses = {};
  let errors = 0;
  let firstError;
  let started = 0;
  const worker = async () => {
    while (started < maxRequests && process.hrtime.bigint() < until) {
      started += 1;
      const t0 = process.hrtime.bigint();
      try {
        const { status } = await send(options, agent);
        const elapsedMs = Number(process.hrtime.bigint() - t0) / 1e6;
        if (record) latencies.push(elapsedMs);
        statuses[status] = (statuses[status] ?? 0) + 1;
        if (status !== 200) errors += 1;
      } catch (error) {
        errors += 1;
        firstError ??= error instanceof Error ? error.message : String(error);
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  return { latencies, statuses, errors, firstError, requests: started };
}

export async function runLoad(options) {
  const agent = new Agent({
    keepAlive: options.keepAlive,
    maxSockets: options.concurrency,
    // kube-apiserver's Go client keeps no TLS session cache: every new connection is a
    // full handshake, so the benchmark resumes none either.
    maxCachedSessions: 0,
  });
  try {
    let warmupRequests = 0;
    if (options.warmupMs > 0) {
      const until = process.hrtime.bigint() + BigInt(Math.round(options.warmupMs * 1e6));
      warmupRequests = (await phase(options, agent, until, options.maxRequests, false)).requests;
    }
    const t0 = process.hrtime.bigint();
    const until = t0 + BigInt(Math.round(options.durationMs * 1e6));
    const measured = await phase(options, agent, until, options.maxRequests, true);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const sorted = measured.latencies.sort((a, b) => a - b);
    const mean = sorted.reduce((sum, value) => sum + value, 0) / Math.max(1, sorted.length);
    return {
      requests: measured.requests,
      warmupRequests,
      completed: sorted.length,
      errors: measured.errors,
      ...(measured.firstError !== undefined ? { firstError: measured.firstError } : {}),
      statuses: measured.statuses,
      seconds: round3(seconds),
      rps: round3((measured.statuses[200] ?? 0) / seconds),
      latencyMs: {
        mean: round3(mean),
        p50: round3(quantile(sorted, 0.5)),
        p90: round3(quantile(sorted, 0.9)),
        p99: round3(quantile(sorted, 0.99)),
        max: round3(quantile(sorted, 1)),
      },
    };
  } finally {
    agent.destroy();
  }
}

if (process.argv[1]?.endsWith('load.js') === true) {
  const argument = process.argv[2];
  if (argument === undefined) {
    process.stderr.write('usage: node bench/load.js \'{"url":…,"bodyFile":…}\'\n');
    process.exitCode = 2;
  } else {
    const result = await runLoad(parseOptions(argument));
    process.stdout.write(`${JSON.stringify(result)}\n`);
  }
}
