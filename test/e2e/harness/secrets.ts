import type { Cluster, KubectlResult } from './cluster.js';
import { waitFor } from '../../helpers/eventually.js';

export const KEY_ID_ANNOTATION = 'kms-secret-guard.io/key-id';
export const KEY_VERSION_ANNOTATION = 'kms-secret-guard.io/key-version';
export const ROTATION_TIME_ANNOTATION = 'encryption-key-rotation-time';

/** The stored Secret's annotations (kubectl get), without its data. */
export async function secretAnnotations(
  cluster: Cluster,
  namespace: string,
  name: string,
): Promise<Record<string, string>> {
  const result = await cluster.kubectl([
    'get',
    'secret',
    name,
    '-n',
    namespace,
    '-o',
    'jsonpath={.metadata.annotations}',
  ]);
  if (result.code !== 0) throw new Error(`kubectl get secret ${name}: ${result.stderr}`);
  return result.stdout.trim() === '' ? {} : (JSON.parse(result.stdout) as Record<string, string>);
}

/** What follows `denied the request:` in kubectl's error output, if the webhook denied. */
export function denialMessage(result: KubectlResult): string | undefined {
  return /denied the request: (.+)$/m.exec(result.stderr)?.[1]?.trim();
}

/** A Secret manifest (for kubectl apply/create -f -) with a harmless test value. */
export function secretManifest(
  namespace: string,
  name: string,
  value = 'e2e',
  labels: Record<string, string> = {},
): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace, labels },
    type: 'Opaque',
    stringData: { value },
  });
}

/** Server-side dry-run create: the webhook's answer without storing anything. */
export function dryRunCreate(cluster: Cluster, namespace: string): Promise<KubectlResult> {
  return cluster.kubectl([
    'create',
    'secret',
    'generic',
    'dry-run-probe',
    '-n',
    namespace,
    '--from-literal=value=e2e',
    '--dry-run=server',
    '-o',
    'json',
  ]);
}

/**
 * Waits until the webhook's answer changes as expected (it learns key changes on its next
 * refresh); the bound is generous, the refresh interval in these tests is 1s. Returns the
 * matching kubectl result and how long it took.
 */
export async function waitForAnswer(
  cluster: Cluster,
  namespace: string,
  what: string,
  matches: (result: KubectlResult) => boolean,
  timeoutMs = 30_000,
): Promise<{ result: KubectlResult; afterMs: number }> {
  const started = Date.now();
  const result = await waitFor(
    what,
    async () => {
      const answer = await dryRunCreate(cluster, namespace);
      return matches(answer) ? answer : undefined;
    },
    { timeoutMs, intervalMs: 200 },
  );
  return { result, afterMs: Date.now() - started };
}

export function annotationsInDryRun(result: KubectlResult): Record<string, string> {
  if (result.code !== 0) return {};
  const secret = JSON.parse(result.stdout) as {
    metadata?: { annotations?: Record<string, string> };
  };
  return secret.metadata?.annotations ?? {};
}
