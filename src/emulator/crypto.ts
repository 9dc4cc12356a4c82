import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/**
 * Ciphertext blob layout (base64 of): 0x01 | len(keyId) | keyId | len(versionId) | versionId
 * | iv(12) | tag(16) | AES-256-GCM ciphertext. The header names key and version so Decrypt
 * needs no KeyId and old-version ciphertext keeps decrypting after a rotation.
 */
const FORMAT = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;

export interface BlobHeader {
  keyId: string;
  versionId: string;
}

export function newKeyMaterial(): Buffer {
  return randomBytes(32);
}

export function encryptBlob(
  header: BlobHeader,
  material: Buffer,
  plaintext: Buffer,
  aad: Buffer,
): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', material, iv);
  cipher.setAAD(aad);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  const keyId = Buffer.from(header.keyId, 'utf8');
  const versionId = Buffer.from(header.versionId, 'utf8');
  return Buffer.concat([
    Buffer.from([FORMAT, keyId.length]),
    keyId,
    Buffer.from([versionId.length]),
    versionId,
    iv,
    cipher.getAuthTag(),
    body,
  ]).toString('base64');
}

export interface ParsedBlob extends BlobHeader {
  iv: Buffer;
  tag: Buffer;
  body: Buffer;
}

/** Returns undefined for anything that is not one of our blobs. */
export function parseBlob(blob: string): ParsedBlob | undefined {
  const bytes = Buffer.from(blob, 'base64');
  let offset = 0;
  const take = (count: number): Buffer | undefined => {
    if (offset + count > bytes.length) return undefined;
    const slice = bytes.subarray(offset, offset + count);
    offset += count;
    return slice;
  };
  if (take(1)?.[0] !== FORMAT) return undefined;
  const keyIdLength = take(1)?.[0];
  const keyId = keyIdLength === undefined ? undefined : take(keyIdLength);
  const versionIdLength = take(1)?.[0];
  const versionId = versionIdLength === undefined ? undefined : take(versionIdLength);
  const iv = take(IV_BYTES);
  const tag = take(TAG_BYTES);
  if (!keyId || !versionId || !iv || !tag) return undefined;
  return {
    keyId: keyId.toString('utf8'),
    versionId: versionId.toString('utf8'),
    iv,
    tag,
    body: bytes.subarray(offset),
  };
}

/** Returns undefined when the material, tag or AAD do not match. */
export function decryptBlob(parsed: ParsedBlob, material: Buffer, aad: Buffer): Buffer | undefined {
  try {
    const decipher = createDecipheriv('aes-256-gcm', material, parsed.iv);
    decipher.setAAD(aad);
    decipher.setAuthTag(parsed.tag);
    return Buffer.concat([decipher.update(parsed.body), decipher.final()]);
  } catch {
    return undefined;
  }
}
