import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { readDocumentation } from '../helpers/docs.js';
import { REPO_ROOT } from '../helpers/manifests.js';

const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
const instructions = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .map((line) => line.trim())
  .filter((line) => line !== '' && !line.startsWith('#'));
const packageJson = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
  engines: { node: string };
  bin: Record<string, string>;
  files: string[];
};

function stages(): { name: string; lines: string[] }[] {
  const result: { name: string; lines: string[] }[] = [];
  for (const line of instructions) {
    const from = /^FROM\s+\S+(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from) result.push({ name: from[1] ?? `stage${result.length}`, lines: [] });
    else result.at(-1)?.lines.push(line);
  }
  return result;
}

t.test('the image runs Node.js 24, which satisfies package.json engines', async (t) => {
  const image = /^ARG NODE_IMAGE=node:(\d+)-(bookworm-slim|alpine)/m.exec(dockerfile);
  t.ok(image, 'one ARG names the node:<major>-bookworm-slim|alpine base image');
  const major = Number(image?.[1]);
  t.equal(major, 24, 'Node.js 24 is the documented runtime');
  const minimum = Number(/(\d+)/.exec(packageJson.engines.node)?.[1]);
  t.ok(major >= minimum, `Node ${major} satisfies engines "${packageJson.engines.node}"`);
  const froms = instructions.filter((line) => line.startsWith('FROM '));
  t.ok(froms.length >= 2, 'multi-stage build');
  for (const from of froms) {
    t.match(from, /^FROM \$\{NODE_IMAGE\} AS /, `every stage uses the same base: ${from}`);
  }
  t.match(
    readDocumentation(),
    /image runs Node\.js 24/,
    'the docs name Node.js 24 as the image runtime',
  );
});

t.test('production dependencies only, non-root, the CLI as entrypoint', async (t) => {
  const all = stages();
  const runtime = all.at(-1)!;
  const builders = all.slice(0, -1);
  t.ok(
    builders.some((stage) => stage.lines.some((line) => /npm ci\b(?!.*--omit=dev)/.test(line))),
    'a build stage installs all dependencies with npm ci',
  );
  t.ok(
    builders.some((stage) => stage.lines.some((line) => line.includes('npm run build'))),
    'a build stage compiles TypeScript',
  );
  t.ok(
    all.some((stage) =>
      stage.lines.some((line) => line.includes('npm ci --omit=dev --ignore-scripts')),
    ),
    'production dependencies come from npm ci --omit=dev --ignore-scripts',
  );
  t.notOk(
    runtime.lines.some((line) => /^RUN .*npm (ci|install)/.test(line)),
    'the runtime stage runs no npm install',
  );
  t.notOk(
    runtime.lines.some((line) => /^COPY (?!--from=)/.test(line) && /\bsrc\b/.test(line)),
    'the runtime stage gets no sources',
  );
  const user = runtime.lines.find((line) => line.startsWith('USER '));
  t.match(user ?? '', /^USER (65532(:65532)?|node)$/, 'runs as a non-root user');
  t.ok(
    runtime.lines.includes('ENTRYPOINT ["node", "/app/dist/cli/main.js"]'),
    'ENTRYPOINT runs the CLI with node',
  );
  t.ok(runtime.lines.includes('CMD ["serve"]'), 'CMD defaults to serve');
  t.equal(
    packageJson.bin['kms-secret-guard'],
    'dist/cli/main.js',
    'ENTRYPOINT path is the package bin',
  );
  t.ok(packageJson.files.includes('dist'), 'the packed package contains dist/');
  t.match(
    runtime.lines.join('\n'),
    /ln -s \/app\/dist\/cli\/main\.js \/usr\/local\/bin\/kms-secret-guard/,
    'kms-secret-guard is on PATH (the reencrypt Job runs it by name)',
  );

  const job = parse(readFileSync(join(REPO_ROOT, 'manifests/reencrypt/job.yaml'), 'utf8')) as {
    spec: { template: { spec: { securityContext: { runAsUser: number } } } };
  };
  const deployment = parse(
    readFileSync(join(REPO_ROOT, 'manifests/base/deployment.yaml'), 'utf8'),
  ) as typeof job;
  const uid = Number(/^USER (\d+)/.exec(user ?? '')?.[1]);
  t.equal(
    deployment.spec.template.spec.securityContext.runAsUser,
    uid,
    'Deployment runAsUser = USER',
  );
  t.equal(job.spec.template.spec.securityContext.runAsUser, uid, 'Job runAsUser = USER');
});

t.test('every COPY source exists and passes .dockerignore', async (t) => {
  const ignore = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  t.equal(ignore[0], '*', '.dockerignore is an allow-list (starts with *)');
  const allowed = ignore.filter((line) => line.startsWith('!')).map((line) => line.slice(1));
  const sources = instructions
    .filter((line) => line.startsWith('COPY ') && !line.includes('--from='))
    .flatMap((line) => line.split(/\s+/).slice(1, -1));
  t.ok(sources.length > 0, 'the Dockerfile copies files from the context');
  for (const source of sources) {
    t.ok(existsSync(join(REPO_ROOT, source)), `COPY source ${source} exists`);
    const normalized = source.replace(/\/$/, '');
    t.ok(
      allowed.some((entry) => entry.replace(/\/$/, '') === normalized),
      `COPY source ${source} is allowed by .dockerignore`,
    );
  }
  for (const secret of ['certs', 'node_modules', 'dist', '.git', '.cache']) {
    t.notOk(
      allowed.some((entry) => entry.replace(/\/$/, '') === secret),
      `${secret} stays out of the build context`,
    );
  }
  const copiedFromBuild = instructions
    .filter((line) => line.startsWith('COPY --from=build '))
    .map((line) => line.split(/\s+/)[2]);
  t.same(copiedFromBuild, ['/app/dist'], 'the runtime takes only dist/ from the build stage');
  const tsconfigBuild = JSON.parse(
    readFileSync(join(REPO_ROOT, 'tsconfig.build.json'), 'utf8'),
  ) as { compilerOptions: { outDir: string } };
  t.equal(tsconfigBuild.compilerOptions.outDir, 'dist', 'the build writes to dist/');
});
