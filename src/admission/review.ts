/**
 * AdmissionReview admission.k8s.io/v1 — only the fields the guard reads or writes.
 * Shapes follow k8s.io/api/admission/v1; everything from the wire is `unknown` until parsed.
 */

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';
export const ADMISSION_KIND = 'AdmissionReview';

export type Operation = 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';

export interface GroupVersionResource {
  readonly group: string;
  readonly version: string;
  readonly resource: string;
}

export interface UserInfo {
  readonly username?: string;
  readonly uid?: string;
  readonly groups?: readonly string[];
}

/** A Kubernetes object as far as the guard cares: metadata only. Data is never read. */
export interface ObjectWithMetadata {
  readonly metadata?: {
    readonly name?: string;
    readonly generateName?: string;
    readonly namespace?: string;
    readonly annotations?: Readonly<Record<string, string>> | null;
  };
  readonly [field: string]: unknown;
}

export interface AdmissionRequest {
  readonly uid: string;
  readonly kind?: { readonly group: string; readonly version: string; readonly kind: string };
  readonly resource?: GroupVersionResource;
  readonly subResource?: string;
  readonly name?: string;
  readonly namespace?: string;
  /** An Operation; typed loosely because the wire may carry anything. */
  readonly operation?: string;
  readonly userInfo?: UserInfo;
  readonly object?: ObjectWithMetadata | null;
  readonly oldObject?: ObjectWithMetadata | null;
  readonly dryRun?: boolean;
}

export interface AdmissionReviewRequest {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly request: AdmissionRequest;
}

export interface Status {
  readonly code: number;
  readonly reason: string;
  readonly message: string;
}

export interface AdmissionResponse {
  readonly uid: string;
  readonly allowed: boolean;
  readonly status?: Status;
  readonly patch?: string;
  readonly patchType?: 'JSONPatch';
  readonly warnings?: readonly string[];
  readonly auditAnnotations?: Readonly<Record<string, string>>;
}

export interface AdmissionReviewResponse {
  readonly apiVersion: typeof ADMISSION_API_VERSION;
  readonly kind: typeof ADMISSION_KIND;
  readonly response: AdmissionResponse;
}

export type ParseResult =
  | { readonly ok: true; readonly review: AdmissionReviewRequest }
  | { readonly ok: false; readonly message: string };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Checks the envelope the API server sends. Messages never quote the body: it may carry
 * Secret data.
 */
export function parseAdmissionReview(body: unknown): ParseResult {
  if (!isRecord(body)) {
    return { ok: false, message: 'The body must be a JSON object: send an AdmissionReview.' };
  }
  if (body.apiVersion !== undefined && body.apiVersion !== ADMISSION_API_VERSION) {
    return {
      ok: false,
      message: `Unsupported apiVersion: only ${ADMISSION_API_VERSION} is served; set admissionReviewVersions: ["v1"] in the webhook configuration.`,
    };
  }
  if (body.kind !== undefined && body.kind !== ADMISSION_KIND) {
    return { ok: false, message: `The body's kind must be ${ADMISSION_KIND}.` };
  }
  const request = body.request;
  if (!isRecord(request)) {
    return {
      ok: false,
      message: 'The AdmissionReview has no "request" object: nothing to admit.',
    };
  }
  if (typeof request.uid !== 'string' || request.uid === '') {
    return {
      ok: false,
      message:
        'The AdmissionReview request has no "uid": the response must echo it, so it is required.',
    };
  }
  for (const field of ['object', 'oldObject'] as const) {
    const value = request[field];
    if (value !== undefined && value !== null && !isRecord(value)) {
      return { ok: false, message: `request.${field} must be an object or null.` };
    }
    if (isRecord(value) && value.metadata !== undefined && !isRecord(value.metadata)) {
      return { ok: false, message: `request.${field}.metadata must be an object.` };
    }
  }
  return { ok: true, review: body as unknown as AdmissionReviewRequest };
}

/** True when the request is about a core/v1 Secret itself (not a subresource). */
export function isSecretRequest(request: AdmissionRequest): boolean {
  // The envelope is untrusted JSON: `resource` may be null despite its type.
  const resource = request.resource as AdmissionRequest['resource'] | null;
  if (resource !== undefined && resource !== null) {
    return (
      resource.group === '' && resource.resource === 'secrets' && (request.subResource ?? '') === ''
    );
  }
  return request.kind?.group === '' && request.kind.kind === 'Secret';
}
