import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { runCli } from '../../src/cli/program.js';
import { occupyPort } from '../helpers/cli.js';
import type { CliContext } from '../../src/cli/context.js';
import { decodePatch, type ReviewAnswer } from '../helpers/server.js';
import { eventually } from '../helpers/eventually.js';
import { httpCall, httpGet, httpsCall, type HttpResult } from '../helpers/http.js';
import { LogCapture } from '../helpers/logs.js';

/** The key version the mutation stamps (the first patch operation adds the annotations). */
function stampedVersion(answer: ReviewAnswer): string | undefined {
  const value = decodePatch(answer)[0]?.value as Record<string, string> | undefined;
  return value?.['kms-secret-guard.io/key-version'];
}

/** Runs one curl command line exactly as dev printed it, in-process (no curl binary). */
async function runCurl(line: string): Promise<HttpResult> {
  const review =
    /^curl --cacert (\S+) -H 'Content-Type: application\/json' --data @(\S+) (https:\S+)$/.exec(
      line,
    );
  if (review) {
    const [, caFile, dataFile, url] = review;
    return httpsCall(url!, { ca: readFileSync(caFile!, 'utf8'), body: readFileSync(dataFile!) });
  }
  const post = /^curl -X POST (http:\S+)$/.exec(line);
  if (post) {
    return httpCall(post[1]!, { method: 'POST' });
  }
  const get = /^curl (http:\S+)$/.exec(line);
  if (get) return httpGet(get[1]!);
  throw new Error(`not a curl line dev should print: ${line}`);
}

t.test('dev starts everything and answers its own curl examples', async (t) => {
  const stop = new AbortController();
  const stdout = new LogCapture();
  const stderr = new LogCapture();
  const ctx: CliContext = { env: {}, stdout, stderr, stopSignal: stop.signal, exitCode: -1 };
  const running = runCli(
    [
      'dev',
      '--port',
      '0',
      '--health-port',
      '0',
      '--control-port',
      '0',
      '--refresh-interval',
      '200ms',
    ],
    ctx,
  );
  t.teardown(async () => {
    stop.abort('teardown');
    await running;
  });
  t.ok(
    await eventually(() => stdout.text().includes('Stop with Ctrl-C'), { timeoutMs: 10000 }),
    'dev printed its instructions',
  );
  const printed = stdout.text();
  t.match(printed, /Admission \(HTTPS\):\s+https:\/\/127\.0\.0\.1:\d+/, 'prints the admission URL');
  t.match(printed, /Health \(HTTP\):\s+http:\/\/127\.0\.0\.1:\d+/, 'prints the health URL');
  t.match(printed, /CA certificate:\s+\/\S+ca\.crt/, 'prints the CA path');
  const curls = printed
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.startsWith('curl '));
  const find = (pattern: RegExp): string => {
    const line = curls.find((candidate) => pattern.test(candidate));
    if (line === undefined) throw new Error(`no printed curl matches ${pattern}`);
    return line;
  };
  const allowed = find(/allowed\.json \S+\/validate$/);
  const mutate = find(/allowed\.json \S+\/mutate$/);
  const denied = find(/denied\.json \S+\/validate$/);
  const disable = find(/\/key\/disable$/);
  const enable = find(/\/key\/enable$/);
  const rotate = find(/\/key\/rotate$/);
  const healthz = find(/\/healthz\/kms$/);
  t.ok(
    find(/\/key\/schedule-deletion$/) && find(/\/key\/cancel-deletion$/),
    'deletion commands printed',
  );

  const healthUrl = /^curl (http:\/\/[^/]+)/.exec(healthz)![1]!;
  t.ok(
    await eventually(async () => (await httpGet(`${healthUrl}/readyz`)).status === 200, {
      timeoutMs: 10000,
    }),
    'the webhook becomes ready',
  );

  const first = (await runCurl(allowed)).answer();
  t.equal(first.response.allowed, true, 'the allowed example is allowed');
  const stamped = (await runCurl(mutate)).answer();
  t.equal(stamped.response.patchType, 'JSONPatch', 'the mutate example returns a patch');
  const firstVersion = stampedVersion(stamped);
  t.ok(firstVersion, 'the patch carries a key version');

  t.equal((await runCurl(disable)).status, 200, 'the disable command works');
  t.ok(
    await eventually(async () => !(await runCurl(denied)).answer().response.allowed),
    'the denied example is denied after disabling the key',
  );
  const denial = (await runCurl(denied)).answer();
  t.equal(denial.response.status?.code, 403, 'with 403');
  t.match(denial.response.status?.message, /Disabled.*EnableKey/, 'and the remedy');
  t.equal((await runCurl(healthz)).status, 503, 'the healthz example reports the key unusable');

  t.equal((await runCurl(enable)).status, 200, 'the enable command works');
  t.ok(
    await eventually(async () => (await runCurl(allowed)).answer().response.allowed),
    'allowed again after re-enabling',
  );
  t.equal((await runCurl(rotate)).status, 200, 'the rotate command works');
  t.ok(
    await eventually(async () => {
      return stampedVersion((await runCurl(mutate)).answer()) !== firstVersion;
    }),
    'after rotation the mutation stamps the new primary version',
  );

  const dir = /Sample reviews:\s+(\S+)/.exec(printed)![1]!;
  stop.abort('SIGINT');
  t.equal(await running, 0, 'dev exits 0 on the stop signal');
  t.notOk(existsSync(dir), 'the throwaway files are removed');
  t.notOk(stderr.text().includes('not-a-real-password'), 'the sample Secret value is never logged');
});

t.test('dev refuses a bad port with one line and exit code 2', async (t) => {
  const stderr = new LogCapture();
  const ctx: CliContext = {
    env: {},
    stdout: new LogCapture(),
    stderr,
    stopSignal: new AbortController().signal,
    exitCode: -1,
  };
  t.equal(await runCli(['dev', '--port', 'x'], ctx), 2, 'exit code 2');
  t.match(stderr.text(), /--port must be a TCP port/, 'names the flag');
});

async function devRun(
  argv: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new LogCapture();
  const stderr = new LogCapture();
  const ctx: CliContext = {
    env,
    stdout,
    stderr,
    stopSignal: new AbortController().signal,
    exitCode: -1,
  };
  const code = await runCli(['dev', ...argv], ctx);
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

const anyPorts = ['--port', '0', '--health-port', '0', '--control-port', '0'];

t.test('dev reads --mode, --on-unknown, --log-level and the durations like serve', async (t) => {
  const cases: [string[], Record<string, string>, RegExp, string][] = [
    [
      [],
      { GUARD_MODE: 'audit' },
      /--mode \/ GUARD_MODE must be one of enforce, warn \(got "audit"\)/,
      'GUARD_MODE',
    ],
    [['--mode', 'audit'], {}, /--mode \/ GUARD_MODE must be one of enforce, warn/, '--mode'],
    [
      [],
      { ON_UNKNOWN: 'maybe' },
      /--on-unknown \/ ON_UNKNOWN must be one of allow, deny/,
      'ON_UNKNOWN',
    ],
    [[], { LOG_LEVEL: 'loud' }, /--log-level \/ LOG_LEVEL must be one of fatal/, 'LOG_LEVEL'],
    [
      [],
      { KEY_REFRESH_INTERVAL: 'often' },
      /--refresh-interval \/ KEY_REFRESH_INTERVAL must be a positive duration/,
      'KEY_REFRESH_INTERVAL',
    ],
    [
      ['--refresh-interval', '1m', '--max-staleness', '30s'],
      {},
      /--max-staleness \/ KEY_MAX_STALENESS \(30s\) must be at least --refresh-interval/,
      'max-staleness below the refresh interval',
    ],
    [
      ['--refresh-interval', '1m'],
      { KEY_MAX_STALENESS: '30s' },
      /--max-staleness \/ KEY_MAX_STALENESS \(30s\) must be at least/,
      'KEY_MAX_STALENESS',
    ],
  ];
  for (const [argv, env, message, name] of cases) {
    const result = await devRun([...anyPorts, ...argv], env);
    t.equal(result.code, 2, `${name}: exit code 2`);
    t.match(result.stderr, message, `${name}: names the setting`);
    t.equal(result.stdout, '', `${name}: nothing started`);
  }
});

t.test('dev --help shows the shared settings with their env variables', async (t) => {
  const result = await devRun(['--help']);
  t.equal(result.code, 0, 'help exits 0');
  for (const env of [
    'GUARD_MODE',
    'ON_UNKNOWN',
    'LOG_LEVEL',
    'KEY_REFRESH_INTERVAL',
    'KEY_MAX_STALENESS',
  ]) {
    t.match(result.stdout, env, `mentions ${env}`);
  }
  t.match(result.stdout, /default:\s+2s,/, 'dev refreshes every 2s by default');
});

t.test('a --control-port in use is a configuration error: exit 2, one line', async (t) => {
  const port = await occupyPort(t);
  const result = await devRun([
    '--port',
    '0',
    '--health-port',
    '0',
    '--control-port',
    String(port),
    '--log-level',
    'silent',
  ]);
  t.equal(result.code, 2, 'exit code 2');
  t.equal(
    result.stderr,
    `kms-secret-guard: cannot listen on port ${port} (--control-port): already in use; choose another port with --control-port (0 = any free port).\n`,
    'one line naming the flag and the fix',
  );
  t.equal(result.stdout, '', 'no instructions printed');
});

t.test('dev takes GUARD_MODE and LOG_LEVEL from the environment, as serve does', async (t) => {
  const stop = new AbortController();
  const stdout = new LogCapture();
  const stderr = new LogCapture();
  const ctx: CliContext = {
    env: { GUARD_MODE: 'warn', LOG_LEVEL: 'silent' },
    stdout,
    stderr,
    stopSignal: stop.signal,
    exitCode: -1,
  };
  const running = runCli(['dev', ...anyPorts, '--refresh-interval', '200ms'], ctx);
  t.teardown(async () => {
    stop.abort('teardown');
    await running;
  });
  t.ok(
    await eventually(() => stdout.text().includes('Stop with Ctrl-C'), { timeoutMs: 10000 }),
    'dev printed its instructions',
  );
  const curls = stdout
    .text()
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.startsWith('curl '));
  const find = (pattern: RegExp): string => {
    const line = curls.find((candidate) => pattern.test(candidate));
    if (line === undefined) throw new Error(`no printed curl matches ${pattern}`);
    return line;
  };
  t.equal((await runCurl(find(/\/key\/disable$/))).status, 200, 'key disabled');
  t.ok(
    await eventually(async () => (await runCurl(find(/\/healthz\/kms$/))).status === 503),
    'the guard saw the disabled key',
  );
  const answer = (await runCurl(find(/denied\.json \S+\/validate$/))).answer();
  t.equal(answer.response.allowed, true, 'GUARD_MODE=warn: allowed despite the disabled key');
  t.match(answer.response.warnings?.join(' '), /Disabled/, 'with a warning');
  stop.abort('SIGINT');
  t.equal(await running, 0, 'exits 0');
  t.equal(stderr.text(), '', 'LOG_LEVEL=silent: no log lines');
});
