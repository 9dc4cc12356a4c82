/**
 * A steady stream of Secret writes through the real kubectl, and what the API server says
 * about its KMS v2 provider (/readyz, the key-id-hash metrics): the measuring tools of the
 * scenarios that disable, re-enable or switch the key.
 */
import type { Cluster, KubectlResult } from './cluster.js';
import { sleep } from '../../helpers/eventually.js';

export interface WriteResult {
  readonly name: string;
  /** Date.now() when kubectl returned. */
  readonly at: number;
  readonly ok: boolean;
  /** kubectl's stderr (trimmed) when the write failed. */
  readonly error: string;
}

export interface SecretWriter {
  readonly results: readonly WriteResult[];
  /** Stops after the write in flight and resolves once the loop has ended. */
  stop(): Promise<void>;
}

/**
 * Creates `<prefix>-0000`, `<prefix>-0001`, … in `namespace`, one kubectl call at a time with
 * `pauseMs` between calls, at most `maxWrites` of them.
 */
export function startWriter(
  cluster: Cluster,
  namespace: string,
  prefix: string,
  { pauseMs = 1_000, maxWrites = 400 }: { pauseMs?: number; maxWrites?: number } = {},
): SecretWriter {
  const results: WriteResult[] = [];
  const state = { running: true };
  const loop = (async () => {
    for (let index = 0; state.running && index < maxWrites; index += 1) {
      const name = `${prefix}-${String(index).padStart(4, '0')}`;
      const created = await createSecret(cluster, namespace, name, writtenValue(name));
      results.push({
        name,
        at: Date.now(),
        ok: created.code === 0,
        error: created.code === 0 ? '' : created.stderr.trim(),
      });
      await sleep(pauseMs);
    }
  })();
  return {
    results,
    async stop() {
      state.running = false;
      await loop;
    },
  };
}

/** `kubectl create secret generic <name> --from-literal=value=<value>` in `namespace`. */
export function createSecret(
  cluster: Cluster,
  namespace: string,
  name: string,
  value: string,
): Promise<KubectlResult> {
  return cluster.kubectl([
    'create',
    'secret',
    'generic',
    name,
    '-n',
    namespace,
    `--from-literal=value=${value}`,
  ]);
}

/** The value startWriter stores in Secret `name` (harmless, recognisable). */
export function writtenValue(name: string): string {
  return `e2e-value-${name}`;
}

/** The value of key `value` of a Secret, read through kubectl (undefined if it cannot be read). */
export async function readValue(
  cluster: Cluster,
  namespace: string,
  name: string,
): Promise<string | undefined> {
  const read = await cluster.kubectl([
    'get',
    'secret',
    name,
    '-n',
    namespace,
    '-o',
    'jsonpath={.data.value}',
  ]);
  return read.code === 0 ? Buffer.from(read.stdout.trim(), 'base64').toString('utf8') : undefined;
}

/** kube-apiserver's `/readyz?verbose` text and whether it answered 200. */
export async function readyz(cluster: Cluster): Promise<{ ok: boolean; text: string }> {
  const answer = await cluster.kubectl(['get', '--raw', '/readyz?verbose']);
  return { ok: answer.code === 0, text: `${answer.stdout}\n${answer.stderr}` };
}

/**
 * When kube-apiserver last had a Status answer with a valid key_id from `provider` (seconds
 * since the epoch, from `apiserver_envelope_encryption_key_id_hash_status_last_timestamp_seconds`),
 * and the key_id hash of that answer. Undefined before the first one.
 */
export async function lastStatusAnswer(
  cluster: Cluster,
  provider: string,
): Promise<{ seconds: number; keyIdHash: string } | undefined> {
  const metrics = await cluster.kubectl(['get', '--raw', '/metrics']);
  if (metrics.code !== 0) throw new Error(`kubectl get --raw /metrics: ${metrics.stderr}`);
  let newest: { seconds: number; keyIdHash: string } | undefined;
  for (const line of metrics.stdout.split('\n')) {
    if (
      !line.startsWith('apiserver_envelope_encryption_key_id_hash_status_last_timestamp_seconds{')
    )
      continue;
    if (!line.includes(`provider_name="${provider}"`)) continue;
    const seconds = Number(line.split(' ').pop());
    const keyIdHash = /key_id_hash="([^"]+)"/.exec(line)?.[1] ?? '';
    if (newest === undefined || seconds > newest.seconds) newest = { seconds, keyIdHash };
  }
  return newest;
}
