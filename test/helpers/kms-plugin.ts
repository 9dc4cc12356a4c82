import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { PluginSettings } from '../../src/config/settings.js';
import type { RunningEmulator } from '../../src/emulator/index.js';
import { createLogger } from '../../src/logging/logger.js';
import { loadKmsV2Package } from '../../src/plugin/grpc-server.js';
import {
  startKmsPlugin,
  type RunningKmsPlugin,
  type StartKmsPluginOptions,
} from '../../src/plugin/index.js';
import { emulatorKmsSettings } from './kms.js';
import { LogCapture } from './logs.js';

interface TestLike {
  teardown(fn: () => unknown): void;
}

export interface StatusReply {
  version: string;
  healthz: string;
  key_id: string;
}
export interface EncryptReply {
  ciphertext: Buffer;
  key_id: string;
  annotations: Record<string, Buffer>;
}

/** A grpc-js client of the KMS v2 API over the real unix socket (what kube-apiserver speaks). */
export interface PluginClient {
  status(): Promise<StatusReply>;
  encrypt(plaintext: Buffer, uid?: string): Promise<EncryptReply>;
  decrypt(ciphertext: Buffer, keyId: string, uid?: string): Promise<Buffer>;
  close(): void;
}

type Unary = (
  request: unknown,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, reply: unknown) => void,
) => void;

export function pluginClient(socketPath: string, deadlineMs = 10_000): PluginClient {
  const Client = loadKmsV2Package().KeyManagementService;
  const client = new Client(
    `unix:${socketPath}`,
    grpc.credentials.createInsecure(),
  ) as unknown as Record<'Status' | 'Encrypt' | 'Decrypt', Unary> & grpc.Client;
  const call = <T>(method: 'Status' | 'Encrypt' | 'Decrypt', request: unknown): Promise<T> =>
    new Promise((resolve, reject) => {
      client[method].call(
        client,
        request,
        { deadline: Date.now() + deadlineMs },
        (error, reply) => {
          if (error) reject(error);
          else resolve(reply as T);
        },
      );
    });
  return {
    status: () => call<StatusReply>('Status', {}),
    encrypt: (plaintext, uid = 'test-uid') => call<EncryptReply>('Encrypt', { plaintext, uid }),
    decrypt: async (ciphertext, keyId, uid = 'test-uid') =>
      (await call<{ plaintext: Buffer }>('Decrypt', { ciphertext, key_id: keyId, uid })).plaintext,
    close: () => {
      client.close();
    },
  };
}

/** Resolves with the gRPC error of a call expected to fail (throws if it succeeded). */
export async function grpcError(work: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await work;
  } catch (error) {
    return error as grpc.ServiceError;
  }
  throw new Error('expected the gRPC call to fail, but it succeeded');
}

/** A folder for sockets, short enough for the 107-byte unix socket path limit. */
export function socketDir(t: TestLike): string {
  const dir = mkdtempSync(join(tmpdir(), 'ksg-sock-'));
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

export interface PluginUnderTest {
  readonly plugin: RunningKmsPlugin;
  readonly client: PluginClient;
  readonly logs: LogCapture;
  readonly socketPath: string;
}

/** kms-plugin in-process against the emulator (the real SDK), with a client on its socket. */
export async function startPluginUnderTest(
  t: TestLike,
  emulator: RunningEmulator,
  keyId: string,
  overrides: Partial<PluginSettings> & {
    drainTimeoutMs?: number;
    logLevel?: PluginSettings['logLevel'];
    /** The KMS client the plugin uses (default: the real SDK client against the emulator). */
    api?: StartKmsPluginOptions['api'];
    maxInFlight?: number;
    minRefreshGapMs?: number;
  } = {},
): Promise<PluginUnderTest> {
  const socketPath = overrides.socketPath ?? join(socketDir(t), 'kms', 'socket.sock');
  const logs = new LogCapture();
  const { drainTimeoutMs, api, maxInFlight, minRefreshGapMs, ...settingOverrides } = overrides;
  const settings: PluginSettings = {
    kms: emulatorKmsSettings(emulator, keyId),
    monitor: { refreshIntervalMs: 60_000, maxStalenessMs: 300_000 },
    socketPath,
    healthPort: 0,
    logLevel: 'info',
    ...settingOverrides,
  };
  const plugin = await startKmsPlugin({
    settings,
    logger: createLogger(settings.logLevel, logs),
    credential: { accessKeyId: emulator.accessKeyId, accessKeySecret: emulator.accessKeySecret },
    ...(drainTimeoutMs === undefined ? {} : { drainTimeoutMs }),
    ...(api === undefined ? {} : { api }),
    ...(maxInFlight === undefined ? {} : { maxInFlight }),
    ...(minRefreshGapMs === undefined ? {} : { minRefreshGapMs }),
  });
  const client = pluginClient(socketPath);
  t.teardown(async () => {
    client.close();
    await plugin.close();
  });
  await plugin.monitor.firstLookup;
  return { plugin, client, logs, socketPath };
}
