import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { isKmsAction, type EmulatedKms, type Params } from './actions.js';
import type { RequestAuthenticator } from './auth.js';
import { KmsApiError, kmsError } from './errors.js';
import { parseFaultSettings, type FaultState } from './faults.js';
import type { KeyStore } from './store.js';

export const API_VERSION = '2016-01-20';
const MAX_BODY_BYTES = 1024 * 1024;

export interface HandlerDeps {
  api: EmulatedKms;
  store: KeyStore;
  auth: RequestAuthenticator;
  faults: FaultState;
  counts: Map<string, number>;
  /** Saves the store if it changed (no-op when in memory). */
  persist: () => void;
  logger?: Logger | undefined;
  /** Aborted when the emulator closes: pending injected delays end at once. */
  closed: AbortSignal;
}

/** One handler for the KMS API (POST|GET /) and the unsigned, loopback-only /_emulator/ admin routes. */
export function createRequestHandler(
  deps: HandlerDeps,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    handle(deps, req, res).catch((error: unknown) => {
      deps.logger?.error({ err: error }, 'kms-emulator request failed');
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const requestId = randomUUID();
      sendJson(
        res,
        500,
        {
          HttpStatus: 500,
          Code: 'InternalFailure',
          Message: 'Internal error.',
          RequestId: requestId,
        },
        requestId,
      );
    });
  };
}

async function handle(deps: HandlerDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://emulator');
  if (url.pathname.startsWith('/_emulator/')) {
    await handleAdmin(deps, req, res, url);
    return;
  }
  const body = await readBody(req);
  const requestId = randomUUID();
  // The SDK signs query and form body together; fromEntries keeps a "__proto__" name inert.
  const form = isForm(req) ? [...new URLSearchParams(body.toString('utf8'))] : [];
  const params: Record<string, string> = Object.fromEntries([...url.searchParams, ...form]);
  const action = params.Action ?? '';
  deps.counts.set(action, (deps.counts.get(action) ?? 0) + 1);

  if (deps.faults.latencyMs > 0) {
    try {
      await sleep(deps.faults.latencyMs, undefined, { signal: deps.closed });
    } catch {
      req.socket.destroy();
      return;
    }
  }
  if (deps.faults.shouldDrop()) {
    deps.logger?.debug({ action }, 'kms-emulator dropped a connection (fault)');
    req.socket.destroy();
    return;
  }
  try {
    const result = answer(deps, req.method ?? 'GET', url.pathname, action, params);
    deps.logger?.debug({ action, requestId, status: 200 }, 'kms-emulator call');
    sendJson(res, 200, { RequestId: requestId, ...result }, requestId);
  } catch (error) {
    if (!(error instanceof KmsApiError)) throw error;
    deps.logger?.debug(
      { action, requestId, code: error.code, status: error.httpStatus },
      'kms-emulator call',
    );
    sendJson(
      res,
      error.httpStatus,
      {
        HttpStatus: error.httpStatus,
        Code: error.code,
        Message: error.message,
        RequestId: requestId,
        HostId: 'kms.aliyuncs.com',
        Recommend: `https://api.aliyun.com/troubleshoot?q=${encodeURIComponent(error.code)}&product=Kms`,
      },
      requestId,
    );
  }
}

function answer(
  deps: HandlerDeps,
  method: string,
  pathname: string,
  action: string,
  params: Params,
): Record<string, unknown> {
  if (pathname !== '/' || (method !== 'POST' && method !== 'GET')) {
    throw kmsError('InvalidAction.NotFound');
  }
  if (action === '')
    throw kmsError('MissingParameter', 'The input parameter "Action" is not supplied.');
  if (params.Version === undefined) {
    throw kmsError('MissingParameter', 'The input parameter "Version" is not supplied.');
  }
  if (params.Version !== API_VERSION) throw kmsError('InvalidVersion');
  if (!isKmsAction(action)) throw kmsError('InvalidAction.NotFound');
  const accessKeyId = deps.auth.verify(method, params);
  if (deps.faults.isDenied(accessKeyId)) throw kmsError('Forbidden.NoPermission');
  const injected = deps.faults.failureFor(action);
  if (injected !== undefined) throw new KmsApiError(injected);
  try {
    return deps.api.handle(action, params);
  } finally {
    // Also after errors: looking a key up may have applied a due deletion or rotation.
    deps.persist();
  }
}

async function handleAdmin(
  deps: HandlerDeps,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
): Promise<void> {
  if (!isLoopback(req.socket.remoteAddress)) {
    sendJson(res, 403, { error: 'the /_emulator/ admin routes answer loopback clients only' });
    return;
  }
  const body = await readBody(req);
  const route = `${req.method ?? 'GET'} ${url.pathname}`;
  const material = /^POST \/_emulator\/keys\/([^/]+)\/material$/.exec(route);
  try {
    if (route === 'GET /_emulator/faults') {
      sendJson(res, 200, deps.faults.describe());
    } else if (route === 'POST /_emulator/faults') {
      deps.faults.apply(parseFaultSettings(parseJson(body)));
      sendJson(res, 200, deps.faults.describe());
    } else if (route === 'DELETE /_emulator/faults') {
      deps.faults.reset();
      sendJson(res, 200, deps.faults.describe());
    } else if (route === 'GET /_emulator/keys') {
      sendJson(res, 200, {
        keys: deps.store.listKeys().map((key) => ({
          ...deps.api.keyMetadata(key),
          KeyVersions: key.versions.map((v) => v.versionId),
        })),
        aliases: deps.store.listAliases(),
      });
    } else if (route === 'GET /_emulator/requests') {
      sendJson(res, 200, {
        total: [...deps.counts.values()].reduce((a, b) => a + b, 0),
        byAction: Object.fromEntries(deps.counts),
      });
    } else if (material?.[1] !== undefined) {
      const input = parseJson(body) as { expireTime?: unknown } | null;
      const expireTime = input?.expireTime;
      if (expireTime !== undefined && expireTime !== null && typeof expireTime !== 'string') {
        throw new TypeError('expireTime must be an ISO-8601 string or null');
      }
      const expiresAt = typeof expireTime === 'string' ? Date.parse(expireTime) : null;
      if (expiresAt !== null && Number.isNaN(expiresAt)) {
        throw new TypeError('expireTime must be an ISO-8601 date, e.g. 2026-12-01T00:00:00Z');
      }
      const key = deps.store.resolve(decodeURIComponent(material[1]), deps.api.arnPrefix);
      deps.store.importMaterial(key, expiresAt);
      sendJson(res, 200, { KeyMetadata: deps.api.keyMetadata(key) });
    } else {
      sendJson(res, 404, {
        error: `no admin route ${route}; try GET|POST|DELETE /_emulator/faults, GET /_emulator/keys, GET /_emulator/requests, POST /_emulator/keys/KEY/material`,
      });
    }
  } catch (error) {
    if (error instanceof TypeError || error instanceof RangeError || error instanceof SyntaxError) {
      sendJson(res, 400, { error: error.message });
    } else if (error instanceof KmsApiError) {
      sendJson(res, error.httpStatus, { error: error.message, code: error.code });
    } else {
      throw error;
    }
  } finally {
    deps.persist();
  }
}

function parseJson(body: Buffer): unknown {
  return body.length === 0 ? {} : (JSON.parse(body.toString('utf8')) as unknown);
}

function isForm(req: IncomingMessage): boolean {
  return (req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded');
}

export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  const plain = address.startsWith('::ffff:') ? address.slice(7) : address;
  return plain === '::1' || /^127\.\d+\.\d+\.\d+$/.test(plain);
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new RangeError('request body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function sendJson(res: ServerResponse, status: number, body: unknown, requestId?: string): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json;charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...(requestId === undefined ? {} : { 'x-acs-request-id': requestId }),
  });
  res.end(text);
}
