/**
 * One error shape for everything a KMS call can throw: API errors (the SDK names them
 * `<Code>Error` and hides the HTTP status in the message), network errors, timeouts and
 * credential-chain failures. The monitor and the CLI decide on `code` and `transient` only.
 */
import { asRecord } from './fields.js';

/** Codes the guard itself assigns to failures that are not KMS API answers. */
export const LOCAL_ERROR_CODES = {
  /** The credential chain found nothing to sign with. */
  credentialsMissing: 'CredentialsMissing',
  /** No TCP connection (refused, DNS failure, unreachable host, reset). */
  network: 'NetworkError',
  /** Connect or read timeout, or the monitor's own deadline. */
  timeout: 'Timeout',
  /** TLS handshake or certificate failure. */
  tls: 'TlsError',
  /** KMS answered something that is not a KMS JSON document (e.g. a proxy's HTML page). */
  invalidResponse: 'InvalidResponse',
  /** Anything else (a bug or an unexpected SDK error). */
  unexpected: 'UnexpectedError',
} as const;

const CREDENTIALS_HELP =
  'no Alibaba Cloud credentials found: set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET (plus ALIBABA_CLOUD_SECURITY_TOKEN for STS), or on ACK enable RRSA (ALIBABA_CLOUD_ROLE_ARN, ALIBABA_CLOUD_OIDC_PROVIDER_ARN, ALIBABA_CLOUD_OIDC_TOKEN_FILE), or attach a RAM role to the ECS instance';

export class KmsError extends Error {
  override readonly name = 'KmsError';
  readonly code: string;
  readonly httpStatus: number | undefined;
  readonly requestId: string | undefined;
  /** Worth retrying soon: throttling, 5xx, network trouble, timeouts. */
  readonly transient: boolean;

  constructor(fields: {
    code: string;
    message: string;
    httpStatus?: number | undefined;
    requestId?: string | undefined;
    transient?: boolean;
  }) {
    super(fields.message);
    this.code = fields.code;
    this.httpStatus = fields.httpStatus;
    this.requestId = fields.requestId;
    this.transient = fields.transient ?? isTransient(fields.code, fields.httpStatus);
  }
}

const TRANSIENT_CODES = new Set([
  'Throttling',
  'Rejected.Throttling',
  'Throttling.User',
  'Throttling.Api',
  'InternalFailure',
  'InternalError',
  'ServiceUnavailable',
  'ServiceUnavailableTemporary',
  LOCAL_ERROR_CODES.network,
  LOCAL_ERROR_CODES.timeout,
  LOCAL_ERROR_CODES.invalidResponse,
]);

export function isTransient(code: string, httpStatus: number | undefined): boolean {
  if (httpStatus === 429 || (httpStatus !== undefined && httpStatus >= 500)) return true;
  return TRANSIENT_CODES.has(code) || code.startsWith('Throttling');
}

const NETWORK_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'ECONNABORTED',
  'EADDRNOTAVAIL',
]);

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** Query parameters that identify or authenticate the caller, raw or URL-encoded once or twice. */
const CREDENTIAL_PARAMETER =
  /((?:AccessKeyId|SecurityToken|Signature|AccessKeySecret)(?:=|%3D|%253D))(?:(?!&|%26|%2526)\S)*/gi;

/**
 * Error messages can carry credentials: httpx's end with the full signed request URL, and
 * KMS's SignatureDoesNotMatch quotes its "string to sign", which holds the AccessKeyId and
 * (with STS/RRSA) the SecurityToken. Drop both before the text goes anywhere; as a second
 * fence, blank any credential parameter that is left.
 */
export function scrubMessage(message: string): string {
  return message
    .replace(/(string to sign is:?)\s*\S*/gi, '$1 [redacted]')
    .replace(/\?\S*/g, '')
    .replace(/\s*(?:GET|POST|PUT|DELETE|HEAD) (?:https?:\/\/\S+|\/\S*) failed\.?/g, '')
    .replace(CREDENTIAL_PARAMETER, '$1[redacted]')
    .replace(/\s+/g, ' ')
    .trim();
}

/**
 * An API answer: the SDK throws ResponseError { code: '<Code>Error', message: 'code: 404, …
 * requestid: …', data: body }. Undefined when the error is not one.
 */
function apiError(fields: Record<string, unknown>, rawMessage: string): KmsError | undefined {
  const sdkCode = text(fields.code);
  const data = asRecord(fields.data);
  const bodyCode = text(data.Code) ?? text(data.code);
  const status = /code: (\d{3})/.exec(rawMessage)?.[1];
  const sdkAnswer = sdkCode?.endsWith('Error') === true && status !== undefined;
  if (bodyCode === undefined && !sdkAnswer) return undefined;
  return new KmsError({
    code: bodyCode ?? (sdkCode ?? '').replace(/Error$/, ''),
    message: scrubMessage(text(data.Message) ?? text(data.message) ?? rawMessage),
    httpStatus: httpStatusOf(data, status),
    requestId: text(data.RequestId) ?? text(data.requestId),
  });
}

/** The body's HttpStatus, else the one the SDK wrote into its message. */
function httpStatusOf(data: Record<string, unknown>, fromMessage: string | undefined) {
  if (typeof data.HttpStatus === 'number') return data.HttpStatus;
  return fromMessage === undefined ? undefined : Number(fromMessage);
}

const MISSING_CREDENTIALS =
  /unable to get credentials|credentials? (is|are) (not|empty)|Missing required type option/i;
const TLS_ERRNO = /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/i;

function isTimeout(name: string, errno: string | undefined): boolean {
  return name === 'RequestTimeoutError' || /timeout/i.test(name) || errno === 'ETIMEDOUT';
}

function isNetworkFailure(errno: string | undefined, rawMessage: string): boolean {
  return (errno !== undefined && NETWORK_ERRNOS.has(errno)) || /socket hang up/i.test(rawMessage);
}

/** The local code of a failure that never reached KMS's API (see LOCAL_ERROR_CODES). */
function localCode(error: unknown, fields: Record<string, unknown>, rawMessage: string): string {
  const errno = text(fields.code);
  if (MISSING_CREDENTIALS.test(rawMessage)) return LOCAL_ERROR_CODES.credentialsMissing;
  if (isTimeout(text(fields.name) ?? '', errno)) return LOCAL_ERROR_CODES.timeout;
  if (isNetworkFailure(errno, rawMessage)) return LOCAL_ERROR_CODES.network;
  if (errno !== undefined && TLS_ERRNO.test(errno)) return LOCAL_ERROR_CODES.tls;
  if (error instanceof SyntaxError || /JSON|can not cast/i.test(rawMessage)) {
    return LOCAL_ERROR_CODES.invalidResponse;
  }
  return LOCAL_ERROR_CODES.unexpected;
}

/** Whether a local failure is worth retrying soon (the rest are configuration or bugs). */
const LOCAL_TRANSIENT: Readonly<Record<string, boolean>> = {
  [LOCAL_ERROR_CODES.credentialsMissing]: false,
  [LOCAL_ERROR_CODES.timeout]: true,
  [LOCAL_ERROR_CODES.network]: true,
  [LOCAL_ERROR_CODES.tls]: false,
  [LOCAL_ERROR_CODES.invalidResponse]: true,
  [LOCAL_ERROR_CODES.unexpected]: false,
};

/** Turns anything thrown by the SDK, the credential chain or the network into a KmsError. */
export function toKmsError(error: unknown): KmsError {
  if (error instanceof KmsError) return error;
  const fields = asRecord(error);
  const rawMessage = error instanceof Error ? error.message : String(error);
  const answered = apiError(fields, rawMessage);
  if (answered) return answered;
  const code = localCode(error, fields, rawMessage);
  const message = scrubMessage(rawMessage);
  return new KmsError({
    code,
    message:
      code === LOCAL_ERROR_CODES.credentialsMissing ? `${CREDENTIALS_HELP} (${message})` : message,
    transient: LOCAL_TRANSIENT[code] ?? false,
  });
}

/** Definitive answers about the key (as opposed to trouble reaching KMS). */
export function keyVerdictOf(error: KmsError): 'NotFound' | 'NoPermission' | undefined {
  const { code } = error;
  if (
    code === 'Forbidden.KeyNotFound' ||
    code === 'Forbidden.AliasNotFound' ||
    code === 'Forbidden.ResourceNotFound' ||
    code === 'EntityNotExist.Key' ||
    code === 'EntityNotExist.Alias'
  ) {
    return 'NotFound';
  }
  if (
    code === 'Forbidden.NoPermission' ||
    code === 'Forbidden.RAM' ||
    code === 'Forbidden.KeyNotAuthorized' ||
    code === 'NoPermission'
  ) {
    return 'NoPermission';
  }
  return undefined;
}

/** The guard's own credentials are wrong: a configuration problem, not a fact about the key. */
export function isCredentialProblem(error: KmsError): boolean {
  return (
    error.code === LOCAL_ERROR_CODES.credentialsMissing ||
    error.code.startsWith('InvalidAccessKeyId') ||
    error.code === 'SignatureDoesNotMatch' ||
    error.code === 'InvalidSecurityToken.Expired' ||
    error.code === 'InvalidSecurityToken.Malformed' ||
    error.code === 'InvalidSecurityToken.MismatchWithAccessKey'
  );
}
