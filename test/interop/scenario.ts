import type { Test } from 'tap';
import { KMS_ACTIONS, KMS_ERRORS } from '../../src/emulator/index.js';

/**
 * One scenario every SDK program runs against the emulator: every action, the errors real
 * key states give, and every documented error code injected through the admin routes.
 * Programs get it as JSON on stdin and print `{case name: {ok, value} | {ok: false, code,
 * status}}`. A string parameter `{{Case.Path.To.Field}}` is taken from an earlier result.
 */
export interface SdkCase {
  name: string;
  action: (typeof KMS_ACTIONS)[number];
  params: Record<string, unknown>;
  /** Sign with a wrong secret or an unknown access key id. */
  as?: 'wrongSecret' | 'unknownKey';
  /** An admin call (`/_emulator/…`) made before this case. */
  admin?: { method: 'POST' | 'DELETE'; path: string; body?: unknown };
}

export interface CaseResult {
  ok: boolean;
  value?: Record<string, unknown>;
  code?: string;
  status?: number | null;
  message?: string;
}

export type Results = Record<string, CaseResult | undefined>;

export const PLAINTEXT = "h\u00e9llo *~ !'() +%/ world";
export const CONTEXT = { purpose: 'interop test', tricky: 'a*b~c d' };
const KEY = '{{CreateKey.KeyMetadata.KeyId}}';

/** The cases whose expected outcome is an error code and HTTP status. */
export const EXPECTED_ERRORS: Record<string, [string, number]> = {
  'Decrypt with another context': ['InvalidParameter', 400],
  'Encrypt with a Disabled key': ['Rejected.Disabled', 409],
  'Encrypt with a PendingDeletion key': ['Rejected.PendingDeletion', 409],
  'DescribeKey of an unknown key': ['Forbidden.KeyNotFound', 404],
  'DescribeKey of an unknown alias': ['Forbidden.AliasNotFound', 404],
  'DescribeKeyVersion of an unknown version': ['Forbidden.ResourceNotFound', 404],
  'CreateAlias twice': ['Rejected.AlreadyExists', 409],
  'CancelKeyDeletion of an Enabled key': ['Rejected.UnexpectedState', 409],
  'Encrypt without Plaintext': ['MissingParameter', 400],
  'ScheduleKeyDeletion for 1 day': ['InvalidParameter', 400],
  'Encrypt with a PendingImport key': ['Rejected.PendingImport', 409],
  'denied access key': ['Forbidden.NoPermission', 403],
  'unknown access key': ['InvalidAccessKeyId.NotFound', 404],
};

export function scenario(sdk: string, accessKeyId: string): SdkCase[] {
  const alias = `alias/interop-${sdk}`;
  const blob = '{{Encrypt.CiphertextBlob}}';
  const cases: SdkCase[] = [
    { name: 'CreateKey', action: 'CreateKey', params: { Description: `interop ${sdk}` } },
    { name: 'DescribeKey', action: 'DescribeKey', params: { KeyId: KEY } },
    { name: 'ListKeys', action: 'ListKeys', params: { PageSize: 100 } },
    { name: 'CreateAlias', action: 'CreateAlias', params: { KeyId: KEY, AliasName: alias } },
    { name: 'ListAliases', action: 'ListAliases', params: { PageSize: 100 } },
    { name: 'DescribeKey by alias', action: 'DescribeKey', params: { KeyId: alias } },
    {
      name: 'Encrypt',
      action: 'Encrypt',
      params: { KeyId: KEY, Plaintext: PLAINTEXT, EncryptionContext: CONTEXT },
    },
    {
      name: 'Decrypt',
      action: 'Decrypt',
      params: { CiphertextBlob: blob, EncryptionContext: CONTEXT },
    },
    {
      name: 'Decrypt with another context',
      action: 'Decrypt',
      params: { CiphertextBlob: blob, EncryptionContext: { purpose: 'other' } },
    },
    {
      name: 'GenerateDataKey',
      action: 'GenerateDataKey',
      params: { KeyId: KEY, NumberOfBytes: 32, EncryptionContext: CONTEXT },
    },
    {
      name: 'Decrypt data key',
      action: 'Decrypt',
      params: { CiphertextBlob: '{{GenerateDataKey.CiphertextBlob}}', EncryptionContext: CONTEXT },
    },
    { name: 'CreateKeyVersion', action: 'CreateKeyVersion', params: { KeyId: KEY } },
    { name: 'ListKeyVersions', action: 'ListKeyVersions', params: { KeyId: KEY, PageSize: 10 } },
    {
      name: 'DescribeKeyVersion',
      action: 'DescribeKeyVersion',
      params: { KeyId: KEY, KeyVersionId: '{{CreateKeyVersion.KeyVersion.KeyVersionId}}' },
    },
    {
      name: 'Decrypt after rotation',
      action: 'Decrypt',
      params: { CiphertextBlob: blob, EncryptionContext: CONTEXT },
    },
    {
      name: 'UpdateRotationPolicy',
      action: 'UpdateRotationPolicy',
      params: { KeyId: KEY, EnableAutomaticRotation: true, RotationInterval: '30d' },
    },
    {
      name: 'DescribeKey after UpdateRotationPolicy',
      action: 'DescribeKey',
      params: { KeyId: KEY },
    },
    { name: 'DisableKey', action: 'DisableKey', params: { KeyId: KEY } },
    {
      name: 'Encrypt with a Disabled key',
      action: 'Encrypt',
      params: { KeyId: KEY, Plaintext: 'x' },
    },
    { name: 'EnableKey', action: 'EnableKey', params: { KeyId: KEY } },
    {
      name: 'ScheduleKeyDeletion',
      action: 'ScheduleKeyDeletion',
      params: { KeyId: KEY, PendingWindowInDays: 7 },
    },
    {
      name: 'Encrypt with a PendingDeletion key',
      action: 'Encrypt',
      params: { KeyId: KEY, Plaintext: 'x' },
    },
    { name: 'CancelKeyDeletion', action: 'CancelKeyDeletion', params: { KeyId: KEY } },
    { name: 'DescribeKey after CancelKeyDeletion', action: 'DescribeKey', params: { KeyId: KEY } },
    { name: 'DescribeKey of an unknown key', action: 'DescribeKey', params: { KeyId: 'no-such' } },
    {
      name: 'DescribeKey of an unknown alias',
      action: 'DescribeKey',
      params: { KeyId: 'alias/none' },
    },
    {
      name: 'DescribeKeyVersion of an unknown version',
      action: 'DescribeKeyVersion',
      params: { KeyId: KEY, KeyVersionId: 'no-such-version' },
    },
    { name: 'CreateAlias twice', action: 'CreateAlias', params: { KeyId: KEY, AliasName: alias } },
    {
      name: 'CancelKeyDeletion of an Enabled key',
      action: 'CancelKeyDeletion',
      params: { KeyId: KEY },
    },
    { name: 'Encrypt without Plaintext', action: 'Encrypt', params: { KeyId: KEY } },
    {
      name: 'ScheduleKeyDeletion for 1 day',
      action: 'ScheduleKeyDeletion',
      params: { KeyId: KEY, PendingWindowInDays: 1 },
    },
    { name: 'CreateKey EXTERNAL', action: 'CreateKey', params: { Origin: 'EXTERNAL' } },
    {
      name: 'Encrypt with a PendingImport key',
      action: 'Encrypt',
      params: { KeyId: '{{CreateKey EXTERNAL.KeyMetadata.KeyId}}', Plaintext: 'x' },
    },
    { name: 'wrong secret', action: 'DescribeKey', params: { KeyId: KEY }, as: 'wrongSecret' },
    {
      name: 'unknown access key',
      action: 'DescribeKey',
      params: { KeyId: KEY },
      as: 'unknownKey',
    },
  ];
  for (const code of Object.keys(KMS_ERRORS)) {
    cases.push({
      name: `injected ${code}`,
      action: 'DescribeKey',
      params: { KeyId: KEY },
      admin: {
        method: 'POST',
        path: '/_emulator/faults',
        body: { failShare: 1, failCode: code, failActions: ['DescribeKey'] },
      },
    });
  }
  cases.push({
    name: 'denied access key',
    action: 'DescribeKey',
    params: { KeyId: KEY },
    admin: { method: 'POST', path: '/_emulator/faults', body: { deniedAccessKeys: [accessKeyId] } },
  });
  cases.push({
    name: 'after faults are cleared',
    action: 'DescribeKey',
    params: { KeyId: KEY },
    admin: { method: 'DELETE', path: '/_emulator/faults' },
  });
  return cases;
}

function value(results: Results, name: string): Record<string, unknown> {
  return results[name]?.value ?? {};
}

function field(object: Record<string, unknown>, name: string): Record<string, unknown> {
  const inner = object[name];
  return typeof inner === 'object' && inner !== null ? (inner as Record<string, unknown>) : {};
}

/** The assertions every SDK's results must pass (`wrongSecret`: the code that SDK reports). */
export function assertScenario(
  t: Test,
  sdk: string,
  results: Results,
  wrongSecret = 'SignatureDoesNotMatch',
): void {
  const succeeded = scenario(sdk, '').filter(
    (c) =>
      EXPECTED_ERRORS[c.name] === undefined &&
      !c.name.startsWith('injected ') &&
      c.name !== 'wrong secret',
  );
  for (const { name } of succeeded) {
    t.equal(results[name]?.ok, true, `${sdk}: ${name} succeeds (${results[name]?.message ?? ''})`);
  }
  for (const [name, [code, status]] of Object.entries(EXPECTED_ERRORS)) {
    t.same([results[name]?.code, results[name]?.status], [code, status], `${sdk}: ${name}`);
  }
  t.equal(results['wrong secret']?.code, wrongSecret, `${sdk}: a wrong secret is ${wrongSecret}`);
  for (const [code, { status }] of Object.entries(KMS_ERRORS)) {
    const got = results[`injected ${code}`];
    t.same([got?.code, got?.status], [code, status], `${sdk}: injected ${code} → ${status}`);
  }
  const key = field(value(results, 'DescribeKey'), 'KeyMetadata');
  t.equal(key.KeyState, 'Enabled', `${sdk}: DescribeKey reads the new key`);
  t.equal(
    field(value(results, 'DescribeKey by alias'), 'KeyMetadata').KeyId,
    key.KeyId,
    `${sdk}: the alias resolves to the key`,
  );
  t.equal(value(results, 'Decrypt').Plaintext, PLAINTEXT, `${sdk}: Decrypt returns the plaintext`);
  t.equal(
    value(results, 'Decrypt after rotation').Plaintext,
    PLAINTEXT,
    `${sdk}: old ciphertext decrypts after rotation`,
  );
  t.equal(
    value(results, 'Decrypt data key').Plaintext,
    value(results, 'GenerateDataKey').Plaintext,
    `${sdk}: the data key blob decrypts to the data key`,
  );
  t.equal(
    value(results, 'ListKeyVersions').TotalCount,
    2,
    `${sdk}: two versions after CreateKeyVersion`,
  );
  t.equal(
    field(value(results, 'DescribeKey after UpdateRotationPolicy'), 'KeyMetadata')
      .AutomaticRotation,
    'Enabled',
    `${sdk}: UpdateRotationPolicy turned rotation on`,
  );
  t.equal(
    field(value(results, 'DescribeKey after CancelKeyDeletion'), 'KeyMetadata').KeyState,
    'Enabled',
    `${sdk}: CancelKeyDeletion returns the key to Enabled`,
  );
}
