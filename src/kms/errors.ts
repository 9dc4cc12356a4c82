/**
 * One error shape for everything a KMS call can throw: API errors (the SDK names them
 * `<Code>Error` and hides the HTTP status in the message), network errors, timeouts and
 * credential-chain failures. The monitor and the CLI decide on `code` and `transient` only.
 */

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

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
}

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

/** Turns anything thrown by the SDK, the credential chain or the network into a KmsError. */
export function toKmsError(error: unknown): KmsError {
  if (error instanceof KmsError) return error;
  const fields = record(error);
  const name = text(fields.name) ?? '';
  const rawMessage = error instanceof Error ? error.message : String(error);
  const message = scrubMessage(rawMessage);
  const sdkCode = text(fields.code);
  const data = record(fields.data);

  // An API answer: ResponseError { code: '<Code>Error', message: 'code: 404, … requestid: …', data: body }.
  const bodyCode = text(data.Code) ?? text(data.code);
  if (
    bodyCode !== undefined ||
    (sdkCode?.endsWith('Error') === true && /code: \d{3}/.test(rawMessage))
  ) {
    const code = bodyCode ?? (sdkCode ?? '').replace(/Error$/, '');
    const statusMatch = /code: (\d{3})/.exec(rawMessage);
    const httpStatus =
      typeof data.HttpStatus === 'number'
        ? data.HttpStatus
        : statusMatch?.[1] !== undefined
          ? Number(statusMatch[1])
          : undefined;
    const requestId = text(data.RequestId) ?? text(data.requestId);
    const apiMessage = text(data.Message) ?? text(data.message) ?? message;
    return new KmsError({ code, message: scrubMessage(apiMessage), httpStatus, requestId });
  }

  if (
    /unable to get credentials|credentials? (is|are) (not|empty)|Missing required type option/i.test(
      rawMessage,
    )
  ) {
    return new KmsError({
      code: LOCAL_ERROR_CODES.credentialsMissing,
      message: `${CREDENTIALS_HELP} (${message})`,
      transient: false,
    });
  }
  if (name === 'RequestTimeoutError' || /timeout/i.test(name) || sdkCode === 'ETIMEDOUT') {
    return new KmsError({ code: LOCAL_ERROR_CODES.timeout, message, transient: true });
  }
  if (sdkCode !== undefined && NETWORK_ERRNOS.has(sdkCode)) {
    return new KmsError({ code: LOCAL_ERROR_CODES.network, message, transient: true });
  }
  if (/socket hang up/i.test(rawMessage)) {
    return new KmsError({ code: LOCAL_ERROR_CODES.network, message, transient: true });
  }
  if (sdkCode !== undefined && /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/i.test(sdkCode)) {
    return new KmsError({ code: LOCAL_ERROR_CODES.tls, message, transient: false });
  }
  if (error instanceof SyntaxError || /JSON|can not cast/i.test(rawMessage)) {
    return new KmsError({ code: LOCAL_ERROR_CODES.invalidResponse, message, transient: true });
  }
  return new KmsError({ code: LOCAL_ERROR_CODES.unexpected, message, transient: false });
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
