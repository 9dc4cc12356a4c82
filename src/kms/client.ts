import KmsSdk from '@alicloud/kms20160120';
import RpcClient from '@alicloud/rpc-client';
import Credentials from '@alicloud/credentials';
import type { KmsSettings } from '../config/settings.js';
import { KmsError, toKmsError } from './errors.js';
import { asRecord } from './fields.js';

export { KmsError, toKmsError, LOCAL_ERROR_CODES } from './errors.js';

/**
 * A thin, typed wrapper around `@alicloud/kms20160120` (RPC style, signature v1.0).
 * Every call has short connect/read timeouts and no SDK retries: the monitor owns retries
 * (with backoff), and KMS key reads share a small per-account QPS budget.
 */

/** The fields of DescribeKey's KeyMetadata the guard uses; dates are KMS's ISO 8601 strings. */
export interface KmsKeyMetadata {
  readonly requestId: string | undefined;
  readonly keyId: string;
  readonly arn: string | undefined;
  readonly keyState: string;
  readonly keySpec: string | undefined;
  readonly keyUsage: string | undefined;
  readonly origin: string | undefined;
  readonly protectionLevel: string | undefined;
  readonly creationDate: string | undefined;
  readonly primaryKeyVersion: string | undefined;
  readonly lastRotationDate: string | undefined;
  readonly nextRotationDate: string | undefined;
  readonly automaticRotation: string | undefined;
  readonly rotationInterval: string | undefined;
  readonly deleteDate: string | undefined;
  readonly deletionProtection: string | undefined;
  readonly materialExpireTime: string | undefined;
}

/** The KMS calls the guard makes (the monitor, `check`, `reencrypt`, `dev`). */
export interface KmsClient {
  /** DescribeKey; `keyId` may be a key id, `alias/…` or an ARN. */
  describeKey(keyId: string): Promise<KmsKeyMetadata>;
}

/** What Encrypt answered: the blob is KMS's base64 text, kept exactly as KMS sent it. */
export interface KmsEncryptResult {
  readonly keyId: string;
  readonly keyVersionId: string;
  readonly ciphertextBlob: string;
  readonly requestId: string | undefined;
}

/** What Decrypt answered; `plaintext` is the text that was encrypted (KMS takes text). */
export interface KmsDecryptResult {
  readonly keyId: string;
  readonly keyVersionId: string;
  readonly plaintext: string;
  readonly requestId: string | undefined;
}

/** The cryptographic calls of the KMS v2 plugin (the key monitor never makes these). */
export interface KmsCryptoApi {
  /** Encrypt; `keyId` may be a key id, `alias/…` or an ARN; `plaintext` is text (≤ 6 KiB). */
  encrypt(keyId: string, plaintext: string): Promise<KmsEncryptResult>;
  /** Decrypt; KMS finds the key and version from the blob itself. */
  decrypt(ciphertextBlob: string): Promise<KmsDecryptResult>;
}

/** An explicit access key (tests, or credentials read from an injected environment). */
export interface StaticCredential {
  readonly accessKeyId: string;
  readonly accessKeySecret: string;
  readonly securityToken?: string | undefined;
}

/** Anything `@alicloud/credentials` can sign with, e.g. `new Credential()` (the default chain). */
export type CredentialProvider = InstanceType<typeof Credentials.default>;

export type CredentialLike = StaticCredential | CredentialProvider;

export interface KmsClientOptions {
  /** Default: the Alibaba Cloud default credential chain (reads the process environment). */
  readonly credential?: CredentialLike;
  /** TCP connect timeout per call (default 1000 ms). */
  readonly connectTimeoutMs?: number;
  /** Time to the response per call (default 2000 ms). */
  readonly readTimeoutMs?: number;
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 1000;
export const DEFAULT_READ_TIMEOUT_MS = 2000;

function isStatic(credential: CredentialLike): credential is StaticCredential {
  return 'accessKeySecret' in credential && typeof credential.accessKeySecret === 'string';
}

/**
 * The default credential chain, rebuilt after a failure. The library's chain remembers the
 * last provider it tried even when every provider failed and afterwards asks only that one,
 * so a chain that failed once (e.g. the RRSA token file was not mounted yet) never recovers.
 */
export function defaultCredentialChain(): CredentialProvider {
  let chain = new Credentials.default();
  async function credentials(): Promise<Awaited<ReturnType<CredentialProvider['getCredential']>>> {
    const current = chain;
    try {
      return await current.getCredential();
    } catch (error) {
      if (chain === current) chain = new Credentials.default();
      throw error;
    }
  }
  // What the RPC client calls to sign a request (the library's own names).
  const reader = {
    getCredential: credentials,
    getAccessKeyId: async () => (await credentials()).accessKeyId,
    getAccessKeySecret: async () => (await credentials()).accessKeySecret,
    getSecurityToken: async () => (await credentials()).securityToken,
    getType: () => 'default',
    getBearerToken: () => undefined,
  };
  return reader as unknown as CredentialProvider;
}

/** Builds the credential the SDK signs with; the default chain when none is given. */
export function toSdkCredential(credential: CredentialLike | undefined): CredentialProvider {
  if (credential === undefined) return defaultCredentialChain();
  if (!isStatic(credential)) return credential;
  const token = credential.securityToken;
  const config = new Credentials.Config(
    token !== undefined && token !== ''
      ? {
          type: 'sts',
          accessKeyId: credential.accessKeyId,
          accessKeySecret: credential.accessKeySecret,
          securityToken: token,
        }
      : {
          type: 'access_key',
          accessKeyId: credential.accessKeyId,
          accessKeySecret: credential.accessKeySecret,
        },
  );
  return new Credentials.default(config);
}

/**
 * Reads the access key variables of the default chain from an injected environment, so the
 * CLI can honour `ctx.env`; returns undefined when they are absent (then the chain decides).
 */
export function staticCredentialFromEnv(
  env: Readonly<Record<string, string | undefined>>,
): StaticCredential | undefined {
  const accessKeyId = env.ALIBABA_CLOUD_ACCESS_KEY_ID?.trim();
  const accessKeySecret = env.ALIBABA_CLOUD_ACCESS_KEY_SECRET?.trim();
  if (!accessKeyId || !accessKeySecret) return undefined;
  const securityToken = env.ALIBABA_CLOUD_SECURITY_TOKEN?.trim();
  return securityToken
    ? { accessKeyId, accessKeySecret, securityToken }
    : { accessKeyId, accessKeySecret };
}

function optionalText(value: unknown): string | undefined {
  if (typeof value === 'string') return value === '' ? undefined : value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return undefined;
}

function toMetadata(response: unknown): KmsKeyMetadata {
  const body = asRecord(response);
  const meta = asRecord(body.keyMetadata ?? body.KeyMetadata);
  const field = (camel: string): string | undefined =>
    optionalText(meta[camel] ?? meta[camel.charAt(0).toUpperCase() + camel.slice(1)]);
  const keyId = field('keyId');
  const keyState = field('keyState');
  if (keyId === undefined || keyState === undefined) {
    throw new KmsError({
      code: 'InvalidResponse',
      message: 'DescribeKey answered without KeyMetadata.KeyId / KeyState',
      transient: true,
    });
  }
  return {
    requestId: optionalText(body.requestId ?? body.RequestId),
    keyId,
    arn: field('arn'),
    keyState,
    keySpec: field('keySpec'),
    keyUsage: field('keyUsage'),
    origin: field('origin'),
    protectionLevel: field('protectionLevel'),
    creationDate: field('creationDate'),
    primaryKeyVersion: field('primaryKeyVersion'),
    lastRotationDate: field('lastRotationDate'),
    nextRotationDate: field('nextRotationDate'),
    automaticRotation: field('automaticRotation'),
    rotationInterval: field('rotationInterval'),
    deleteDate: field('deleteDate'),
    deletionProtection: field('deletionProtection'),
    materialExpireTime: field('materialExpireTime'),
  };
}

/**
 * True for a connection that broke before any answer: "socket hang up" or a reset of the
 * request itself (ECONNRESET/EPIPE). An error while reading a started answer ("aborted")
 * is not one. This is what a reused keep-alive socket gives when the server closed it while
 * idle, just as the next request went out.
 */
export function isStaleConnectionError(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, message } = error as { code?: unknown; message?: unknown };
  return (code === 'ECONNRESET' || code === 'EPIPE') && message !== 'aborted';
}

/**
 * Runs `work` again at once, once, when its connection broke before any answer. The SDK
 * keeps sockets alive between polls and a gateway closes idle ones (cloud gateways after
 * about 60 s), so a poll can pick a socket being closed. The SDK does not say whether the
 * socket was reused, so the error kind decides: DescribeKey and Decrypt are reads and
 * Encrypt has no side effect, so a repeat is safe;
 * Node drops the broken socket from its pool so the retry gets a fresh connection, and a
 * KMS that really resets connections still fails after two attempts (no loop, no backoff
 * here: the monitor's own backoff applies to that failure).
 */
export async function retryOnStaleConnection<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (!isStaleConnectionError(error)) throw error;
    return await work();
  }
}

function cryptoField(body: Record<string, unknown>, name: string, action: string): string {
  const found = optionalText(body[name] ?? body[name.charAt(0).toUpperCase() + name.slice(1)]);
  if (found === undefined) {
    throw new KmsError({
      code: 'InvalidResponse',
      message: `${action} answered without ${name.charAt(0).toUpperCase() + name.slice(1)}`,
      transient: true,
    });
  }
  return found;
}

function toEncryptResult(response: unknown): KmsEncryptResult {
  const body = asRecord(response);
  return {
    keyId: cryptoField(body, 'keyId', 'Encrypt'),
    keyVersionId: cryptoField(body, 'keyVersionId', 'Encrypt'),
    ciphertextBlob: cryptoField(body, 'ciphertextBlob', 'Encrypt'),
    requestId: optionalText(body.requestId ?? body.RequestId),
  };
}

function toDecryptResult(response: unknown): KmsDecryptResult {
  const body = asRecord(response);
  return {
    keyId: cryptoField(body, 'keyId', 'Decrypt'),
    keyVersionId: cryptoField(body, 'keyVersionId', 'Decrypt'),
    plaintext: cryptoField(body, 'plaintext', 'Decrypt'),
    requestId: optionalText(body.requestId ?? body.RequestId),
  };
}

type KmsSdkClient = InstanceType<typeof KmsSdk.default>;
type SdkRuntime = Parameters<KmsSdkClient['describeKeyEx']>[1];

function cryptoMethods(
  sdk: KmsSdkClient,
  runtime: () => SdkRuntime,
  call: <T>(work: () => Promise<T>) => Promise<T>,
): KmsCryptoApi {
  return {
    encrypt: (keyId, plaintext) =>
      call(async () =>
        toEncryptResult(
          await sdk.encryptEx(new KmsSdk.EncryptRequest({ keyId, plaintext }), runtime()),
        ),
      ),
    decrypt: (ciphertextBlob) =>
      call(async () =>
        toDecryptResult(
          await sdk.decryptEx(new KmsSdk.DecryptRequest({ ciphertextBlob }), runtime()),
        ),
      ),
  };
}

export function createKmsClient(
  kms: KmsSettings,
  options: KmsClientOptions = {},
): KmsClient & KmsCryptoApi {
  const connectTimeout = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const readTimeout = options.readTimeoutMs ?? DEFAULT_READ_TIMEOUT_MS;
  const config = new RpcClient.Config({
    endpoint: kms.endpoint,
    protocol: kms.protocol,
    credential: toSdkCredential(options.credential),
    connectTimeout,
    readTimeout,
    ...(kms.regionId !== undefined ? { regionId: kms.regionId } : {}),
  });
  const sdk = new KmsSdk.default(config);
  type RuntimeOptions = Parameters<typeof sdk.describeKeyEx>[1];
  // One attempt per call: the SDK's own retry loop would multiply load during throttling.
  const runtime = (): RuntimeOptions =>
    // The SDK only reads these fields; its RuntimeOptions class lives in a transitive package.
    // eslint-disable-next-line @typescript-eslint/no-unsafe-class-instance-assignment
    ({ autoretry: false, maxAttempts: 1, connectTimeout, readTimeout }) as RuntimeOptions;

  async function call<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await retryOnStaleConnection(work);
    } catch (error) {
      throw toKmsError(error);
    }
  }

  return {
    describeKey: (keyId) =>
      call(async () =>
        toMetadata(await sdk.describeKeyEx(new KmsSdk.DescribeKeyRequest({ keyId }), runtime())),
      ),
    ...cryptoMethods(sdk, runtime, call),
  };
}
