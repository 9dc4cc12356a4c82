import type { GuardMode, OnUnknown } from '../config/settings.js';
// The monitor engineer's pure warning rules (deletion scheduled, material expiring, stale).
import { fitWarning, formatRfc3339, keyWarnings } from '../kms/classify.js';
import { reportState } from '../kms/report.js';
import type { KeySnapshot, UnusableReason } from '../kms/types.js';
import { annotationPatch, stampAnnotations } from './annotations.js';
import {
  allowed,
  denied,
  patched,
  withAuditAnnotations,
  withWarnings,
  type Decision,
} from './response.js';
import { isSecretRequest, type AdmissionRequest } from './review.js';
import { stampChangeWarnings } from './stamp-check.js';
import { displayKeyId } from './warnings.js';

export interface AdmissionPolicy {
  readonly mode: GuardMode;
  readonly onUnknown: OnUnknown;
  /** For the "facts are older than two refresh intervals" warning. */
  readonly refreshIntervalMs: number;
}

/** Audit decision values (in the API server's audit log as `<webhook>/decision`). */
export type AuditDecision = 'allowed' | 'denied' | 'warned' | 'skipped';

/** Only Secret writes depend on the key; DELETE, CONNECT and other resources pass untouched. */
export function isGuardedWrite(request: AdmissionRequest): boolean {
  return (
    isSecretRequest(request) && (request.operation === 'CREATE' || request.operation === 'UPDATE')
  );
}

function keyAudit(
  snapshot: KeySnapshot,
  decision: AuditDecision,
): Record<string, string | undefined> {
  return {
    'key-id': displayKeyId(snapshot),
    'key-state': reportState(snapshot),
    'key-status': snapshot.status,
    'key-version': snapshot.key?.primaryKeyVersion,
    'key-reason': snapshot.reason,
    decision,
  };
}

const BLOCKED = 'Secret writes are blocked';
const CONSEQUENCE = 'so the API server cannot encrypt this Secret';

/** The denial message: key id, state, consequence and remedy, for the person running kubectl. */
export function unusableMessage(snapshot: KeySnapshot, reason: UnusableReason): string {
  const keyId = displayKeyId(snapshot);
  const deleteDate = snapshot.key?.deleteDate;
  const expired = snapshot.key?.materialExpireTime;
  switch (reason) {
    case 'Disabled':
      return `${BLOCKED}: KMS key ${keyId} is Disabled, ${CONSEQUENCE}. Enable the key in KMS (EnableKey) and retry.`;
    case 'PendingDeletion':
      return `${BLOCKED}: KMS key ${keyId} is PendingDeletion${deleteDate ? ` and will be deleted on ${formatRfc3339(deleteDate)}` : ''}; Secrets encrypted with it are lost for good once it is deleted. Cancel the deletion in KMS (CancelKeyDeletion), enable the key if needed, and retry.`;
    case 'PendingImport':
      return `${BLOCKED}: KMS key ${keyId} is PendingImport (it has no key material yet), ${CONSEQUENCE}. Import the key material in KMS (GetParametersForImport, ImportKeyMaterial) and retry.`;
    case 'NotFound':
      return `${BLOCKED}: KMS key ${keyId} was not found, ${CONSEQUENCE}. Check the key id and region the cluster and the guard use (--kms-key-id, --kms-region) and retry.`;
    case 'NoPermission':
      return `${BLOCKED}: permission to use KMS key ${keyId} was denied (Forbidden.NoPermission), ${CONSEQUENCE}. Grant the cluster's RAM role kms:Encrypt, kms:Decrypt and kms:DescribeKey on the key and retry.`;
    case 'MaterialExpired':
      return `${BLOCKED}: the imported key material of KMS key ${keyId} expired${expired ? ` on ${formatRfc3339(expired)}` : ''}, ${CONSEQUENCE}. Re-import the key material in KMS (ImportKeyMaterial) and retry.`;
  }
}

/** For one-line warnings: what is wrong with the key, after "KMS key <id>". */
const SHORT_PROBLEM: Record<UnusableReason, string> = {
  Disabled: 'is Disabled',
  PendingDeletion: 'is PendingDeletion',
  PendingImport: 'is PendingImport',
  NotFound: 'was not found',
  NoPermission: 'is forbidden',
  MaterialExpired: 'has expired key material',
};

const SHORT_REMEDY: Record<UnusableReason, string> = {
  Disabled: 'run EnableKey',
  PendingDeletion: 'run CancelKeyDeletion',
  PendingImport: 'import key material',
  NotFound: 'check the key id and region',
  NoPermission: 'grant kms:Encrypt/Decrypt/DescribeKey',
  MaterialExpired: 're-import key material',
};

function unusableReason(snapshot: KeySnapshot): UnusableReason {
  // classifyKey always names the reason of an unusable key; Disabled is the safe wording.
  const reason = snapshot.reason;
  return reason === 'NeverFetched' || reason === 'Stale' || reason === undefined
    ? 'Disabled'
    : reason;
}

function unknownDetail(snapshot: KeySnapshot): string {
  if (snapshot.lastSuccessAt === undefined || snapshot.ageSeconds === undefined) {
    return 'KMS has not answered yet';
  }
  return `no KMS answer for ${Math.round(snapshot.ageSeconds)}s`;
}

/** The validating webhook: may deny; never patches; warns of stamps set by hand. */
export function decideValidation(
  request: AdmissionRequest,
  snapshot: KeySnapshot,
  policy: AdmissionPolicy,
): Decision {
  const decision = validationByKey(request, snapshot, policy);
  return withWarnings(decision, stampChangeWarnings(request, snapshot));
}

function validationByKey(
  request: AdmissionRequest,
  snapshot: KeySnapshot,
  policy: AdmissionPolicy,
): Decision {
  if (!isGuardedWrite(request)) return allowed();
  const keyId = displayKeyId(snapshot);
  if (snapshot.status === 'usable') {
    const warnings = keyWarnings(snapshot, policy.refreshIntervalMs, snapshot.checkedAt.getTime());
    return withAuditAnnotations(withWarnings(allowed(), warnings), keyAudit(snapshot, 'allowed'));
  }
  if (snapshot.status === 'unknown') {
    const detail = unknownDetail(snapshot);
    if (policy.onUnknown === 'deny' && policy.mode === 'enforce') {
      return withAuditAnnotations(
        denied(
          `${BLOCKED}: the state of KMS key ${keyId} is unknown (${detail}) and the guard runs with --on-unknown deny. Check the guard's KMS endpoint, credentials and network (GET /healthz/kms) and retry.`,
        ),
        keyAudit(snapshot, 'denied'),
      );
    }
    const warning = fitWarning(keyId, (id) =>
      policy.onUnknown === 'deny'
        ? `[warn mode] would deny: KMS key ${id} state unknown (${detail}).`
        : `KMS key ${id} state unknown (${detail}); Secret write allowed unchecked.`,
    );
    return withAuditAnnotations(
      withWarnings(allowed(), [warning]),
      keyAudit(snapshot, policy.onUnknown === 'deny' ? 'warned' : 'allowed'),
    );
  }
  const reason = unusableReason(snapshot);
  if (policy.mode === 'warn') {
    const warning = fitWarning(
      keyId,
      (id) =>
        `[warn mode] would deny: KMS key ${id} ${SHORT_PROBLEM[reason]}; ${SHORT_REMEDY[reason]}.`,
    );
    return withAuditAnnotations(withWarnings(allowed(), [warning]), keyAudit(snapshot, 'warned'));
  }
  return withAuditAnnotations(
    denied(unusableMessage(snapshot, reason)),
    keyAudit(snapshot, 'denied'),
  );
}

/**
 * The mutating webhook: never denies (the validating webhook does that); stamps the key id,
 * primary version and rotation time on Secret writes while the key is usable.
 */
export function decideMutation(request: AdmissionRequest, snapshot: KeySnapshot): Decision {
  if (!isGuardedWrite(request)) return allowed();
  const key = snapshot.key;
  if (snapshot.status !== 'usable' || key === undefined) {
    return withAuditAnnotations(allowed(), keyAudit(snapshot, 'skipped'));
  }
  const operations = annotationPatch(request.object, stampAnnotations(key));
  return withAuditAnnotations(patched(operations), {
    ...keyAudit(snapshot, 'allowed'),
    stamped: operations.length > 0 ? 'true' : 'already-current',
  });
}
