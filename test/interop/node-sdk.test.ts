import t from 'tap';
import { Kms, sdkFor, type KmsSdkClient } from '../helpers/emulator.js';
import { assertScenario, scenario, type Results, type SdkCase } from './scenario.js';
import { interopEmulator } from './programs.js';
import type { RunningEmulator } from '../../src/emulator/index.js';

// The Node SDK the guard ships with (@alicloud/kms20160120 1.x, signature v1.0) through the
// same scenario as the Python and Go programs, in process.

type Models = Record<string, new (map: Record<string, unknown>) => unknown>;
type Method = (request: unknown) => Promise<{ toMap(): Record<string, unknown> }>;

const camel = (name: string): string => name.charAt(0).toLowerCase() + name.slice(1);

function resolve(results: Results, value: unknown): unknown {
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(results, v)]));
  }
  const match = typeof value === 'string' ? /^\{\{([^.]+)\.(.+)\}\}$/.exec(value) : null;
  if (!match?.[1] || match[2] === undefined) return value;
  let found: unknown = results[match[1]]?.value;
  for (const part of match[2].split('.'))
    found = (found as Record<string, unknown> | undefined)?.[part];
  return typeof found === 'string' ? found : 'unresolved';
}

async function call(sdk: KmsSdkClient, step: SdkCase, params: Record<string, unknown>) {
  const model = (Kms as unknown as Models)[`${step.action}Request`];
  const method = (sdk as unknown as Record<string, Method>)[camel(step.action)];
  if (!model || !method) throw new Error(`the Node SDK has no ${step.action}`);
  const request = new model(
    Object.fromEntries(Object.entries(params).map(([k, v]) => [camel(k), v])),
  );
  const response = await method.call(sdk, request);
  return response.toMap();
}

async function run(emulator: RunningEmulator, cases: SdkCase[]): Promise<Results> {
  const clients = {
    wrongSecret: sdkFor(emulator, { accessKeySecret: 'wrong' }),
    unknownKey: sdkFor(emulator, { accessKeyId: 'LTAInobody' }),
    default: sdkFor(emulator),
  };
  const results: Results = {};
  for (const step of cases) {
    if (step.admin) {
      await fetch(`${emulator.url}${step.admin.path}`, {
        method: step.admin.method,
        headers: { 'content-type': 'application/json' },
        body: step.admin.body === undefined ? null : JSON.stringify(step.admin.body),
      });
    }
    try {
      const params = resolve(results, step.params) as Record<string, unknown>;
      results[step.name] = {
        ok: true,
        value: await call(clients[step.as ?? 'default'], step, params),
      };
    } catch (error) {
      // The SDK names an answer's code `<Code>Error` and puts the status in its message.
      const { code, message } = error as { code?: string; message: string };
      const status = /code: (\d{3})/.exec(message)?.[1];
      results[step.name] = {
        ok: false,
        code: (code ?? 'unknown').replace(/Error$/, ''),
        status: status === undefined ? null : Number(status),
        message,
      };
    }
  }
  return results;
}

t.test('the Node SDK we ship with (@alicloud/kms20160120, signature v1.0)', async (t) => {
  const emulator = await interopEmulator(t);
  const results = await run(emulator, scenario('node', emulator.accessKeyId));
  assertScenario(t, 'node', results);
});
