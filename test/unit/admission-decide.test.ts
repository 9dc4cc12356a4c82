import t, { type Test } from 'tap';
import fc from 'fast-check';
import jsonPatch from 'fast-json-patch';
import {
  complete,
  decideMutation,
  decideValidation,
  isValidAuditAnnotationKey,
  type AdmissionPolicy,
  type AdmissionReviewRequest,
  type Decision,
} from '../../src/admission/index.js';
import type { KeySnapshot, UnusableReason } from '../../src/kms/types.js';
import { UNUSABLE_REASONS } from '../../src/kms/vocabulary.js';
import {
  fixture,
  keyFacts,
  NOW,
  unknownSnapshot,
  unusableSnapshot,
  usableSnapshot,
} from '../helpers/server.js';
import { KEY_ID } from '../helpers/kms.js';

const enforce: AdmissionPolicy = { mode: 'enforce', onUnknown: 'allow' };
const UNUSABLE = UNUSABLE_REASONS;

function review(name: Parameters<typeof fixture>[0]): AdmissionReviewRequest {
  return fixture(name);
}

function checkEnvelope(t: Test, decision: Decision, reviewed: AdmissionReviewRequest): void {
  const done = complete(reviewed, decision);
  t.equal(done.apiVersion, 'admission.k8s.io/v1', 'apiVersion v1');
  t.equal(done.kind, 'AdmissionReview', 'kind AdmissionReview');
  t.equal(done.response.uid, reviewed.request.uid, 'uid echoed');
  for (const warning of done.response.warnings ?? []) {
    t.ok(warning.length < 120, `warning under 120 chars: ${warning}`);
  }
  for (const key of Object.keys(done.response.auditAnnotations ?? {})) {
    t.ok(isValidAuditAnnotationKey(key) && !key.includes('/'), `audit key ${key} is valid`);
  }
}

t.test(
  'usable key: Secret CREATE/UPDATE allowed without warnings, audit names the key',
  async (t) => {
    for (const name of [
      'secret-create-generatename',
      'secret-update',
      'secret-create-dryrun',
    ] as const) {
      const decision = decideValidation(review(name).request, usableSnapshot(), enforce);
      t.equal(decision.allowed, true, `${name}: allowed`);
      t.same(decision.warnings, [], `${name}: no warnings`);
      t.same(decision.patch, [], `${name}: validation never patches`);
      t.equal(decision.auditAnnotations['key-state'], 'Enabled', `${name}: key-state audited`);
      t.equal(decision.auditAnnotations['key-version'], 'v-2026-11-28-primary', `${name}: version`);
      t.equal(decision.auditAnnotations.decision, 'allowed', `${name}: decision audited`);
      checkEnvelope(t, decision, review(name));
    }
  },
);

t.test(
  'each unusable state denies CREATE/UPDATE in enforce mode with an actionable message',
  async (t) => {
    const remedies: Record<UnusableReason, RegExp> = {
      Disabled:
        /is Disabled, so the API server cannot encrypt this Secret\. Enable the key in KMS \(EnableKey\) and retry\./,
      PendingDeletion:
        /PendingDeletion and will be deleted on 2026-12-05T10:00:00Z.*CancelKeyDeletion/,
      PendingImport: /PendingImport.*Import the key material/,
      NotFound: /was not found.*Check the key id and region/,
      NoPermission: /Grant the cluster's RAM role kms:Encrypt, kms:Decrypt and kms:DescribeKey/,
      MaterialExpired: /imported key material .* expired on 2026-11-27T00:00:00Z.*Re-import/,
    };
    for (const reason of UNUSABLE) {
      for (const name of ['secret-create-generatename', 'secret-update'] as const) {
        const decision = decideValidation(review(name).request, unusableSnapshot(reason), enforce);
        t.equal(decision.allowed, false, `${reason}/${name}: denied`);
        t.equal(decision.status?.code, 403, `${reason}: status code 403`);
        t.equal(decision.status?.reason, 'Forbidden', `${reason}: reason Forbidden`);
        t.match(
          decision.status?.message,
          /^Secret writes are blocked: /,
          `${reason}: says what happened`,
        );
        t.match(decision.status?.message, KEY_ID, `${reason}: names the key id`);
        t.match(decision.status?.message, remedies[reason], `${reason}: consequence and remedy`);
        t.equal(decision.auditAnnotations.decision, 'denied', `${reason}: audit decision denied`);
        t.equal(decision.auditAnnotations['key-reason'], reason, `${reason}: audit reason`);
        t.equal(decision.auditAnnotations['key-status'], 'unusable', `${reason}: audit status`);
        const done = complete(review(name), decision);
        t.notOk('patch' in done.response, `${reason}: a denial carries no patch`);
        checkEnvelope(t, decision, review(name));
      }
    }
  },
);

t.test('warn mode turns every denial into allowed + one short warning', async (t) => {
  const warn: AdmissionPolicy = { ...enforce, mode: 'warn' };
  for (const reason of UNUSABLE) {
    const decision = decideValidation(
      review('secret-update').request,
      unusableSnapshot(reason),
      warn,
    );
    t.equal(decision.allowed, true, `${reason}: allowed in warn mode`);
    t.equal(decision.status, undefined, `${reason}: no status`);
    t.equal(decision.warnings.length, 1, `${reason}: one warning`);
    t.match(
      decision.warnings[0],
      /^\[warn mode\] would deny: KMS key/,
      `${reason}: warning explains`,
    );
    t.match(decision.warnings[0], KEY_ID, `${reason}: warning names the key`);
    t.equal(decision.auditAnnotations.decision, 'warned', `${reason}: audit decision warned`);
    checkEnvelope(t, decision, review('secret-update'));
  }
  const unknownDeny = decideValidation(review('secret-update').request, unknownSnapshot('Stale'), {
    ...warn,
    onUnknown: 'deny',
  });
  t.equal(unknownDeny.allowed, true, 'warn mode also allows an unknown key under on-unknown deny');
  t.match(unknownDeny.warnings[0], /would deny/, 'and warns');
});

t.test('unknown key: on-unknown allow warns, deny denies', async (t) => {
  for (const reason of ['NeverFetched', 'Stale'] as const) {
    const snapshot = unknownSnapshot(reason);
    const allow = decideValidation(review('secret-create-generatename').request, snapshot, enforce);
    t.equal(allow.allowed, true, `${reason}: allowed with on-unknown allow`);
    t.equal(allow.warnings.length, 1, `${reason}: with one warning`);
    t.match(allow.warnings[0], /state unknown/, `${reason}: the warning says the state is unknown`);
    t.equal(allow.auditAnnotations['key-state'], 'Unknown', `${reason}: audit key-state Unknown`);
    const deny = decideValidation(review('secret-create-generatename').request, snapshot, {
      ...enforce,
      onUnknown: 'deny',
    });
    t.equal(deny.allowed, false, `${reason}: denied with on-unknown deny`);
    t.equal(deny.status?.code, 403, `${reason}: 403`);
    t.match(
      deny.status?.message,
      /state of KMS key .* is unknown/,
      `${reason}: message says unknown`,
    );
    t.match(deny.status?.message, /--on-unknown deny/, `${reason}: message names the setting`);
    checkEnvelope(t, deny, review('secret-create-generatename'));
  }
  t.match(
    decideValidation(review('secret-update').request, unknownSnapshot('Stale'), enforce)
      .warnings[0],
    /no KMS answer for 600s/,
    'a stale state says how old it is',
  );
});

t.test('usable but heading for trouble: short warnings', async (t) => {
  const scheduled = usableSnapshot({
    key: keyFacts({ deleteDate: new Date('2026-12-01T00:00:00Z') }),
  });
  const expiring = usableSnapshot({
    key: keyFacts({ materialExpireTime: new Date('2026-12-02T00:00:00Z') }),
  });
  const farExpiry = usableSnapshot({
    key: keyFacts({ materialExpireTime: new Date('2027-06-01T00:00:00Z') }),
  });
  const old = usableSnapshot({
    ageSeconds: 61,
    lastSuccessAt: new Date(NOW.getTime() - 61_000),
  });
  const request = review('secret-update').request;
  t.match(
    decideValidation(request, scheduled, enforce).warnings,
    [/scheduled for deletion at 2026-12-01T00:00:00Z/],
    'deletion scheduled',
  );
  t.match(
    decideValidation(request, expiring, enforce).warnings,
    [/material expires at 2026-12-02T00:00:00Z/],
    'material expiring within 7 days',
  );
  t.same(
    decideValidation(request, farExpiry, enforce).warnings,
    [],
    'no warning for expiry months away',
  );
  t.match(
    decideValidation(request, old, enforce).warnings,
    [/last confirmed 61s ago/],
    'older than two refresh intervals',
  );
  t.same(
    decideValidation(
      request,
      usableSnapshot({ ageSeconds: 60, lastSuccessAt: new Date(NOW.getTime() - 60_000) }),
      enforce,
    ).warnings,
    [],
    'exactly two intervals is fine',
  );
  for (const snapshot of [scheduled, expiring, old]) {
    checkEnvelope(t, decideValidation(request, snapshot, enforce), review('secret-update'));
  }
});

t.test('DELETE and non-Secret resources pass untouched in every state and mode', async (t) => {
  const snapshots: KeySnapshot[] = [
    usableSnapshot(),
    ...UNUSABLE.map((reason) => unusableSnapshot(reason)),
    unknownSnapshot('NeverFetched'),
  ];
  const policies: AdmissionPolicy[] = [
    enforce,
    { ...enforce, onUnknown: 'deny' },
    { ...enforce, mode: 'warn' },
  ];
  for (const name of ['secret-delete', 'configmap-create'] as const) {
    for (const snapshot of snapshots) {
      for (const policy of policies) {
        const label = `${name}/${snapshot.status}/${String(snapshot.reason)}/${policy.mode}/${policy.onUnknown}`;
        const validation = decideValidation(review(name).request, snapshot, policy);
        const mutation = decideMutation(review(name).request, snapshot);
        t.same(
          validation,
          { allowed: true, patch: [], warnings: [], auditAnnotations: {} },
          `${label}: validation allowed, nothing added`,
        );
        t.same(
          mutation,
          { allowed: true, patch: [], warnings: [], auditAnnotations: {} },
          `${label}: mutation allowed, nothing added`,
        );
      }
    }
  }
  const subresource = review('secret-update');
  const request = { ...subresource.request, subResource: 'status' };
  t.equal(
    decideValidation(request, unusableSnapshot('Disabled'), enforce).allowed,
    true,
    'a subresource is not a Secret write',
  );
});

t.test('dryRun gets exactly the same answer as a real request', async (t) => {
  const snapshots: KeySnapshot[] = [
    usableSnapshot(),
    ...UNUSABLE.map((reason) => unusableSnapshot(reason)),
    unknownSnapshot('Stale'),
  ];
  for (const snapshot of snapshots) {
    for (const policy of [enforce, { ...enforce, onUnknown: 'deny' as const }]) {
      const dry = review('secret-create-dryrun');
      const real = review('secret-create-dryrun');
      (real.request as { dryRun: boolean }).dryRun = false;
      t.same(
        decideValidation(dry.request, snapshot, policy),
        decideValidation(real.request, snapshot, policy),
        `${snapshot.status}/${String(snapshot.reason)}/${policy.onUnknown}: validation identical`,
      );
      t.same(
        decideMutation(dry.request, snapshot),
        decideMutation(real.request, snapshot),
        `${snapshot.status}/${String(snapshot.reason)}: mutation identical`,
      );
    }
  }
});

t.test('mutation stamps key id, version and rotation time only while usable', async (t) => {
  for (const name of [
    'secret-create-generatename',
    'secret-update',
    'secret-create-dryrun',
  ] as const) {
    const reviewed = review(name);
    const decision = decideMutation(reviewed.request, usableSnapshot());
    t.equal(decision.allowed, true, `${name}: allowed`);
    const done = complete(reviewed, decision);
    t.equal(done.response.patchType, 'JSONPatch', `${name}: JSONPatch`);
    const patch = JSON.parse(
      Buffer.from(done.response.patch ?? '', 'base64').toString('utf8'),
    ) as jsonPatch.Operation[];
    const patchedObject = jsonPatch.applyPatch(
      structuredClone(reviewed.request.object),
      patch,
      true,
      false,
    ).newDocument as { metadata: { annotations: Record<string, string> } };
    t.equal(
      patchedObject.metadata.annotations['kms-secret-guard.io/key-id'],
      KEY_ID,
      `${name}: key id (resolved, not the alias)`,
    );
    t.equal(
      patchedObject.metadata.annotations['kms-secret-guard.io/key-version'],
      'v-2026-11-28-primary',
      `${name}: version`,
    );
    t.equal(
      patchedObject.metadata.annotations['encryption-key-rotation-time'],
      '2026-11-28T09:00:00Z',
      `${name}: rotation time RFC 3339`,
    );
    t.equal(decision.auditAnnotations.stamped, 'true', `${name}: audit says stamped`);
  }
  for (const reason of UNUSABLE) {
    const decision = decideMutation(review('secret-update').request, unusableSnapshot(reason));
    t.equal(decision.allowed, true, `${reason}: mutation never denies`);
    t.same(decision.patch, [], `${reason}: no patch`);
    t.notOk(
      'patch' in complete(review('secret-update'), decision).response,
      `${reason}: no patch field`,
    );
    t.equal(decision.auditAnnotations.decision, 'skipped', `${reason}: audit says skipped`);
  }
  t.same(
    decideMutation(review('secret-update').request, unknownSnapshot('Stale')).patch,
    [],
    'unknown: no patch',
  );
});

t.test('mutation of an already-current Secret sends no patch', async (t) => {
  const reviewed = review('secret-update');
  const annotations = (reviewed.request.object?.metadata?.annotations ?? {}) as Record<
    string,
    string
  >;
  annotations['kms-secret-guard.io/key-id'] = KEY_ID;
  annotations['kms-secret-guard.io/key-version'] = 'v-2026-11-28-primary';
  annotations['encryption-key-rotation-time'] = '2026-11-28T09:00:00Z';
  const decision = decideMutation(reviewed.request, usableSnapshot());
  t.same(decision.patch, [], 'no operations');
  const done = complete(reviewed, decision);
  t.notOk('patch' in done.response, 'no patch in the response');
  t.notOk('patchType' in done.response, 'no patchType in the response');
  t.equal(decision.auditAnnotations.stamped, 'already-current', 'audit says already current');
});

t.test('property: every answer passes the API server checks, whatever the input', async (t) => {
  const snapshotArb = fc.oneof(
    fc.constant(usableSnapshot()),
    fc.constantFrom(...UNUSABLE).map((reason) => unusableSnapshot(reason)),
    fc
      .constantFrom('NeverFetched' as const, 'Stale' as const)
      .map((reason) => unknownSnapshot(reason)),
  );
  const policyArb = fc.record({
    mode: fc.constantFrom('enforce' as const, 'warn' as const),
    onUnknown: fc.constantFrom('allow' as const, 'deny' as const),
  });
  const requestArb = fc.record({
    uid: fc.uuid(),
    operation: fc.constantFrom('CREATE', 'UPDATE', 'DELETE', 'CONNECT', 'PATCH?'),
    resource: fc.record({
      group: fc.constantFrom('', 'apps'),
      version: fc.constant('v1'),
      resource: fc.constantFrom('secrets', 'configmaps'),
    }),
    dryRun: fc.boolean(),
    object: fc.option(
      fc.record({
        metadata: fc.record({
          annotations: fc.option(fc.dictionary(fc.string(), fc.string()), { nil: null }),
        }),
      }),
      { nil: null },
    ),
  });
  fc.assert(
    fc.property(requestArb, snapshotArb, policyArb, (request, snapshot, policy) => {
      const reviewed: AdmissionReviewRequest = { request };
      for (const decision of [
        decideValidation(request, snapshot, policy),
        decideMutation(request, snapshot),
      ]) {
        const done = complete(reviewed, decision).response;
        const guarded =
          request.resource.group === '' &&
          request.resource.resource === 'secrets' &&
          (request.operation === 'CREATE' || request.operation === 'UPDATE');
        if (done.uid !== request.uid) return false;
        if (!done.allowed && (done.status?.code !== 403 || 'patch' in done)) return false;
        if (!guarded && (!done.allowed || 'patch' in done || 'warnings' in done)) return false;
        if (policy.mode === 'warn' && !done.allowed) return false;
        if ((done.warnings ?? []).some((warning) => warning.length >= 120)) return false;
        if (
          Object.keys(done.auditAnnotations ?? {}).some((key) => !isValidAuditAnnotationKey(key))
        ) {
          return false;
        }
      }
      return decideValidation(request, snapshot, policy).patch.length === 0;
    }),
  );
  t.pass('held for generated requests, key states and policies');
});

t.test('long key ids (ARNs, aliases) are shortened in warnings, never the advice', async (t) => {
  const longId = `acs:kms:cn-hangzhou:1234567890123456:alias/${'cluster-secrets-'.repeat(4)}`;
  const warn = { mode: 'warn', onUnknown: 'deny' } as const;
  for (const reason of ['Disabled', 'NoPermission', 'MaterialExpired'] as const) {
    const snapshot = { ...unusableSnapshot(reason), configuredKeyId: longId, key: undefined };
    const [warning] = decideValidation(review('secret-update').request, snapshot, warn).warnings;
    t.ok(warning !== undefined && warning.length < 120, `${reason}: under 120 characters`);
    t.match(
      warning,
      /; (run EnableKey|grant kms:|re-import key material)/,
      `${reason}: advice kept`,
    );
    t.match(warning, /…/, `${reason}: the key id is shortened`);
  }
  const unknown = { ...unknownSnapshot('NeverFetched'), configuredKeyId: longId };
  const [allowWarning] = decideValidation(review('secret-update').request, unknown, {
    ...warn,
    mode: 'enforce',
    onUnknown: 'allow',
  }).warnings;
  t.match(allowWarning, /Secret write allowed unchecked\.$/, 'unknown state: advice kept');
});

t.test('expired imported material is reported as its own state', async (t) => {
  const expired = unusableSnapshot('MaterialExpired');
  // KMS may still report the key Enabled while its imported material has expired.
  const snapshot = { ...expired, key: expired.key && { ...expired.key, keyState: 'Enabled' } };
  const decision = decideValidation(review('secret-update').request, snapshot, {
    mode: 'enforce',
    onUnknown: 'allow',
  });
  t.equal(decision.auditAnnotations['key-state'], 'MaterialExpired', 'audit names the real state');
  t.match(decision.status?.message, /imported key material .* expired/, 'denial explains');
});
