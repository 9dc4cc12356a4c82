/**
 * Scenarios shared by the CI reliability tests (short) and the soak tests (long): sustained
 * load against a `serve` child process while the key flips and the certificate rotates, and
 * SIGTERM in the middle of load.
 */
import type { Test } from 'tap';
import { X509Certificate } from 'node:crypto';
import { Agent, request as httpsRequest } from 'node:https';
import { connect, createSecureContext } from 'node:tls';
import { generateCertificates } from '../../src/certs/generate.js';
import { withEmulator } from './emulator.js';
import { fixture, makeCertDir, type CertDir } from './server.js';
import {
  kubeApiserverProblems,
  patchProblem,
  residentBytes,
  runLoad,
  spawnServe,
  StateTimeline,
  type ServeChild,
  type Webhook,
} from './reliability.js';
import { writeFile, rename } from 'node:fs/promises';
import { httpGet, httpsCall } from './http.js';
import { sleep, eventually } from './eventually.js';
import { freePort } from './processes.js';
import { handshake } from './hardening.js';

export const REFRESH_MS = 200;

export async function serveEnv(
  emulator: { endpoint: string; regionId: string; accessKeyId: string; accessKeySecret: string },
  keyId: string,
  certs: CertDir,
  extra: Record<string, string> = {},
): Promise<Record<string, string>> {
  return {
    KMS_KEY_ID: keyId,
    KMS_REGION: emulator.regionId,
    KMS_ENDPOINT: emulator.endpoint,
    KMS_PROTOCOL: 'http',
    ALIBABA_CLOUD_ACCESS_KEY_ID: emulator.accessKeyId,
    ALIBABA_CLOUD_ACCESS_KEY_SECRET: emulator.accessKeySecret,
    TLS_CERT_FILE: certs.certFile,
    TLS_KEY_FILE: certs.keyFile,
    PORT: String(await freePort()),
    HEALTH_PORT: String(await freePort()),
    KEY_REFRESH_INTERVAL: `${REFRESH_MS}ms`,
    KEY_MAX_STALENESS: '10s',
    LOG_LEVEL: 'info',
    ...extra,
  };
}

/** The certificate the server presents on a fresh handshake (SHA-256 fingerprint). */
export function servedFingerprint(admissionUrl: string, ca: string[]): Promise<string> {
  const url = new URL(admissionUrl);
  return new Promise((resolve, reject) => {
    const socket = connect(
      { host: url.hostname, port: Number(url.port), ca, servername: 'localhost' },
      () => {
        const fingerprint = socket.getPeerX509Certificate()?.fingerprint256 ?? '';
        socket.end();
        resolve(fingerprint);
      },
    );
    socket.on('error', reject);
  });
}

export interface LoadWithFaultsOptions {
  readonly durationMs: number;
  readonly concurrency: number;
  readonly flipEveryMs: number;
  readonly rotateEveryMs: number;
  /** Heap growth after GC allowed between the warm-up and the end of the run. */
  readonly heapGrowthBoundBytes: number;
  /** Resident set growth allowed over the same span (looser: the allocator keeps pages). */
  readonly rssGrowthBoundBytes: number;
}

interface Outcome {
  readonly webhook: Webhook;
  readonly sentAt: number;
  readonly receivedAt: number;
  readonly keyState: string | undefined;
  readonly allowed: boolean;
  readonly patched: boolean;
}

/**
 * Sustained load while DisableKey/EnableKey alternate (real SDK) and tls.crt/tls.key are
 * replaced: every answer is a 200 the API server accepts, consistent with a recent key
 * state, and heap after GC does not grow beyond the bound.
 */
export async function loadWithFaults(t: Test, options: LoadWithFaultsOptions): Promise<void> {
  const { emulator, keyId, admin } = await withEmulator(t);
  const certs = await makeCertDir();
  t.teardown(() => certs.cleanup());
  const rotations = await Promise.all(
    Array.from({ length: Math.ceil(options.durationMs / options.rotateEveryMs) + 1 }, () =>
      generateCertificates({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }),
    ),
  );
  const cas = [certs.caCert, ...rotations.map((rotation) => rotation.caCert)];
  const secureContext = createSecureContext({ ca: cas });
  // Like the API server: mostly kept-alive connections; every 4th admission a new handshake
  // (which must see the rotated certificate).
  const keepAlive = new Agent({ keepAlive: true, maxSockets: options.concurrency, ca: cas });
  t.teardown(() => {
    keepAlive.destroy();
  });
  const child = await spawnServe(t, await serveEnv(emulator, keyId, certs));
  t.ok(
    await eventually(async () => (await httpGet(`${child.healthUrl}/readyz`)).status === 200, {
      timeoutMs: 10_000,
    }),
    'the serve child is ready',
  );

  const timeline = new StateTimeline('Enabled');
  /** An answer may reflect any state held since one refresh + a KMS call + slack ago. */
  const lagMs = REFRESH_MS + 2_000;
  const outcomes: Outcome[] = [];
  const failures: string[] = [];
  const fail = (message: string): void => {
    if (failures.length < 20) failures.push(message);
  };

  const send = async (webhook: Webhook, index: number): Promise<void> => {
    const review = fixture(index % 3 === 0 ? 'secret-create-generatename' : 'secret-update');
    review.request.uid = `load-${webhook}-${index}`;
    const sentAt = Date.now();
    let status: number;
    let body: string;
    try {
      const answer = await httpsCall(`${child.admissionUrl}/${webhook}`, {
        ca: cas,
        ...(index % 4 === 0 ? { secureContext } : { agent: keepAlive }),
        body: JSON.stringify(review),
        timeoutMs: 10_000,
      });
      status = answer.status;
      body = answer.body;
    } catch (error) {
      fail(
        `${webhook} ${review.request.uid}: ${String((error as { code?: string }).code ?? error)}`,
      );
      return;
    }
    const receivedAt = Date.now();
    if (status !== 200) {
      fail(`${webhook} ${review.request.uid}: HTTP ${status} ${body.slice(0, 200)}`);
      return;
    }
    const parsed = JSON.parse(body) as {
      response?: {
        allowed?: boolean;
        patch?: string;
        status?: { code?: number; message?: string };
        auditAnnotations?: Record<string, string>;
      };
    };
    const problems = kubeApiserverProblems(parsed, review.request.uid, webhook);
    const patch = patchProblem(review.request.object, parsed);
    if (patch !== undefined) problems.push(patch);
    const response = parsed.response ?? {};
    const keyState = response.auditAnnotations?.['key-state'];
    const allowed = response.allowed === true;
    const patched = typeof response.patch === 'string';
    if (keyState !== 'Enabled' && keyState !== 'Disabled') {
      problems.push(`key-state ${String(keyState)} (KMS was healthy: never unknown)`);
    } else if (!timeline.heldDuring(keyState, sentAt - lagMs, receivedAt)) {
      problems.push(`key-state ${keyState} did not hold recently`);
    }
    if (webhook === 'validate') {
      if (keyState === 'Enabled' && !allowed) problems.push('denied while Enabled');
      if (keyState === 'Disabled' && (allowed || response.status?.code !== 403)) {
        problems.push('a Disabled key must deny with 403');
      }
      if (!allowed && !(response.status?.message ?? '').includes('is Disabled')) {
        problems.push('a denial that is not the intended Disabled one');
      }
    } else {
      if (!allowed) problems.push('the mutating webhook denied');
      if (keyState === 'Enabled' && !patched) problems.push('no stamp while Enabled');
      if (keyState === 'Disabled' && patched) problems.push('a stamp while Disabled');
    }
    if (problems.length > 0) fail(`${webhook} ${review.request.uid}: ${problems.join('; ')}`);
    outcomes.push({ webhook, sentAt, receivedAt, keyState, allowed, patched });
  };

  // Warm up (JIT, TLS, caches), then take the baseline heap after GC.
  const warmup = await runLoad(
    Math.min(1_000, options.durationMs / 3),
    options.concurrency,
    (lane, index) => send(lane % 2 === 0 ? 'validate' : 'mutate', -(lane * 1_000_000 + index + 1)),
  );
  t.comment(`warm-up: ${warmup} admissions`);
  const baseline = await child.heapAfterGc();
  const rssBaseline = residentBytes(child.pid);

  // An object, not a `let`: the loops below read it after other code changed it.
  const control = { stop: false };
  const flipper = (async () => {
    let disabled = false;
    for (let flip = 0; flip < 100_000; flip += 1) {
      await sleep(options.flipEveryMs);
      if (control.stop) break;
      const next = disabled ? 'Enabled' : 'Disabled';
      timeline.set(next);
      if (disabled) await admin.enableKey();
      else await admin.disableKey();
      disabled = !disabled;
    }
    return disabled;
  })();
  let applied = 0;
  const rotator = (async () => {
    for (const rotation of rotations) {
      await sleep(options.rotateEveryMs);
      if (control.stop) break;
      await writeFile(`${certs.keyFile}.next`, rotation.key);
      await writeFile(`${certs.certFile}.next`, rotation.cert);
      await rename(`${certs.keyFile}.next`, certs.keyFile);
      await rename(`${certs.certFile}.next`, certs.certFile);
      applied += 1;
    }
  })();
  const rssSamples: number[] = [];
  const rssSampler = (async () => {
    while (!control.stop) {
      const rss = residentBytes(child.pid);
      if (rss !== undefined) rssSamples.push(rss);
      await sleep(250);
    }
  })();

  let counter = 0;
  const total = await runLoad(options.durationMs, options.concurrency, (lane) => {
    counter += 1;
    return send(lane % 2 === 0 ? 'validate' : 'mutate', counter);
  });
  control.stop = true;
  const endedDisabled = await flipper;
  await rotator;
  await rssSampler;

  t.same(failures, [], `no failures other than intended denials over ${total} admissions`);
  const denials = outcomes.filter((outcome) => outcome.webhook === 'validate' && !outcome.allowed);
  const allowedWrites = outcomes.filter((o) => o.webhook === 'validate' && o.allowed);
  t.ok(denials.length > 0, `the Disabled phases produced denials (${denials.length})`);
  t.ok(
    allowedWrites.length > 0,
    `the Enabled phases produced admissions (${allowedWrites.length})`,
  );
  t.ok(applied >= 1, `the certificate was rotated ${applied} time(s) during the load`);
  const lastCert = rotations[applied - 1]?.cert;
  if (lastCert !== undefined) {
    const expected = new X509Certificate(lastCert).fingerprint256;
    t.ok(
      await eventually(
        async () => (await servedFingerprint(child.admissionUrl, cas)) === expected,
        {
          timeoutMs: 15_000,
          intervalMs: 100,
        },
      ),
      'new handshakes get the last rotated certificate',
    );
  }
  if (endedDisabled) await admin.enableKey();

  const end = await child.heapAfterGc();
  const growth = end.heapUsed - baseline.heapUsed;
  t.ok(
    growth <= options.heapGrowthBoundBytes,
    `heap after GC grew ${(growth / 1048576).toFixed(1)} MiB (${(baseline.heapUsed / 1048576).toFixed(1)} → ${(end.heapUsed / 1048576).toFixed(1)}) ≤ ${(options.heapGrowthBoundBytes / 1048576).toFixed(0)} MiB`,
  );
  const rssEnd = residentBytes(child.pid);
  if (rssBaseline !== undefined && rssEnd !== undefined) {
    const rssGrowth = rssEnd - rssBaseline;
    t.ok(
      rssGrowth <= options.rssGrowthBoundBytes,
      `RSS grew ${(rssGrowth / 1048576).toFixed(1)} MiB (peak ${(Math.max(...rssSamples) / 1048576).toFixed(0)} MiB) ≤ ${(options.rssGrowthBoundBytes / 1048576).toFixed(0)} MiB`,
    );
  }
  t.equal(
    (await httpGet(`${child.healthUrl}/livez`)).status,
    200,
    'the child is alive after the run',
  );
}

export interface ShutdownUnderLoadOptions {
  readonly loadBeforeSignalMs: number;
  readonly concurrency: number;
  /** The process must have exited this long after SIGTERM. */
  readonly exitBoundMs: number;
  /** Odd lanes reuse kept-alive connections, like the API server (default: every call new). */
  readonly keepAlive?: boolean;
}

interface HeldAdmission {
  readonly uid: string;
  readonly result: Promise<string>;
  readonly finished: boolean;
  finish(): void;
}

/**
 * A /validate admission whose headers the server has accepted (it answered `100 Continue`)
 * and whose body is half sent; `finish()` sends the rest. Resolves once the server holds it.
 */
async function holdAdmission(
  admissionUrl: string,
  caCert: string,
  template: ReturnType<typeof fixture>,
): Promise<HeldAdmission> {
  const review = structuredClone(template);
  const uid = 'shutdown-held';
  review.request.uid = uid;
  const body = Buffer.from(JSON.stringify(review));
  const half = Math.floor(body.length / 2);
  let finished = false;
  let accepted: () => void = () => undefined;
  let sendRest: () => void = () => undefined;
  const headersAccepted = new Promise<void>((resolve) => {
    accepted = resolve;
  });
  const result = new Promise<string>((resolve) => {
    const call = httpsRequest(`${admissionUrl}/validate`, {
      method: 'POST',
      ca: caCert,
      agent: false,
      timeout: 20_000,
      headers: {
        'content-type': 'application/json',
        'content-length': String(body.length),
        expect: '100-continue',
      },
    });
    call.on('continue', () => {
      call.write(body.subarray(0, half), () => {
        accepted();
      });
    });
    call.on('timeout', () => call.destroy(new Error('timeout')));
    call.on('error', (error: NodeJS.ErrnoException) => {
      accepted();
      resolve(`error ${error.code ?? error.message}`);
    });
    call.on('response', (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        if (response.statusCode !== 200) {
          resolve(`HTTP ${String(response.statusCode)}`);
          return;
        }
        const problems = kubeApiserverProblems(
          JSON.parse(Buffer.concat(chunks).toString('utf8')),
          uid,
          'validate',
        );
        resolve(problems.length === 0 ? 'ok' : problems.join('; '));
      });
    });
    call.flushHeaders();
    sendRest = () => {
      call.end(body.subarray(half));
    };
  });
  await Promise.race([headersAccepted, sleep(10_000)]);
  return {
    uid,
    result,
    get finished() {
      return finished;
    },
    finish: () => {
      if (finished) return;
      finished = true;
      sendRest();
    },
  };
}

/** A `serve` child (info logs) on a fresh emulator and certificates, once /readyz is 200. */
async function readyServeChild(t: Test): Promise<{ certs: CertDir; child: ServeChild }> {
  const { emulator, keyId } = await withEmulator(t);
  const certs = await makeCertDir();
  t.teardown(() => certs.cleanup());
  const child: ServeChild = await spawnServe(
    t,
    await serveEnv(emulator, keyId, certs, { LOG_LEVEL: 'info' }),
  );
  t.ok(
    await eventually(async () => (await httpGet(`${child.healthUrl}/readyz`)).status === 200, {
      timeoutMs: 10_000,
    }),
    'the serve child is ready',
  );
  return { certs, child };
}

/**
 * SIGTERM while admissions are in flight: every request sent before the signal gets a
 * complete 200 answer, /readyz turns 503 before the listeners go, and the process exits 0.
 */
export async function shutdownUnderLoad(t: Test, options: ShutdownUnderLoadOptions): Promise<void> {
  const { certs, child } = await readyServeChild(t);

  let signalAt = Number.POSITIVE_INFINITY;
  const beforeSignal: { uid: string; result: Promise<string> }[] = [];
  let afterSignalRefused = 0;
  let afterSignalAnswered = 0;
  let stop = false;
  const big = fixture('secret-update');
  // ~256 KiB objects: each admission takes a while to upload, so some are mid-body at SIGTERM.
  const filler = 'A'.repeat(256 * 1024);
  if (big.request.object?.data !== undefined) big.request.object.data.blob = filler;

  const keepAlive = new Agent({ keepAlive: true, ca: certs.caCert });
  t.teardown(() => {
    keepAlive.destroy();
  });
  const lanes = Array.from({ length: options.concurrency }, async (_, lane) => {
    const agent = options.keepAlive === true && lane % 2 === 1 ? keepAlive : false;
    for (let index = 0; !stop && index < 100_000; index += 1) {
      const review = structuredClone(big);
      review.request.uid = `shutdown-${lane}-${index}`;
      const sentAt = Date.now();
      const result = httpsCall(`${child.admissionUrl}/${lane % 2 === 0 ? 'validate' : 'mutate'}`, {
        ca: certs.caCert,
        agent,
        body: JSON.stringify(review),
        timeoutMs: 20_000,
      }).then(
        (answer) => {
          if (answer.status !== 200) return `HTTP ${answer.status}`;
          const problems = kubeApiserverProblems(
            JSON.parse(answer.body),
            review.request.uid,
            lane % 2 === 0 ? 'validate' : 'mutate',
          );
          return problems.length === 0 ? 'ok' : problems.join('; ');
        },
        (error: unknown) => `error ${String((error as { code?: string }).code ?? error)}`,
      );
      if (sentAt < signalAt) {
        beforeSignal.push({ uid: review.request.uid, result });
        await result;
      } else {
        const outcome = await result;
        if (outcome === 'ok') afterSignalAnswered += 1;
        else afterSignalRefused += 1;
        // After the signal, new connections are refused: stop this lane.
        if (outcome !== 'ok') break;
      }
    }
  });

  await sleep(options.loadBeforeSignalMs);
  // One admission is held mid-body across the signal, so the drain cannot end before /readyz
  // has been seen turning 503 (on kept-alive connections the rest may finish within ms).
  const held = await holdAdmission(child.admissionUrl, certs.caCert, big);
  const readyzDuringDrain: number[] = [];
  signalAt = Date.now();
  child.child.kill('SIGTERM');
  // Probe /readyz right away and until the health listener is gone; the held admission is
  // finished once a 503 was seen (or after 5 s without one).
  for (let probe = 0; probe < 2_000; probe += 1) {
    try {
      readyzDuringDrain.push((await httpGet(`${child.healthUrl}/readyz`)).status);
    } catch {
      break;
    }
    if (!held.finished && (readyzDuringDrain.includes(503) || Date.now() - signalAt > 5_000)) {
      held.finish();
    }
    await sleep(5);
  }
  held.finish();
  beforeSignal.push({ uid: held.uid, result: held.result });
  const exit = await Promise.race([child.exited, sleep(options.exitBoundMs).then(() => undefined)]);
  const exitedAfterMs = Date.now() - signalAt;
  stop = true;
  await Promise.all(lanes);

  const results = await Promise.all(
    beforeSignal.map(async (entry) => `${entry.uid}: ${await entry.result}`),
  );
  const bad = results.filter((result) => !result.endsWith(': ok'));
  t.ok(
    beforeSignal.length >= options.concurrency,
    `${beforeSignal.length} admissions were sent before SIGTERM`,
  );
  t.same(bad, [], 'every admission sent before SIGTERM got a complete, valid 200 answer');
  t.ok(readyzDuringDrain.length > 0, '/readyz was reachable right after SIGTERM');
  // The signal is handled asynchronously, so a probe may still see 200 first; after the first
  // 503 it must stay 503 until the health listener closes.
  const firstNotReady = readyzDuringDrain.indexOf(503);
  t.ok(
    firstNotReady >= 0,
    `/readyz turned 503 while the webhook drained (${readyzDuringDrain.length} probes)`,
  );
  t.ok(
    readyzDuringDrain.slice(0, Math.max(firstNotReady, 0)).every((status) => status === 200) &&
      readyzDuringDrain.slice(Math.max(firstNotReady, 0)).every((status) => status === 503),
    `and stayed 503 until the health listener closed: ${readyzDuringDrain.join(',').slice(0, 200)}`,
  );
  t.not(
    exit,
    undefined,
    `the process exited within ${options.exitBoundMs} ms (after ${exitedAfterMs} ms)`,
  );
  t.match(exit, { code: 0, signal: null }, 'with exit code 0');
  t.comment(
    `after SIGTERM: ${afterSignalAnswered} answered, ${afterSignalRefused} refused (new connections)`,
  );
  t.match(child.output(), /stop requested/, 'the log says a stop was requested');
}

/**
 * SIGTERM while a client holds kept-alive connections the way kube-apiserver's webhook client
 * does: some idle after a request, some never used since the TLS handshake. The drain must
 * not wait for them: the process exits well within the shutdown timeout.
 */
export async function shutdownWithHeldConnections(t: Test): Promise<void> {
  const { certs, child } = await readyServeChild(t);
  const agent = new Agent({ keepAlive: true, ca: certs.caCert, maxSockets: 4 });
  t.teardown(() => {
    agent.destroy();
  });
  const review = fixture('secret-update');
  const answers = await Promise.all(
    Array.from({ length: 4 }, (_, index) =>
      httpsCall(`${child.admissionUrl}/validate`, {
        ca: certs.caCert,
        agent,
        body: JSON.stringify({ ...review, request: { ...review.request, uid: `idle-${index}` } }),
        timeoutMs: 10_000,
      }),
    ),
  );
  t.same(
    answers.map((answer) => answer.status),
    [200, 200, 200, 200],
    'four admissions answered on kept-alive connections, which now sit idle',
  );
  const unused = await Promise.all(
    Array.from({ length: 4 }, () => handshake(child.admissionUrl, certs.caCert)),
  );
  t.teardown(() => {
    for (const socket of unused) socket.destroy();
  });
  t.equal(unused.length, 4, 'four more connections completed the handshake and send nothing');
  const signalAt = Date.now();
  child.child.kill('SIGTERM');
  const exit = await Promise.race([child.exited, sleep(15_000).then(() => undefined)]);
  const exitedAfterMs = Date.now() - signalAt;
  t.match(exit, { code: 0, signal: null }, 'serve exited with code 0');
  t.ok(
    exitedAfterMs < 3_000,
    `it exited within 3 s of SIGTERM, not at the shutdown timeout (after ${exitedAfterMs} ms)`,
  );
  t.notMatch(child.output(), /shutdown timeout/, 'no connection had to be cut at the timeout');
}
