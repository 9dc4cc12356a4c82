import t from 'tap';
import fc from 'fast-check';
import jsonPatch from 'fast-json-patch';
import {
  annotationPatch,
  escapePointerSegment,
  formatRotationTime,
  parseAdmissionReview,
  stampAnnotations,
  type ObjectWithMetadata,
} from '../../src/admission/index.js';
import { keyFacts } from '../helpers/server.js';
import { KEY_ID } from '../helpers/kms.js';

const stamp = stampAnnotations(keyFacts());

function apply(object: ObjectWithMetadata): ObjectWithMetadata {
  const operations = annotationPatch(object, stamp);
  // Round-trip through JSON as the API server does with the base64 patch.
  const wire = JSON.parse(JSON.stringify(operations)) as jsonPatch.Operation[];
  return jsonPatch.applyPatch(structuredClone(object), wire, true, false).newDocument;
}

t.test('stamp values', async (t) => {
  t.same(
    stamp,
    {
      'kms-secret-guard.io/key-id': KEY_ID,
      'kms-secret-guard.io/key-version': 'v-2026-11-28-primary',
      'encryption-key-rotation-time': '2026-11-28T09:00:00Z',
    },
    'key id, primary version and rotation time',
  );
  t.equal(
    formatRotationTime(new Date('2026-11-28T09:00:00.789Z')),
    '2026-11-28T09:00:00Z',
    'seconds precision, UTC, Z suffix',
  );
});

t.test('the patch applies to every annotation shape', async (t) => {
  const cases: [string, ObjectWithMetadata][] = [
    ['no metadata.annotations', { kind: 'Secret', metadata: { name: 's' }, data: { a: 'YQ==' } }],
    ['an empty map', { kind: 'Secret', metadata: { name: 's', annotations: {} } }],
    ['null annotations', { kind: 'Secret', metadata: { name: 's', annotations: null } }],
    [
      'existing other annotations with slashes',
      { kind: 'Secret', metadata: { annotations: { 'a.io/x~y': '1', 'b/c': '2' } } },
    ],
    [
      'stale stamp values (replaced)',
      {
        kind: 'Secret',
        metadata: {
          annotations: {
            'kms-secret-guard.io/key-id': 'key-old',
            'kms-secret-guard.io/key-version': 'old',
            'encryption-key-rotation-time': '2020-01-01T00:00:00Z',
          },
        },
      },
    ],
    ['no metadata at all', { kind: 'Secret' }],
  ];
  for (const [label, object] of cases) {
    const result = apply(object);
    const others = { ...(object.metadata?.annotations ?? {}) };
    t.same(result.metadata?.annotations, { ...others, ...stamp }, `${label}: stamped, others kept`);
    t.same(
      { ...result, metadata: { ...result.metadata, annotations: undefined } },
      { ...object, metadata: { ...object.metadata, annotations: undefined } },
      `${label}: nothing else changed`,
    );
    t.same(annotationPatch(result, stamp), [], `${label}: idempotent (no patch the second time)`);
  }
  const escaped = annotationPatch({ metadata: { annotations: { other: 'x' } } }, stamp);
  t.ok(
    escaped.some(
      (operation) => operation.path === '/metadata/annotations/kms-secret-guard.io~1key-id',
    ),
    "a '/' in an annotation key is escaped as ~1",
  );
  t.same(annotationPatch(null, stamp), [], 'no object → no patch');
  t.equal(
    escapePointerSegment('a~/b~1'),
    'a~0~1b~01',
    "RFC 6901: '~' → '~0' first, then '/' → '~1'",
  );
  const current = annotationPatch(
    { metadata: { annotations: { ...stamp, 'kms-secret-guard.io/key-version': 'old' } } },
    stamp,
  );
  t.same(
    current,
    [
      {
        op: 'replace',
        path: '/metadata/annotations/kms-secret-guard.io~1key-version',
        value: stamp['kms-secret-guard.io/key-version'],
      },
    ],
    'only the stale stamp is replaced, nothing else is touched',
  );
});

t.test('property: any annotations map ends with the stamp and keeps the rest', async (t) => {
  fc.assert(
    fc.property(fc.dictionary(fc.string(), fc.string()), (annotations) => {
      const object: ObjectWithMetadata = { metadata: { name: 'x', annotations } };
      const result = apply(object);
      const expected = { ...annotations, ...stamp };
      return (
        JSON.stringify(Object.entries(result.metadata?.annotations ?? {}).sort()) ===
          JSON.stringify(Object.entries(expected).sort()) &&
        annotationPatch(result, stamp).length === 0
      );
    }),
  );
  t.pass('property held for generated annotation maps');
});

t.test('parseAdmissionReview refuses what cannot be answered', async (t) => {
  const cases: [string, unknown, RegExp][] = [
    ['an array', [], /must be a JSON object/],
    ['a string', 'x', /must be a JSON object/],
    ['no request', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }, /no "request"/],
    ['request not an object', { request: 5 }, /no "request"/],
    ['no uid', { request: { operation: 'CREATE' } }, /no "uid"/],
    ['empty uid', { request: { uid: '' } }, /no "uid"/],
    [
      'v1beta1',
      { apiVersion: 'admission.k8s.io/v1beta1', request: { uid: 'u' } },
      /only admission\.k8s\.io\/v1/,
    ],
    ['other kind', { kind: 'Pod', request: { uid: 'u' } }, /kind must be AdmissionReview/],
    ['object not an object', { request: { uid: 'u', object: 'x' } }, /request\.object must be/],
    [
      'metadata not an object',
      { request: { uid: 'u', object: { metadata: 1 } } },
      /metadata must be/,
    ],
  ];
  for (const [label, body, message] of cases) {
    const result = parseAdmissionReview(JSON.stringify(body));
    t.equal(result.ok, false, `${label}: refused`);
    if (!result.ok) t.match(result.message, message, `${label}: clear message`);
  }
  t.equal(
    parseAdmissionReview(JSON.stringify({ request: { uid: 'u' } })).ok,
    true,
    'a minimal review is accepted',
  );
});

t.test('the mutating webhook leaves reencrypt’s reencrypted-at annotation alone', async (t) => {
  const annotations = { 'kms-secret-guard.io/reencrypted-at': '2026-11-28T09:06:00.001Z' };
  const result = apply({ metadata: { annotations } });
  t.equal(
    result.metadata?.annotations?.['kms-secret-guard.io/reencrypted-at'],
    '2026-11-28T09:06:00.001Z',
    'kept as reencrypt wrote it',
  );
  t.notOk(
    annotationPatch({ metadata: { annotations: { ...annotations, ...stamp } } }, stamp).length,
    'a current stamp next to it needs no patch',
  );
});
