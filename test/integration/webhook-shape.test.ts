// The one-call webhook shape as shipped: manifests/components/single-webhook and the chart's
// webhooks.shape=single render one mutating webhook on /admit whose every other field is the
// split shape's mutating webhook, and no validating webhook.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { renderChart } from '../helpers/chart.js';
import {
  manifestsWithCertificates,
  ofKind,
  only,
  renderKustomization,
  type KubeObject,
} from '../helpers/manifests.js';

type Webhook = Record<string, unknown> & { name: string; clientConfig: Record<string, unknown> };
const webhooks = (object: KubeObject): Webhook[] =>
  (object as unknown as { webhooks: Webhook[] }).webhooks;

/**
 * A webhook without the fields the shapes differ in (name, path) and the caBundle (the chart
 * makes a new CA on every render).
 */
function comparable(webhook: Webhook): unknown {
  const copy = structuredClone(webhook) as Record<string, unknown> & {
    clientConfig: { caBundle?: unknown; service?: { path?: unknown } };
  };
  delete copy.name;
  delete copy.clientConfig.caBundle;
  delete copy.clientConfig.service?.path;
  return copy;
}

function checkSingle(t: Test, label: string, split: KubeObject[], single: KubeObject[]): void {
  t.equal(
    ofKind(single, 'ValidatingWebhookConfiguration').length,
    0,
    `${label}: no validating webhook`,
  );
  const [webhook, ...others] = webhooks(only(single, 'MutatingWebhookConfiguration'));
  t.equal(others.length, 0, `${label}: one mutating webhook`);
  t.equal(webhook?.name, 'admit.kms-secret-guard.io', `${label}: named admit.kms-secret-guard.io`);
  t.equal(
    (webhook?.clientConfig.service as { path?: string } | undefined)?.path,
    '/admit',
    `${label}: calls POST /admit`,
  );
  const [shipped] = webhooks(only(split, 'MutatingWebhookConfiguration'));
  t.same(
    comparable(webhook!),
    comparable(shipped!),
    `${label}: every other field as the split shape's mutating webhook`,
  );
  const others2 = (objects: KubeObject[]) =>
    objects
      .filter((o) => !o.kind.endsWith('WebhookConfiguration'))
      .map((o) => `${o.kind}/${o.metadata.name}`);
  t.same(others2(single), others2(split), `${label}: the same other objects`);
}

t.test('kustomize: components/single-webhook on top of an overlay (and strict)', async (t) => {
  const fixture = await manifestsWithCertificates();
  t.teardown(() => {
    fixture.cleanup();
  });
  const kustomization = (name: string, components: string[]): string => {
    const dir = join(fixture.root, name);
    mkdirSync(dir);
    writeFileSync(
      join(dir, 'kustomization.yaml'),
      `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [../overlays/self-managed-certs]\ncomponents: [${components.join(', ')}]\n`,
    );
    return dir;
  };
  const split = await renderKustomization(kustomization('split', ['../components/strict']));
  const single = await renderKustomization(
    kustomization('single', ['../components/strict', '../components/single-webhook']),
  );
  checkSingle(t, 'self-managed-certs + strict + single-webhook', split, single);
  const [webhook] = webhooks(only(single, 'MutatingWebhookConfiguration'));
  t.equal(webhook?.failurePolicy, 'Fail', 'strict still applies to the one webhook');
  t.ok(webhook?.clientConfig.caBundle, 'the caBundle is still filled in');
});

t.test('helm: webhooks.shape=single', async (t) => {
  const split = (await renderChart({ valueSet: 'default' })).objects;
  const single = (await renderChart({ valueSet: 'default', set: ['webhooks.shape=single'] }))
    .objects;
  checkSingle(t, 'chart', split, single);
  const explicit = (await renderChart({ valueSet: 'default', set: ['webhooks.shape=split'] }))
    .objects;
  t.same(
    ofKind(explicit, 'ValidatingWebhookConfiguration').map((o) => webhooks(o)[0]?.name),
    ['validate.kms-secret-guard.io'],
    'shape=split (the default) keeps the validating webhook',
  );
  await t.rejects(
    renderChart({ valueSet: 'default', set: ['webhooks.shape=combined'] }),
    /at '\/webhooks\/shape': value must be one of 'split', 'single'/,
    'an unknown shape is refused by the schema',
  );
});
