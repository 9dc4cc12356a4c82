// Renders charts/kms-secret-guard with the real Helm (scripts/helm.sh) and gives the
// objects in the shape of test/helpers/manifests.ts, so chart and kustomize renders
// compare directly. Shared by the chart's integration and end-to-end tests.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { GUARD_NAMESPACE, REPO_ROOT, type KubeObject } from './manifests.js';
import { runTool } from './tools.js';

export const CHART_DIR = join(REPO_ROOT, 'charts', 'kms-secret-guard');
/** The release name that gives the kustomize base's object names. */
export const RELEASE = 'kms-secret-guard';

/** The documented value sets, charts/kms-secret-guard/ci/<name>-values.yaml. */
export const CI_VALUE_SETS: readonly string[] = readdirSync(join(CHART_DIR, 'ci'))
  .filter((file) => file.endsWith('-values.yaml'))
  .map((file) => file.slice(0, -'-values.yaml'.length))
  .sort();

export function ciValuesFile(name: string): string {
  return join(CHART_DIR, 'ci', `${name}-values.yaml`);
}

export interface ChartOptions {
  /** A ci value set name (see CI_VALUE_SETS). */
  readonly valueSet?: string;
  /** --set arguments, e.g. ['webhooks.failurePolicy=Fail']. */
  readonly set?: readonly string[];
  /** --api-versions, e.g. ['monitoring.coreos.com/v1/ServiceMonitor']. */
  readonly apiVersions?: readonly string[];
  readonly release?: string;
  readonly namespace?: string;
}

export function templateArgs(options: ChartOptions = {}): string[] {
  return [
    'template',
    options.release ?? RELEASE,
    CHART_DIR,
    '--namespace',
    options.namespace ?? GUARD_NAMESPACE,
    ...(options.valueSet === undefined ? [] : ['--values', ciValuesFile(options.valueSet)]),
    ...(options.set ?? []).flatMap((value) => ['--set', value]),
    ...(options.apiVersions ?? []).flatMap((version) => ['--api-versions', version]),
  ];
}

export interface ChartRender {
  /** helm template's output, exactly what a person pipes into kubectl apply. */
  readonly yaml: string;
  readonly objects: KubeObject[];
}

export function parseObjects(yaml: string): KubeObject[] {
  return parseAllDocuments(yaml)
    .map((document) => document.toJS() as KubeObject | null)
    .filter((object): object is KubeObject => object !== null);
}

/** helm template; throws with Helm's message when it fails. */
export async function renderChart(options: ChartOptions = {}): Promise<ChartRender> {
  const result = await runTool('helm', templateArgs(options));
  if (result.code !== 0) {
    throw new Error(`helm ${templateArgs(options).join(' ')} failed: ${result.stderr}`);
  }
  return { yaml: result.stdout, objects: parseObjects(result.stdout) };
}

/** True for objects Helm runs as hooks rather than installs (the pre-delete hook). */
export function isHook(object: KubeObject): boolean {
  return object.metadata.annotations?.['helm.sh/hook'] !== undefined;
}
