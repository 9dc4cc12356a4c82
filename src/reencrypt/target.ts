import type { KmsKeyMetadata } from '../kms/client.js';
import type { TargetKey } from './plan.js';

/** Why the key cannot be the target of a rewrite (pure; the CLI prints it and exits 1). */
export class KeyNotUsableError extends Error {
  override readonly name = 'KeyNotUsableError';
}

/**
 * Turns DescribeKey's answer into the version every Secret should end up under. Refuses a key
 * that is not Enabled: rewriting under a disabled key fails, and Secrets rewritten under a
 * key pending deletion are lost with it.
 */
export function targetFromKeyMetadata(key: KmsKeyMetadata): TargetKey {
  if (key.keyState !== 'Enabled') {
    const when = key.deleteDate !== undefined ? ` (deletion on ${key.deleteDate})` : '';
    throw new KeyNotUsableError(
      `KMS key ${key.keyId} is ${key.keyState}${when}, not Enabled: rewriting Secrets now would fail or put them under a key that is going away. Enable the key (or cancel its deletion) first, then run reencrypt again.`,
    );
  }
  if (key.primaryKeyVersion === undefined) {
    throw new KeyNotUsableError(
      `KMS key ${key.keyId} has no PrimaryKeyVersion: reencrypt needs a symmetric key with versions (envelope encryption key).`,
    );
  }
  const rotation = key.lastRotationDate ?? key.creationDate;
  const rotationTime = rotation !== undefined ? new Date(rotation) : undefined;
  if (rotationTime === undefined || Number.isNaN(rotationTime.getTime())) {
    throw new KeyNotUsableError(
      `KMS key ${key.keyId} has no readable LastRotationDate or CreationDate (got ${String(rotation)}): cannot stamp encryption-key-rotation-time.`,
    );
  }
  return { keyId: key.keyId, primaryKeyVersion: key.primaryKeyVersion, rotationTime };
}
