import { MAX_WARNING_LENGTH } from '../kms/vocabulary.js';
import {
  ADMISSION_API_VERSION,
  ADMISSION_KIND,
  type AdmissionResponse,
  type AdmissionReviewRequest,
  type AdmissionReviewResponse,
  type Status,
} from './review.js';

/** One RFC 6902 operation as the guard emits them (add/replace only). */
export interface PatchOperation {
  readonly op: 'add' | 'replace' | 'remove' | 'move' | 'copy' | 'test';
  readonly path: string;
  readonly value?: unknown;
}

/**
 * What a decision says before it is bound to a request: like controller-runtime's
 * admission.Response, small constructors build it and `complete` finishes the envelope.
 */
export interface Decision {
  readonly allowed: boolean;
  readonly status?: Status;
  readonly patch: readonly PatchOperation[];
  readonly warnings: readonly string[];
  readonly auditAnnotations: Readonly<Record<string, string>>;
}

export function allowed(): Decision {
  return { allowed: true, patch: [], warnings: [], auditAnnotations: {} };
}

export function denied(message: string, code = 403, reason = 'Forbidden'): Decision {
  return {
    allowed: false,
    status: { code, reason, message },
    patch: [],
    warnings: [],
    auditAnnotations: {},
  };
}

export function patched(operations: readonly PatchOperation[]): Decision {
  return { ...allowed(), patch: operations };
}

/** Warnings are shown by kubectl on one line each: keep them short (< 120 characters). */
export function withWarnings(decision: Decision, warnings: readonly string[]): Decision {
  return { ...decision, warnings: [...decision.warnings, ...warnings.map(shortWarning)] };
}

export function withAuditAnnotations(
  decision: Decision,
  annotations: Readonly<Record<string, string | undefined>>,
): Decision {
  const merged: Record<string, string> = { ...decision.auditAnnotations };
  for (const [key, value] of Object.entries(annotations)) {
    // Keys are constants checked by unit tests (isValidAuditAnnotationKey), not per request.
    if (value !== undefined) merged[key] = value;
  }
  return { ...decision, auditAnnotations: merged };
}

/** The API server prefixes the key with the webhook name + '/': the key itself is a plain name. */
export function isValidAuditAnnotationKey(key: string): boolean {
  return /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/.test(key);
}

export function shortWarning(text: string): string {
  return text.length <= MAX_WARNING_LENGTH ? text : `${text.slice(0, MAX_WARNING_LENGTH - 1)}…`;
}

/**
 * The one place that completes a response: envelope, echoed uid, and the patch encoded
 * only when it changes something. Denials never carry a patch.
 */
export function complete(
  review: AdmissionReviewRequest,
  decision: Decision,
): AdmissionReviewResponse {
  const response: {
    uid: string;
    allowed: boolean;
    status?: Status;
    patch?: string;
    patchType?: 'JSONPatch';
    warnings?: readonly string[];
    auditAnnotations?: Readonly<Record<string, string>>;
  } = { uid: review.request.uid, allowed: decision.allowed };
  if (decision.status !== undefined) response.status = decision.status;
  if (decision.allowed && decision.patch.length > 0 && review.request.operation !== 'DELETE') {
    response.patch = Buffer.from(JSON.stringify(decision.patch), 'utf8').toString('base64');
    response.patchType = 'JSONPatch';
  }
  if (decision.warnings.length > 0) response.warnings = decision.warnings;
  if (Object.keys(decision.auditAnnotations).length > 0) {
    response.auditAnnotations = decision.auditAnnotations;
  }
  const completed: AdmissionResponse = response;
  return { apiVersion: ADMISSION_API_VERSION, kind: ADMISSION_KIND, response: completed };
}
