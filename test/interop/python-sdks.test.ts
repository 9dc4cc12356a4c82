import t, { type Test } from 'tap';
import { assertScenario, type Results } from './scenario.js';
import { interopEmulator, programInput, projectScript, runProgram } from './programs.js';

// The official Python SDKs, installed from PyPI by scripts/python-sdks.sh (pinned in
// test/interop/python/requirements.txt), against the emulator: the current SDK signs V3
// (ACS3-HMAC-SHA256), the classic one signs v1.0 (HMAC-SHA1). One process per SDK.

/** The attack cases both Python programs run by patching the SDK's internals. */
function assertAttacks(t: Test, sdk: string, results: Results) {
  const expect = (name: string, code: string, status: number): void => {
    t.same([results[name]?.code, results[name]?.status], [code, status], `${sdk}: ${name}`);
  };
  expect('tampered query', 'SignatureDoesNotMatch', 400);
  t.equal(results['first use of a nonce']?.ok, true, `${sdk}: a fresh nonce is accepted`);
  expect('replayed nonce', 'SignatureNonceUsed', 400);
  expect('clock 20 minutes behind', 'InvalidTimeStamp.Expired', 400);
  expect('clock 20 minutes ahead', 'InvalidTimeStamp.Expired', 400);
  t.equal(results['clock 10 minutes behind']?.ok, true, `${sdk}: 10 minutes of skew pass`);
}

const python = await projectScript('python-sdks.sh');

t.test('current Python SDK (alibabacloud-kms20160120, signature V3)', async (t) => {
  const emulator = await interopEmulator(t);
  const results = await runProgram(
    python,
    ['test/interop/python/current_sdk.py'],
    programInput(emulator, 'python-current'),
  );
  assertScenario(t, 'python-current', results);
  assertAttacks(t, 'python-current', results);
  t.same(
    [results['tampered body']?.code, results['tampered body']?.status],
    ['SignatureDoesNotMatch', 400],
    'python-current: a body changed after signing (x-acs-content-sha256) is refused',
  );
  t.equal(results['STS token']?.ok, true, 'python-current: an STS pair signs with its token');
  t.same(
    [results['wrong STS token']?.code, results['wrong STS token']?.status],
    ['InvalidSecurityToken.MismatchWithAccessKey', 400],
    'python-current: another token is refused',
  );
});

t.test('classic Python SDK (aliyun-python-sdk-kms, signature v1.0)', async (t) => {
  const emulator = await interopEmulator(t);
  const results = await runProgram(
    python,
    ['test/interop/python/classic_sdk.py'],
    programInput(emulator, 'python-classic'),
  );
  // The classic core compares its string to sign with the one the server names in the
  // message: equal strings and a mismatch mean the secret is wrong.
  assertScenario(t, 'python-classic', results, 'InvalidAccessKeySecret');
  assertAttacks(t, 'python-classic', results);
  t.equal(results.GET?.ok, true, 'python-classic: a GET request with query parameters works');
});
