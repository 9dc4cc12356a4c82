// Property-based bad input over real HTTPS: mutated and random AdmissionReviews and raw bytes
// to /validate and /mutate. Never a 5xx, never a crash, every 200 passes the kube-apiserver's
// response checks and every patch applies to the request's object.
import t from 'tap';
import fc from 'fast-check';
import { Agent } from 'node:https';
import { createLogger } from '../../src/logging/logger.js';
import { startServer } from '../../src/server/serve.js';
import type { KeySnapshot } from '../../src/kms/types.js';
import {
  FIXTURE_NAMES,
  fakeSource,
  fixture,
  keyFacts,
  makeCertDir,
  serveSettings,
  unknownSnapshot,
  unusableSnapshot,
  usableSnapshot,
} from '../helpers/server.js';
import { kubeApiserverProblems, patchProblem, type Webhook } from '../helpers/reliability.js';
import { httpGet, httpsCall } from '../helpers/http.js';

/** Runs per property: enough to find shape bugs, small enough for CI (a few seconds). The soak suite raises it. */
const NUM_RUNS = Number(process.env.RELIABILITY_FUZZ_RUNS ?? '200');

const SNAPSHOTS: readonly KeySnapshot[] = [
  usableSnapshot(),
  usableSnapshot({ key: keyFacts({ deleteDate: new Date('2026-12-05T10:00:00Z') }) }),
  usableSnapshot({ key: keyFacts({ primaryKeyVersion: undefined, rotationTime: undefined }) }),
  unusableSnapshot('Disabled'),
  unusableSnapshot('PendingDeletion'),
  unusableSnapshot('NoPermission'),
  unknownSnapshot('NeverFetched'),
  unknownSnapshot('Stale'),
];

function deepNest(depth: number, leaf: unknown, asArray: boolean): unknown {
  let value = leaf;
  for (let level = 0; level < depth; level += 1) value = asArray ? [value] : { n: value };
  return value;
}

/** Values that have broken JSON handlers before: wrong types, nulls, huge and deep values. */
const oddValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 2, arbitrary: fc.constantFrom(null, '', 0, -1, 1.5, true, false, [], {}, '0') },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      'CREATE',
      'UPDATE',
      'DELETE',
      'CONNECT',
      'create',
      'PATCH',
      '',
      ' CREATE',
      'CREATE\u0000',
    ),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.integer({ min: 10_000, max: 400_000 }), fc.constantFrom('x', 'é', '\u{1F511}', '"'))
      .map(([length, char]) => char.repeat(length)),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.integer({ min: 100, max: 2_000 }), fc.boolean())
      .map(([depth, asArray]) => deepNest(depth, 'leaf', asArray)),
  },
  { weight: 1, arbitrary: fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 2 })) },
  { weight: 1, arbitrary: fc.array(fc.string(), { maxLength: 5 }) },
);

/** Field paths of an AdmissionReview worth mutating (the guard reads or echoes these). */
const PATHS: readonly (readonly string[])[] = [
  ['apiVersion'],
  ['kind'],
  ['request'],
  ['request', 'uid'],
  ['request', 'operation'],
  ['request', 'kind'],
  ['request', 'kind', 'kind'],
  ['request', 'kind', 'group'],
  ['request', 'resource'],
  ['request', 'resource', 'resource'],
  ['request', 'resource', 'group'],
  ['request', 'subResource'],
  ['request', 'name'],
  ['request', 'namespace'],
  ['request', 'dryRun'],
  ['request', 'userInfo'],
  ['request', 'userInfo', 'username'],
  ['request', 'object'],
  ['request', 'oldObject'],
  ['request', 'object', 'metadata'],
  ['request', 'object', 'metadata', 'name'],
  ['request', 'object', 'metadata', 'generateName'],
  ['request', 'object', 'metadata', 'annotations'],
  ['request', 'object', 'metadata', 'annotations', 'kms-secret-guard.io/key-id'],
  ['request', 'object', 'metadata', 'annotations', 'kms-secret-guard.io/key-version'],
  ['request', 'object', 'metadata', 'annotations', 'encryption-key-rotation-time'],
  ['request', 'object', 'data'],
  ['request', 'object', 'stringData'],
  ['request', 'options'],
];

type Mutation =
  { path: readonly string[]; remove: true } | { path: readonly string[]; value: unknown };

/** The metadata the mutating webhook diffs gets extra attention. */
const METADATA_PATHS = PATHS.filter((path) => path.includes('metadata'));

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ path: fc.constantFrom(...PATHS), value: oddValue }) },
  {
    weight: 2,
    arbitrary: fc.record({ path: fc.constantFrom(...METADATA_PATHS), value: oddValue }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ path: fc.constantFrom(...PATHS), remove: fc.constant(true as const) }),
  },
);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Applies a mutation where its parent exists and is an object (else leaves the review as is). */
function mutate(review: Record<string, unknown>, change: Mutation): void {
  let parent: unknown = review;
  for (const segment of change.path.slice(0, -1)) {
    if (!isRecord(parent)) return;
    parent = parent[segment];
  }
  const last = change.path.at(-1);
  if (!isRecord(parent) || last === undefined) return;
  if ('remove' in change) Reflect.deleteProperty(parent, last);
  // A copy: generated values (e.g. the constant {}) are shared between runs and mutations,
  // and writing into a shared one could build a cycle.
  else parent[last] = JSON.parse(JSON.stringify(change.value)) as unknown;
}

function requestOf(review: unknown): Record<string, unknown> | undefined {
  return isRecord(review) && isRecord(review.request) ? review.request : undefined;
}

t.test('generated bad input never breaks the webhook', async (t) => {
  const certs = await makeCertDir();
  t.teardown(() => certs.cleanup());
  const source = fakeSource();
  // One server per policy: enforce/allow (the default), enforce/deny and warn/deny.
  const servers = await Promise.all(
    (
      [
        { mode: 'enforce', onUnknown: 'allow' },
        { mode: 'enforce', onUnknown: 'deny' },
        { mode: 'warn', onUnknown: 'deny' },
      ] as const
    ).map((policy) =>
      startServer({
        settings: serveSettings(certs, policy),
        logger: createLogger('silent'),
        monitor: source,
        host: '127.0.0.1',
      }),
    ),
  );
  t.teardown(() => Promise.all(servers.map((running) => running.close())));
  const server = servers[0]!;
  const agent = new Agent({ keepAlive: true, maxSockets: 4, ca: certs.caCert });
  t.teardown(() => {
    agent.destroy();
  });

  const post = (
    webhook: Webhook,
    body: string | Buffer,
    contentType = 'application/json',
    policy = 0,
  ) =>
    httpsCall(`${(servers[policy] ?? server).admissionUrl}/${webhook}`, {
      ca: certs.caCert,
      agent,
      body,
      headers: contentType === '' ? {} : { 'content-type': contentType },
      timeoutMs: 10_000,
    });

  /** The checks every answer must pass, whatever was sent. */
  const judge = (webhook: Webhook, sent: unknown, status: number, body: string): string[] => {
    if (status >= 500) return [`HTTP ${status} for bad input: ${body.slice(0, 200)}`];
    if (status !== 200) return [];
    const request = requestOf(sent);
    const uid = typeof request?.uid === 'string' ? request.uid : '';
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      return ['a 200 answer is not JSON'];
    }
    const problems = kubeApiserverProblems(parsed, uid, webhook);
    const patch = patchProblem(request?.object, parsed);
    return patch === undefined ? problems : [...problems, patch];
  };

  await t.test('mutated fixture reviews (wrong types, nulls, huge and deep values)', async (t) => {
    const failures: string[] = [];
    await fc
      .assert(
        fc.asyncProperty(
          fc.constantFrom(...FIXTURE_NAMES),
          fc.array(mutation, { minLength: 1, maxLength: 4 }),
          fc.constantFrom<Webhook>('validate', 'mutate'),
          fc.constantFrom(...SNAPSHOTS),
          async (name, changes, webhook, snapshot) => {
            source.current = snapshot;
            const review = fixture(name) as unknown as Record<string, unknown>;
            for (const change of changes) mutate(review, change);
            const body = JSON.stringify(review);
            const answer = await post(webhook, body);
            const problems = judge(webhook, review, answer.status, answer.body);
            if (problems.length > 0 && failures.length < 5) {
              failures.push(
                `${webhook} ${name} ${JSON.stringify(changes).slice(0, 300)}: ${problems.join('; ')}`,
              );
            }
            return problems.length === 0;
          },
        ),
        { numRuns: NUM_RUNS },
      )
      .catch((error: unknown) => {
        t.fail(
          `property failed: ${error instanceof Error ? error.message.slice(0, 2_000) : String(error)}`,
        );
      });
    t.same(failures, [], 'every mutated review got < 500 and a valid 200 answer when 200');
  });

  await t.test('well-typed random Secret reviews always get a valid 200', async (t) => {
    const annotations = fc.dictionary(
      fc.oneof(
        fc.string({ minLength: 1 }),
        fc.constantFrom('a/b', 'x~1y', '~', '/', 'kms-secret-guard.io/key-id'),
      ),
      fc.string(),
      { maxKeys: 6 },
    );
    const object = fc.record(
      {
        apiVersion: fc.constant('v1'),
        kind: fc.constant('Secret'),
        metadata: fc.record(
          {
            name: fc.string(),
            generateName: fc.string(),
            namespace: fc.string(),
            annotations: fc.option(annotations, { nil: null }),
            labels: fc.dictionary(fc.string(), fc.string(), { maxKeys: 3 }),
          },
          { requiredKeys: [] },
        ),
        data: fc.dictionary(fc.string(), fc.base64String()),
        type: fc.constantFrom('Opaque', 'kubernetes.io/tls'),
      },
      { requiredKeys: ['apiVersion', 'kind'] },
    );
    const review = fc.record({
      apiVersion: fc.constant('admission.k8s.io/v1'),
      kind: fc.constant('AdmissionReview'),
      request: fc.record(
        {
          uid: fc.oneof(fc.uuid(), fc.string({ minLength: 1 })),
          kind: fc.record({
            group: fc.constantFrom('', 'apps'),
            version: fc.constant('v1'),
            kind: fc.constantFrom('Secret', 'ConfigMap'),
          }),
          resource: fc.record({
            group: fc.constantFrom('', 'apps'),
            version: fc.constant('v1'),
            resource: fc.constantFrom('secrets', 'configmaps'),
          }),
          subResource: fc.constantFrom('', 'status'),
          name: fc.string(),
          namespace: fc.string(),
          operation: fc.constantFrom('CREATE', 'UPDATE', 'DELETE', 'CONNECT'),
          userInfo: fc.record({ username: fc.string(), groups: fc.array(fc.string()) }),
          object: fc.option(object, { nil: null }),
          oldObject: fc.option(object, { nil: null }),
          dryRun: fc.boolean(),
        },
        { requiredKeys: ['uid'] },
      ),
    });
    const failures: string[] = [];
    await fc
      .assert(
        fc.asyncProperty(
          review,
          fc.constantFrom<Webhook>('validate', 'mutate'),
          fc.constantFrom(...SNAPSHOTS),
          async (sent, webhook, snapshot) => {
            source.current = snapshot;
            const body = JSON.stringify(sent);
            const answer = await post(webhook, body);
            const problems =
              answer.status === 200
                ? judge(webhook, sent, answer.status, answer.body)
                : [`HTTP ${answer.status} for a well-typed review: ${answer.body.slice(0, 200)}`];
            if (problems.length > 0 && failures.length < 5) {
              failures.push(
                `${webhook} ${JSON.stringify(sent).slice(0, 400)}: ${problems.join('; ')}`,
              );
            }
            return problems.length === 0;
          },
        ),
        { numRuns: NUM_RUNS },
      )
      .catch((error: unknown) => {
        t.fail(
          `property failed: ${error instanceof Error ? error.message.slice(0, 2_000) : String(error)}`,
        );
      });
    t.same(failures, [], 'every well-typed review got a 200 the API server accepts');
  });

  await t.test('raw random bytes with odd content types', async (t) => {
    const failures: string[] = [];
    const contentType = fc.constantFrom(
      'application/json',
      'application/json; charset=utf-8',
      'application/json; charset=utf-16',
      'APPLICATION/JSON',
      'application/merge-patch+json',
      'text/plain',
      'application/octet-stream',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      '',
      ';;;',
    );
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 4_096 }).map((array) => Buffer.from(array)),
      fc.string({ unit: 'binary', maxLength: 2_000 }).map((text) => Buffer.from(text)),
      fc.jsonValue({ maxDepth: 4 }).map((value) => Buffer.from(JSON.stringify(value))),
      fc
        .tuple(fc.jsonValue({ maxDepth: 3 }), fc.nat({ max: 200 }))
        .map(([value, cut]) => Buffer.from(JSON.stringify(value).slice(0, cut))),
      fc.constantFrom(
        Buffer.from('{"__proto__":{"polluted":true},"request":{"uid":"x"}}'),
        Buffer.from('{"constructor":{"prototype":{"polluted":true}}}'),
        Buffer.from('\uFEFF{"request":{"uid":"bom"}}'),
        Buffer.from('null'),
        Buffer.from('[]'),
        Buffer.from('"string"'),
        Buffer.from('{"request":'.repeat(5_000)),
      ),
    );
    await fc
      .assert(
        fc.asyncProperty(
          bytes,
          contentType,
          fc.constantFrom<Webhook>('validate', 'mutate'),
          async (body, type, webhook) => {
            const answer = await post(webhook, body, type);
            let sent: unknown;
            try {
              // Like the server's parser, ignore a UTF-8 byte order mark.
              sent = JSON.parse(body.toString('utf8').replace(/^\uFEFF/, ''));
            } catch {
              sent = undefined;
            }
            const problems = judge(webhook, sent, answer.status, answer.body);
            if (problems.length > 0 && failures.length < 5) {
              failures.push(
                `${webhook} ${type} ${body.toString('hex').slice(0, 200)}: ${problems.join('; ')}`,
              );
            }
            return problems.length === 0;
          },
        ),
        { numRuns: NUM_RUNS },
      )
      .catch((error: unknown) => {
        t.fail(
          `property failed: ${error instanceof Error ? error.message.slice(0, 2_000) : String(error)}`,
        );
      });
    t.same(failures, [], 'random bytes never got a 5xx or an invalid 200');
    t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution');
  });

  // Regressions for the bugs these properties found (docs/RELIABILITY.md, "Bugs found").
  await t.test('B1: request.resource null is answered, not a 500', async (t) => {
    source.current = usableSnapshot();
    const review = fixture('secret-create-generatename') as unknown as Record<string, unknown>;
    mutate(review, { path: ['request', 'resource'], value: null });
    for (const webhook of ['validate', 'mutate'] as const) {
      const answer = await post(webhook, JSON.stringify(review));
      t.equal(answer.status, 200, `${webhook} answers 200 (kind still says Secret)`);
    }
  });

  await t.test('B2: a Secret data key "__proto__" is admitted, not a 400', async (t) => {
    source.current = usableSnapshot();
    const review = fixture('secret-create-generatename');
    const body = JSON.stringify(review).replace('"data":{', '"data":{"__proto__":"c2VjcmV0",');
    t.match(body, /"__proto__":"c2VjcmV0"/, 'the review carries a "__proto__" data key');
    for (const webhook of ['validate', 'mutate'] as const) {
      const answer = await post(webhook, body);
      t.equal(answer.status, 200, `${webhook} answers 200: "__proto__" is a valid Secret data key`);
    }
  });

  await t.test('B3: non-object annotations get no patch that cannot apply', async (t) => {
    source.current = usableSnapshot();
    for (const value of ['abc', 5, ['x'], true]) {
      const review = fixture('secret-update');
      (review.request.object?.metadata as Record<string, unknown>).annotations = value;
      const answer = await post('mutate', JSON.stringify(review));
      const problem =
        answer.status === 200 ? patchProblem(review.request.object, answer.json()) : undefined;
      t.equal(
        problem,
        undefined,
        `annotations ${JSON.stringify(value)}: no patch that fails to apply`,
      );
      t.ok(answer.status < 500, `annotations ${JSON.stringify(value)}: no 5xx`);
    }
  });

  const livez = await httpGet(`${server.healthUrl}/livez`);
  t.equal(livez.status, 200, 'the server still answers /livez after all the bad input');
  source.current = usableSnapshot();
  const after = await post('mutate', JSON.stringify(fixture('secret-update')));
  t.equal(after.status, 200, 'and still admits a normal Secret UPDATE');
});
