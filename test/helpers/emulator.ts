import KmsModule from '@alicloud/kms20160120';
import RpcModule from '@alicloud/rpc-client';
import {
  startEmulator,
  type EmulatorOptions,
  type RunningEmulator,
} from '../../src/emulator/index.js';
import { createKmsAdmin, type KmsAdmin } from '../../src/emulator/admin.js';

/**
 * The real @alicloud/kms20160120 SDK module (a CommonJS package: from ESM its classes hang
 * off the default import). `Kms.default` is the Client; request models are e.g.
 * `new Kms.DescribeKeyRequest({ keyId })`.
 */
export const Kms = KmsModule;
export type KmsSdkClient = InstanceType<typeof KmsModule.default>;

/** The bits of a tap Test the helper needs (keeps the helper independent of tap's types). */
interface TestLike {
  teardown(fn: () => unknown): void;
}

export interface SdkOptions {
  accessKeyId?: string;
  accessKeySecret?: string;
  readTimeout?: number;
  connectTimeout?: number;
}

/** A real SDK client pointed at the emulator (other credentials to test rejections). */
export function sdkFor(emulator: RunningEmulator, options: SdkOptions = {}): KmsSdkClient {
  return new Kms.default(
    new RpcModule.Config({
      endpoint: emulator.endpoint,
      protocol: emulator.protocol,
      regionId: emulator.regionId,
      accessKeyId: options.accessKeyId ?? emulator.accessKeyId,
      accessKeySecret: options.accessKeySecret ?? emulator.accessKeySecret,
      readTimeout: options.readTimeout ?? 5000,
      connectTimeout: options.connectTimeout ?? 5000,
    }),
  );
}

/**
 * Starts an emulator on 127.0.0.1:0 (one seeded key unless `keys` is given), closes it when
 * the test ends, and returns it with a real SDK client and the key admin of its first key.
 */
export async function withEmulator(
  t: TestLike,
  options: EmulatorOptions = {},
): Promise<{ emulator: RunningEmulator; sdk: KmsSdkClient; keyId: string; admin: KmsAdmin }> {
  const emulator = await startEmulator({
    keys: [''],
    ...options,
    host: options.host ?? '127.0.0.1',
    port: options.port ?? 0,
  });
  t.teardown(() => emulator.close());
  const keyId = emulator.keyIds[0] ?? '';
  return { emulator, sdk: sdkFor(emulator), keyId, admin: createKmsAdmin(emulator, keyId) };
}

/** What the SDK throws for a KMS error answer: `code` is `<Code>Error`, `data` the JSON body. */
export interface SdkError {
  code?: string;
  message: string;
  data?: { HttpStatus?: number; Code?: string; Message?: string; RequestId?: string };
}

/** Runs an SDK call expected to fail and returns its error (throws if it succeeded). */
export async function sdkError(call: Promise<unknown>): Promise<SdkError> {
  try {
    await call;
  } catch (error) {
    return error as SdkError;
  }
  throw new Error('expected the SDK call to fail, but it succeeded');
}

/** The CLI flags that point a command (check, reencrypt, kms-plugin …) at the emulator's key. */
export function emulatorKmsFlags(emulator: { readonly endpoint: string }, keyId: string): string[] {
  return ['--kms-key-id', keyId, '--kms-endpoint', emulator.endpoint, '--kms-protocol', 'http'];
}
