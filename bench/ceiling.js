#!/usr/bin/env node
/**
 * The ceiling: the least a Node.js HTTPS webhook can do. A bare node:https server with the
 * same certificate that reads the body, JSON.parses it and answers a fixed allowed
 * AdmissionReview echoing the uid. No framework, no logging, no metrics.
 *
 *   node bench/ceiling.js '{"certFile":"tls.crt","keyFile":"tls.key","port":0}'
 *
 * With "stamp":true it answers like a mutating webhook that stamps: a JSON patch adding
 * three annotations of the guard's sizes whenever the object has none of them (the
 * end-to-end bench's ceiling for any stamping webhook behind kube-apiserver).
 *
 * Prints one JSON line {"port":N} once listening; stops on SIGTERM/SIGINT.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';

const options = JSON.parse(process.argv[2] ?? '{}');
const STAMP_KEY = 'kms-secret-guard.io/key-id';
const STAMP_PATCH = Buffer.from(
  JSON.stringify([
    {
      op: 'add',
      path: '/metadata/annotations',
      value: {
        [STAMP_KEY]: 'ceiling-0000-0000-0000-000000000000',
        'kms-secret-guard.io/key-version': 'ceiling-0000-0000-0000-000000000000',
        'encryption-key-rotation-time': '2026-01-01T00:00:00Z',
      },
    },
  ]),
).toString('base64');
const server = createServer(
  {
    cert: readFileSync(options.certFile),
    key: readFileSync(options.keyFile),
    minVersion: 'TLSv1.2',
  },
  (req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      let request;
      try {
        request = JSON.parse(Buffer.concat(chunks).toString('utf8')).request;
      } catch {
        res.writeHead(400).end();
        return;
      }
      const uid = request?.uid ?? '';
      const stamp =
        options.stamp === true && request?.object?.metadata?.annotations?.[STAMP_KEY] === undefined
          ? `,"patchType":"JSONPatch","patch":"${STAMP_PATCH}"`
          : '';
      const body = `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":${JSON.stringify(uid)},"allowed":true${stamp}}}`;
      res.writeHead(200, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(body),
      });
      res.end(body);
    });
  },
);
// Same idle keep-alive as the webhook (past the Go client's 90 s), so neither side drops warm connections.
server.keepAliveTimeout = 95_000;
server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections();
  });
}
