import { kmsError, KmsApiError } from './errors.js';
import { signatureMatches, stringToSign } from './signature.js';
import type { Params } from './actions.js';

export interface AccessKey {
  id: string;
  secret: string;
}

/** KMS (POP) accepts a Timestamp at most 15 minutes away from its own clock. */
export const TIMESTAMP_WINDOW_MS = 15 * 60_000;
const TIMESTAMP_FORMAT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/;

/**
 * Verifies POP signature v1.0 requests: known access key, HMAC-SHA1 signature, Timestamp
 * within the window, and a SignatureNonce never seen before within that window.
 */
export class RequestAuthenticator {
  readonly #secrets: ReadonlyMap<string, string>;
  readonly #now: () => number;
  /** accessKeyId + nonce → when first seen; insertion order lets pruning stop early. */
  readonly #nonces = new Map<string, number>();

  constructor(accessKeys: readonly AccessKey[], now: () => number) {
    this.#secrets = new Map(accessKeys.map((key) => [key.id, key.secret]));
    this.#now = now;
  }

  /** Returns the caller's access key id or throws the KMS error a real endpoint would send. */
  verify(method: string, params: Params): string {
    for (const name of [
      'AccessKeyId',
      'Signature',
      'SignatureMethod',
      'SignatureVersion',
      'SignatureNonce',
      'Timestamp',
    ]) {
      if (params[name] === undefined || params[name] === '') {
        // KMS's documented sample error: a missing Timestamp is IllegalTimestamp.
        if (name === 'Timestamp') throw kmsError('IllegalTimestamp');
        throw kmsError(
          'MissingParameter',
          `The input parameter "${name}" that is mandatory for processing this request is not supplied.`,
        );
      }
    }
    const accessKeyId = params.AccessKeyId ?? '';
    if (params.SignatureMethod !== 'HMAC-SHA1') {
      throw kmsError('InvalidParameter', 'SignatureMethod must be HMAC-SHA1.');
    }
    if (params.SignatureVersion !== '1.0') {
      throw kmsError('InvalidParameter', 'SignatureVersion must be 1.0.');
    }
    const secret = this.#secrets.get(accessKeyId);
    if (secret === undefined) throw kmsError('InvalidAccessKeyId.NotFound');
    if (!signatureMatches(method, params, secret, params.Signature ?? '')) {
      throw new KmsApiError(
        'SignatureDoesNotMatch',
        `Specified signature is not matched with our calculation. server string to sign is:${stringToSign(method, params)}`,
      );
    }
    const timestamp = params.Timestamp ?? '';
    const signedAt = TIMESTAMP_FORMAT.test(timestamp) ? Date.parse(timestamp) : NaN;
    if (Number.isNaN(signedAt)) throw kmsError('InvalidTimeStamp.Format');
    const now = this.#now();
    if (Math.abs(now - signedAt) > TIMESTAMP_WINDOW_MS) throw kmsError('InvalidTimeStamp.Expired');
    this.#prune(now);
    const nonceKey = `${accessKeyId}\n${params.SignatureNonce ?? ''}`;
    if (this.#nonces.has(nonceKey)) throw kmsError('SignatureNonceUsed');
    this.#nonces.set(nonceKey, now);
    return accessKeyId;
  }

  /** A nonce older than twice the window can only come with an expired Timestamp. */
  #prune(now: number): void {
    for (const [nonce, seenAt] of this.#nonces) {
      if (now - seenAt <= 2 * TIMESTAMP_WINDOW_MS) break;
      this.#nonces.delete(nonce);
    }
  }
}
