import { displayKeyId } from '../kms/key-id.js';
import type { KeySnapshot } from '../kms/types.js';
import {
  KEY_ID_ANNOTATION,
  KEY_VERSION_ANNOTATION,
  ROTATION_TIME_ANNOTATION,
} from './annotations.js';
import { isSecretRequest, type AdmissionRequest, type ObjectWithMetadata } from './review.js';
import { WARNINGS } from '../kms/vocabulary.js';

const STAMP_KEYS = [KEY_ID_ANNOTATION, KEY_VERSION_ANNOTATION, ROTATION_TIME_ANNOTATION] as const;

function stampValue(object: ObjectWithMetadata | null | undefined, key: string): unknown {
  const annotations: unknown = object?.metadata?.annotations;
  if (typeof annotations !== 'object' || annotations === null || Array.isArray(annotations)) {
    return undefined;
  }
  return Object.hasOwn(annotations, key)
    ? (annotations as Record<string, unknown>)[key]
    : undefined;
}

/**
 * Over-long or non-string values are kept only as markers (the parser does not build them),
 * so two of them cannot be compared: either one counts as a change.
 */
function sameStamp(before: unknown, after: unknown): boolean {
  const comparable = (value: unknown): boolean => value === undefined || typeof value === 'string';
  return comparable(before) && comparable(after) && before === after;
}

/** True when the write adds, alters or removes one of the three stamp annotations. */
export function changesStamps(request: AdmissionRequest): boolean {
  return STAMP_KEYS.some(
    (key) => !sameStamp(stampValue(request.oldObject, key), stampValue(request.object, key)),
  );
}

/**
 * Stamps are advisory: /mutate only sets them while the key is usable, so a stamp written by
 * someone else while it is not could pass a Secret off as current (and `reencrypt` would then
 * skip it). A Secret CREATE or UPDATE that changes a stamp while the key is not usable gets
 * this warning (< 120 characters); otherwise none.
 */
export function stampChangeWarnings(request: AdmissionRequest, snapshot: KeySnapshot): string[] {
  if (snapshot.status === 'usable' || !isSecretRequest(request)) return [];
  if (request.operation !== 'CREATE' && request.operation !== 'UPDATE') return [];
  if (!changesStamps(request)) return [];
  return [WARNINGS.stampsChangedWhileUnusable(displayKeyId(snapshot))];
}
