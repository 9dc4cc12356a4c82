/**
 * The HTTP(S) call helpers of the tests that need a real connection (TLS, sockets,
 * processes). Route logic without TLS as the subject goes through Fastify's `inject`.
 */
import { request as httpRequest, type Agent as HttpAgent } from 'node:http';
import { request as httpsRequest, type Agent } from 'node:https';
import type { SecureContext } from 'node:tls';
import type { ReviewAnswer } from './server.js';

export interface HttpResult {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
  json(): Record<string, unknown>;
  /** The body as an AdmissionReview answer. */
  answer(): ReviewAnswer;
}

export function toResult(status: number, headers: HttpResult['headers'], body: string): HttpResult {
  return {
    status,
    headers,
    body,
    json: () => JSON.parse(body) as Record<string, unknown>,
    answer: () => JSON.parse(body) as ReviewAnswer,
  };
}

export interface HttpCallOptions {
  /** Default GET. */
  readonly method?: string;
  readonly body?: string | Buffer;
  readonly headers?: Record<string, string>;
  /** Default: a fresh connection per call. */
  readonly agent?: Agent | HttpAgent | false;
  /** https: the CA(s) to verify the server with... */
  readonly ca?: string | string[];
  /** ...or a context built once (OpenSSL 3 makes a context per connection costly, ~10 ms). */
  readonly secureContext?: SecureContext;
  /** Client certificate (PEM) for mTLS. */
  readonly cert?: string;
  readonly key?: string;
  /**
   * The client gives up after this long (like the API server's webhook timeout): the call
   * fails with code `ETIMEDOUT_CLIENT` when no full answer came in time.
   */
  readonly timeoutMs?: number;
}

function tlsOptions(options: HttpCallOptions): Record<string, unknown> {
  return {
    ...(options.secureContext !== undefined
      ? { secureContext: options.secureContext }
      : { ca: options.ca }),
    ...(options.cert !== undefined ? { cert: options.cert } : {}),
    ...(options.key !== undefined ? { key: options.key } : {}),
  };
}

/** One request over http: or https: (by the URL), with real TLS verification. */
export function httpCall(url: string, options: HttpCallOptions = {}): Promise<HttpResult> {
  const https = url.startsWith('https:');
  return new Promise((resolve, reject) => {
    // A server may answer early (413) and close while the body is still being written: the
    // write then fails with EPIPE, but the answer already arrived and is what counts.
    let responded = false;
    let timer: NodeJS.Timeout | undefined;
    const settle = (): void => {
      clearTimeout(timer);
    };
    const request = https ? httpsRequest : httpRequest;
    const req = request(
      url,
      {
        method: options.method ?? 'GET',
        ...(https ? tlsOptions(options) : {}),
        agent: options.agent ?? false,
        ...(options.headers !== undefined ? { headers: options.headers } : {}),
      },
      (res) => {
        responded = true;
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          settle();
          resolve(toResult(res.statusCode ?? 0, res.headers, Buffer.concat(chunks).toString()));
        });
        res.on('error', (error) => {
          settle();
          reject(error);
        });
      },
    );
    if (options.timeoutMs !== undefined) {
      const timeoutMs = options.timeoutMs;
      timer = setTimeout(() => {
        const error = Object.assign(new Error(`no answer within ${timeoutMs} ms`), {
          code: 'ETIMEDOUT_CLIENT',
        });
        req.destroy(error);
      }, timeoutMs);
    }
    req.on('error', (error) => {
      if (responded) return;
      settle();
      reject(error);
    });
    req.end(options.body);
  });
}

/** A JSON POST (by default) over HTTPS, verified against the test CA. */
export function httpsCall(url: string, options: HttpCallOptions): Promise<HttpResult> {
  return httpCall(url, {
    ...options,
    method: options.method ?? 'POST',
    headers: { 'content-type': 'application/json', ...options.headers },
  });
}

export function postReview(
  url: string,
  review: unknown,
  ca: string,
  extra: Partial<HttpCallOptions> = {},
): Promise<HttpResult> {
  return httpsCall(url, { ca, body: JSON.stringify(review), ...extra });
}

export function httpGet(
  url: string,
  options: Pick<HttpCallOptions, 'timeoutMs'> = {},
): Promise<HttpResult> {
  return httpCall(url, options);
}
