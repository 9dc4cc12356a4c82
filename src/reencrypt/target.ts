import { classifySingleLookup, factsFromMetadata } from '../kms/classify.js';
import type { KmsKeyMetadata } from '../kms/client.js';
import { formatRfc3339 } from '../kms/dates.js';
import { explainReason } from '../kms/vocabulary.js';
import type { TargetKey } from './plan.js';

/** Why the key cannot be the target of a rewrite (pure; the CLI prints it and exits 1). */
export class KeyNotUsableError extends Error {
  override readonly name = 'KeyNotUsableError';
}

const NOTHING_CHANGED = 'Nothing was changed; run reencrypt again once the key is usable.';

/**
 * Turns DescribeKey's answer into the version every Secret should end up under. The key must
 * be usable by the same rules as the webhook's monitor (Enabled, imported material not
 * expired): rewriting under an unusable key fails, and Secrets rewritten under a key pending
 * deletion are lost with it.
 */
export function targetFromKeyMetadata(
  metadata: KmsKeyMetadata,
  now: number,
  configuredKeyId: string = metadata.keyId,
): TargetKey {
  const facts = factsFromMetadata(metadata);
  const snapshot = classifySingleLookup(
    configuredKeyId,
    { kind: 'found', facts, at: new Date(now) },
    now,
  );
  if (snapshot.status !== 'usable') {
    const reason = snapshot.reason ?? 'NeverFetched';
    const when =
      facts.deleteDate !== undefined ? ` Deletion date: ${formatRfc3339(facts.deleteDate)}.` : '';
    throw new KeyNotUsableError(`${explainReason(reason, facts.keyId)}${when} ${NOTHING_CHANGED}`);
  }
  if (facts.primaryKeyVersion === undefined) {
    throw new KeyNotUsableError(
      `KMS key ${facts.keyId} has no PrimaryKeyVersion: reencrypt needs a symmetric key with versions (envelope encryption key).`,
    );
  }
  if (facts.rotationTime === undefined) {
    throw new KeyNotUsableError(
      `KMS key ${facts.keyId} has no readable LastRotationDate or CreationDate (got ${String(metadata.lastRotationDate ?? metadata.creationDate)}): cannot stamp encryption-key-rotation-time.`,
    );
  }
  return {
    keyId: facts.keyId,
    primaryKeyVersion: facts.primaryKeyVersion,
    rotationTime: facts.rotationTime,
  };
}
