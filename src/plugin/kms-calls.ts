/**
 * One KMS Encrypt/Decrypt on behalf of a gRPC call: a cap on how many wait for KMS at once,
 * no KMS call for a call already cancelled, no waiting once it is cancelled, a metrics
 * observation per KMS call, and the KMS error as a gRPC answer with what to do.
 */
import { keyVerdictOf, toKmsError, type KmsError } from '../kms/errors.js';
import { PluginError } from './errors.js';

/** KMS calls waiting at once; kube-apiserver needs a handful (one Encrypt per new seed). */
export const DEFAULT_MAX_IN_FLIGHT = 64;

export type CryptoAction = 'Encrypt' | 'Decrypt';

/** One KMS call's outcome, for metrics (`result` is 'ok' or the KMS error code). */
export type KmsCallObserver = (call: {
  action: string;
  result: string;
  durationSeconds: number;
}) => void;

const UNUSABLE_KEY_CODES = new Set([
  'Rejected.Disabled',
  'Rejected.PendingDeletion',
  'Rejected.PendingImport',
  'Rejected.ResourceExpired',
]);

/** An answer about a key (missing, not permitted, not usable): worth a DescribeKey. */
export function isKeyRelated(error: KmsError): boolean {
  return keyVerdictOf(error) !== undefined || UNUSABLE_KEY_CODES.has(error.code);
}

/**
 * A KMS failure as the gRPC answer: the KMS code and message plus what to do. Decrypt's
 * key is the one that encrypted the blob, which need not be the plugin's key.
 */
export function kmsFailure(action: CryptoAction, error: KmsError): PluginError {
  const detail = `KMS ${action} failed (${error.code}): ${error.message}`;
  const whose = action === 'Decrypt' ? 'the key that encrypted this ciphertext' : 'the key';
  if (error.transient) {
    return new PluginError(
      'UNAVAILABLE',
      `${detail}. KMS is unreachable or throttling; the API server retries.`,
    );
  }
  const verdict = keyVerdictOf(error);
  if (verdict === 'NoPermission') {
    return new PluginError(
      'PERMISSION_DENIED',
      `${detail}. Grant the plugin's RAM identity kms:Encrypt, kms:Decrypt and kms:DescribeKey on ${whose}.`,
    );
  }
  if (verdict === 'NotFound') {
    const fix =
      action === 'Decrypt'
        ? 'The key that encrypted this ciphertext no longer exists in this account and region (check --kms-region); the data is lost unless the key comes back.'
        : 'Check --kms-key-id and --kms-region.';
    return new PluginError('NOT_FOUND', `${detail}. ${fix}`);
  }
  if (UNUSABLE_KEY_CODES.has(error.code)) {
    return new PluginError(
      'FAILED_PRECONDITION',
      `${detail}. ${whose.charAt(0).toUpperCase()}${whose.slice(1)} cannot be used: enable it or cancel its deletion in KMS (GET /healthz/kms shows the plugin's own key).`,
    );
  }
  if (action === 'Decrypt' && error.code.startsWith('InvalidParameter')) {
    return new PluginError(
      'INVALID_ARGUMENT',
      `${detail}. The ciphertext is not a KMS CiphertextBlob of this account, or it was altered.`,
    );
  }
  return new PluginError('INTERNAL', detail);
}

function cancelled(action: CryptoAction): PluginError {
  return new PluginError('CANCELLED', `${action}: the caller cancelled the call.`);
}

/** Settles with `work`, or rejects as soon as `signal` aborts (work goes on, unobserved). */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal, action: CryptoAction): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      reject(cancelled(action));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    work
      .then(resolve, reject)
      .finally(() => {
        signal.removeEventListener('abort', onAbort);
      })
      .catch(() => undefined);
  });
}

export interface KmsCallRunner {
  run<T>(action: CryptoAction, work: () => Promise<T>, signal?: AbortSignal): Promise<T>;
  inFlight(): number;
}

export function createKmsCallRunner(options: {
  readonly maxInFlight: number;
  readonly onKmsCall?: KmsCallObserver | undefined;
  /** Called with each KMS error before it becomes a gRPC answer. */
  readonly onKmsError: (action: CryptoAction, error: KmsError) => void;
}): KmsCallRunner {
  let inFlight = 0;
  const observe = (action: string, result: string, started: number): void => {
    options.onKmsCall?.({ action, result, durationSeconds: (performance.now() - started) / 1000 });
  };
  const run: KmsCallRunner['run'] = (action, work, signal) => {
    if (signal?.aborted === true) return Promise.reject(cancelled(action));
    if (inFlight >= options.maxInFlight) {
      return Promise.reject(
        new PluginError(
          'RESOURCE_EXHAUSTED',
          `${action}: ${inFlight} KMS calls are already in flight, the plugin's limit; the API server retries. If KMS is slow, see kms_secret_guard_kms_call_duration_seconds.`,
        ),
      );
    }
    inFlight += 1;
    const started = performance.now();
    const call = work()
      .then(
        (result) => {
          observe(action, 'ok', started);
          return result;
        },
        (thrown: unknown) => {
          const error = toKmsError(thrown);
          observe(action, error.code, started);
          options.onKmsError(action, error);
          throw kmsFailure(action, error);
        },
      )
      .finally(() => {
        inFlight -= 1;
      });
    return signal === undefined ? call : untilAborted(call, signal, action);
  };
  return { run, inFlight: () => inFlight };
}
