import type { IncomingMessage } from 'node:http';
import type { SignedRequest } from './auth.js';
import { kmsError } from './errors.js';
import type { QueryEntries } from './signature-v3.js';

export const MAX_BODY_BYTES = 1024 * 1024;
/** Nesting of a JSON body the emulator flattens; deeper is refused (bounded CPU per request). */
const MAX_JSON_DEPTH = 8;

/** A KMS API call as every SDK dialect puts it: parameters, action and version found. */
export interface ApiRequest extends SignedRequest {
  /** `Action` parameter, else the x-acs-action header (V3). */
  action: string;
  /** `Version` parameter, else the x-acs-version header (V3). */
  version: string | undefined;
}

export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new RangeError('request body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/**
 * Parameters come from the query string, a form-encoded body (the SDKs' RPC style) or a
 * JSON body (flattened like the SDKs flatten objects: `Tag.1.Key`, `EncryptionContext.k`).
 * `Object.fromEntries` keeps a "__proto__" name an ordinary key.
 */
export function toApiRequest(req: IncomingMessage, body: Buffer): ApiRequest {
  const raw = req.url ?? '/';
  const mark = raw.indexOf('?');
  const path = mark === -1 ? raw : raw.slice(0, mark);
  const query: QueryEntries = [...new URLSearchParams(mark === -1 ? '' : raw.slice(mark + 1))];
  const params = Object.fromEntries([...query, ...bodyParams(req, body)]);
  const headers = req.headersDistinct;
  return {
    method: (req.method ?? 'GET').toUpperCase(),
    path,
    query,
    headers,
    body,
    params,
    action: params.Action ?? headers['x-acs-action']?.[0] ?? '',
    version: params.Version ?? headers['x-acs-version']?.[0],
  };
}

function bodyParams(req: IncomingMessage, body: Buffer): [string, string][] {
  if (body.length === 0) return [];
  const type = (req.headers['content-type'] ?? '').toLowerCase();
  if (type.startsWith('application/x-www-form-urlencoded')) {
    return [...new URLSearchParams(body.toString('utf8'))];
  }
  if (type.startsWith('application/json')) return flattenJson(parseJsonBody(body));
  return [];
}

function parseJsonBody(body: Buffer): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw kmsError('InvalidParameter', 'The request body is not valid JSON.');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw kmsError('InvalidParameter', 'A JSON request body must be an object of parameters.');
  }
  return parsed as Record<string, unknown>;
}

/** `{a: {b: 1}, c: [x, y]}` → `a.b=1`, `c.1=x`, `c.2=y` (nulls left out). */
export function flattenJson(value: Record<string, unknown>): [string, string][] {
  const out: [string, string][] = [];
  const visit = (prefix: string, item: unknown, depth: number): void => {
    if (item === null || item === undefined) return;
    if (depth > MAX_JSON_DEPTH) {
      throw kmsError('InvalidParameter', `A JSON request body may nest ${MAX_JSON_DEPTH} deep.`);
    }
    if (Array.isArray(item)) {
      item.forEach((element: unknown, index) => {
        visit(`${prefix}.${index + 1}`, element, depth + 1);
      });
    } else if (typeof item === 'object') {
      for (const [name, inner] of Object.entries(item)) {
        visit(prefix === '' ? name : `${prefix}.${name}`, inner, depth + 1);
      }
    } else {
      out.push([prefix, typeof item === 'string' ? item : JSON.stringify(item)]);
    }
  };
  visit('', value, 0);
  return out;
}
