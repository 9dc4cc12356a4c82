import type { GuardMode, OnUnknown } from '../config/settings.js';
import { displayKeyId } from '../kms/key-id.js';
import { keyStateName } from '../kms/key-state.js';
import type { KeySnapshot, UnusableReason } from '../kms/types.js';
import {
  unusableMessage,
  isUnusableReason,
  UNKNOWN_WORDING,
  unknownDenialMessage,
  WARNINGS,
} from '../kms/vocabulary.js';
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

export interface AdmissionPolicy {
  readonly mode: GuardMode;
  readonly onUnknown: OnUnknown;
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
    'key-state': keyStateName(snapshot),
    'key-status': snapshot.status,
    'key-version': snapshot.key?.primaryKeyVersion,
    'key-reason': snapshot.reason,
    decision,
  };
}

function unusableReason(snapshot: KeySnapshot): UnusableReason {
  // classifyKey always names the reason of an unusable key; Disabled is the safe wording.
  const reason = snapshot.reason;
  return reason !== undefined && isUnusableReason(reason) ? reason : 'Disabled';
}

function unknownDetail(snapshot: KeySnapshot): string {
  const reason = snapshot.reason === 'Stale' ? 'Stale' : 'NeverFetched';
  return UNKNOWN_WORDING[reason].detail(snapshot.ageSeconds);
}

function decideUnknown(snapshot: KeySnapshot, policy: AdmissionPolicy): Decision {
  const keyId = displayKeyId(snapshot);
  const detail = unknownDetail(snapshot);
  if (policy.onUnknown === 'deny' && policy.mode === 'enforce') {
    return withAuditAnnotations(
      denied(unknownDenialMessage(keyId, detail)),
      keyAudit(snapshot, 'denied'),
    );
  }
  const wouldDeny = policy.onUnknown === 'deny';
  return withAuditAnnotations(
    withWarnings(allowed(), [WARNINGS.stateUnknown(keyId, detail, wouldDeny)]),
    keyAudit(snapshot, wouldDeny ? 'warned' : 'allowed'),
  );
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
  if (snapshot.status === 'usable') {
    return withAuditAnnotations(
      withWarnings(allowed(), snapshot.warnings),
      keyAudit(snapshot, 'allowed'),
    );
  }
  if (snapshot.status === 'unknown') return decideUnknown(snapshot, policy);
  const reason = unusableReason(snapshot);
  if (policy.mode === 'warn') {
    const warning = WARNINGS.wouldDeny(displayKeyId(snapshot), reason);
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

/**
 * One webhook call per write (`POST /admit`, registered as a mutating webhook): the
 * validating decision, and while it allows, the mutating patch on top. A denial is exactly
 * /validate's (same message, no patch); otherwise /validate's warnings and audit
 * annotations, /mutate's patch and `stamped` annotation.
 */
export function decideAdmission(
  request: AdmissionRequest,
  snapshot: KeySnapshot,
  policy: AdmissionPolicy,
): Decision {
  const validation = decideValidation(request, snapshot, policy);
  if (!validation.allowed) return validation;
  const mutation = decideMutation(request, snapshot);
  return withAuditAnnotations(
    { ...validation, patch: mutation.patch },
    { stamped: mutation.auditAnnotations.stamped },
  );
}
