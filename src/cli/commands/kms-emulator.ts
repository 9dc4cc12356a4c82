import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { ConfigError } from '../../config/errors.js';
import { isLoopbackHost, parseLogLevel, parsePort } from '../../config/settings.js';
import { createLogger } from '../../logging/logger.js';
import type { EmulatorOptions, RunningEmulator } from '../../emulator/index.js';
import { addSettingOptions, rawSettings, untilStopped, type CliContext } from '../context.js';
import { listenError } from '../listen.js';

interface EmulatorFlags {
  host: string;
  port: string;
  key: string[];
  accessKeyId?: string;
  accessKeySecret?: string;
  region: string;
  state?: string;
  tlsCert?: string;
  tlsKey?: string;
  allowRemote?: boolean;
}

export function kmsEmulatorCommand(ctx: CliContext): Command {
  const command = new Command('kms-emulator')
    .description(
      'Run a local, wire-compatible Alibaba Cloud KMS (API 2016-01-20) for development and tests. Fault injection: POST/DELETE /_emulator/faults (loopback only).',
    )
    .option('--host <HOST>', 'address to listen on (loopback unless --allow-remote)', '127.0.0.1')
    .option('--port <PORT>', 'port to listen on (0 = any free port)', '0')
    .addOption(
      new Option('--key <ID>', 'seed an Enabled key with this id (repeatable)')
        .argParser((value: string, previous: string[]) => [...previous, value])
        .default([], 'one generated key, or the keys of --state'),
    )
    .option('--access-key-id <ID>', 'access key id clients sign with (generated when absent)')
    .option('--access-key-secret <SECRET>', 'its secret (generated when absent)')
    .option('--region <REGION>', 'region id used in ARNs', 'cn-hangzhou')
    .option('--state <FILE>', 'persist keys, versions, key material and aliases to this JSON file')
    .option('--tls-cert <FILE>', 'serve HTTPS with this certificate (PEM)')
    .option('--tls-key <FILE>', 'private key (PEM) of --tls-cert')
    .option('--allow-remote', 'allow a non-loopback --host (exposes a fake KMS to the network)');
  addSettingOptions(command, ['logLevel']);
  return command.action(async (flags: EmulatorFlags) => {
    const options = await emulatorOptions(flags, ctx, command);
    // Loaded only here: `serve` never loads the emulator's code.
    const { startEmulator } = await import('../../emulator/index.js');
    let emulator: RunningEmulator;
    try {
      emulator = await startEmulator(options);
    } catch (error) {
      throw listenError(error, '--port', options.port ?? 0);
    }
    ctx.stdout.write(banner(emulator));
    await untilStopped(ctx.stopSignal);
    await emulator.close();
    ctx.stdout.write('kms-emulator stopped\n');
    ctx.exitCode = 0;
  });
}

function banner(emulator: RunningEmulator): string {
  const keys = emulator.keyIds;
  const exampleKey = keys[0] ?? 'KEY_ID';
  return [
    `kms-emulator listening on ${emulator.url}`,
    `  endpoint:          ${emulator.endpoint}`,
    `  protocol:          ${emulator.protocol}`,
    `  region:            ${emulator.regionId}`,
    `  access key id:     ${emulator.accessKeyId}`,
    `  access key secret: ${emulator.accessKeySecret}`,
    `  keys:              ${keys.length > 0 ? keys.join(', ') : '(none; create one with CreateKey)'}`,
    `  faults:            POST|DELETE ${emulator.url}/_emulator/faults, GET ${emulator.url}/_emulator/keys`,
    'Try:',
    `  ALIBABA_CLOUD_ACCESS_KEY_ID=${emulator.accessKeyId} ALIBABA_CLOUD_ACCESS_KEY_SECRET=${emulator.accessKeySecret} \\`,
    `    kms-secret-guard check --kms-key-id ${exampleKey} --kms-endpoint ${emulator.endpoint} --kms-protocol ${emulator.protocol}`,
    ...sdkSettings(emulator),
    '',
  ].join('\n');
}

/** The one setting every official SDK needs to reach the emulator (full examples in the docs). */
function sdkSettings(emulator: RunningEmulator): string[] {
  const { endpoint, protocol, regionId, accessKeyId, accessKeySecret } = emulator;
  return [
    'SDK clients (Python, Go, Node; V3 and v1.0 signatures) need endpoint, protocol, region and access key:',
    `  Python: Config(endpoint='${endpoint}', protocol='${protocol}', region_id='${regionId}', access_key_id='${accessKeyId}', access_key_secret='${accessKeySecret}')`,
    `  Go:     &openapi.Config{Endpoint: tea.String("${endpoint}"), Protocol: tea.String("${protocol}"), RegionId: tea.String("${regionId}"), AccessKeyId: tea.String("${accessKeyId}"), AccessKeySecret: tea.String("${accessKeySecret}")}`,
    `  Node:   new Config({ endpoint: '${endpoint}', protocol: '${protocol}', regionId: '${regionId}', accessKeyId: '${accessKeyId}', accessKeySecret: '${accessKeySecret}' })`,
  ];
}

async function emulatorOptions(
  flags: EmulatorFlags,
  ctx: CliContext,
  command: Command,
): Promise<EmulatorOptions> {
  const logLevel = parseLogLevel(rawSettings(command, ['logLevel'], ctx.env));
  if (!isLoopbackHost(flags.host) && flags.allowRemote !== true) {
    throw new ConfigError(
      `--host ${flags.host} is refused: the emulator is a development tool with made-up credentials, unauthenticated fault routes and unprotected key material, so it listens on loopback only (127.0.0.1, ::1, localhost). Pass --allow-remote to listen on ${flags.host} anyway (e.g. inside a container).`,
    );
  }
  const port = parsePort('--port', flags.port, { allowZero: true });
  if ((flags.accessKeyId === undefined) !== (flags.accessKeySecret === undefined)) {
    throw new ConfigError(
      '--access-key-id and --access-key-secret go together: give both, or neither to have a pair generated.',
    );
  }
  if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined)) {
    throw new ConfigError(
      '--tls-cert and --tls-key go together: give both for HTTPS, or neither for HTTP.',
    );
  }
  const accessKey =
    flags.accessKeyId !== undefined && flags.accessKeySecret !== undefined
      ? { id: flags.accessKeyId, secret: flags.accessKeySecret }
      : (await import('../../emulator/index.js')).generateAccessKey();
  const options: EmulatorOptions = {
    host: flags.host,
    port,
    accessKeys: [accessKey],
    regionId: flags.region,
    keys: flags.key.length > 0 ? flags.key : await defaultKeys(flags.state),
    logger: createLogger(logLevel, ctx.stderr),
  };
  if (flags.state !== undefined) options.statePath = flags.state;
  if (flags.tlsCert !== undefined && flags.tlsKey !== undefined) {
    options.tls = {
      cert: readPem(flags.tlsCert, '--tls-cert'),
      key: readPem(flags.tlsKey, '--tls-key'),
    };
  }
  return options;
}

/** Without --key: the keys of an existing state file, else one generated key. */
async function defaultKeys(statePath: string | undefined): Promise<string[]> {
  if (statePath === undefined) return [''];
  const { loadState } = await import('../../emulator/persistence.js');
  let snapshot;
  try {
    snapshot = loadState(statePath);
  } catch (error) {
    throw new ConfigError(
      `--state ${statePath} cannot be read (${(error as Error).message}); fix or remove the file.`,
    );
  }
  const ids = snapshot?.keys.map((key) => key.keyId) ?? [];
  return ids.length > 0 ? ids : [''];
}

function readPem(path: string, flag: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new ConfigError(`${flag} ${path} cannot be read: ${(error as Error).message}.`);
  }
}
