import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * POP (RPC style) signature v1.0, as @alicloud/rpc-util computes it:
 * StringToSign = METHOD & encode('/') & encode(canonicalized query), where the canonicalized
 * query is `encode(key)=encode(value)` of every parameter except Signature, sorted by key
 * and joined with '&'; signature = base64(HMAC-SHA1(secret + '&', StringToSign)).
 */
export function popEncode(value: string): string {
  return encodeURIComponent(value)
    .replace(/!/g, '%21')
    .replace(/'/g, '%27')
    .replace(/\(/g, '%28')
    .replace(/\)/g, '%29')
    .replace(/\*/g, '%2A');
}

export function canonicalQuery(params: Readonly<Record<string, string>>): string {
  return Object.keys(params)
    .filter((key) => key !== 'Signature')
    .sort()
    .map((key) => `${popEncode(key)}=${popEncode(params[key] ?? '')}`)
    .join('&');
}

export function stringToSign(method: string, params: Readonly<Record<string, string>>): string {
  return `${method.toUpperCase()}&${popEncode('/')}&${popEncode(canonicalQuery(params))}`;
}

export function signRequest(
  method: string,
  params: Readonly<Record<string, string>>,
  accessKeySecret: string,
): string {
  return createHmac('sha1', `${accessKeySecret}&`)
    .update(stringToSign(method, params))
    .digest('base64');
}

export function signatureMatches(
  method: string,
  params: Readonly<Record<string, string>>,
  accessKeySecret: string,
  signature: string,
): boolean {
  const expected = Buffer.from(signRequest(method, params, accessKeySecret));
  const given = Buffer.from(signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}
