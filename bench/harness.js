/** Process plumbing shared by bench/run.js and bench/profile.js. */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { secretCreateReview, secretUpdateReview } from './reviews.js';

export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(BENCH_DIR, '..');
export const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/**
 * CPU pinning (BENCH_PIN, default on with 2+ CPUs and `taskset`): the server under test runs
 * on CPU 0 alone, as a pod with `limits.cpu: 1` would; the runner, the load generator and the
 * KMS emulator share the other CPUs, so the load generator never preempts the server it
 * measures. Both variants are pinned alike.
 */
export const PIN =
  process.env.BENCH_PIN !== '0' &&
  cpus().length >= 2 &&
  (() => {
    try {
      execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();

/** Moves this process (and so every load generator it starts later) off the server's CPU. */
export function pinRunner() {
  if (!PIN) return;
  execFileSync('taskset', ['-apc', `1-${cpus().length - 1}`, String(process.pid)], {
    stdio: 'ignore',
  });
}

/**
 * The Node.js flags the Deployment starts the webhook with (its NODE_OPTIONS), so the bench
 * measures the heap configuration that ships. BENCH_NODE_ARGS overrides them ('' for none).
 */
export function serverNodeArgs() {
  const override = process.env.BENCH_NODE_ARGS;
  if (override !== undefined) return override.split(' ').filter((arg) => arg !== '');
  const deployment = readFileSync(join(ROOT, 'manifests', 'base', 'deployment.yaml'), 'utf8');
  const match = /- name: NODE_OPTIONS\s+value: (.+)/.exec(deployment);
  if (match === null) throw new Error('manifests/base/deployment.yaml sets no NODE_OPTIONS');
  return match[1].trim().split(/\s+/);
}

/** The command line that starts a server process: on CPU 0 when pinning (taskset execs it, same pid). */
function serverCommand(args, pin = PIN) {
  return pin ? ['taskset', ['-c', '0', process.execPath, ...args]] : [process.execPath, args];
}

export function log(line) {
  process.stdout.write(`${line}\n`);
}

export function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

export const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

/** utime + stime of a process, in seconds. */
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** Peak resident set (VmHWM) in MiB. */
export function peakRssMiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /VmHWM:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) / 1024 : Number.NaN;
}

export function runNode(args, { timeoutMs = 180_000, env } = {}) {
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(env !== undefined ? { env } : {}),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) {
        reject(new Error(`node ${args[0]} exited ${code ?? signal}: ${stderr.slice(-2000)}`));
        return;
      }
      resolveRun({ stdout, stderr });
    });
  });
}

export async function load(spec) {
  const { stdout } = await runNode([join(BENCH_DIR, 'load.js'), JSON.stringify(spec)]);
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

/**
 * The Go load generator (bench/loadgen, built by scripts/loadgen.sh into .cache/loadgen/):
 * `{ binary }`, or `{ missing }` with the reason when Go is not installed or the build failed.
 */
export function goLoadgen() {
  try {
    const binary = execFileSync('bash', [join(ROOT, 'scripts', 'loadgen.sh')], {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
    return { binary };
  } catch (error) {
    const stderr = String(error?.stderr ?? '').trim();
    return { missing: stderr.split('\n').pop() || 'scripts/loadgen.sh failed' };
  }
}

/** One run of the Go load generator (same options and output as bench/load.js, see its header). */
export function loadGo(binary, spec) {
  return new Promise((resolveRun, reject) => {
    execFile(binary, [JSON.stringify(spec)], { timeout: 180_000 }, (error, stdout, stderr) => {
      if (error !== null) {
        reject(new Error(`loadgen failed: ${error.message} ${stderr.slice(-2000)}`));
        return;
      }
      const lines = stdout.trim().split('\n');
      resolveRun(JSON.parse(lines[lines.length - 1]));
    });
  });
}

/** Node.js flags and environment that load bench/probe.js into a server writing to `file`. */
export function probeOptions(file) {
  return {
    nodeArgs: ['--import', pathToFileURL(join(BENCH_DIR, 'probe.js')).href],
    env: { BENCH_PROBE_FILE: file },
  };
}

/**
 * What bench/probe.js saw in the server since the last call (event-loop delay, GC pauses):
 * signals it and waits for its report. Undefined when the server runs without the probe.
 */
export async function readProbe(server) {
  if (server.probeFile === undefined) return undefined;
  const last = server.probeSequence ?? 0;
  server.child.kill('SIGUSR2');
  const deadline = Date.now() + 5_000;
  for (;;) {
    try {
      const report = JSON.parse(readFileSync(server.probeFile, 'utf8'));
      if (report.sequence > last) {
        server.probeSequence = report.sequence;
        return report;
      }
    } catch {
      // not written yet
    }
    if (Date.now() > deadline) return undefined;
    await sleep(5);
  }
}

export async function stopProcess(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((done) => child.once('exit', done));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

export async function waitForHttp(url, ok, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const response = await fetch(url);
      if (ok(response.status)) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not become ready in ${timeoutMs} ms`);
    await sleep(50);
  }
}

/**
 * bench/ceiling.js as its own process. `stamp`: answer with the stamp patch (the end-to-end
 * bench's ceiling); `pin`: on CPU 0 like the component bench's servers (default PIN).
 */
export async function startCeiling(
  files,
  nodeArgs = [],
  extraEnv = {},
  { stamp = false, pin = PIN } = {},
) {
  const child = spawn(
    ...serverCommand(
      [
        ...nodeArgs,
        join(BENCH_DIR, 'ceiling.js'),
        JSON.stringify({ certFile: files.cert, keyFile: files.key, ...(stamp && { stamp }) }),
      ],
      pin,
    ),
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...extraEnv } },
  );
  const port = await new Promise((resolvePort, reject) => {
    let buffer = '';
    child.once('exit', (code) => reject(new Error(`ceiling exited ${code}`)));
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      buffer += chunk;
      const newline = buffer.indexOf('\n');
      if (newline >= 0) resolvePort(JSON.parse(buffer.slice(0, newline)).port);
    });
  });
  return { name: 'ceiling', child, pid: child.pid, url: `https://127.0.0.1:${port}` };
}

/**
 * `kms-secret-guard serve` from dist/ as its own process (it binds 0.0.0.0 like in a pod; the
 * load only ever goes to 127.0.0.1). Resolves once /healthz/kms says the key is usable.
 */
export async function startWebhook({
  files,
  emulator,
  keyId,
  logFile,
  refreshIntervalSeconds,
  profileDir,
  nodeArgs = [],
  cli = CLI,
  extraArgs = [],
  extraEnv = {},
}) {
  const [port, healthPort] = [await freePort(), await freePort()];
  const logFd = openSync(logFile, 'w');
  const profileArgs = profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', profileDir];
  const child = spawn(
    ...serverCommand([
      ...profileArgs,
      ...nodeArgs,
      cli,
      'serve',
      '--kms-key-id',
      keyId,
      '--kms-endpoint',
      emulator.endpoint,
      '--kms-protocol',
      'http',
      '--tls-cert',
      files.cert,
      '--tls-key',
      files.key,
      '--port',
      String(port),
      '--health-port',
      String(healthPort),
      '--refresh-interval',
      `${refreshIntervalSeconds}s`,
      ...extraArgs,
    ]),
    {
      cwd: ROOT,
      // Logs go to a file, as in a pod (at the default `info` level: denials and warnings).
      stdio: ['ignore', logFd, 'inherit'],
      env: {
        PATH: process.env.PATH ?? '',
        HOME: dirname(logFile),
        ALIBABA_CLOUD_ACCESS_KEY_ID: emulator.accessKeyId,
        ALIBABA_CLOUD_ACCESS_KEY_SECRET: emulator.accessKeySecret,
        ...extraEnv,
      },
    },
  );
  closeSync(logFd);
  await waitForHttp(`http://127.0.0.1:${healthPort}/healthz/kms`, (status) => status === 200);
  return { name: 'webhook', child, pid: child.pid, url: `https://127.0.0.1:${port}` };
}

export function machine() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /model name\s*:\s*(.+)/.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? 'unknown';
  // --all: the runner is pinned (BENCH_PIN), and plain nproc counts only its own CPUs.
  const nproc = execFileSync('nproc', ['--all'], { encoding: 'utf8' }).trim();
  return {
    nproc,
    model,
    memoryGiB: (totalmem() / 1024 ** 3).toFixed(1),
    node: process.version,
    kernel: execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim(),
  };
}

/** Certificates (same for both servers) and the review bodies, written to `work`. */
export async function prepareFiles(work) {
  const { generateCertificates } = await import(join(ROOT, 'dist/certs/generate.js'));
  const certs = await generateCertificates({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  // Certificates get their own folder: the webhook watches the folder of its TLS files, and
  // logs written next to them would trigger reloads.
  const tls = join(work, 'tls');
  mkdirSync(tls);
  const files = {
    ca: join(tls, 'ca.crt'),
    cert: join(tls, 'tls.crt'),
    key: join(tls, 'tls.key'),
    small: join(work, 'review-2k.json'),
    big: join(work, 'review-1mib-update.json'),
  };
  writeFileSync(files.ca, certs.caCert);
  writeFileSync(files.cert, certs.cert);
  writeFileSync(files.key, certs.key, { mode: 0o600 });
  const small = secretCreateReview(2048);
  const big = secretUpdateReview(1024 * 1024);
  writeFileSync(files.small, small);
  writeFileSync(files.big, big);
  return { files, smallBytes: small.length, bigBytes: big.length };
}

export async function startKmsEmulator() {
  const { startEmulator } = await import(join(ROOT, 'dist/emulator/index.js'));
  return startEmulator({ keys: [''] });
}
