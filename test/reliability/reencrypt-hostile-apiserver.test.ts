// `reencrypt` against a hostile API server: a fake kube-apiserver over real HTTPS on
// 127.0.0.1 that sends endless or huge lists, drips bytes, cycles continue tokens, smuggles
// Secret data into metadata-only lists and answers errors with raw bodies. The built CLI
// runs as a child process with the Job's NODE_OPTIONS (manifests/reencrypt/job.yaml), so the
// memory bounds are the ones the pod meets. Every loop here is bounded by counts.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { parse as parseYaml } from 'yaml';
import { startEmulator } from '../../src/emulator/index.js';
import { KEY_ID_ANNOTATION, KEY_VERSION_ANNOTATION } from '../../src/reencrypt/plan.js';
import { createSecretMetadataClient } from '../../src/reencrypt/kube-client.js';
import { DEFAULT_REQUEST_DEADLINE_MS } from '../../src/reencrypt/limits.js';
import { resolveKubeconfig } from '../../src/reencrypt/kubeconfig.js';
import { FakeClock } from '../helpers/clock.js';
import { emulatorKmsFlags } from '../helpers/emulator.js';
import { CLI_PATH, missingBuild } from '../helpers/reliability.js';
import { unreachableKubeconfig } from '../helpers/reencrypt.js';
import { makeCertDir } from '../helpers/server.js';

const skip = missingBuild() ?? false;
// Seven CLI runs of a few seconds each on a loaded 2-core machine: more than the default.
t.setTimeout(300_000);
const MiB = 1024 * 1024;
/** The Job's memory limit; the child runs with the Job's NODE_OPTIONS. */
const JOB_LIMIT_BYTES = 512 * MiB;
const JOB_NODE_OPTIONS = jobNodeOptions();
const CANARY = 'hostile-canary-7f3a9c';

function jobNodeOptions(): string {
  const job = parseYaml(
    readFileSync(new URL('../../manifests/reencrypt/job.yaml', import.meta.url), 'utf8'),
  ) as {
    spec: {
      template: {
        spec: { containers: { env?: { name: string; value?: string }[] }[] };
      };
    };
  };
  const env = job.spec.template.spec.containers[0]?.env ?? [];
  return env.find((entry) => entry.name === 'NODE_OPTIONS')?.value ?? '';
}

type Handler = (request: IncomingMessage, response: ServerResponse, url: URL) => void;

interface Hostile {
  handler: Handler;
  requests: string[];
  /** Body bytes written by the list handlers (what left the server, not what was read). */
  bytesSent: number;
  patched: string[];
}

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Peak resident set size (VmHWM) seen while it ran. */
  peakRss: number;
  summary: Record<string, unknown> | undefined;
}

const certs = await makeCertDir();
t.teardown(() => certs.cleanup());
const emulator = await startEmulator({ keys: [''] });
t.teardown(() => emulator.close());
const keyId = emulator.keyIds[0] ?? '';

const hostile: Hostile = {
  handler: (_request, response) => {
    response.writeHead(500).end();
  },
  requests: [],
  bytesSent: 0,
  patched: [],
};
const server: Server = createServer(
  { cert: readFileSync(certs.certFile), key: readFileSync(certs.keyFile) },
  (request, response) => {
    const url = new URL(request.url ?? '/', 'https://127.0.0.1');
    hostile.requests.push(`${request.method ?? ''} ${url.pathname}${url.search}`);
    // Cut the whole exchange when the client goes away (no writes into a dead socket).
    response.on('close', () => request.destroy());
    hostile.handler(request, response, url);
  },
);
await new Promise<void>((resolve) => {
  server.listen(0, '127.0.0.1', resolve);
});
t.teardown(
  () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => {
        resolve();
      });
    }),
);
const apiServer = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
const { dir: home } = unreachableKubeconfig(t, 'ksg-hostile-apiserver-');
const kubeconfigPath = join(home, 'hostile.kubeconfig.json');
writeFileSync(
  kubeconfigPath,
  JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      { name: 'h', cluster: { server: apiServer, 'certificate-authority': certs.caFile } },
    ],
    users: [{ name: 'u', user: { token: 'hostile-test-token' } }],
    contexts: [{ name: 'h', context: { cluster: 'h', user: 'u' } }],
    'current-context': 'h',
  }),
);

function reset(handler: Handler): void {
  hostile.handler = handler;
  hostile.requests = [];
  hostile.bytesSent = 0;
  hostile.patched = [];
}

/**
 * Peak RSS (VmHWM) of the CLI process. Samples taken before the child exec'd node (still
 * the forked copy of this test process) are ignored: they would count the test's memory.
 */
function peakRssOf(pid: number): number | undefined {
  try {
    if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(CLI_PATH)) return undefined;
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match?.[1] === undefined ? undefined : Number(match[1]) * 1024;
  } catch {
    return undefined;
  }
}

/** Runs the built `reencrypt` with the Job's NODE_OPTIONS; kills it after `limitMs` (a failure). */
async function runReencrypt(extra: string[], limitMs = 90_000): Promise<CliRun> {
  // Through env(1): tap adds its process-info loader to NODE_OPTIONS of every child it
  // sees spawned (≈ 190 MiB more RSS); env sets the Job's NODE_OPTIONS for node itself.
  const child = spawn(
    '/usr/bin/env',
    [
      `NODE_OPTIONS=${JOB_NODE_OPTIONS}`,
      process.execPath,
      CLI_PATH,
      'reencrypt',
      ...emulatorKmsFlags(emulator, keyId),
      '--kubeconfig',
      kubeconfigPath,
      '--json',
      // The emulator's key was just created (its rotation time): no settle wait in these runs.
      '--rotation-settle',
      '1ms',
      ...extra,
    ],
    {
      env: {
        PATH: process.env.PATH ?? '',
        HOME: home,
        ALIBABA_CLOUD_ACCESS_KEY_ID: emulator.accessKeyId,
        ALIBABA_CLOUD_ACCESS_KEY_SECRET: emulator.accessKeySecret,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  let peakRss = 0;
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, peakRssOf(child.pid ?? -1) ?? 0);
  }, 25);
  const killer = setTimeout(() => {
    child.kill('SIGKILL');
  }, limitMs);
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  clearInterval(sampler);
  clearTimeout(killer);
  let summary: Record<string, unknown> | undefined;
  try {
    summary = JSON.parse(stdout) as Record<string, unknown>;
  } catch {
    summary = undefined;
  }
  return { code, stdout, stderr, peakRss, summary };
}

function json(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  hostile.bytesSent += Buffer.byteLength(text);
  response.writeHead(status, { 'Content-Type': 'application/json' }).end(text);
}

function item(name: string, annotations: Record<string, string>, extra: object = {}): object {
  return {
    kind: 'PartialObjectMetadata',
    apiVersion: 'meta.k8s.io/v1',
    metadata: { name, namespace: 'team', resourceVersion: '7', annotations },
    ...extra,
  };
}

const stale = { [KEY_ID_ANNOTATION]: keyId, [KEY_VERSION_ANNOTATION]: 'an-older-version' };

function listOf(items: object[], continueToken?: string): object {
  return {
    kind: 'PartialObjectMetadataList',
    apiVersion: 'meta.k8s.io/v1',
    metadata: {
      resourceVersion: '7',
      ...(continueToken !== undefined && { continue: continueToken }),
    },
    items,
  };
}

/** Answers PATCH like the API server (metadata back) and records who was patched. */
function patchOk(request: IncomingMessage, response: ServerResponse, url: URL): void {
  const name = decodeURIComponent(url.pathname.split('/').at(-1) ?? '');
  hostile.patched.push(name);
  request.resume();
  request.on('end', () => {
    json(response, 200, item(name, { [KEY_ID_ANNOTATION]: keyId }));
  });
}

/**
 * Writes `head`, then `next()` chunks with backpressure, until `next()` returns undefined
 * (end of the body), the client goes away, or `maxBytes` were sent in all.
 */
function stream(
  response: ServerResponse,
  head: string,
  next: () => string | undefined,
  maxBytes: number,
): void {
  response.writeHead(200, { 'Content-Type': 'application/json' });
  let chunk: string | undefined = head;
  const write = (): void => {
    while (!response.destroyed && hostile.bytesSent < maxBytes) {
      if (chunk === undefined) {
        response.end();
        return;
      }
      hostile.bytesSent += chunk.length;
      const flushed = response.write(chunk);
      chunk = next();
      if (!flushed) {
        response.once('drain', write);
        return;
      }
    }
    if (!response.destroyed) response.destroy();
  };
  write();
}

function expectSummary(tt: Test, run: CliRun): Record<string, unknown> {
  tt.comment(`peak RSS of this run: ${Math.round(run.peakRss / MiB)} MiB`);
  tt.ok(run.summary !== undefined, `a JSON summary on stdout (stderr: ${run.stderr.slice(-400)})`);
  return run.summary ?? {};
}

t.test(
  'a list that never ends (chunked) trips the byte cap: clear error, summary, bounded RSS',
  { skip },
  async (t) => {
    const bigValue = 'v'.repeat(250_000);
    let index = 0;
    reset((_request, response) => {
      stream(
        response,
        '{"kind":"PartialObjectMetadataList","apiVersion":"meta.k8s.io/v1","metadata":{},"items":[',
        () =>
          `${JSON.stringify(item(`s-${index++}`, { 'kubectl.kubernetes.io/last-applied-configuration': bigValue }))},`,
        // A stand-in for 5 GB: far beyond the cap, never reached.
        1024 * MiB,
      );
    });
    const run = await runReencrypt(['--dry-run']);
    const summary = expectSummary(t, run);
    t.equal(run.code, 1, 'exit 1');
    t.match(
      String(summary.fatalError),
      /larger than 32 MiB.*--page-size/,
      'the error names --page-size as the remedy',
    );
    t.match(run.stderr, /stopped: .*--page-size/, 'and says so on stderr');
    t.equal(
      hostile.requests.length,
      1,
      'not retried: a smaller page is the fix, not the same request again',
    );
    t.ok(
      hostile.bytesSent < 48 * MiB,
      `the server could send only ≈ the cap (${Math.round(hostile.bytesSent / MiB)} MiB of 1024)`,
    );
    t.ok(
      run.peakRss > 0 && run.peakRss < JOB_LIMIT_BYTES * 0.6,
      `peak RSS ${Math.round(run.peakRss / MiB)} MiB, under 60 % of the Job's 512 Mi`,
    );
  },
);

t.test(
  '500 Secrets × 250 kB annotations: the default page size fits the Job; --page-size 500 is refused clearly',
  { skip },
  async (t) => {
    const bigValue = 'a'.repeat(250_000);
    const total = 500;
    reset((_request, response, url) => {
      const limit = Number(url.searchParams.get('limit') ?? total);
      const start = Number(url.searchParams.get('continue') ?? 0);
      const end = Math.min(total, start + limit);
      let at = start;
      stream(
        response,
        `{"kind":"PartialObjectMetadataList","apiVersion":"meta.k8s.io/v1","metadata":{${end < total ? `"continue":"${end}","remainingItemCount":${total - end}` : ''}},"items":[`,
        () => {
          if (at > end) return undefined;
          if (at === end) {
            at += 1;
            return ']}';
          }
          const name = `s-${String(at).padStart(4, '0')}`;
          at += 1;
          return `${at > start + 1 ? ',' : ''}${JSON.stringify(item(name, { 'kubectl.kubernetes.io/last-applied-configuration': bigValue }))}`;
        },
        Number.MAX_SAFE_INTEGER,
      );
    });
    const fits = await runReencrypt(['--dry-run']);
    const summary = expectSummary(t, fits);
    t.equal(fits.code, 0, `exit 0 (stderr: ${fits.stderr.slice(-300)})`);
    t.equal(summary.scanned, total, 'every Secret scanned');
    t.equal(hostile.requests.length, 10, 'in 10 pages of the default 50');
    // Each page is still parsed whole (its text and its tree): ≈ 200–230 MiB on Node 20,
    // 290–310 MiB on Node 24, whose heap grows further before it collects.
    t.ok(
      fits.peakRss > 0 && fits.peakRss < JOB_LIMIT_BYTES * 0.75,
      `peak RSS ${Math.round(fits.peakRss / MiB)} MiB, under 75 % of the Job's 512 Mi`,
    );
    t.comment(`default page size: peak RSS ${Math.round(fits.peakRss / MiB)} MiB`);

    hostile.requests = [];
    const tooBig = await runReencrypt(['--dry-run', '--page-size', '500']);
    const refused = expectSummary(t, tooBig);
    t.equal(tooBig.code, 1, 'exit 1');
    t.match(String(refused.fatalError), /page of 500 Secrets|a page of 500/, 'names the page');
    t.match(String(refused.fatalError), /smaller --page-size \(e\.g\. 125\)/, 'and the remedy');
    t.ok(
      tooBig.peakRss < JOB_LIMIT_BYTES * 0.6,
      `peak RSS ${Math.round(tooBig.peakRss / MiB)} MiB`,
    );
  },
);

t.test(
  'a server that sends 1 byte at a time trips the wall-clock deadline (not an idle timer)',
  { skip },
  async (t) => {
    const dripMs = 100;
    const perConnection: number[] = [];
    reset((_request, response) => {
      response.writeHead(200, { 'Content-Type': 'application/json' });
      const sent = perConnection.push(0) - 1;
      const timer = setInterval(() => {
        // Bounded: no connection gets more than 200 bytes, whatever the client does.
        if (response.destroyed || (perConnection[sent] ?? 0) >= 200) {
          clearInterval(timer);
          response.destroy();
          return;
        }
        perConnection[sent] = (perConnection[sent] ?? 0) + 1;
        response.write(' ');
      }, dripMs);
      response.on('close', () => {
        clearInterval(timer);
      });
    });
    const run = await runReencrypt(['--dry-run', '--request-timeout', '300ms']);
    const summary = expectSummary(t, run);
    t.equal(run.code, 1, 'exit 1');
    t.match(
      String(summary.fatalError),
      /no complete answer within 300 ms \(the deadline per request, --request-timeout\)/,
      'the deadline is named',
    );
    t.equal(hostile.requests.length, 5, 'five attempts (the retry budget), then stopped');
    t.ok(
      perConnection.every((bytes) => bytes <= 6),
      `each attempt cut after ≈ 300 ms of dripping although a byte came every ${dripMs} ms (${perConnection.join(', ')} bytes)`,
    );
  },
);

t.test('the default deadline is 60 s of wall clock per request', async (t) => {
  let dripping: NodeJS.Timeout | undefined;
  reset((_request, response) => {
    response.writeHead(200, { 'Content-Type': 'application/json' });
    response.write(' ');
    dripping = setInterval(() => {
      response.write(' ');
    }, 20);
    response.on('close', () => {
      clearInterval(dripping);
    });
  });
  t.teardown(() => {
    clearInterval(dripping);
  });
  const clock = new FakeClock();
  const { kubeConfig } = resolveKubeconfig({ kubeconfigPath, context: undefined, env: {} });
  const client = createSecretMetadataClient({
    kubeConfig,
    userAgent: 'hostile-test',
    maxSockets: 1,
    clock,
  });
  t.teardown(() => {
    client.close();
  });
  const listing = client.listPage({}, 10).then(
    () => 'answered',
    (error: unknown) => (error as Error).message,
  );
  for (let tries = 0; tries < 200 && clock.pending === 0; tries += 1) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  t.equal(DEFAULT_REQUEST_DEADLINE_MS, 60_000, 'the default is 60 s');
  t.equal(
    clock.nextDelay(),
    DEFAULT_REQUEST_DEADLINE_MS,
    'one timer, set when the request starts, for 60 s',
  );
  await clock.advance(DEFAULT_REQUEST_DEADLINE_MS - 1);
  t.equal(clock.pending, 1, 'bytes arriving do not move it');
  await clock.advance(1);
  t.match(await listing, /no complete answer within 60000 ms/, 'at 60 s the request is cut');
});

t.test(
  'a repeated or cycling continue token ends the sweep with a clear error',
  { skip },
  async (t) => {
    // A → B → A: three pages of one new stale Secret each, then the token comes round again.
    const next: Record<string, string> = { '': 'A', A: 'B', B: 'A' };
    const names: Record<string, string> = { '': 's-0', A: 's-1', B: 's-2' };
    reset((request, response, url) => {
      if (request.method === 'PATCH') {
        patchOk(request, response, url);
        return;
      }
      if (hostile.requests.length > 50) {
        json(response, 500, {});
        return;
      }
      const token = url.searchParams.get('continue') ?? '';
      json(response, 200, listOf([item(names[token] ?? 'x', stale)], next[token]));
    });
    const cycling = await runReencrypt([]);
    const summary = expectSummary(t, cycling);
    t.equal(cycling.code, 1, 'exit 1');
    t.match(String(summary.fatalError), /continue token it had sent before/, 'the error says why');
    t.same([...hostile.patched].sort(), ['s-0', 's-1', 's-2'], 'each Secret patched exactly once');
    t.equal(
      hostile.requests.filter((line) => line.startsWith('GET')).length,
      3,
      'three list calls, no fourth',
    );

    // Fresh tokens every time, but always the same page: the list is not advancing.
    let round = 0;
    reset((request, response, url) => {
      if (request.method === 'PATCH') {
        patchOk(request, response, url);
        return;
      }
      if (hostile.requests.length > 50) {
        json(response, 500, {});
        return;
      }
      round += 1;
      json(response, 200, listOf([item('s-0', stale)], `t${round}`));
    });
    const stuck = await runReencrypt([]);
    const stuckSummary = expectSummary(t, stuck);
    t.match(
      String(stuckSummary.fatalError),
      /not advancing/,
      'a page of Secrets already handled ends it',
    );
    t.same(hostile.patched, ['s-0'], 'the Secret was patched once, not 236 times');
    t.equal(round, 2, 'two list calls');
  },
);

t.test(
  'list items that carry data or stringData are refused, never kept or shown',
  { skip },
  async (t) => {
    const encoded = Buffer.from(CANARY).toString('base64');
    reset((request, response, url) => {
      if (request.method === 'PATCH') {
        patchOk(request, response, url);
        return;
      }
      json(
        response,
        200,
        listOf([
          item('a-clean', stale),
          item('b-with-data', stale, { data: { password: encoded } }),
          item('c-with-string-data', stale, { stringData: { password: CANARY } }),
        ]),
      );
    });
    const run = await runReencrypt([]);
    const summary = expectSummary(t, run);
    t.equal(summary.refused, 2, 'two refused');
    t.equal(summary.failed, 2, 'counted as failures');
    t.equal(summary.rewritten, 1, 'the clean one rewritten');
    t.same(hostile.patched, ['a-clean'], 'a refused Secret is never patched');
    t.match(
      run.stderr,
      /failed team\/b-with-data: the API server sent this Secret with its data/,
      'named, with the reason',
    );
    t.notMatch(
      run.stdout + run.stderr,
      new RegExp(`${CANARY}|${encoded}`),
      'the data appears nowhere in the output',
    );
    t.equal(run.code, 1, 'exit 1');
  },
);

t.test(
  'error bodies: only the status and a Status message reach the output',
  { skip },
  async (t) => {
    reset((_request, response) => {
      const body = `<html><body>proxy error; token=${CANARY}</body></html>`;
      // 400: not retried, so one request shows it (a 5xx body is handled the same way).
      response.writeHead(400, { 'Content-Type': 'text/html' }).end(body);
    });
    const raw = await runReencrypt(['--dry-run']);
    const summary = expectSummary(t, raw);
    t.match(
      String(summary.fatalError),
      /HTTP 400: \(the answer was not a Kubernetes Status; its body is not shown\)/,
      'status only',
    );
    t.notMatch(raw.stdout + raw.stderr, new RegExp(CANARY), 'the raw body appears nowhere');

    reset((_request, response) => {
      json(response, 403, { kind: 'NotStatus', message: CANARY, items: [CANARY] });
    });
    const notStatus = await runReencrypt(['--dry-run']);
    t.notMatch(
      notStatus.stdout + notStatus.stderr,
      new RegExp(CANARY),
      'a JSON body that is not a Status is not shown either',
    );
    t.equal(hostile.requests.length, 1, '403 is not retried');

    reset((_request, response) => {
      json(response, 403, {
        kind: 'Status',
        apiVersion: 'v1',
        status: 'Failure',
        message: 'secrets is forbidden: User "x" cannot list resource "secrets"',
        reason: 'Forbidden',
        code: 403,
      });
    });
    const status = await runReencrypt(['--dry-run']);
    t.match(
      String(expectSummary(t, status).fatalError),
      /HTTP 403: secrets is forbidden: User "x" cannot list/,
      "a Status message is shown (it is the API server's explanation)",
    );
  },
);
