/**
 * What Status answers for a key snapshot: no KMS call, only the monitor's memory (kube-apiserver
 * polls Status every 10–60 s per replica, plus its health checks), plus what Status itself
 * remembers so that its answer never goes backwards. Pure.
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
/** Superseded versions remembered per key (a rotation a day for a month is far less). */
export const MAX_RETIRED_VERSIONS = 32;

export interface StatusAnswer {
  readonly version: string;
  /** "ok", or why the plugin is degraded (kube-apiserver shows it in its /readyz). */
  readonly healthz: string;
  readonly keyId: string;
}

/** The key version Status reports, with KMS's rotation time of it (to order versions). */
export interface ReportedVersion {
  readonly keyId: string;
  readonly keyVersionId: string;
  readonly rotationTime: number | undefined;
}

/** What Status remembers across snapshots. */
export interface StatusMemory {
  readonly reported: ReportedVersion | undefined;
  /** Versions of `reported.keyId` that a newer one replaced: never reported again. */
  readonly retired: readonly string[];
  /** The last snapshot with an authoritative verdict (usable or unusable). */
  readonly lastVerdict: KeySnapshot | undefined;
}

export const EMPTY_STATUS_MEMORY: StatusMemory = {
  reported: undefined,
  retired: [],
  lastVerdict: undefined,
};

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

function versionOf(snapshot: KeySnapshot): ReportedVersion | undefined {
  const key = snapshot.key;
  if (key?.primaryKeyVersion === undefined) return undefined;
  return {
    keyId: key.keyId,
    keyVersionId: key.primaryKeyVersion,
    rotationTime: key.rotationTime?.getTime(),
  };
}

/** True when `candidate` is an older version of the reported key than the one reported. */
function isOlder(memory: StatusMemory, candidate: ReportedVersion): boolean {
  const reported = memory.reported;
  if (reported?.keyId !== candidate.keyId) return false;
  if (reported.keyVersionId === candidate.keyVersionId) return false;
  if (memory.retired.includes(candidate.keyVersionId)) return true;
  return (
    reported.rotationTime !== undefined &&
    candidate.rotationTime !== undefined &&
    candidate.rotationTime < reported.rotationTime
  );
}

export interface Remembered {
  readonly memory: StatusMemory;
  /** Set when the snapshot named an older version than the one reported (it was ignored). */
  readonly ignoredOlder: string | undefined;
}

/**
 * Folds a snapshot into Status's memory. The reported version only moves forward: KMS never
 * makes an older version primary again, so a snapshot naming one (a lagging KMS replica, an
 * answer that arrived late) is ignored. Another key id (the alias was retargeted) is followed.
 */
export function rememberSnapshot(memory: StatusMemory, snapshot: KeySnapshot): Remembered {
  const lastVerdict = snapshot.status === 'unknown' ? memory.lastVerdict : snapshot;
  const candidate = versionOf(snapshot);
  if (candidate === undefined) {
    return { memory: { ...memory, lastVerdict }, ignoredOlder: undefined };
  }
  if (isOlder(memory, candidate)) {
    return { memory: { ...memory, lastVerdict }, ignoredOlder: candidate.keyVersionId };
  }
  const reported = memory.reported;
  let retired: readonly string[] = [];
  if (reported?.keyId === candidate.keyId) {
    retired =
      reported.keyVersionId === candidate.keyVersionId
        ? memory.retired
        : [...memory.retired, reported.keyVersionId].slice(-MAX_RETIRED_VERSIONS);
  }
  return { memory: { reported: candidate, retired, lastVerdict }, ignoredOlder: undefined };
}

/** The reason of an unusable snapshot (its type also allows the unknown reasons). */
function unusableReason(snapshot: KeySnapshot): UnusableReason {
  const reason = snapshot.reason;
  return reason === 'NeverFetched' || reason === 'Stale' || reason === undefined
    ? 'Disabled'
    : reason;
}

function unusableError(snapshot: KeySnapshot, reason: UnusableReason, suffix = ''): PluginError {
  return new PluginError(UNUSABLE_CODES[reason], `${unusableMessage(snapshot, reason)}${suffix}`);
}

/**
 * Why a key seen unusable and then not answered stays unusable: the last verdict, a state KMS
 * last reported, or imported material whose expiry time has passed meanwhile.
 */
function lastKnownUnusable(
  snapshot: KeySnapshot,
  memory: StatusMemory,
): { snapshot: KeySnapshot; reason: UnusableReason } | undefined {
  const verdict = memory.lastVerdict;
  if (verdict?.status === 'unusable') return { snapshot: verdict, reason: unusableReason(verdict) };
  const state = snapshot.key?.keyState;
  const fromState = state === undefined ? undefined : UNUSABLE_KEY_STATES[state];
  if (fromState !== undefined) return { snapshot, reason: fromState };
  const expiry = snapshot.key?.materialExpireTime;
  if (expiry !== undefined && expiry.getTime() <= snapshot.checkedAt.getTime()) {
    return { snapshot, reason: 'MaterialExpired' };
  }
  return undefined;
}

function neverFetched(snapshot: KeySnapshot): PluginError {
  const last =
    snapshot.lastFailure === undefined
      ? 'first lookup in progress'
      : `last error ${snapshot.lastFailure.code}`;
  return new PluginError(
    'UNAVAILABLE',
    `KMS key ${snapshot.configuredKeyId} has not been read from KMS yet (${last}); check the plugin's KMS endpoint, credentials and network (GET /healthz/kms).`,
  );
}

function noPrimaryVersion(snapshot: KeySnapshot): PluginError {
  const keyId = snapshot.key?.keyId ?? snapshot.configuredKeyId;
  return new PluginError(
    'FAILED_PRECONDITION',
    `KMS key ${keyId}: DescribeKey answered without a PrimaryKeyVersion, so the plugin has no key_id to report. Use a symmetric key (KeySpec Aliyun_AES_256, KeyUsage ENCRYPT/DECRYPT) of KMS; see GET /healthz/kms.`,
  );
}

/**
 * usable → ok; unusable → the guard's denial message as an error (kube-apiserver stops
 * writes once its write seed expires instead of writing Secrets that die with the key);
 * unknown after an unusable verdict → that error still (marked as the last known state);
 * unknown with a last good key_id → that key_id and a non-ok healthz (writes go on under the
 * still-valid seed); never fetched → an error. The key_id is `memory.reported`, which never
 * goes back to an older version.
 */
export function decideStatus(
  snapshot: KeySnapshot,
  memory: StatusMemory,
  maxStalenessMs: number,
): StatusAnswer {
  if (snapshot.status === 'unusable') throw unusableError(snapshot, unusableReason(snapshot));
  if (snapshot.lastSuccessAt === undefined) throw neverFetched(snapshot);
  if (snapshot.status === 'unknown') {
    // KMS last said the key cannot be used: an outage must not turn that into "keep writing".
    const lastKnown = lastKnownUnusable(snapshot, memory);
    if (lastKnown !== undefined) {
      throw unusableError(
        lastKnown.snapshot,
        lastKnown.reason,
        ' (Last known state; KMS has not answered since.)',
      );
    }
  }
  const reported = memory.reported;
  // No version for the key KMS resolves to now (the alias may point at another key).
  if (
    reported === undefined ||
    (snapshot.key !== undefined && reported.keyId !== snapshot.key.keyId)
  ) {
    throw noPrimaryVersion(snapshot);
  }
  const keyId = formatKeyId(reported.keyId, reported.keyVersionId);
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
