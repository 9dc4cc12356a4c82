import type { Writable } from 'node:stream';
import { Command, Option } from 'commander';
import { ConfigError } from '../../config/errors.js';
import {
  parsePluginSettings,
  PLUGIN_HEALTH_PORT_DEFAULT,
  PLUGIN_SOCKET_SETTING,
  type PluginSettings,
  type SettingName,
} from '../../config/settings.js';
import { staticCredentialFromEnv, type CredentialLike } from '../../kms/client.js';
import { createLogger } from '../../logging/logger.js';
import type { RunningKmsPlugin } from '../../plugin/index.js';
import { SocketInUseError, SocketPathError } from '../../plugin/socket.js';
import { listenError } from '../listen.js';
import { addSettingOptions, rawSettings, untilStopped, type CliContext } from '../context.js';

export const PLUGIN_SETTINGS: readonly SettingName[] = [
  'kmsKeyId',
  'kmsRegion',
  'kmsEndpoint',
  'kmsProtocol',
  'healthPort',
  'refreshInterval',
  'maxStaleness',
  'logLevel',
];

export interface RunKmsPluginOptions {
  /** Default: the access key variables of ctx.env, else the default credential chain. */
  readonly credential?: CredentialLike;
  /** Where JSON logs go (default ctx.stdout). */
  readonly logDestination?: Writable;
  readonly onListening?: (plugin: RunningKmsPlugin) => void | Promise<void>;
}

function startError(error: unknown, settings: PluginSettings): unknown {
  if (error instanceof SocketInUseError || error instanceof SocketPathError)
    return new ConfigError(error.message);
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new ConfigError(
      `cannot create the socket ${settings.socketPath} (--listen / KMS_PLUGIN_SOCKET): permission denied; run as the user kube-apiserver runs as, or choose a writable folder.`,
    );
  }
  return listenError(error, '--health-port / HEALTH_PORT', settings.healthPort);
}

/** Runs the plugin until ctx.stopSignal (SIGTERM/SIGINT), then drains and removes the socket. */
export async function runKmsPlugin(
  ctx: CliContext,
  settings: PluginSettings,
  options: RunKmsPluginOptions = {},
): Promise<void> {
  const logger = createLogger(settings.logLevel, options.logDestination ?? ctx.stdout);
  const credential = options.credential ?? staticCredentialFromEnv(ctx.env);
  let plugin: RunningKmsPlugin;
  try {
    // gRPC and its proto loader are loaded here, not with the CLI: `serve` never carries them.
    const { startKmsPlugin } = await import('../../plugin/index.js');
    plugin = await startKmsPlugin({
      settings,
      logger,
      ...(credential === undefined ? {} : { credential }),
    });
  } catch (error) {
    throw startError(error, settings);
  }
  try {
    await options.onListening?.(plugin);
    await untilStopped(ctx.stopSignal);
    logger.info({ signal: String(ctx.stopSignal.reason) }, 'stop requested');
  } finally {
    await plugin.close();
  }
  ctx.exitCode = 0;
}

export function kmsPluginCommand(ctx: CliContext): Command {
  const command = new Command('kms-plugin').description(
    "Run a Kubernetes KMS v2 plugin backed by Alibaba Cloud KMS: gRPC (Status, Encrypt, Decrypt) on the unix socket --listen, whose key_id <KeyId>/<KeyVersionId> follows the key's primary version so kube-apiserver re-keys after a rotation; /livez, /readyz, /healthz/kms and /metrics over HTTP on 127.0.0.1:--health-port. Stops gracefully on SIGTERM/SIGINT.",
  );
  addSettingOptions(command, PLUGIN_SETTINGS, { healthPort: PLUGIN_HEALTH_PORT_DEFAULT });
  command.addOption(
    new Option(
      `${PLUGIN_SOCKET_SETTING.flag} <path>`,
      'unix socket path of the plugin (kube-apiserver dials unix://<path>)',
    )
      .env(PLUGIN_SOCKET_SETTING.env)
      .default(PLUGIN_SOCKET_SETTING.default),
  );
  command.action(async () => {
    // As rawSettings does: the flag when given on the command line, else ctx.env.
    const listen =
      command.getOptionValueSource('listen') === 'cli'
        ? (command.getOptionValue('listen') as string)
        : ctx.env[PLUGIN_SOCKET_SETTING.env];
    const raw = { ...rawSettings(command, PLUGIN_SETTINGS, ctx.env), listen };
    const settings = parsePluginSettings(raw);
    await runKmsPlugin(ctx, settings);
  });
  return command;
}
