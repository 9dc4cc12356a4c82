import t from 'tap';
import { request as httpsRequest } from 'node:https';
import { createLogger } from '../../src/logging/logger.js';
import { startServer } from '../../src/server/serve.js';
import {
  fakeSource,
  fixture,
  makeCertDir,
  serveSettings,
  startTestServer,
} from '../helpers/server.js';
import { httpGet, postReview, toResult, type HttpResult } from '../helpers/http.js';

t.test('shutdown during traffic: in-flight admissions finish, then listeners close', async (t) => {
  const { server, certs } = await startTestServer(t);

  // Several admissions are mid-body (headers and half the JSON sent) when shutdown starts.
  const inFlight = Array.from({ length: 5 }, (_, index) => {
    const review = fixture('secret-update');
    review.request.uid = `in-flight-${index}`;
    const body = Buffer.from(JSON.stringify(review));
    const half = Math.floor(body.length / 2);
    let sendRest: () => void = () => undefined;
    const answered = new Promise<HttpResult>((resolve, reject) => {
      const req = httpsRequest(
        `${server.admissionUrl}/validate`,
        {
          method: 'POST',
          ca: certs.caCert,
          agent: false,
          headers: { 'content-type': 'application/json', 'content-length': String(body.length) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            resolve(toResult(res.statusCode ?? 0, res.headers, text));
          });
        },
      );
      req.on('error', reject);
      req.write(body.subarray(0, half));
      sendRest = () => req.end(body.subarray(half));
    });
    return {
      answered,
      sendRest: () => {
        sendRest();
      },
      uid: review.request.uid,
    };
  });
  // Make sure every request reached the server before shutting down.
  const ready = await postReview(
    `${server.admissionUrl}/validate`,
    fixture('secret-update'),
    certs.caCert,
  );
  t.equal(ready.status, 200, 'the server answers before shutdown');

  const closed = server.close();
  const readyz = await httpGet(`${server.healthUrl}/readyz`);
  t.equal(readyz.status, 503, '/readyz turns 503 as soon as shutdown starts');
  t.match(readyz.json().reason, /shutting down/, 'and says why');

  await t.rejects(
    postReview(`${server.admissionUrl}/validate`, fixture('secret-update'), certs.caCert),
    'new connections are refused while draining',
  );

  for (const request of inFlight) request.sendRest();
  const results = await Promise.all(inFlight.map((request) => request.answered));
  results.forEach((result, index) => {
    t.equal(result.status, 200, `in-flight admission ${index} answered with 200`);
    t.equal(
      result.headers.connection,
      'close',
      `in-flight admission ${index}: connection closed after`,
    );
    t.equal(
      result.answer().response.uid,
      inFlight[index]!.uid,
      `in-flight admission ${index}: its uid`,
    );
  });
  await closed;
  await t.rejects(httpGet(`${server.healthUrl}/livez`), 'the health listener is closed at the end');
});

t.test('shutdown is bounded: a stuck connection is cut after the timeout', async (t) => {
  const certs = await makeCertDir();
  t.teardown(() => certs.cleanup());
  const server = await startServer({
    settings: serveSettings(certs),
    logger: createLogger('silent'),
    monitor: fakeSource(),
    host: '127.0.0.1',
    shutdownTimeoutMs: 200,
  });
  // A request that never finishes its body.
  const stuck = new Promise<string>((resolve) => {
    const req = httpsRequest(`${server.admissionUrl}/validate`, {
      method: 'POST',
      ca: certs.caCert,
      agent: false,
      headers: { 'content-type': 'application/json', 'content-length': '1000' },
    });
    req.on('error', (error) => {
      resolve(error.message);
    });
    req.on('response', () => {
      resolve('answered');
    });
    req.write('{"request":');
  });
  const ok = await postReview(
    `${server.admissionUrl}/validate`,
    fixture('secret-update'),
    certs.caCert,
  );
  t.equal(ok.status, 200, 'server up');
  await server.close();
  t.pass('close() resolved although a client never finished its request');
  t.not(await stuck, 'answered', 'the stuck connection was cut');
});
