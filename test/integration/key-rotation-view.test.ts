// lastRotation is KMS's LastRotationDate and rotationTime is what the stamp uses: shown through
// the real server's GET /healthz/kms and /mutate and the real `check` CLI, against the emulator.
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { runCli } from '../../src/cli/program.js';
import { createKmsClient } from '../../src/kms/client.js';
import { formatRfc3339, parseKmsDate } from '../../src/kms/dates.js';
import type { KeyStateView } from '../../src/kms/key-state.js';
import { createKeyMonitor } from '../../src/kms/monitor.js';
import { createLogger } from '../../src/logging/logger.js';
import type { RunningEmulator } from '../../src/emulator/index.js';
import { startServer } from '../../src/server/serve.js';
import { Kms, withEmulator } from '../helpers/emulator.js';
import { captureContext } from '../helpers/cli.js';
import { httpGet, postReview } from '../helpers/http.js';
import { emulatorKmsSettings } from '../helpers/kms.js';
import { decodePatch, fixture, makeCertDir, serveSettings } from '../helpers/server.js';

const DAY = 86_400_000;

function rfc3339(kmsDate: string | undefined): string | null {
  const parsed = parseKmsDate(kmsDate);
  return parsed === undefined ? null : formatRfc3339(parsed);
}

/**
 * The real server with a real monitor reading the key through `endpoint` (default: the
 * emulator). No monitor.start(): each refresh() is one DescribeKey, so the test decides when
 * KMS is read. `check` runs the real CLI against the same endpoint.
 */
async function startGuard(t: Test, emulator: RunningEmulator, keyId: string, endpoint?: string) {
  const kms = { ...emulatorKmsSettings(emulator, keyId), endpoint: endpoint ?? emulator.endpoint };
  const credential = {
    accessKeyId: emulator.accessKeyId,
    accessKeySecret: emulator.accessKeySecret,
  };
  const monitor = createKeyMonitor({
    kms,
    monitor: { refreshIntervalMs: 3_600_000, maxStalenessMs: 7_200_000 },
    logger: createLogger('silent'),
    api: createKmsClient(kms, { credential }),
  });
  t.teardown(() => monitor.stop());
  const certs = await makeCertDir();
  t.teardown(() => certs.cleanup());
  const server = await startServer({
    settings: serveSettings(certs, { kms }),
    logger: createLogger('silent'),
    monitor,
    host: '127.0.0.1',
  });
  t.teardown(() => server.close());
  const env = {
    ALIBABA_CLOUD_ACCESS_KEY_ID: credential.accessKeyId,
    ALIBABA_CLOUD_ACCESS_KEY_SECRET: credential.accessKeySecret,
    KMS_ENDPOINT: kms.endpoint,
    KMS_PROTOCOL: 'http',
  };
  return {
    /** Reads the key now, then answers GET /healthz/kms. */
    async health(): Promise<Record<string, unknown>> {
      await monitor.refresh();
      return (await httpGet(`${server.healthUrl}/healthz/kms`)).json();
    },
    /** The encryption-key-rotation-time /mutate stamps on a Secret update. */
    async stampedRotationTime(): Promise<string | undefined> {
      const answer = (
        await postReview(`${server.admissionUrl}/mutate`, fixture('secret-update'), certs.caCert)
      ).answer();
      const stamp = decodePatch(answer).find((op) =>
        op.path.endsWith('/encryption-key-rotation-time'),
      );
      return typeof stamp?.value === 'string' ? stamp.value : undefined;
    },
    async check(args: string[]): Promise<string> {
      const { ctx, stdout } = captureContext({ env });
      const code = await runCli(['check', '--kms-key-id', keyId, ...args], ctx);
      t.equal(code, 0, `check ${args.join(' ')}: exit 0`);
      return stdout();
    },
  };
}

t.test('a never-rotated key, then a rotated one: healthz/kms, the stamp and check', async (t) => {
  let emulatorNow = Date.parse('2026-01-01T00:00:00Z');
  const { emulator, sdk, keyId } = await withEmulator(t, {
    now: () => emulatorNow,
    // The SDK signs with wall-clock time; only the key dates follow the emulator's clock.
    timestampClock: Date.now,
  });
  const guard = await startGuard(t, emulator, keyId);

  for (const phase of ['never rotated', 'rotated'] as const) {
    if (phase === 'rotated') {
      emulatorNow += 30 * DAY;
      await sdk.createKeyVersion(new Kms.CreateKeyVersionRequest({ keyId }));
    }
    const kmsSays = (await sdk.describeKey(new Kms.DescribeKeyRequest({ keyId }))).keyMetadata;
    const lastRotation = rfc3339(kmsSays.lastRotationDate);
    const expectedRotationTime = lastRotation ?? rfc3339(kmsSays.creationDate);
    t.ok(lastRotation, `${phase}: KMS sends a LastRotationDate`);

    const health = await guard.health();
    t.equal(health.lastRotation, lastRotation, `${phase}: /healthz/kms lastRotation is KMS's`);
    t.equal(
      health.rotationTime,
      expectedRotationTime,
      `${phase}: /healthz/kms rotationTime is what the stamp uses`,
    );
    t.equal(
      await guard.stampedRotationTime(),
      health.rotationTime,
      `${phase}: /mutate stamps the rotationTime /healthz/kms shows`,
    );

    const json = JSON.parse(await guard.check(['--json'])) as KeyStateView;
    t.equal(json.lastRotation, lastRotation, `${phase}: check --json lastRotation is KMS's`);
    t.equal(json.rotationTime, expectedRotationTime, `${phase}: check --json rotationTime`);
    const human = await guard.check([]);
    t.match(
      human,
      new RegExp(`Last rotation: +${lastRotation ?? '-'}\n`),
      `${phase}: check prints KMS's LastRotationDate`,
    );
    t.match(
      human,
      new RegExp(`Rotation time: +${expectedRotationTime ?? '-'}\n`),
      `${phase}: and the rotation time the stamp uses`,
    );
  }
  t.equal(
    (await guard.health()).lastRotation,
    formatRfc3339(new Date(Date.parse('2026-01-01T00:00:00Z') + 30 * DAY)),
    'after the rotation, lastRotation is the date of the new primary version',
  );
});

function dropLastRotationDate(text: string): string {
  try {
    const parsed = JSON.parse(text) as { KeyMetadata?: Record<string, unknown> };
    if (parsed.KeyMetadata) delete parsed.KeyMetadata.LastRotationDate;
    return JSON.stringify(parsed);
  } catch {
    return text;
  }
}

/** A loopback proxy in front of the emulator that drops LastRotationDate from every answer. */
async function withoutLastRotationDate(t: Test, target: string): Promise<string> {
  const proxy = createServer((req, res) => {
    const upstream = httpRequest(
      `http://${target}${req.url ?? '/'}`,
      { method: req.method, headers: req.headers },
      (answer) => {
        const chunks: Buffer[] = [];
        answer.on('data', (chunk: Buffer) => chunks.push(chunk));
        answer.on('end', () => {
          res.writeHead(answer.statusCode ?? 502, {
            'content-type': answer.headers['content-type'] ?? 'application/json',
          });
          res.end(dropLastRotationDate(Buffer.concat(chunks).toString('utf8')));
        });
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        proxy.close(() => {
          resolve();
        });
      }),
  );
  return `127.0.0.1:${(proxy.address() as AddressInfo).port}`;
}

t.test('KMS sends no LastRotationDate: lastRotation null, rotationTime CreationDate', async (t) => {
  const { emulator, sdk, keyId } = await withEmulator(t);
  const guard = await startGuard(
    t,
    emulator,
    keyId,
    await withoutLastRotationDate(t, emulator.endpoint),
  );
  const creation = rfc3339(
    (await sdk.describeKey(new Kms.DescribeKeyRequest({ keyId }))).keyMetadata.creationDate,
  );

  const health = await guard.health();
  t.equal(health.usable, true, 'the key is usable');
  t.equal(health.lastRotation, null, '/healthz/kms: no LastRotationDate, no lastRotation');
  t.equal(health.rotationTime, creation, '/healthz/kms: the stamp uses CreationDate');
  t.equal(await guard.stampedRotationTime(), creation, '/mutate stamps CreationDate');

  const human = await guard.check([]);
  t.match(human, /Last rotation: +-\n/, 'check: no last rotation');
  t.match(
    human,
    new RegExp(`Rotation time: +${creation ?? ''} \\(CreationDate: KMS reports no rotation\\)\n`),
    'check: the rotation time and where it comes from',
  );
  t.equal(
    (JSON.parse(await guard.check(['--json'])) as KeyStateView).lastRotation,
    null,
    'check --json: lastRotation null',
  );
});
