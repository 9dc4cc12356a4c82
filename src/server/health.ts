import Fastify, { LogController } from 'fastify';
import { describeKeyState } from '../kms/key-state.js';
import type { KeySnapshotSource } from '../kms/types.js';
import type { Logger } from '../logging/logger.js';
import type { ServerMetrics } from './metrics.js';
import { SCHEMALESS } from './schemaless.js';

export interface Readiness {
  readonly ready: boolean;
  readonly reason: string;
}

export interface HealthAppOptions {
  readonly logger: Logger;
  readonly source: KeySnapshotSource;
  readonly metrics: ServerMetrics;
  /** Readiness never looks at the key's state: an unready webhook trips failurePolicy. */
  readonly readiness: () => Readiness;
}

/** Plain HTTP: /livez, /readyz, /healthz/kms, /metrics. */
export function buildHealthApp(options: HealthAppOptions) {
  const app = Fastify({
    loggerInstance: options.logger,
    logController: new LogController({ disableRequestLogging: true }),
    schemaController: SCHEMALESS,
  });
  app.get('/livez', () => ({ status: 'ok' }));
  app.get('/readyz', (_request, reply) => {
    const readiness = options.readiness();
    return reply
      .code(readiness.ready ? 200 : 503)
      .send({ status: readiness.ready ? 'ready' : 'not ready', reason: readiness.reason });
  });
  app.get('/healthz/kms', (_request, reply) => {
    // The same JSON as `check --json`, from memory: no KMS call.
    const view = describeKeyState(options.source.snapshot());
    return reply.code(view.usable ? 200 : 503).send(view);
  });
  app.get('/metrics', async (_request, reply) => {
    const body = await options.metrics.registry.metrics();
    return reply.header('content-type', options.metrics.registry.contentType).send(body);
  });
  return app;
}

export type HealthApp = ReturnType<typeof buildHealthApp>;
