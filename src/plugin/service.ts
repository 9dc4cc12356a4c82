/**
 * The KMS v2 calls backed by Alibaba Cloud KMS, without gRPC: Status from the key monitor's
 * memory, Encrypt and Decrypt through the KMS client. Ciphertext is the bytes of KMS's
 * CiphertextBlob text and KMS gets the plaintext as base64, exactly as ack-kms-plugin does,
 * so either plugin reads what the other wrote under the same provider name.
 */
import { requestKeyId } from '../kms/key-id.js';
import type { KmsCryptoApi } from '../kms/client.js';
import type { KeySnapshot, KeySnapshotSource } from '../kms/types.js';
import type { Logger } from '../logging/logger.js';
import { systemClock, type Clock } from '../time/clock.js';
import { PluginError } from './errors.js';
import { formatKeyId } from './key-id.js';
import {
  createKmsCallRunner,
  DEFAULT_MAX_IN_FLIGHT,
  isKeyRelated,
  type KmsCallObserver,
  type KmsCallRunner,
} from './kms-calls.js';
import { checkCiphertext, checkKeyId, checkPlaintext, isBase64Text } from './limits.js';
import {
  createRefreshTrigger,
  DEFAULT_MIN_REFRESH_GAP_MS,
  type RefreshTrigger,
} from './refresh.js';
import {
  decideStatus,
  EMPTY_STATUS_MEMORY,
  rememberSnapshot,
  type StatusAnswer,
  type StatusMemory,
} from './status.js';

export type { KmsCallObserver } from './kms-calls.js';
export { kmsFailure } from './kms-calls.js';

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
  /** Folds a snapshot the monitor just made into Status's memory. */
  observe(snapshot: KeySnapshot): void;
  /** `signal` aborts when the caller cancelled or its deadline passed. */
  encrypt(input: EncryptInput, signal?: AbortSignal): Promise<EncryptAnswer>;
  decrypt(input: DecryptInput, signal?: AbortSignal): Promise<Buffer>;
  /** Cancels a pending snapshot refresh. */
  stop(): void;
}

export interface PluginServiceOptions {
  readonly configuredKeyId: string;
  readonly maxStalenessMs: number;
  /** The monitor's refresh interval: refreshes asked by calls are never more frequent. */
  readonly refreshIntervalMs: number;
  readonly kms: KmsCryptoApi;
  /** The key monitor: snapshots for Status, refresh when KMS answers differ from them. */
  readonly monitor: KeySnapshotSource & { refresh(): Promise<unknown> };
  readonly logger: Logger;
  readonly onKmsCall?: KmsCallObserver;
  /** A Decrypt of a ciphertext of another KMS key (its KeyId). */
  readonly onOtherKeyDecrypt?: (keyId: string) => void;
  /** Encrypt/Decrypt calls waiting for KMS at once (default 64); beyond: RESOURCE_EXHAUSTED. */
  readonly maxInFlight?: number;
  /** Gap between refreshes asked by calls (default 5 s, or the refresh interval if shorter). */
  readonly minRefreshGapMs?: number;
  readonly clock?: Clock;
}

interface ServiceContext {
  readonly options: PluginServiceOptions;
  readonly log: Logger;
  readonly calls: KmsCallRunner;
  readonly refresh: RefreshTrigger;
}

async function encrypt(
  context: ServiceContext,
  input: EncryptInput,
  signal: AbortSignal | undefined,
): Promise<EncryptAnswer> {
  const { options, log } = context;
  const invalid = checkPlaintext(input.plaintext);
  if (invalid) throw invalid;
  const known = options.monitor.snapshot().key;
  const keyForCall = known?.keyId ?? requestKeyId(options.configuredKeyId);
  const plaintext = Buffer.from(input.plaintext).toString('base64');
  const result = await context.calls.run(
    'Encrypt',
    () => options.kms.encrypt(keyForCall, plaintext),
    signal,
  );
  const keyId = formatKeyId(result.keyId, result.keyVersionId);
  if (result.keyId !== known?.keyId || result.keyVersionId !== known.primaryKeyVersion) {
    // KMS encrypted with a version the snapshot does not know: the next Status must agree.
    log.info(
      { uid: input.uid, keyId, snapshotVersion: known?.primaryKeyVersion },
      'Encrypt used another key version than the cached one; refreshing the key state',
    );
    context.refresh.request();
  }
  // One Encrypt per data-encryption seed (rare): worth a line, with KMS's RequestId for support.
  log.info({ uid: input.uid, keyId, requestId: result.requestId }, 'Encrypt: a seed was encrypted');
  // No annotations: kube-apiserver stores them in every Secret's envelope and validates them
  // on every read (about 40 % of its read-side envelope CPU with one), for nothing it uses.
  return { ciphertext: Buffer.from(result.ciphertextBlob, 'utf8'), keyId, annotations: {} };
}

/**
 * KMS finds the key and version from the blob itself, so the stored key_id does not decide:
 * a Secret written under the alias's previous key, or by ack-kms-plugin with its static
 * key_id, must stay readable. Garbage fails at KMS (INVALID_ARGUMENT); a key the RAM policy
 * does not permit answers PERMISSION_DENIED.
 */
async function decrypt(
  context: ServiceContext,
  input: DecryptInput,
  signal: AbortSignal | undefined,
): Promise<Buffer> {
  const { options, log } = context;
  const invalid = checkCiphertext(input.ciphertext) ?? checkKeyId(input.keyId);
  if (invalid) throw invalid;
  const blob = Buffer.from(input.ciphertext).toString('utf8');
  const result = await context.calls.run('Decrypt', () => options.kms.decrypt(blob), signal);
  const ours = options.monitor.snapshot().key?.keyId;
  if (ours !== undefined && result.keyId !== ours) {
    options.onOtherKeyDecrypt?.(result.keyId);
    log.warn(
      {
        uid: input.uid,
        ciphertextKeyId: formatKeyId(result.keyId, result.keyVersionId),
        storedKeyId: input.keyId,
        pluginKeyId: ours,
      },
      "Decrypt of a ciphertext of another KMS key (the alias's previous key, or a key another plugin used): it stays readable while the RAM policy permits kms:Decrypt on that key; rewrite the Secrets (kms-secret-guard reencrypt) to move them to the plugin's key",
    );
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

/** Status's memory, folded from every snapshot it sees; logs when it ignores an older one. */
function createStatusMemory(log: Logger): { remember(snapshot: KeySnapshot): StatusMemory } {
  let memory = EMPTY_STATUS_MEMORY;
  let lastIgnored: string | undefined;
  return {
    remember(snapshot) {
      const next = rememberSnapshot(memory, snapshot);
      memory = next.memory;
      if (next.ignoredOlder !== undefined && next.ignoredOlder !== lastIgnored) {
        log.warn(
          {
            snapshotVersion: next.ignoredOlder,
            reportedVersion: memory.reported?.keyVersionId,
          },
          'KMS answered an older primary key version than the one already reported; Status keeps the newer one',
        );
      }
      lastIgnored = next.ignoredOlder;
      return memory;
    },
  };
}

export function createPluginService(options: PluginServiceOptions): PluginService {
  const log = options.logger.child({ component: 'kms-plugin' });
  const refresh = createRefreshTrigger({
    refresh: () => options.monitor.refresh(),
    minIntervalMs: Math.min(
      options.minRefreshGapMs ?? DEFAULT_MIN_REFRESH_GAP_MS,
      options.refreshIntervalMs,
    ),
    clock: options.clock ?? systemClock,
  });
  const calls = createKmsCallRunner({
    maxInFlight: options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT,
    onKmsCall: options.onKmsCall,
    // KMS said something about a key the snapshot may not know yet: Status catches up.
    onKmsError: (_action, error) => {
      if (isKeyRelated(error)) refresh.request();
    },
  });
  const memory = createStatusMemory(log);
  const context: ServiceContext = { options, log, calls, refresh };
  return {
    status() {
      const snapshot = options.monitor.snapshot();
      return decideStatus(snapshot, memory.remember(snapshot), options.maxStalenessMs);
    },
    observe(snapshot) {
      memory.remember(snapshot);
    },
    encrypt: (input, signal) => encrypt(context, input, signal),
    decrypt: (input, signal) => decrypt(context, input, signal),
    stop: () => {
      refresh.stop();
    },
  };
}
