import http from 'node:http';
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { STAMP_ANNOTATIONS } from './plan.js';
import { failureKindOfStatus, parseRetryAfter, type FailureKind } from './retry.js';

/**
 * A tiny Kubernetes client for Secret METADATA only. Every request asks for
 * PartialObjectMetadata, so the API server never sends `data`; a response of any other kind
 * is refused before it is looked at.
 */

const METADATA_LIST_ACCEPT = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1';
const METADATA_ACCEPT = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1';
export const FIELD_MANAGER = 'kms-secret-guard-reencrypt';

export interface SecretRef {
  readonly namespace: string;
  readonly name: string;
}

export interface SecretMetadata extends SecretRef {
  readonly resourceVersion: string;
  /** Only the stamp annotations: others (e.g. kubectl's last-applied-configuration, which
   * can hold a copy of the data) are dropped as soon as the page is parsed. */
  readonly annotations: Readonly<Record<string, string>>;
}

export interface SecretMetadataPage {
  readonly items: readonly SecretMetadata[];
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

/** A failed Kubernetes request, classified for the retry policy. */
export class KubeApiError extends Error {
  override readonly name = 'KubeApiError';
  constructor(
    readonly kind: FailureKind,
    readonly status: number | undefined,
    message: string,
    readonly retryAfterSeconds?: number,
    /** On 410 Gone of a list: a token to continue from the latest snapshot. */
    readonly continueToken?: string,
  ) {
    super(message);
  }
}

export interface SecretMetadataClientOptions {
  readonly kubeConfig: KubeConfig;
  readonly userAgent: string;
  /** Upper bound of parallel connections (the sweep's concurrency plus the lister). */
  readonly maxSockets: number;
  readonly timeoutMs?: number;
  readonly now?: () => number;
}

interface RawResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

export function createSecretMetadataClient(
  options: SecretMetadataClientOptions,
): SecretMetadataClient {
  const { kubeConfig, userAgent } = options;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const now = options.now ?? Date.now;
  const cluster = kubeConfig.getCurrentCluster();
  if (cluster === null) throw new Error('kubeconfig has no current cluster');
  const base = new URL(cluster.server);
  const basePath = base.pathname.replace(/\/+$/, '');
  const secure = base.protocol === 'https:';
  // applyToHTTPSOptions builds a fresh agent per call (no keep-alive); we keep one pooled
  // agent per TLS identity instead, so a sweep reuses a handful of connections.
  let pooled: { agent: http.Agent; identity: readonly unknown[] } | undefined;

  function agentFor(opts: https.RequestOptions): http.Agent | undefined {
    if (cluster?.proxyUrl !== undefined && cluster.proxyUrl !== '') {
      return opts.agent instanceof http.Agent ? opts.agent : undefined;
    }
    const identity = [
      opts.ca,
      opts.cert,
      opts.key,
      opts.pfx,
      opts.rejectUnauthorized,
      opts.servername,
    ];
    if (pooled !== undefined && sameIdentity(pooled.identity, identity)) return pooled.agent;
    pooled?.agent.destroy();
    const common = { keepAlive: true, maxSockets: options.maxSockets };
    const agent = secure
      ? new https.Agent({
          ...common,
          ...(opts.ca !== undefined && { ca: opts.ca }),
          ...(opts.cert !== undefined && { cert: opts.cert }),
          ...(opts.key !== undefined && { key: opts.key }),
          ...(opts.pfx !== undefined && { pfx: opts.pfx }),
          ...(opts.passphrase !== undefined && { passphrase: opts.passphrase }),
          ...(opts.rejectUnauthorized !== undefined && {
            rejectUnauthorized: opts.rejectUnauthorized,
          }),
          ...(opts.servername !== undefined && { servername: opts.servername }),
        })
      : new http.Agent(common);
    pooled = { agent, identity };
    return agent;
  }

  async function send(
    method: string,
    path: string,
    accept: string,
    body?: { contentType: string; text: string },
  ): Promise<RawResponse> {
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
    const headers: http.OutgoingHttpHeaders = {
      ...(opts.headers as http.OutgoingHttpHeaders | undefined),
      Accept: accept,
      'User-Agent': userAgent,
    };
    if (body !== undefined) {
      headers['Content-Type'] = body.contentType;
      headers['Content-Length'] = Buffer.byteLength(body.text);
    }
    const transport = secure ? https : http;
    const agent = agentFor(opts);
    return await new Promise<RawResponse>((resolve, reject) => {
      const request = transport.request(
        {
          protocol: base.protocol,
          hostname: base.hostname.replace(/^\[|\]$/g, ''),
          port: base.port === '' ? undefined : base.port,
          path: basePath + path,
          method,
          headers,
          ...(opts.auth !== undefined && { auth: opts.auth }),
          ...(agent !== undefined && { agent }),
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('error', (error) => {
            reject(networkError(method, path, error));
          });
          response.on('end', () => {
            resolve({
              status: response.statusCode ?? 0,
              headers: response.headers,
              body: Buffer.concat(chunks).toString('utf8'),
            });
          });
        },
      );
      request.setTimeout(timeoutMs, () => {
        request.destroy(new Error(`no answer within ${timeoutMs} ms`));
      });
      request.on('error', (error) => {
        reject(networkError(method, path, error));
      });
      request.end(body?.text);
    });
  }

  function failure(response: RawResponse, what: string): KubeApiError {
    const status = parseJson(response.body) as StatusBody | undefined;
    const retryAfter =
      parseRetryAfter(headerValue(response.headers['retry-after']), now()) ??
      status?.details?.retryAfterSeconds;
    const serverMessage =
      typeof status?.message === 'string' && status.message !== ''
        ? status.message
        : response.body.slice(0, 300);
    return new KubeApiError(
      failureKindOfStatus(response.status, serverMessage),
      response.status,
      `${what}: HTTP ${response.status}: ${serverMessage}`,
      retryAfter,
      emptyToUndefined(status?.metadata?.continue),
    );
  }

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
      const response = await send('GET', `${collection}?${query.toString()}`, METADATA_LIST_ACCEPT);
      if (response.status !== 200) throw failure(response, 'list secrets');
      const list = parseJson(response.body) as MetadataListBody | undefined;
      if (list?.kind !== 'PartialObjectMetadataList' || !Array.isArray(list.items)) {
        throw new KubeApiError(
          'rejected',
          response.status,
          `list secrets: the API server did not answer with PartialObjectMetadataList (got ${String(list?.kind)}); it must support metadata-only lists (Kubernetes ≥ 1.15).`,
        );
      }
      return {
        items: list.items.map((item: MetadataBody) => toMetadata(item, scope.namespace)),
        continueToken: emptyToUndefined(list.metadata?.continue),
        remainingItemCount:
          typeof list.metadata?.remainingItemCount === 'number'
            ? list.metadata.remainingItemCount
            : undefined,
      };
    },

    async get(ref) {
      const response = await send('GET', itemPath(ref), METADATA_ACCEPT);
      if (response.status === 404) return undefined;
      if (response.status !== 200)
        throw failure(response, `get secret ${ref.namespace}/${ref.name}`);
      return singleMetadata(response, ref);
    },

    async patchAnnotations(ref, resourceVersion, annotations) {
      const patch = JSON.stringify({ metadata: { resourceVersion, annotations } });
      const query = new URLSearchParams({ fieldManager: FIELD_MANAGER });
      const response = await send(
        'PATCH',
        `${itemPath(ref)}?${query.toString()}`,
        METADATA_ACCEPT,
        {
          contentType: 'application/merge-patch+json',
          text: patch,
        },
      );
      if (response.status !== 200) {
        throw failure(response, `patch secret ${ref.namespace}/${ref.name}`);
      }
      return singleMetadata(response, ref);
    },

    close() {
      pooled?.agent.destroy();
      pooled = undefined;
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
  };
}

interface MetadataListBody {
  readonly kind?: unknown;
  readonly items?: readonly MetadataBody[];
  readonly metadata?: { readonly continue?: string; readonly remainingItemCount?: unknown };
}

interface StatusBody {
  readonly message?: unknown;
  readonly details?: { readonly retryAfterSeconds?: number };
  readonly metadata?: { readonly continue?: string };
}

function itemPath(ref: SecretRef): string {
  return `/api/v1/namespaces/${encodeURIComponent(ref.namespace)}/secrets/${encodeURIComponent(ref.name)}`;
}

function singleMetadata(response: RawResponse, ref: SecretRef): SecretMetadata {
  const body = parseJson(response.body) as MetadataBody | undefined;
  if (body?.kind !== 'PartialObjectMetadata') {
    throw new KubeApiError(
      'rejected',
      response.status,
      `secret ${ref.namespace}/${ref.name}: the API server did not answer with PartialObjectMetadata (got ${String(body?.kind)}).`,
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
  return {
    namespace:
      typeof metadata.namespace === 'string' ? metadata.namespace : (fallbackNamespace ?? ''),
    name: typeof metadata.name === 'string' ? metadata.name : '',
    resourceVersion: typeof metadata.resourceVersion === 'string' ? metadata.resourceVersion : '',
    annotations,
  };
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
  return new KubeApiError(
    'network',
    undefined,
    `${method} ${path.split('?')[0] ?? path}: ${detail}`,
  );
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
