import { kmsError, KmsApiError } from './errors.js';
import { signatureMatches, stringToSign } from './signature.js';
import {
  canonicalRequestV3,
  parseV3Authorization,
  sha256Hex,
  signatureV3Matches,
  stringToSignV3,
  V3_ALGORITHM,
  type HeaderValues,
  type QueryEntries,
  type V3Request,
} from './signature-v3.js';
import type { Params } from './actions.js';

export interface AccessKey {
  id: string;
  secret: string;
  /** An STS pair: every request must carry this token (SecurityToken / x-acs-security-token). */
  securityToken?: string;
}

/** What a signature check needs of an HTTP request. */
export interface SignedRequest {
  method: string;
  /** The path as sent (percent-encoded). */
  path: string;
  query: QueryEntries;
  headers: HeaderValues;
  body: Buffer;
  /** Query, form body and JSON body parameters together. */
  params: Params;
}

/** KMS (POP) accepts a Timestamp / x-acs-date at most 15 minutes away from its own clock. */
export const TIMESTAMP_WINDOW_MS = 15 * 60_000;
const TIMESTAMP_FORMAT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/;
const V1_REQUIRED = [
  'AccessKeyId',
  'Signature',
  'SignatureMethod',
  'SignatureVersion',
  'SignatureNonce',
  'Timestamp',
] as const;
/** Headers a V3 signature must cover: without them a request could be replayed or altered. */
const V3_SIGNED_REQUIRED = ['host', 'x-acs-date', 'x-acs-signature-nonce', 'x-acs-content-sha256'];

function incompleteSignature(what: string): KmsApiError {
  return new KmsApiError(
    'IncompleteSignature',
    `The request signature does not conform to Aliyun standards: ${what}.`,
  );
}

function firstHeader(headers: HeaderValues, name: string): string | undefined {
  return headers[name]?.[0];
}

/**
 * Verifies POP signature v1.0 (HMAC-SHA1 over the parameters) and V3 (ACS3-HMAC-SHA256 in
 * the Authorization header) requests: known access key, matching signature, Timestamp or
 * x-acs-date within the window, a nonce never seen before within that window, and the STS
 * token of an STS pair.
 */
export class RequestAuthenticator {
  readonly #keys: ReadonlyMap<string, AccessKey>;
  readonly #now: () => number;
  /** accessKeyId + nonce → when first seen; insertion order lets pruning stop early. */
  readonly #nonces = new Map<string, number>();

  constructor(accessKeys: readonly AccessKey[], now: () => number) {
    this.#keys = new Map(accessKeys.map((key) => [key.id, key]));
    this.#now = now;
  }

  /** Either dialect: V3 when the Authorization header says ACS3-…, else v1.0 parameters. */
  verifyRequest(request: SignedRequest): string {
    const authorization = firstHeader(request.headers, 'authorization')?.trim();
    if (authorization?.startsWith('ACS3-')) return this.#verifyV3(request, authorization);
    if (authorization !== undefined && /^ACS\d/.test(authorization)) {
      // e.g. ACS4-HMAC-SHA256, what the current SDKs send with signatureVersion "v4".
      throw incompleteSignature(
        `the emulator verifies ${V3_ALGORITHM} (V3) and HMAC-SHA1 (v1.0) signatures, not ${authorization.split(' ')[0] ?? ''}`,
      );
    }
    return this.verify(request.method, request.params);
  }

  /** Signature v1.0: returns the caller's access key id or throws the KMS error a real endpoint would send. */
  verify(method: string, params: Params): string {
    for (const name of V1_REQUIRED) {
      if (params[name] === undefined || params[name] === '') {
        // KMS's documented sample error: a missing Timestamp is IllegalTimestamp.
        if (name === 'Timestamp') throw kmsError('IllegalTimestamp');
        throw kmsError(
          'MissingParameter',
          `The input parameter "${name}" that is mandatory for processing this request is not supplied.`,
        );
      }
    }
    if (params.SignatureMethod !== 'HMAC-SHA1') {
      throw kmsError('InvalidParameter', 'SignatureMethod must be HMAC-SHA1.');
    }
    if (params.SignatureVersion !== '1.0') {
      throw kmsError('InvalidParameter', 'SignatureVersion must be 1.0.');
    }
    const key = this.#accessKey(params.AccessKeyId ?? '');
    if (!signatureMatches(method, params, key.secret, params.Signature ?? '')) {
      throw new KmsApiError(
        'SignatureDoesNotMatch',
        `Specified signature is not matched with our calculation. server string to sign is:${stringToSign(method, params)}`,
      );
    }
    this.#checkFreshness(key, params.Timestamp ?? '', params.SignatureNonce ?? '');
    this.#checkToken(key, params.SecurityToken);
    return key.id;
  }

  #verifyV3(request: SignedRequest, authorization: string): string {
    const parsed = parseV3Authorization(authorization);
    if (!parsed) {
      throw incompleteSignature(
        'the Authorization header needs Credential=, SignedHeaders= and Signature=',
      );
    }
    if (parsed.algorithm !== V3_ALGORITHM) {
      throw incompleteSignature(
        `the emulator verifies ${V3_ALGORITHM} only, not ${parsed.algorithm}`,
      );
    }
    const signed = this.#v3Input(request, parsed.signedHeaders);
    const key = this.#accessKey(parsed.accessKeyId);
    if (!signatureV3Matches(signed, key.secret, parsed.signature)) {
      throw new KmsApiError(
        'SignatureDoesNotMatch',
        `Specified signature is not matched with our calculation. server string to sign is:${stringToSignV3(signed)}, canonical request is:${canonicalRequestV3(signed)}`,
      );
    }
    if (sha256Hex(request.body) !== signed.payloadHash.toLowerCase()) {
      throw new KmsApiError(
        'SignatureDoesNotMatch',
        'Specified signature is not matched with our calculation: x-acs-content-sha256 is not the SHA-256 of the request body.',
      );
    }
    const headers = request.headers;
    this.#checkFreshness(
      key,
      firstHeader(headers, 'x-acs-date') ?? '',
      firstHeader(headers, 'x-acs-signature-nonce') ?? '',
    );
    this.#checkToken(key, firstHeader(headers, 'x-acs-security-token'));
    return key.id;
  }

  /** The canonical request's inputs; every part a V3 signature needs must be there and signed. */
  #v3Input(request: SignedRequest, signedHeaders: readonly string[]): V3Request {
    for (const name of V3_SIGNED_REQUIRED) {
      if (firstHeader(request.headers, name) === undefined) {
        throw incompleteSignature(`the ${name} header is missing`);
      }
    }
    const mustSign = [...V3_SIGNED_REQUIRED];
    if (request.headers['x-acs-security-token'] !== undefined)
      mustSign.push('x-acs-security-token');
    const unsigned = mustSign.filter((name) => !signedHeaders.includes(name));
    if (unsigned.length > 0) {
      throw incompleteSignature(`SignedHeaders must include ${unsigned.join(', ')}`);
    }
    return {
      method: request.method,
      path: request.path,
      query: request.query,
      headers: request.headers,
      signedHeaders,
      payloadHash: firstHeader(request.headers, 'x-acs-content-sha256') ?? '',
    };
  }

  #accessKey(accessKeyId: string): AccessKey {
    const key = this.#keys.get(accessKeyId);
    if (key === undefined) throw kmsError('InvalidAccessKeyId.NotFound');
    return key;
  }

  #checkFreshness(key: AccessKey, timestamp: string, nonce: string): void {
    const signedAt = TIMESTAMP_FORMAT.test(timestamp) ? Date.parse(timestamp) : NaN;
    if (Number.isNaN(signedAt)) throw kmsError('InvalidTimeStamp.Format');
    const now = this.#now();
    if (Math.abs(now - signedAt) > TIMESTAMP_WINDOW_MS) throw kmsError('InvalidTimeStamp.Expired');
    if (nonce === '') throw incompleteSignature('the x-acs-signature-nonce header is empty');
    this.#prune(now);
    const nonceKey = `${key.id}\n${nonce}`;
    if (this.#nonces.has(nonceKey)) throw kmsError('SignatureNonceUsed');
    this.#nonces.set(nonceKey, now);
  }

  /** An STS pair needs its token; a plain pair lets any signed token pass (like before). */
  #checkToken(key: AccessKey, token: string | undefined): void {
    if (key.securityToken === undefined || key.securityToken === token) return;
    throw kmsError('InvalidSecurityToken.MismatchWithAccessKey');
  }

  /** A nonce older than twice the window can only come with an expired Timestamp. */
  #prune(now: number): void {
    for (const [nonce, seenAt] of this.#nonces) {
      if (now - seenAt <= 2 * TIMESTAMP_WINDOW_MS) break;
      this.#nonces.delete(nonce);
    }
  }
}
