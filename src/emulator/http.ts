import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { isKmsAction, type EmulatedKms } from './actions.js';
import type { RequestAuthenticator } from './auth.js';
import { KmsApiError, kmsError } from './errors.js';
import { parseFaultSettings, type FaultState } from './faults.js';
import { readBody, toApiRequest, type ApiRequest } from './request.js';
import type { KeyStore } from './store.js';

export const API_VERSION = '2016-01-20';

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
  const pathname = new URL(req.url ?? '/', 'http://emulator').pathname;
  if (pathname.startsWith('/_emulator/')) {
    await handleAdmin(deps, req, res, pathname);
    return;
  }
  const body = await readBody(req);
  const requestId = randomUUID();
  let request: ApiRequest;
  try {
    request = toApiRequest(req, body);
  } catch (error) {
    sendKmsError(deps, res, { action: '', requestId, error });
    return;
  }
  const { action } = request;
  deps.counts.set(action, (deps.counts.get(action) ?? 0) + 1);
  if (!(await applyConnectionFaults(deps, req, action))) return;
  try {
    const result = answer(deps, request, pathname);
    deps.logger?.debug({ action, requestId, status: 200 }, 'kms-emulator call');
    sendJson(res, 200, { RequestId: requestId, ...result }, requestId);
  } catch (error) {
    sendKmsError(deps, res, { action, requestId, error });
  }
}

/** Injected latency and dropped sockets; false when the connection is gone. */
async function applyConnectionFaults(
  deps: HandlerDeps,
  req: IncomingMessage,
  action: string,
): Promise<boolean> {
  if (deps.faults.latencyMs > 0) {
    try {
      await sleep(deps.faults.latencyMs, undefined, { signal: deps.closed });
    } catch {
      req.socket.destroy();
      return false;
    }
  }
  if (deps.faults.shouldDrop()) {
    deps.logger?.debug({ action }, 'kms-emulator dropped a connection (fault)');
    req.socket.destroy();
    return false;
  }
  return true;
}

/** A KMS error body, the same whichever dialect asked; anything else is a bug (500). */
function sendKmsError(
  deps: HandlerDeps,
  res: ServerResponse,
  call: { action: string; requestId: string; error: unknown },
): void {
  const { action, requestId, error } = call;
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

function answer(deps: HandlerDeps, request: ApiRequest, pathname: string): Record<string, unknown> {
  const { action, method } = request;
  if (pathname !== '/' || (method !== 'POST' && method !== 'GET')) {
    throw kmsError('InvalidAction.NotFound');
  }
  if (action === '')
    throw kmsError('MissingParameter', 'The input parameter "Action" is not supplied.');
  if (request.version === undefined) {
    throw kmsError('MissingParameter', 'The input parameter "Version" is not supplied.');
  }
  if (request.version !== API_VERSION) throw kmsError('InvalidVersion');
  if (!isKmsAction(action)) throw kmsError('InvalidAction.NotFound');
  const accessKeyId = deps.auth.verifyRequest(request);
  if (deps.faults.isDenied(accessKeyId)) throw kmsError('Forbidden.NoPermission');
  const injected = deps.faults.failureFor(action);
  if (injected !== undefined) throw new KmsApiError(injected);
  try {
    return deps.api.handle(action, request.params);
  } finally {
    // Also after errors: looking a key up may have applied a due deletion or rotation.
    deps.persist();
  }
}

type AdminRoute = (deps: HandlerDeps, body: Buffer, match: RegExpExecArray) => unknown;

/** `METHOD path` patterns of the admin routes → their JSON answer. */
const ADMIN_ROUTES: readonly (readonly [RegExp, AdminRoute])[] = [
  [/^GET \/_emulator\/faults$/, (deps) => deps.faults.describe()],
  [
    /^POST \/_emulator\/faults$/,
    (deps, body) => {
      deps.faults.apply(parseFaultSettings(parseJson(body)));
      return deps.faults.describe();
    },
  ],
  [
    /^DELETE \/_emulator\/faults$/,
    (deps) => {
      deps.faults.reset();
      return deps.faults.describe();
    },
  ],
  [
    /^GET \/_emulator\/keys$/,
    (deps) => ({
      keys: deps.store.listKeys().map((key) => ({
        ...deps.api.keyMetadata(key),
        KeyVersions: key.versions.map((v) => v.versionId),
      })),
      aliases: deps.store.listAliases(),
    }),
  ],
  [
    /^GET \/_emulator\/requests$/,
    (deps) => ({
      total: [...deps.counts.values()].reduce((a, b) => a + b, 0),
      byAction: Object.fromEntries(deps.counts),
    }),
  ],
  [/^POST \/_emulator\/keys\/([^/]+)\/material$/, importMaterialRoute],
];

function importMaterialRoute(deps: HandlerDeps, body: Buffer, match: RegExpExecArray): unknown {
  const input = parseJson(body) as { expireTime?: unknown } | null;
  const expireTime = input?.expireTime;
  if (expireTime !== undefined && expireTime !== null && typeof expireTime !== 'string') {
    throw new TypeError('expireTime must be an ISO-8601 string or null');
  }
  const expiresAt = typeof expireTime === 'string' ? Date.parse(expireTime) : null;
  if (expiresAt !== null && Number.isNaN(expiresAt)) {
    throw new TypeError('expireTime must be an ISO-8601 date, e.g. 2026-12-01T00:00:00Z');
  }
  const key = deps.store.resolve(decodeURIComponent(match[1] ?? ''), deps.api.arnPrefix);
  deps.store.importMaterial(key, expiresAt);
  return { KeyMetadata: deps.api.keyMetadata(key) };
}

async function handleAdmin(
  deps: HandlerDeps,
  req: IncomingMessage,
  res: ServerResponse,
  pathname: string,
): Promise<void> {
  if (!isLoopback(req.socket.remoteAddress)) {
    sendJson(res, 403, { error: 'the /_emulator/ admin routes answer loopback clients only' });
    return;
  }
  const body = await readBody(req);
  const route = `${req.method ?? 'GET'} ${pathname}`;
  try {
    for (const [pattern, run] of ADMIN_ROUTES) {
      const match = pattern.exec(route);
      if (match) {
        sendJson(res, 200, run(deps, body, match));
        return;
      }
    }
    sendJson(res, 404, {
      error: `no admin route ${route}; try GET|POST|DELETE /_emulator/faults, GET /_emulator/keys, GET /_emulator/requests, POST /_emulator/keys/KEY/material`,
    });
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

export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  const plain = address.startsWith('::ffff:') ? address.slice(7) : address;
  return plain === '::1' || /^127\.\d+\.\d+\.\d+$/.test(plain);
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
