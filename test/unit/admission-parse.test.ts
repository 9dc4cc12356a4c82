import t from 'tap';
import fc from 'fast-check';
import {
  compileSelection,
  EMPTY_ARRAY,
  EMPTY_OBJECT,
  LONG_STRING,
  SelectingJsonParser,
  type Selection,
  type SelectLimits,
} from '../../src/admission/json-select.js';
import { parseAdmissionReview, REVIEW_LIMITS } from '../../src/admission/review.js';
import { fixture } from '../helpers/server.js';

const LIMITS: SelectLimits = { maxDepth: 10_000, maxValues: 1_000_000, maxStringBytes: 64 };

const SELECTION: Selection = {
  a: true,
  b: { c: 8, d: { e: true } },
  'x/y~z': true,
  é: true,
};
const COMPILED = compileSelection(SELECTION);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** What the parser should keep of a JSON.parse result: the reference model. */
function project(value: unknown, selection: Selection | true | number): unknown {
  if (Array.isArray(value)) return EMPTY_ARRAY;
  if (typeof selection !== 'object') {
    const limit = selection === true ? 64 : selection;
    if (isRecord(value)) return EMPTY_OBJECT;
    if (typeof value === 'string' && Buffer.byteLength(JSON.stringify(value)) - 2 > limit) {
      return LONG_STRING;
    }
    return value;
  }
  if (!isRecord(value)) return value;
  const kept: Record<string, unknown> = {};
  for (const [name, child] of Object.entries(selection)) {
    if (Object.hasOwn(value, name)) kept[name] = project(value[name], child);
  }
  return kept;
}

/** Feeds `text` in pieces cut at `cuts` (byte offsets). */
function run(text: string | Buffer, cuts: readonly number[] = [], limits = LIMITS) {
  const bytes = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  const parser = new SelectingJsonParser(COMPILED, limits);
  let from = 0;
  for (const cut of [...cuts].sort((a, b) => a - b)) {
    const at = Math.min(cut, bytes.length);
    parser.write(bytes.subarray(from, at));
    from = at;
  }
  parser.write(bytes.subarray(from));
  return parser.end();
}

function reference(text: string): { ok: boolean; value?: unknown } {
  try {
    return { ok: true, value: JSON.parse(text.replace(/^\uFEFF/, '')) as unknown };
  } catch {
    return { ok: false };
  }
}

const nearJson = fc.oneof(
  fc.jsonValue().map((value) => JSON.stringify(value)),
  fc.jsonValue().map((value) => JSON.stringify(value, null, 2)),
  fc
    .tuple(fc.jsonValue(), fc.nat(), fc.string({ unit: 'binary', maxLength: 3 }))
    .map(([value, at, insert]) => {
      const text = JSON.stringify(value);
      const cut = at % (text.length + 1);
      return text.slice(0, cut) + insert + text.slice(cut + 1);
    }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  // Long runs take the indexOf path: a special byte anywhere in them must still count.
  fc
    .tuple(
      fc.integer({ min: 257, max: 3_000 }),
      fc.nat(),
      fc.constantFrom('"', '\\', '\n', '\u0001', '\\n', '\\u0041', '\\x', 'é', ''),
      fc.boolean(),
    )
    .map(([length, at, special, key]) => {
      const run = 'x'.repeat(length);
      const cut = at % length;
      const text = run.slice(0, cut) + special + run.slice(cut);
      return key ? `{"${text}":1,"a":"${text}"}` : `["${text}",{"a":"${text}"}]`;
    }),
  fc.constantFrom(
    '01',
    '-',
    '1.',
    '1e',
    '1e+',
    '.5',
    '-0',
    '1E-7',
    '[1,]',
    '{"a":1,}',
    '{"a" 1}',
    '"\\x"',
    '"\\u12G4"',
    '"a\nb"',
    '"\u007f"',
    'tru',
    'nul',
    '\uFEFF{}',
    '\uFEFF',
    ' ',
    '[]]',
    '{}}',
    '"\\ud800"',
    '{"a":"\\u0041","\\u0061":2}',
    '{"b":{"c":1},"b":5}',
    '{"é":"ü","x/y~z":[1]}',
  ),
);

t.test('accepts exactly what JSON.parse accepts, however the body is cut', async (t) => {
  fc.assert(
    fc.property(nearJson, fc.array(fc.nat({ max: 4_000 }), { maxLength: 4 }), (text, cuts) => {
      const expected = reference(text);
      const outcome = run(text, cuts);
      if (text === '') return !outcome.ok && outcome.problem === 'empty';
      if (outcome.ok !== expected.ok) return false;
      if (!outcome.ok) return outcome.problem === 'invalid';
      t.same(outcome.value, project(expected.value, SELECTION), `kept values of ${text}`);
      return true;
    }),
    { numRuns: 3_000 },
  );
  t.pass('agreed with JSON.parse on generated text, whole and in pieces');
});

t.test('keeps only the selection, with JSON.parse semantics', async (t) => {
  const outcome = run(
    '{"a":"\\u0041\\n","b":{"c":[1,{"x":2}],"d":{"e":-1.5e3,"f":"secret"},"z":"secret"},"data":{"k":"c2VjcmV0"},"\\u00e9":null}',
  );
  t.same(
    outcome,
    { ok: true, value: { a: 'A\n', b: { c: EMPTY_ARRAY, d: { e: -1500 } }, é: null } },
    'escaped keys match, unselected fields are dropped, containers become markers',
  );
  const last = run('{"b":{"c":1,"d":{"e":1}},"b":{"c":2}}');
  t.same(last, { ok: true, value: { b: { c: 2 } } }, 'a repeated key: the last one wins, whole');
  const long = run(
    `{"a":"${'x'.repeat(65)}","b":{"c":"${'y'.repeat(8)}","d":{"e":"${'z'.repeat(64)}"}}}`,
  );
  t.same(
    long,
    { ok: true, value: { a: LONG_STRING, b: { c: 'y'.repeat(8), d: { e: 'z'.repeat(64) } } } },
    'a kept string over the default limit becomes LONG_STRING',
  );
  t.same(
    run('{"b":{"c":"123456789"}}'),
    { ok: true, value: { b: { c: LONG_STRING } } },
    "one over its field's own limit (8) too",
  );
  t.same(run('{"__proto__":{"a":1},"a":1}'), { ok: true, value: { a: 1 } }, '__proto__ ignored');
});

t.test('escaped keys are decoded by hand, exactly as JSON.parse would', async (t) => {
  const selection = compileSelection({ 'a/b': true, é: true, '😀': true, ab: true });
  const keep = (text: string): unknown => {
    const parser = new SelectingJsonParser(selection, LIMITS);
    parser.write(Buffer.from(text, 'utf8'));
    const outcome = parser.end();
    return outcome.ok ? outcome.value : outcome.problem;
  };
  t.same(
    keep('{"a\\/b":1,"\\u00e9":2,"\\ud83d\\ude00":3}'),
    { 'a/b': 1, é: 2, '😀': 3 },
    'simple, 2-byte and surrogate-pair escapes match',
  );
  t.same(keep('{"\\ud83d":1,"\\ude00":2,"\\ud83d\\u0041":3}'), {}, 'lone surrogates match nothing');
  t.same(
    keep('{"\\u0061\\u0062\\u0063":1,"\\u0061b":2}'),
    { ab: 2 },
    'a shorter escaped key after a longer one is read alone',
  );
  t.same(keep('{"a\\nb":1,"a\\u0000b":2,"\\u00e9\\u00e9":3}'), {}, 'near misses do not match');
  // Keys and kept strings wholly in one chunk are read in place; cut ones are read as they come.
  const text = Buffer.from('{"a\\/b":"\\u00e9x","\\u00e9":"plain","\\ud83d\\ude00":"\\n","ab":3}');
  const whole = keep(text.toString());
  const differ: number[] = [];
  for (let cut = 1; cut < text.length; cut += 1) {
    const parser = new SelectingJsonParser(selection, LIMITS);
    parser.write(text.subarray(0, cut));
    parser.write(text.subarray(cut));
    const outcome = parser.end();
    if (JSON.stringify(outcome.ok && outcome.value) !== JSON.stringify(whole)) differ.push(cut);
  }
  t.same(whole, { 'a/b': 'éx', é: 'plain', '😀': '\n', ab: 3 }, 'read whole, in place');
  t.same(differ, [], 'and the same when cut at any byte');
});

t.test('depth and value-count bounds', async (t) => {
  const limits = { ...LIMITS, maxDepth: 5, maxValues: 10 };
  t.same(run('[[[[[1]]]]]', [], limits).ok, true, 'depth 5 is accepted');
  t.same(run('[[[[[[1]]]]]]', [], limits), { ok: false, problem: 'too-deep' }, 'depth 6 is not');
  t.same(run('[1,2,3,4,5,6,7,8,9]', [], limits).ok, true, '10 values are accepted');
  t.same(
    run('[1,2,3,4,5,6,7,8,9,10]', [], limits),
    { ok: false, problem: 'too-many-values' },
    '11 are not',
  );
  const deep = Buffer.alloc(6_000_000);
  deep.fill(0x5b, 0, 3_000_000);
  deep.fill(0x5d, 3_000_000);
  t.same(run(deep), { ok: false, problem: 'too-deep' }, '3 000 000 nested arrays: too deep');
  const many = `{"x":[${'{},'.repeat(2_400_000)}{}]}`;
  t.same(
    parseAdmissionReview(many),
    {
      ok: false,
      message: `The request body holds more than ${REVIEW_LIMITS.maxValues} JSON values: an AdmissionReview never does; check what is calling the webhook.`,
    },
    '2.4 M {}: too many values, a clear message',
  );
});

t.test('an AdmissionReview keeps the envelope, the metadata and three stamps only', async (t) => {
  const review = fixture('secret-update');
  const object = review.request.object as Record<string, unknown>;
  object.data = { 'tls.key': 'c2VjcmV0' };
  (object.metadata as Record<string, unknown>).managedFields = [{ manager: 'kubectl' }];
  (object.metadata as Record<string, unknown>).annotations = {
    other: 'x',
    'kms-secret-guard.io/key-id': 'key-1',
  };
  const parsed = parseAdmissionReview(JSON.stringify(review));
  t.ok(parsed.ok, 'parsed');
  if (!parsed.ok) return;
  const kept = parsed.review.request;
  t.equal(kept.uid, review.request.uid, 'uid kept');
  t.equal(kept.operation, 'UPDATE', 'operation kept');
  t.same(kept.object?.metadata?.annotations, { 'kms-secret-guard.io/key-id': 'key-1' }, 'stamps');
  t.notOk('data' in (kept.object ?? {}), 'no data');
  t.notOk('managedFields' in (kept.object?.metadata ?? {}), 'no managedFields');
  t.notOk('data' in (kept.oldObject ?? {}), 'no oldObject data');
  const SECRETS = { group: '', version: 'v1', resource: 'secrets' };
  const refused = (request: Record<string, unknown>): string => {
    const outcome = parseAdmissionReview(
      JSON.stringify({ request: { uid: 'u', resource: SECRETS, ...request } }),
    );
    return outcome.ok ? 'accepted' : outcome.message;
  };
  t.equal(
    refused({ uid: 'x'.repeat(129) }),
    "The AdmissionReview's request.uid is longer than 128 bytes, more than Kubernetes allows: check what is calling the webhook.",
    'a uid over 128 bytes is refused, naming the field and the bound',
  );
  for (const [request, path, bytes] of [
    [{ name: 'n'.repeat(254) }, 'request.name', 253],
    [{ namespace: 'n'.repeat(64) }, 'request.namespace', 63],
    [{ object: { metadata: { name: 'n'.repeat(254) } } }, 'request.object.metadata.name', 253],
    [
      { object: { metadata: { generateName: 'g'.repeat(254) } } },
      'request.object.metadata.generateName',
      253,
    ],
    [
      { object: { metadata: { namespace: 's'.repeat(64) } } },
      'request.object.metadata.namespace',
      63,
    ],
  ] as const) {
    t.match(
      refused(request),
      `${path} is longer than ${bytes} bytes`,
      `${path}: over ${bytes} refused`,
    );
  }
  t.equal(
    refused({ name: 'n'.repeat(253), namespace: 'n'.repeat(63) }),
    'accepted',
    'at the bounds: accepted',
  );
  const roleBinding = parseAdmissionReview(
    JSON.stringify({
      request: {
        uid: 'u',
        resource: { group: 'rbac.authorization.k8s.io', version: 'v1', resource: 'rolebindings' },
        name: 'n'.repeat(300),
        object: { metadata: { name: 'n'.repeat(300), namespace: 'default' } },
      },
    }),
  );
  t.ok(roleBinding.ok, 'another resource with a name over 253 bytes is not an error');
  if (roleBinding.ok) {
    t.notOk('name' in roleBinding.review.request, 'its over-long name is left out');
    t.same(
      roleBinding.review.request.object?.metadata,
      { namespace: 'default' },
      'and so is the object name; the rest is kept',
    );
  }
  t.match(
    parseAdmissionReview(
      JSON.stringify({ request: { uid: 'x'.repeat(129), resource: { resource: 'rolebindings' } } }),
    ),
    { ok: false, message: /request\.uid is longer than 128 bytes/ },
    'an over-long uid is refused whatever the resource (every answer echoes it)',
  );
  const lenient = parseAdmissionReview(
    JSON.stringify({
      request: {
        uid: 'u',
        userInfo: { username: 'u'.repeat(1_025) },
        object: { metadata: { annotations: { 'kms-secret-guard.io/key-id': 'k'.repeat(129) } } },
      },
    }),
  );
  t.ok(lenient.ok, 'an over-long user name or stamp value is not an error');
  if (lenient.ok) {
    t.equal(lenient.review.request.userInfo?.username, LONG_STRING, 'the user name is not kept');
    t.same(
      lenient.review.request.object?.metadata?.annotations,
      { 'kms-secret-guard.io/key-id': LONG_STRING },
      'the stamp value is not kept (it counts as a change, and /mutate replaces it)',
    );
  }
});

t.test('heldBytes counts the kept values, not only the buffers', async (t) => {
  const parser = new SelectingJsonParser(COMPILED, LIMITS);
  parser.write(Buffer.from('{"a":"x","b":{"c":"y"'));
  const small = parser.heldBytes;
  const other = new SelectingJsonParser(COMPILED, LIMITS);
  other.write(Buffer.from(`{"a":"${'x'.repeat(64)}","b":{"c":"y"`));
  t.ok(
    other.heldBytes - small >= 2 * 63,
    `a 64-character kept string adds ${other.heldBytes - small} bytes`,
  );
  const deep = new SelectingJsonParser(COMPILED, LIMITS);
  deep.write(Buffer.from(`{"z":${'['.repeat(5_000)}`));
  t.ok(deep.heldBytes >= 5_000, `5 000 open arrays: ${deep.heldBytes} bytes (the nesting stack)`);
  const once = new SelectingJsonParser(COMPILED, LIMITS);
  once.write(Buffer.from('{"a":"x","b":{"c":"y","d":{"e":1}}'));
  const repeated = new SelectingJsonParser(COMPILED, LIMITS);
  const again = '"a":"x","b":{"c":"y","d":{"e":1}},';
  repeated.write(Buffer.from(`{${again.repeat(10_000)}"a":"x","b":{"c":"y","d":{"e":1}}`));
  t.equal(
    repeated.heldBytes,
    once.heldBytes,
    'a key repeated 10 000 times holds what it holds once (the replaced values are released)',
  );
});
