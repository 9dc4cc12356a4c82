/**
 * The key report as JSON (`check --json`, and the body of GET /healthz/kms) and the
 * human explanation of each reason. Pure: a snapshot in, plain data out.
 */
import { formatRfc3339 } from './classify.js';
import type { KeySnapshot, KeyStatus, UnknownReason, UnusableReason } from './types.js';

export interface KeyReport {
  /** The resolved KeyId when known, else the key id as configured. */
  readonly keyId: string;
  readonly configuredKeyId: string;
  /** KMS's KeyState (`Enabled`, `Disabled`, …), `NotFound` / `NoPermission`, or `Unknown`. */
  readonly state: string;
  readonly usable: boolean;
  readonly status: KeyStatus;
  readonly reason: UnusableReason | UnknownReason | null;
  readonly primaryKeyVersion: string | null;
  /** Rotation time of the primary version: LastRotationDate, or CreationDate if never rotated. */
  readonly rotationTime: string | null;
  readonly lastRotation: string | null;
  readonly nextRotation: string | null;
  readonly automaticRotation: string | null;
  readonly rotationInterval: string | null;
  readonly deleteDate: string | null;
  readonly materialExpireTime: string | null;
  readonly arn: string | null;
  readonly checkedAt: string;
  readonly lastSuccessAt: string | null;
  readonly ageSeconds: number | null;
  readonly error: {
    readonly code: string;
    readonly message: string;
    readonly requestId: string | null;
  } | null;
  readonly warnings: readonly string[];
}

function date(value: Date | undefined): string | null {
  return value === undefined ? null : formatRfc3339(value);
}

export function reportState(snapshot: KeySnapshot): string {
  // Reasons KMS's KeyState does not show (it may still say Enabled) are reported as states.
  if (
    snapshot.reason === 'NotFound' ||
    snapshot.reason === 'NoPermission' ||
    snapshot.reason === 'MaterialExpired'
  ) {
    return snapshot.reason;
  }
  if (snapshot.status === 'unknown') return 'Unknown';
  return snapshot.key?.keyState ?? 'Unknown';
}

export function keyReport(snapshot: KeySnapshot, warnings: readonly string[] = []): KeyReport {
  const key = snapshot.key;
  const failure = snapshot.lastFailure;
  return {
    keyId: key?.keyId ?? snapshot.configuredKeyId,
    configuredKeyId: snapshot.configuredKeyId,
    state: reportState(snapshot),
    usable: snapshot.status === 'usable',
    status: snapshot.status,
    reason: snapshot.reason ?? null,
    primaryKeyVersion: key?.primaryKeyVersion ?? null,
    rotationTime: date(key?.rotationTime),
    // LastRotationDate, or CreationDate if the key never rotated (as /healthz/kms reports it).
    lastRotation: date(key?.rotationTime),
    nextRotation: date(key?.nextRotationDate),
    automaticRotation: key?.automaticRotation ?? null,
    rotationInterval: key?.rotationInterval ?? null,
    deleteDate: date(key?.deleteDate),
    materialExpireTime: date(key?.materialExpireTime),
    arn: key?.arn ?? null,
    checkedAt: formatRfc3339(snapshot.checkedAt),
    lastSuccessAt: date(snapshot.lastSuccessAt),
    ageSeconds: snapshot.ageSeconds ?? null,
    error: failure
      ? { code: failure.code, message: failure.message, requestId: failure.requestId ?? null }
      : null,
    warnings: [...warnings],
  };
}

/** One sentence: what the reason means for Secrets and what to do about it. */
export function explainReason(reason: UnusableReason | UnknownReason, keyId: string): string {
  switch (reason) {
    case 'Disabled':
      return `KMS key ${keyId} is Disabled: Secrets cannot be encrypted or decrypted; enable the key (EnableKey) in KMS.`;
    case 'PendingDeletion':
      return `KMS key ${keyId} is scheduled for deletion: Secrets written now are lost once it is deleted; cancel the deletion (CancelKeyDeletion).`;
    case 'PendingImport':
      return `KMS key ${keyId} is waiting for imported key material: import the material before using the key.`;
    case 'NotFound':
      return `KMS key ${keyId} was not found: check the key id/alias and the region (--kms-region / --kms-endpoint).`;
    case 'NoPermission':
      return `KMS key ${keyId} is not accessible with these credentials: grant kms:DescribeKey (and Encrypt/Decrypt to the cluster) in RAM.`;
    case 'MaterialExpired':
      return `The imported key material of KMS key ${keyId} has expired: import new key material.`;
    case 'NeverFetched':
      return `The state of KMS key ${keyId} is unknown: no lookup has succeeded yet.`;
    case 'Stale':
      return `The state of KMS key ${keyId} is unknown: the last successful lookup is older than --max-staleness.`;
  }
}
