import t from 'tap';
import { assertScenario, scenario, type Results } from './scenario.js';
import { interopEmulator, programInput, projectScript, runProgram } from './programs.js';

// The official Go SDKs, built by scripts/go-sdks.sh from test/interop/go (modules from the
// Go module proxy, pinned in its go.sum): the current alibabacloud-go/kms-20160120/v3
// (signature V3) and the classic aliyun/alibaba-cloud-sdk-go/services/kms (signature v1.0,
// what ack-kms-plugin uses). One process runs both.

const binary = await projectScript('go-sdks.sh');

t.test('current and classic Go SDKs', async (t) => {
  const emulator = await interopEmulator(t);
  const input = {
    ...programInput(emulator, 'go-current'),
    classicCases: scenario('go-classic', emulator.accessKeyId),
  };
  const output = (await runProgram(binary, [], input)) as unknown as {
    current: Results;
    classic: Results;
  };
  assertScenario(t, 'go-current', output.current);
  assertScenario(t, 'go-classic', output.classic);
});
