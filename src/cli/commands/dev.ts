import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
import type { RunningEmulator } from '../../emulator/index.js';
import { createLogger, type Logger } from '../../logging/logger.js';
import type { RunningServer } from '../../server/serve.js';
import { addSettingOptions, rawSettings, type CliContext } from '../context.js';
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
    `  Admission (HTTPS):  ${server.admissionUrl}   POST /validate, POST /mutate, POST /admit`,
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
    await runDev(ctx, devPlan(ctx, command, flags));
  });
}

/** What `dev` was asked for, parsed and checked before anything starts. */
interface DevPlan {
  readonly port: number;
  readonly healthPort: number;
  readonly controlPort: number;
  readonly monitor: ServeSettings['monitor'];
  readonly onUnknown: ServeSettings['onUnknown'];
  readonly mode: ServeSettings['mode'];
  readonly logLevel: ServeSettings['logLevel'];
  readonly logger: Logger;
}

function devPlan(ctx: CliContext, command: Command, flags: DevFlags): DevPlan {
  const raw = withDevDefaults(rawSettings(command, SHARED_SETTINGS, ctx.env));
  return {
    port: parsePort('--port', flags.port, { allowZero: true }),
    healthPort: parsePort('--health-port', flags.healthPort, { allowZero: true }),
    controlPort: parsePort('--control-port', flags.controlPort, { allowZero: true }),
    monitor: parseMonitorSettings(raw),
    onUnknown: parseOnUnknown(raw),
    mode: parseGuardMode(raw),
    logLevel: parseLogLevel(raw),
    logger: createLogger(parseLogLevel(raw), ctx.stderr),
  };
}

/** The throwaway CA, serving certificate and sample reviews, written to `dir`. */
async function writeDevFiles(dir: string): Promise<ReturnType<typeof certificateFiles>> {
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
  await writeFile(join(dir, 'denied.json'), `${JSON.stringify(sampleReview('UPDATE'), null, 2)}\n`);
  return files;
}

/** The emulator (with its demo key) and the key control; both are stopped by `stop`. */
interface DemoKms {
  readonly emulator: RunningEmulator;
  readonly keyId: string;
  readonly controlUrl: string;
  stop(): Promise<void>;
}

async function startDemoKms(plan: DevPlan, dir: string): Promise<DemoKms> {
  // The emulator is loaded only here: `serve` never loads its code.
  const { startEmulator } = await import('../../emulator/index.js');
  const { startKeyControl, stopKeyControl } = await import('./dev-key-control.js');
  const emulator = await startEmulator({
    host: HOST,
    port: 0,
    keys: [''],
    statePath: join(dir, DEMO_KEY_STATE_FILE),
    logger: plan.logger.child({ component: 'kms-emulator' }, { level: 'warn' }),
  });
  const keyId = emulator.keyIds[0] ?? '';
  let control: Server;
  try {
    control = await startKeyControl(emulator, keyId, { host: HOST, port: plan.controlPort });
  } catch (error) {
    await emulator.close();
    throw error;
  }
  return {
    emulator,
    keyId,
    controlUrl: `http://${HOST}:${(control.address() as AddressInfo).port}`,
    async stop() {
      await stopKeyControl(control);
      await emulator.close();
    },
  };
}

function devServeSettings(
  plan: DevPlan,
  demo: DemoKms,
  files: ReturnType<typeof certificateFiles>,
): ServeSettings {
  const { emulator, keyId } = demo;
  return {
    kms: {
      keyId,
      regionId: emulator.regionId,
      endpoint: emulator.endpoint,
      protocol: emulator.protocol,
    },
    monitor: plan.monitor,
    tlsCertFile: files.cert,
    tlsKeyFile: files.key,
    clientCaFile: undefined,
    port: plan.port,
    healthPort: plan.healthPort,
    onUnknown: plan.onUnknown,
    mode: plan.mode,
    logLevel: plan.logLevel,
  };
}

async function runDev(ctx: CliContext, plan: DevPlan): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'kms-secret-guard-dev-'));
  let demo: DemoKms | undefined;
  try {
    const files = await writeDevFiles(dir);
    demo = await startDemoKms(plan, dir);
    const { emulator, keyId, controlUrl } = demo;
    await runServe(ctx, devServeSettings(plan, demo, files), {
      host: HOST,
      credential: { accessKeyId: emulator.accessKeyId, accessKeySecret: emulator.accessKeySecret },
      logDestination: ctx.stderr,
      onListening: (server) => {
        ctx.stdout.write(
          instructions({
            server,
            emulator,
            keyId,
            control: controlUrl,
            dir,
            caFile: files.caCert,
            refresh: formatDuration(plan.monitor.refreshIntervalMs),
          }),
        );
      },
    });
  } finally {
    await demo?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
