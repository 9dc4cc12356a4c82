// What the serving process loads: Fastify's schema compilers (Ajv, fast-json-stringify) cost
// 10-18 MB of RSS and neither app uses a route schema, so they must never be loaded.
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import t from 'tap';
import { createLogger } from '../../src/logging/logger.js';
import { buildHealthApp } from '../../src/server/health.js';
import { createMetrics } from '../../src/server/metrics.js';
import { startServer } from '../../src/server/serve.js';
import { fakeSource, makeCertDir, serveSettings } from '../helpers/server.js';
import { missingBuild, spawnServe } from '../helpers/reliability.js';
import { LogCapture } from '../helpers/logs.js';
import { freePort } from '../helpers/processes.js';

// fast-json-stringify's small runtime (lib/serializer.js) serves Fastify's precompiled error
// serializer and is fine; its compiler (index.js) is not.
const SCHEMA_COMPILERS =
  /node_modules[\\/](ajv|@fastify[\\/](ajv-compiler|fast-json-stringify-compiler))[\\/]|fast-json-stringify[\\/]index\.js$/;

t.test('a running server has loaded no schema compiler', async (t) => {
  const certs = await makeCertDir();
  t.teardown(() => certs.cleanup());
  const server = await startServer({
    settings: serveSettings(certs),
    logger: createLogger('info', new LogCapture()),
    monitor: fakeSource(),
    host: '127.0.0.1',
  });
  t.teardown(() => server.close());
  const loaded = Object.keys(createRequire(import.meta.url).cache);
  t.ok(
    loaded.some((path) => /node_modules[\\/]fastify[\\/]/.test(path)),
    'the module cache is the one Fastify was loaded into',
  );
  t.same(
    loaded.filter((path) => SCHEMA_COMPILERS.test(path)),
    [],
    'neither Ajv nor fast-json-stringify was loaded',
  );
});

t.test('a route schema fails at start with a message naming the remedy', async (t) => {
  const app = buildHealthApp({
    logger: createLogger('info', new LogCapture()),
    source: fakeSource(),
    metrics: createMetrics(),
    readiness: () => ({ ready: true, reason: 'test' }),
  });
  app.post('/with-schema', { schema: { body: { type: 'object' } } }, () => ({}));
  await t.rejects(
    async () => {
      await app.ready();
    },
    /Route schemas are not supported here.*Validate in the handler instead/,
    'building a schema validator is refused with a remedy',
  );
  await app.close();
});

// Preloaded into the serve child: records the URL of every module the process loads.
const MODULE_LOG_HOOKS = `
import { appendFileSync } from 'node:fs';
export async function load(url, context, nextLoad) {
  appendFileSync(process.env.KSG_MODULE_LOG, url + '\\n');
  return nextLoad(url, context);
}
`;

t.test(
  "serve's process loads none of the KMS emulator's code",
  { skip: missingBuild() ?? false },
  async (t) => {
    const certs = await makeCertDir();
    t.teardown(() => certs.cleanup());
    const hooks = join(certs.dir, 'module-log-hooks.mjs');
    const register = join(certs.dir, 'module-log.mjs');
    const moduleLog = join(certs.dir, 'modules.log');
    await writeFile(hooks, MODULE_LOG_HOOKS);
    await writeFile(
      register,
      `import { register } from 'node:module';\nregister(${JSON.stringify(`file://${hooks}`)});\n`,
    );
    const child = await spawnServe(
      t,
      {
        KSG_MODULE_LOG: moduleLog,
        KMS_KEY_ID: 'key-footprint',
        KMS_ENDPOINT: '127.0.0.1:1',
        KMS_PROTOCOL: 'http',
        TLS_CERT_FILE: certs.certFile,
        TLS_KEY_FILE: certs.keyFile,
        PORT: String(await freePort()),
        HEALTH_PORT: String(await freePort()),
      },
      { nodeArgs: ['--import', register] },
    );
    child.child.kill('SIGTERM');
    await child.exited;
    const loaded = readFileSync(moduleLog, 'utf8').split('\n');
    t.ok(
      loaded.some((url) => url.endsWith('/dist/server/serve.js')),
      'the module log saw the server being loaded',
    );
    t.same(
      loaded.filter((url) => url.includes('/dist/emulator/')),
      [],
      'no module under src/emulator/ was loaded',
    );
  },
);
