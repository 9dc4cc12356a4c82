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
import { buildAdmissionApp } from '../../src/server/app.js';
import { secureContextOptions, readTlsMaterial } from '../../src/server/tls.js';
import { createLogger } from '../../src/logging/logger.js';
import { fakeSource } from '../helpers/server.js';

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

t.test('connection limits of serve', { skip: missingBuild() ?? false }, async (t) => {
  const certs = await makeCertDir();
  t.teardown(() => certs.cleanup());

  await t.test('connections idle after the handshake are closed; busy ones are not', async (t) => {
    const child = await startChild(t, certs);
    const idle = await Promise.all(
      Array.from({ length: 5 }, () => handshake(child.admissionUrl, certs.caCert)),
    );
    const closed = await Promise.all(idle.map((socket) => closedWithin(socket, 30_000)));
    t.same(
      closed.map((ms) => ms !== undefined),
      [true, true, true, true, true],
      `the 5 idle connections were closed (after ${closed.map((ms) => String(ms)).join(', ')} ms; deadline 10 s)`,
    );
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
    const open = attempts.flatMap((attempt) =>
      attempt.status === 'fulfilled' ? [attempt.value] : [],
    );
    // Let the server close what is over the cap.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const stillOpen = open.filter((socket) => !socket.destroyed && socket.readyState === 'open');
    t.ok(stillOpen.length <= 128, `${stillOpen.length} of 200 connections held open (cap 128)`);
    t.ok(stillOpen.length >= 100, 'and the cap, not something else, stopped the rest');
    t.equal((await httpGet(`${child.healthUrl}/livez`)).status, 200, '/livez answers at the cap');
    t.equal((await httpGet(`${child.healthUrl}/readyz`)).status, 200, '/readyz answers at the cap');
    for (const socket of open) socket.destroy();
    const resumed = await eventually(
      async () =>
        (
          await httpsCall(`${child.admissionUrl}/validate`, {
            ca: certs.caCert,
            body: bigUpdateReview('after-cap', 16),
            timeoutMs: 5_000,
          })
        ).status === 200,
      { timeoutMs: 15_000, intervalMs: 200 },
    );
    t.ok(resumed, 'admissions are answered again once the connections are gone');
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

t.test('past the held-bytes budget: 503 with Retry-After', async (t) => {
  const certs = await makeCertDir();
  t.teardown(() => certs.cleanup());
  const material = await readTlsMaterial({
    certFile: certs.certFile,
    keyFile: certs.keyFile,
    clientCaFile: undefined,
  });
  const settings = serveSettings(certs);
  // One request (its 8 KiB base charge and what its parser holds) fits; a second does not.
  const app = buildAdmissionApp({
    logger: createLogger('silent'),
    source: fakeSource(),
    policy: { mode: settings.mode, onUnknown: settings.onUnknown },
    https: secureContextOptions(material),
    heldBytesBudget: 12 * 1024,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => app.close());
  const address = app.server.address();
  const url = `https://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
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
