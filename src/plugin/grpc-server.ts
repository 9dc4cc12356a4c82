/**
 * The gRPC side of the plugin: the vendored KMS v2 api.proto loaded with @grpc/proto-loader,
 * served by @grpc/grpc-js on a unix socket. Every answer comes from the PluginService; this
 * file only moves bytes, counts calls, and drains on shutdown.
 */
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Logger } from '../logging/logger.js';
import { PluginError } from './errors.js';
import type { PluginService } from './service.js';
import { bindPrivately, prepareSocketPath, removeSocket } from './socket.js';

/** Shipped next to the compiled code (the build copies src/plugin/proto to dist/plugin/proto). */
export const PROTO_PATH = fileURLToPath(new URL('./proto/api.proto', import.meta.url));

/**
 * The largest request kube-apiserver sends is a Decrypt: a ciphertext and a key_id of at most
 * 1 KiB each and annotations of at most 32 KiB (its own limits); Encrypt carries a 32-byte seed.
 * Anything larger is refused (RESOURCE_EXHAUSTED) before it is decoded.
 */
export const MAX_RECEIVE_MESSAGE_BYTES = 36 * 1024;
/** Answers are an Encrypt's ciphertext (a few hundred bytes) or a 32-byte plaintext. */
const MAX_SEND_MESSAGE_BYTES = 16 * 1024;
const MAX_CONCURRENT_STREAMS = 256;
export const DEFAULT_DRAIN_TIMEOUT_MS = 10_000;

export interface KmsV2Package {
  readonly KeyManagementService: grpc.ServiceClientConstructor;
}

/** The `v2` package of api.proto (snake_case field names as on the wire; bytes as Buffers). */
export function loadKmsV2Package(): KmsV2Package {
  const definition = protoLoader.loadSync(PROTO_PATH, { keepCase: true, defaults: true });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as { v2: KmsV2Package };
  return loaded.v2;
}

interface EncryptRequest {
  plaintext: Buffer;
  uid: string;
}
interface DecryptRequest {
  ciphertext: Buffer;
  uid: string;
  key_id: string;
}

export interface PluginServerOptions {
  readonly service: PluginService;
  readonly socketPath: string;
  readonly logger: Logger;
  /** One call per answered request: method, gRPC code name ('OK', 'INVALID_ARGUMENT', …), seconds. */
  readonly observe?: (method: string, code: string, seconds: number) => void;
  /** In-flight calls get this long to finish at shutdown (default 10 s). */
  readonly drainTimeoutMs?: number;
}

export interface RunningPluginServer {
  readonly socketPath: string;
  /** True once close() began: new calls are answered UNAVAILABLE. */
  closing(): boolean;
  inFlight(): number;
  /** Refuses new calls, waits for in-flight ones (bounded), stops, removes the socket. Idempotent. */
  close(): Promise<void>;
}

function toServiceError(
  error: unknown,
  logger: Logger,
  method: string,
): Partial<grpc.StatusObject> {
  if (error instanceof PluginError)
    return { code: grpc.status[error.code], details: error.message };
  // Never the error object itself: it could quote a request.
  logger.error(
    { method, errorName: (error as Error | undefined)?.name },
    'unexpected error in a KMS v2 call',
  );
  return {
    code: grpc.status.INTERNAL,
    details: `${method}: internal error in the KMS plugin; see its log.`,
  };
}

function bind(server: grpc.Server, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (error) => {
      if (error) reject(error);
      else resolve();
    });
  });
}

type Work<Req, Res> = (request: Req, signal: AbortSignal) => Res | Promise<Res>;

/** Counts in-flight calls and turns new ones away once shutdown began. */
interface CallGate {
  readonly unary: <Req, Res>(
    method: string,
    work: Work<Req, Res>,
  ) => grpc.handleUnaryCall<Req, Res>;
  closing(): boolean;
  inFlight(): number;
  /** Refuses new calls; resolves once in-flight ones finished or after timeoutMs. */
  drain(timeoutMs: number): Promise<void>;
}

type AbortReason = 'cancelled' | 'deadline';

/** Aborts when the caller cancels the call or its deadline passes. */
function watchCall<Req, Res>(
  call: grpc.ServerUnaryCall<Req, Res>,
): {
  signal: AbortSignal;
  dispose(): void;
} {
  const controller = new AbortController();
  const deadline = call.getDeadline();
  const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
  // grpc-js ends a call whose deadline passed itself, which also reports it cancelled.
  const onCancelled = (): void => {
    controller.abort((Date.now() >= deadlineMs ? 'deadline' : 'cancelled') satisfies AbortReason);
  };
  call.once('cancelled', onCancelled);
  if (call.cancelled) onCancelled();
  const remainingMs = deadlineMs - Date.now();
  let timer: NodeJS.Timeout | undefined;
  if (Number.isFinite(remainingMs)) {
    timer = setTimeout(
      () => {
        controller.abort('deadline' satisfies AbortReason);
      },
      Math.max(0, remainingMs),
    );
    timer.unref();
  }
  return {
    signal: controller.signal,
    dispose() {
      clearTimeout(timer);
      call.removeListener('cancelled', onCancelled);
    },
  };
}

/** The answer to a call its caller gave up on (grpc-js drops it; metrics and logs keep it). */
function abandoned(method: string, reason: unknown): Partial<grpc.StatusObject> {
  return reason === 'deadline'
    ? {
        code: grpc.status.DEADLINE_EXCEEDED,
        details: `${method}: the caller's deadline passed before KMS answered; KMS is slow (see kms_secret_guard_kms_call_duration_seconds).`,
      }
    : { code: grpc.status.CANCELLED, details: `${method}: the caller cancelled the call.` };
}

function createCallGate(options: PluginServerOptions): CallGate {
  const { logger } = options;
  let closing = false;
  let inFlight = 0;
  let drained: (() => void) | undefined;

  const unary: CallGate['unary'] = (method, work) => (call, callback) => {
    const started = performance.now();
    let answered = false;
    const answer = (error: Partial<grpc.StatusObject> | null, response?: unknown): void => {
      if (answered) return;
      answered = true;
      const code = error === null ? 'OK' : grpc.status[error.code ?? grpc.status.UNKNOWN];
      const seconds = (performance.now() - started) / 1000;
      options.observe?.(method, code, seconds);
      logger.trace({ method, code, seconds }, 'KMS v2 call answered');
      if (error === null) callback(null, response as never);
      else callback(error);
    };
    if (closing) {
      answer({
        code: grpc.status.UNAVAILABLE,
        details: `${method}: the KMS plugin is shutting down; the API server retries against its replacement.`,
      });
      return;
    }
    const watch = watchCall(call);
    const finish = (error: Partial<grpc.StatusObject> | null, response?: unknown): void => {
      if (answered) return;
      watch.dispose();
      answer(error, response);
      inFlight -= 1;
      if (inFlight === 0) drained?.();
    };
    // Answered at once when the caller gives up; the work sees the signal and stops early.
    watch.signal.addEventListener('abort', () => {
      finish(abandoned(method, watch.signal.reason));
    });
    inFlight += 1;
    Promise.resolve()
      .then(() => work(call.request, watch.signal))
      .then(
        (response) => {
          finish(null, response);
        },
        (error: unknown) => {
          finish(toServiceError(error, logger, method));
        },
      );
  };

  async function drain(timeoutMs: number): Promise<void> {
    closing = true;
    if (inFlight === 0) return;
    logger.info({ inFlight }, 'shutting down: finishing in-flight KMS calls');
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      drained = resolve;
      timer = setTimeout(() => {
        logger.warn({ inFlight, timeoutMs }, 'shutdown timeout: cutting the remaining KMS calls');
        resolve();
      }, timeoutMs);
    });
    clearTimeout(timer);
  }

  return { unary, closing: () => closing, inFlight: () => inFlight, drain };
}

function handlers(service: PluginService, gate: CallGate): grpc.UntypedServiceImplementation {
  return {
    Status: gate.unary('Status', () => {
      const status = service.status();
      return { version: status.version, healthz: status.healthz, key_id: status.keyId };
    }),
    Encrypt: gate.unary('Encrypt', async (request: EncryptRequest, signal) => {
      const answer = await service.encrypt(
        { plaintext: request.plaintext, uid: request.uid },
        signal,
      );
      return {
        ciphertext: answer.ciphertext,
        key_id: answer.keyId,
        annotations: answer.annotations,
      };
    }),
    Decrypt: gate.unary('Decrypt', async (request: DecryptRequest, signal) => ({
      plaintext: await service.decrypt(
        { ciphertext: request.ciphertext, uid: request.uid, keyId: request.key_id },
        signal,
      ),
    })),
  };
}

function shutdown(server: grpc.Server): Promise<void> {
  return new Promise<void>((resolve) => {
    const force = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, 1000);
    server.tryShutdown(() => {
      clearTimeout(force);
      resolve();
    });
  });
}

export async function startPluginServer(
  options: PluginServerOptions,
): Promise<RunningPluginServer> {
  const { socketPath, logger } = options;
  const gate = createCallGate(options);
  const server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_RECEIVE_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_SEND_MESSAGE_BYTES,
    'grpc.max_concurrent_streams': MAX_CONCURRENT_STREAMS,
  });
  server.addService(
    loadKmsV2Package().KeyManagementService.service,
    handlers(options.service, gate),
  );

  await prepareSocketPath(socketPath);
  // Bound in a private folder and moved into place: owner-only from its first moment.
  await bindPrivately(socketPath, (path) => bind(server, `unix:${path}`));
  logger.info({ socketPath }, 'KMS v2 plugin listening');

  let closed: Promise<void> | undefined;
  const close = async (): Promise<void> => {
    await gate.drain(options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS);
    await shutdown(server);
    await removeSocket(socketPath);
    logger.info({ socketPath }, 'KMS v2 plugin stopped');
  };

  return {
    socketPath,
    closing: () => gate.closing(),
    inFlight: () => gate.inFlight(),
    close: () => (closed ??= close()),
  };
}
