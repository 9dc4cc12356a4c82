import { spawn } from 'node:child_process';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { startEmulator, type RunningEmulator } from '../../src/emulator/index.js';
import { scenario, type Results } from './scenario.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** An STS pair the emulator knows: signing with it needs this token. */
export const STS = { id: 'STS.interop', secret: 'sts-secret', securityToken: 'sts-token-1' };

interface TestLike {
  teardown(fn: () => unknown): void;
}

/** Runs a project script (scripts/python-sdks.sh, scripts/go-sdks.sh) and returns what it printed. */
export async function projectScript(name: string): Promise<string> {
  const { stdout } = await promisify(execFile)('bash', [`scripts/${name}`], {
    cwd: ROOT,
    maxBuffer: 1024 * 1024,
  });
  return stdout.trim();
}

export async function interopEmulator(t: TestLike): Promise<RunningEmulator> {
  const emulator = await startEmulator({
    host: '127.0.0.1',
    port: 0,
    keys: ['interop-key'],
    accessKeys: [{ id: 'LTAIinterop', secret: 'interop-secret' }, STS],
  });
  t.teardown(() => emulator.close());
  return emulator;
}

/** What a program reads on stdin: where the emulator is, and the cases for one SDK. */
export function programInput(emulator: RunningEmulator, sdk: string): Record<string, unknown> {
  return {
    url: emulator.url,
    endpoint: emulator.endpoint,
    regionId: emulator.regionId,
    accessKeyId: emulator.accessKeyId,
    accessKeySecret: emulator.accessKeySecret,
    keyId: emulator.keyIds[0],
    sts: STS,
    cases: scenario(sdk, emulator.accessKeyId),
  };
}

/**
 * Runs a program as a child process (never synchronously: the emulator answers from this
 * process), feeding `stdin` and returning what it printed; throws when it fails.
 */
export async function runCommand(
  command: string,
  args: readonly string[],
  stdin = '',
  timeoutMs = 240_000,
): Promise<string> {
  const child = spawn(command, args, { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.stdin.end(stdin);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  if (code !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited ${String(code)}: ${stderr.slice(-2000)}`);
  }
  return stdout;
}

/** Runs an SDK program with `input` as JSON on stdin and parses the JSON it prints. */
export async function runProgram(
  command: string,
  args: readonly string[],
  input: unknown,
): Promise<Results> {
  return JSON.parse(await runCommand(command, args, JSON.stringify(input))) as Results;
}
