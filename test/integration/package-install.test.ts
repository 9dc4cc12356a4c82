import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { REPO_ROOT } from '../helpers/manifests.js';

const run = promisify(execFile);
// Two production installs from the npm cache; slow on a busy two-core machine.
t.setTimeout(300_000);

const version = (
  JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }
).version;
const work = mkdtempSync(join(tmpdir(), 'ksg-package-'));
t.teardown(() => {
  rmSync(work, { recursive: true, force: true });
});

t.test('scripts/check-package.sh packs, installs production-only and runs the CLI', async (t) => {
  const result = await run('bash', [join(REPO_ROOT, 'scripts/check-package.sh'), work], {
    cwd: REPO_ROOT,
    timeout: 280_000,
    maxBuffer: 8 * 1024 * 1024,
  }).catch((error: unknown) => {
    const failed = error as { stdout?: string; stderr?: string; message: string };
    return { stdout: failed.stdout ?? '', stderr: `${failed.stderr ?? ''}\n${failed.message}` };
  });
  t.match(
    result.stdout,
    /check-package: OK/,
    `the script succeeds (stderr: ${result.stderr.trim()})`,
  );

  const binaries: [string, string][] = [
    ['image layout (npm ci --omit=dev)', join(work, 'image/dist/cli/main.js')],
    ['npm install --omit=dev <tarball>', join(work, 'npm-user/node_modules/.bin/kms-secret-guard')],
  ];
  for (const [label, binary] of binaries) {
    const printed = await run(binary, ['--version'], { timeout: 30_000 });
    t.equal(printed.stdout.trim(), version, `${label}: --version prints the package version`);
    const help = await run(binary, ['serve', '--help'], { timeout: 30_000 });
    t.match(help.stdout, /Usage: kms-secret-guard serve/, `${label}: serve --help prints usage`);
    const certsHelp = await run(binary, ['certs', '--help'], { timeout: 30_000 });
    t.match(certsHelp.stdout, /--ca-days/, `${label}: certs --help lists its flags`);
  }
  const devDependency = await run('node', ['-e', 'require.resolve("typescript")'], {
    cwd: join(work, 'image'),
  }).then(
    () => true,
    () => false,
  );
  t.notOk(devDependency, 'the image layout has no dev dependencies (typescript)');
});
