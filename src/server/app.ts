import type { Server as HttpsServer, ServerOptions as HttpsServerOptions } from 'node:https';
import Fastify, {
  LogController,
  type FastifyError,
  type FastifyPluginCallback,
  type FastifyReply,
} from 'fastify';
import {
  complete,
  decideAdmission,
  decideMutation,
  decideValidation,
  type AdmissionPolicy,
  type AdmissionRequest,
  type Decision,
  type ParseResult,
} from '../admission/index.js';
import type { KeySnapshot, KeySnapshotSource } from '../kms/types.js';
import { REDACTED_PATHS, type Logger } from '../logging/logger.js';
import type { ServerMetrics, Webhook } from './metrics.js';
import { createChunkReclaimer } from './reclaim.js';
import { SCHEMALESS } from './schemaless.js';
import { ADMISSION_BODY_LIMIT, AdmissionBodyError, HeldBytes, readAdmissionBody } from './body.js';
import {
  closeUnusedAfterHandshake,
  limitConnectionsPerSource,
  limitRequestTime,
  MAX_CONNECTIONS_PER_SOURCE,
  PATIENT_SHARE,
  throttled,
  type FirstRequestDeadlines,
  type ThrottledReport,
  type UnusedConnections,
} from './connections.js';

export { ADMISSION_BODY_LIMIT, ADMISSION_HELD_BYTES_BUDGET } from './body.js';

/**
 * kube-apiserver waits at most 30 s for a webhook (timeoutSeconds ≤ 30): a request still
 * incomplete by then only holds a connection (bodies are streamed, never buffered).
 */
export const ADMISSION_REQUEST_TIMEOUT_MS = 30_000;
/** How often Node looks for headers past their timeout (its default is 30 s). */
const REQUEST_TIMEOUT_CHECK_MS = 5_000;

/** The TLS handshake must finish within this long. */
export const ADMISSION_IDLE_TIMEOUT_MS = 10_000;

/**
 * After the TLS handshake, a connection from a source holding more than PATIENT_SHARE
 * connections must send its first request's headers within this long; others may wait as
 * long as a kept-alive connection may idle (ADMISSION_KEEP_ALIVE_TIMEOUT_MS). The API server
 * may keep a dialed connection unused in its pool, so the short deadline is only for hostile
 * holders.
 */
export const ADMISSION_FIRST_REQUEST_TIMEOUT_MS = 5_000;

/**
 * While draining, a connection that has not started a request since its handshake gets this
 * long to start one (a client that dialed for a request sends it at once), then is closed.
 */
export const DRAIN_UNUSED_GRACE_MS = 1_000;

/**
 * How long a kept-alive connection may sit idle between requests. Longer than the API
 * server's IdleConnTimeout (Go's 90 s, applied by client-go), so the API server always closes
 * first: Go does not retry a POST written to a connection the server closed while idle, so a
 * shorter server timeout fails a webhook call now and then (docs/hardening.md).
 */
export const ADMISSION_KEEP_ALIVE_TIMEOUT_MS = 95_000;

/**
 * Node's headers timeout: past the patient first-request deadline (which closes unused
 * connections first), and for a kept-alive connection no longer than it may idle anyway.
 */
export const ADMISSION_HEADERS_TIMEOUT_MS = ADMISSION_KEEP_ALIVE_TIMEOUT_MS + 5_000;

export interface AdmissionRoutesOptions {
  readonly source: KeySnapshotSource;
  readonly policy: AdmissionPolicy;
  readonly metrics?: ServerMetrics | undefined;
  /** True while the server drains: responses then close their connection. */
  readonly isShuttingDown?: () => boolean;
  /** Bytes of bodies held across in-flight requests (default ADMISSION_HELD_BYTES_BUDGET). */
  readonly heldBytesBudget?: number;
}

type Decide = (
  request: AdmissionRequest,
  snapshot: KeySnapshot,
  policy: AdmissionPolicy,
) => Decision;

const DECIDERS: Record<Webhook, Decide> = {
  validate: decideValidation,
  mutate: (request, snapshot) => decideMutation(request, snapshot),
  admit: decideAdmission,
};

const WEBHOOKS = Object.keys(DECIDERS) as Webhook[];

/** The metrics label of a request that failed before its route ran. */
function webhookOf(url: string): Webhook {
  return WEBHOOKS.find((webhook) => url.startsWith(`/${webhook}`)) ?? 'validate';
}

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
function clientError(
  error: FastifyError,
): { status: number; message: string; headers?: Readonly<Record<string, string>> } | undefined {
  if (error instanceof AdmissionBodyError) {
    return { status: error.statusCode, message: error.message, headers: error.headers };
  }
  if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    return {
      status: 415,
      message: 'Content-Type must be application/json: send the AdmissionReview as JSON.',
    };
  }
  const status = error.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    return {
      status,
      message: 'The request cannot be processed: send a JSON AdmissionReview with POST.',
    };
  }
  return undefined;
}

type AdmissionInstance = Parameters<FastifyPluginCallback<AdmissionRoutesOptions>>[0];

/** JSON bodies only, streamed through the selective parser (never JSON.parse'd whole). */
function registerBodyParsing(app: AdmissionInstance, held: HeldBytes): void {
  // Without this, text/plain would be accepted by Fastify's default parser.
  app.removeContentTypeParser(['application/json', 'text/plain']);
  app.addContentTypeParser('application/json', (_request, payload, done) => {
    readAdmissionBody(payload, held, done);
  });
}

function registerErrorHandling(app: AdmissionInstance, metrics: ServerMetrics | undefined): void {
  app.setErrorHandler((error: FastifyError, request, reply: FastifyReply) => {
    const known = clientError(error);
    const webhook = webhookOf(request.url);
    if (known !== undefined) {
      request.log.warn(
        { webhook, code: error.code, statusCode: known.status },
        'bad admission request',
      );
      metrics?.observeAdmission(webhook, 'unknown', 'invalid', 0);
      return reply
        .code(known.status)
        .headers(known.headers ?? {})
        .send({
          error: known.status === 503 ? 'Unavailable' : 'BadRequest',
          message: known.message,
        });
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
      message: `No route ${request.method} ${request.url.split('?')[0] ?? ''}: the webhook serves POST /validate, POST /mutate and POST /admit.`,
    });
  });
}

type AdmissionLog = AdmissionInstance['log'];

/** The one line per admission: scalar fields only, never an object from the request. */
function logAdmission(
  log: AdmissionLog,
  entry: { webhook: Webhook; admission: AdmissionRequest; label: string; keyStatus: string },
  seconds: number,
): void {
  const { webhook, admission, label } = entry;
  log[admissionLogLevel(label)](
    {
      webhook,
      uid: admission.uid,
      operation: text(admission.operation),
      resource: text(admission.resource?.resource),
      namespace: text(admission.namespace),
      name: text(admission.name) ?? text(admission.object?.metadata?.generateName),
      user: text(admission.userInfo?.username),
      dryRun: admission.dryRun === true,
      decision: label,
      keyStatus: entry.keyStatus,
      durationMs: Math.round(seconds * 1e6) / 1e3,
    },
    'admission',
  );
}

const NO_BODY: ParseResult = {
  ok: false,
  message: 'The body must be a JSON object: send an AdmissionReview.',
};

/** POST /validate, /mutate and /admit: pure decisions over the monitor's snapshot, no KMS I/O. */
export const admissionRoutes: FastifyPluginCallback<AdmissionRoutesOptions> = (
  app,
  options,
  done,
) => {
  const { source, policy, metrics } = options;
  // The admission line holds only the scalar fields listed in logAdmission, never an object,
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
  registerBodyParsing(app, new HeldBytes(options.heldBytesBudget, createChunkReclaimer()));

  // While draining, every answer (also to requests that arrived before) closes its
  // connection, so kept-alive connections end and the listener can close.
  app.addHook('onSend', (_request, reply, payload, next) => {
    if (options.isShuttingDown?.() === true) void reply.header('connection', 'close');
    next(null, payload);
  });
  registerErrorHandling(app, metrics);

  for (const webhook of WEBHOOKS) {
    const decide = DECIDERS[webhook];
    app.post(`/${webhook}`, (request, reply) => {
      const started = process.hrtime.bigint();
      const parsed = (request.body as ParseResult | undefined) ?? NO_BODY;
      if (!parsed.ok) {
        request.log.warn(
          { webhook, statusCode: 400, problem: parsed.message },
          'bad admission request',
        );
        metrics?.observeAdmission(webhook, 'unknown', 'invalid', 0);
        return reply.code(400).send({ error: 'BadRequest', message: parsed.message });
      }
      const admission = parsed.review.request;
      const snapshot = source.snapshot();
      const decision = decide(admission, snapshot, policy);
      const answer = complete(parsed.review, decision);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const label = decisionLabel(decision);
      logAdmission(
        admissionLog,
        { webhook, admission, label, keyStatus: snapshot.status },
        seconds,
      );
      metrics?.observeAdmission(webhook, operationLabel(text(admission.operation)), label, seconds);
      return reply.send(answer);
    });
  }
  done();
};

export interface AdmissionAppOptions extends AdmissionRoutesOptions {
  readonly logger: Logger;
  readonly https: HttpsServerOptions;
  /** Concurrent connections the listener accepts; more are closed at once (serve.ts sizes it). */
  readonly maxConnections?: number;
  /** Concurrent connections from one source address (default MAX_CONNECTIONS_PER_SOURCE; 0: no cap). */
  readonly maxConnectionsPerSource?: number;
  /** Deadlines for the first request after the handshake (tests shorten them). */
  readonly firstRequestDeadlines?: FirstRequestDeadlines;
}

/** Refusals are logged at most this often (a flood must not flood the log too). */
const REFUSAL_LOG_INTERVAL_MS = 10_000;

/**
 * The listener's cap, the per-source cap (refusals counted and logged, throttled) and the
 * first-request deadlines after the TLS handshake.
 */
function limitConnections(server: HttpsServer, options: AdmissionAppOptions): UnusedConnections {
  const { logger, metrics } = options;
  if (options.maxConnections !== undefined) {
    server.maxConnections = options.maxConnections;
    // Node emits 'drop' for each connection it closes at maxConnections.
    server.on('drop', () => metrics?.observeRefusedConnection('listener_full'));
  }
  const perSource = options.maxConnectionsPerSource ?? MAX_CONNECTIONS_PER_SOURCE;
  const logRefusals = throttled(({ count, latest, byEvent }: ThrottledReport<string>) => {
    logger.warn(
      {
        refused: count,
        latest,
        bySource: Object.fromEntries(byEvent),
        maxConnectionsPerSource: perSource,
      },
      `${String(count)} connections refused since the last line (latest from ${latest}): a source address held the most connections it may`,
    );
  }, REFUSAL_LOG_INTERVAL_MS);
  const sources = limitConnectionsPerSource(server, perSource, (source) => {
    metrics?.observeRefusedConnection('per_source');
    logRefusals(source);
  });
  const unused = closeUnusedAfterHandshake(
    server,
    sources,
    options.firstRequestDeadlines ?? {
      impatientMs: ADMISSION_FIRST_REQUEST_TIMEOUT_MS,
      patientMs: ADMISSION_KEEP_ALIVE_TIMEOUT_MS,
      patientShare: PATIENT_SHARE,
    },
  );
  limitRequestTime(server, ADMISSION_REQUEST_TIMEOUT_MS);
  return unused;
}

/** The HTTPS admission app; tests drive it with inject() or over real TLS. */
export function buildAdmissionApp(options: AdmissionAppOptions) {
  const app = Fastify({
    // Node arms its timeouts only from the server's constructor options.
    https: {
      ...options.https,
      // Node runs its headers timeout from a connection's start until its first request's
      // headers are in: it must outlast the patient first-request deadline, or it closes the
      // API server's unused pool connections at 10 s. The whole request's 30 s deadline is
      // limitRequestTime's (from the headers), as Node's requestTimeout also runs from the start.
      headersTimeout: ADMISSION_HEADERS_TIMEOUT_MS,
      connectionsCheckingInterval: REQUEST_TIMEOUT_CHECK_MS,
      handshakeTimeout: ADMISSION_IDLE_TIMEOUT_MS,
    },
    keepAliveTimeout: ADMISSION_KEEP_ALIVE_TIMEOUT_MS,
    loggerInstance: options.logger,
    // Fastify's own request/response lines are off: the handler logs one line per admission.
    logController: new LogController({ disableRequestLogging: true }),
    // No pino child per request (built for a reqId no line uses): the admission line
    // carries the review's uid instead.
    childLoggerFactory: (logger) => logger,
    bodyLimit: ADMISSION_BODY_LIMIT,
    // Bodies go through the selective parser (registerBodyParsing), which keeps only named
    // fields: a "__proto__" or "constructor" key (valid Secret data keys) is never assigned.
    onProtoPoisoning: 'ignore',
    onConstructorPoisoning: 'ignore',
    // Keep answering on open connections while draining (a 503 would trip failurePolicy).
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    schemaController: SCHEMALESS,
  });
  const unused = limitConnections(app.server, options);
  // A drain closes the kept-alive connections idle after a request (forceCloseConnections);
  // those never used since their handshake would hold it until the shutdown timeout.
  app.addHook('preClose', (done) => {
    unused.drain(DRAIN_UNUSED_GRACE_MS);
    done();
  });
  void app.register(admissionRoutes, options);
  return app;
}

export type AdmissionApp = ReturnType<typeof buildAdmissionApp>;
