import t from 'tap';
import { createLogger } from '../../src/logging/logger.js';
import { startServer } from '../../src/server/serve.js';
import {
  fakeSource,
  fixture,
  makeCertDir,
  serveSettings,
  unusableSnapshot,
  usableSnapshot,
  injectAdmission,
} from '../helpers/server.js';
import { httpGet, httpsCall, postReview } from '../helpers/http.js';
import { LogCapture } from '../helpers/logs.js';

// Distinct canaries per place a Secret value can travel.
const CANARY = {
  data: 'Q0FOQVJZLWRhdGEtN2YzYQ==', // base64 of CANARY-data-7f3a
  dataPlain: 'CANARY-data-7f3a',
  stringData: 'CANARY-stringData-91bc',
  oldData: 'CANARY-oldObject-data-22de',
  oldAnnotation: 'CANARY-last-applied-5e0f',
  broken: 'CANARY-broken-json-0a1b',
};

function poisoned(name: 'secret-update' | 'secret-create-generatename') {
  const review = fixture(name);
  review.request.object!.data = { password: CANARY.data };
  review.request.object!.stringData = { token: CANARY.stringData };
  if (review.request.oldObject) {
    review.request.oldObject.data = { password: CANARY.oldData };
    review.request.oldObject.metadata.annotations = {
      'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify({
        data: { password: CANARY.oldAnnotation },
      }),
    };
  }
  return review;
}

t.test(
  'Secret data never appears in logs, responses, errors or metrics (trace level)',
  async (t) => {
    const certs = await makeCertDir();
    t.teardown(() => certs.cleanup());
    const logs = new LogCapture();
    const source = fakeSource();
    const server = await startServer({
      settings: serveSettings(certs, { logLevel: 'trace' }),
      logger: createLogger('trace', logs),
      monitor: source,
      host: '127.0.0.1',
    });
    t.teardown(() => server.close());
    const responses: string[] = [];
    const url = server.admissionUrl;

    for (const snapshot of [usableSnapshot(), unusableSnapshot('Disabled')]) {
      source.current = snapshot;
      for (const name of ['secret-update', 'secret-create-generatename'] as const) {
        for (const path of ['/validate', '/mutate']) {
          const result = await postReview(`${url}${path}`, poisoned(name), certs.caCert);
          t.equal(result.status, 200, `${name} ${path}: answered`);
          responses.push(result.body);
        }
      }
    }
    // Error paths with Secret values in the body.
    const broken = `{"request":{"uid":"u","object":{"data":{"k":"${CANARY.broken}"`;
    const errorBodies = [
      await httpsCall(`${url}/validate`, { ca: certs.caCert, body: broken }),
      await httpsCall(`${url}/validate`, {
        ca: certs.caCert,
        body: JSON.stringify({ object: { data: { k: CANARY.broken } } }),
      }),
      await httpsCall(`${url}/validate`, {
        ca: certs.caCert,
        body: JSON.stringify(poisoned('secret-update')),
        headers: { 'content-type': 'text/plain' },
      }),
    ];
    t.same(
      errorBodies.map((result) => result.status),
      [400, 400, 415],
      'error paths answered 400, 400, 415',
    );
    responses.push(...errorBodies.map((result) => result.body));
    const metrics = await httpGet(`${server.healthUrl}/metrics`);
    const kms = await httpGet(`${server.healthUrl}/healthz/kms`);
    await server.close();

    const everything = {
      logs: logs.text(),
      responses: responses.join('\n'),
      metrics: metrics.body,
      healthz: kms.body,
    };
    t.ok(logs.lines().length > 0, 'the logger wrote lines (trace level)');
    const admissionLines = logs.lines().filter((line) => line.msg === 'admission');
    t.equal(admissionLines.length, 8, 'one log line per admission');
    t.match(
      admissionLines[0],
      {
        uid: String,
        operation: 'UPDATE',
        namespace: 'payments',
        name: 'api-token',
        user: 'alice@example.com',
        decision: String,
        durationMs: Number,
      },
      'the admission line carries uid, operation, namespace, name, user, decision, duration',
    );
    for (const [where, text] of Object.entries(everything)) {
      for (const [label, canary] of Object.entries(CANARY)) {
        t.notOk(text.includes(canary), `${label} canary absent from ${where}`);
      }
    }
  },
);

t.test('routine admissions log at debug; denials and warnings at info', async (t) => {
  const logs = new LogCapture();
  const app = await injectAdmission(t, {}, createLogger('debug', logs));
  const review = fixture('secret-update');
  await app.review('/validate', review);
  await app.review('/mutate', review);
  app.source.current = unusableSnapshot('Disabled');
  await app.review('/validate', review);

  const admissions = logs.lines().filter((line) => line.msg === 'admission');
  t.same(
    admissions.map((line) => [line.webhook, line.decision, line.level]),
    [
      ['validate', 'allowed', 'debug'],
      ['mutate', 'patched', 'debug'],
      ['validate', 'denied', 'info'],
    ],
    'allowed and patched at debug (the audit log has them), denied at info',
  );
});
