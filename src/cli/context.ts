import type { Writable } from 'node:stream';
import { Option, type Command } from 'commander';
import { SETTINGS, type RawSettings, type SettingName } from '../config/settings.js';
import type { Clock } from '../time/clock.js';

/** What a command may touch of the process: passed in so tests can run commands in-process. */
export interface CliContext {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdout: Writable;
  readonly stderr: Writable;
  /** Resolves when the process is asked to stop (SIGTERM/SIGINT); serve-like commands await it. */
  readonly stopSignal: AbortSignal;
  /** Clock of commands that report or judge times (check, reencrypt); default the system clock. */
  readonly clock?: Clock;
  exitCode: number;
}

/** Resolves once the process is asked to stop (at once if it already was). */
export function untilStopped(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    signal.addEventListener(
      'abort',
      () => {
        resolve();
      },
      { once: true },
    );
  });
}

/**
 * Adds the flag of each named setting to a command, with its env variable and default in the
 * help. `helpDefaults` replaces the default a command shows when it applies its own (the
 * values come from rawSettings, which never reads Commander's defaults).
 */
export function addSettingOptions(
  command: Command,
  names: readonly SettingName[],
  helpDefaults: Partial<Record<SettingName, string>> = {},
): Command {
  for (const name of names) {
    const spec = SETTINGS[name];
    const option = new Option(`${spec.flag} <${PLACEHOLDERS[name]}>`, DESCRIPTIONS[name]).env(
      spec.env,
    );
    const shown = helpDefaults[name];
    // Commander shows a default only when it has a value; rawSettings never reads it.
    if (shown !== undefined) option.default(shown, shown);
    else if ('default' in spec) option.default(spec.default);
    command.addOption(option);
  }
  return command;
}

/**
 * Commander already prefers the flag over the environment variable (`Option.env`), but it
 * reads `process.env`; we resolve against ctx.env so tests can pass their own environment.
 */
export function rawSettings(
  command: Command,
  names: readonly SettingName[],
  env: CliContext['env'],
): RawSettings {
  const raw: Record<string, string | undefined> = {};
  for (const name of names) {
    const optionKey = SETTINGS[name].flag
      .replace(/^--/, '')
      .replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    const source = command.getOptionValueSource(optionKey);
    const fromFlag = source === 'cli' ? (command.getOptionValue(optionKey) as unknown) : undefined;
    raw[name] = typeof fromFlag === 'string' ? fromFlag : env[SETTINGS[name].env];
  }
  return raw;
}

const DESCRIPTIONS: Record<SettingName, string> = {
  kmsKeyId: 'KMS key id, ARN or alias/… that encrypts the cluster Secrets',
  kmsRegion: 'KMS region, e.g. cn-hangzhou (required unless --kms-endpoint is given)',
  kmsEndpoint: 'KMS endpoint host[:port] (default kms-vpc.<region>.aliyuncs.com)',
  kmsProtocol: 'https, or http (only to a loopback endpoint)',
  tlsCert: 'serving certificate (PEM) of the admission listener; reloaded when it changes',
  tlsKey: 'private key (PEM) of --tls-cert',
  clientCa: 'CA bundle (PEM); when set, client certificates are required and verified',
  port: 'HTTPS admission port',
  healthPort: 'HTTP port of /livez, /readyz, /healthz/kms and /metrics',
  refreshInterval: 'how often the key is read from KMS',
  maxStaleness: 'after this long without a KMS answer the key state is unknown',
  onUnknown: 'allow (with a warning) or deny Secret writes while the key state is unknown',
  mode: 'enforce (deny while the key is unusable) or warn (allow with a warning)',
  logLevel: 'fatal, error, warn, info, debug, trace or silent',
  rotationSettle:
    'after a rotation, how long the API server may still encrypt under the previous version (plugin refresh 30s + Status poll ~60s + 3m seed fallback, rounded up); Secrets last written before rotation time + this are rewritten, and a run waits until then before its first patch',
  maxConnectionsPerSource:
    'admission connections one source address may hold at once (0 = no per-source cap); more are closed as they arrive',
};

const PLACEHOLDERS: Record<SettingName, string> = {
  kmsKeyId: 'id|arn|alias/name',
  kmsRegion: 'region',
  kmsEndpoint: 'host[:port]',
  kmsProtocol: 'https|http',
  tlsCert: 'file',
  tlsKey: 'file',
  clientCa: 'file',
  port: 'port',
  healthPort: 'port',
  refreshInterval: 'duration',
  maxStaleness: 'duration',
  onUnknown: 'allow|deny',
  mode: 'enforce|warn',
  logLevel: 'level',
  rotationSettle: 'duration',
  maxConnectionsPerSource: 'count',
};
