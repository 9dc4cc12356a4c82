/**
 * The KMS v2 calls backed by Alibaba Cloud KMS, without gRPC: Status from the key monitor's
 * memory, Encrypt and Decrypt through the KMS client. Ciphertext is the bytes of KMS's
 * CiphertextBlob text and KMS gets the plaintext as base64, exactly as ack-kms-plugin does,
 * so either plugin reads what the other wrote under the same provider name.
 */
import { requestKeyId } from '../kms/key-id.js';
import type { KmsCryptoApi } from '../kms/client.js';
import { keyVerdictOf, toKmsError, type KmsError } from '../kms/errors.js';
import type { KeySnapshotSource } from '../kms/types.js';
import type { Logger } from '../logging/logger.js';
import { PluginError } from './errors.js';
import { formatKeyId, matchKeyId, parseKeyId } from './key-id.js';
import { checkCiphertext, checkPlaintext, isBase64Text } from './limits.js';
import { decideStatus, type StatusAnswer } from './status.js';

/** Stored in the envelope (in clear) next to the encrypted seed: KMS's RequestId, for support. */
export const REQUEST_ID_ANNOTATION = 'request-id.kms-secret-guard.io';

export interface EncryptInput {
  readonly plaintext: Uint8Array;
  readonly uid: string;
}

export interface EncryptAnswer {
  readonly ciphertext: Buffer;
  readonly keyId: string;
  readonly annotations: Record<string, Buffer>;
}

export interface DecryptInput {
  readonly ciphertext: Uint8Array;
  readonly uid: string;
  readonly keyId: string;
}

export interface PluginService {
  status(): StatusAnswer;
  encrypt(input: EncryptInput): Promise<EncryptAnswer>;
  decrypt(input: DecryptInput): Promise<Buffer>;
}

/** One KMS call's outcome, for metrics (`result` is 'ok' or the KMS error code). */
export type KmsCallObserver = (call: {
  action: string;
  result: string;
  durationSeconds: number;
}) => void;

export interface PluginServiceOptions {
  readonly configuredKeyId: string;
  readonly maxStalenessMs: number;
  readonly kms: KmsCryptoApi;
  /** The key monitor: snapshots for Status, refresh when KMS answers differ from them. */
  readonly monitor: KeySnapshotSource & { refresh(): Promise<unknown> };
  readonly logger: Logger;
  readonly onKmsCall?: KmsCallObserver;
}

const UNUSABLE_KEY_CODES = new Set([
  'Rejected.Disabled',
  'Rejected.PendingDeletion',
  'Rejected.PendingImport',
  'Rejected.ResourceExpired',
]);

/** A KMS failure as the gRPC answer: the KMS code and message plus what to do. */
export function kmsFailure(action: 'Encrypt' | 'Decrypt', error: KmsError): PluginError {
  const detail = `KMS ${action} failed (${error.code}): ${error.message}`;
  if (error.transient) {
    return new PluginError(
      'UNAVAILABLE',
      `${detail}. KMS is unreachable or throttling; the API server retries.`,
    );
  }
  const verdict = keyVerdictOf(error);
  if (verdict === 'NoPermission') {
    return new PluginError(
      'PERMISSION_DENIED',
      `${detail}. Grant the plugin's RAM identity kms:Encrypt, kms:Decrypt and kms:DescribeKey on the key.`,
    );
  }
  if (verdict === 'NotFound') {
    return new PluginError('NOT_FOUND', `${detail}. Check --kms-key-id and --kms-region.`);
  }
  if (UNUSABLE_KEY_CODES.has(error.code)) {
    return new PluginError(
      'FAILED_PRECONDITION',
      `${detail}. The key cannot be used: see GET /healthz/kms for the remedy.`,
    );
  }
  if (action === 'Decrypt' && error.code.startsWith('InvalidParameter')) {
    return new PluginError(
      'INVALID_ARGUMENT',
      `${detail}. The ciphertext is not a KMS CiphertextBlob of this account, or it was altered.`,
    );
  }
  return new PluginError('INTERNAL', detail);
}

interface ServiceContext {
  readonly options: PluginServiceOptions;
  readonly log: Logger;
  timed<T>(action: 'Encrypt' | 'Decrypt', work: () => Promise<T>): Promise<T>;
  refreshSoon(): void;
}

async function encrypt(context: ServiceContext, input: EncryptInput): Promise<EncryptAnswer> {
  const { options, log } = context;
  const invalid = checkPlaintext(input.plaintext);
  if (invalid) throw invalid;
  const snapshot = options.monitor.snapshot();
  const known = snapshot.key;
  const keyForCall = known?.keyId ?? requestKeyId(options.configuredKeyId);
  const plaintext = Buffer.from(input.plaintext).toString('base64');
  const result = await context.timed('Encrypt', () => options.kms.encrypt(keyForCall, plaintext));
  const keyId = formatKeyId(result.keyId, result.keyVersionId);
  if (result.keyId !== known?.keyId || result.keyVersionId !== known.primaryKeyVersion) {
    // KMS encrypted with a version the snapshot does not know: the next Status must agree.
    log.info(
      { uid: input.uid, keyId, snapshotVersion: known?.primaryKeyVersion },
      'Encrypt used another key version than the cached one; refreshing the key state',
    );
    context.refreshSoon();
  }
  log.debug({ uid: input.uid, keyId }, 'Encrypt');
  const annotations: Record<string, Buffer> =
    result.requestId === undefined
      ? {}
      : { [REQUEST_ID_ANNOTATION]: Buffer.from(result.requestId) };
  return { ciphertext: Buffer.from(result.ciphertextBlob, 'utf8'), keyId, annotations };
}

function otherKey(ours: string, what: string): PluginError {
  return new PluginError(
    'INVALID_ARGUMENT',
    `Decrypt: ${what}, but this plugin uses ${ours}; run a plugin for that key under its own provider name.`,
  );
}

async function decrypt(context: ServiceContext, input: DecryptInput): Promise<Buffer> {
  const { options, log } = context;
  const invalid = checkCiphertext(input.ciphertext);
  if (invalid) throw invalid;
  const resolved = options.monitor.snapshot().key?.keyId;
  const ours = resolved ?? options.configuredKeyId;
  const stored = input.keyId;
  if (stored !== '' && matchKeyId(stored, options.configuredKeyId, resolved) === 'other') {
    throw otherKey(ours, `key_id ${stored} names KMS key ${parseKeyId(stored).keyId}`);
  }
  const blob = Buffer.from(input.ciphertext).toString('utf8');
  const result = await context.timed('Decrypt', () => options.kms.decrypt(blob));
  if (resolved !== undefined && result.keyId !== resolved) {
    throw otherKey(ours, `the ciphertext belongs to KMS key ${result.keyId}`);
  }
  if (!isBase64Text(result.plaintext)) {
    throw new PluginError(
      'INVALID_ARGUMENT',
      'Decrypt: KMS decrypted the ciphertext, but it was not written by a KMS v2 plugin (its plaintext is not base64); check the provider name in the EncryptionConfiguration.',
    );
  }
  log.debug({ uid: input.uid, keyId: formatKeyId(result.keyId, result.keyVersionId) }, 'Decrypt');
  return Buffer.from(result.plaintext, 'base64');
}

export function createPluginService(options: PluginServiceOptions): PluginService {
  const log = options.logger.child({ component: 'kms-plugin' });
  const observe = (action: string, result: string, started: number): void => {
    options.onKmsCall?.({ action, result, durationSeconds: (performance.now() - started) / 1000 });
  };
  const refreshSoon = (): void => {
    options.monitor.refresh().catch(() => undefined);
  };
  const context: ServiceContext = {
    options,
    log,
    refreshSoon,
    async timed(action, work) {
      const started = performance.now();
      try {
        const result = await work();
        observe(action, 'ok', started);
        return result;
      } catch (thrown) {
        const error = toKmsError(thrown);
        observe(action, error.code, started);
        // KMS said something about the key the snapshot may not know yet: Status catches up.
        if (!error.transient) refreshSoon();
        throw kmsFailure(action, error);
      }
    },
  };
  return {
    status: () => decideStatus(options.monitor.snapshot(), options.maxStalenessMs),
    encrypt: (input) => encrypt(context, input),
    decrypt: (input) => decrypt(context, input),
  };
}
