import type { KeySnapshot } from '../kms/types.js';

/** The key id people recognise: the resolved KeyId when known, else what was configured. */
export function displayKeyId(snapshot: KeySnapshot): string {
  return snapshot.key?.keyId ?? snapshot.configuredKeyId;
}
