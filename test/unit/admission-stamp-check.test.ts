import t from 'tap';
import {
  changesStamps,
  decideValidation,
  parseAdmissionReview,
  stampChangeWarnings,
  type AdmissionRequest,
} from '../../src/admission/index.js';
import {
  fixture,
  unknownSnapshot,
  unusableSnapshot,
  usableSnapshot,
  type FixtureName,
} from '../helpers/server.js';

const POLICY = { mode: 'enforce', onUnknown: 'allow', refreshIntervalMs: 30_000 } as const;
const STAMP = 'kms-secret-guard.io/key-version';

function request(name: FixtureName, edit: (review: ReturnType<typeof fixture>) => void) {
  const review = fixture(name);
  edit(review);
  return review.request as unknown as AdmissionRequest;
}

const unchanged = request('secret-update', () => undefined);
const altered = request('secret-update', (review) => {
  review.request.object!.metadata.annotations![STAMP] = 'v-2026-11-28-primary';
});
const removed = request('secret-update', (review) => {
  Reflect.deleteProperty(review.request.object!.metadata.annotations!, STAMP);
});
const added = request('secret-create-generatename', (review) => {
  review.request.object!.metadata.annotations = { 'encryption-key-rotation-time': 'x' };
});

t.test('which writes change the stamps', async (t) => {
  t.equal(changesStamps(unchanged), false, 'an UPDATE that keeps them: no change');
  t.equal(changesStamps(altered), true, 'an altered stamp');
  t.equal(changesStamps(removed), true, 'a removed stamp');
  t.equal(changesStamps(added), true, 'a stamp added on CREATE');
});

t.test('a warning only while the key is not usable', async (t) => {
  for (const snapshot of [unusableSnapshot('Disabled'), unknownSnapshot('Stale')]) {
    for (const [label, write] of [
      ['altered', altered],
      ['removed', removed],
      ['added', added],
    ] as const) {
      const warnings = stampChangeWarnings(write, snapshot);
      t.equal(warnings.length, 1, `${snapshot.status}, ${label}: one warning`);
      t.match(
        warnings[0],
        /Stamp annotations changed .* not usable: stamps are advisory/,
        'says so',
      );
      t.ok((warnings[0] ?? '').length < 120, `${label}: shorter than 120 characters`);
    }
    t.same(stampChangeWarnings(unchanged, snapshot), [], `${snapshot.status}: unchanged, none`);
  }
  t.same(stampChangeWarnings(altered, usableSnapshot()), [], 'usable key: none (mutate stamps)');
  const deleted = { ...altered, operation: 'DELETE' } as AdmissionRequest;
  t.same(stampChangeWarnings(deleted, unusableSnapshot('Disabled')), [], 'DELETE: none');
});

t.test('/validate carries it, in warn mode too', async (t) => {
  const warn = decideValidation(altered, unknownSnapshot('Stale'), POLICY);
  t.equal(warn.allowed, true, 'unknown + allow: allowed');
  t.equal(warn.warnings.length, 2, 'the unknown-state warning and the stamp warning');
  const quiet = decideValidation(unchanged, unknownSnapshot('Stale'), POLICY);
  t.equal(quiet.warnings.length, 1, 'unchanged stamps: only the unknown-state warning');
});

t.test('over-long stamp values, kept only as markers, count as changed', async (t) => {
  const review = fixture('secret-update');
  review.request.oldObject!.metadata.annotations![STAMP] = 'a'.repeat(5_000);
  review.request.object!.metadata.annotations![STAMP] = 'b'.repeat(5_000);
  const parsed = parseAdmissionReview(JSON.stringify(review));
  t.ok(parsed.ok, 'the review parses');
  if (!parsed.ok) return;
  t.equal(changesStamps(parsed.review.request), true, 'two different long values: a change');
});
