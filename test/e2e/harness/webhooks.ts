import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { REPO_ROOT } from './paths.js';

export type WebhookVariant = 'shipped' | 'strict';

const WEBHOOK_KINDS = new Set(['ValidatingWebhookConfiguration', 'MutatingWebhookConfiguration']);

/** One (Validating|Mutating)WebhookConfiguration as a plain object. */
export type WebhookConfiguration = Record<string, unknown> & {
  kind: string;
  webhooks: Record<string, unknown>[];
};

/**
 * The webhook configurations exactly as shipped in manifests/: rendered with kustomize
 * (kubectl kustomize) when the folder has a kustomization, else read from the two files
 * in manifests/base. `strict` is manifests/overlays/strict. Tells how it found them.
 */
export function shippedWebhookConfigurations(variant: WebhookVariant): {
  configurations: WebhookConfiguration[];
  source: string;
} {
  const dir = join(REPO_ROOT, 'manifests', variant === 'strict' ? 'overlays/strict' : 'base');
  if (existsSync(join(dir, 'kustomization.yaml'))) {
    const rendered = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
    if (rendered.status !== 0) {
      throw new Error(`kubectl kustomize ${dir} failed: ${rendered.stderr}`);
    }
    const configurations = webhookDocuments(rendered.stdout);
    if (configurations.length === 2) {
      return { configurations, source: `kubectl kustomize ${dir}` };
    }
    throw new Error(
      `kubectl kustomize ${dir} rendered ${configurations.length} webhook configurations; expected 2`,
    );
  }
  if (variant === 'strict') {
    throw new Error(`${dir}/kustomization.yaml is missing: the strict overlay is not shipped yet`);
  }
  const configurations = [
    'validatingwebhookconfiguration.yaml',
    'mutatingwebhookconfiguration.yaml',
  ].flatMap((name) => webhookDocuments(readFileSync(join(dir, name), 'utf8')));
  return { configurations, source: `${dir}/*webhookconfiguration.yaml` };
}

/**
 * manifests/base plus one kustomize component (e.g. `single-webhook`: one mutating webhook
 * on /admit), rendered as a user's kustomization would be (kubectl kustomize).
 */
export function componentWebhookConfigurations(
  component: string,
  expected: number,
): { configurations: WebhookConfiguration[]; source: string } {
  const dir = mkdtempSync(join(tmpdir(), 'ksg-kustomize-'));
  try {
    const manifests = relative(dir, join(REPO_ROOT, 'manifests'));
    writeFileSync(
      join(dir, 'kustomization.yaml'),
      `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [${manifests}/base]\ncomponents: [${manifests}/components/${component}]\n`,
    );
    const rendered = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
    if (rendered.status !== 0) throw new Error(`kubectl kustomize failed: ${rendered.stderr}`);
    const configurations = webhookDocuments(rendered.stdout);
    if (configurations.length !== expected) {
      throw new Error(
        `manifests/base + components/${component} rendered ${configurations.length} webhook configurations; expected ${expected}`,
      );
    }
    return { configurations, source: `manifests/base + components/${component}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function webhookDocuments(text: string): WebhookConfiguration[] {
  return parseAllDocuments(text)
    .map((document) => document.toJS() as unknown)
    .filter(
      (value): value is WebhookConfiguration =>
        typeof value === 'object' &&
        value !== null &&
        WEBHOOK_KINDS.has(String((value as { kind?: unknown }).kind)) &&
        Array.isArray((value as { webhooks?: unknown }).webhooks),
    );
}

/**
 * Keeps every field of the shipped configuration and only points clientConfig at the local
 * webhook: `url` (same path as the shipped Service reference) plus the CA bundle.
 */
export function forLocalWebhook(
  configuration: WebhookConfiguration,
  baseUrl: string,
  caCert: string,
): WebhookConfiguration {
  return {
    ...configuration,
    webhooks: configuration.webhooks.map((webhook) => {
      const clientConfig = webhook.clientConfig as { service?: { path?: string } } | undefined;
      const path = clientConfig?.service?.path;
      if (path === undefined) {
        throw new Error(`webhook ${String(webhook.name)} has no clientConfig.service.path`);
      }
      return {
        ...webhook,
        clientConfig: {
          url: `${baseUrl}${path}`,
          caBundle: Buffer.from(caCert).toString('base64'),
        },
      };
    }),
  };
}
