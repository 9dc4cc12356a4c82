import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { isIPv6 } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { ConfigError } from '../config/errors.js';

/** Where a pod's service account credentials live (overridable for tests). */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface KubeconfigSource {
  /** `--kubeconfig`: one file. */
  readonly kubeconfigPath?: string | undefined;
  /** `--context`: overrides the file's current-context. */
  readonly context?: string | undefined;
  /** The process environment as the CLI sees it (KUBECONFIG, HOME, KUBERNETES_SERVICE_*). */
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly serviceAccountDir?: string;
}

/** Describes which source was used, for the run's first line (no credentials in it). */
export interface ResolvedKubeconfig {
  readonly kubeConfig: KubeConfig;
  readonly source: string;
  readonly server: string;
}

/**
 * Resolves the cluster connection the way kubectl does: --kubeconfig, else $KUBECONFIG
 * (a path list, merged; the first file's current-context wins), else ~/.kube/config, else the
 * pod's service account (in-cluster). Built from the given env, not process.env.
 */
export function resolveKubeconfig(source: KubeconfigSource): ResolvedKubeconfig {
  const kubeConfig = new KubeConfig();
  const description = loadConnection(kubeConfig, source);
  if (source.context !== undefined && source.context !== '') {
    useContext(kubeConfig, source.context, description);
  }
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster?.server) {
    throw new ConfigError(
      `${description} has no current context with a cluster server: pass --context or run \`kubectl config use-context\`.`,
    );
  }
  return { kubeConfig, source: description, server: cluster.server };
}

/** Loads the first connection source that exists (kubectl's order); returns its description. */
function loadConnection(kubeConfig: KubeConfig, source: KubeconfigSource): string {
  const listed = (source.env.KUBECONFIG ?? '').split(delimiter).filter((file) => file !== '');
  const home = source.env.HOME ?? source.env.USERPROFILE;
  const defaultFile = home !== undefined && home !== '' ? join(home, '.kube', 'config') : undefined;
  if (source.kubeconfigPath !== undefined && source.kubeconfigPath !== '') {
    loadFile(kubeConfig, source.kubeconfigPath, '--kubeconfig');
    return source.kubeconfigPath;
  }
  if (listed.length > 0) {
    loadList(kubeConfig, listed as [string, ...string[]]);
    return `KUBECONFIG=${listed.join(delimiter)}`;
  }
  if (defaultFile !== undefined && existsSync(defaultFile)) {
    loadFile(kubeConfig, defaultFile, 'the default kubeconfig');
    return defaultFile;
  }
  if (
    source.env.KUBERNETES_SERVICE_HOST !== undefined &&
    source.env.KUBERNETES_SERVICE_PORT !== undefined
  ) {
    loadInCluster(kubeConfig, source);
    return 'in-cluster service account';
  }
  throw new ConfigError(
    'no Kubernetes connection found: pass --kubeconfig, set KUBECONFIG, create ~/.kube/config, or run inside a pod with a service account.',
  );
}

/** $KUBECONFIG: the first file must exist; later ones are merged, first wins. */
function loadList(kubeConfig: KubeConfig, [first, ...rest]: [string, ...string[]]): void {
  loadFile(kubeConfig, first, 'KUBECONFIG');
  for (const file of rest) {
    if (!existsSync(file)) continue; // kubectl ignores missing entries of KUBECONFIG
    const next = new KubeConfig();
    loadFile(next, file, 'KUBECONFIG');
    mergeFirstWins(kubeConfig, next);
  }
}

function useContext(kubeConfig: KubeConfig, context: string, description: string): void {
  if (kubeConfig.getContextObject(context) === null) {
    const known = kubeConfig
      .getContexts()
      .map((entry) => entry.name)
      .join(', ');
    throw new ConfigError(
      `--context ${context} is not in ${description} (contexts: ${known === '' ? 'none' : known}): pick one of them.`,
    );
  }
  kubeConfig.setCurrentContext(context);
}

/** kubectl's merge rule: the first file that names a cluster, user or context wins. */
function mergeFirstWins(into: KubeConfig, from: KubeConfig): void {
  const absent = <T extends { name: string }>(known: readonly T[], more: readonly T[]): T[] =>
    more.filter((entry) => !known.some((existing) => existing.name === entry.name));
  into.clusters = [...into.clusters, ...absent(into.clusters, from.clusters)];
  into.users = [...into.users, ...absent(into.users, from.users)];
  into.contexts = [...into.contexts, ...absent(into.contexts, from.contexts)];
  if (!into.currentContext) into.currentContext = from.currentContext;
}

function loadFile(kubeConfig: KubeConfig, file: string, origin: string): void {
  if (!existsSync(file)) {
    throw new ConfigError(`kubeconfig file ${file} (from ${origin}) does not exist: fix the path.`);
  }
  try {
    kubeConfig.loadFromFile(file);
  } catch (error) {
    throw new ConfigError(
      `kubeconfig file ${file} (from ${origin}) cannot be read: ${error instanceof Error ? error.message : String(error)}.`,
    );
  }
}

function loadInCluster(kubeConfig: KubeConfig, source: KubeconfigSource): void {
  const dir = source.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
  const tokenFile = join(dir, 'token');
  if (!existsSync(tokenFile)) {
    throw new ConfigError(
      `running in a pod but ${tokenFile} is missing: mount a service account token (automountServiceAccountToken: true) or pass --kubeconfig.`,
    );
  }
  const host = source.env.KUBERNETES_SERVICE_HOST ?? '';
  const port = source.env.KUBERNETES_SERVICE_PORT ?? '443';
  const server = `https://${isIPv6(host) ? `[${host}]` : host}:${port}`;
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'in-cluster', server, caFile: join(dir, 'ca.crt'), skipTLSVerify: false }],
    // The tokenFile provider re-reads the projected token, which the kubelet rotates.
    users: [{ name: 'in-cluster', authProvider: { name: 'tokenFile', config: { tokenFile } } }],
    contexts: [{ name: 'in-cluster', cluster: 'in-cluster', user: 'in-cluster' }],
    currentContext: 'in-cluster',
  });
}
