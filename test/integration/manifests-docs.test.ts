import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { SETTINGS } from '../../src/config/settings.js';
import { documentationFiles, readDocumentation } from '../helpers/docs.js';
import { MANIFESTS, REPO_ROOT } from '../helpers/manifests.js';

// The README and the pages under docs/ must agree with the code and the manifests.
const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
const docs = readDocumentation();

interface PolicyStatement {
  Effect: string;
  Action: string | string[];
  Resource?: string[];
  Principal?: unknown;
}
// Every JSON block that holds a "Statement" is a RAM policy (other JSON blocks are examples).
const policies = [...docs.matchAll(/```json\n([\s\S]*?)```/g)]
  .map((match) => match[1] ?? '')
  .filter((block) => block.includes('"Statement"'))
  .map((block) => JSON.parse(block) as { Version: string; Statement: PolicyStatement[] });

t.test('README starts with the install and test commands', async (t) => {
  t.match(readme, /^# kms-secret-guard\n\n```sh\nnpm install\nnpm test\n```/, 'first lines kept');
  t.match(docs, /\n## Node\.js versions\n/, 'the Node.js versions section is kept');
  const lines = readme.trimEnd().split('\n').length;
  t.ok(lines <= 200, `the README stays a front door of at most 200 lines (${lines})`);
});

t.test('the configuration reference lists every setting with its env and default', async (t) => {
  const lines = docs.split('\n');
  for (const spec of Object.values(SETTINGS)) {
    // Other commands (dev, kms-emulator, kms-plugin) may list the same flag with their own
    // defaults: one of the rows naming the environment variable is the reference row.
    const rows = lines.filter(
      (line) => line.startsWith(`| \`${spec.flag}\``) && line.includes(`\`${spec.env}\``),
    );
    t.ok(rows.length > 0, `a row for ${spec.flag} names ${spec.env}`);
    if ('default' in spec) {
      t.ok(
        rows.some((row) => row.includes(`\`${spec.default}\``)),
        `${spec.flag} row shows the default ${spec.default}`,
      );
    }
  }
});

t.test('RAM policies: least privilege for the guard, deny for the encryption switch', async (t) => {
  const statements = policies.flatMap((policy) => policy.Statement);
  const actions = (statement: PolicyStatement): string[] =>
    Array.isArray(statement.Action) ? statement.Action : [statement.Action];
  const guard = statements.find((statement) => actions(statement).includes('kms:DescribeKey'));
  t.same(guard && actions(guard), ['kms:DescribeKey'], 'the guard policy allows DescribeKey only');
  t.equal(guard?.Effect, 'Allow', 'as an Allow');
  t.match(guard?.Resource?.[0] ?? '', /^acs:kms:[^:]+:[^:]+:key\//, 'scoped to one key ARN');
  const deny = statements.find((statement) =>
    actions(statement).includes('cs:UpdateKMSEncryption'),
  );
  t.equal(deny?.Effect, 'Deny', 'cs:UpdateKMSEncryption is denied');
  const trust = statements.find((statement) => actions(statement).includes('sts:AssumeRole'));
  t.match(
    JSON.stringify(trust),
    /system:serviceaccount:kms-secret-guard:kms-secret-guard"/,
    'the RRSA trust policy names the webhook ServiceAccount',
  );
  t.match(
    JSON.stringify(trust),
    /system:serviceaccount:kms-secret-guard:kms-secret-guard-reencrypt"/,
    'and the reencrypt ServiceAccount',
  );
  for (const policy of policies) t.equal(policy.Version, '1', 'RAM policy Version "1"');
});

t.test('RRSA names in the docs match the manifests', async (t) => {
  const namespace = parse(readFileSync(join(MANIFESTS, 'base/namespace.yaml'), 'utf8')) as {
    metadata: { labels: Record<string, string> };
  };
  t.equal(
    namespace.metadata.labels['pod-identity.alibabacloud.com/injection'],
    'on',
    'namespace label as documented',
  );
  t.match(docs, "pod-identity.alibabacloud.com/injection: 'on'", 'the docs name the label');
  t.match(docs, 'pod-identity.alibabacloud.com/role-name', 'the docs name the annotation');
});

t.test('every manifests/ folder the docs apply exists', async (t) => {
  const folders = new Set(
    [...docs.matchAll(/kubectl (?:apply|delete|diff) -k (manifests\/[\w./-]+)/g)].map(
      (match) => match[1] ?? '',
    ),
  );
  t.ok(folders.size >= 4, 'the docs apply several folders');
  for (const folder of folders) {
    t.ok(existsSync(join(REPO_ROOT, folder, 'kustomization.yaml')), `${folder} is a kustomization`);
  }
});

t.test('the docs explain the failurePolicy and name every alert', async (t) => {
  t.match(docs, /### Why `failurePolicy: Ignore` is the default/, 'failurePolicy section');
  const rules = parse(readFileSync(join(MANIFESTS, 'monitoring/prometheusrule.yaml'), 'utf8')) as {
    spec: { groups: { rules: { alert: string }[] }[] };
  };
  const alerts = rules.spec.groups.flatMap((group) => group.rules.map((rule) => rule.alert));
  t.ok(alerts.length >= 5, 'at least five alerts');
  for (const alert of alerts) t.match(docs, alert, `the docs mention ${alert}`);
});

t.test('every relative link in the docs reaches a file and heading that exist', async (t) => {
  // GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens.
  const anchors = (markdown: string): Set<string> =>
    new Set(
      [...markdown.matchAll(/^#{1,6} (.+)$/gm)].map((match) =>
        (match[1] ?? '')
          .toLowerCase()
          .replace(/[^\p{L}\p{N} _-]/gu, '')
          .replace(/ /g, '-'),
      ),
    );
  let links = 0;
  for (const page of documentationFiles()) {
    const text = readFileSync(join(REPO_ROOT, page), 'utf8').replace(/```[\s\S]*?```/g, '');
    for (const match of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const [path = '', anchor] = (match[1] ?? '').split('#');
      if (/^[a-z]+:/.test(path)) continue;
      links += 1;
      const target = path === '' ? page : join(dirname(page), path);
      t.ok(existsSync(join(REPO_ROOT, target)), `${page}: ${match[1]} exists`);
      if (anchor !== undefined && target.endsWith('.md') && existsSync(join(REPO_ROOT, target))) {
        const headings = anchors(readFileSync(join(REPO_ROOT, target), 'utf8'));
        t.ok(headings.has(anchor), `${page}: ${match[1]} names a heading of ${target}`);
      }
    }
  }
  t.ok(links >= 20, 'the pages link to each other');
});
