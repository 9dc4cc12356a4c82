// Renders the kustomize folders under manifests/ with the real `kubectl kustomize` and
// gives typed access to the objects. Shared by the manifest tests and the end-to-end
// suite (which applies the same renders with server-side dry-run).
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { generateCertificates, serviceDnsNames } from '../../src/certs/generate.js';
import { certificateFiles, writeCertificateFiles } from '../../src/certs/files.js';
import type { GeneratedCertificates } from '../../src/certs/generate.js';

const run = promisify(execFile);

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const MANIFESTS = join(REPO_ROOT, 'manifests');
export const GUARD_NAMESPACE = 'kms-secret-guard';
export const GUARD_SERVICE = 'kms-secret-guard';

/** Every kustomization a person may apply, relative to manifests/. */
export const KUSTOMIZATIONS = [
  'base',
  'overlays/cert-manager',
  'overlays/self-managed-certs',
  'overlays/strict',
  'reencrypt',
  'reencrypt-dry-run',
  'monitoring',
  'examples/ack-pro',
] as const;
export type KustomizationPath = (typeof KUSTOMIZATIONS)[number];

export interface KubeObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: {
    readonly name: string;
    readonly namespace?: string;
    readonly labels?: Record<string, string>;
    readonly annotations?: Record<string, string>;
  };
  readonly [field: string]: unknown;
}

/** Runs `kubectl kustomize DIR` and parses the multi-document YAML. */
export async function renderKustomization(dir: string): Promise<KubeObject[]> {
  const { stdout } = await run('kubectl', ['kustomize', dir], {
    timeout: 60_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  return parseAllDocuments(stdout)
    .map((document) => document.toJS() as KubeObject | null)
    .filter((object): object is KubeObject => object !== null);
}

/**
 * A copy of manifests/ in a temp folder with freshly generated certificates in
 * overlays/self-managed-certs/certs, so every kustomization renders. Call cleanup() after.
 */
export async function manifestsWithCertificates(): Promise<{
  readonly root: string;
  readonly certificates: GeneratedCertificates;
  cleanup(): void;
}> {
  const parent = mkdtempSync(join(tmpdir(), 'ksg-manifests-'));
  const root = join(parent, 'manifests');
  cpSync(MANIFESTS, root, { recursive: true });
  const certificates = await generateCertificates({
    dnsNames: serviceDnsNames(GUARD_SERVICE, GUARD_NAMESPACE),
  });
  await writeCertificateFiles(
    certificateFiles(join(root, 'overlays/self-managed-certs/certs')),
    certificates,
    { force: true },
  );
  return {
    root,
    certificates,
    cleanup: () => {
      rmSync(parent, { recursive: true, force: true });
    },
  };
}

/** The one object of this kind (and name, if given); throws naming what is missing. */
export function only(objects: readonly KubeObject[], kind: string, name?: string): KubeObject {
  const matches = objects.filter(
    (object) => object.kind === kind && (name === undefined || object.metadata.name === name),
  );
  if (matches.length !== 1) {
    throw new Error(
      `expected exactly one ${kind}${name ? ` ${name}` : ''}, found ${matches.length}`,
    );
  }
  return matches[0]!;
}

export function ofKind(objects: readonly KubeObject[], kind: string): KubeObject[] {
  return objects.filter((object) => object.kind === kind);
}
