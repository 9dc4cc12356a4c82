import { isIP } from 'node:net';
import { ConfigError } from './errors.js';
import { formatDuration, parseDuration } from './duration.js';

/**
 * Settings come from flags and environment variables (flags win). The CLI edge merges
 * both into a RawSettings record; everything here is pure validation.
 */
export type RawSettings = Readonly<Record<string, string | undefined>>;

/** One setting: its flag, its environment variable, its default. */
export interface SettingSpec {
  readonly flag: string;
  readonly env: string;
  readonly default?: string;
}

export const SETTINGS = {
  kmsKeyId: { flag: '--kms-key-id', env: 'KMS_KEY_ID' },
  kmsRegion: { flag: '--kms-region', env: 'KMS_REGION' },
  kmsEndpoint: { flag: '--kms-endpoint', env: 'KMS_ENDPOINT' },
  kmsProtocol: { flag: '--kms-protocol', env: 'KMS_PROTOCOL', default: 'https' },
  tlsCert: { flag: '--tls-cert', env: 'TLS_CERT_FILE' },
  tlsKey: { flag: '--tls-key', env: 'TLS_KEY_FILE' },
  clientCa: { flag: '--client-ca', env: 'TLS_CLIENT_CA_FILE' },
  port: { flag: '--port', env: 'PORT', default: '8443' },
  healthPort: { flag: '--health-port', env: 'HEALTH_PORT', default: '8080' },
  refreshInterval: { flag: '--refresh-interval', env: 'KEY_REFRESH_INTERVAL', default: '30s' },
  maxStaleness: { flag: '--max-staleness', env: 'KEY_MAX_STALENESS', default: '5m' },
  onUnknown: { flag: '--on-unknown', env: 'ON_UNKNOWN', default: 'allow' },
  mode: { flag: '--mode', env: 'GUARD_MODE', default: 'enforce' },
  logLevel: { flag: '--log-level', env: 'LOG_LEVEL', default: 'info' },
  rotationSettle: { flag: '--rotation-settle', env: 'ROTATION_SETTLE', default: '5m' },
  maxConnectionsPerSource: {
    flag: '--max-connections-per-source',
    env: 'MAX_CONNECTIONS_PER_SOURCE',
    default: '256',
  },
} as const satisfies Record<string, SettingSpec>;

export type SettingName = keyof typeof SETTINGS;

export interface KmsSettings {
  /** Key id, ARN or alias/… as configured. */
  readonly keyId: string;
  readonly regionId: string | undefined;
  /** Host (and optional :port) of the KMS endpoint. */
  readonly endpoint: string;
  readonly protocol: 'https' | 'http';
}

export interface MonitorSettings {
  readonly refreshIntervalMs: number;
  readonly maxStalenessMs: number;
}

export type OnUnknown = 'allow' | 'deny';
export type GuardMode = 'enforce' | 'warn';
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface ServeSettings {
  readonly kms: KmsSettings;
  readonly monitor: MonitorSettings;
  readonly tlsCertFile: string;
  readonly tlsKeyFile: string;
  readonly clientCaFile: string | undefined;
  readonly port: number;
  readonly healthPort: number;
  readonly onUnknown: OnUnknown;
  readonly mode: GuardMode;
  readonly logLevel: LogLevel;
  /** Admission connections one source address may hold at once; 0: no per-source cap. */
  readonly maxConnectionsPerSource?: number;
}

function label(name: SettingName): string {
  const spec = SETTINGS[name];
  return `${spec.flag} / ${spec.env}`;
}

function value(raw: RawSettings, name: SettingName): string | undefined {
  const given = raw[name]?.trim();
  if (given !== undefined && given !== '') return given;
  const spec: SettingSpec = SETTINGS[name];
  return spec.default;
}

function required(raw: RawSettings, name: SettingName, hint: string): string {
  const given = value(raw, name);
  if (given === undefined) throw new ConfigError(`${label(name)} is required: ${hint}`);
  return given;
}

function oneOf<T extends string>(raw: RawSettings, name: SettingName, allowed: readonly T[]): T {
  const given = value(raw, name) ?? '';
  const match = allowed.find((candidate) => candidate === given.toLowerCase());
  if (match === undefined) {
    throw new ConfigError(
      `${label(name)} must be one of ${allowed.join(', ')} (got "${given}"): fix the value and start again.`,
    );
  }
  return match;
}

/**
 * A TCP port, or a ConfigError naming the setting (`label`, e.g. `--port / PORT`) and the
 * accepted range. `allowZero` for commands where 0 means "any free port".
 */
export function parsePort(
  label: string,
  text: string,
  options: { readonly allowZero?: boolean } = {},
): number {
  const given = text.trim();
  const lowest = options.allowZero === true ? 0 : 1;
  const parsed = Number(given);
  if (!/^\d+$/.test(given) || parsed < lowest || parsed > 65535) {
    const range = lowest === 0 ? 'from 0 to 65535, 0 = any free port' : 'from 1 to 65535';
    throw new ConfigError(
      `${label} must be a TCP port ${range} (got "${text}"): fix the value and start again.`,
    );
  }
  return parsed;
}

/** A duration above zero in milliseconds, or a ConfigError naming the setting and examples. */
export function parsePositiveDuration(label: string, text: string): number {
  const parsed = parseDuration(text);
  if (parsed === undefined || parsed <= 0) {
    throw new ConfigError(
      `${label} must be a positive duration such as 30s, 5m or 1h (got "${text}"): fix the value and start again.`,
    );
  }
  return parsed;
}

function port(raw: RawSettings, name: SettingName): number {
  return parsePort(label(name), value(raw, name) ?? '');
}

function duration(raw: RawSettings, name: SettingName): number {
  return parsePositiveDuration(label(name), value(raw, name) ?? '');
}

function hostOf(endpoint: string): string {
  // Accept `host`, `host:port`, `[::1]:port` and a pasted URL.
  const withoutScheme = endpoint.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '');
  const bracketed = /^\[([^\]]+)\]/.exec(withoutScheme);
  if (bracketed?.[1] !== undefined) return bracketed[1];
  const colons = withoutScheme.split(':').length - 1;
  return colons === 1 ? (withoutScheme.split(':')[0] ?? '') : withoutScheme;
}

export function isLoopbackHost(host: string): boolean {
  const lowered = host.toLowerCase();
  if (lowered === 'localhost' || lowered === '::1') return true;
  return isIP(lowered) === 4 && lowered.startsWith('127.');
}

export function parseKmsSettings(raw: RawSettings): KmsSettings {
  const keyId = required(
    raw,
    'kmsKeyId',
    'set it to the KMS key id, ARN or alias/… that encrypts the cluster Secrets.',
  );
  const regionId = value(raw, 'kmsRegion');
  const protocol = oneOf(raw, 'kmsProtocol', ['https', 'http'] as const);
  let endpoint = value(raw, 'kmsEndpoint');
  if (endpoint === undefined) {
    if (regionId === undefined) {
      throw new ConfigError(
        `${label('kmsRegion')} is required unless ${label('kmsEndpoint')} is given: set the key's region, e.g. cn-hangzhou.`,
      );
    }
    endpoint = `kms-vpc.${regionId}.aliyuncs.com`;
  }
  endpoint = endpoint.replace(/^[a-z]+:\/\//i, '').replace(/\/+$/, '');
  if (protocol === 'http' && !isLoopbackHost(hostOf(endpoint))) {
    throw new ConfigError(
      `${label('kmsProtocol')} http is refused for ${endpoint}: plain HTTP is only allowed to a loopback endpoint (127.0.0.1, ::1, localhost); use https.`,
    );
  }
  return { keyId, regionId, endpoint, protocol };
}

export function parseMonitorSettings(raw: RawSettings): MonitorSettings {
  const refreshIntervalMs = duration(raw, 'refreshInterval');
  const maxStalenessMs = duration(raw, 'maxStaleness');
  if (maxStalenessMs < refreshIntervalMs) {
    throw new ConfigError(
      `${label('maxStaleness')} (${formatDuration(maxStalenessMs)}) must be at least ${label('refreshInterval')} (${formatDuration(refreshIntervalMs)}): raise it, e.g. to 10× the refresh interval.`,
    );
  }
  return { refreshIntervalMs, maxStalenessMs };
}

/** `reencrypt`: after a rotation, how long the API server may still write under the old version. */
export function parseRotationSettle(raw: RawSettings): number {
  return duration(raw, 'rotationSettle');
}

export function parseLogLevel(raw: RawSettings): LogLevel {
  return oneOf(raw, 'logLevel', LOG_LEVELS);
}

export function parseOnUnknown(raw: RawSettings): OnUnknown {
  return oneOf(raw, 'onUnknown', ['allow', 'deny'] as const);
}

export function parseGuardMode(raw: RawSettings): GuardMode {
  return oneOf(raw, 'mode', ['enforce', 'warn'] as const);
}

/** Highest accepted --max-connections-per-source (the listener's own cap is at most 1024). */
const MAX_CONNECTIONS_PER_SOURCE_LIMIT = 1_000_000;

function maxConnectionsPerSource(raw: RawSettings): number {
  const text = value(raw, 'maxConnectionsPerSource') ?? '';
  const parsed = Number(text);
  if (!/^\d+$/.test(text) || parsed > MAX_CONNECTIONS_PER_SOURCE_LIMIT) {
    throw new ConfigError(
      `${label('maxConnectionsPerSource')} must be a whole number of connections, 0 for no per-source cap (got "${text}"): fix the value and start again (default 256).`,
    );
  }
  return parsed;
}

export function parseServeSettings(raw: RawSettings): ServeSettings {
  const tlsCertFile = required(
    raw,
    'tlsCert',
    'point it at the webhook serving certificate (PEM), e.g. from `kms-secret-guard certs`.',
  );
  const tlsKeyFile = required(raw, 'tlsKey', 'point it at the private key (PEM) of --tls-cert.');
  const port_ = port(raw, 'port');
  const healthPort = port(raw, 'healthPort');
  if (port_ === healthPort) {
    throw new ConfigError(
      `${label('port')} and ${label('healthPort')} are both ${port_}: give the health listener its own port.`,
    );
  }
  return {
    kms: parseKmsSettings(raw),
    monitor: parseMonitorSettings(raw),
    tlsCertFile,
    tlsKeyFile,
    clientCaFile: value(raw, 'clientCa'),
    port: port_,
    healthPort,
    onUnknown: parseOnUnknown(raw),
    mode: parseGuardMode(raw),
    logLevel: parseLogLevel(raw),
    maxConnectionsPerSource: maxConnectionsPerSource(raw),
  };
}

/** `kms-plugin`: serve's KMS, monitor and log settings, plus the socket and its own health port. */
export interface PluginSettings {
  readonly kms: KmsSettings;
  readonly monitor: MonitorSettings;
  /** Absolute path of the unix socket kube-apiserver dials. */
  readonly socketPath: string;
  readonly healthPort: number;
  readonly logLevel: LogLevel;
}

/** kms-plugin's own setting (RawSettings key `listen`); the others are SETTINGS entries. */
export const PLUGIN_SOCKET_SETTING = {
  flag: '--listen',
  env: 'KMS_PLUGIN_SOCKET',
  default: '/var/run/kmsplugin/socket.sock',
} as const satisfies SettingSpec;

/** kms-plugin's health port when none is given (serve's 8080 may run on the same node). */
export const PLUGIN_HEALTH_PORT_DEFAULT = '8081';
/** Linux limits a unix socket path to 107 bytes (sun_path). */
const MAX_SOCKET_PATH_BYTES = 107;

function socketPath(raw: RawSettings): string {
  const flagged = raw.listen?.trim();
  const given = flagged === undefined || flagged === '' ? PLUGIN_SOCKET_SETTING.default : flagged;
  // Accept the EncryptionConfiguration's `unix:///path` form too.
  const path = given.replace(/^unix:\/\//, '');
  if (!path.startsWith('/')) {
    throw new ConfigError(
      `${PLUGIN_SOCKET_SETTING.flag} / ${PLUGIN_SOCKET_SETTING.env} must be an absolute unix socket path such as /var/run/kmsplugin/socket.sock (got "${given}"): fix the value and start again.`,
    );
  }
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    throw new ConfigError(
      `${PLUGIN_SOCKET_SETTING.flag} / ${PLUGIN_SOCKET_SETTING.env} is ${Buffer.byteLength(path)} bytes long; unix socket paths may have at most ${MAX_SOCKET_PATH_BYTES}: choose a shorter path.`,
    );
  }
  return path;
}

export function parsePluginSettings(raw: RawSettings): PluginSettings {
  const givenPort = raw.healthPort?.trim();
  const healthPort = parsePort(
    label('healthPort'),
    givenPort === undefined || givenPort === '' ? PLUGIN_HEALTH_PORT_DEFAULT : givenPort,
    { allowZero: true },
  );
  return {
    kms: parseKmsSettings(raw),
    monitor: parseMonitorSettings(raw),
    socketPath: socketPath(raw),
    healthPort,
    logLevel: parseLogLevel(raw),
  };
}
