import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  KubeApiError,
  type ListScope,
  type SecretMetadata,
  type SecretMetadataClient,
  type SecretMetadataPage,
  type SecretRef,
} from '../../src/reencrypt/kube-client.js';

/**
 * A temp folder (usable as HOME) with a kubeconfig whose API server is 127.0.0.1:1, where
 * nothing listens: for `reencrypt` runs that must end before any Kubernetes request.
 */
export function unreachableKubeconfig(
  t: { teardown(fn: () => unknown): void },
  prefix: string,
): { dir: string; kubeconfigPath: string } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  const kubeconfigPath = join(dir, 'kubeconfig.json');
  writeFileSync(
    kubeconfigPath,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:1' } }],
      users: [{ name: 'u', user: { token: 't' } }],
      contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'c',
    }),
  );
  return { dir, kubeconfigPath };
}

interface StoredSecret {
  resourceVersion: number;
  annotations: Record<string, string>;
  /** As the API server's managedFields time: whole seconds. */
  lastWrittenAt: number;
}

/** Long after the rotation times the sweep tests use (+ the default settle time). */
export const LATE_WRITE_TIME = Date.parse('2026-11-28T10:00:00Z');

type Hook = (ref: SecretRef) => KubeApiError | undefined;

/**
 * An in-memory stand-in for the API server's Secret metadata, for the sweep's orchestration
 * logic only (the real wire is covered by the e2e tests against kube-apiserver).
 */
export class MemorySecrets implements SecretMetadataClient {
  readonly secrets = new Map<string, StoredSecret>();
  readonly patches: string[] = [];
  listCalls = 0;
  inFlight = 0;
  maxInFlight = 0;
  #version = 1;
  beforePatch: Hook | undefined;
  beforeList: ((call: number, token: string | undefined) => KubeApiError | undefined) | undefined;
  /** Lets a test act between the listing and the patch (e.g. delete or re-stamp a Secret). */
  onPatchStart: ((ref: SecretRef) => void) | undefined;
  /** The time each write records (the API server's clock). */
  writeTime: () => number = () => LATE_WRITE_TIME;
  /** Every patch's annotations, in order. */
  readonly patchBodies: Readonly<Record<string, string>>[] = [];

  add(namespace: string, name: string, annotations: Record<string, string> = {}): void {
    this.secrets.set(`${namespace}/${name}`, {
      resourceVersion: this.#version++,
      annotations,
      lastWrittenAt: this.#writtenNow(),
    });
  }

  write(namespace: string, name: string, annotations: Record<string, string>): void {
    const stored = this.secrets.get(`${namespace}/${name}`);
    if (stored === undefined) throw new Error('no such secret');
    stored.annotations = { ...stored.annotations, ...annotations };
    stored.resourceVersion = this.#version++;
    stored.lastWrittenAt = this.#writtenNow();
  }

  #writtenNow(): number {
    return Math.floor(this.writeTime() / 1000) * 1000;
  }

  async listPage(
    scope: ListScope,
    limit: number,
    continueToken?: string,
  ): Promise<SecretMetadataPage> {
    this.listCalls += 1;
    const failure = this.beforeList?.(this.listCalls, continueToken);
    if (failure !== undefined) throw failure;
    await Promise.resolve();
    const keys = [...this.secrets.keys()]
      .filter((key) => scope.namespace === undefined || key.startsWith(`${scope.namespace}/`))
      .sort();
    const after = continueToken ?? '';
    const remaining = keys.filter((key) => key > after);
    const pageKeys = remaining.slice(0, limit);
    const last = pageKeys.at(-1);
    const more = remaining.length > pageKeys.length;
    return {
      items: pageKeys.map((key) => this.#metadata(key)),
      continueToken: more ? last : undefined,
      remainingItemCount: more ? remaining.length - pageKeys.length : undefined,
    };
  }

  async get(ref: SecretRef): Promise<SecretMetadata | undefined> {
    await Promise.resolve();
    const key = `${ref.namespace}/${ref.name}`;
    return this.secrets.has(key) ? this.#metadata(key) : undefined;
  }

  async patchAnnotations(
    ref: SecretRef,
    resourceVersion: string,
    annotations: Readonly<Record<string, string>>,
  ): Promise<SecretMetadata> {
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      this.onPatchStart?.(ref);
      await new Promise((resolve) => setImmediate(resolve));
      const failure = this.beforePatch?.(ref);
      if (failure !== undefined) throw failure;
      const key = `${ref.namespace}/${ref.name}`;
      const stored = this.secrets.get(key);
      if (stored === undefined)
        throw new KubeApiError('notFound', 404, `secrets "${ref.name}" not found`);
      if (String(stored.resourceVersion) !== resourceVersion) {
        throw new KubeApiError('conflict', 409, 'the object has been modified');
      }
      this.patches.push(key);
      this.patchBodies.push({ ...annotations });
      stored.annotations = { ...stored.annotations, ...annotations };
      stored.resourceVersion = this.#version++;
      stored.lastWrittenAt = this.#writtenNow();
      return this.#metadata(key);
    } finally {
      this.inFlight -= 1;
    }
  }

  close(): void {
    // nothing to release
  }

  #metadata(key: string): SecretMetadata {
    const stored = this.secrets.get(key);
    if (stored === undefined) throw new Error(`no ${key}`);
    const [namespace = '', name = ''] = key.split('/');
    return {
      namespace,
      name,
      resourceVersion: String(stored.resourceVersion),
      annotations: { ...stored.annotations },
      lastWrittenAt: stored.lastWrittenAt,
    };
  }
}

/** Creates Secrets fast: concurrent POSTs over a few keep-alive connections. */
export async function createSecrets(
  kubeConfig: import('@kubernetes/client-node').KubeConfig,
  secrets: readonly { namespace: string; name: string; annotations: Record<string, string> }[],
  concurrency = 16,
  /** Called with each create's latency in ms (the benchmark's percentiles). */
  onCreated?: (elapsedMs: number) => void,
): Promise<void> {
  const https = await import('node:https');
  const server = new URL(kubeConfig.getCurrentCluster()?.server ?? '');
  const tls: import('node:https').RequestOptions = {};
  await kubeConfig.applyToHTTPSOptions(tls);
  const agent = new https.Agent({
    keepAlive: true,
    maxSockets: concurrency,
    ...(tls.ca !== undefined && { ca: tls.ca }),
    ...(tls.cert !== undefined && { cert: tls.cert }),
    ...(tls.key !== undefined && { key: tls.key }),
  });
  const post = (secret: (typeof secrets)[number]): Promise<void> =>
    new Promise((resolve, reject) => {
      const started = performance.now();
      const body = JSON.stringify({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {
          name: secret.name,
          namespace: secret.namespace,
          annotations: secret.annotations,
        },
        type: 'Opaque',
        // A recognisable value so a test can prove it never shows up in a reencrypt response.
        data: { value: Buffer.from(`e2e-secret-value-${secret.name}`).toString('base64') },
      });
      const request = https.request(
        {
          hostname: server.hostname,
          port: server.port,
          path: `/api/v1/namespaces/${secret.namespace}/secrets`,
          method: 'POST',
          agent,
          headers: {
            'Content-Type': 'application/json',
            Accept: 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1',
          },
        },
        (response) => {
          response.resume();
          response.on('end', () => {
            if (response.statusCode === 201) {
              onCreated?.(performance.now() - started);
              resolve();
            } else
              reject(
                new Error(`create ${secret.namespace}/${secret.name}: HTTP ${response.statusCode}`),
              );
          });
        },
      );
      request.on('error', reject);
      request.end(body);
    });
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < secrets.length) {
      const secret = secrets[next];
      next += 1;
      if (secret !== undefined) await post(secret);
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    agent.destroy();
  }
}

/** One audit.k8s.io/v1 Event, the fields the tests read. */
export interface AuditEvent {
  verb: string;
  userAgent?: string;
  user?: { username?: string };
  requestURI: string;
  objectRef?: { resource?: string; namespace?: string; name?: string };
  responseStatus?: { code?: number };
  requestObject?: unknown;
  responseObject?: unknown;
}

export async function readAuditLog(path: string): Promise<AuditEvent[]> {
  const { readFile } = await import('node:fs/promises');
  const text = await readFile(path, 'utf8');
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as AuditEvent);
}

/** True when a JSON value has a `data` or `stringData` field anywhere (a Secret's payload). */
export function carriesSecretData(value: unknown): boolean {
  if (Array.isArray(value)) return value.some(carriesSecretData);
  if (typeof value !== 'object' || value === null) return false;
  return Object.entries(value).some(
    ([key, inner]) => key === 'data' || key === 'stringData' || carriesSecretData(inner),
  );
}
