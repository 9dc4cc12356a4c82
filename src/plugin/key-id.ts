/**
 * The plugin's `key_id`: `<KeyId>/<KeyVersionId>`, the resolved KMS key (never an alias) and
 * the key version that encrypted. kube-apiserver generates a new data-encryption seed whenever
 * Status reports a different key_id, so a rotation in KMS reaches new writes. Pure.
 */
export function formatKeyId(keyId: string, keyVersionId: string): string {
  return `${keyId}/${keyVersionId}`;
}
