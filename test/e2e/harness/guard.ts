import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateCertificates } from '../../../src/certs/generate.js';
import { startEmulator, type RunningEmulator } from '../../../src/emulator/index.js';
import type { Cluster } from './cluster.js';
import { createKmsAdmin, type KmsAdmin } from '../../../src/emulator/admin.js';
import { cliPath } from './paths.js';
import {
  forLocalWebhook,
  shippedWebhookConfigurations,
  type WebhookConfiguration,
  type WebhookVariant,
} from './webhooks.js';
import {
  freePorts,
  ProcessReaper,
  startProcess,
  type ManagedProcess,
} from '../../helpers/processes.js';
import { waitFor } from '../../helpers/eventually.js';
import { httpGet } from '../../helpers/http.js';

export interface ServeOptions {
  mode?: 'enforce' | 'warn';
  /** Default 1s so key changes reach the webhook quickly. */
  refreshInterval?: string;
  maxStaleness?: string;
  extraArgs?: string[];
  /** Node.js flags of the serve process (the benchmark: the Deployment's heap flags). */
  nodeArgs?: string[];
}

/** The KMS emulator plus `kms-secret-guard serve` (a real child process) for one cluster. */
export interface Guard {
  readonly emulator: RunningEmulator;
  readonly keyId: string;
  /** The real Alibaba Cloud SDK against the emulator, for key state changes. */
  readonly kms: KmsAdmin;
  /** https://127.0.0.1:PORT (append /validate or /mutate). */
  readonly admissionUrl: string;
  readonly healthUrl: string;
  readonly caCert: string;
  /** The webhook's certificate and key files (for a benchmark server standing in for it). */
  readonly tlsFiles: { readonly certPath: string; readonly keyPath: string };
  /** Starts serve (stopping a running one first) on the same ports; waits for /readyz. */
  startServe(options?: ServeOptions): Promise<void>;
  stopServe(): Promise<void>;
  /**
   * Applies the shipped (or strict) webhook configurations pointed at this webhook. With
   * waitUntilActive (default), waits until the API server calls the mutating webhook.
   */
  registerWebhooks(options?: {
    variant?: WebhookVariant;
    /** Register these instead of the shipped ones (clientConfig is still replaced). */
    configurations?: WebhookConfiguration[];
    waitUntilActive?: boolean;
  }): Promise<{ source: string }>;
  /** Waits until the key state the webhook reports (GET /healthz/kms) satisfies check. */
  waitForKeyHealth(
    what: string,
    check: (report: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  serveLogTail(lines?: number): string;
  stop(): Promise<void>;
}

export const PROBE_NAMESPACE = 'e2e-webhook-probe';

export async function startGuard(
  cluster: Cluster,
  options: ServeOptions & { startServe?: boolean } = {},
): Promise<Guard> {
  // On an encrypting cluster the guard watches the key that encrypts it (the cluster's emulator).
  const shared = cluster.kms;
  const emulator = shared?.emulator ?? (await startEmulator({ keys: [''] }));
  const closeEmulator = (): Promise<void> =>
    shared === undefined ? emulator.close() : Promise.resolve();
  const keyId = shared?.keyId ?? emulator.keyIds[0];
  let tls: Awaited<ReturnType<typeof generateCertificates>>;
  let port: number;
  let healthPort: number;
  try {
    if (keyId === undefined) throw new Error('the emulator seeded no key');
    tls = await generateCertificates({
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1'],
      commonName: 'kms-secret-guard-e2e',
    });
    [port, healthPort] = (await freePorts(2)) as [number, number];
  } catch (error) {
    await closeEmulator();
    throw error;
  }
  const kms = shared?.kms ?? createKmsAdmin(emulator, keyId);
  const workDir = mkdtempSync(join(tmpdir(), 'ksg-e2e-guard-'));
  const reaper = new ProcessReaper();
  const removeWorkDir = (): void => {
    if (process.env.KSG_E2E_KEEP === undefined) rmSync(workDir, { recursive: true, force: true });
  };
  reaper.atExit(removeWorkDir);
  const certPath = join(workDir, 'tls.crt');
  const keyPath = join(workDir, 'tls.key');
  writeFileSync(certPath, tls.cert, { mode: 0o600 });
  writeFileSync(keyPath, tls.key, { mode: 0o600 });
  let serve: ManagedProcess | undefined;
  let lastServeLog = '';
  const admissionUrl = `https://127.0.0.1:${port}`;
  const healthUrl = `http://127.0.0.1:${healthPort}`;
  let serveCount = 0;

  const stopServe = async (): Promise<void> => {
    if (serve === undefined) return;
    const running = serve;
    serve = undefined;
    await running.stop();
    lastServeLog = running.logTail(40);
  };

  const startServe = async (serveOptions: ServeOptions = {}): Promise<void> => {
    await stopServe();
    serveCount += 1;
    const args = [
      ...(serveOptions.nodeArgs ?? options.nodeArgs ?? []),
      cliPath(),
      'serve',
      `--kms-key-id=${keyId}`,
      `--kms-endpoint=${emulator.endpoint}`,
      `--kms-protocol=${emulator.protocol}`,
      `--kms-region=${emulator.regionId}`,
      `--tls-cert=${certPath}`,
      `--tls-key=${keyPath}`,
      `--port=${port}`,
      `--health-port=${healthPort}`,
      `--refresh-interval=${serveOptions.refreshInterval ?? options.refreshInterval ?? '1s'}`,
      `--max-staleness=${serveOptions.maxStaleness ?? options.maxStaleness ?? '30s'}`,
      `--mode=${serveOptions.mode ?? options.mode ?? 'enforce'}`,
      '--log-level=info',
      ...(serveOptions.extraArgs ?? options.extraArgs ?? []),
    ];
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
    env.ALIBABA_CLOUD_ACCESS_KEY_ID = emulator.accessKeyId;
    env.ALIBABA_CLOUD_ACCESS_KEY_SECRET = emulator.accessKeySecret;
    const started = startProcess(reaper, 'kms-secret-guard serve', process.execPath, args, {
      logPath: join(workDir, `serve-${serveCount}.log`),
      env,
    });
    serve = started;
    try {
      await waitFor(
        'kms-secret-guard serve /readyz',
        async () => ((await httpGetStatus(`${healthUrl}/readyz`)) === 200 ? true : undefined),
        {
          // Generous: Node start-up alone takes seconds on a busy 2-core machine.
          timeoutMs: 60_000,
          abortIf: () =>
            started.hasExited() ? `serve exited:\n${started.logTail(20)}` : undefined,
        },
      );
    } catch (error) {
      await stopServe();
      throw error;
    }
  };

  const registerWebhooks: Guard['registerWebhooks'] = async (registerOptions = {}) => {
    const { configurations, source } =
      registerOptions.configurations === undefined
        ? shippedWebhookConfigurations(registerOptions.variant ?? 'shipped')
        : { configurations: registerOptions.configurations, source: 'the test' };
    const local = configurations.map((configuration) =>
      forLocalWebhook(configuration, admissionUrl, tls.caCert),
    );
    const applied = await cluster.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: local }),
    });
    if (applied.code !== 0) throw new Error(`could not register the webhooks: ${applied.stderr}`);
    if (registerOptions.waitUntilActive ?? true) await waitUntilMutating(cluster);
    return { source };
  };

  const guard: Guard = {
    emulator,
    keyId,
    kms,
    admissionUrl,
    healthUrl,
    caCert: tls.caCert,
    tlsFiles: { certPath, keyPath },
    startServe,
    stopServe,
    registerWebhooks,
    async waitForKeyHealth(what, check, timeoutMs = 15_000) {
      return waitFor(
        `the webhook to report ${what}`,
        async () => {
          const report = await httpGetJson(`${healthUrl}/healthz/kms`);
          return check(report) ? report : undefined;
        },
        { timeoutMs },
      );
    },
    serveLogTail: (lines = 40) => serve?.logTail(lines) ?? lastServeLog,
    async stop() {
      await stopServe();
      reaper.killAll();
      reaper.dispose();
      await closeEmulator();
      removeWorkDir();
    },
  };
  try {
    if (options.startServe ?? true) await startServe();
  } catch (error) {
    await guard.stop();
    throw error;
  }
  return guard;
}

/**
 * The API server picks up webhook configurations asynchronously; a server-side dry-run
 * create shows when the mutating webhook is called (the answer carries our annotations).
 */
async function waitUntilMutating(cluster: Cluster): Promise<void> {
  await ensureNamespace(cluster, PROBE_NAMESPACE);
  await waitFor(
    'the API server to call the mutating webhook',
    async () => {
      const result = await cluster.kubectl([
        'create',
        'secret',
        'generic',
        'probe',
        '-n',
        PROBE_NAMESPACE,
        '--from-literal=probe=1',
        '--dry-run=server',
        '-o',
        'json',
      ]);
      if (result.code !== 0) throw new Error(result.stderr.trim());
      const secret = JSON.parse(result.stdout) as {
        metadata?: { annotations?: Record<string, string> };
      };
      return secret.metadata?.annotations?.['kms-secret-guard.io/key-id'] === undefined
        ? undefined
        : true;
    },
    { timeoutMs: 45_000, intervalMs: 300 },
  );
}

export async function ensureNamespace(cluster: Cluster, name: string): Promise<void> {
  const result = await cluster.kubectl(['create', 'namespace', name]);
  if (result.code !== 0 && !result.stderr.includes('AlreadyExists')) {
    throw new Error(`could not create namespace ${name}: ${result.stderr}`);
  }
}

async function httpGetStatus(url: string): Promise<number> {
  return (await httpGet(url, { timeoutMs: 2000 })).status;
}

async function httpGetJson(url: string): Promise<Record<string, unknown>> {
  const { body } = await httpGet(url, { timeoutMs: 2000 });
  return JSON.parse(body) as Record<string, unknown>;
}
