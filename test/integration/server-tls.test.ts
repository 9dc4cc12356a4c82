import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { rename, symlink, mkdir, writeFile, readFile, rm } from 'node:fs/promises';
import { Agent } from 'node:https';
import { join } from 'node:path';
import { connect, type PeerCertificate } from 'node:tls';
import { generateCertificates } from '../../src/certs/generate.js';
import { createLogger } from '../../src/logging/logger.js';
import { startServer } from '../../src/server/serve.js';
import {
  clientCertificate,
  fakeSource,
  fixture,
  makeCertDir,
  serveSettings,
  startTestServer,
} from '../helpers/server.js';
import { eventually } from '../helpers/eventually.js';
import { LogCapture } from '../helpers/logs.js';
import { postReview } from '../helpers/http.js';

/** The serving certificate a fresh TLS handshake sees. */
function handshakeCertificate(url: string, ca: string[]): Promise<PeerCertificate> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(
      { host: hostname, port: Number(port), ca, servername: undefined },
      () => {
        const cert = socket.getPeerCertificate();
        socket.end();
        resolve(cert);
      },
    );
    socket.on('error', reject);
  });
}

function fingerprint(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}

t.test('certificate rotation by kubelet-style ..data symlink swap during traffic', async (t) => {
  const certs = await makeCertDir();
  t.teardown(() => certs.cleanup());
  // Lay the files out as a mounted Secret volume: tls.crt -> ..data/tls.crt -> ..2026_1/tls.crt
  const volume = join(certs.dir, 'volume');
  const first = join(volume, '..2026_11_28_01');
  await mkdir(first, { recursive: true });
  await writeFile(join(first, 'tls.crt'), await readFile(certs.certFile));
  await writeFile(join(first, 'tls.key'), await readFile(certs.keyFile));
  await symlink('..2026_11_28_01', join(volume, '..data'));
  await symlink('..data/tls.crt', join(volume, 'tls.crt'));
  await symlink('..data/tls.key', join(volume, 'tls.key'));

  const logs = new LogCapture();
  const server = await startServer({
    settings: serveSettings(certs, {
      tlsCertFile: join(volume, 'tls.crt'),
      tlsKeyFile: join(volume, 'tls.key'),
    }),
    logger: createLogger('info', logs),
    monitor: fakeSource(),
    host: '127.0.0.1',
    tlsPollIntervalMs: 60_000,
  });
  t.teardown(() => server.close());

  const renewed = await generateCertificates({
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
  });
  const bothCas = [certs.caCert, renewed.caCert];
  const keepAlive = new Agent({ keepAlive: true, maxSockets: 1, ca: bothCas });
  t.teardown(() => {
    keepAlive.destroy();
  });

  const before = await postReview(
    `${server.admissionUrl}/validate`,
    fixture('secret-update'),
    certs.caCert,
    {
      agent: keepAlive,
    },
  );
  t.equal(before.status, 200, 'a keep-alive connection works before the rotation');
  t.equal(
    (await handshakeCertificate(server.admissionUrl, bothCas)).fingerprint256,
    fingerprint(await readFile(certs.certFile, 'utf8')),
    'handshakes see the first certificate',
  );

  // Traffic keeps flowing while the kubelet swaps the ..data symlink atomically.
  const control = { stop: false };
  let answered = 0;
  const failures: string[] = [];
  const traffic = (async () => {
    const fresh = new Agent({ keepAlive: false, ca: bothCas });
    try {
      while (!control.stop) {
        try {
          const result = await postReview(
            `${server.admissionUrl}/validate`,
            fixture('secret-update'),
            certs.caCert,
            {
              agent: fresh,
            },
          );
          if (result.status === 200) answered += 1;
          else failures.push(`HTTP ${result.status}`);
        } catch (error) {
          failures.push(String(error));
        }
      }
    } finally {
      fresh.destroy();
    }
  })();

  const second = join(volume, '..2026_11_28_02');
  await mkdir(second);
  await writeFile(join(second, 'tls.crt'), renewed.cert);
  await writeFile(join(second, 'tls.key'), renewed.key);
  await symlink('..2026_11_28_02', join(volume, '..data_tmp'));
  await rename(join(volume, '..data_tmp'), join(volume, '..data'));
  await rm(first, { recursive: true });

  const switched = await eventually(async () => {
    const seen = await handshakeCertificate(server.admissionUrl, bothCas);
    return seen.fingerprint256 === fingerprint(renewed.cert);
  });
  control.stop = true;
  await traffic;
  t.ok(switched, 'new handshakes see the renewed certificate after the file change (fs.watch)');
  t.same(failures, [], 'no request failed during the rotation');
  t.ok(answered > 0, `requests kept being answered during the rotation (${answered})`);

  const after = await postReview(
    `${server.admissionUrl}/validate`,
    fixture('secret-update'),
    certs.caCert,
    {
      agent: keepAlive,
    },
  );
  t.equal(after.status, 200, 'the keep-alive connection opened before the rotation still works');
  t.match(logs.text(), /TLS certificate reloaded/, 'the reload is logged');
  t.equal(
    await server.reloadTls(),
    false,
    'an explicit re-check with unchanged files changes nothing',
  );
});

t.test('a half-written pair is skipped and the current certificate kept', async (t) => {
  const certs = await makeCertDir();
  t.teardown(() => certs.cleanup());
  const logs = new LogCapture();
  const server = await startServer({
    settings: serveSettings(certs),
    logger: createLogger('info', logs),
    monitor: fakeSource(),
    host: '127.0.0.1',
    tlsPollIntervalMs: 60_000,
  });
  t.teardown(() => server.close());
  const renewed = await generateCertificates({
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
  });
  await writeFile(certs.certFile, renewed.cert); // key not yet written: mismatched pair
  t.equal(await server.reloadTls(), false, 'a mismatched pair is not applied');
  const result = await postReview(
    `${server.admissionUrl}/validate`,
    fixture('secret-update'),
    certs.caCert,
  );
  t.equal(result.status, 200, 'the old certificate still serves');
  await writeFile(certs.keyFile, renewed.key);
  // The explicit check and the fs.watch-triggered one may race; either applies the pair.
  await server.reloadTls();
  t.ok(
    await eventually(
      async () =>
        (await handshakeCertificate(server.admissionUrl, [renewed.caCert])).fingerprint256 ===
        fingerprint(renewed.cert),
    ),
    'the complete pair is applied',
  );
  const fresh = await postReview(
    `${server.admissionUrl}/validate`,
    fixture('secret-update'),
    renewed.caCert,
  );
  t.equal(fresh.status, 200, 'the renewed certificate serves');
  t.match(logs.text(), /cannot be loaded yet/, 'the skipped attempt is logged');
});

t.test('TLS 1.2 is the minimum', async (t) => {
  const { server, certs } = await startTestServer(t);
  const { hostname, port } = new URL(server.admissionUrl);
  const outcome = await new Promise<string>((resolve) => {
    const socket = connect(
      {
        host: hostname,
        port: Number(port),
        ca: certs.caCert,
        minVersion: 'TLSv1',
        maxVersion: 'TLSv1.1',
      },
      () => {
        socket.end();
        resolve('connected');
      },
    );
    socket.on('error', (error: Error) => {
      resolve(error.message);
    });
  });
  t.not(outcome, 'connected', `a TLS 1.1 client is refused (${outcome})`);
});

t.test(
  'mTLS with --client-ca: accepted with a client cert, refused without or with a wrong one',
  async (t) => {
    const certs = await makeCertDir();
    t.teardown(() => certs.cleanup());
    const server = await startServer({
      settings: serveSettings(certs, { clientCaFile: certs.caFile }),
      logger: createLogger('silent'),
      monitor: fakeSource(),
      host: '127.0.0.1',
    });
    t.teardown(() => server.close());
    const url = `${server.admissionUrl}/validate`;
    const good = await clientCertificate(certs, 'kube-apiserver');
    const accepted = await postReview(url, fixture('secret-update'), certs.caCert, good);
    t.equal(accepted.status, 200, 'a client certificate from the client CA is accepted');
    t.equal(accepted.answer().response.allowed, true, 'and answered');

    await t.rejects(
      postReview(url, fixture('secret-update'), certs.caCert),
      'a client without a certificate is refused',
    );
    const otherCa = await generateCertificates({ dnsNames: ['other'] });
    const wrong = await clientCertificate(otherCa, 'intruder');
    await t.rejects(
      postReview(url, fixture('secret-update'), certs.caCert, wrong),
      'a client certificate from another CA is refused',
    );
  },
);
