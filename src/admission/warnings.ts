import type { KeySnapshot } from '../kms/types.js';

/** The key id people recognise: the resolved KeyId when known, else what was configured. */
export function displayKeyId(snapshot: KeySnapshot): string {
  return snapshot.key?.keyId ?? snapshot.configuredKeyId;
}

/** RFC 3339 UTC with seconds precision, as in messages and annotations. */
export function formatDate(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
