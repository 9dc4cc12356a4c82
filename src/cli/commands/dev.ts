import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import KmsSdk from '@alicloud/kms20160120';
import RpcClient from '@alicloud/rpc-client';
import { Command } from 'commander';
import { certificateFiles, writeCertificateFiles } from '../../certs/files.js';
import { formatDuration, parseDuration } from '../../config/duration.js';
import {
  parseGuardMode,
  parseLogLevel,
  parseMonitorSettings,
  parseOnUnknown,
  parsePort,
  type RawSettings,
  type ServeSettings,
} from '../../config/settings.js';
import { startEmulator, type RunningEmulator } from '../../emulator/index.js';
import { createKmsClient } from '../../kms/client.js';
import { createLogger } from '../../logging/logger.js';
import type { RunningServer } from '../../server/serve.js';
import { addSettingOptions, rawSettings, type CliContext } from '../context.js';
import { listenError } from '../listen.js';
import { runServe } from './serve.js';

interface DevFlags {
  port: string;
  healthPort: string;
  controlPort: string;
}

const HOST = '127.0.0.1';
const DEMO_KEY_STATE_FILE = 'kms-emulator-state.json';

/** The serve settings dev shares with serve: same flags, same env variables, same checks. */
const SHARED_SETTINGS = [
  'refreshInterval',
  'maxStaleness',
  'onUnknown',
  'mode',
  'logLevel',
] as const;
/** The demo key changes by hand, so dev looks at it more often than serve's default 30s. */
const DEV_REFRESH_INTERVAL = '2s';
const DEV_MIN_STALENESS_MS = 10_000;

function given(text: string | undefined): string | undefined {
  const trimmed = text?.trim();
  return trimmed === undefined || trimmed === '' ? undefined : trimmed;
}

/** Dev's defaults (2s refresh; staleness 10× that, at least 10s) filled into what was not set. */
function withDevDefaults(raw: RawSettings): RawSettings {
  const refreshInterval = given(raw.refreshInterval) ?? DEV_REFRESH_INTERVAL;
  const refreshMs = parseDuration(refreshInterval) ?? 0;
  const maxStaleness =
    given(raw.maxStaleness) ?? formatDuration(Math.max(10 * refreshMs, DEV_MIN_STALENESS_MS));
  return { ...raw, refreshInterval, maxStaleness };
}

/** A Secret CREATE and UPDATE as the kube-apiserver sends them (values are fake). */
function sampleReview(operation: 'CREATE' | 'UPDATE'): unknown {
  const metadata = { name: 'demo-credentials', namespace: 'default' };
  const object = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata,
    type: 'Opaque',
    stringData: { password: 'not-a-real-password' },
  };
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid:
        operation === 'CREATE'
          ? '11111111-2222-4333-8444-555555555555'
          : '66666666-7777-4888-9999-000000000000',
      kind: { group: '', version: 'v1', kind: 'Secret' },
      resource: { group: '', version: 'v1', resource: 'secrets' },
      name: metadata.name,
      namespace: metadata.namespace,
      operation,
      userInfo: { username: 'dev@example.com', groups: ['system:authenticated'] },
      object,
      oldObject: operation === 'UPDATE' ? object : null,
      dryRun: false,
    },
  };
}

type KeyAction = 'disable' | 'enable' | 'rotate' | 'schedule-deletion' | 'cancel-deletion';
const KEY_ACTIONS: readonly KeyAction[] = [
  'disable',
  'enable',
  'rotate',
  'schedule-deletion',
  'cancel-deletion',
];

/**
 * A loopback-only helper so a newcomer can change the demo key with a pasteable curl; it
 * calls the emulator through the real KMS SDK, exactly as KMS would be driven.
 */
async function startKeyControl(
  emulator: RunningEmulator,
  keyId: string,
  port: number,
): Promise<Server> {
  const sdk = new KmsSdk.default(
    new RpcClient.Config({
      endpoint: emulator.endpoint,
      protocol: emulator.protocol,
      regionId: emulator.regionId,
      accessKeyId: emulator.accessKeyId,
      accessKeySecret: emulator.accessKeySecret,
    }),
  );
  const perform = async (action: KeyAction): Promise<void> => {
    switch (action) {
      case 'disable':
        await sdk.disableKey(new KmsSdk.DisableKeyRequest({ keyId }));
        return;
      case 'enable':
        await sdk.enableKey(new KmsSdk.EnableKeyRequest({ keyId }));
        return;
      case 'rotate':
        await sdk.createKeyVersion(new KmsSdk.CreateKeyVersionRequest({ keyId }));
        return;
      case 'schedule-deletion':
        await sdk.scheduleKeyDeletion(
          new KmsSdk.ScheduleKeyDeletionRequest({ keyId, pendingWindowInDays: 7 }),
        );
        return;
      case 'cancel-deletion':
        await sdk.cancelKeyDeletion(new KmsSdk.CancelKeyDeletionRequest({ keyId }));
        return;
    }
  };
  // Reads go through the guard's own typed client.
  const reader = createKmsClient(
    {
      keyId,
      regionId: emulator.regionId,
      endpoint: emulator.endpoint,
      protocol: emulator.protocol,
    },
    {
      credential: { accessKeyId: emulator.accessKeyId, accessKeySecret: emulator.accessKeySecret },
    },
  );
  const describe = async (): Promise<Record<string, unknown>> => {
    const meta = await reader.describeKey(keyId);
    return {
      keyId,
      keyState: meta.keyState,
      primaryKeyVersion: meta.primaryKeyVersion,
      deleteDate: meta.deleteDate,
    };
  };
  const send = (res: ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(`${JSON.stringify(body, null, 2)}\n`);
  };
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const match = /^\/key\/([a-z-]+)$/.exec(path);
    const action = KEY_ACTIONS.find((candidate) => candidate === match?.[1]);
    try {
      if (req.method === 'GET' && path === '/key') {
        send(res, 200, await describe());
      } else if (req.method === 'POST' && action !== undefined) {
        await perform(action);
        send(res, 200, { done: action, ...(await describe()) });
      } else {
        send(res, 404, {
          error: `no route ${req.method ?? ''} ${path}; try GET /key or POST /key/{${KEY_ACTIONS.join(',')}}`,
        });
      }
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      send(res, 409, {
        error: typeof code === 'string' ? code : 'Failed',
        message: error instanceof Error ? error.message : String(error),
      });
    }
  };
  const server = createServer((req, res) => {
    void handle(req, res);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, HOST, () => {
        resolve();
      });
    });
  } catch (error) {
    throw listenError(error, '--control-port', port);
  }
  return server;
}

function instructions(args: {
  server: RunningServer;
  emulator: RunningEmulator;
  keyId: string;
  control: string;
  dir: string;
  caFile: string;
  refresh: string;
}): string {
  const { server, emulator, keyId, control, dir, caFile, refresh } = args;
  const review = (file: string, path: string): string =>
    `curl --cacert ${caFile} -H 'Content-Type: application/json' --data @${join(dir, file)} ${server.admissionUrl}${path}`;
  return [
    '',
    'kms-secret-guard dev: a local KMS emulator, a throwaway CA and the webhook are running.',
    '',
    `  Admission (HTTPS):  ${server.admissionUrl}   POST /validate, POST /mutate`,
    `  Health (HTTP):      ${server.healthUrl}   /livez /readyz /healthz/kms /metrics`,
    `  KMS emulator:       ${emulator.url}   demo key ${keyId}, checked every ${refresh}`,
    `  Demo key control:   ${control}`,
    `  CA certificate:     ${caFile}`,
    `  Sample reviews:     ${dir}`,
    '',
    'Try it (paste into another terminal):',
    '',
    '  # 1. Allowed: a Secret CREATE while the key is Enabled',
    `  ${review('allowed.json', '/validate')}`,
    '',
    '  # 2. The mutating webhook stamps key id, version and rotation time (base64 JSON Patch)',
    `  ${review('allowed.json', '/mutate')}`,
    '',
    '  # 3. Disable the demo key (DisableKey), then within a few seconds the same kind of write is denied:',
    `  curl -X POST ${control}/key/disable`,
    `  ${review('denied.json', '/validate')}`,
    '',
    '  # 4. Re-enable it, rotate it (new primary version), or schedule / cancel its deletion:',
    `  curl -X POST ${control}/key/enable`,
    `  curl -X POST ${control}/key/rotate`,
    `  curl -X POST ${control}/key/schedule-deletion`,
    `  curl -X POST ${control}/key/cancel-deletion`,
    '',
    '  # What the guard knows about the key:',
    `  curl ${server.healthUrl}/healthz/kms`,
    '',
    'Logs (JSON) go to stderr. Stop with Ctrl-C; the temporary files are then removed.',
    '',
  ].join('\n');
}

export function devCommand(ctx: CliContext): Command {
  const command = new Command('dev')
    .description(
      'Everything on one machine: a KMS emulator with a demo key, a throwaway CA and certificate, and `serve` on them; prints ready-to-paste curl commands. What `npm start` runs.',
    )
    .option('--port <PORT>', 'HTTPS admission port (0 = any free port)', '8443')
    .option('--health-port <PORT>', 'HTTP health/metrics port (0 = any free port)', '8080')
    .option(
      '--control-port <PORT>',
      'HTTP port of the demo key control (0 = any free port)',
      '8090',
    );
  addSettingOptions(command, SHARED_SETTINGS, {
    refreshInterval: DEV_REFRESH_INTERVAL,
    maxStaleness: '10× --refresh-interval, at least 10s',
  });
  return command.action(async (flags: DevFlags) => {
    const port = parsePort('--port', flags.port, { allowZero: true });
    const healthPort = parsePort('--health-port', flags.healthPort, { allowZero: true });
    const controlPort = parsePort('--control-port', flags.controlPort, { allowZero: true });
    const raw = withDevDefaults(rawSettings(command, SHARED_SETTINGS, ctx.env));
    const monitor = parseMonitorSettings(raw);
    const onUnknown = parseOnUnknown(raw);
    const mode = parseGuardMode(raw);
    const logLevel = parseLogLevel(raw);
    const logger = createLogger(logLevel, ctx.stderr);

    const dir = await mkdtemp(join(tmpdir(), 'kms-secret-guard-dev-'));
    let emulator: RunningEmulator | undefined;
    let control: Server | undefined;
    try {
      const files = certificateFiles(dir);
      // Loaded here, not at start-up: see src/certs/defaults.ts.
      const { generateCertificates } = await import('../../certs/generate.js');
      await writeCertificateFiles(
        files,
        await generateCertificates({ dnsNames: ['localhost'], ipAddresses: [HOST, '::1'] }),
        { force: false },
      );
      await writeFile(
        join(dir, 'allowed.json'),
        `${JSON.stringify(sampleReview('CREATE'), null, 2)}\n`,
      );
      await writeFile(
        join(dir, 'denied.json'),
        `${JSON.stringify(sampleReview('UPDATE'), null, 2)}\n`,
      );
      emulator = await startEmulator({
        host: HOST,
        port: 0,
        keys: [''],
        statePath: join(dir, DEMO_KEY_STATE_FILE),
        logger: logger.child({ component: 'kms-emulator' }, { level: 'warn' }),
      });
      const keyId = emulator.keyIds[0] ?? '';
      control = await startKeyControl(emulator, keyId, controlPort);
      const controlUrl = `http://${HOST}:${(control.address() as AddressInfo).port}`;
      const settings: ServeSettings = {
        kms: {
          keyId,
          regionId: emulator.regionId,
          endpoint: emulator.endpoint,
          protocol: emulator.protocol,
        },
        monitor,
        tlsCertFile: files.cert,
        tlsKeyFile: files.key,
        clientCaFile: undefined,
        port,
        healthPort,
        onUnknown,
        mode,
        logLevel,
      };
      const running = emulator;
      await runServe(ctx, settings, {
        host: HOST,
        credential: {
          accessKeyId: running.accessKeyId,
          accessKeySecret: running.accessKeySecret,
        },
        logDestination: ctx.stderr,
        onListening: (server) => {
          ctx.stdout.write(
            instructions({
              server,
              emulator: running,
              keyId,
              control: controlUrl,
              dir,
              caFile: files.caCert,
              refresh: formatDuration(monitor.refreshIntervalMs),
            }),
          );
        },
      });
    } finally {
      const stopping = control;
      if (stopping !== undefined) {
        await new Promise<void>((resolve) => {
          stopping.close(() => {
            resolve();
          });
          stopping.closeAllConnections();
        });
      }
      await emulator?.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
}
