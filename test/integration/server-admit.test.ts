/**
 * POST /admit, the one-call shape: for every fixture, key state and policy it answers what
 * /validate and /mutate answer together — /validate's denial (same message, no patch), or
 * /validate's warnings and audit annotations with /mutate's patch.
 */
import t, { type Test } from 'tap';
import { Agent } from 'node:https';
import type { ServeSettings } from '../../src/config/settings.js';
import type { KeySnapshot } from '../../src/kms/types.js';
import { UNUSABLE_REASONS } from '../../src/kms/vocabulary.js';
import {
  decodePatch,
  fixture,
  FIXTURE_NAMES,
  injectAdmission,
  startTestServer,
  unknownSnapshot,
  unusableSnapshot,
  usableSnapshot,
  type FixtureReview,
  type InjectedAdmission,
  type ReviewAnswer,
} from '../helpers/server.js';
import { httpGet, postReview } from '../helpers/http.js';

const SNAPSHOTS: [string, KeySnapshot][] = [
  ['usable', usableSnapshot()],
  [
    'usable, deletion scheduled',
    usableSnapshot({ warnings: ['the key is scheduled for deletion on 2026-12-05'] }),
  ],
  ...UNUSABLE_REASONS.map((reason): [string, KeySnapshot] => [reason, unusableSnapshot(reason)]),
  ['unknown, never fetched', unknownSnapshot('NeverFetched')],
  ['unknown, stale', unknownSnapshot('Stale')],
];

const POLICIES: [string, Partial<ServeSettings>][] = [
  ['enforce, on-unknown allow', {}],
  ['enforce, on-unknown deny', { onUnknown: 'deny' }],
  ['warn', { mode: 'warn' }],
];

/** A Secret UPDATE that sets a stamp by hand (warned about while the key is not usable). */
function handStamped(): FixtureReview {
  const sent = fixture('secret-update');
  sent.request.object!.metadata.annotations = {
    ...sent.request.object!.metadata.annotations,
    'kms-secret-guard.io/key-version': 'forged',
  };
  return sent;
}

async function answers(h: InjectedAdmission, sent: FixtureReview) {
  const [validate, mutate, admit] = await Promise.all(
    ['/validate', '/mutate', '/admit'].map(async (path) => {
      const result = await h.review(path, sent);
      return { status: result.status, answer: result.answer() };
    }),
  );
  return { validate: validate!.answer, mutate: mutate!.answer, admit: admit!, sent };
}

function expectSame(
  t: Test,
  label: string,
  got: {
    validate: ReviewAnswer;
    mutate: ReviewAnswer;
    admit: { status: number; answer: ReviewAnswer };
    sent: FixtureReview;
  },
): void {
  const { validate, mutate, admit, sent } = got;
  const response = admit.answer.response;
  t.equal(admit.status, 200, `${label}: HTTP 200`);
  t.equal(admit.answer.kind, 'AdmissionReview', `${label}: an AdmissionReview`);
  t.equal(response.uid, sent.request.uid, `${label}: uid echoed`);
  t.equal(response.allowed, validate.response.allowed, `${label}: allowed as /validate`);
  t.same(response.status, validate.response.status, `${label}: status and message as /validate`);
  t.same(response.warnings, validate.response.warnings, `${label}: warnings as /validate`);
  if (!validate.response.allowed) {
    t.notOk('patch' in response, `${label}: a denial carries no patch`);
    t.same(
      response.auditAnnotations,
      validate.response.auditAnnotations,
      `${label}: audit as /validate`,
    );
    return;
  }
  t.same(decodePatch(admit.answer), decodePatch(mutate), `${label}: patch as /mutate`);
  t.equal(response.patchType, mutate.response.patchType, `${label}: patchType as /mutate`);
  const stamped = mutate.response.auditAnnotations?.stamped;
  const audit = validate.response.auditAnnotations;
  t.same(
    response.auditAnnotations,
    audit === undefined && stamped === undefined
      ? undefined
      : { ...audit, ...(stamped === undefined ? {} : { stamped }) },
    `${label}: /validate's audit annotations, plus /mutate's stamped`,
  );
}

t.test(
  '/admit answers as /validate and /mutate together, for every key state and policy',
  async (t) => {
    for (const [policyName, overrides] of POLICIES) {
      const h = await injectAdmission(t, overrides);
      for (const [snapshotName, snapshot] of SNAPSHOTS) {
        h.source.current = snapshot;
        for (const name of FIXTURE_NAMES) {
          expectSame(
            t,
            `${policyName} / ${snapshotName} / ${name}`,
            await answers(h, fixture(name)),
          );
        }
        expectSame(
          t,
          `${policyName} / ${snapshotName} / hand-set stamp`,
          await answers(h, handStamped()),
        );
      }
    }
  },
);

t.test('/admit: the cases a person meets, spelled out', async (t) => {
  const h = await injectAdmission(t);
  const create = fixture('secret-create-generatename');
  const usable = (await h.review('/admit', create)).answer();
  t.equal(usable.response.allowed, true, 'usable key: allowed');
  t.equal(usable.response.patchType, 'JSONPatch', 'usable key: stamped');
  t.equal(usable.response.auditAnnotations?.stamped, 'true', 'usable key: audit says stamped');

  h.source.current = unusableSnapshot('Disabled');
  const denied = (await h.review('/admit', create)).answer();
  t.equal(denied.response.allowed, false, 'disabled key: denied');
  t.equal(denied.response.status?.code, 403, 'disabled key: 403');
  t.match(denied.response.status?.message, /Disabled/, 'disabled key: the message names the state');
  t.notOk('patch' in denied.response, 'disabled key: no patch');

  const dryRun = fixture('secret-create-dryrun');
  const real = { ...dryRun, request: { ...dryRun.request, dryRun: false } };
  const dryAnswer = (await h.review('/admit', dryRun)).answer();
  const realAnswer = (await h.review('/admit', real)).answer();
  t.same(dryAnswer.response, realAnswer.response, 'dryRun gets exactly the answer of a real write');

  for (const name of ['secret-delete', 'configmap-create'] as const) {
    const answer = (await h.review('/admit', fixture(name))).answer();
    t.equal(answer.response.allowed, true, `${name}: allowed with a disabled key`);
    t.notOk('patch' in answer.response, `${name}: never patched`);
    t.notOk('auditAnnotations' in answer.response, `${name}: untouched`);
  }
});

t.test('/admit over HTTPS: counted as webhook="admit", bad bodies answered 400', async (t) => {
  const { server, certs } = await startTestServer(t);
  const agent = new Agent({ keepAlive: true, ca: certs.caCert });
  t.teardown(() => {
    agent.destroy();
  });
  const url = `${server.admissionUrl}/admit`;
  const ok = await postReview(url, fixture('secret-update'), certs.caCert, { agent });
  t.equal(ok.status, 200, 'a review: HTTP 200');
  t.equal(ok.answer().response.patchType, 'JSONPatch', 'a review: stamped');
  const bad = await postReview(url, { kind: 'AdmissionReview' }, certs.caCert, { agent });
  t.equal(bad.status, 400, 'no request in the review: HTTP 400');
  const metrics = (await httpGet(`${server.healthUrl}/metrics`)).body;
  t.match(
    metrics,
    /kms_secret_guard_admission_requests_total\{webhook="admit",operation="UPDATE",decision="patched"\} 1/,
    'the admission is counted under webhook="admit"',
  );
  t.match(
    metrics,
    /kms_secret_guard_admission_requests_total\{webhook="admit",operation="unknown",decision="invalid"\} 1/,
    'the bad request too',
  );
  const missing = await postReview(`${server.admissionUrl}/nope`, {}, certs.caCert, { agent });
  t.match(missing.body, /POST \/admit/, 'the 404 names /admit among the routes');
});
