import type { ServerOptions as HttpsServerOptions } from 'node:https';
import Fastify, {
  LogController,
  type FastifyError,
  type FastifyPluginCallback,
  type FastifyReply,
} from 'fastify';
import {
  complete,
  decideMutation,
  decideValidation,
  parseAdmissionReview,
  type AdmissionPolicy,
  type AdmissionRequest,
  type Decision,
} from '../admission/index.js';
import type { KeySnapshot, KeySnapshotSource } from '../kms/types.js';
import { REDACTED_PATHS, type Logger } from '../logging/logger.js';
import type { ServerMetrics, Webhook } from './metrics.js';
import { SCHEMALESS } from './schemaless.js';

/** kube-apiserver caps request bodies at 3 MiB objects; object + oldObject + envelope fit in 7. */
export const ADMISSION_BODY_LIMIT = 7 * 1024 * 1024;

/**
 * kube-apiserver waits at most 30 s for a webhook (timeoutSeconds ≤ 30): a request still
 * incomplete by then only holds a connection and up to 7 MiB of buffered body.
 */
export const ADMISSION_REQUEST_TIMEOUT_MS = 30_000;
/** How often Node looks for requests past that timeout (its default is 30 s). */
const REQUEST_TIMEOUT_CHECK_MS = 5_000;

export interface AdmissionRoutesOptions {
  readonly source: KeySnapshotSource;
  readonly policy: AdmissionPolicy;
  readonly metrics?: ServerMetrics | undefined;
  /** True while the server drains: responses then close their connection. */
  readonly isShuttingDown?: () => boolean;
}

type Decide = (
  request: AdmissionRequest,
  snapshot: KeySnapshot,
  policy: AdmissionPolicy,
) => Decision;

const DECIDERS: Record<Webhook, Decide> = {
  validate: decideValidation,
  mutate: (request, snapshot) => decideMutation(request, snapshot),
};

function text(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

const OPERATIONS = new Set(['CREATE', 'UPDATE', 'DELETE', 'CONNECT']);

/** Metric label values must stay few: an unexpected operation string is counted as `other`. */
function operationLabel(operation: string | undefined): string {
  if (operation === undefined) return 'unknown';
  return OPERATIONS.has(operation) ? operation : 'other';
}

function decisionLabel(decision: Decision): string {
  if (!decision.allowed) return 'denied';
  if (decision.patch.length > 0) return 'patched';
  return decision.warnings.length > 0 ? 'warned' : 'allowed';
}

/**
 * Routine admissions (allowed, patched) go to debug: the API server's audit log already holds
 * them with the guard's audit annotations, and one info line per Secret write drowned the
 * lines a person acts on (denials, warnings) and cost a fifth of the webhook's CPU.
 */
function admissionLogLevel(decision: string): 'debug' | 'info' {
  return decision === 'allowed' || decision === 'patched' ? 'debug' : 'info';
}

/**
 * Client mistakes answered with their own status and a message a person can act on.
 * Parser messages are never echoed: V8's JSON errors quote the body, which may hold Secret data.
 */
function clientError(error: FastifyError): { status: number; message: string } | undefined {
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return {
        status: 413,
        message: `The request body is larger than ${ADMISSION_BODY_LIMIT} bytes (7 MiB): an AdmissionReview never is; check what is calling the webhook.`,
      };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return {
        status: 415,
        message: 'Content-Type must be application/json: send the AdmissionReview as JSON.',
      };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { status: 400, message: 'The request body is empty: send an AdmissionReview.' };
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return {
        status: 400,
        message: 'The request body is not valid JSON: send an AdmissionReview as JSON.',
      };
    default:
      break;
  }
  const status = error.statusCode ?? 500;
  if (error instanceof SyntaxError || (status >= 400 && status < 500)) {
    return {
      status: status >= 400 && status < 500 ? status : 400,
      message:
        error instanceof SyntaxError
          ? 'The request body is not valid JSON: send an AdmissionReview as JSON.'
          : 'The request cannot be processed: send a JSON AdmissionReview with POST.',
    };
  }
  return undefined;
}

/** POST /validate and POST /mutate: pure decisions over the monitor's snapshot, no KMS I/O. */
export const admissionRoutes: FastifyPluginCallback<AdmissionRoutesOptions> = (
  app,
  options,
  done,
) => {
  const { source, policy, metrics } = options;
  // The admission line holds only the scalar fields listed in the handler, never an object,
  // so top-level redaction suffices. The '*.'-paths of the root logger ran a redactor on
  // every value of every line, which cost more than deciding the admission.
  const admissionLog = app.log.child(
    {},
    {
      redact: {
        paths: REDACTED_PATHS.filter((path) => !path.startsWith('*')),
        censor: '[redacted]',
      },
    },
  );

  // Only JSON bodies: text/plain would otherwise be accepted by Fastify's default parser.
  app.removeContentTypeParser('text/plain');

  // While draining, every answer (also to requests that arrived before) closes its
  // connection, so kept-alive connections end and the listener can close.
  app.addHook('onSend', (_request, reply, payload, next) => {
    if (options.isShuttingDown?.() === true) void reply.header('connection', 'close');
    next(null, payload);
  });

  app.setErrorHandler((error: FastifyError, request, reply: FastifyReply) => {
    const known = clientError(error);
    const webhook = request.url.startsWith('/mutate') ? 'mutate' : 'validate';
    if (known !== undefined) {
      request.log.warn(
        { webhook, code: error.code, statusCode: known.status },
        'bad admission request',
      );
      metrics?.observeAdmission(webhook, 'unknown', 'invalid', 0);
      return reply.code(known.status).send({ error: 'BadRequest', message: known.message });
    }
    request.log.error(
      { webhook, err: { type: error.name, code: error.code, message: error.message } },
      'admission failed',
    );
    metrics?.observeAdmission(webhook, 'unknown', 'error', 0);
    return reply
      .code(500)
      .send({ error: 'InternalError', message: 'The webhook failed to answer; see its logs.' });
  });

  app.setNotFoundHandler((request, reply) => {
    return reply.code(404).send({
      error: 'NotFound',
      message: `No route ${request.method} ${request.url.split('?')[0] ?? ''}: the webhook serves POST /validate and POST /mutate.`,
    });
  });

  for (const webhook of ['validate', 'mutate'] as const) {
    const decide = DECIDERS[webhook];
    app.post(`/${webhook}`, (request, reply) => {
      const started = process.hrtime.bigint();
      const parsed = parseAdmissionReview(request.body);
      if (!parsed.ok) {
        request.log.warn(
          { webhook, statusCode: 400, problem: parsed.message },
          'bad admission request',
        );
        metrics?.observeAdmission(webhook, 'unknown', 'invalid', 0);
        return reply.code(400).send({ error: 'BadRequest', message: parsed.message });
      }
      const review = parsed.review;
      const admission = review.request;
      const snapshot = source.snapshot();
      const decision = decide(admission, snapshot, policy);
      const answer = complete(review, decision);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const label = decisionLabel(decision);
      const operation = text(admission.operation);
      admissionLog[admissionLogLevel(label)](
        {
          webhook,
          uid: admission.uid,
          operation,
          resource: text(admission.resource?.resource),
          namespace: text(admission.namespace),
          name: text(admission.name) ?? text(admission.object?.metadata?.generateName),
          user: text(admission.userInfo?.username),
          dryRun: admission.dryRun === true,
          decision: label,
          keyStatus: snapshot.status,
          durationMs: Math.round(seconds * 1e6) / 1e3,
        },
        'admission',
      );
      metrics?.observeAdmission(webhook, operationLabel(operation), label, seconds);
      return reply.send(answer);
    });
  }
  done();
};

export interface AdmissionAppOptions extends AdmissionRoutesOptions {
  readonly logger: Logger;
  readonly https: HttpsServerOptions;
}

/** The HTTPS admission app; tests drive it with inject() or over real TLS. */
export function buildAdmissionApp(options: AdmissionAppOptions) {
  const app = Fastify({
    // Node arms its request timeout only from the server's constructor options, and Fastify
    // then assigns its own value: set both, or a stalled request is never cut off.
    https: {
      ...options.https,
      requestTimeout: ADMISSION_REQUEST_TIMEOUT_MS,
      connectionsCheckingInterval: REQUEST_TIMEOUT_CHECK_MS,
    },
    requestTimeout: ADMISSION_REQUEST_TIMEOUT_MS,
    loggerInstance: options.logger,
    // Fastify's own request/response lines are off: the handler logs one line per admission.
    logController: new LogController({ disableRequestLogging: true }),
    // No pino child per request (built for a reqId no line uses): the admission line
    // carries the review's uid instead.
    childLoggerFactory: (logger) => logger,
    bodyLimit: ADMISSION_BODY_LIMIT,
    // "__proto__" is a valid Secret data key or label; JSON.parse keeps it as a plain own
    // property and nothing here merges request objects into prototypes, so do not refuse it.
    onProtoPoisoning: 'ignore',
    // Same for "constructor": nothing here walks prototypes either, and the check is a regular
    // expression scan of the whole body on every request (milliseconds on a 1 MiB Secret).
    onConstructorPoisoning: 'ignore',
    // Keep answering on open connections while draining (a 503 would trip failurePolicy).
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    schemaController: SCHEMALESS,
  });
  void app.register(admissionRoutes, options);
  return app;
}

export type AdmissionApp = ReturnType<typeof buildAdmissionApp>;
