import http from 'node:http';
import https from 'node:https';
import { StringDecoder } from 'node:string_decoder';
import type { KubeConfig } from '@kubernetes/client-node';
import { foregroundClock, type Clock } from '../time/clock.js';
import { DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_REQUEST_DEADLINE_MS } from './limits.js';
import { STAMP_ANNOTATIONS, type WrittenSecret } from './plan.js';
import { failureKindOfStatus, parseRetryAfter, type FailureKind } from './retry.js';

/**
 * A tiny Kubernetes client for Secret METADATA only. Every request asks for
 * PartialObjectMetadata, so the API server never sends `data`; a response of any other kind
 * is refused before it is looked at. It trusts the server no further than it must: each
 * response is capped in bytes (counted as they arrive), each request has a wall-clock
 * deadline, list items that carry Secret data are refused, and errors keep only the HTTP
 * status and a Status `message`, never the raw body.
 */

const METADATA_LIST_ACCEPT = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1';
const METADATA_ACCEPT = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1';
export const FIELD_MANAGER = 'kms-secret-guard-reencrypt';

export interface SecretRef {
  readonly namespace: string;
  readonly name: string;
}

export interface SecretMetadata extends SecretRef, WrittenSecret {
  readonly resourceVersion: string;
  /** Only the stamp annotations: others (e.g. kubectl's last-applied-configuration, which
   * can hold a copy of the data) are dropped as soon as the page is parsed. */
  readonly annotations: Readonly<Record<string, string>>;
}

export interface SecretMetadataPage {
  readonly items: readonly SecretMetadata[];
  /** Items the server sent WITH `data`/`stringData` (names only: the rest was dropped). */
  readonly refused?: readonly SecretRef[];
  readonly continueToken: string | undefined;
  /** The server's estimate of items after this page (absent with selectors). */
  readonly remainingItemCount: number | undefined;
}

export interface ListScope {
  readonly namespace?: string | undefined;
  readonly labelSelector?: string | undefined;
  readonly fieldSelector?: string | undefined;
}

export interface SecretMetadataClient {
  listPage(scope: ListScope, limit: number, continueToken?: string): Promise<SecretMetadataPage>;
  /** Undefined when the Secret no longer exists. */
  get(ref: SecretRef): Promise<SecretMetadata | undefined>;
  /** Merge patch of annotations, conditional on resourceVersion (409 when it moved). */
  patchAnnotations(
    ref: SecretRef,
    resourceVersion: string,
    annotations: Readonly<Record<string, string>>,
  ): Promise<SecretMetadata>;
  close(): void;
}

/** What a failed answer tells the retry policy beyond its status. */
export interface KubeApiErrorHints {
  /** The server's Retry-After (header or Status details). */
  readonly retryAfterSeconds?: number;
  /** On 410 Gone of a list: a token to continue from the latest snapshot. */
  readonly continueToken?: string;
}

/** A failed Kubernetes request, classified for the retry policy. */
export class KubeApiError extends Error {
  override readonly name = 'KubeApiError';
  readonly retryAfterSeconds: number | undefined;
  readonly continueToken: string | undefined;
  constructor(
    readonly kind: FailureKind,
    readonly status: number | undefined,
    message: string,
    hints: KubeApiErrorHints = {},
  ) {
    super(message);
    this.retryAfterSeconds = hints.retryAfterSeconds;
    this.continueToken = hints.continueToken;
  }
}

export interface SecretMetadataClientOptions {
  readonly kubeConfig: KubeConfig;
  readonly userAgent: string;
  /** Upper bound of parallel connections (the sweep's concurrency plus the lister). */
  readonly maxSockets: number;
  /**
   * Wall-clock deadline of one request, from sending it to the last byte of the answer
   * (default DEFAULT_REQUEST_DEADLINE_MS).
   */
  readonly deadlineMs?: number;
  /** Largest response body accepted (default DEFAULT_MAX_RESPONSE_BYTES). */
  readonly maxResponseBytes?: number;
  readonly clock?: Clock;
}

/** Error bodies are only read for a Status message: a larger one is not read at all. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;
/** A Status message longer than this is cut (it lands in the Job's log). */
const MAX_STATUS_MESSAGE_CHARS = 1000;

interface RawResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  /** Undefined when an error body was over MAX_ERROR_BODY_BYTES (it was not read). */
  readonly body: string | undefined;
}

/** The response was larger than the cap: thrown while the bytes arrive. */
class ResponseTooLarge extends Error {
  constructor(readonly limitBytes: number) {
    super(`response over ${limitBytes} bytes`);
  }
}

interface Transport {
  send(call: Call): Promise<RawResponse>;
  close(): void;
}

/** Requests to the kubeconfig's cluster with its credentials, over one pooled agent. */
function createTransport(options: SecretMetadataClientOptions, clock: Clock): Transport {
  const { kubeConfig, userAgent } = options;
  const limits = {
    deadlineMs: options.deadlineMs ?? DEFAULT_REQUEST_DEADLINE_MS,
    maxResponseBytes: options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES,
    clock,
  };
  const cluster = kubeConfig.getCurrentCluster();
  if (cluster === null) throw new Error('kubeconfig has no current cluster');
  const base = new URL(cluster.server);
  const basePath = base.pathname.replace(/\/+$/, '');
  const secure = base.protocol === 'https:';
  const agents = createAgentPool(secure, options.maxSockets, cluster.proxyUrl);

  async function credentials(): Promise<https.RequestOptions> {
    const opts: https.RequestOptions = { headers: {} };
    try {
      await kubeConfig.applyToHTTPSOptions(opts);
    } catch (error) {
      throw new KubeApiError(
        'unauthorized',
        undefined,
        `cannot prepare credentials for ${cluster?.server ?? 'the cluster'}: ${messageOf(error)}`,
      );
    }
    return opts;
  }

  async function send(call: Call): Promise<RawResponse> {
    const { method, path, body } = call;
    const opts = await credentials();
    const agent = agents.agentFor(opts);
    const request = (secure ? https : http).request({
      protocol: base.protocol,
      hostname: base.hostname.replace(/^\[|\]$/g, ''),
      port: base.port === '' ? undefined : base.port,
      path: basePath + path,
      method,
      headers: requestHeaders(opts, call, userAgent),
      ...(opts.auth !== undefined && { auth: opts.auth }),
      ...(agent !== undefined && { agent }),
    });
    try {
      return await exchange(request, body?.text, { method, path, ...limits });
    } catch (error) {
      if (!(error instanceof ResponseTooLarge)) throw error;
      throw new KubeApiError(
        'rejected',
        undefined,
        `${call.what}: the answer was larger than ${mebibytes(error.limitBytes)} (the cap per response, which keeps memory bounded)${call.remedy ?? ''}.`,
      );
    }
  }

  return {
    send,
    close() {
      agents.destroy();
    },
  };
}

function requestHeaders(
  opts: https.RequestOptions,
  call: Call,
  userAgent: string,
): http.OutgoingHttpHeaders {
  const headers: http.OutgoingHttpHeaders = {
    ...(opts.headers as http.OutgoingHttpHeaders | undefined),
    Accept: call.accept,
    'User-Agent': userAgent,
  };
  if (call.body !== undefined) {
    headers['Content-Type'] = call.body.contentType;
    headers['Content-Length'] = Buffer.byteLength(call.body.text);
  }
  return headers;
}

interface AgentPool {
  agentFor(opts: https.RequestOptions): http.Agent | undefined;
  destroy(): void;
}

/**
 * applyToHTTPSOptions builds a fresh agent per call (no keep-alive); we keep one pooled
 * agent per TLS identity instead, so a sweep reuses a handful of connections.
 */
function createAgentPool(
  secure: boolean,
  maxSockets: number,
  proxyUrl: string | undefined,
): AgentPool {
  let pooled: { agent: http.Agent; identity: readonly unknown[] } | undefined;
  return {
    agentFor(opts) {
      if (proxyUrl !== undefined && proxyUrl !== '') {
        return opts.agent instanceof http.Agent ? opts.agent : undefined;
      }
      const tls = tlsOptionsOf(opts);
      const identity = [tls.ca, tls.cert, tls.key, tls.pfx, tls.rejectUnauthorized, tls.servername];
      if (pooled !== undefined && sameIdentity(pooled.identity, identity)) return pooled.agent;
      pooled?.agent.destroy();
      const common = { keepAlive: true, maxSockets };
      const agent = secure ? new https.Agent({ ...common, ...tls }) : new http.Agent(common);
      pooled = { agent, identity };
      return agent;
    },
    destroy() {
      pooled?.agent.destroy();
      pooled = undefined;
    },
  };
}

const TLS_OPTION_NAMES = [
  'ca',
  'cert',
  'key',
  'pfx',
  'passphrase',
  'rejectUnauthorized',
  'servername',
] as const;

/** The TLS settings the kubeconfig set (absent ones left out, as the agent expects). */
function tlsOptionsOf(opts: https.RequestOptions): https.AgentOptions {
  const tls: Record<string, unknown> = {};
  for (const name of TLS_OPTION_NAMES) {
    if (opts[name] !== undefined) tls[name] = opts[name];
  }
  return tls;
}

export function createSecretMetadataClient(
  options: SecretMetadataClientOptions,
): SecretMetadataClient {
  const clock = options.clock ?? foregroundClock;
  const transport = createTransport(options, clock);

  const failure = (response: RawResponse, what: string): KubeApiError =>
    failureOf(response, what, clock.now());

  return {
    async listPage(scope, limit, continueToken) {
      const query = new URLSearchParams({ limit: String(limit) });
      if (scope.labelSelector !== undefined) query.set('labelSelector', scope.labelSelector);
      if (scope.fieldSelector !== undefined) query.set('fieldSelector', scope.fieldSelector);
      if (continueToken !== undefined) query.set('continue', continueToken);
      const collection =
        scope.namespace !== undefined
          ? `/api/v1/namespaces/${encodeURIComponent(scope.namespace)}/secrets`
          : '/api/v1/secrets';
      const response = await transport.send({
        method: 'GET',
        path: `${collection}?${query.toString()}`,
        accept: METADATA_LIST_ACCEPT,
        what: `list secrets (a page of ${limit})`,
        remedy: `; run again with a smaller --page-size (e.g. ${Math.max(1, Math.floor(limit / 4))})`,
      });
      if (response.status !== 200) throw failure(response, 'list secrets');
      return toPage(parseJson(response.body ?? '') as MetadataListBody | undefined, scope);
    },

    async get(ref) {
      const response = await transport.send({
        method: 'GET',
        path: itemPath(ref),
        accept: METADATA_ACCEPT,
        what: `get secret ${ref.namespace}/${ref.name}`,
      });
      if (response.status === 404) return undefined;
      if (response.status !== 200)
        throw failure(response, `get secret ${ref.namespace}/${ref.name}`);
      return singleMetadata(response, ref);
    },

    async patchAnnotations(ref, resourceVersion, annotations) {
      const patch = JSON.stringify({ metadata: { resourceVersion, annotations } });
      const query = new URLSearchParams({ fieldManager: FIELD_MANAGER });
      const response = await transport.send({
        method: 'PATCH',
        path: `${itemPath(ref)}?${query.toString()}`,
        accept: METADATA_ACCEPT,
        body: { contentType: 'application/merge-patch+json', text: patch },
        what: `patch secret ${ref.namespace}/${ref.name}`,
      });
      if (response.status !== 200) {
        throw failure(response, `patch secret ${ref.namespace}/${ref.name}`);
      }
      return singleMetadata(response, ref);
    },

    close() {
      transport.close();
    },
  };
}

interface MetadataBody {
  readonly kind?: unknown;
  readonly metadata?: {
    readonly name?: unknown;
    readonly namespace?: unknown;
    readonly resourceVersion?: unknown;
    readonly annotations?: unknown;
    readonly creationTimestamp?: unknown;
    readonly managedFields?: unknown;
  };
}

interface MetadataListBody {
  readonly kind?: unknown;
  readonly items?: readonly MetadataBody[];
  readonly metadata?: { readonly continue?: unknown; readonly remainingItemCount?: unknown };
}

interface StatusBody {
  readonly kind: 'Status';
  readonly message?: unknown;
  readonly details?: { readonly retryAfterSeconds?: unknown };
  readonly metadata?: { readonly continue?: unknown };
}

interface Call {
  readonly method: string;
  readonly path: string;
  readonly accept: string;
  readonly body?: { readonly contentType: string; readonly text: string };
  /** Names the request in errors, e.g. "list secrets (a page of 100)". */
  readonly what: string;
  /** Appended to the error when the answer is over the cap. */
  readonly remedy?: string;
}

interface Exchange {
  readonly method: string;
  readonly path: string;
  readonly deadlineMs: number;
  readonly maxResponseBytes: number;
  readonly clock: Clock;
}

/**
 * Sends the request and reads the answer within the deadline (wall clock, from now) and the
 * byte cap (counted as chunks arrive: over it, the connection is cut at once).
 */
function exchange(
  request: http.ClientRequest,
  body: string | undefined,
  limits: Exchange,
): Promise<RawResponse> {
  const { method, path, clock } = limits;
  return new Promise<RawResponse>((resolve, reject) => {
    let settled = false;
    /** Why we cut the connection (deadline, byte cap): that is the error, whatever the socket says. */
    let cause: Error | undefined;
    const settle = (outcome: { response: RawResponse } | { error: unknown }): void => {
      if (settled) return;
      settled = true;
      clock.clearTimeout(deadline);
      if ('response' in outcome) resolve(outcome.response);
      else if (cause !== undefined) reject(cause);
      else if (outcome.error instanceof KubeApiError) reject(outcome.error);
      else reject(networkError(method, path, outcome.error));
    };
    const cut = (reason: Error | undefined): void => {
      cause ??= reason;
      request.destroy();
      if (reason !== undefined) settle({ error: reason });
    };
    const deadline = clock.setTimeout(() => {
      cut(
        new KubeApiError(
          'network',
          undefined,
          `${method} ${withoutQuery(path)}: no complete answer within ${limits.deadlineMs} ms (the deadline per request, --request-timeout)`,
        ),
      );
    }, limits.deadlineMs);
    request.on('response', (response) => {
      readCapped(response, limits.maxResponseBytes, {
        done: (text) => {
          settle({
            response: { status: response.statusCode ?? 0, headers: response.headers, body: text },
          });
        },
        fail: (error) => {
          settle({ error });
        },
        cut,
      });
    });
    request.on('error', (error) => {
      settle({ error });
    });
    request.end(body);
  });
}

interface BodySink {
  /** The whole body as text; undefined for an error body over MAX_ERROR_BODY_BYTES (unread). */
  done(text: string | undefined): void;
  fail(error: unknown): void;
  /** Closes the connection; with a reason, the exchange fails with it. */
  cut(reason: Error | undefined): void;
}

/**
 * Reads the body chunk by chunk, counting bytes as they arrive: a 200 over `limitBytes` is
 * cut at once with ResponseTooLarge; an error body over MAX_ERROR_BODY_BYTES is not read
 * further (only its status is used). Calls back synchronously, so the reason the connection
 * was cut is known before the socket reports the close.
 */
function readCapped(response: http.IncomingMessage, limitBytes: number, sink: BodySink): void {
  const ok = response.statusCode === 200;
  const cap = ok ? limitBytes : Math.min(limitBytes, MAX_ERROR_BODY_BYTES);
  const decoder = new StringDecoder('utf8');
  let parts: string[] = [];
  let received = 0;
  response.on('data', (chunk: Buffer) => {
    received += chunk.length;
    if (received <= cap) {
      parts.push(decoder.write(chunk));
      return;
    }
    response.removeAllListeners('data');
    parts = [];
    if (ok) {
      sink.cut(new ResponseTooLarge(cap));
    } else {
      sink.done(undefined);
      sink.cut(undefined);
    }
  });
  response.on('error', (error) => {
    sink.fail(error);
  });
  response.on('aborted', () => {
    sink.fail(new Error('the connection closed before the answer was complete'));
  });
  response.on('end', () => {
    parts.push(decoder.end());
    sink.done(parts.join(''));
  });
}

function toPage(list: MetadataListBody | undefined, scope: ListScope): SecretMetadataPage {
  if (list?.kind !== 'PartialObjectMetadataList' || !Array.isArray(list.items)) {
    throw new KubeApiError(
      'rejected',
      200,
      `list secrets: the API server did not answer with PartialObjectMetadataList (got ${shortText(list?.kind)}); it must support metadata-only lists (Kubernetes ≥ 1.15).`,
    );
  }
  const items: SecretMetadata[] = [];
  const refused: SecretRef[] = [];
  for (const item of list.items as readonly unknown[]) {
    const metadata = toMetadata(item as MetadataBody, scope.namespace);
    // A metadata-only list never carries the payload: a server that sends it anyway is not
    // what we asked for. The item is dropped (its data is neither kept nor shown).
    if (carriesData(item)) refused.push({ namespace: metadata.namespace, name: metadata.name });
    else items.push(metadata);
  }
  return {
    items,
    ...(refused.length > 0 && { refused }),
    continueToken:
      typeof list.metadata?.continue === 'string'
        ? emptyToUndefined(list.metadata.continue)
        : undefined,
    remainingItemCount:
      typeof list.metadata?.remainingItemCount === 'number'
        ? list.metadata.remainingItemCount
        : undefined,
  };
}

/** Only the status and a Status `message` leave here: never the raw body. */
function failureOf(response: RawResponse, what: string, now: number): KubeApiError {
  const parsed = response.body === undefined ? undefined : parseJson(response.body);
  const status = isStatus(parsed) ? parsed : undefined;
  const serverMessage = statusMessage(status);
  return new KubeApiError(
    failureKindOfStatus(response.status, serverMessage ?? ''),
    response.status,
    `${what}: HTTP ${response.status}: ${serverMessage ?? '(the answer was not a Kubernetes Status; its body is not shown)'}`,
    hintsOf(response, status, now),
  );
}

function hintsOf(
  response: RawResponse,
  status: StatusBody | undefined,
  now: number,
): KubeApiErrorHints {
  const retryAfter =
    parseRetryAfter(headerValue(response.headers['retry-after']), now) ??
    (typeof status?.details?.retryAfterSeconds === 'number'
      ? status.details.retryAfterSeconds
      : undefined);
  const continueToken =
    typeof status?.metadata?.continue === 'string'
      ? emptyToUndefined(status.metadata.continue)
      : undefined;
  return {
    ...(retryAfter !== undefined && { retryAfterSeconds: retryAfter }),
    ...(continueToken !== undefined && { continueToken }),
  };
}

function carriesData(item: unknown): boolean {
  return (
    typeof item === 'object' &&
    item !== null &&
    (Object.hasOwn(item, 'data') || Object.hasOwn(item, 'stringData'))
  );
}

function isStatus(value: unknown): value is StatusBody {
  return (
    typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'Status'
  );
}

/** The Status message, one line and bounded, or undefined when there is none. */
function statusMessage(status: StatusBody | undefined): string | undefined {
  if (typeof status?.message !== 'string' || status.message === '') return undefined;
  // eslint-disable-next-line no-control-regex -- control characters are what is removed
  const oneLine = status.message.replace(/[\u0000-\u001f\u007f]+/g, ' ');
  return oneLine.length > MAX_STATUS_MESSAGE_CHARS
    ? `${oneLine.slice(0, MAX_STATUS_MESSAGE_CHARS)}…`
    : oneLine;
}

function shortText(value: unknown): string {
  const text = String(value);
  return text.length > 60 ? `${text.slice(0, 60)}…` : text;
}

function mebibytes(bytes: number): string {
  return `${Math.round((bytes / 1024 / 1024) * 10) / 10} MiB`;
}

function withoutQuery(path: string): string {
  return path.split('?')[0] ?? path;
}

function itemPath(ref: SecretRef): string {
  return `/api/v1/namespaces/${encodeURIComponent(ref.namespace)}/secrets/${encodeURIComponent(ref.name)}`;
}

function singleMetadata(response: RawResponse, ref: SecretRef): SecretMetadata {
  const body = parseJson(response.body ?? '') as MetadataBody | undefined;
  if (body?.kind !== 'PartialObjectMetadata') {
    throw new KubeApiError(
      'rejected',
      response.status,
      `secret ${ref.namespace}/${ref.name}: the API server did not answer with PartialObjectMetadata (got ${shortText(body?.kind)}).`,
    );
  }
  return toMetadata(body, ref.namespace);
}

function toMetadata(item: MetadataBody, fallbackNamespace: string | undefined): SecretMetadata {
  const metadata = item.metadata ?? {};
  const annotations: Record<string, string> = {};
  const all = metadata.annotations;
  if (typeof all === 'object' && all !== null) {
    for (const name of STAMP_ANNOTATIONS) {
      const value = (all as Record<string, unknown>)[name];
      if (typeof value === 'string') annotations[name] = value;
    }
  }
  const lastWrittenAt = lastWrittenOf(metadata.managedFields, metadata.creationTimestamp);
  return {
    namespace:
      typeof metadata.namespace === 'string' ? metadata.namespace : (fallbackNamespace ?? ''),
    name: typeof metadata.name === 'string' ? metadata.name : '',
    resourceVersion: typeof metadata.resourceVersion === 'string' ? metadata.resourceVersion : '',
    annotations,
    ...(lastWrittenAt !== undefined && { lastWrittenAt }),
  };
}

/**
 * When the Secret was last written: the latest `managedFields[].time` (the API server sets
 * it on every write that changes the object), else `creationTimestamp`; undefined when
 * neither is a readable time. Only the number is kept, never the field sets.
 */
function lastWrittenOf(managedFields: unknown, creationTimestamp: unknown): number | undefined {
  let latest: number | undefined;
  if (Array.isArray(managedFields)) {
    for (const entry of managedFields as readonly unknown[]) {
      const time = timeOf((entry as { time?: unknown } | null)?.time);
      if (time !== undefined && (latest === undefined || time > latest)) latest = time;
    }
  }
  return latest ?? timeOf(creationTimestamp);
}

function timeOf(value: unknown): number | undefined {
  if (typeof value !== 'string') return undefined;
  const parsed = Date.parse(value);
  return Number.isFinite(parsed) ? parsed : undefined;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function emptyToUndefined(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function sameIdentity(a: readonly unknown[], b: readonly unknown[]): boolean {
  return a.every((value, index) => {
    const other = b[index];
    if (Buffer.isBuffer(value) && Buffer.isBuffer(other)) return value.equals(other);
    return value === other;
  });
}

function networkError(method: string, path: string, error: unknown): KubeApiError {
  const code = (error as { code?: unknown }).code;
  const detail = typeof code === 'string' ? `${code}: ${messageOf(error)}` : messageOf(error);
  return new KubeApiError('network', undefined, `${method} ${withoutQuery(path)}: ${detail}`);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
