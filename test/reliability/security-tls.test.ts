// The admission port's transport: old TLS and plain HTTP refused, mTLS enforced when
// configured, oversized headers and bodies refused before they cost memory.
import t, { type Test } from 'tap';
import { readFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { connect, type ConnectionOptions, type SecureVersion } from 'node:tls';
import { generateCertificates } from '../../src/certs/generate.js';
import { createLogger } from '../../src/logging/logger.js';
import { startServer, type RunningServer } from '../../src/server/serve.js';
import {
  clientCertificate,
  fakeSource,
  fixture,
  makeCertDir,
  serveSettings,
  type CertDir,
} from '../helpers/server.js';
import { postOversized } from '../helpers/reliability.js';
import { httpGet, httpsCall } from '../helpers/http.js';

async function serverFor(
  t: Test,
  mutualTls = false,
): Promise<{ server: RunningServer; certs: CertDir }> {
  const certs = await makeCertDir();
  t.teardown(() => certs.cleanup());
  const server = await startServer({
    settings: serveSettings(certs, mutualTls ? { clientCaFile: certs.caFile } : {}),
    logger: createLogger('silent'),
    monitor: fakeSource(),
    host: '127.0.0.1',
  });
  t.teardown(() => server.close());
  return { server, certs };
}

/** A raw TLS handshake; resolves with the negotiated protocol or the error code. */
function handshake(
  url: string,
  options: ConnectionOptions,
): Promise<{ protocol?: string; error?: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port), ...options }, () => {
      const protocol = socket.getProtocol() ?? 'unknown';
      // TLS 1.3 sends a missing-client-certificate alert after the handshake: read once.
      socket.once('data', () => undefined);
      setTimeout(() => {
        socket.end();
        resolve({ protocol });
      }, 100);
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      resolve({ error: error.code ?? error.message });
    });
  });
}

t.test('TLS 1.0 and 1.1 are refused by the server; 1.2 and 1.3 accepted', async (t) => {
  const { server, certs } = await serverFor(t);
  // SECLEVEL=0 lets this client really offer TLS 1.0/1.1 (OpenSSL 3 refuses by default), so
  // a failure is the server's refusal, not the client's.
  const legacy = { ca: certs.caCert, ciphers: 'DEFAULT@SECLEVEL=0', servername: 'localhost' };
  for (const version of ['TLSv1', 'TLSv1.1'] as SecureVersion[]) {
    const outcome = await handshake(server.admissionUrl, {
      ...legacy,
      minVersion: version,
      maxVersion: version,
    });
    t.equal(outcome.protocol, undefined, `${version}: no connection`);
    t.match(
      outcome.error,
      /ALERT_PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL|WRONG_VERSION/,
      `${version}: the server answered with a protocol-version alert (${String(outcome.error)})`,
    );
  }
  for (const version of ['TLSv1.2', 'TLSv1.3'] as SecureVersion[]) {
    const outcome = await handshake(server.admissionUrl, {
      ...legacy,
      minVersion: version,
      maxVersion: version,
    });
    t.equal(outcome.protocol, version, `${version}: accepted with the same client settings`);
  }
});

t.test('plain HTTP on the admission port gets no admission answer', async (t) => {
  const { server } = await serverFor(t);
  const { port } = new URL(server.admissionUrl);
  const outcome = await new Promise<{ status?: number; body?: string; error?: string }>(
    (resolve) => {
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port: Number(port),
          method: 'POST',
          path: '/validate',
          headers: { 'content-type': 'application/json' },
          agent: false,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() });
          });
        },
      );
      req.on('error', (error: NodeJS.ErrnoException) => {
        resolve({ error: error.code ?? error.message });
      });
      req.setTimeout(5_000, () => req.destroy(new Error('timeout')));
      req.end(JSON.stringify(fixture('secret-update')));
    },
  );
  t.not(outcome.status, 200, `plain HTTP is not served (${JSON.stringify(outcome).slice(0, 120)})`);
  t.notMatch(outcome.body ?? '', /AdmissionReview/, 'and never gets an AdmissionReview');
  const livez = await httpGet(`${server.healthUrl}/livez`);
  t.equal(livez.status, 200, 'the server is unaffected');
});

t.test('mTLS when configured: no certificate or a foreign one refused', async (t) => {
  const { server, certs } = await serverFor(t, true);
  const url = `${server.admissionUrl}/validate`;
  const body = JSON.stringify(fixture('secret-update'));
  const good = await clientCertificate(certs, 'kube-apiserver');
  const accepted = await httpsCall(url, { ca: certs.caCert, body, timeoutMs: 5_000, ...good });
  t.equal(accepted.status, 200, 'a certificate from the client CA is accepted');

  const noCert = await handshake(server.admissionUrl, {
    ca: certs.caCert,
    servername: 'localhost',
  });
  t.ok(
    noCert.error !== undefined,
    `a client without a certificate is cut off (${String(noCert.error)})`,
  );
  await t.rejects(
    httpsCall(url, { ca: certs.caCert, body, timeoutMs: 5_000 }),
    'and gets no admission answer',
  );

  const otherCa = await generateCertificates({ dnsNames: ['intruder'] });
  const foreign = await clientCertificate(otherCa, 'kube-apiserver');
  await t.rejects(
    httpsCall(url, { ca: certs.caCert, body, timeoutMs: 5_000, ...foreign }),
    'a certificate from another CA with the same CN is refused',
  );
  // The serving certificate itself (same CA, serverAuth only) is no client certificate.
  const serving = {
    cert: await readFile(certs.certFile, 'utf8'),
    key: await readFile(certs.keyFile, 'utf8'),
  };
  await t.rejects(
    httpsCall(url, { ca: certs.caCert, body, timeoutMs: 5_000, ...serving }),
    'a serverAuth-only certificate of the same CA is refused as a client certificate',
  );
  const again = await httpsCall(url, { ca: certs.caCert, body, timeoutMs: 5_000, ...good });
  t.equal(again.status, 200, 'the right certificate still works afterwards');
});

t.test('oversized headers and bodies are refused', async (t) => {
  const { server, certs } = await serverFor(t);
  const url = `${server.admissionUrl}/validate`;
  const header = await httpsCall(url, {
    ca: certs.caCert,
    body: JSON.stringify(fixture('secret-update')),
    headers: { 'x-padding': 'h'.repeat(20 * 1024) },
    timeoutMs: 10_000,
  }).then(
    (answer) => String(answer.status),
    (error: unknown) => String((error as { code?: string }).code ?? error),
  );
  t.match(header, /^(431|ECONNRESET|EPIPE)$/, `a 20 KiB header is refused (${header})`);

  const review = fixture('secret-update');
  if (review.request.object?.data !== undefined) {
    review.request.object.data.big = 'A'.repeat(8 * 1024 * 1024);
  }
  const big = await postOversized(url, {
    ca: certs.caCert,
    body: JSON.stringify(review),
    timeoutMs: 30_000,
  });
  t.equal(big.status, 413, 'an 8 MiB body gets 413');
  t.match(JSON.parse(big.body || '{}'), { message: /larger than/ }, 'with a message saying why');
  t.ok(big.body.length < 1_000, 'and a short body (nothing echoed)');

  const livez = await httpGet(`${server.healthUrl}/livez`);
  t.equal(livez.status, 200, 'the server is unaffected');
  const after = await httpsCall(url, {
    ca: certs.caCert,
    body: JSON.stringify(fixture('secret-update')),
    timeoutMs: 5_000,
  });
  t.equal(after.status, 200, 'and keeps admitting normal reviews');
});

t.test('the health port shrugs off junk requests', async (t) => {
  const { server } = await serverFor(t);
  const statuses: string[] = [];
  const paths = [
    '/livez',
    '/readyz',
    '/healthz/kms',
    '/metrics',
    '/',
    '/../../etc/passwd',
    `/${'x'.repeat(8_000)}`,
    '/metrics?name[]=x&%ff',
  ];
  for (const path of paths) {
    for (const method of ['GET', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'TRACE']) {
      const status = await new Promise<number>((resolve) => {
        const req = httpRequest(
          `${server.healthUrl}${path}`,
          { method, agent: false, headers: { 'content-type': 'application/json' } },
          (res) => {
            res.resume();
            res.on('end', () => {
              resolve(res.statusCode ?? 0);
            });
          },
        );
        req.on('error', () => {
          resolve(-1);
        });
        req.end(method === 'GET' ? undefined : '{"request":');
      });
      if (status >= 500 && !(status === 503 && method === 'GET'))
        statuses.push(`${method} ${path.slice(0, 40)} → ${status}`);
    }
  }
  t.same(statuses, [], 'no 5xx from junk methods, paths and bodies (503 only as a health answer)');
  t.equal((await httpGet(`${server.healthUrl}/livez`)).status, 200, '/livez still answers');
});
