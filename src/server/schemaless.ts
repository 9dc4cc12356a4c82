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
 * these factories Fastify loads Ajv and fast-json-stringify's compiler when an app is built:
 * about 17 MB of RSS on their own, 2-3 MiB less in the serving process (bench/RESULTS.md),
 * for compilers that never run.
 */
export const SCHEMALESS: NonNullable<FastifyServerOptions['schemaController']> = {
  compilersFactory: {
    buildValidator: () => noSchemas,
    buildSerializer: () => noSchemas,
  },
};
