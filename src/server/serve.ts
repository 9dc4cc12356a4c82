import type { ServerOptions as HttpsServerOptions } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { ServeSettings } from '../config/settings.js';
import { firstLookupFinished } from '../kms/monitor.js';
import type { KeySnapshotSource } from '../kms/types.js';
import type { Logger } from '../logging/logger.js';
import { buildAdmissionApp, type AdmissionApp } from './app.js';
import { admissionConnectionCap, readOpenFilesLimit } from './connections.js';
import { buildHealthApp, type HealthApp, type Readiness } from './health.js';
import { createMetrics, type ServerMetrics } from './metrics.js';
import {
  describeCertificate,
  readTlsMaterial,
  secureContextOptions,
  watchTlsFiles,
  type TlsWatcher,
} from './tls.js';

/** A KeyMonitor, or any snapshot source (tests); `firstLookup` gates readiness when present. */
export type MonitorLike = KeySnapshotSource & { readonly firstLookup?: Promise<void> };

export interface StartServerOptions {
  readonly settings: ServeSettings;
  readonly logger: Logger;
  readonly monitor: MonitorLike;
  /** Create before the monitor to wire `metrics.onKmsCall`; default a fresh set. */
  readonly metrics?: ServerMetrics;
  /** Bind address of both listeners (default 0.0.0.0; tests use 127.0.0.1). */
  readonly host?: string;
  /** Fallback poll of the TLS files (default 10 s). */
  readonly tlsPollIntervalMs?: number;
  /** After this long, connections still open are cut (default 10 s). */
  readonly shutdownTimeoutMs?: number;
  /** Admission connections accepted at once (default: sized from the descriptor limit). */
  readonly maxConnections?: number;
}

export interface RunningServer {
  readonly admissionUrl: string;
  readonly healthUrl: string;
  readonly admissionPort: number;
  readonly healthPort: number;
  readonly metrics: ServerMetrics;
  readiness(): Readiness;
  /** Re-reads the TLS files now (also happens on file change); true when new ones were applied. */
  reloadTls(): Promise<boolean>;
  /** /readyz → 503, stop accepting, finish in-flight admissions, close listeners. Idempotent. */
  close(): Promise<void>;
}

function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

interface ReadinessState {
  tlsLoaded: boolean;
  shuttingDown: boolean;
}

function readinessOf(monitor: MonitorLike, state: ReadinessState): () => Readiness {
  const lookedUp = firstLookupFinished(monitor);
  return () => {
    if (state.shuttingDown) return { ready: false, reason: 'shutting down' };
    if (!state.tlsLoaded) return { ready: false, reason: 'TLS listener not started yet' };
    if (!lookedUp()) return { ready: false, reason: 'waiting for the first KMS key lookup' };
    return { ready: true, reason: 'serving' };
  };
}

async function listenBoth(health: HealthApp, admission: AdmissionApp, ports: ListenPorts) {
  try {
    await health.listen({
      host: ports.host,
      port: ports.healthPort,
      listenTextResolver: (address) => `health listener (HTTP) on ${address}`,
    });
    await admission.listen({
      host: ports.host,
      port: ports.port,
      listenTextResolver: (address) => `admission listener (HTTPS) on ${address}`,
    });
  } catch (error) {
    await Promise.allSettled([admission.close(), health.close()]);
    throw error;
  }
}

interface ListenPorts {
  readonly host: string;
  readonly port: number;
  readonly healthPort: number;
}

/** Drains the admission listener (cut after `timeoutMs`), then closes the health listener. */
async function drain(
  admission: AdmissionApp,
  health: HealthApp,
  logger: Logger,
  timeoutMs: number,
): Promise<void> {
  logger.info('shutting down: finishing in-flight admissions');
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      logger.warn({ timeoutMs }, 'shutdown timeout: closing the remaining connections');
      admission.server.closeAllConnections();
      resolve();
    }, timeoutMs);
  });
  try {
    const closed = admission.close();
    await Promise.race([closed, deadline]);
    await closed;
  } finally {
    clearTimeout(timer);
  }
  await health.close();
  logger.info('webhook stopped');
}

interface ListenerParts {
  readonly settings: ServeSettings;
  readonly logger: Logger;
  readonly monitor: MonitorLike;
  readonly metrics: ServerMetrics;
  readonly readiness: () => Readiness;
  readonly isShuttingDown: () => boolean;
  readonly maxConnections: number;
  readonly https: HttpsServerOptions;
}

function buildListeners(parts: ListenerParts): { health: HealthApp; admission: AdmissionApp } {
  const { settings, logger, monitor } = parts;
  const health = buildHealthApp({
    logger: logger.child({ listener: 'health' }),
    source: monitor,
    metrics: parts.metrics,
    readiness: parts.readiness,
  });
  const admission = buildAdmissionApp({
    logger: logger.child({ listener: 'admission' }),
    source: monitor,
    policy: { mode: settings.mode, onUnknown: settings.onUnknown },
    metrics: parts.metrics,
    isShuttingDown: parts.isShuttingDown,
    maxConnections: parts.maxConnections,
    ...(settings.maxConnectionsPerSource === undefined
      ? {}
      : { maxConnectionsPerSource: settings.maxConnectionsPerSource }),
    https: parts.https,
  });
  return { health, admission };
}

export async function startServer(options: StartServerOptions): Promise<RunningServer> {
  const { settings, logger, monitor } = options;
  const host = options.host ?? '0.0.0.0';
  const metrics = options.metrics ?? createMetrics();
  metrics.watchKey(monitor);
  const files = {
    certFile: settings.tlsCertFile,
    keyFile: settings.tlsKeyFile,
    clientCaFile: settings.clientCaFile,
  };
  const material = await readTlsMaterial(files);
  const mutualTls = material.ca !== undefined;
  const state: ReadinessState = { tlsLoaded: false, shuttingDown: false };
  const readiness = readinessOf(monitor, state);
  const maxConnections = options.maxConnections ?? admissionConnectionCap(readOpenFilesLimit());

  const { health, admission } = buildListeners({
    settings,
    logger,
    monitor,
    metrics,
    readiness,
    isShuttingDown: () => state.shuttingDown,
    maxConnections,
    https: {
      ...secureContextOptions(material),
      requestCert: mutualTls,
      rejectUnauthorized: mutualTls,
    },
  });

  await listenBoth(health, admission, {
    host,
    port: settings.port,
    healthPort: settings.healthPort,
  });
  state.tlsLoaded = true;
  const watcher: TlsWatcher = watchTlsFiles({
    files,
    initial: material,
    logger,
    apply: (next) => {
      // Existing connections keep their session; new handshakes get the new certificate.
      admission.server.setSecureContext(secureContextOptions(next));
    },
    ...(options.tlsPollIntervalMs !== undefined
      ? { pollIntervalMs: options.tlsPollIntervalMs }
      : {}),
  });

  const admissionPort = (admission.server.address() as AddressInfo).port;
  const healthPort = (health.server.address() as AddressInfo).port;
  const admissionUrl = `https://${urlHost(host)}:${admissionPort}`;
  const healthUrl = `http://${urlHost(host)}:${healthPort}`;
  logger.info(
    {
      admissionUrl,
      healthUrl,
      mutualTls,
      mode: settings.mode,
      onUnknown: settings.onUnknown,
      maxConnections,
      maxConnectionsPerSource: settings.maxConnectionsPerSource,
      certificate: describeCertificate(material.cert),
    },
    'kms-secret-guard webhook listening',
  );

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    state.shuttingDown = true;
    watcher.close();
    return drain(admission, health, logger, options.shutdownTimeoutMs ?? 10_000);
  };

  return {
    admissionUrl,
    healthUrl,
    admissionPort,
    healthPort,
    metrics,
    readiness,
    reloadTls: () => watcher.check(),
    close: () => (closing ??= close()),
  };
}
