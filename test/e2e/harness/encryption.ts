/**
 * Encryption at rest for the e2e cluster: the KMS emulator, then `kms-secret-guard
 * kms-plugin` (a real child process) on a unix socket, and the EncryptionConfiguration that
 * points kube-apiserver at it (KMS v2, then identity). Also the in-tree aesgcm provider and
 * no encryption, for comparisons (the benchmark).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { startEmulator, type RunningEmulator } from '../../../src/emulator/index.js';
import { createKmsAdmin, type KmsAdmin } from '../../../src/emulator/admin.js';
import { cliPath } from './paths.js';
import { startStaticKeyIdPlugin, type StaticKeyIdPlugin } from './static-key-id-plugin.js';
import { waitFor } from '../../helpers/eventually.js';
import {
  freePort,
  startProcess,
  type ManagedProcess,
  type ProcessReaper,
} from '../../helpers/processes.js';

/**
 * `static-key-id`: through a test double of ack-kms-plugin (a `key_id` that never changes)
 * under the same provider name, until the test switches the cluster to kms-plugin.
 */
export type EncryptionMode = 'kms-plugin' | 'aesgcm' | 'identity' | 'static-key-id';

/** The provider name in the EncryptionConfiguration (in every stored prefix). */
export const KMS_PROVIDER_NAME = 'kms-secret-guard';

export interface KmsPluginProcess {
  readonly socketPath: string;
  readonly healthUrl: string;
  /** SIGTERM and wait (the plugin drains and removes its socket). */
  stop(): Promise<void>;
  /** Starts it again on the same socket and health port; waits for /readyz. */
  start(): Promise<void>;
  isRunning(): boolean;
  logTail(lines?: number): string;
}

/** The KMS side of an encrypting cluster: the emulator, its key and the plugin. */
export interface ClusterKms {
  readonly provider: string;
  readonly emulator: RunningEmulator;
  readonly keyId: string;
  /** The real Alibaba Cloud SDK against the emulator, for key state changes. */
  readonly kms: KmsAdmin;
  readonly plugin: KmsPluginProcess;
  /** Mode static-key-id: the ack-kms-plugin double encrypting until the switch. */
  readonly staticKeyIdPlugin?: StaticKeyIdPlugin;
}

export interface PreparedEncryption {
  readonly flags: string[];
  readonly kms: ClusterKms | undefined;
  /** Stops the plugin and the emulator (after kube-apiserver stopped). */
  stop(): Promise<void>;
  /**
   * Mode static-key-id: starts kms-plugin and points the EncryptionConfiguration at it under
   * the same provider name (kube-apiserver reads it at its next start).
   */
  switchToKmsPlugin?: () => Promise<void>;
}

function httpStatus(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = httpRequest(url, { timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => {
      resolve(0);
    });
    req.end();
  });
}

function configYaml(provider: string): string {
  return `apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
${provider}      - identity: {}
`;
}

async function startPlugin(
  reaper: ProcessReaper,
  workDir: string,
  emulator: RunningEmulator,
  keyId: string,
  startNow = true,
): Promise<KmsPluginProcess> {
  const socketDir = join(workDir, 'kmsplugin');
  const socketPath = join(socketDir, 'socket.sock');
  const healthPort = await freePort();
  const healthUrl = `http://127.0.0.1:${healthPort}`;
  let child: ManagedProcess | undefined;
  let starts = 0;
  let lastLog = '';
  const args = [
    cliPath(),
    'kms-plugin',
    `--kms-key-id=${keyId}`,
    `--kms-endpoint=${emulator.endpoint}`,
    `--kms-protocol=${emulator.protocol}`,
    `--kms-region=${emulator.regionId}`,
    `--listen=${socketPath}`,
    `--health-port=${healthPort}`,
    // Quick to see key changes, like the guard in these tests.
    '--refresh-interval=1s',
    '--max-staleness=30s',
    '--log-level=info',
  ];
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    ALIBABA_CLOUD_ACCESS_KEY_ID: emulator.accessKeyId,
    ALIBABA_CLOUD_ACCESS_KEY_SECRET: emulator.accessKeySecret,
  };
  const plugin: KmsPluginProcess = {
    socketPath,
    healthUrl,
    isRunning: () => child !== undefined && !child.hasExited(),
    logTail: (lines = 40) => child?.logTail(lines) ?? lastLog,
    async start() {
      if (plugin.isRunning()) return;
      starts += 1;
      const started = startProcess(reaper, 'kms-plugin', process.execPath, args, {
        logPath: join(workDir, `kms-plugin-${starts}.log`),
        env,
      });
      child = started;
      await waitFor(
        'kms-plugin /readyz',
        async () => ((await httpStatus(`${healthUrl}/readyz`)) === 200 ? true : undefined),
        {
          timeoutMs: 60_000,
          intervalMs: 100,
          abortIf: () =>
            started.hasExited() ? `kms-plugin exited:\n${started.logTail(20)}` : undefined,
        },
      );
    },
    async stop() {
      if (child === undefined) return;
      const running = child;
      child = undefined;
      await running.stop(15_000);
      lastLog = running.logTail(40);
    },
  };
  mkdirSync(socketDir, { recursive: true, mode: 0o700 });
  if (startNow) await plugin.start();
  return plugin;
}

/** Starts what `mode` needs before kube-apiserver and returns its flags. */
export async function prepareEncryption(
  mode: EncryptionMode,
  reaper: ProcessReaper,
  workDir: string,
): Promise<PreparedEncryption> {
  const configPath = join(workDir, 'encryption-config.yaml');
  const flags = [`--encryption-provider-config=${configPath}`];
  if (mode === 'identity') return { flags: [], kms: undefined, stop: async () => undefined };
  if (mode === 'aesgcm') {
    const secret = randomBytes(32).toString('base64');
    writeFileSync(
      configPath,
      configYaml(
        `      - aesgcm:\n          keys:\n            - name: key1\n              secret: ${secret}\n`,
      ),
      { mode: 0o600 },
    );
    return { flags, kms: undefined, stop: async () => undefined };
  }
  const emulator = await startEmulator({ keys: [''] });
  const keyId = emulator.keyIds[0];
  let plugin: KmsPluginProcess | undefined;
  let double: StaticKeyIdPlugin | undefined;
  try {
    if (keyId === undefined) throw new Error('the emulator seeded no key');
    plugin = await startPlugin(reaper, workDir, emulator, keyId, mode === 'kms-plugin');
    if (mode === 'static-key-id') {
      double = await startStaticKeyIdPlugin(
        emulator,
        keyId,
        join(workDir, 'ack-kms-plugin', 'socket.sock'),
      );
      writeFileSync(configPath, kmsConfigYaml(double.socketPath), { mode: 0o600 });
    } else {
      writeFileSync(configPath, kmsConfigYaml(plugin.socketPath), { mode: 0o600 });
    }
  } catch (error) {
    await plugin?.stop();
    await double?.stop();
    await emulator.close();
    throw error;
  }
  const running = plugin;
  const staticKeyIdPlugin = double;
  return {
    flags,
    kms: {
      provider: KMS_PROVIDER_NAME,
      emulator,
      keyId,
      kms: createKmsAdmin(emulator, keyId),
      plugin: running,
      ...(staticKeyIdPlugin === undefined ? {} : { staticKeyIdPlugin }),
    },
    async stop() {
      await running.stop();
      await staticKeyIdPlugin?.stop();
      await emulator.close();
    },
    ...(staticKeyIdPlugin === undefined
      ? {}
      : {
          async switchToKmsPlugin() {
            await running.start();
            writeFileSync(configPath, kmsConfigYaml(running.socketPath), { mode: 0o600 });
          },
        }),
  };
}

/** The KMS v2 provider (always named KMS_PROVIDER_NAME) on `socketPath`, then identity. */
function kmsConfigYaml(socketPath: string): string {
  return configYaml(
    `      - kms:\n          apiVersion: v2\n          name: ${KMS_PROVIDER_NAME}\n          endpoint: unix://${socketPath}\n          timeout: 3s\n`,
  );
}
