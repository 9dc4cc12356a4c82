import { formatRfc3339 } from '../kms/dates.js';
import type { KeyFacts } from '../kms/types.js';
import type { PatchOperation } from './response.js';
import type { ObjectWithMetadata } from './review.js';

/** Stamped by /mutate and by `reencrypt`; the names are fixed (users and scripts rely on them). */
export const KEY_ID_ANNOTATION = 'kms-secret-guard.io/key-id';
export const KEY_VERSION_ANNOTATION = 'kms-secret-guard.io/key-version';
/** The name the ACK documentation uses. */
export const ROTATION_TIME_ANNOTATION = 'encryption-key-rotation-time';
/**
 * Set by `reencrypt` on every Secret it rewrites (RFC 3339 UTC, milliseconds), so its patch
 * always changes the stored object: the API server skips a no-op write, which would leave the
 * envelope where it was. /mutate never sets or removes it.
 */
export const REENCRYPTED_AT_ANNOTATION = 'kms-secret-guard.io/reencrypted-at';

/** RFC 3339 UTC with seconds precision, e.g. 2026-11-28T09:00:00Z (the ACK annotation's format). */
export const formatRotationTime: (date: Date) => string = formatRfc3339;

/** The annotations a Secret written now should carry; only facts we know are stamped. */
export function stampAnnotations(key: KeyFacts): Record<string, string> {
  const stamp: Record<string, string> = { [KEY_ID_ANNOTATION]: key.keyId };
  if (key.primaryKeyVersion !== undefined) stamp[KEY_VERSION_ANNOTATION] = key.primaryKeyVersion;
  if (key.rotationTime !== undefined) {
    stamp[ROTATION_TIME_ANNOTATION] = formatRotationTime(key.rotationTime);
  }
  return stamp;
}

function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** RFC 6901: '~' → '~0', then '/' → '~1'. */
export function escapePointerSegment(segment: string): string {
  return segment.replaceAll('~', '~0').replaceAll('/', '~1');
}

/**
 * JSON Patch that makes the object's annotations include `stamp`, built directly: per
 * stamp key `add` (absent), `replace` (another value) or nothing (current), never copying or
 * diffing the map, so the cost does not depend on how many annotations the object has. A
 * missing, null or malformed map or metadata is added whole ('add' replaces an existing
 * member), so the patch applies to any object. Only annotations are read, so Secret data
 * never enters the patch. Empty when already current.
 */
export function annotationPatch(
  object: ObjectWithMetadata | null | undefined,
  stamp: Readonly<Record<string, string>>,
): PatchOperation[] {
  if (!isMap(object)) return [];
  const metadata: unknown = object.metadata;
  if (!isMap(metadata))
    return [{ op: 'add', path: '/metadata', value: { annotations: { ...stamp } } }];
  const current: unknown = metadata.annotations;
  if (!isMap(current)) return [{ op: 'add', path: '/metadata/annotations', value: { ...stamp } }];
  const operations: PatchOperation[] = [];
  for (const [key, value] of Object.entries(stamp)) {
    if (Object.hasOwn(current, key) && current[key] === value) continue;
    operations.push({
      op: Object.hasOwn(current, key) ? 'replace' : 'add',
      path: `/metadata/annotations/${escapePointerSegment(key)}`,
      value,
    });
  }
  return operations;
}
