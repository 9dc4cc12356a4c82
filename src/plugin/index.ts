/**
 * `kms-plugin` wired together: key monitor → PluginService → gRPC on the unix socket, plus
 * serve's health/metrics listener. The CLI command (src/cli/commands/kms-plugin.ts) only
 * parses settings and waits for the stop signal.
 */
import type { AddressInfo } from 'node:net';
import type { PluginSettings } from '../config/settings.js';
import {
  createKmsClient,
  type CredentialLike,
  type KmsClient,
  type KmsCryptoApi,
} from '../kms/client.js';
import {
  createKeyMonitor,
  firstLookupFinished,
  stopMonitorWithin,
  type KeyMonitor,
} from '../kms/monitor.js';
import type { Logger } from '../logging/logger.js';
import { buildHealthApp, type Readiness } from '../server/health.js';
import { createMetrics, type ServerMetrics } from '../server/metrics.js';
import { startPluginServer, type RunningPluginServer } from './grpc-server.js';
import { createPluginMetrics, type PluginMetrics } from './metrics.js';
import { createPluginService, type PluginService } from './service.js';

export interface StartKmsPluginOptions {
  readonly settings: PluginSettings;
  readonly logger: Logger;
  /** Default: the Alibaba Cloud default credential chain. */
  readonly credential?: CredentialLike;
  /** Default: createKmsClient(settings.kms) (tests pass their own). */
  readonly api?: KmsClient & KmsCryptoApi;
  /** Bind address of the health listener (default 127.0.0.1: it runs on a control-plane node). */
  readonly healthHost?: string;
  readonly drainTimeoutMs?: number;
  /** Encrypt/Decrypt calls waiting for KMS at once (default 64). */
  readonly maxInFlight?: number;
  /** Gap between snapshot refreshes asked by failing calls (default 5 s). */
  readonly minRefreshGapMs?: number;
}

export interface RunningKmsPlugin {
  readonly socketPath: string;
  readonly healthUrl: string;
  readonly monitor: KeyMonitor;
  readiness(): Readiness;
  /** Stops answering, drains in-flight calls, removes the socket, stops the monitor. Idempotent. */
  close(): Promise<void>;
}

/** Monitor stop waits for an in-flight KMS call; never longer than this at shutdown. */
const MONITOR_STOP_CAP_MS = 5_000;

/** Ready once the socket is bound and the first key lookup finished (either way), until shutdown. */
function readinessOf(
  monitor: KeyMonitor,
  server: () => RunningPluginServer | undefined,
): () => Readiness {
  const lookedUp = firstLookupFinished(monitor);
  return () => {
    const running = server();
    if (running === undefined) return { ready: false, reason: 'socket not bound yet' };
    if (running.closing()) return { ready: false, reason: 'shutting down' };
    if (!lookedUp()) return { ready: false, reason: 'waiting for the first KMS key lookup' };
    return { ready: true, reason: 'serving' };
  };
}

/** The key_id Status reports now, or undefined while it answers an error. */
function statusKeyId(service: PluginService): string | undefined {
  try {
    return service.status().keyId;
  } catch {
    return undefined;
  }
}

type PluginParts = Pick<RunningKmsPlugin, 'monitor'> & {
  readonly service: PluginService;
  readonly pluginMetrics: PluginMetrics;
};

/** The key monitor, the PluginService (which folds the monitor's snapshots) and its metrics. */
function createParts(
  options: StartKmsPluginOptions,
  api: KmsClient & KmsCryptoApi,
  metrics: ServerMetrics,
): PluginParts {
  const { settings, logger } = options;
  const monitor = createKeyMonitor({
    kms: settings.kms,
    monitor: settings.monitor,
    logger,
    api,
    onKmsCall: metrics.onKmsCall,
    // Called from the first lookup on, which monitor.start() begins.
    onSnapshot: (snapshot) => {
      service.observe(snapshot);
    },
  });
  const service = createPluginService({
    configuredKeyId: settings.kms.keyId,
    maxStalenessMs: settings.monitor.maxStalenessMs,
    refreshIntervalMs: settings.monitor.refreshIntervalMs,
    kms: api,
    monitor,
    logger,
    onKmsCall: metrics.onKmsCall,
    onOtherKeyDecrypt: (keyId) => {
      pluginMetrics.otherKeyDecrypt(keyId);
    },
    ...(options.maxInFlight === undefined ? {} : { maxInFlight: options.maxInFlight }),
    ...(options.minRefreshGapMs === undefined ? {} : { minRefreshGapMs: options.minRefreshGapMs }),
  });
  const pluginMetrics = createPluginMetrics(metrics, () => statusKeyId(service));
  return { monitor, service, pluginMetrics };
}

export async function startKmsPlugin(options: StartKmsPluginOptions): Promise<RunningKmsPlugin> {
  const { settings, logger } = options;
  const metrics = createMetrics();
  const api =
    options.api ??
    createKmsClient(
      settings.kms,
      options.credential === undefined ? {} : { credential: options.credential },
    );
  const { monitor, service, pluginMetrics } = createParts(options, api, metrics);
  metrics.watchKey(monitor);

  let grpcServer: RunningPluginServer | undefined;
  const readiness = readinessOf(monitor, () => grpcServer);
  const health = buildHealthApp({
    logger: logger.child({ listener: 'health' }),
    source: monitor,
    metrics,
    readiness,
  });

  monitor.start();
  try {
    await health.listen({
      host: options.healthHost ?? '127.0.0.1',
      port: settings.healthPort,
      listenTextResolver: (address) => `health listener (HTTP) on ${address}`,
    });
    grpcServer = await startPluginServer({
      service,
      socketPath: settings.socketPath,
      logger,
      observe: (method, code, seconds) => {
        pluginMetrics.observeCall(method, code, seconds);
      },
      ...(options.drainTimeoutMs === undefined ? {} : { drainTimeoutMs: options.drainTimeoutMs }),
    });
  } catch (error) {
    service.stop();
    await health.close();
    await stopMonitorWithin(monitor, MONITOR_STOP_CAP_MS);
    throw error;
  }
  const running = grpcServer;
  const healthUrl = `http://${options.healthHost ?? '127.0.0.1'}:${(health.server.address() as AddressInfo).port}`;

  let closing: Promise<void> | undefined;
  const close = async (): Promise<void> => {
    await running.close();
    service.stop();
    await health.close();
    await stopMonitorWithin(monitor, MONITOR_STOP_CAP_MS);
  };
  return {
    socketPath: settings.socketPath,
    healthUrl,
    monitor,
    readiness,
    close: () => (closing ??= close()),
  };
}
