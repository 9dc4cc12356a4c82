import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { popEncode } from './signature.js';

/**
 * Alibaba Cloud signature V3 (ACS3-HMAC-SHA256), as the current SDKs compute it
 * (darabonba-openapi / openapi-util in Go, Python and TypeScript):
 *
 *   CanonicalRequest = METHOD \n CanonicalURI \n CanonicalQueryString \n
 *                      CanonicalHeaders \n SignedHeaders \n HashedRequestPayload
 *   StringToSign     = "ACS3-HMAC-SHA256" \n hex(sha256(CanonicalRequest))
 *   Signature        = hex(hmac-sha256(AccessKeySecret, StringToSign))
 *   Authorization: ACS3-HMAC-SHA256 Credential=<AK>,SignedHeaders=<h1;h2>,Signature=<hex>
 *
 * The query string is RFC 3986-encoded (space %20, `*` %2A, `~` kept), sorted by name, and
 * an empty value keeps its `=`. CanonicalHeaders are the signed headers, lowercase, each
 * `name:value\n` with trimmed values (repeated headers: sorted values joined by ','), in
 * SignedHeaders order (sorted). HashedRequestPayload is x-acs-content-sha256.
 */
export const V3_ALGORITHM = 'ACS3-HMAC-SHA256';

export interface V3Authorization {
  algorithm: string;
  accessKeyId: string;
  /** Lowercase, in the order given. */
  signedHeaders: string[];
  signature: string;
}

/** Parses `ACS3-… Credential=…,SignedHeaders=…,Signature=…`; undefined when a part is missing. */
export function parseV3Authorization(header: string): V3Authorization | undefined {
  const match = /^(ACS3-[A-Z0-9-]+)\s+(.+)$/.exec(header.trim());
  if (!match?.[1] || match[2] === undefined) return undefined;
  const parts = new Map<string, string>();
  for (const part of match[2].split(',')) {
    const equals = part.indexOf('=');
    if (equals > 0) parts.set(part.slice(0, equals).trim(), part.slice(equals + 1).trim());
  }
  const accessKeyId = parts.get('Credential');
  const signedHeaders = parts.get('SignedHeaders');
  const signature = parts.get('Signature');
  if (!accessKeyId || !signedHeaders || !signature) return undefined;
  return {
    algorithm: match[1],
    accessKeyId,
    signedHeaders: signedHeaders.split(';').map((name) => name.trim().toLowerCase()),
    signature,
  };
}

/** Decoded query parameters in arrival order (a repeated name: the last one counts). */
export type QueryEntries = readonly (readonly [string, string])[];

export function canonicalQueryV3(query: QueryEntries): string {
  const byName = new Map(query);
  return [...byName.keys()]
    .sort()
    .map((name) => `${popEncode(name)}=${popEncode(byName.get(name) ?? '')}`)
    .join('&');
}

/** Header values by lowercase name (Node's `req.headersDistinct`). */
export type HeaderValues = Readonly<Record<string, readonly string[] | undefined>>;

export function canonicalHeadersV3(
  headers: HeaderValues,
  signedHeaders: readonly string[],
): string {
  return signedHeaders
    .map((name) => {
      const values = (headers[name] ?? []).map((value) => value.trim()).sort();
      return `${name}:${values.join(',')}\n`;
    })
    .join('');
}

export interface V3Request {
  method: string;
  /** The path as sent (still percent-encoded), e.g. "/". */
  path: string;
  query: QueryEntries;
  headers: HeaderValues;
  signedHeaders: readonly string[];
  payloadHash: string;
}

export function canonicalRequestV3(request: V3Request): string {
  return [
    request.method.toUpperCase(),
    request.path === '' ? '/' : request.path,
    canonicalQueryV3(request.query),
    canonicalHeadersV3(request.headers, request.signedHeaders),
    request.signedHeaders.join(';'),
    request.payloadHash,
  ].join('\n');
}

export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export function stringToSignV3(request: V3Request): string {
  return `${V3_ALGORITHM}\n${sha256Hex(canonicalRequestV3(request))}`;
}

export function signV3(request: V3Request, accessKeySecret: string): string {
  return createHmac('sha256', accessKeySecret).update(stringToSignV3(request)).digest('hex');
}

export function signatureV3Matches(
  request: V3Request,
  accessKeySecret: string,
  signature: string,
): boolean {
  const expected = Buffer.from(signV3(request, accessKeySecret));
  const given = Buffer.from(signature.toLowerCase());
  return expected.length === given.length && timingSafeEqual(expected, given);
}
