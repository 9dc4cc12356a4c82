// Regression tests for "no single client can knock the guard over" at the connection level,
// against the built `serve` CLI (Deployment NODE_OPTIONS, KMS emulator): idle connections
// after the TLS handshake, the connection cap with the health listener still answering,
// stalled large uploads, the body budget, TLS 1.2 cipher suites and the client-error log line.
import t from 'tap';
import { Agent } from 'node:https';
import { connect, type TLSSocket } from 'node:tls';
import { withEmulator } from '../helpers/emulator.js';
import { eventually } from '../helpers/eventually.js';
import { httpGet, httpsCall } from '../helpers/http.js';
import { makeCertDir, serveSettings, type CertDir } from '../helpers/server.js';
import { missingBuild, spawnServe, type ServeChild } from '../helpers/reliability.js';
import { serveEnv } from '../helpers/reliability-scenarios.js';
import {
  bigUpdateReview,
  closedWithin,
  deploymentNodeOptions,
  handshake,
  peakRssBytes,
} from '../helpers/hardening.js';
import { buildAdmissionApp, type AdmissionAppOptions } from '../../src/server/app.js';
import { secureContextOptions, readTlsMaterial } from '../../src/server/tls.js';
import { createLogger } from '../../src/logging/logger.js';
import { fakeSource } from '../helpers/server.js';
import { recordingLogger } from '../helpers/logs.js';

const MB = 1_000_000;

async function startChild(
  t: { teardown(fn: () => unknown): void },
  certs: CertDir,
  extra: Record<string, string> = {},
  openFilesLimit = 0,
): Promise<ServeChild> {
  const { emulator, keyId } = await withEmulator(t);
  const env = await serveEnv(emulator, keyId, certs, {
    NODE_OPTIONS: deploymentNodeOptions(),
    KEY_MAX_STALENESS: '120s',
    ...extra,
  });
  const child = await spawnServe(t, env, { openFilesLimit });
  const ready = await eventually(
    async () => (await httpGet(`${child.healthUrl}/readyz`)).status === 200,
    { timeoutMs: 15_000 },
  );
  if (!ready) throw new Error(`serve did not become ready:\n${child.output()}`);
  return child;
}

/** Opens a TLS connection and writes `bytes` of a request whose body never completes. */
function stalledUpload(
  url: string,
  ca: string,
  declared: number,
  bytes: number,
): Promise<TLSSocket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port), ca, servername: 'localhost' });
    socket.on('error', () => undefined);
    socket.once('secureConnect', () => {
      socket.write(
        `POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${declared}\r\n\r\n{"request":{"uid":"stalled","object":{"data":{"k":"`,
      );
      const chunk = Buffer.alloc(64 * 1024, 0x41);
      let written = 0;
      const pump = (): void => {
        while (written < bytes) {
          written += chunk.length;
          if (!socket.write(chunk)) {
            socket.once('drain', pump);
            return;
          }
        }
        resolve(socket);
      };
      pump();
    });
    socket.once('close', () => {
      reject(new Error('closed before the upload was written'));
    });
  });
}

/** An HTTP/1.1 POST /validate with `body`, kept alive. */
function validateRequest(body: string): string {
  return `POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

/** Writes `request` on `socket` and resolves with the whole response (headers and body). */
function exchange(socket: TLSSocket, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('utf8');
      const end = text.indexOf('\r\n\r\n');
      const length = /\r\ncontent-length: (\d+)/i.exec(text)?.[1];
      if (end < 0 || length === undefined) return;
      if (Buffer.byteLength(text) - end - 4 < Number(length)) return;
      socket.removeListener('data', onData);
      resolve(text);
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(request);
  });
}

/** The start of a review whose every kept string is at its bound, then 9 990 open arrays. */
function keepTheMostPrefix(): string {
  const s = (bytes: number): string => JSON.stringify('x'.repeat(bytes));
  const stamps = `{"kms-secret-guard.io/key-id":${s(128)},"kms-secret-guard.io/key-version":${s(128)},"encryption-key-rotation-time":${s(128)}}`;
  const gvk = `{"group":${s(253)},"version":${s(63)}`;
  return (
    `{"apiVersion":${s(253)},"kind":${s(63)},"request":{"uid":${s(128)},` +
    `"kind":${gvk},"kind":${s(253)}},"resource":${gvk},"resource":${s(253)}},` +
    `"subResource":${s(253)},"name":${s(253)},"namespace":${s(63)},"operation":${s(63)},` +
    `"userInfo":{"username":${s(1024)}},"object":{"kind":${s(253)},"metadata":{"name":${s(253)},` +
    `"generateName":${s(253)},"namespace":${s(63)},"annotations":${stamps}}},` +
    `"oldObject":{"metadata":{"annotations":${stamps}}},"x":${'['.repeat(9_990)}`
  );
}

/** True once a small admission is answered 200 again (within 15 s). */
function answeredAgain(child: ServeChild, certs: CertDir, uid: string): Promise<boolean> {
  return eventually(
    async () =>
      (
        await httpsCall(`${child.admissionUrl}/validate`, {
          ca: certs.caCert,
          body: bigUpdateReview(uid, 16),
          timeoutMs: 5_000,
        })
      ).status === 200,
    { timeoutMs: 15_000, intervalMs: 200 },
  );
}

/** The connections of `attempts` that were made. */
function made(attempts: PromiseSettledResult<TLSSocket>[]): TLSSocket[] {
  return attempts.flatMap((attempt) => (attempt.status === 'fulfilled' ? [attempt.value] : []));
}

t.test('connection limits of serve', { skip: missingBuild() ?? false }, async (t) => {
  const certs = await makeCertDir();
  t.teardown(() => certs.cleanup());

  await t.test('unused connections of a source over the patient share are closed', async (t) => {
    const child = await startChild(t, certs);
    // 70 from one address (over the patient share of 64): 6 of them meet the 5 s deadline,
    // the rest, like the one from another address, count as an API server's pool (95 s).
    const holder = await Promise.all(
      Array.from({ length: 70 }, () => handshake(child.admissionUrl, certs.caCert, '127.0.0.3')),
    );
    const pool = await handshake(child.admissionUrl, certs.caCert, '127.0.0.4');
    t.teardown(() => {
      pool.destroy();
      for (const socket of holder) socket.destroy();
    });
    const closed = await Promise.all(holder.map((socket) => closedWithin(socket, 15_000)));
    const early = closed.filter((ms): ms is number => ms !== undefined);
    t.equal(
      early.length,
      6,
      `6 of the 70 unused connections were closed (${String(early.length)})`,
    );
    t.ok(
      early.every((ms) => ms >= 4_000),
      `not before the 5 s deadline (${early.join(', ')} ms)`,
    );
    t.notOk(pool.destroyed, 'the one unused connection from 127.0.0.4 is still open');
    const reply = await exchange(pool, validateRequest(bigUpdateReview('pooled', 16)));
    t.match(reply, /^HTTP\/1\.1 200 /, 'and a request written on it later is answered 200');
    const answer = await httpsCall(`${child.admissionUrl}/validate`, {
      ca: certs.caCert,
      body: bigUpdateReview('busy', 16),
      timeoutMs: 20_000,
    });
    t.equal(answer.status, 200, 'a connection that sends its request is answered');
  });

  await t.test('at the connection cap /livez still answers, and admissions resume', async (t) => {
    // 256 descriptors: the cap becomes 256 − 128 of headroom = 128 connections.
    const child = await startChild(t, certs, {}, 256);
    const listening = child
      .output()
      .split('\n')
      .find((line) => line.includes('webhook listening'));
    t.match(listening, /"maxConnections":128/, 'the cap is sized from the descriptor limit');
    const attempts = await Promise.allSettled(
      Array.from({ length: 200 }, () => handshake(child.admissionUrl, certs.caCert)),
    );
    const open = made(attempts);
    // Let the server close what is over the cap.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const stillOpen = open.filter((socket) => !socket.destroyed && socket.readyState === 'open');
    t.ok(stillOpen.length <= 128, `${stillOpen.length} of 200 connections held open (cap 128)`);
    t.ok(stillOpen.length >= 100, 'and the cap, not something else, stopped the rest');
    t.equal((await httpGet(`${child.healthUrl}/livez`)).status, 200, '/livez answers at the cap');
    t.equal((await httpGet(`${child.healthUrl}/readyz`)).status, 200, '/readyz answers at the cap');
    for (const socket of open) socket.destroy();
    const resumed = await answeredAgain(child, certs, 'after-cap');
    t.ok(resumed, 'admissions are answered again once the connections are gone');
  });

  await t.test('one source address holds at most 256 connections; others get in', async (t) => {
    const child = await startChild(t, certs);
    let live = 0;
    let mostLive = 0;
    const attempts = await Promise.allSettled(
      Array.from({ length: 300 }, () =>
        handshake(child.admissionUrl, certs.caCert, '127.0.0.1').then((socket) => {
          live += 1;
          mostLive = Math.max(mostLive, live);
          socket.once('close', () => {
            live -= 1;
          });
          return socket;
        }),
      ),
    );
    const open = made(attempts);
    t.teardown(() => {
      for (const socket of open) socket.destroy();
    });
    const rejected = attempts.length - open.length;
    t.ok(mostLive <= 256, `127.0.0.1 held at most ${String(mostLive)} at once (cap 256)`);
    t.ok(rejected >= 300 - 256, `${String(rejected)} of its 300 handshakes were refused`);
    const refusedCount = async (): Promise<number> => {
      const metrics = (await httpGet(`${child.healthUrl}/metrics`)).body;
      const line =
        /kms_secret_guard_admission_connections_refused_total\{reason="per_source"\} (\d+)/.exec(
          metrics,
        );
      return Number(line?.[1] ?? 0);
    };
    t.ok(
      await eventually(async () => (await refusedCount()) >= rejected),
      `the counter says so (per_source ${String(await refusedCount())}, ${String(rejected)} handshakes refused)`,
    );
    const other = await handshake(child.admissionUrl, certs.caCert, '127.0.0.2');
    t.teardown(() => other.destroy());
    const reply = await exchange(other, validateRequest(bigUpdateReview('other-source', 16)));
    t.match(reply, /^HTTP\/1\.1 200 /, 'a connection from 127.0.0.2 is answered 200 meanwhile');
    t.ok(
      await eventually(() => child.output().includes('connections refused since the last line')),
      'the refusals are logged (once per 10 s at most)',
    );
    t.match(child.output(), /"latest":"127\.0\.0\.1"/, 'naming the latest source address');
  });

  await t.test('kept-alive connections outlive the first-request deadline', async (t) => {
    const child = await startChild(t, certs);
    const socket = await handshake(child.admissionUrl, certs.caCert);
    t.teardown(() => socket.destroy());
    const first = await exchange(socket, validateRequest(bigUpdateReview('kept-1', 16)));
    t.match(first, /^HTTP\/1\.1 200 /, 'the first request is answered 200');
    t.match(first, /\r\nKeep-Alive: timeout=95\r\n/i, 'Keep-Alive: timeout=95 (past Go 90 s)');
    await new Promise((resolve) => setTimeout(resolve, 7_000));
    t.notOk(socket.destroyed, 'still open 7 s later (the 5 s deadline is for the first request)');
    const second = await exchange(socket, validateRequest(bigUpdateReview('kept-2', 16)));
    t.match(second, /^HTTP\/1\.1 200 /, 'the second request on it is answered 200');
  });

  await t.test('requests built to keep the most meet the held-bytes budget: 503', async (t) => {
    const child = await startChild(t, certs);
    // 200 from each of three sources (the per-source cap is 256), every kept string at its
    // bound and 9 990 open arrays, then stalled: ~33 KiB held each, 16 MiB for ~500.
    // Each request is written as soon as its handshake finishes, so no connection waits
    // unused for the others.
    const prefix = keepTheMostPrefix();
    const request = `POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n${prefix}`;
    const sockets: TLSSocket[] = [];
    t.teardown(() => {
      for (const socket of sockets) socket.destroy();
    });
    const replies = await Promise.all(
      Array.from({ length: 600 }, (_, index) =>
        handshake(child.admissionUrl, certs.caCert, `127.0.0.${1 + (index % 3)}`).then((socket) => {
          sockets.push(socket);
          const received: Buffer[] = [];
          socket.on('data', (chunk: Buffer) => received.push(chunk));
          socket.on('error', () => undefined);
          socket.write(request);
          return () => Buffer.concat(received).toString('utf8');
        }),
      ),
    );
    const refused = (): number => replies.filter((reply) => reply().includes(' 503 ')).length;
    const enough = await eventually(() => refused() >= 20, { timeoutMs: 20_000 });
    const count = refused();
    t.ok(enough, `${String(count)} of 600 answered 503 (≈ 100 expected, at least 20)`);
    t.ok(count <= 300, 'and not most of them: the budget holds ~500');
    const sample = replies.map((reply) => reply()).find((reply) => reply.includes(' 503 ')) ?? '';
    t.match(sample, /\r\nRetry-After: 1\r\n/i, 'with Retry-After: 1');
    t.match(
      sample,
      /requests in flight hold 16 MiB, its budget for request bodies: too many large or slow requests at once; retry in 1 s/,
      'saying why',
    );
    t.equal((await httpGet(`${child.healthUrl}/livez`)).status, 200, '/livez answers');
    for (const socket of sockets) socket.destroy();
    const resumed = await answeredAgain(child, certs, 'after-budget');
    t.ok(resumed, 'once they are gone, admissions are answered 200');
  });

  await t.test('25 uploads stalled just short of 7 MiB hold no body memory', async (t) => {
    const child = await startChild(t, certs);
    const before = peakRssBytes(child.pid);
    const stalled = await Promise.all(
      Array.from({ length: 25 }, () =>
        stalledUpload(
          child.admissionUrl,
          certs.caCert,
          7 * 1024 * 1024,
          7 * 1024 * 1024 - 128 * 1024,
        ),
      ),
    );
    t.teardown(() => {
      for (const socket of stalled) socket.destroy();
    });
    const answer = await httpsCall(`${child.admissionUrl}/validate`, {
      ca: certs.caCert,
      body: bigUpdateReview('beside-stalled', 16),
      timeoutMs: 20_000,
    });
    t.equal(answer.status, 200, 'an admission beside them is answered 200');
    const peak = peakRssBytes(child.pid);
    t.ok(
      peak - before <= 32 * MB,
      `peak RSS ${(peak / MB).toFixed(1)} MB, ${((peak - before) / MB).toFixed(1)} MB over the ${(before / MB).toFixed(1)} before (bound 32; 25 × 7 MiB sent, 175 MiB buffered before)`,
    );
    t.equal((await httpGet(`${child.healthUrl}/livez`)).status, 200, '/livez answers');
  });

  await t.test('TLS 1.2 offers only ECDHE with AEAD; TLS 1.3 unchanged', async (t) => {
    const child = await startChild(t, certs);
    const { hostname, port } = new URL(child.admissionUrl);
    const attempt = (options: { ciphers?: string; maxVersion?: 'TLSv1.2' | 'TLSv1.3' }) =>
      new Promise<string>((resolve) => {
        const socket = connect({
          host: hostname,
          port: Number(port),
          ca: certs.caCert,
          servername: 'localhost',
          ...options,
        });
        socket.once('secureConnect', () => {
          resolve(`${socket.getProtocol() ?? '?'} ${socket.getCipher().name}`);
          socket.destroy();
        });
        socket.once('error', (error: NodeJS.ErrnoException) => {
          resolve(`refused ${error.code ?? error.message}`);
        });
      });
    for (const cipher of [
      'ECDHE-ECDSA-AES128-SHA',
      'ECDHE-ECDSA-AES256-SHA',
      'AES128-SHA',
      'AES128-GCM-SHA256',
    ]) {
      t.match(
        await attempt({ ciphers: cipher, maxVersion: 'TLSv1.2' }),
        /^refused/,
        `TLS 1.2 ${cipher}: refused`,
      );
    }
    t.match(
      await attempt({ ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256', maxVersion: 'TLSv1.2' }),
      /^TLSv1\.2 ECDHE-ECDSA-AES128-GCM-SHA256$/,
      'TLS 1.2 ECDHE-ECDSA-AES128-GCM-SHA256: accepted',
    );
    t.match(await attempt({}), /^TLSv1\.3 TLS_/, 'TLS 1.3 with its default suites: accepted');
  });

  await t.test('a malformed request at trace level logs no header or raw bytes', async (t) => {
    const child = await startChild(t, certs, { LOG_LEVEL: 'trace' });
    const canary = `CANARY-${Date.now().toString(36)}-authorization`;
    const socket = await handshake(child.admissionUrl, certs.caCert);
    socket.on('error', () => undefined);
    socket.write(
      `POST /validate HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${canary}\r\nContent-Length: not-a-number\r\n\r\n`,
    );
    await closedWithin(socket, 5_000);
    const logged = await eventually(() => child.output().includes('"msg":"client error"'), {
      timeoutMs: 5_000,
    });
    t.ok(logged, 'the client error was logged (at trace)');
    const output = child.output();
    const line = output.split('\n').find((entry) => entry.includes('"msg":"client error"')) ?? '';
    t.match(
      line,
      /"err":\{"type":"Error","code":"HPE_[A-Z_]+","message":"[^"]*"\}/,
      'type, code, message',
    );
    t.notMatch(output, canary, 'the Authorization header is nowhere in the output');
    t.notMatch(output, /rawPacket/, 'no rawPacket');
  });
});

/** An admission app in this process over real TLS on a free port; returns its URL. */
async function listenInProcess(
  t: { teardown(fn: () => unknown): void },
  certs: CertDir,
  options: Pick<
    AdmissionAppOptions,
    'logger' | 'heldBytesBudget' | 'maxConnectionsPerSource' | 'firstRequestDeadlines'
  >,
): Promise<string> {
  const material = await readTlsMaterial({
    certFile: certs.certFile,
    keyFile: certs.keyFile,
    clientCaFile: undefined,
  });
  const settings = serveSettings(certs);
  const app = buildAdmissionApp({
    ...options,
    source: fakeSource(),
    policy: { mode: settings.mode, onUnknown: settings.onUnknown },
    https: secureContextOptions(material),
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => app.close());
  const address = app.server.address();
  return `https://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
}

t.test('past the held-bytes budget: 503 with Retry-After', async (t) => {
  const certs = await makeCertDir();
  t.teardown(() => certs.cleanup());
  // One request (its 8 KiB base charge and what its parser holds) fits; a second does not.
  const url = await listenInProcess(t, certs, {
    logger: createLogger('silent'),
    heldBytesBudget: 12 * 1024,
  });
  const first = await stalledUpload(url, certs.caCert, 1024 * 1024, 64 * 1024);
  t.teardown(() => {
    first.destroy();
  });
  await new Promise((resolve) => setTimeout(resolve, 200));
  const agent = new Agent({ ca: certs.caCert });
  t.teardown(() => {
    agent.destroy();
  });
  const second = await httpsCall(`${url}/validate`, {
    ca: certs.caCert,
    agent,
    body: bigUpdateReview('second', 16),
    timeoutMs: 10_000,
  });
  t.equal(second.status, 503, 'the second request is answered 503');
  t.equal(second.headers['retry-after'], '1', 'with Retry-After: 1');
  t.match(
    second.json(),
    { message: /requests in flight hold 12 KiB, its budget for request bodies: .*retry in 1 s/ },
    'saying why',
  );
  first.destroy();
  const later = await eventually(
    async () =>
      (
        await httpsCall(`${url}/validate`, {
          ca: certs.caCert,
          body: bigUpdateReview('later', 16),
          timeoutMs: 5_000,
        })
      ).status === 200,
    { timeoutMs: 5_000, intervalMs: 100 },
  );
  t.ok(later, 'once the stalled upload is gone, requests are answered 200 again');
});

t.test('in process: refused connections are logged with their sources', async (t) => {
  const certs = await makeCertDir();
  t.teardown(() => certs.cleanup());
  const { logger, lines } = recordingLogger();
  const url = await listenInProcess(t, certs, { logger, maxConnectionsPerSource: 1 });
  const first = await handshake(url, certs.caCert);
  t.teardown(() => first.destroy());
  const second = await handshake(url, certs.caCert).then(
    (socket) => closedWithin(socket, 2_000),
    () => 0,
  );
  t.ok(second !== undefined, 'the second connection from 127.0.0.1 is closed at once');
  t.match(
    lines().filter((line) => line.level === 'warn'),
    [
      {
        msg: /^1 connections refused since the last line \(latest from 127\.0\.0\.1\)/,
        latest: '127.0.0.1',
        bySource: { '127.0.0.1': 1 },
        refused: 1,
        maxConnectionsPerSource: 1,
      },
    ],
    'one warning with the source, the count and the cap',
  );
});

t.test(
  'in process: the first-request deadline spares a source within the patient share',
  async (t) => {
    const certs = await makeCertDir();
    t.teardown(() => certs.cleanup());
    // The rule of 5 s / 95 s / 64, shortened: 300 ms / 3 s / 2.
    const url = await listenInProcess(t, certs, {
      logger: createLogger('silent'),
      firstRequestDeadlines: { impatientMs: 300, patientMs: 3_000, patientShare: 2 },
    });
    const pool = await Promise.all([
      handshake(url, certs.caCert, '127.0.0.5'),
      handshake(url, certs.caCert, '127.0.0.5'),
    ]);
    const holder = await Promise.all(
      Array.from({ length: 4 }, () => handshake(url, certs.caCert, '127.0.0.6')),
    );
    t.teardown(() => {
      for (const socket of [...pool, ...holder]) socket.destroy();
    });
    const poolClosed = pool.map((socket) => closedWithin(socket, 20_000));
    const holderClosed = holder.map((socket) => closedWithin(socket, 20_000));
    const first = await Promise.race(holderClosed);
    await eventually(() => holder.filter((socket) => socket.destroyed).length >= 2, {
      timeoutMs: 1_000,
    });
    t.equal(
      holder.filter((socket) => socket.destroyed).length,
      2,
      `127.0.0.6 (4 unused, share 2) loses 2 at the short deadline (first after ${String(first)} ms)`,
    );
    t.same(
      pool.map((socket) => socket.destroyed),
      [false, false],
      'the 2 of 127.0.0.5 (within the share) are still open then',
    );
    const closed = await Promise.all([...poolClosed, ...holderClosed]);
    t.ok(
      closed.every((ms) => ms !== undefined),
      `all are closed by the long deadline (${closed.join(', ')} ms; 3 s)`,
    );
    t.ok(
      closed.slice(0, 2).every((ms) => ms !== undefined && ms >= 2_000),
      'those of 127.0.0.5 only at the long deadline',
    );
  },
);
