import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fixture } from '../helpers/server.js';
import { eventually } from '../helpers/eventually.js';
import { httpGet, postReview } from '../helpers/http.js';

const MAIN = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const EXIT_GUARD_MS = 15_000;

const built = existsSync(MAIN);
const options = built
  ? {}
  : { skip: 'dist/ is not built: run `npm run build` first (npm test does)' };

t.test('npm start (dev) as a process: serves, then exits 0 on SIGTERM', options, async (t) => {
  const child = spawn(
    process.execPath,
    [MAIN, 'dev', '--port', '0', '--health-port', '0', '--control-port', '0'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => {
    child.on('exit', (code) => {
      resolve(code);
    });
  });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });

  t.ok(
    await eventually(() => stdout.includes('Stop with Ctrl-C'), { timeoutMs: 15000 }),
    'dev printed its instructions',
  );
  const admissionUrl = /Admission \(HTTPS\):\s+(\S+)/.exec(stdout)?.[1] ?? '';
  const healthUrl = /Health \(HTTP\):\s+(\S+)/.exec(stdout)?.[1] ?? '';
  const caFile = /CA certificate:\s+(\S+)/.exec(stdout)?.[1] ?? '';
  t.ok(
    await eventually(async () => (await httpGet(`${healthUrl}/readyz`)).status === 200),
    '/readyz 200',
  );
  const answer = await postReview(
    `${admissionUrl}/validate`,
    fixture('secret-update'),
    readFileSync(caFile, 'utf8'),
  );
  t.equal(answer.answer().response.allowed, true, 'a Secret UPDATE is allowed');

  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([
    exited,
    new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => {
        resolve('timeout');
      }, EXIT_GUARD_MS);
    }),
  ]);
  clearTimeout(timer);
  t.equal(code, 0, 'exit code 0 after SIGTERM, within the bound');
  t.match(stderr, /"msg":"webhook stopped"/, 'the shutdown is logged');
  t.notOk(existsSync(caFile), 'the throwaway CA is removed');
});
