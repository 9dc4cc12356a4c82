/**
 * What Status answers for a key snapshot: no KMS call, only the monitor's memory (kube-apiserver
 * polls Status every 10–60 s per replica, plus its health checks). Pure.
 */
// The same words as the guard's denial, so the API server's log and kubectl agree.
import { unusableMessage } from '../kms/vocabulary.js';
import { formatDuration } from '../config/duration.js';
import type { KeySnapshot, UnusableReason } from '../kms/types.js';
import { PluginError, type PluginErrorCode } from './errors.js';
import { formatKeyId } from './key-id.js';

/** The KMS plugin API version this plugin speaks (`apiVersion: v2` in EncryptionConfiguration). */
export const KMS_API_VERSION = 'v2';
export const HEALTHZ_OK = 'ok';

export interface StatusAnswer {
  readonly version: string;
  /** "ok", or why the plugin is degraded (kube-apiserver shows it in its /readyz). */
  readonly healthz: string;
  readonly keyId: string;
}

const UNUSABLE_CODES: Record<UnusableReason, PluginErrorCode> = {
  Disabled: 'FAILED_PRECONDITION',
  PendingDeletion: 'FAILED_PRECONDITION',
  PendingImport: 'FAILED_PRECONDITION',
  NotFound: 'NOT_FOUND',
  NoPermission: 'PERMISSION_DENIED',
  MaterialExpired: 'FAILED_PRECONDITION',
};

const UNUSABLE_KEY_STATES: Partial<Record<string, UnusableReason>> = {
  Disabled: 'Disabled',
  PendingDeletion: 'PendingDeletion',
  PendingImport: 'PendingImport',
};

/** The unusable state KMS last reported, when the snapshot went stale after it. */
function lastKnownUnusable(snapshot: KeySnapshot): UnusableReason | undefined {
  const state = snapshot.key?.keyState;
  return state === undefined ? undefined : UNUSABLE_KEY_STATES[state];
}

/** The key_id of the snapshot's primary version, or undefined before the first answer. */
export function snapshotKeyId(snapshot: KeySnapshot): string | undefined {
  const key = snapshot.key;
  if (key?.primaryKeyVersion === undefined) return undefined;
  return formatKeyId(key.keyId, key.primaryKeyVersion);
}

/**
 * usable → ok; unusable → the guard's denial message as an error (kube-apiserver stops
 * writes once its write seed expires instead of writing Secrets that die with the key);
 * unknown with a last good key_id → that key_id and a non-ok healthz (writes go on under the
 * still-valid seed); never fetched → an error.
 */
export function decideStatus(snapshot: KeySnapshot, maxStalenessMs: number): StatusAnswer {
  const keyId = snapshotKeyId(snapshot);
  if (snapshot.status === 'unusable') {
    const reason =
      snapshot.reason === 'NeverFetched' ||
      snapshot.reason === 'Stale' ||
      snapshot.reason === undefined
        ? 'Disabled'
        : snapshot.reason;
    throw new PluginError(UNUSABLE_CODES[reason], unusableMessage(snapshot, reason));
  }
  if (keyId === undefined) {
    throw new PluginError(
      'UNAVAILABLE',
      `KMS key ${snapshot.configuredKeyId} has not been read from KMS yet (${snapshot.lastFailure === undefined ? 'first lookup in progress' : `last error ${snapshot.lastFailure.code}`}); check the plugin's KMS endpoint, credentials and network (GET /healthz/kms).`,
    );
  }
  const lastKnown = lastKnownUnusable(snapshot);
  if (snapshot.status === 'unknown' && lastKnown !== undefined) {
    // KMS last said the key cannot be used: an outage must not turn that into "keep writing".
    throw new PluginError(
      UNUSABLE_CODES[lastKnown],
      `${unusableMessage(snapshot, lastKnown)} (Last known state; KMS has not answered since.)`,
    );
  }
  if (snapshot.status === 'unknown') {
    const age = snapshot.ageSeconds === undefined ? '' : ` for ${Math.round(snapshot.ageSeconds)}s`;
    return {
      version: KMS_API_VERSION,
      healthz: `KMS key state unknown: no KMS answer${age} (more than --max-staleness ${formatDuration(maxStalenessMs)}); still reporting ${keyId}. Check the plugin's KMS endpoint, credentials and network (GET /healthz/kms).`,
      keyId,
    };
  }
  return { version: KMS_API_VERSION, healthz: HEALTHZ_OK, keyId };
}
