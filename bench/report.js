/**
 * Aggregates the repetitions of bench/run.js (mean, sample standard deviation, min–max,
 * ratios paired per repetition), checks the goals (GOALS, explained in bench/RESULTS.md) and
 * renders bench/RESULTS.md.
 */

const MB = 1e6;
const MIB = 1024 * 1024;
export const GOALS = {
  validateRatio: 0.9,
  validateP99Ms: 1.5,
  mutateRatio: 0.85,
  /** /validate ÷ ceiling requests/s at concurrency 1 (the Go client when it ran). */
  validateC1Ratio: 0.85,
  /** Webhook ÷ ceiling p99 in the open-loop tail phase (Go client, 10 workers). */
  tailP99Ratio: 1.3,
  bigP99Ms: 5,
  /** 1 MiB UPDATE p99 ÷ 2 KB CREATE p99, both /validate at concurrency 1, same client. */
  bigVsSmallP99Ratio: 1.5,
  peakRssMB: 120,
};

export function stats(values) {
  const finite = values.filter((value) => Number.isFinite(value));
  const n = finite.length;
  if (n === 0) return { mean: Number.NaN, sd: Number.NaN, min: Number.NaN, max: Number.NaN, n };
  const mean = finite.reduce((sum, value) => sum + value, 0) / n;
  const variance =
    n > 1 ? finite.reduce((sum, value) => sum + (value - mean) ** 2, 0) / (n - 1) : 0;
  return { mean, sd: Math.sqrt(variance), min: Math.min(...finite), max: Math.max(...finite), n };
}

function paired(webhook, ceiling, read) {
  const count = Math.min(webhook.length, ceiling.length);
  return stats(
    Array.from({ length: count }, (_, index) => read(webhook[index]) / read(ceiling[index])),
  );
}

function perVariant(runs, read) {
  return { webhook: stats(runs.webhook.map(read)), ceiling: stats(runs.ceiling.map(read)) };
}

/** One scenario (an entry of each run's `section`) across the repetitions of both variants. */
function scenario(runs, pick) {
  const read = (field) => (run) => field(pick(run));
  return {
    rps: perVariant(
      runs,
      read((r) => r.rps),
    ),
    p50: perVariant(
      runs,
      read((r) => r.latencyMs.p50),
    ),
    p99: perVariant(
      runs,
      read((r) => r.latencyMs.p99),
    ),
    max: perVariant(
      runs,
      read((r) => r.latencyMs.max),
    ),
    cpuUs: perVariant(
      runs,
      read((r) => r.cpuMicrosPerRequest),
    ),
    rpsRatio: paired(
      runs.webhook,
      runs.ceiling,
      read((r) => r.rps),
    ),
    p99Ratio: paired(
      runs.webhook,
      runs.ceiling,
      read((r) => r.latencyMs.p99),
    ),
    cpuRatio: paired(
      runs.webhook,
      runs.ceiling,
      read((r) => r.cpuMicrosPerRequest),
    ),
    clientCpuShare: perVariant(
      runs,
      read((r) => r.clientCpuShare),
    ),
    connections: perVariant(
      runs,
      read((r) => r.connections),
    ),
    probe: probeSummary(runs, pick),
  };
}

/** bench/probe.js per scenario: event-loop delay and GC pauses, per variant. */
function probeSummary(runs, pick) {
  const per = (read) =>
    perVariant(runs, (run) => {
      const entry = pick(run);
      return entry.probe === undefined ? Number.NaN : read(entry.probe, entry);
    });
  const requests = (entry) => entry.requests + entry.warmupRequests;
  const gcMs = (probe) => Object.values(probe.gc).reduce((sum, kind) => sum + kind.totalMs, 0);
  return {
    eventLoopDelayP99Ms: per((probe) => probe.eventLoopDelayMs.p99),
    eventLoopDelayMaxMs: per((probe) => probe.eventLoopDelayMs.max),
    scavengesPer1000: per(
      (probe, entry) => ((probe.gc.scavenge?.count ?? 0) * 1000) / requests(entry),
    ),
    markCompacts: per((probe) => probe.gc.markCompact?.count ?? 0),
    gcUsPerRequest: per((probe, entry) => (gcMs(probe) * 1000) / requests(entry)),
    gcMaxPauseMs: per((probe) => Math.max(0, ...Object.values(probe.gc).map((kind) => kind.maxMs))),
  };
}

function scenarios(runs, section, paths, concurrencies) {
  if (!runs.webhook.every((run) => run[section] !== undefined)) return undefined;
  if (!runs.ceiling.every((run) => run[section] !== undefined)) return undefined;
  const out = {};
  for (const path of paths) {
    for (const concurrency of concurrencies) {
      const key = `${path} c${concurrency}`;
      out[key] = { path, concurrency, ...scenario(runs, (run) => run[section][key]) };
    }
  }
  return out;
}

export function summarize(runs, kms, { refreshIntervalSeconds, concurrencies, paths }) {
  const go = scenarios(runs, 'go', paths, concurrencies);
  const hasGo = go !== undefined;
  const tail = hasGo ? scenario(runs, (run) => run.tail) : undefined;
  const bigGo = hasGo ? scenario(runs, (run) => run.bigGo) : undefined;
  const keepAlive = scenarios(runs, 'keepAlive', paths, concurrencies);
  const handshake = {
    rps: perVariant(runs, (run) => run.handshake.rps),
    p50: perVariant(runs, (run) => run.handshake.latencyMs.p50),
    p99: perVariant(runs, (run) => run.handshake.latencyMs.p99),
    cpuUs: perVariant(runs, (run) => run.handshake.cpuMicrosPerRequest),
    rpsRatio: paired(runs.webhook, runs.ceiling, (run) => run.handshake.rps),
  };
  const big = {
    p50: perVariant(runs, (run) => run.big.latencyMs.p50),
    p99: perVariant(runs, (run) => run.big.latencyMs.p99),
    max: perVariant(runs, (run) => run.big.latencyMs.max),
    cpuUs: perVariant(runs, (run) => run.big.cpuMicrosPerRequest),
    requests: runs.webhook[0]?.big.completed ?? 0,
  };
  const rss = {
    nodeClient: perVariant(runs, (run) => (run.peakRssNodeClientMiB * MIB) / MB),
    keepAlive: perVariant(runs, (run) => (run.peakRssKeepAliveMiB * MIB) / MB),
    overall: perVariant(runs, (run) => (run.peakRssMiB * MIB) / MB),
  };
  const kmsRuns = kms.map((run) => {
    const allowedPolls = Math.ceil(run.seconds / refreshIntervalSeconds);
    return {
      ...run,
      allowedPolls,
      onAdmissionPath: Math.max(0, run.kmsCalls - allowedPolls),
      onlyDescribeKey: run.kmsCalls === run.describeKeyCalls,
    };
  });
  return {
    keepAlive,
    go,
    tail,
    bigGo,
    handshake,
    big,
    rss,
    kms: kmsRuns,
    refreshIntervalSeconds,
  };
}

function fixed(value, digits) {
  return Number.isFinite(value) ? value.toFixed(digits) : 'n/a';
}

/** "mean ± sd" with the digits a quantity deserves. */
export function fmt(stat, digits = 0) {
  return `${fixed(stat.mean, digits)} ± ${fixed(stat.sd, digits)}`;
}

function fmtRange(stat, digits = 2) {
  return `${fixed(stat.mean, digits)} (${fixed(stat.min, digits)}–${fixed(stat.max, digits)})`;
}

/** Goals measured with the Go client when it ran (else the Node one); `client` names it. */
function clientGoals(summary) {
  const small = summary.go?.['/validate c1'] ?? summary.keepAlive['/validate c1'];
  const client = summary.go !== undefined ? 'Go client' : 'Node client, no Go';
  const big = summary.bigGo ?? summary.big;
  const c1Ratio = small.rps.webhook.mean / small.rps.ceiling.mean;
  const bigVsSmall = big.p99.webhook.mean / small.p99.webhook.mean;
  const checked = [
    {
      name: `/validate ≥ ${GOALS.validateC1Ratio}× ceiling req/s at concurrency 1 (${client})`,
      pass: c1Ratio >= GOALS.validateC1Ratio,
      measured: `${fixed(c1Ratio, 3)}× (paired per repetition ${fmtRange(small.rpsRatio)}); server CPU ${fmt(small.cpuUs.webhook)} against ${fmt(small.cpuUs.ceiling)} µs/request`,
    },
  ];
  const tail = summary.tail;
  if (tail !== undefined) {
    const ratio = tail.p99.webhook.mean / tail.p99.ceiling.mean;
    checked.push({
      name: `/validate p99 ≤ ${GOALS.tailP99Ratio}× the ceiling's at concurrency 10 (Go client, open loop at a fixed rate)`,
      pass: ratio <= GOALS.tailP99Ratio,
      measured: `${fixed(ratio, 2)}× (${fmt(tail.p99.webhook, 3)} against ${fmt(tail.p99.ceiling, 3)} ms; paired per repetition ${fmtRange(tail.p99Ratio)})`,
    });
  } else {
    checked.push({
      name: `/validate p99 ≤ ${GOALS.tailP99Ratio}× the ceiling's at concurrency 10 (Go client, open loop at a fixed rate)`,
      pass: false,
      measured: `not measured: ${summary.goLoadgen?.missing ?? 'no Go load generator'}`,
    });
  }
  checked.push(
    {
      name: `1 MiB Secret UPDATE p99 ≤ ${GOALS.bigP99Ms} ms (${client})`,
      pass: big.p99.webhook.mean <= GOALS.bigP99Ms,
      measured: `${fmt(big.p99.webhook, 1)} ms (max ${fixed(big.p99.webhook.max, 1)}; the ceiling ${fmt(big.p99.ceiling, 1)})`,
    },
    {
      name: `1 MiB UPDATE p99 ≤ ${GOALS.bigVsSmallP99Ratio}× the 2 KB review's p99 at concurrency 1 (${client})`,
      pass: bigVsSmall <= GOALS.bigVsSmallP99Ratio,
      measured: `${fixed(bigVsSmall, 2)}× (${fixed(big.p99.webhook.mean, 2)} against ${fixed(small.p99.webhook.mean, 2)} ms)`,
    },
  );
  return checked;
}

export function goals(summary) {
  const validate = summary.keepAlive['/validate c10'];
  const mutate = summary.keepAlive['/mutate c10'];
  const ratio = (entry) => entry.rps.webhook.mean / entry.rps.ceiling.mean;
  // The RSS goal is the peak under the 2 KB keep-alive load; the 1 MiB reviews have their
  // own goal (p99), and their peak is reported next to it.
  const peakRss = summary.rss.keepAlive.webhook.max;
  const peakRssWithBig = summary.rss.overall.webhook.max;
  const onPath = summary.kms.reduce((sum, run) => sum + run.onAdmissionPath, 0);
  const admissions = summary.kms.reduce((sum, run) => sum + run.admissions, 0);
  const calls = summary.kms.reduce((sum, run) => sum + run.kmsCalls, 0);
  const polls = summary.kms.reduce((sum, run) => sum + run.expectedPolls, 0);
  return [
    {
      name: `/validate ≥ ${GOALS.validateRatio}× ceiling req/s at concurrency 10`,
      pass: ratio(validate) >= GOALS.validateRatio,
      measured: `${fixed(ratio(validate), 3)}× (paired per repetition ${fmtRange(validate.rpsRatio)})`,
    },
    {
      name: `/validate p99 ≤ ${GOALS.validateP99Ms} ms at concurrency 10`,
      pass: validate.p99.webhook.mean <= GOALS.validateP99Ms,
      measured: `${fmt(validate.p99.webhook, 3)} ms (max ${fixed(validate.p99.webhook.max, 3)})`,
    },
    {
      name: `/mutate ≥ ${GOALS.mutateRatio}× ceiling req/s at concurrency 10`,
      pass: ratio(mutate) >= GOALS.mutateRatio,
      measured: `${fixed(ratio(mutate), 3)}× (paired per repetition ${fmtRange(mutate.rpsRatio)})`,
    },
    ...clientGoals(summary),
    {
      name: `peak RSS under load ≤ ${GOALS.peakRssMB} MB (Node.js ${process.versions.node.split('.')[0]})`,
      pass: peakRss <= GOALS.peakRssMB,
      measured: `${fixed(peakRss, 1)} MB (highest VmHWM of ${summary.rss.keepAlive.webhook.n} webhook runs under the 2 KB keep-alive loads, ${fixed(summary.rss.nodeClient.webhook.max, 1)} MB before the Go client’s measured phases; ${fixed(peakRssWithBig, 1)} MB once the 1 MiB reviews have run too)`,
    },
    {
      name: 'zero KMS calls on the admission path',
      pass: onPath === 0 && summary.kms.every((run) => run.onlyDescribeKey),
      measured: `${calls} KMS calls (all DescribeKey: ${summary.kms.every((run) => run.onlyDescribeKey)}) while serving ${admissions} admissions; refresh polls expected ≈ ${fixed(polls, 1)} (serving time / ${summary.refreshIntervalSeconds} s); beyond the polls: ${onPath}`,
    },
  ];
}

const START = '<!-- bench:generated:start -->';
const END = '<!-- bench:generated:end -->';

function keepAliveTable(summary) {
  const rows = [
    '| scenario | webhook req/s | ceiling req/s | ratio (paired) | webhook p50 / p99 ms | ceiling p50 / p99 ms | server CPU µs/req webhook / ceiling |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const [key, entry] of Object.entries(summary.keepAlive)) {
    rows.push(
      `| ${key} | ${fmt(entry.rps.webhook)} | ${fmt(entry.rps.ceiling)} | ${fmtRange(entry.rpsRatio)} | ${fmt(entry.p50.webhook, 3)} / ${fmt(entry.p99.webhook, 3)} | ${fmt(entry.p50.ceiling, 3)} / ${fmt(entry.p99.ceiling, 3)} | ${fmt(entry.cpuUs.webhook)} / ${fmt(entry.cpuUs.ceiling)} |`,
    );
  }
  return rows.join('\n');
}

/** The Go client used nearly all of its core: that row measured the client as much as the server. */
const CLIENT_BOUND_SHARE = 0.9;
function clientBound(entry) {
  return (
    Math.max(entry.clientCpuShare.webhook.max, entry.clientCpuShare.ceiling.max) >=
    CLIENT_BOUND_SHARE
  );
}

function goTable(summary) {
  const rows = [
    '| scenario | webhook req/s | ceiling req/s | ratio (paired) | webhook p50 / p99 ms | ceiling p50 / p99 ms | p99 ratio (paired) | server CPU µs/req webhook / ceiling | Go client CPU share of its core webhook / ceiling | connections opened webhook / ceiling |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const [key, entry] of Object.entries(summary.go)) {
    rows.push(
      `| ${key} | ${fmt(entry.rps.webhook)} | ${fmt(entry.rps.ceiling)} | ${fmtRange(entry.rpsRatio)} | ${fmt(entry.p50.webhook, 3)} / ${fmt(entry.p99.webhook, 3)} | ${fmt(entry.p50.ceiling, 3)} / ${fmt(entry.p99.ceiling, 3)} | ${fmtRange(entry.p99Ratio)} | ${fmt(entry.cpuUs.webhook)} / ${fmt(entry.cpuUs.ceiling)} | ${fmt(entry.clientCpuShare.webhook, 2)} / ${fmt(entry.clientCpuShare.ceiling, 2)}${clientBound(entry) ? ' (client-bound)' : ''} | ${fmt(entry.connections.webhook)} / ${fmt(entry.connections.ceiling)} |`,
    );
  }
  return rows.join('\n');
}

/** Event-loop delay and GC (bench/probe.js) for the scenarios that explain the tail. */
function probeTable(rows) {
  const out = [
    '| scenario | server | p99 / max ms | event-loop delay p99 / max ms | scavenges per 1,000 requests | mark-compacts | GC µs per request | longest GC pause ms |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const [name, entry] of rows) {
    if (entry === undefined) continue;
    for (const variant of ['webhook', 'ceiling']) {
      const probe = entry.probe;
      out.push(
        `| ${name} | ${variant} | ${fmt(entry.p99[variant], 3)} / ${fmt(entry.max[variant], 1)} | ${fmt(probe.eventLoopDelayP99Ms[variant], 1)} / ${fmt(probe.eventLoopDelayMaxMs[variant], 1)} | ${fmt(probe.scavengesPer1000[variant], 1)} | ${fmt(probe.markCompacts[variant], 1)} | ${fmt(probe.gcUsPerRequest[variant], 1)} | ${fmt(probe.gcMaxPauseMs[variant], 2)} |`,
      );
    }
  }
  return out.join('\n');
}

function goSection(summary, settings) {
  if (summary.go === undefined) {
    return `Not measured in this run (${summary.goLoadgen?.missing ?? 'no Go load generator'}): scripts/loadgen.sh builds bench/loadgen with Go ≥ 1.24.`;
  }
  return [
    'bench/loadgen (Go net/http, configured like kube-apiserver’s webhook client: TLS ≥ 1.2, no session cache, HTTP/1.1 as for a Service-referenced webhook, up to 25 idle connections, `?timeout=10s`, the answer decoded), same servers, same pinning, closed loop:',
    '',
    goTable(summary),
    '',
    `Tail phase: /validate, ${settings.tailConcurrency} workers, open loop at ${settings.tailRate} requests/s (a request due while every worker was busy counts from when it was due, so a stall also delays the requests queued behind it):`,
    '',
    '| | p50 ms | p99 ms | max ms | server CPU µs/req |',
    '|---|---|---|---|---|',
    `| webhook | ${fmt(summary.tail.p50.webhook, 3)} | ${fmt(summary.tail.p99.webhook, 3)} | ${fmt(summary.tail.max.webhook, 1)} | ${fmt(summary.tail.cpuUs.webhook)} |`,
    `| ceiling | ${fmt(summary.tail.p50.ceiling, 3)} | ${fmt(summary.tail.p99.ceiling, 3)} | ${fmt(summary.tail.max.ceiling, 1)} | ${fmt(summary.tail.cpuUs.ceiling)} |`,
    `| ratio | | ${fmtRange(summary.tail.p99Ratio)} | | |`,
    '',
    'Inside the servers (bench/probe.js: `monitorEventLoopDelay` at 10 ms resolution, GC pauses from `PerformanceObserver`), per phase:',
    '',
    probeTable([
      ['tail (open loop)', summary.tail],
      ['/validate c1', summary.go['/validate c1']],
      ['/validate c10', summary.go['/validate c10']],
      ['1 MiB UPDATE c1', summary.bigGo],
    ]),
  ].join('\n');
}

function reencryptSection(reencrypt) {
  if (reencrypt.missing) {
    return 'bench/reencrypt.ts is missing: the sweep was not measured.';
  }
  if (reencrypt.skipped) {
    return 'Skipped in this run (BENCH_QUICK=1 or BENCH_REENCRYPT=0); a full `npm run bench` runs bench/reencrypt.ts.';
  }
  if (reencrypt.error !== undefined) {
    return `bench/reencrypt.ts failed in this run:\n\n\`\`\`\n${reencrypt.error}\n\`\`\``;
  }
  const peak = Object.entries(reencrypt.peakRssMiB ?? {})
    .map(([name, mib]) => `${name}: ${mib} MiB`)
    .join(', ');
  return [
    `bench/reencrypt.ts against a real kube-apiserver + etcd (test/e2e/harness) and the KMS emulator, ${reencrypt.secrets} Secrets, --qps ${reencrypt.qps}, --concurrency ${reencrypt.concurrency} (one run, not repeated):`,
    '',
    '| measure | value |',
    '|---|---|',
    `| dry-run scan | ${reencrypt.scanPerSecond} Secrets/s |`,
    `| rewrite sweep | ${reencrypt.rewritePerSecond} Secrets/s |`,
    `| peak RSS of the CLI process | ${peak} |`,
    '',
    '```',
    ...(reencrypt.lines ?? []),
    '```',
  ].join('\n');
}

function encryptionSection(encryption) {
  if (encryption === undefined || encryption.missing) {
    return 'bench/encryption.ts is missing: encryption at rest was not measured.';
  }
  if (encryption.skipped) {
    return 'Skipped in this run (BENCH_QUICK=1 or BENCH_ENCRYPTION=0); a full `npm run bench` runs bench/encryption.ts.';
  }
  if (encryption.error !== undefined) {
    return `bench/encryption.ts failed in this run:\n\n\`\`\`\n${encryption.error}\n\`\`\``;
  }
  const row = (mode) => {
    const m = encryption.summary[mode];
    const kms =
      m.encryptPer1000Writes === undefined
        ? ''
        : `${m.encryptPer1000Writes} / ${m.decryptPer1000Writes} / ${m.describeKeyPer1000Writes}`;
    const cpu = (name) => m.cpuMsPerWrite?.[name] ?? '';
    return `| ${mode} | ${m.createsPerSecond} | ${m.p50Ms} | ${m.p99Ms} | ${cpu('kube-apiserver')} | ${cpu('etcd')} | ${cpu('kms-plugin')} | ${kms} |`;
  };
  const paired =
    encryption.pairedRatios === undefined
      ? `${encryption.ratio}×`
      : `${encryption.ratio}×, the median of the repetitions' ratios (${encryption.pairedRatios.join(', ')}; ratio of the medians ${encryption.ratioOfMedians}×)`;
  return [
    `bench/encryption.ts: Secret creates through a real kube-apiserver + etcd (test/e2e/harness), ${encryption.writes} writes per measurement at concurrency ${encryption.concurrency}, ${encryption.reps} interleaved repetitions (fresh cluster each, on every CPU, medians):`,
    '',
    '| Secrets stored with | creates/s | p50 ms | p99 ms | CPU ms/write: kube-apiserver | etcd | kms-plugin | KMS Encrypt / Decrypt / DescribeKey per 1,000 writes |',
    '|---|---|---|---|---|---|---|---|',
    row('kms-plugin'),
    row('aesgcm'),
    row('identity'),
    '',
    `kms-plugin ÷ aesgcm throughput: ${paired} (goal ≥ 0.9×). kube-apiserver CPU per write: ${encryption.apiServerCpuRatio ?? '?'}× aesgcm's. DescribeKey comes from the plugin's key monitor (1 s refresh interval in the harness), not from the writes.`,
    '',
    '```',
    ...(encryption.lines ?? []),
    '```',
  ].join('\n');
}

export function renderGenerated({
  machine,
  settings,
  summary,
  goals: checked,
  reencrypt,
  encryption,
}) {
  const k = summary.kms;
  return [
    START,
    `## Latest run (${settings.date}${settings.label ? `, ${settings.label}` : ''})`,
    '',
    `Machine: ${machine.nproc} CPUs (nproc), ${machine.model}, ${machine.memoryGiB} GiB RAM, Linux ${machine.kernel}, Node.js ${machine.node}.`,
    `Settings: ${settings.reps} repetitions per variant (server restarted every time, order alternating), ${settings.durationMs} ms measured per phase after ${settings.warmupMs} ms warm-up (and, after each start, ${settings.serverWarmupMs} ms each of /validate and /mutate at concurrency 10 and of /validate at concurrency 1, with each client, not measured), AdmissionReview of ${settings.reviewBytes} bytes${settings.quick ? ', BENCH_QUICK=1' : ''}${settings.profile ? ', webhook under --cpu-prof' : ''}${settings.nodeArgs ? `, both servers started with \`node ${settings.nodeArgs}\` (the Deployment's NODE_OPTIONS)` : ''}${settings.pinned ? ', each server pinned to CPU 0 and the load generator to the other CPUs (taskset)' : ', no CPU pinning'}; wall time ${settings.wallSeconds} s.`,
    'Values are mean ± sample standard deviation over the repetitions; ratios are webhook ÷ ceiling per repetition, shown as mean (min–max).',
    '',
    '### Goals',
    '',
    '| goal | result | measured |',
    '|---|---|---|',
    ...checked.map(
      (goal) => `| ${goal.name} | **${goal.pass ? 'PASS' : 'FAIL'}** | ${goal.measured} |`,
    ),
    '',
    '### Keep-alive HTTPS, 2 KB Secret CREATE review (bench/load.js, Node client)',
    '',
    keepAliveTable(summary),
    '',
    '### Through a Go client shaped like kube-apiserver’s webhook client',
    '',
    goSection(summary, settings),
    '',
    '### 1 MiB Secret UPDATE review (object + oldObject), /validate, concurrency 1',
    '',
    `${summary.big.requests} requests of ${(settings.bigReviewBytes / MIB).toFixed(2)} MiB per repetition.`,
    '',
    '| | p50 ms | p99 ms | max ms | server CPU µs/req |',
    '|---|---|---|---|---|',
    `| webhook | ${fmt(summary.big.p50.webhook, 1)} | ${fmt(summary.big.p99.webhook, 1)} | ${fmt(summary.big.max.webhook, 1)} | ${fmt(summary.big.cpuUs.webhook)} |`,
    `| ceiling | ${fmt(summary.big.p50.ceiling, 1)} | ${fmt(summary.big.p99.ceiling, 1)} | ${fmt(summary.big.max.ceiling, 1)} | ${fmt(summary.big.cpuUs.ceiling)} |`,
    ...(summary.bigGo === undefined
      ? []
      : [
          `| webhook, Go client | ${fmt(summary.bigGo.p50.webhook, 1)} | ${fmt(summary.bigGo.p99.webhook, 1)} | ${fmt(summary.bigGo.max.webhook, 1)} | ${fmt(summary.bigGo.cpuUs.webhook)} |`,
          `| ceiling, Go client | ${fmt(summary.bigGo.p50.ceiling, 1)} | ${fmt(summary.bigGo.p99.ceiling, 1)} | ${fmt(summary.bigGo.max.ceiling, 1)} | ${fmt(summary.bigGo.cpuUs.ceiling)} |`,
        ]),
    '',
    `### New connections (no keep-alive, no TLS session resumption), concurrency ${settings.handshakeConcurrency}`,
    '',
    '| | handshakes (requests)/s | p50 ms | p99 ms | server CPU µs/connection |',
    '|---|---|---|---|---|',
    `| webhook | ${fmt(summary.handshake.rps.webhook)} | ${fmt(summary.handshake.p50.webhook, 2)} | ${fmt(summary.handshake.p99.webhook, 2)} | ${fmt(summary.handshake.cpuUs.webhook)} |`,
    `| ceiling | ${fmt(summary.handshake.rps.ceiling)} | ${fmt(summary.handshake.p50.ceiling, 2)} | ${fmt(summary.handshake.p99.ceiling, 2)} | ${fmt(summary.handshake.cpuUs.ceiling)} |`,
    `| ratio | ${fmtRange(summary.handshake.rpsRatio)} | | | |`,
    '',
    '### Peak RSS (VmHWM of the server process, MB = 10⁶ bytes)',
    '',
    '| | after the Node client’s keep-alive phases | after the Go client’s too | after the 1 MiB reviews too |',
    '|---|---|---|---|',
    `| webhook | ${fmt(summary.rss.nodeClient.webhook, 1)} (max ${fixed(summary.rss.nodeClient.webhook.max, 1)}) | ${fmt(summary.rss.keepAlive.webhook, 1)} (max ${fixed(summary.rss.keepAlive.webhook.max, 1)}) | ${fmt(summary.rss.overall.webhook, 1)} (max ${fixed(summary.rss.overall.webhook.max, 1)}) |`,
    `| ceiling | ${fmt(summary.rss.nodeClient.ceiling, 1)} (max ${fixed(summary.rss.nodeClient.ceiling.max, 1)}) | ${fmt(summary.rss.keepAlive.ceiling, 1)} (max ${fixed(summary.rss.keepAlive.ceiling.max, 1)}) | ${fmt(summary.rss.overall.ceiling, 1)} (max ${fixed(summary.rss.overall.ceiling.max, 1)}) |`,
    '',
    `### KMS calls while serving (emulator request counter, refresh interval ${summary.refreshIntervalSeconds} s)`,
    '',
    '| repetition | admissions served | serving time s | KMS calls (DescribeKey) | expected refresh polls (time ÷ interval) | beyond the polls |',
    '|---|---|---|---|---|---|',
    ...k.map(
      (run, index) =>
        `| ${index + 1} | ${run.admissions} | ${fixed(run.seconds, 1)} | ${run.kmsCalls} (${run.describeKeyCalls}) | ${fixed(run.expectedPolls, 1)} | ${run.onAdmissionPath} |`,
    ),
    '',
    '### reencrypt sweep',
    '',
    reencryptSection(reencrypt),
    '',
    '### Secrets encrypted at rest: kms-plugin vs aesgcm vs identity',
    '',
    encryptionSection(encryption),
    END,
  ].join('\n');
}

/** Replaces the generated block of an existing RESULTS.md, keeping the hand-written rest. */
export function renderResults(data, existing) {
  const generated = renderGenerated(data);
  if (existing !== undefined) {
    const start = existing.indexOf(START);
    const end = existing.indexOf(END);
    if (start >= 0 && end > start) {
      return `${existing.slice(0, start)}${generated}${existing.slice(end + END.length)}`;
    }
  }
  return `# Benchmark results\n\n${generated}\n`;
}
