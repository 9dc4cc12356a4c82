import jsonPatch from 'fast-json-patch';
import type { KeyFacts } from '../kms/types.js';
import type { PatchOperation } from './response.js';
import type { ObjectWithMetadata } from './review.js';

/** Stamped by /mutate and by `reencrypt` (CONTRACT: annotation names are fixed). */
export const KEY_ID_ANNOTATION = 'kms-secret-guard.io/key-id';
export const KEY_VERSION_ANNOTATION = 'kms-secret-guard.io/key-version';
/** The name the ACK documentation uses. */
export const ROTATION_TIME_ANNOTATION = 'encryption-key-rotation-time';

/** RFC 3339 UTC with seconds precision, e.g. 2026-11-28T09:00:00Z. */
export function formatRotationTime(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The annotations a Secret written now should carry; only facts we know are stamped. */
export function stampAnnotations(key: KeyFacts): Record<string, string> {
  const stamp: Record<string, string> = { [KEY_ID_ANNOTATION]: key.keyId };
  if (key.primaryKeyVersion !== undefined) stamp[KEY_VERSION_ANNOTATION] = key.primaryKeyVersion;
  if (key.rotationTime !== undefined) {
    stamp[ROTATION_TIME_ANNOTATION] = formatRotationTime(key.rotationTime);
  }
  return stamp;
}

/**
 * JSON Patch that makes the object's annotations include `stamp`. Diffing a small
 * {metadata:{annotations}} projection lets the library handle every shape (no metadata,
 * no/empty/null annotations, existing values) and '/' → '~1' escaping; no other field is
 * read, so Secret data never enters the patch. Empty when already current.
 */
export function annotationPatch(
  object: ObjectWithMetadata | null | undefined,
  stamp: Readonly<Record<string, string>>,
): PatchOperation[] {
  if (object === null || object === undefined) return [];
  const metadata = object.metadata;
  const current = metadata?.annotations ?? undefined;
  const before: Record<string, unknown> = {};
  if (metadata !== undefined) {
    before.metadata = current === undefined ? {} : { annotations: { ...current } };
  }
  const after = { metadata: { annotations: { ...(current ?? {}), ...stamp } } };
  return jsonPatch.compare(before, after) as PatchOperation[];
}
