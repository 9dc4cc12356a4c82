// Regression test for the idle footprint of `serve`: the CLI loads each command's heavy
// modules (gRPC for kms-plugin, the Kubernetes client for reencrypt, the X.509 library for
// certs, the emulator) only when that command runs, so the webhook's resident set carries
// none of them (Node 24: ~5 MB of resident memory and ~3 MB of heap for gRPC alone).
import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { missingBuild } from '../helpers/reliability.js';

const PROGRAM = fileURLToPath(new URL('../../dist/cli/program.js', import.meta.url));

/** The npm packages loaded once the CLI's command table is built (what `serve` starts with). */
async function packagesLoadedByCli(): Promise<string[]> {
  const script = `
    import { createRequire } from 'node:module';
    const { buildProgram } = await import(${JSON.stringify(PROGRAM)});
    buildProgram({ env: {}, stdout: process.stdout, stderr: process.stderr, stopSignal: new AbortController().signal, exitCode: 0 });
    const names = new Set();
    for (const file of Object.keys(createRequire(import.meta.url).cache)) {
      const found = [...file.matchAll(/node_modules\\/((?:@[^/]+\\/)?[^/]+)/g)].at(-1);
      if (found?.[1] !== undefined) names.add(found[1]);
    }
    process.stdout.write(JSON.stringify([...names]));
  `;
  const { stdout } = await promisify(execFile)(process.execPath, [
    '--input-type=module',
    '-e',
    script,
  ]);
  return JSON.parse(stdout) as string[];
}

t.test(
  'the CLI loads no command-only module up front',
  { skip: missingBuild() ?? false },
  async (t) => {
    const loaded = await packagesLoadedByCli();
    t.ok(loaded.includes('fastify'), `serve's own modules are there (${loaded.length} packages)`);
    for (const name of [
      '@grpc/grpc-js',
      '@grpc/proto-loader',
      '@kubernetes/client-node',
      '@peculiar/x509',
      'cli-progress',
    ]) {
      t.notOk(loaded.includes(name), `${name} is not loaded until its command runs`);
    }
  },
);
