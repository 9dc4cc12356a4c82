import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export interface ControlPlaneBinaries {
  readonly kubeApiserver: string;
  readonly etcd: string;
  readonly kubernetesVersion: string;
  readonly etcdVersion: string;
}

/** Reads the pinned versions that scripts/k8s-binaries.sh builds. */
export function pinnedVersions(): { kubernetes: string; etcd: string } {
  const text = readFileSync(join(REPO_ROOT, 'scripts', 'k8s-binaries', 'versions.env'), 'utf8');
  const read = (name: string): string => {
    const match = new RegExp(`^${name}=(\\S+)`, 'm').exec(text);
    if (match?.[1] === undefined) throw new Error(`versions.env does not set ${name}`);
    return match[1];
  };
  return { kubernetes: read('K8S_VERSION'), etcd: read('ETCD_VERSION') };
}

/**
 * Where scripts/k8s-binaries.sh put kube-apiserver and etcd (KSG_K8S_BIN_DIR overrides).
 * Throws a message saying how to build them when they are missing.
 */
export function controlPlaneBinaries(): ControlPlaneBinaries {
  const versions = pinnedVersions();
  const binDir =
    process.env.KSG_K8S_BIN_DIR ?? join(REPO_ROOT, '.cache', 'k8s', versions.kubernetes, 'bin');
  const kubeApiserver = join(binDir, 'kube-apiserver');
  const etcd = join(binDir, 'etcd');
  for (const file of [kubeApiserver, etcd]) {
    if (!existsSync(file)) {
      throw new Error(
        `${file} is missing: run scripts/k8s-binaries.sh (builds kube-apiserver ${versions.kubernetes} and etcd ${versions.etcd} with Go), or scripts/e2e.sh.`,
      );
    }
  }
  return {
    kubeApiserver,
    etcd,
    kubernetesVersion: versions.kubernetes,
    etcdVersion: versions.etcd,
  };
}

/** The compiled CLI (npm run build). */
export function cliPath(): string {
  const path = join(REPO_ROOT, 'dist', 'cli', 'main.js');
  if (!existsSync(path)) throw new Error(`${path} is missing: run npm run build first.`);
  return path;
}
