import type { Writable } from 'node:stream';
import { Command } from 'commander';
import { ConfigError } from '../../config/errors.js';
import {
  parseServeSettings,
  SETTINGS,
  type ServeSettings,
  type SettingName,
} from '../../config/settings.js';
import { createKmsClient, staticCredentialFromEnv, type CredentialLike } from '../../kms/client.js';
import { createKeyMonitor, stopMonitorWithin } from '../../kms/monitor.js';
import { createLogger } from '../../logging/logger.js';
import { createMetrics } from '../../server/metrics.js';
import { startServer, type RunningServer } from '../../server/serve.js';
import { readTlsMaterial } from '../../server/tls.js';
import { addSettingOptions, rawSettings, untilStopped, type CliContext } from '../context.js';

export const SERVE_SETTINGS = Object.keys(SETTINGS) as SettingName[];

/** Monitor stop waits for an in-flight KMS call; never longer than this at shutdown. */
const MONITOR_STOP_CAP_MS = 5_000;

export interface RunServeOptions {
  /** Bind address (default 0.0.0.0: a pod serves on all its interfaces). */
  readonly host?: string;
  /** Default: the access key variables of ctx.env, else the default credential chain. */
  readonly credential?: CredentialLike;
  /** Where JSON logs go (default ctx.stdout). */
  readonly logDestination?: Writable;
  /** Called once both listeners are up (dev prints its instructions here). */
  readonly onListening?: (server: RunningServer) => void | Promise<void>;
}

function listenError(error: unknown, settings: ServeSettings): unknown {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'EADDRINUSE' || code === 'EACCES') {
    return new ConfigError(
      `cannot listen on port ${settings.port} (--port / PORT) or ${settings.healthPort} (--health-port / HEALTH_PORT): ${code === 'EADDRINUSE' ? 'already in use' : 'permission denied'}; choose other ports.`,
    );
  }
  return error;
}

/**
 * The serve lifecycle: monitor + listeners, then wait for SIGTERM/SIGINT (ctx.stopSignal,
 * received in main.ts) and drain. Shared by `serve` and `dev`.
 */
export async function runServe(
  ctx: CliContext,
  settings: ServeSettings,
  options: RunServeOptions = {},
): Promise<void> {
  // Configuration errors (unreadable or mismatched TLS files) stop start-up before any KMS call.
  await readTlsMaterial({
    certFile: settings.tlsCertFile,
    keyFile: settings.tlsKeyFile,
    clientCaFile: settings.clientCaFile,
  });
  const logger = createLogger(settings.logLevel, options.logDestination ?? ctx.stdout);
  const metrics = createMetrics();
  const credential = options.credential ?? staticCredentialFromEnv(ctx.env);
  const monitor = createKeyMonitor({
    kms: settings.kms,
    monitor: settings.monitor,
    logger,
    api: createKmsClient(settings.kms, credential === undefined ? {} : { credential }),
    onKmsCall: metrics.onKmsCall,
  });
  monitor.start();
  let server: RunningServer;
  try {
    server = await startServer({
      settings,
      logger,
      monitor,
      metrics,
      ...(options.host !== undefined ? { host: options.host } : {}),
    });
  } catch (error) {
    await monitor.stop();
    throw listenError(error, settings);
  }
  try {
    await options.onListening?.(server);
    await untilStopped(ctx.stopSignal);
    logger.info({ signal: String(ctx.stopSignal.reason) }, 'stop requested');
  } finally {
    await server.close();
    await stopMonitorWithin(monitor, MONITOR_STOP_CAP_MS);
  }
  ctx.exitCode = 0;
}

export function serveCommand(ctx: CliContext): Command {
  const command = new Command('serve').description(
    'Run the admission webhook: HTTPS POST /validate, /mutate and /admit (both in one call) on --port, and /livez, /readyz, /healthz/kms and /metrics over HTTP on --health-port. Stops gracefully on SIGTERM/SIGINT.',
  );
  addSettingOptions(command, SERVE_SETTINGS);
  command.action(async () => {
    const settings = parseServeSettings(rawSettings(command, SERVE_SETTINGS, ctx.env));
    await runServe(ctx, settings);
  });
  return command;
}
