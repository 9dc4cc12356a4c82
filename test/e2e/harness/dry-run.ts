// Server-side dry runs of rendered manifests (kustomize or Helm) against the e2e API server:
// the apply flavours, reading kubectl's -o json answer, the warnings that matter, pods made
// from pod templates, and the structural stand-ins of the cert-manager and Prometheus
// Operator CRDs (fixtures/crds) that the renders need.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KubeObject } from '../../helpers/manifests.js';
import type { Cluster, KubectlResult } from './cluster.js';

export const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));
const STAND_IN_LABEL = 'kms-secret-guard.io/test-fixture=dry-run-stand-in';
// kubectl's own bookkeeping when one object is handled by both apply flavours (the
// Namespace exists for real). Any other warning (deprecated API, Pod Security…) fails.
const BOOKKEEPING_WARNING = 'last-applied-configuration';
const WEBHOOK_KINDS = ['ValidatingWebhookConfiguration', 'MutatingWebhookConfiguration'];

export type ApplyMode = 'server-side apply' | 'client-side apply';
export const APPLY_ARGS: Record<ApplyMode, string[]> = {
  'server-side apply': ['apply', '--server-side', '--dry-run=server', '-o', 'json', '-f', '-'],
  'client-side apply': ['apply', '--dry-run=server', '-o', 'json', '-f', '-'],
};

export interface Webhook {
  name: string;
  failurePolicy?: string;
  clientConfig?: { caBundle?: string; url?: string; service?: Record<string, unknown> };
  [field: string]: unknown;
}
export type WebhookObject = KubeObject & { webhooks: Webhook[] };

/**
 * kubectl on the cluster with a discovery cache of its own: a stale one under ~/.kube from
 * an earlier cluster on the same port could miss the stand-in CRDs.
 */
export function dryRunKubectl(
  cluster: Cluster,
): (args: string[], input?: string) => Promise<KubectlResult> {
  return (args, input) =>
    cluster.kubectl(
      [`--cache-dir=${join(cluster.workDir, 'kubectl-cache')}`, ...args],
      input === undefined ? {} : { input },
    );
}

/** Creates the stand-in CRDs and waits until the API server serves them. */
export async function installStandInCrds(
  kubectl: (args: string[], input?: string) => Promise<KubectlResult>,
): Promise<void> {
  const crds = await kubectl(['apply', '--server-side', '-f', join(FIXTURES, 'crds')]);
  if (crds.code !== 0) throw new Error(`could not create the stand-in CRDs: ${crds.stderr}`);
  const established = await kubectl([
    'wait',
    '--for=condition=Established',
    'crd',
    '-l',
    STAND_IN_LABEL,
    '--timeout=30s',
  ]);
  if (established.code !== 0) {
    throw new Error(`the stand-in CRDs did not become Established: ${established.stderr}`);
  }
}

/** The objects kubectl printed with -o json: one object, or a List of them. */
export function printed(stdout: string): KubeObject[] {
  if (stdout.trim() === '') return [];
  const parsed = JSON.parse(stdout) as KubeObject & { items?: KubeObject[] };
  return parsed.kind === 'List' ? (parsed.items ?? []) : [parsed];
}

export const identity = (object: KubeObject): string =>
  `${object.apiVersion} ${object.kind} ${object.metadata.namespace ?? '(cluster)'}/${object.metadata.name}`;
export const identities = (objects: readonly KubeObject[]): string[] =>
  objects.map(identity).sort();

export const unexpectedWarnings = (stderr: string): string[] =>
  stderr
    .split('\n')
    .filter((line) => line.startsWith('Warning:') && !line.includes(BOOKKEEPING_WARNING));

export const webhookObjects = (objects: readonly KubeObject[]): WebhookObject[] =>
  objects.filter((object): object is WebhookObject => WEBHOOK_KINDS.includes(object.kind));

/** Everything but clientConfig, which the harness points at its local webhook. */
export const withoutClientConfig = (object: KubeObject & { webhooks: Webhook[] }): unknown => ({
  kind: object.kind,
  name: object.metadata.name,
  labels: object.metadata.labels,
  annotations: object.metadata.annotations,
  webhooks: object.webhooks.map((webhook) => {
    const rest = { ...webhook };
    delete rest.clientConfig;
    return rest;
  }),
});

/** A Pod with the template's metadata and spec, as the ReplicaSet or Job controller makes it. */
export function podFrom(owner: KubeObject, name: string): KubeObject {
  const spec = owner.spec as { template: { metadata?: Record<string, unknown>; spec: unknown } };
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      ...(spec.template.metadata ?? {}),
      name,
      namespace: owner.metadata.namespace ?? 'default',
    },
    spec: spec.template.spec,
  };
}

export const podList = (pods: KubeObject[]): string =>
  JSON.stringify({ apiVersion: 'v1', kind: 'List', items: pods });
