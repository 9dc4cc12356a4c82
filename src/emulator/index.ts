/**
 * A local, wire-compatible Alibaba Cloud KMS (API 2016-01-20) for development and tests.
 *
 * Layers: request.ts (parameters from the query, a form or JSON body; action and version
 * from parameters or x-acs-* headers) → signature.ts/signature-v3.ts/auth.ts (POP
 * signature v1.0 and V3 ACS3-HMAC-SHA256, nonce, Timestamp/x-acs-date and STS token checks) →
 * http.ts (node:http, KMS JSON errors, /_emulator/ admin routes) → faults.ts (injected
 * latency, errors, dropped sockets, denied access keys) → actions.ts (the KMS actions) →
 * store.ts (keys, versions, aliases, state rules) + crypto.ts (AES-256-GCM blobs) →
 * persistence.ts (optional JSON state file).
 *
 * Admin routes (unsigned, loopback clients only): GET|POST|DELETE /_emulator/faults,
 * GET /_emulator/keys, GET /_emulator/requests, POST /_emulator/keys/KEY/material.
 */
import { randomBytes } from 'node:crypto';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { EmulatedKms } from './actions.js';
import { RequestAuthenticator, type AccessKey } from './auth.js';
import { FaultState, type EmulatorFaults } from './faults.js';
import { createRequestHandler } from './http.js';
import { loadState, saveState } from './persistence.js';
import { KeyStore, type KeyRecord } from './store.js';

export type { EmulatorFaults, FaultSettings } from './faults.js';
export type { AccessKey } from './auth.js';
export { EMULATOR_ACCOUNT_ID, KMS_ACTIONS } from './actions.js';
export { KMS_ERRORS } from './errors.js';

export interface EmulatorOptions {
  host?: string;
  port?: number;
  /** PEM; serve HTTPS when given. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Default: one generated pair. */
  accessKeys?: AccessKey[];
  /** Seed Enabled keys with these ids (a generated id for an empty string). */
  keys?: string[];
  /** Default 'cn-hangzhou' (used in ARNs). */
  regionId?: string;
  /** Persist keys, versions, material and aliases to this JSON file. */
  statePath?: string;
  /** Clock (ms) for dates and Timestamp checks. */
  now?: () => number;
  /**
   * Clock for the 15-minute Timestamp window only (default: `now`). The real SDK stamps
   * wall-clock time, so tests that move `now` days ahead pass `Date.now` here.
   */
  timestampClock?: () => number;
  logger?: Logger;
  /** Random source of the fault shares (tests may make them deterministic). */
  random?: () => number;
}

export interface RunningEmulator {
  /** "127.0.0.1:PORT" — what --kms-endpoint takes. */
  readonly endpoint: string;
  readonly protocol: 'http' | 'https';
  /** "http://127.0.0.1:PORT" */
  readonly url: string;
  readonly regionId: string;
  /** The first access key. */
  readonly accessKeyId: string;
  readonly accessKeySecret: string;
  /** Seeded key ids. */
  readonly keyIds: string[];
  readonly faults: EmulatorFaults;
  /** KMS API calls received (all actions when none is given), including rejected ones. */
  requestCount(action?: string): number;
  /**
   * Stands in for importing key material into an EXTERNAL key (PendingImport → Enabled);
   * `expireTime` (ms) sets MaterialExpireTime, after which the key returns to PendingImport.
   */
  importKeyMaterial(keyId: string, options?: { expireTime?: number | null }): void;
  close(): Promise<void>;
}

/**
 * Idle keep-alive connections stay open as long as cloud gateways keep them (at least 60 s):
 * an SDK that reuses a socket the server has just closed gets ECONNRESET. headersTimeout is
 * above it (a request's headers, counted from its first byte, never outlive an idle socket)
 * and requestTimeout bounds a whole request from a slow or hostile client.
 */
export const KEEP_ALIVE_TIMEOUT_MS = 65_000;
export const HEADERS_TIMEOUT_MS = 66_000;
export const REQUEST_TIMEOUT_MS = 120_000;
/** Open connections at once (idle ones count): bounds what a client can hold. */
export const MAX_CONNECTIONS = 1024;

export async function startEmulator(options: EmulatorOptions = {}): Promise<RunningEmulator> {
  const now = options.now ?? Date.now;
  const accessKeys = options.accessKeys?.length ? options.accessKeys : [generateAccessKey()];
  const firstKey = accessKeys[0];
  if (!firstKey) throw new Error('unreachable: at least one access key');
  const state = openStore(options.statePath, now);
  const keyIds = seedKeys(state.store, options.keys ?? []);
  state.persist();

  const regionId = options.regionId ?? 'cn-hangzhou';
  const api = new EmulatedKms(state.store, regionId);
  const faults = new FaultState(options.random);
  const counts = new Map<string, number>();
  const closed = new AbortController();
  const handler = createRequestHandler({
    api,
    store: state.store,
    auth: new RequestAuthenticator(accessKeys, options.timestampClock ?? now),
    faults,
    counts,
    persist: state.persist,
    logger: options.logger,
    closed: closed.signal,
  });
  const { server, endpoint, protocol } = await listen(options, handler);
  options.logger?.info({ endpoint, protocol, regionId }, 'kms-emulator listening');

  let closing: Promise<void> | undefined;
  return {
    endpoint,
    protocol,
    url: `${protocol}://${endpoint}`,
    regionId,
    accessKeyId: firstKey.id,
    accessKeySecret: firstKey.secret,
    keyIds,
    faults,
    requestCount(action?: string): number {
      if (action !== undefined) return counts.get(action) ?? 0;
      let total = 0;
      for (const count of counts.values()) total += count;
      return total;
    },
    importKeyMaterial(keyId, importOptions = {}): void {
      const key: KeyRecord = state.store.resolve(keyId, api.arnPrefix);
      state.store.importMaterial(key, importOptions.expireTime ?? null);
      state.persist();
    },
    close(): Promise<void> {
      closed.abort();
      closing ??= new Promise<void>((resolve, reject) => {
        server.close((error) => {
          if (error) reject(error);
          else resolve();
        });
        // SDK clients keep connections alive; close them so close() does not wait on them.
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

/** Seeds Enabled keys with these ids (a generated id for ''), keeping those already stored. */
function seedKeys(store: KeyStore, ids: readonly string[]): string[] {
  return ids.map((id) =>
    id !== '' && store.has(id) ? id : store.createKey(id === '' ? {} : { keyId: id }).keyId,
  );
}

/** The key store, loaded from and saved to the state file when there is one. */
function openStore(
  statePath: string | undefined,
  now: () => number,
): { store: KeyStore; persist: () => void } {
  const store = new KeyStore(now, statePath === undefined ? undefined : loadState(statePath));
  const persist = (): void => {
    if (store.takeChanges() && statePath !== undefined) saveState(statePath, store.snapshot());
  };
  return { store, persist };
}

async function listen(
  options: EmulatorOptions,
  handler: ReturnType<typeof createRequestHandler>,
): Promise<{ server: Server; endpoint: string; protocol: 'http' | 'https' }> {
  const timeouts = {
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    headersTimeout: HEADERS_TIMEOUT_MS,
    requestTimeout: REQUEST_TIMEOUT_MS,
  };
  const server: Server = options.tls
    ? createHttpsServer({ ...timeouts, cert: options.tls.cert, key: options.tls.key }, handler)
    : createHttpServer(timeouts, handler);
  server.maxConnections = MAX_CONNECTIONS;
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const endpoint = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  return { server, endpoint, protocol: options.tls ? 'https' : 'http' };
}

/** An access key pair shaped like Alibaba Cloud's (LTAI… id, 30-character secret). */
export function generateAccessKey(): AccessKey {
  const alphanumeric = (length: number): string =>
    [...randomBytes(length)]
      .map((byte) => 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'[byte % 62])
      .join('');
  return { id: `LTAI${alphanumeric(20)}`, secret: alphanumeric(30) };
}
