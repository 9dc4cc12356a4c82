/**
 * AdmissionReview admission.k8s.io/v1 — only the fields the guard reads or writes.
 * Shapes follow k8s.io/api/admission/v1; everything from the wire is `unknown` until parsed.
 */

import {
  KEY_ID_ANNOTATION,
  KEY_VERSION_ANNOTATION,
  ROTATION_TIME_ANNOTATION,
} from './annotations.js';
import {
  compileSelection,
  LONG_STRING,
  SelectingJsonParser,
  type SelectLimits,
  type SelectProblem,
  type Selection,
} from './json-select.js';

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

/**
 * A Kubernetes object as far as the guard cares: metadata only. Data is never read; parsed
 * reviews carry only the three stamp annotations (see REVIEW_SELECTION).
 */
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

/**
 * Parse bounds: anything the API server can send fits (its own decoder stops at 10 000
 * levels; a 3 MiB object holds far fewer values), and any body within the 7 MiB limit stays
 * cheap: one pass, no value outside the selection below is ever built. Kept strings default
 * to the length of a Kubernetes name; the selection sets tighter or looser bounds per field.
 */
export const REVIEW_LIMITS: SelectLimits = {
  maxDepth: 10_000,
  maxValues: 1_000_000,
  maxStringBytes: 253,
};

/** Kubernetes' own bounds (bytes as sent): names and API groups are DNS subdomains. */
const DNS_SUBDOMAIN = 253;
/** Namespaces and versions are DNS labels. */
const DNS_LABEL = 63;
/** The API server sends a UUID (36). */
const UID_BYTES = 128;
/** The stamps are a KMS key id, a key version id and an RFC 3339 time; anything longer is not ours. */
export const STAMP_VALUE_BYTES = 128;
/** Only logged; Kubernetes sets no bound (service accounts: `system:serviceaccount:` + 63 + 253). */
const USERNAME_BYTES = 1_024;

const STAMPS: Selection = {
  [KEY_ID_ANNOTATION]: STAMP_VALUE_BYTES,
  [KEY_VERSION_ANNOTATION]: STAMP_VALUE_BYTES,
  [ROTATION_TIME_ANNOTATION]: STAMP_VALUE_BYTES,
};
const GROUP_VERSION = { group: DNS_SUBDOMAIN, version: DNS_LABEL } as const;

/**
 * What the guard keeps of an AdmissionReview: the envelope, the object's kind and the
 * metadata it logs and patches, and of the annotations only the three stamps (on both
 * objects, for the stamp-change check). `data`, `stringData`, `managedFields` and the rest
 * are checked as JSON and dropped. Numbers are the most bytes each string may have.
 */
const REVIEW_FIELDS: Selection = {
  apiVersion: DNS_SUBDOMAIN,
  kind: DNS_LABEL,
  request: {
    uid: UID_BYTES,
    kind: { ...GROUP_VERSION, kind: DNS_SUBDOMAIN },
    resource: { ...GROUP_VERSION, resource: DNS_SUBDOMAIN },
    subResource: DNS_SUBDOMAIN,
    name: DNS_SUBDOMAIN,
    namespace: DNS_LABEL,
    operation: DNS_LABEL,
    userInfo: { username: USERNAME_BYTES },
    object: {
      kind: DNS_SUBDOMAIN,
      metadata: {
        name: DNS_SUBDOMAIN,
        generateName: DNS_SUBDOMAIN,
        namespace: DNS_LABEL,
        annotations: STAMPS,
      },
    },
    oldObject: { metadata: { annotations: STAMPS } },
    dryRun: true,
  },
};
const REVIEW_SELECTION = compileSelection(REVIEW_FIELDS);

/**
 * Over-long strings that are not an error: a stamp value set by a user (a change of the
 * stamps, replaced by /mutate) and the user name (only logged, left out then).
 */
const LENIENT_FIELDS = new Set(['annotations', 'userInfo']);

/** The dotted path and bound of the first kept string over its bound, outside LENIENT_FIELDS. */
function overLongField(
  value: Record<string, unknown>,
  selection: Selection,
  path: string,
): { path: string; bytes: number } | undefined {
  // for…in, not Object.entries: no arrays built per request (this runs on every review).
  for (const name in selection) {
    const child = selection[name];
    const kept = value[name];
    if (kept === undefined || child === undefined) continue;
    if (kept === LONG_STRING) {
      return {
        path: `${path}${name}`,
        bytes: typeof child === 'number' ? child : REVIEW_LIMITS.maxStringBytes,
      };
    }
    if (typeof child !== 'object' || !isRecord(kept) || LENIENT_FIELDS.has(name)) continue;
    const found = overLongField(kept, child, `${path}${name}.`);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** True when the review's request is about something other than a Secret. */
function concernsOtherResource(body: Record<string, unknown>): boolean {
  return isRecord(body.request) && !isSecretRequest(body.request as unknown as AdmissionRequest);
}

/** Removes every over-long kept string (LONG_STRING), so no later code meets the marker. */
function dropLongStrings(value: Record<string, unknown>, selection: Selection): void {
  for (const name in selection) {
    const child = selection[name];
    const kept = value[name];
    if (kept === LONG_STRING) Reflect.deleteProperty(value, name);
    else if (typeof child === 'object' && isRecord(kept)) dropLongStrings(kept, child);
  }
}

const BODY_MESSAGES: Record<SelectProblem, string> = {
  empty: 'The request body is empty: send an AdmissionReview.',
  invalid: 'The request body is not valid JSON: send an AdmissionReview as JSON.',
  'too-deep': `The request body nests deeper than ${REVIEW_LIMITS.maxDepth} levels: an AdmissionReview never does; check what is calling the webhook.`,
  'too-many-values': `The request body holds more than ${REVIEW_LIMITS.maxValues} JSON values: an AdmissionReview never does; check what is calling the webhook.`,
};

/** Reads one AdmissionReview body chunk by chunk (the server streams it, never buffering it). */
export interface ReviewReader {
  write(chunk: Uint8Array): void;
  end(): ParseResult;
  /** Bytes held for kept values right now. */
  readonly heldBytes: number;
}

/**
 * A class, not an object literal: a getter in a literal gets a fresh accessor pair per
 * object, which V8 allocates in the old generation, so every request's parser stayed
 * reachable from old space until the next mark-compact (a mark-compact every 1-2 s under
 * load, the webhook's GC tail). The prototype's getter is shared.
 */
class StreamingReviewReader implements ReviewReader {
  readonly #parser = new SelectingJsonParser(REVIEW_SELECTION, REVIEW_LIMITS);

  write(chunk: Uint8Array): void {
    this.#parser.write(chunk);
  }

  end(): ParseResult {
    const outcome = this.#parser.end();
    return outcome.ok
      ? checkReview(outcome.value)
      : { ok: false, message: BODY_MESSAGES[outcome.problem] };
  }

  get heldBytes(): number {
    return this.#parser.heldBytes;
  }
}

export function createReviewReader(): ReviewReader {
  return new StreamingReviewReader();
}

/** One whole body at once (tests, tools); the server uses createReviewReader. */
export function parseAdmissionReview(body: Uint8Array | string): ParseResult {
  const reader = createReviewReader();
  reader.write(typeof body === 'string' ? Buffer.from(body, 'utf8') : body);
  return reader.end();
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const fail = (message: string): ParseResult => ({ ok: false, message });

function envelopeProblem(body: Record<string, unknown>): string | undefined {
  if (body.apiVersion !== undefined && body.apiVersion !== ADMISSION_API_VERSION) {
    return `Unsupported apiVersion: only ${ADMISSION_API_VERSION} is served; set admissionReviewVersions: ["v1"] in the webhook configuration.`;
  }
  if (body.kind !== undefined && body.kind !== ADMISSION_KIND) {
    return `The body's kind must be ${ADMISSION_KIND}.`;
  }
  return undefined;
}

function requestProblem(request: Record<string, unknown>): string | undefined {
  if (typeof request.uid !== 'string' || request.uid === '') {
    return 'The AdmissionReview request has no "uid": the response must echo it, so it is required.';
  }
  for (const field of ['object', 'oldObject'] as const) {
    const value = request[field];
    if (value !== undefined && value !== null && !isRecord(value)) {
      return `request.${field} must be an object or null.`;
    }
    if (isRecord(value) && value.metadata !== undefined && !isRecord(value.metadata)) {
      return `request.${field}.metadata must be an object.`;
    }
  }
  return undefined;
}

/**
 * Checks the envelope the API server sends. Messages never quote the body: it may carry
 * Secret data.
 */
function checkReview(body: unknown): ParseResult {
  if (!isRecord(body)) return fail('The body must be a JSON object: send an AdmissionReview.');
  const long = overLongField(body, REVIEW_FIELDS, '');
  if (long !== undefined) {
    // Names of other resources (RBAC's, for one) may be longer; the webhook allows those
    // untouched, so only the uid (echoed in every answer) and a Secret's fields must fit.
    if (long.path === 'request.uid' || !concernsOtherResource(body)) {
      return fail(
        `The AdmissionReview's ${long.path} is longer than ${long.bytes} bytes, more than Kubernetes allows: check what is calling the webhook.`,
      );
    }
    dropLongStrings(body, REVIEW_FIELDS);
  }
  const envelope = envelopeProblem(body);
  if (envelope !== undefined) return fail(envelope);
  const request = body.request;
  if (!isRecord(request)) {
    return fail('The AdmissionReview has no "request" object: nothing to admit.');
  }
  const problem = requestProblem(request);
  if (problem !== undefined) return fail(problem);
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
