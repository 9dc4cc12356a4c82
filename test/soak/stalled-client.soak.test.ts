// Soak: a client that sends half a body and stalls must not hold a connection (and up to
// 7 MiB of buffered body) forever: it gets 408 after ADMISSION_REQUEST_TIMEOUT_MS (30 s; the
// API server gives up on a webhook by then anyway).
import t from 'tap';
import { connect } from 'node:tls';
import { startTestServer } from '../helpers/server.js';

/** The 30 s request timeout + the 5 s connection-check interval + slack. */
const BOUND_MS = 45_000;

t.test('a stalled request body is cut off', async (t) => {
  const { server, certs } = await startTestServer(t, { shutdownTimeoutMs: 1_000 });
  const { hostname, port } = new URL(server.admissionUrl);
  const started = Date.now();
  const outcome = await new Promise<string>((resolve) => {
    const socket = connect(
      { host: hostname, port: Number(port), ca: certs.caCert, servername: 'localhost' },
      () => {
        socket.write(
          'POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"request":',
        );
      },
    );
    const timer = setTimeout(() => {
      socket.destroy();
      resolve('still open');
    }, BOUND_MS);
    const done = (what: string) => () => {
      clearTimeout(timer);
      resolve(what);
    };
    socket.on('data', (chunk: Buffer) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(`answered ${chunk.toString().split('\r\n')[0] ?? ''}`);
    });
    socket.on('close', done('closed'));
    socket.on('error', done('error'));
  });
  t.not(
    outcome,
    'still open',
    `the server ended the stalled request (${outcome} after ${Date.now() - started} ms)`,
  );
});
