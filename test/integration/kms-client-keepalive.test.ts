import t from 'tap';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import {
  createKmsClient,
  isStaleConnectionError,
  retryOnStaleConnection,
} from '../../src/kms/client.js';
import { createKeyMonitor } from '../../src/kms/monitor.js';
import {
  startEmulator,
  KEEP_ALIVE_TIMEOUT_MS,
  HEADERS_TIMEOUT_MS,
} from '../../src/emulator/index.js';
import { eventually } from '../helpers/eventually.js';
import { monitorSettings } from '../helpers/kms.js';
import { recordingLogger } from '../helpers/logs.js';

// A gateway closes idle keep-alive connections; a client that reuses such a socket just as
// it closes gets ECONNRESET / "socket hang up" before any answer. The guard's KMS client
// retries that once at once, on a fresh connection.

const IDLE_MS = 100;

/**
 * A tiny KMS stand-in with a short idle timeout. To lose the race every time rather than
 * by chance, it resets any request that arrives on a connection idle for IDLE_MS or more:
 * what a server whose keepAliveTimeout fires as the request arrives does.
 */
async function racingGateway(t: { teardown(fn: () => unknown): void }) {
  const lastAnswer = new WeakMap<Socket, number>();
  const stats = { requests: 0, resets: 0, connections: 0 };
  // keepAliveTimeout stays at 5 s: Node clients keep a socket for the server's `Keep-Alive:
  // timeout=N` hint minus 1 s, so a 1 s timeout would stop them reusing sockets at all.
  const server: Server = createServer({ keepAliveTimeout: 5_000 }, (req, res) => {
    stats.requests += 1;
    const last = lastAnswer.get(req.socket);
    if (last !== undefined && Date.now() - last >= IDLE_MS) {
      stats.resets += 1;
      req.socket.destroy();
      return;
    }
    const action = new URL(req.url ?? '/', 'http://x').searchParams.get('Action') ?? '';
    req.resume();
    req.on('end', () => {
      answer(res, action);
      res.on('finish', () => lastAnswer.set(req.socket, Date.now()));
    });
  });
  server.on('connection', () => {
    stats.connections += 1;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      }),
  );
  const { port } = server.address() as AddressInfo;
  return { endpoint: `127.0.0.1:${port}`, stats };
}

function answer(res: ServerResponse, action: string): void {
  const version = { KeyId: 'k', KeyVersionId: 'v1', CreationDate: '2026-01-01T00:00:00Z' };
  const bodies: Record<string, unknown> = {
    DescribeKey: { KeyMetadata: { KeyId: 'k', KeyState: 'Enabled', PrimaryKeyVersion: 'v1' } },
    ListKeyVersions: { TotalCount: 1, KeyVersions: { KeyVersion: [version] } },
    DescribeKeyVersion: { KeyVersion: version },
  };
  const text = JSON.stringify({ RequestId: 'r', ...(bodies[action] as object) });
  res.writeHead(200, { 'content-type': 'application/json' }).end(text);
}

const settings = (endpoint: string) => ({
  keyId: 'k',
  regionId: 'cn-hangzhou',
  endpoint,
  protocol: 'http' as const,
});
const credential = { accessKeyId: 'LTAIx', accessKeySecret: 'y' };

t.test('lookups spaced just above the idle timeout never fail', async (t) => {
  const gateway = await racingGateway(t);
  const client = createKmsClient(settings(gateway.endpoint), { credential });
  const polls = 5;
  for (let poll = 0; poll < polls; poll += 1) {
    if (poll > 0) await new Promise((resolve) => setTimeout(resolve, IDLE_MS + 20));
    const key = await client.describeKey('k');
    t.equal(key.keyState, 'Enabled', `poll ${poll + 1} succeeds`);
  }
  t.ok(
    gateway.stats.resets >= 1,
    `the gateway reset reused idle sockets (${JSON.stringify(gateway.stats)})`,
  );
  t.equal(
    gateway.stats.requests,
    polls + gateway.stats.resets,
    'each reset cost exactly one more request, no more',
  );
});

t.test('the monitor records no failure and logs no warning', async (t) => {
  const gateway = await racingGateway(t);
  const recording = recordingLogger();
  const monitor = createKeyMonitor({
    kms: settings(gateway.endpoint),
    monitor: monitorSettings({ refreshIntervalMs: IDLE_MS + 20, maxStalenessMs: 10_000 }),
    logger: recording.logger,
    api: createKmsClient(settings(gateway.endpoint), { credential }),
    random: () => 0.5,
  });
  t.teardown(() => monitor.stop());
  monitor.start();
  const resetsSeen = await eventually(() => gateway.stats.resets >= 3, { timeoutMs: 5_000 });
  t.ok(resetsSeen, 'the monitor polled through several resets of idle sockets');
  await monitor.stop();
  const snapshot = monitor.snapshot();
  t.equal(snapshot.lastFailure, undefined, 'no failed lookup');
  t.equal(snapshot.status, 'usable', 'the key stays usable');
  const warnings = recording.lines().filter((line) => Number(line.level) >= 40);
  t.same(warnings, [], 'no warning or error logged');
});

t.test('a KMS that resets every connection still fails, after two attempts', async (t) => {
  let attempts = 0;
  const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
  await t.rejects(
    retryOnStaleConnection(() => {
      attempts += 1;
      return Promise.reject(reset);
    }),
    reset,
    'the second reset is the failure',
  );
  t.equal(attempts, 2, 'one retry, no loop');
  t.ok(isStaleConnectionError(reset), 'socket hang up is a broken connection');
  t.notOk(
    isStaleConnectionError(Object.assign(new Error('aborted'), { code: 'ECONNRESET' })),
    'an answer cut off midway is not retried',
  );
  t.notOk(
    isStaleConnectionError(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' })),
    'a refused connection is not retried',
  );
  attempts = 0;
  await t.rejects(
    retryOnStaleConnection(() => {
      attempts += 1;
      return Promise.reject(new Error('Rejected.Throttling'));
    }),
  );
  t.equal(attempts, 1, 'API errors are never retried here');
});

t.test('the emulator keeps idle keep-alive connections open for over a minute', async (t) => {
  const keepAlive: number = KEEP_ALIVE_TIMEOUT_MS;
  const headers: number = HEADERS_TIMEOUT_MS;
  t.ok(keepAlive >= 60_000, 'keepAliveTimeout ≥ 60 s');
  t.ok(headers > keepAlive, 'headersTimeout above it');
  const emulator = await startEmulator({ keys: ['k'] });
  t.teardown(() => emulator.close());
  // Node's default would have closed the socket after 5 s; this one survives 6 s idle.
  const client = createKmsClient(settings(emulator.endpoint), {
    credential: { accessKeyId: emulator.accessKeyId, accessKeySecret: emulator.accessKeySecret },
  });
  t.equal((await client.describeKey('k')).keyState, 'Enabled', 'first call');
  await new Promise((resolve) => setTimeout(resolve, 6_000));
  t.equal((await client.describeKey('k')).keyState, 'Enabled', 'a call after 6 s idle');
});
