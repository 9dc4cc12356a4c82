/**
 * Input checks of the KMS v2 calls, before anything reaches KMS. Pure functions; each
 * returns the PluginError to answer, or undefined when the input is acceptable.
 */
import { PluginError } from './errors.js';

/**
 * KMS Encrypt takes at most 6 KiB of plaintext text and the plugin sends base64 (as
 * ack-kms-plugin does), so 4 KiB of bytes; kube-apiserver sends a 32-byte seed.
 */
export const MAX_PLAINTEXT_BYTES = 4096;
/** kube-apiserver refuses an encrypted DEK source above 1 KiB, so no valid one is larger. */
export const MAX_CIPHERTEXT_BYTES = 1024;

const BASE64_TEXT = /^[A-Za-z0-9+/]+={0,2}$/;

/** Canonical base64 text, as KMS CiphertextBlobs and the plugin's plaintexts are. */
export function isBase64Text(text: string): boolean {
  return text.length % 4 === 0 && BASE64_TEXT.test(text);
}

export function checkPlaintext(plaintext: Uint8Array): PluginError | undefined {
  if (plaintext.length === 0) {
    return new PluginError(
      'INVALID_ARGUMENT',
      'Encrypt: the plaintext is empty; send the bytes to encrypt.',
    );
  }
  if (plaintext.length > MAX_PLAINTEXT_BYTES) {
    return new PluginError(
      'INVALID_ARGUMENT',
      `Encrypt: the plaintext is ${plaintext.length} bytes; this plugin encrypts at most ${MAX_PLAINTEXT_BYTES} bytes (a data-encryption key or seed).`,
    );
  }
  return undefined;
}

/** The ciphertext must be a KMS CiphertextBlob: base64 text of at most 1 KiB. */
export function checkCiphertext(ciphertext: Uint8Array): PluginError | undefined {
  if (ciphertext.length === 0) {
    return new PluginError(
      'INVALID_ARGUMENT',
      'Decrypt: the ciphertext is empty; send the ciphertext that Encrypt returned.',
    );
  }
  if (ciphertext.length > MAX_CIPHERTEXT_BYTES) {
    return new PluginError(
      'INVALID_ARGUMENT',
      `Decrypt: the ciphertext is ${ciphertext.length} bytes; a KMS CiphertextBlob of a data key is at most ${MAX_CIPHERTEXT_BYTES} bytes.`,
    );
  }
  const text = Buffer.from(ciphertext).toString('latin1');
  if (!isBase64Text(text)) {
    return new PluginError(
      'INVALID_ARGUMENT',
      'Decrypt: the ciphertext is not a KMS CiphertextBlob (base64 text); it was not written by this plugin or ack-kms-plugin.',
    );
  }
  return undefined;
}

/** kube-apiserver refuses a key_id above 1 KiB from Encrypt, so no stored one is larger. */
export const MAX_KEY_ID_BYTES = 1024;

/**
 * Decrypt's key_id is only checked for size: KMS identifies the key from the ciphertext, so
 * any stored key_id (`<KeyId>/<KeyVersionId>`, ack-kms-plugin's bare id, alias or ARN, or
 * none) is accepted.
 */
export function checkKeyId(keyId: string): PluginError | undefined {
  const bytes = Buffer.byteLength(keyId, 'utf8');
  if (bytes <= MAX_KEY_ID_BYTES) return undefined;
  return new PluginError(
    'INVALID_ARGUMENT',
    `Decrypt: the key_id is ${bytes} bytes; kube-apiserver stores key_ids of at most ${MAX_KEY_ID_BYTES} bytes, so this request was not built from a stored Secret.`,
  );
}
