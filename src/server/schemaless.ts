import type { FastifyServerOptions } from 'fastify';

/** What a route schema would meet: neither app declares one. */
function noSchemas(): never {
  throw new Error(
    'Route schemas are not supported here: requests are checked by parseAdmissionReview and answers are plain objects. Validate in the handler instead.',
  );
}

/**
 * Neither app declares route schemas (admission requests are checked by
 * parseAdmissionReview; answers are plain objects serialized with JSON.stringify). Without
 * these factories Fastify loads Ajv and fast-json-stringify when an app is built, which
 * costs 10-18 MB of RSS per process for compilers that never run.
 */
export const SCHEMALESS: NonNullable<FastifyServerOptions['schemaController']> = {
  compilersFactory: {
    buildValidator: () => noSchemas,
    buildSerializer: () => noSchemas,
  },
};
