// The product's user stories against a real kube-apiserver and etcd, driven with kubectl:
// key Enabled → Disabled → Enabled → PendingDeletion → (cancel) → Enabled → rotated.
import t from 'tap';
import { useGuardedCluster, type KubectlResult } from './harness/index.js';

import {
  annotationsInDryRun,
  denialMessage,
  KEY_ID_ANNOTATION,
  KEY_VERSION_ANNOTATION,
  ROTATION_TIME_ANNOTATION,
  secretAnnotations,
  secretManifest,
  waitForAnswer,
} from './harness/secrets.js';

t.setTimeout(300_000);

const NS = 'team-a';
const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

const refused = (result: KubectlResult): boolean => denialMessage(result) !== undefined;
const allowed = (result: KubectlResult): boolean => result.code === 0;

const e2e = useGuardedCluster(t, NS);

t.test('1. key Enabled: kubectl create succeeds and the Secret is stamped', async (t) => {
  const created = await e2e.cluster.kubectl([
    'create',
    'secret',
    'generic',
    'app-config',
    '-n',
    NS,
    '--from-literal=password=e2e',
  ]);
  t.equal(created.code, 0, `kubectl create secret succeeds (${created.stderr.trim()})`);
  const key = await e2e.guard.kms.describeKey();
  const annotations = await secretAnnotations(e2e.cluster, NS, 'app-config');
  t.equal(annotations[KEY_ID_ANNOTATION], e2e.guard.keyId, 'key-id is the emulator key id');
  t.equal(
    annotations[KEY_VERSION_ANNOTATION],
    key.primaryKeyVersion,
    'key-version is the primary key version',
  );
  t.match(
    annotations[ROTATION_TIME_ANNOTATION],
    RFC3339_UTC,
    'encryption-key-rotation-time is an RFC 3339 UTC time',
  );
});

t.test(
  '2. DisableKey: writes refused with our message; deletes and kube-system work',
  async (t) => {
    // A Secret written while the key was fine, to update and delete later.
    const before = await e2e.cluster.kubectl(['apply', '-f', '-'], {
      input: secretManifest(NS, 'existing'),
    });
    t.equal(before.code, 0, 'a Secret is created while the key is Enabled');

    await e2e.guard.kms.disableKey();
    t.equal(
      (await e2e.guard.kms.describeKey()).keyState,
      'Disabled',
      'KMS reports the key Disabled',
    );
    const { afterMs } = await waitForAnswer(e2e.cluster, NS, 'writes to be refused', refused);
    t.comment(`the webhook refused writes ${afterMs}ms after DisableKey`);

    const create = await e2e.cluster.kubectl([
      'create',
      'secret',
      'generic',
      'refused',
      '-n',
      NS,
      '--from-literal=value=e2e',
    ]);
    t.not(create.code, 0, 'kubectl create secret fails');
    const message = denialMessage(create) ?? '';
    t.match(create.stderr, 'validate.kms-secret-guard.io', 'the denial comes from our webhook');
    t.match(message, e2e.guard.keyId, 'the message names the key id');
    t.match(message, /disabled/i, 'the message names the key state');

    const update = await e2e.cluster.kubectl([
      'label',
      'secret',
      'existing',
      '-n',
      NS,
      'touched=yes',
    ]);
    t.not(update.code, 0, 'updating an existing Secret (kubectl label) fails');
    t.equal(denialMessage(update), message, 'the update is refused with the same message');

    const apply = await e2e.cluster.kubectl(['apply', '-f', '-'], {
      input: secretManifest(NS, 'applied'),
    });
    t.not(apply.code, 0, 'kubectl apply of a new Secret fails');
    t.equal(denialMessage(apply), message, 'apply is refused with the same message');

    const applyExisting = await e2e.cluster.kubectl(['apply', '-f', '-'], {
      input: secretManifest(NS, 'existing', 'changed'),
    });
    t.not(applyExisting.code, 0, 'kubectl apply changing an existing Secret fails');
    t.equal(denialMessage(applyExisting), message, 'that apply is refused with the same message');

    const dryRun = await e2e.cluster.kubectl(['apply', '--dry-run=server', '-f', '-'], {
      input: secretManifest(NS, 'applied'),
    });
    t.not(dryRun.code, 0, 'kubectl apply --dry-run=server fails');
    t.equal(denialMessage(dryRun), message, 'the dry run gets exactly the same message');

    const deleted = await e2e.cluster.kubectl(['delete', 'secret', 'existing', '-n', NS]);
    t.equal(deleted.code, 0, `kubectl delete secret still works (${deleted.stderr.trim()})`);

    const system = await e2e.cluster.kubectl([
      'create',
      'secret',
      'generic',
      'system-secret',
      '-n',
      'kube-system',
      '--from-literal=value=e2e',
    ]);
    t.equal(system.code, 0, `Secrets in kube-system are not guarded (${system.stderr.trim()})`);
  },
);

t.test('3. EnableKey: writes work again within a refresh interval', async (t) => {
  await e2e.guard.kms.enableKey();
  const { afterMs } = await waitForAnswer(e2e.cluster, NS, 'writes to be allowed again', allowed);
  t.comment(`writes were allowed again ${afterMs}ms after EnableKey (refresh interval 1s)`);
  const created = await e2e.cluster.kubectl([
    'create',
    'secret',
    'generic',
    'after-enable',
    '-n',
    NS,
    '--from-literal=value=e2e',
  ]);
  t.equal(created.code, 0, `kubectl create secret succeeds again (${created.stderr.trim()})`);
  const annotations = await secretAnnotations(e2e.cluster, NS, 'after-enable');
  t.equal(annotations[KEY_ID_ANNOTATION], e2e.guard.keyId, 'the new Secret is stamped again');
});

t.test('4. ScheduleKeyDeletion refuses naming the date; CancelKeyDeletion restores', async (t) => {
  const deleteDate = await e2e.guard.kms.scheduleKeyDeletion(7);
  t.match(deleteDate, /^\d{4}-\d{2}-\d{2}/, `KMS reports the deletion date (${deleteDate})`);
  await waitForAnswer(e2e.cluster, NS, 'writes to be refused (PendingDeletion)', refused);

  const create = await e2e.cluster.kubectl([
    'create',
    'secret',
    'generic',
    'pending-deletion',
    '-n',
    NS,
    '--from-literal=value=e2e',
  ]);
  t.not(create.code, 0, 'kubectl create secret fails while deletion is pending');
  const message = denialMessage(create) ?? '';
  t.match(message, e2e.guard.keyId, 'the message names the key id');
  t.match(message, deleteDate.slice(0, 10), 'the message names the deletion date');
  t.match(message, /delet/i, 'the message says the key is being deleted');

  // Alibaba Cloud KMS returns a key to Enabled when its deletion is cancelled (AWS KMS
  // would leave it Disabled); the emulator follows Alibaba Cloud.
  await e2e.guard.kms.cancelKeyDeletion();
  t.equal(
    (await e2e.guard.kms.describeKey()).keyState,
    'Enabled',
    'after CancelKeyDeletion KMS reports the key Enabled',
  );
  await waitForAnswer(e2e.cluster, NS, 'writes to be allowed after CancelKeyDeletion', allowed);
  const created = await e2e.cluster.kubectl([
    'create',
    'secret',
    'generic',
    'after-cancel',
    '-n',
    NS,
    '--from-literal=value=e2e',
  ]);
  t.equal(created.code, 0, `writes work again after the cancellation (${created.stderr.trim()})`);
});

t.test(
  '5. rotation: new and updated Secrets get the new version, others keep theirs',
  async (t) => {
    for (const name of ['untouched', 'updated']) {
      const created = await e2e.cluster.kubectl([
        'create',
        'secret',
        'generic',
        name,
        '-n',
        NS,
        '--from-literal=value=e2e',
      ]);
      t.equal(created.code, 0, `Secret ${name} is created before the rotation`);
    }
    const oldVersion = (await secretAnnotations(e2e.cluster, NS, 'untouched'))[
      KEY_VERSION_ANNOTATION
    ];
    const oldRotationTime = (await secretAnnotations(e2e.cluster, NS, 'untouched'))[
      ROTATION_TIME_ANNOTATION
    ];
    t.ok(oldVersion, `the Secrets carry the old version (${String(oldVersion)})`);

    const newVersion = await e2e.guard.kms.createKeyVersion();
    t.not(newVersion, oldVersion, 'CreateKeyVersion made a new version');
    t.equal(
      (await e2e.guard.kms.describeKey()).primaryKeyVersion,
      newVersion,
      'the new version is primary',
    );
    await waitForAnswer(
      e2e.cluster,
      NS,
      'the webhook to stamp the new version',
      (result) => annotationsInDryRun(result)[KEY_VERSION_ANNOTATION] === newVersion,
    );

    const created = await e2e.cluster.kubectl([
      'create',
      'secret',
      'generic',
      'after-rotation',
      '-n',
      NS,
      '--from-literal=value=e2e',
    ]);
    t.equal(created.code, 0, 'a new Secret is created after the rotation');
    const fresh = await secretAnnotations(e2e.cluster, NS, 'after-rotation');
    t.equal(fresh[KEY_VERSION_ANNOTATION], newVersion, 'the new Secret has the new version');
    t.equal(fresh[KEY_ID_ANNOTATION], e2e.guard.keyId, 'the key id stays the same');
    t.match(fresh[ROTATION_TIME_ANNOTATION], RFC3339_UTC, 'the rotation time is RFC 3339 UTC');
    t.not(fresh[ROTATION_TIME_ANNOTATION], undefined, 'the rotation time is present');

    const updated = await e2e.cluster.kubectl([
      'label',
      'secret',
      'updated',
      '-n',
      NS,
      'touched=yes',
    ]);
    t.equal(updated.code, 0, 'an existing Secret is updated (kubectl label)');
    t.equal(
      (await secretAnnotations(e2e.cluster, NS, 'updated'))[KEY_VERSION_ANNOTATION],
      newVersion,
      'the updated Secret has the new version',
    );

    const untouched = await secretAnnotations(e2e.cluster, NS, 'untouched');
    t.equal(
      untouched[KEY_VERSION_ANNOTATION],
      oldVersion,
      'the untouched Secret keeps the old one',
    );
    t.equal(untouched[ROTATION_TIME_ANNOTATION], oldRotationTime, 'and its old rotation time');
  },
);
