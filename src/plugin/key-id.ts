/**
 * The plugin's `key_id`: `<KeyId>/<KeyVersionId>`, the resolved KMS key (never an alias) and
 * the key version that encrypted. kube-apiserver generates a new data-encryption seed whenever
 * Status reports a different key_id, so a rotation in KMS reaches new writes. Pure functions.
 */
import { requestKeyId } from '../kms/key-id.js';

export interface PluginKeyId {
  readonly keyId: string;
  /** Absent in key_ids written by a plugin that reports the bare key id (ack-kms-plugin). */
  readonly keyVersionId: string | undefined;
}

export function formatKeyId(keyId: string, keyVersionId: string): string {
  return `${keyId}/${keyVersionId}`;
}

/**
 * Splits a key_id at its last `/`. A bare id, `alias/…` or a key ARN (what ack-kms-plugin
 * stores: the configured key) is returned whole with no version.
 */
export function parseKeyId(text: string): PluginKeyId {
  const trimmed = text.trim();
  if (trimmed.startsWith('alias/') || trimmed.startsWith('acs:kms:')) {
    return { keyId: trimmed, keyVersionId: undefined };
  }
  const slash = trimmed.lastIndexOf('/');
  if (slash <= 0 || slash === trimmed.length - 1) {
    return { keyId: trimmed, keyVersionId: undefined };
  }
  return { keyId: trimmed.slice(0, slash), keyVersionId: trimmed.slice(slash + 1) };
}

export type KeyIdMatch = 'ours' | 'other' | 'undecided';

/**
 * Does a stored key_id name this plugin's key? `resolvedKeyId` is the KeyId KMS resolved the
 * configured id to (undefined before the first lookup). An alias other than the configured
 * one cannot be judged without KMS: 'undecided' (Decrypt then checks the KeyId KMS answers).
 */
export function matchKeyId(
  stored: string,
  configuredKeyId: string,
  resolvedKeyId: string | undefined,
): KeyIdMatch {
  const { keyId } = parseKeyId(stored);
  const wanted = new Set([configuredKeyId.trim(), requestKeyId(configuredKeyId)]);
  if (resolvedKeyId !== undefined) wanted.add(resolvedKeyId);
  if (wanted.has(keyId) || wanted.has(requestKeyId(keyId))) return 'ours';
  if (requestKeyId(keyId).startsWith('alias/')) return 'undecided';
  return resolvedKeyId === undefined && requestKeyId(configuredKeyId).startsWith('alias/')
    ? 'undecided'
    : 'other';
}
