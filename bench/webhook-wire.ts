/**
 * What kube-apiserver's webhook client sends and what each call costs it, against a bare
 * recording webhook (no decision, fixed allowed answer) registered with the shipped
 * mutating webhook configuration: HTTP version and ALPN, TLS, headers, review size (CREATE
 * and UPDATE), TLS connections opened, and the API server's CPU per Secret create with the
 * recorder speaking HTTP/1.1 only (as `serve` does) against offering h2 (alternating rounds).
 * Exploratory, not part of `npm run bench`:
 *
 *   npm run build && node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/webhook-wire.ts
 *
 * BENCH_WIRE_ROUNDS (default 3 per protocol), BENCH_WIRE_MS (default 4000), BENCH_WIRE_CONCURRENCY (10).
 */
import { createSecureServer, type Http2SecureServer } from 'node:http2';
import { Agent, createServer, request, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readdirSync, readFileSync } from 'node:fs';
import type { TLSSocket } from 'node:tls';
import { generateCertificates } from '../src/certs/generate.js';
import {
  forLocalWebhook,
  shippedWebhookConfigurations,
  startCluster,
  type Cluster,
} from '../test/e2e/harness/index.js';

const ROUNDS = Number(process.env.BENCH_WIRE_ROUNDS ?? '3');
const PHASE_MS = Number(process.env.BENCH_WIRE_MS ?? '4000');
const CONCURRENCY = Number(process.env.BENCH_WIRE_CONCURRENCY ?? '10');
/** The recorder: HTTP/1.1 only (as `serve`), offering h2, or HTTP/1.1 answering with a stamp patch. */
type Protocol = 'http/1.1' | 'h2' | 'http/1.1 + patch';

/** Three annotations, as /mutate stamps them on a Secret without annotations. */
const STAMP_PATCH = {
  patchType: 'JSONPatch',
  patch: Buffer.from(
    JSON.stringify([
      {
        op: 'add',
        path: '/metadata/annotations',
        value: {
          'kms-secret-guard.io/key-id': 'key-0123456789',
          'kms-secret-guard.io/key-version': 'v-0123456789',
          'encryption-key-rotation-time': '2026-11-28T09:00:00Z',
        },
      },
    ]),
  ).toString('base64'),
};

interface Recorder {
  protocol: Protocol;
  url: string;
  calls: number;
  connections: number;
  samples: Record<string, unknown>[];
  close(): void;
}

async function startRecorder(
  protocol: Protocol,
  tls: { cert: string; key: string },
): Promise<Recorder> {
  const recorder: Recorder = {
    protocol,
    url: '',
    calls: 0,
    connections: 0,
    samples: [],
    close: () => undefined,
  };
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const review = JSON.parse(body.toString('utf8')) as {
        request: { uid: string; operation: string; object?: unknown; oldObject?: unknown };
      };
      recorder.calls += 1;
      const operation = review.request.operation;
      if (!recorder.samples.some((sample) => sample.operation === operation)) {
        // The TLS socket (HTTP/1.1) or the session's socket proxy (h2): both answer these.
        const socket = req.socket as unknown as Pick<
          TLSSocket,
          'alpnProtocol' | 'getProtocol' | 'getCipher'
        >;
        recorder.samples.push({
          operation,
          httpVersion: req.httpVersion,
          alpn: socket.alpnProtocol,
          tls: socket.getProtocol(),
          cipher: socket.getCipher().name,
          headers: req.headers,
          reviewBytes: body.length,
          objectBytes: JSON.stringify(review.request.object ?? null).length,
          oldObjectBytes: JSON.stringify(review.request.oldObject ?? null).length,
          managedFields: JSON.stringify(review.request.object).includes('managedFields'),
        });
      }
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          apiVersion: 'admission.k8s.io/v1',
          kind: 'AdmissionReview',
          response: {
            uid: review.request.uid,
            allowed: true,
            ...(protocol === 'http/1.1 + patch' ? STAMP_PATCH : {}),
          },
        }),
      );
    });
  };
  const server: Server | Http2SecureServer =
    protocol === 'h2'
      ? createSecureServer({ ...tls, allowHTTP1: true }, handler as never)
      : createServer(tls, handler);
  server.on('secureConnection', () => {
    recorder.connections += 1;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  recorder.url = `https://127.0.0.1:${(server.address() as { port: number }).port}`;
  recorder.close = () => server.close();
  return recorder;
}

function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function apiServerPid(cluster: Cluster): number {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (
        !cmdline.startsWith('/usr/bin/setpriv') &&
        cmdline.includes(`--cert-dir=${cluster.workDir}`)
      )
        return Number(entry);
    } catch {
      // gone
    }
  }
  throw new Error('kube-apiserver not found');
}

function post(
  agent: Agent,
  server: URL,
  path: string,
  body: string,
  method = 'POST',
): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        agent,
        host: server.hostname,
        port: server.port,
        method,
        path,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        res.resume();
        res.on('end', () => {
          resolve(res.statusCode ?? 0);
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const secret = (name: string, value: string): string =>
  JSON.stringify({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: 'wire' },
    data: { payload: Buffer.from(value.padEnd(512, 'x')).toString('base64') },
  });

async function main(): Promise<void> {
  const tls = await generateCertificates({
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
    commonName: 'wire',
  });
  const recorders: Record<Protocol, Recorder> = {
    'http/1.1': await startRecorder('http/1.1', tls),
    h2: await startRecorder('h2', tls),
    'http/1.1 + patch': await startRecorder('http/1.1 + patch', tls),
  };
  const protocols = Object.keys(recorders) as Protocol[];
  const cluster = await startCluster({ encryption: 'identity' });
  const mutating = shippedWebhookConfigurations('shipped').configurations.filter(
    (c) => c.kind === 'MutatingWebhookConfiguration',
  );
  try {
    const options: { ca?: Buffer | string; cert?: Buffer | string; key?: Buffer | string } = {};
    await cluster.kubeConfig().applyToHTTPSOptions(options);
    const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY, ...options });
    const server = new URL(cluster.server);
    if ((await cluster.kubectl(['create', 'namespace', 'wire'])).code !== 0)
      throw new Error('namespace');
    const pid = apiServerPid(cluster);
    const results: Record<Protocol, number[]> = { 'http/1.1': [], h2: [], 'http/1.1 + patch': [] };
    for (let round = 0; round < ROUNDS * protocols.length; round += 1) {
      const protocol = protocols[round % protocols.length]!;
      const recorder = recorders[protocol];
      const local = mutating.map((c) => forLocalWebhook(c, recorder.url, tls.caCert));
      const applied = await cluster.kubectl(['apply', '-f', '-'], {
        input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: local }),
      });
      if (applied.code !== 0) throw new Error(applied.stderr);
      // Until the API server calls this recorder (its informer picks the change up).
      for (let tries = 0; ; tries += 1) {
        const before = recorder.calls;
        await post(
          agent,
          server,
          '/api/v1/namespaces/wire/secrets?dryRun=All',
          secret(`probe-${round}-${tries}`, 'p'),
        );
        if (recorder.calls > before) break;
        if (tries > 200) throw new Error('the webhook was never called');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const connectionsBefore = recorder.connections;
      const cpuBefore = cpuMs(pid);
      let writes = 0;
      const deadline = performance.now() + PHASE_MS;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async (_, worker) => {
          for (let i = 0; performance.now() < deadline; i += 1) {
            const name = `s-${round}-${worker}-${i}`;
            if (
              (await post(agent, server, '/api/v1/namespaces/wire/secrets', secret(name, name))) ===
              201
            ) {
              writes += 1;
              if (i === 0)
                await post(
                  agent,
                  server,
                  `/api/v1/namespaces/wire/secrets/${name}`,
                  secret(name, 'u'),
                  'PUT',
                );
            }
          }
        }),
      );
      const perWrite = (cpuMs(pid) - cpuBefore) / Math.max(1, writes);
      results[protocol].push(Math.round(perWrite * 1000) / 1000);
      console.log(
        `round ${round + 1} ${protocol}: ${writes} creates, kube-apiserver ${perWrite.toFixed(3)} ms CPU per create, new TLS connections to the webhook ${recorder.connections - connectionsBefore}`,
      );
    }
    for (const recorder of Object.values(recorders)) {
      console.log(`${recorder.protocol} recorder: ${JSON.stringify(recorder.samples)}`);
    }
    console.log(JSON.stringify({ apiServerCpuMsPerCreate: results }));
    agent.destroy();
  } finally {
    await cluster.stop();
    for (const recorder of Object.values(recorders)) recorder.close();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
