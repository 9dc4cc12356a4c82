/**
 * Reliability test helpers: a checker that mirrors the kube-apiserver's webhook response
 * validation, a full in-process stack (KMS emulator + real monitor + server), a `serve`
 * child process with a heap probe, bounded load generation and fault timelines.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import jsonPatch from 'fast-json-patch';
import { createKmsClient } from '../../src/kms/client.js';
import { createKeyMonitor, type KeyMonitor } from '../../src/kms/monitor.js';
import { createLogger, type Logger } from '../../src/logging/logger.js';
import { createMetrics } from '../../src/server/metrics.js';
import { startServer, type RunningServer } from '../../src/server/serve.js';
import { generateCertificates } from '../../src/certs/generate.js';
import type { RunningEmulator } from '../../src/emulator/index.js';
import type { ServeSettings } from '../../src/config/settings.js';
import { withEmulator, type KmsSdkClient } from './emulator.js';
import { makeCertDir, serveSettings, type CertDir } from './server.js';
import { httpsCall, type HttpCallOptions } from './http.js';

// ---------------------------------------------------------------------------------------------
// kube-apiserver response checks
// ---------------------------------------------------------------------------------------------

export type Webhook = 'validate' | 'mutate';

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** k8s.io/apimachinery IsQualifiedName without a prefix (the API server adds `<webhook>/`). */
export const AUDIT_ANNOTATION_KEY = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

/**
 * Mirrors k8s.io/apiserver .../webhook/request/admissionreview.go VerifyAdmissionResponse
 * (v1) plus the dispatchers' checks of patchType, warnings and auditAnnotations. Returns
 * every problem found (empty: the API server would accept the answer).
 */
export function kubeApiserverProblems(
  body: unknown,
  requestUid: string,
  webhook: Webhook,
): string[] {
  const problems: string[] = [];
  if (!isRecord(body)) return ['the body is not a JSON object'];
  if (body.apiVersion !== 'admission.k8s.io/v1' || body.kind !== 'AdmissionReview') {
    problems.push(
      `expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got ${String(body.apiVersion)}, Kind=${String(body.kind)}`,
    );
  }
  const response = body.response;
  if (!isRecord(response)) return [...problems, 'webhook response was absent'];
  if (response.uid !== requestUid) {
    problems.push(`expected response.uid=${requestUid}, got ${String(response.uid)}`);
  }
  if (typeof response.allowed !== 'boolean') problems.push('response.allowed is not a boolean');
  if (response.status !== undefined) {
    if (!isRecord(response.status)) problems.push('response.status is not an object');
    else if (response.status.code !== undefined && !Number.isInteger(response.status.code)) {
      problems.push('response.status.code is not an integer');
    }
  }
  const patch = response.patch;
  const patchType = response.patchType;
  if (patch !== undefined && typeof patch !== 'string') problems.push('response.patch not base64');
  const hasPatch = typeof patch === 'string' && patch.length > 0;
  const hasPatchType = typeof patchType === 'string' && patchType.length > 0;
  if (hasPatch && !hasPatchType) {
    problems.push('webhook returned response.patch but not response.patchType');
  }
  if (webhook === 'validate' && hasPatch)
    problems.push('validating webhook may not return response.patch');
  if (webhook === 'validate' && hasPatchType) {
    problems.push('validating webhook may not return response.patchType');
  }
  if (hasPatchType && patchType !== 'JSONPatch') {
    problems.push(`webhook returned invalid response.patchType of ${patchType}`);
  }
  // Stricter than the API server (which tolerates it): a patchType must come with a patch.
  if (hasPatchType && !hasPatch) problems.push('response.patchType without response.patch');
  if (hasPatch && response.allowed !== true) problems.push('a denial carries a patch');
  if (hasPatch) {
    const decoded = Buffer.from(patch, 'base64');
    if (decoded.toString('base64') !== patch)
      problems.push('response.patch is not canonical base64');
    try {
      const operations: unknown = JSON.parse(decoded.toString('utf8'));
      if (!Array.isArray(operations)) problems.push('response.patch is not a JSON array');
    } catch {
      problems.push('response.patch is not JSON');
    }
  }
  if (response.warnings !== undefined) {
    if (!Array.isArray(response.warnings)) problems.push('response.warnings is not an array');
    else {
      for (const warning of response.warnings) {
        if (typeof warning !== 'string') problems.push('a warning is not a string');
        else if (warning.length >= 120) problems.push(`a warning is ${warning.length} chars`);
      }
    }
  }
  if (response.auditAnnotations !== undefined) {
    if (!isRecord(response.auditAnnotations)) problems.push('auditAnnotations not an object');
    else {
      for (const [key, value] of Object.entries(response.auditAnnotations)) {
        if (!AUDIT_ANNOTATION_KEY.test(key)) problems.push(`invalid audit annotation key ${key}`);
        if (typeof value !== 'string') problems.push(`audit annotation ${key} is not a string`);
      }
    }
  }
  return problems;
}

/**
 * Applies the answer's JSON Patch to the request object as the API server would (validated).
 * Returns a problem description, or undefined when there is no patch or it applies.
 */
export function patchProblem(requestObject: unknown, body: unknown): string | undefined {
  if (!isRecord(body) || !isRecord(body.response)) return undefined;
  const patch = body.response.patch;
  if (typeof patch !== 'string' || patch === '') return undefined;
  if (!isRecord(requestObject)) return 'a patch for a request without an object';
  try {
    const operations = JSON.parse(Buffer.from(patch, 'base64').toString('utf8')) as Parameters<
      typeof jsonPatch.applyPatch
    >[1];
    // A JSON round trip copies (structuredClone overflows the stack on deeply nested input).
    const copy = JSON.parse(JSON.stringify(requestObject)) as unknown;
    for (const operation of operations) {
      // fast-json-patch silently "adds" to a string or number parent; Go's json-patch (the API
      // server's) refuses: require a container parent like it does.
      const segments = operation.path
        .split('/')
        .slice(1)
        .map((segment) => segment.replace(/~1/g, '/').replace(/~0/g, '~'));
      let parent: unknown = copy;
      for (const segment of segments.slice(0, -1)) {
        parent =
          isRecord(parent) || Array.isArray(parent)
            ? (parent as Record<string, unknown>)[segment]
            : undefined;
      }
      if (segments.length > 0 && (typeof parent !== 'object' || parent === null)) {
        return `the patch ${operation.op}s ${operation.path} under ${parent === null ? 'null' : `a ${typeof parent}`}`;
      }
      jsonPatch.applyOperation(copy, operation, true, true);
    }
    return undefined;
  } catch (error) {
    return `the patch does not apply: ${error instanceof Error ? error.name : 'error'}`;
  }
}

/**
 * Sends a body the server refuses early (413). The server answers and closes while the
 * client still writes, so the kernel may reset the socket before the answer is read: retry a
 * few times, then report the reset code as the status text.
 */
export async function postOversized(
  url: string,
  options: HttpCallOptions,
  attempts = 5,
): Promise<{ status: number; body: string; reset?: string }> {
  let reset = '';
  for (let attempt = 0; attempt < attempts; attempt += 1) {
    try {
      const answer = await httpsCall(url, options);
      return { status: answer.status, body: answer.body };
    } catch (error) {
      reset = String((error as { code?: string }).code ?? error);
      if (reset !== 'EPIPE' && reset !== 'ECONNRESET') break;
    }
  }
  return { status: -1, body: '', reset };
}

// ---------------------------------------------------------------------------------------------
// In-process stack: emulator + real monitor + server
// ---------------------------------------------------------------------------------------------

interface TestLike {
  teardown(fn: () => unknown): void;
}

export interface Stack {
  readonly emulator: RunningEmulator;
  readonly sdk: KmsSdkClient;
  readonly keyId: string;
  readonly monitor: KeyMonitor;
  readonly server: RunningServer;
  readonly certs: CertDir;
  readonly settings: ServeSettings;
}

export interface StackOptions {
  readonly refreshIntervalMs?: number;
  readonly maxStalenessMs?: number;
  readonly readTimeoutMs?: number;
  readonly connectTimeoutMs?: number;
  readonly logger?: Logger;
  readonly onUnknown?: 'allow' | 'deny';
  readonly emulator?: { statePath?: string; port?: number };
}

/** The real thing minus the CLI: the SDK talks to the emulator over loopback, HTTPS in front. */
export async function startStack(t: TestLike, options: StackOptions = {}): Promise<Stack> {
  const { emulator, sdk, keyId } = await withEmulator(t, options.emulator ?? {});
  const certs = await makeCertDir();
  t.teardown(() => certs.cleanup());
  const settings = serveSettings(certs, {
    kms: { keyId, regionId: emulator.regionId, endpoint: emulator.endpoint, protocol: 'http' },
    monitor: {
      refreshIntervalMs: options.refreshIntervalMs ?? 200,
      maxStalenessMs: options.maxStalenessMs ?? 1_000,
    },
    onUnknown: options.onUnknown ?? 'allow',
    logLevel: 'silent',
  });
  const logger = options.logger ?? createLogger('silent');
  const metrics = createMetrics();
  const monitor = createKeyMonitor({
    kms: settings.kms,
    monitor: settings.monitor,
    logger,
    api: createKmsClient(settings.kms, {
      credential: { accessKeyId: emulator.accessKeyId, accessKeySecret: emulator.accessKeySecret },
      readTimeoutMs: options.readTimeoutMs ?? 500,
      connectTimeoutMs: options.connectTimeoutMs ?? 500,
    }),
    onKmsCall: metrics.onKmsCall,
  });
  monitor.start();
  t.teardown(() => monitor.stop());
  await monitor.firstLookup;
  const server = await startServer({ settings, logger, monitor, metrics, host: '127.0.0.1' });
  t.teardown(() => server.close());
  return { emulator, sdk, keyId, monitor, server, certs, settings };
}

// ---------------------------------------------------------------------------------------------
// `serve` as a child process (built CLI), with a heap probe
// ---------------------------------------------------------------------------------------------

export const CLI_PATH = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

/** Why a process-level test cannot run, or undefined when the built CLI is there. */
export function missingBuild(): string | undefined {
  return existsSync(CLI_PATH) ? undefined : 'dist/cli/main.js is missing: run `npm run build`';
}

// Loaded with --import into the child only: on SIGUSR2 it collects garbage and appends the
// heap figures to a file, so the test measures heap after GC without a debug endpoint.
const HEAP_PROBE = `
import { appendFileSync } from 'node:fs';
const file = process.env.RELIABILITY_HEAP_FILE;
if (file && typeof globalThis.gc === 'function') {
  process.on('SIGUSR2', () => {
    globalThis.gc();
    globalThis.gc();
    const m = process.memoryUsage();
    appendFileSync(file, JSON.stringify({ heapUsed: m.heapUsed, rss: m.rss, at: Date.now() }) + '\\n');
  });
}
`;

export interface ServeChild {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly admissionUrl: string;
  readonly healthUrl: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Everything the child wrote to stdout and stderr so far (read from its output file). */
  output(): string;
  /** Forces GC in the child and returns heap used after it (bytes). */
  heapAfterGc(): Promise<{ heapUsed: number; rss: number }>;
}

/**
 * The shell line a child is started with when it needs a descriptor limit, or must run
 * without tap's instrumentation: tap adds `--import` of its process-info hooks to the
 * NODE_OPTIONS of every child it sees spawned (~28 MB of resident memory in `serve`), so a
 * test that measures memory sets NODE_OPTIONS in the shell, after tap's last word.
 */
function shellPrelude(openFilesLimit: number, bare: boolean): string | undefined {
  const steps = [
    ...(openFilesLimit > 0 ? [`ulimit -n ${openFilesLimit}`] : []),
    ...(bare
      ? ['export NODE_OPTIONS="$KSG_BARE_NODE_OPTIONS"', 'unset KSG_BARE_NODE_OPTIONS']
      : []),
  ];
  return steps.length === 0 ? undefined : `${steps.join(' && ')} && exec "$0" "$@"`;
}

/**
 * Starts `node --expose-gc [nodeArgs] dist/cli/main.js serve` with `env`; its stdout and stderr go to a
 * file (every byte kept for scanning, none buffered in the test); waits for the listening line.
 * `bare`: without tap's instrumentation (for memory measurements; see shellPrelude).
 */
export async function spawnServe(
  t: TestLike,
  env: Record<string, string>,
  {
    startTimeoutMs = 20_000,
    openFilesLimit = 0,
    nodeArgs = [] as readonly string[],
    bare = false,
  } = {},
): Promise<ServeChild> {
  const dir = await mkdtemp(join(tmpdir(), 'ksg-reliability-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const probe = join(dir, 'heap-probe.mjs');
  const heapFile = join(dir, 'heap.jsonl');
  const outputFile = join(dir, 'output.log');
  await writeFile(probe, HEAP_PROBE);
  const outputFd = openSync(outputFile, 'a');
  let child: ChildProcess;
  try {
    const args = ['--expose-gc', '--import', probe, ...nodeArgs, CLI_PATH, 'serve'];
    // With a prelude, a shell runs it and then becomes node (same pid).
    const prelude = shellPrelude(openFilesLimit, bare);
    const [command, commandArgs] =
      prelude === undefined
        ? [process.execPath, args]
        : ['/bin/sh', ['-c', prelude, process.execPath, ...args]];
    child = spawn(command, commandArgs, {
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? tmpdir(),
        RELIABILITY_HEAP_FILE: heapFile,
        ...env,
        ...(bare ? { KSG_BARE_NODE_OPTIONS: env.NODE_OPTIONS ?? '' } : {}),
      },
      stdio: ['ignore', outputFd, outputFd],
    });
  } finally {
    closeSync(outputFd);
  }
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not start the serve child process');
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      resolve({ code, signal });
    });
  });
  const state = { exited: false };
  void exited.then(() => {
    state.exited = true;
  });
  t.teardown(async () => {
    if (state.exited) return;
    child.kill('SIGKILL');
    await exited;
  });
  const output = (): string => (existsSync(outputFile) ? readFileSync(outputFile, 'utf8') : '');

  let urls: { admissionUrl: string; healthUrl: string } | undefined;
  const deadline = Date.now() + startTimeoutMs;
  while (urls === undefined) {
    if (state.exited) throw new Error(`serve exited during start-up:\n${output()}`);
    if (Date.now() > deadline) throw new Error(`serve did not start in time:\n${output()}`);
    for (const line of output().split('\n')) {
      if (!line.includes('webhook listening')) continue;
      const parsed = JSON.parse(line) as { admissionUrl?: string; healthUrl?: string };
      if (parsed.admissionUrl !== undefined && parsed.healthUrl !== undefined) {
        urls = { admissionUrl: parsed.admissionUrl, healthUrl: parsed.healthUrl };
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }

  const heapAfterGc = async (): Promise<{ heapUsed: number; rss: number }> => {
    const before = existsSync(heapFile) ? readFileSync(heapFile, 'utf8').split('\n').length : 0;
    child.kill('SIGUSR2');
    for (let attempt = 0; attempt < 200; attempt += 1) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      if (!existsSync(heapFile)) continue;
      const lines = readFileSync(heapFile, 'utf8').split('\n');
      const last = lines.filter((line) => line.trim() !== '').at(-1);
      if (lines.length > before && last !== undefined) {
        return JSON.parse(last) as { heapUsed: number; rss: number };
      }
    }
    throw new Error('the heap probe did not answer');
  };

  return { child, pid, ...urls, exited, output, heapAfterGc };
}

/** Resident set size of a process from /proc (bytes), or undefined off Linux. */
export function residentBytes(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return match?.[1] === undefined ? undefined : Number(match[1]) * 1024;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Certificates rotated on disk, kubelet style (write aside, then rename over)
// ---------------------------------------------------------------------------------------------

/** Replaces tls.crt/tls.key with a fresh pair signed by a new CA; returns the new CA. */
export async function rotateCertificate(certs: CertDir): Promise<string> {
  const generated = await generateCertificates({
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
  });
  const certTmp = `${certs.certFile}.tmp`;
  const keyTmp = `${certs.keyFile}.tmp`;
  await writeFile(certTmp, generated.cert);
  await writeFile(keyTmp, generated.key);
  await rename(keyTmp, certs.keyFile);
  await rename(certTmp, certs.certFile);
  return generated.caCert;
}

// ---------------------------------------------------------------------------------------------
// Bounded load and timelines
// ---------------------------------------------------------------------------------------------

/** A record of the key states set during a test, to judge answers against. */
export class StateTimeline {
  readonly #changes: { at: number; state: string }[] = [];
  constructor(initial: string, at = Date.now()) {
    this.#changes.push({ at, state: initial });
  }
  set(state: string, at = Date.now()): void {
    this.#changes.push({ at, state });
  }
  /** True when `state` held at some moment within [from, to]. */
  heldDuring(state: string, from: number, to: number): boolean {
    for (let index = 0; index < this.#changes.length; index += 1) {
      const change = this.#changes[index];
      if (change === undefined) continue;
      const end = this.#changes[index + 1]?.at ?? Number.POSITIVE_INFINITY;
      if (change.state === state && change.at <= to && end >= from) return true;
    }
    return false;
  }
}

/** Runs `worker` on `concurrency` parallel lanes until `durationMs` passed (each lane awaits). */
export async function runLoad(
  durationMs: number,
  concurrency: number,
  worker: (lane: number, iteration: number) => Promise<void>,
): Promise<number> {
  const stopAt = Date.now() + durationMs;
  let total = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, lane) => {
      for (let iteration = 0; Date.now() < stopAt && iteration < 1_000_000; iteration += 1) {
        await worker(lane, iteration);
        total += 1;
      }
    }),
  );
  return total;
}
