/**
 * What `check --json` prints and GET /healthz/kms answers: the key's state as plain JSON.
 * Pure: a snapshot in, plain data out.
 */
import { formatRfc3339 } from './dates.js';
import { displayKeyId } from './key-id.js';
import type { KeyFacts, KeyReason, KeySnapshot, KeyStatus, LookupFailure } from './types.js';
import { isUnusableReason, UNUSABLE_WORDING } from './vocabulary.js';

export interface KeyStateView {
  /** The resolved KeyId when known, else the key id as configured. */
  readonly keyId: string;
  readonly configuredKeyId: string;
  /** KMS's KeyState (`Enabled`, `Disabled`, …), `NotFound` / `NoPermission`, or `Unknown`. */
  readonly state: string;
  readonly usable: boolean;
  readonly status: KeyStatus;
  readonly reason: KeyReason | null;
  readonly primaryKeyVersion: string | null;
  /** The rotation time the stamp uses: LastRotationDate, or CreationDate if KMS sent none. */
  readonly rotationTime: string | null;
  /** KMS's LastRotationDate verbatim; null when KMS sent none. */
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

/** The state people see (audit annotation, metrics, JSON): KMS's KeyState or the reason. */
export function keyStateName(snapshot: KeySnapshot): string {
  const reason = snapshot.reason;
  // Reasons KMS's KeyState does not show (it may still say Enabled) are reported as states.
  if (reason !== undefined && isUnusableReason(reason) && !UNUSABLE_WORDING[reason].isKeyState) {
    return reason;
  }
  if (snapshot.status === 'unknown') return 'Unknown';
  return snapshot.key?.keyState ?? 'Unknown';
}

type FactFields = Pick<
  KeyStateView,
  | 'primaryKeyVersion'
  | 'rotationTime'
  | 'lastRotation'
  | 'nextRotation'
  | 'automaticRotation'
  | 'rotationInterval'
  | 'deleteDate'
  | 'materialExpireTime'
  | 'arn'
>;

const NO_FACTS: FactFields = {
  primaryKeyVersion: null,
  rotationTime: null,
  lastRotation: null,
  nextRotation: null,
  automaticRotation: null,
  rotationInterval: null,
  deleteDate: null,
  materialExpireTime: null,
  arn: null,
};

function orNull(value: string | undefined): string | null {
  return value ?? null;
}

function factFields(key: KeyFacts | undefined): FactFields {
  if (key === undefined) return NO_FACTS;
  return {
    primaryKeyVersion: orNull(key.primaryKeyVersion),
    rotationTime: date(key.rotationTime),
    lastRotation: date(key.lastRotationDate),
    nextRotation: date(key.nextRotationDate),
    automaticRotation: orNull(key.automaticRotation),
    rotationInterval: orNull(key.rotationInterval),
    deleteDate: date(key.deleteDate),
    materialExpireTime: date(key.materialExpireTime),
    arn: orNull(key.arn),
  };
}

function errorField(failure: LookupFailure | undefined): KeyStateView['error'] {
  return failure
    ? { code: failure.code, message: failure.message, requestId: failure.requestId ?? null }
    : null;
}

export function describeKeyState(snapshot: KeySnapshot): KeyStateView {
  return {
    keyId: displayKeyId(snapshot),
    configuredKeyId: snapshot.configuredKeyId,
    state: keyStateName(snapshot),
    usable: snapshot.status === 'usable',
    status: snapshot.status,
    reason: snapshot.reason ?? null,
    ...factFields(snapshot.key),
    checkedAt: formatRfc3339(snapshot.checkedAt),
    lastSuccessAt: date(snapshot.lastSuccessAt),
    ageSeconds: snapshot.ageSeconds ?? null,
    error: errorField(snapshot.lastFailure),
    warnings: [...snapshot.warnings],
  };
}
