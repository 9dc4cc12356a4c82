import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import t, { type Test } from 'tap';
import {
  generateCertificates,
  generateClientCertificate,
  serviceDnsNames,
} from '../../src/certs/generate.js';

interface HandshakeResult {
  readonly authorized: boolean;
  readonly error: string | undefined;
}

/** Starts a TLS server on loopback; closes it at teardown. */
async function startTlsServer(
  t: Test,
  options: tls.TlsOptions,
): Promise<{ port: number; server: tls.Server }> {
  const server = tls.createServer(options, (socket) => {
    socket.end('hello');
  });
  // Handshake failures are expected in some tests; swallow them on the server side.
  server.on('tlsClientError', () => undefined);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(
    () =>
      new Promise<void>((resolve) =>
        server.close(() => {
          resolve();
        }),
      ),
  );
  return { port: (server.address() as AddressInfo).port, server };
}

/** True when the server's greeting arrives, i.e. the server accepted this client. */
async function receivesData(options: tls.ConnectionOptions): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', ...options });
    socket.setTimeout(5000, () => {
      socket.destroy(new Error('timed out'));
    });
    socket.once('data', () => {
      resolve(true);
      socket.destroy();
    });
    socket.once('error', () => {
      resolve(false);
    });
    socket.once('close', () => {
      resolve(false);
    });
  });
}

async function handshake(options: tls.ConnectionOptions): Promise<HandshakeResult> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', ...options });
    socket.setTimeout(5000, () => {
      socket.destroy(new Error('handshake timed out'));
    });
    socket.once('secureConnect', () => {
      resolve({ authorized: socket.authorized, error: undefined });
      socket.destroy();
    });
    socket.once('error', (error: Error) => {
      resolve({ authorized: false, error: error.message });
      socket.destroy();
    });
  });
}

t.test('a client trusting only the CA completes a TLS handshake by DNS name', async (t) => {
  const generated = await generateCertificates({
    dnsNames: serviceDnsNames('kms-secret-guard', 'kms-secret-guard'),
    ipAddresses: ['127.0.0.1'],
  });
  const { port } = await startTlsServer(t, { cert: generated.cert, key: generated.key });

  for (const servername of serviceDnsNames('kms-secret-guard', 'kms-secret-guard')) {
    const result = await handshake({ port, servername, ca: generated.caCert });
    t.equal(result.error, undefined, `no TLS error for servername ${servername}`);
    t.ok(result.authorized, `server certificate verified for ${servername}`);
  }
  const byIp = await handshake({ port, ca: generated.caCert });
  t.ok(byIp.authorized, 'server certificate verified when connecting by IP (IP SAN)');

  const wrongName = await handshake({ port, servername: 'evil.example', ca: generated.caCert });
  t.match(wrongName.error ?? '', /altnames|Hostname/i, 'a name outside the SANs is rejected');

  const other = await generateCertificates({ dnsNames: ['kms-secret-guard'] });
  const wrongCa = await handshake({ port, servername: 'kms-secret-guard', ca: other.caCert });
  t.match(
    wrongCa.error ?? '',
    /self.signed|unable to (get|verify)/i,
    'a client trusting a different CA rejects the server',
  );
});

t.test('mTLS: the server accepts client certificates from the CA only', async (t) => {
  const generated = await generateCertificates({ dnsNames: ['kms-secret-guard'] });
  const client = await generateClientCertificate(generated, {
    commonName: 'kube-apiserver',
    organization: 'system:masters',
  });
  const { port } = await startTlsServer(t, {
    cert: generated.cert,
    key: generated.key,
    ca: generated.caCert,
    requestCert: true,
    rejectUnauthorized: true,
  });

  const accepted = await handshake({
    port,
    servername: 'kms-secret-guard',
    ca: generated.caCert,
    cert: client.cert,
    key: client.key,
  });
  t.equal(accepted.error, undefined, 'handshake with a CA-issued client certificate succeeds');
  t.ok(accepted.authorized, 'the client verified the server too');

  // TLS 1.3 reports the server's rejection after the handshake: look for the first byte.
  const base = { port, servername: 'kms-secret-guard', ca: generated.caCert };
  t.ok(
    await receivesData({ ...base, cert: client.cert, key: client.key }),
    'a client with a CA-issued clientAuth certificate gets data',
  );
  t.notOk(await receivesData(base), 'a client without a certificate gets no data');
  t.notOk(
    await receivesData({ ...base, cert: generated.cert, key: generated.key }),
    'a serverAuth-only certificate is refused as a client certificate',
  );
  const stranger = await generateCertificates({ dnsNames: ['x'] });
  const strangerClient = await generateClientCertificate(stranger, { commonName: 'x' });
  t.notOk(
    await receivesData({ ...base, cert: strangerClient.cert, key: strangerClient.key }),
    'a client certificate from another CA is refused',
  );
});
