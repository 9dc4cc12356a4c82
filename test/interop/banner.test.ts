import t from 'tap';
import { PassThrough } from 'node:stream';
import { runCli } from '../../src/cli/program.js';
import type { CliContext } from '../../src/cli/context.js';
import { projectScript, runCommand } from './programs.js';

// The SDK lines the `kms-emulator` banner prints work as printed: pasted into a program
// with the real current Python SDK and the Node SDK, they reach the running emulator.

async function banner(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const stdout = new PassThrough();
  let out = '';
  const printed = new Promise<void>((resolve) => {
    stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('  Node:')) resolve();
    });
  });
  const controller = new AbortController();
  const ctx: CliContext = {
    env: {},
    stdout,
    stderr: new PassThrough(),
    stopSignal: controller.signal,
    exitCode: 0,
  };
  const done = runCli(['kms-emulator', '--key', 'banner-key', '--log-level', 'error'], ctx);
  t.teardown(async () => {
    controller.abort();
    await done;
  });
  await Promise.race([printed, done]);
  return out;
}

function line(output: string, label: string): string {
  const found = new RegExp(`^  ${label}:\\s+(.+)$`, 'm').exec(output)?.[1];
  if (found === undefined) throw new Error(`no ${label} line in the banner:\n${output}`);
  return found;
}

const python = await projectScript('python-sdks.sh');

t.test('the banner’s Python and Node lines reach the emulator', async (t) => {
  const output = await banner(t);
  const pythonProgram = [
    'from alibabacloud_kms20160120 import models',
    'from alibabacloud_kms20160120.client import Client',
    'from alibabacloud_tea_openapi.models import Config',
    `kms = Client(${line(output, 'Python')})`,
    "print(kms.describe_key(models.DescribeKeyRequest(key_id='banner-key')).body.key_metadata.key_state)",
  ].join('\n');
  const fromPython = await runCommand(python, ['-c', pythonProgram]);
  t.equal(fromPython.trim(), 'Enabled', 'the Python line, pasted into Config(…), works');
  const nodeProgram = [
    "import Kms from '@alicloud/kms20160120';",
    "import RpcClient from '@alicloud/rpc-client';",
    'const { Config } = RpcClient;',
    `const kms = new Kms.default(${line(output, 'Node')});`,
    "const key = await kms.describeKey(new Kms.DescribeKeyRequest({ keyId: 'banner-key' }));",
    'console.log(key.keyMetadata.keyState);',
  ].join('\n');
  const fromNode = await runCommand(process.execPath, ['--input-type=module', '-e', nodeProgram]);
  t.equal(fromNode.trim(), 'Enabled', 'the Node line, pasted in, works');
  t.match(
    line(output, 'Go'),
    /^&openapi\.Config\{Endpoint: tea\.String\("127\.0\.0\.1:\d+"\), Protocol: tea\.String\("http"\)/,
    'the Go line names endpoint and protocol',
  );
});
