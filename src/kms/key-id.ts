/** Key ids as KMS takes them and as people recognise them. */
import type { KeySnapshot } from './types.js';

/**
 * DescribeKey accepts a key id or `alias/…`; an ARN (`acs:kms:<region>:<uid>:key/<id>` or
 * `…:alias/<name>`) is reduced to that so every KMS flavour (and the emulator) takes it.
 */
export function requestKeyId(configured: string): string {
  const arn = /^acs:kms:[^:]*:[^:]*:(key\/(.+)|alias\/.+)$/.exec(configured.trim());
  if (!arn) return configured.trim();
  return arn[2] ?? arn[1] ?? configured.trim();
}

/** The key id people recognise: the resolved KeyId when known, else what was configured. */
export function displayKeyId(snapshot: Pick<KeySnapshot, 'key' | 'configuredKeyId'>): string {
  return snapshot.key?.keyId ?? snapshot.configuredKeyId;
}
