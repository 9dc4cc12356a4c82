// Slow and stalled clients on the admission port: legitimate admissions still answer within
// the API server's webhook timeout (a wall-clock bound, hence a timed test).
import t from 'tap';
import { connect, type TLSSocket } from 'node:tls';
import { fixture, startTestServer } from '../helpers/server.js';
import { httpGet, httpsCall } from '../helpers/http.js';

t.test('slow and stalled clients do not block admissions', async (t) => {
  const { server, certs } = await startTestServer(t);
  const { hostname, port } = new URL(server.admissionUrl);
  const sockets: TLSSocket[] = [];
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
  });
  // 150 connections: idle after the handshake, stuck in the headers, or stuck in the body.
  await Promise.all(
    Array.from(
      { length: 150 },
      (_, index) =>
        new Promise<void>((resolve) => {
          const socket = connect(
            { host: hostname, port: Number(port), ca: certs.caCert, servername: 'localhost' },
            () => {
              if (index % 3 === 1) socket.write('POST /validate HTTP/1.1\r\nHost: x\r\nContent-');
              if (index % 3 === 2) {
                socket.write(
                  'POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"request":',
                );
              }
              resolve();
            },
          );
          socket.on('error', () => {
            resolve();
          });
          sockets.push(socket);
        }),
    ),
  );
  const answers = await Promise.all(
    Array.from({ length: 20 }, (_, index) => {
      const review = fixture('secret-update');
      review.request.uid = `legit-${index}`;
      return httpsCall(`${server.admissionUrl}/validate`, {
        ca: certs.caCert,
        body: JSON.stringify(review),
        timeoutMs: 2_000,
      }).then(
        (answer) => answer.status,
        (error: unknown) => String((error as { code?: string }).code ?? error),
      );
    }),
  );
  t.same(
    answers,
    answers.map(() => 200),
    '20 admissions are answered within 2 s while 150 slow clients hold connections',
  );
  t.equal((await httpGet(`${server.healthUrl}/livez`)).status, 200, '/livez still answers');
});
