/**
 * KMS/POP error codes the emulator answers with, each with the HTTP status and message
 * Alibaba Cloud KMS (API 2016-01-20) uses for it. The SDK turns the JSON body
 * `{HttpStatus, Code, Message, RequestId}` into a thrown error whose `code` is `<Code>Error`.
 */
export const KMS_ERRORS = {
  MissingParameter: { status: 400, message: 'A required parameter is missing.' },
  InvalidParameter: { status: 400, message: 'The specified parameter is not valid.' },
  'InvalidAction.NotFound': {
    status: 404,
    message: 'Specified api is not found, please check your url and method.',
  },
  InvalidVersion: { status: 400, message: 'Specified parameter Version is not valid.' },
  'InvalidAccessKeyId.NotFound': {
    status: 404,
    message: 'The Access Key ID provided does not exist in our records.',
  },
  SignatureDoesNotMatch: {
    status: 400,
    // The classic SDKs split the message at ':' to compare the server's string to sign.
    message: 'Specified signature is not matched with our calculation. server string to sign is:',
  },
  IncompleteSignature: {
    status: 400,
    message: 'The request signature does not conform to Aliyun standards.',
  },
  SignatureNonceUsed: { status: 400, message: 'Specified signature nonce was used already.' },
  'InvalidSecurityToken.MismatchWithAccessKey': {
    status: 400,
    message: 'The security token does not belong to the access key.',
  },
  'InvalidTimeStamp.Expired': {
    status: 400,
    message: 'Specified time stamp or date value is expired.',
  },
  IllegalTimestamp: {
    status: 400,
    message:
      'The input parameter "Timestamp" that is mandatory for processing this request is not supplied.',
  },
  'InvalidTimeStamp.Format': {
    status: 400,
    message: 'Specified time stamp or date value is not well formatted.',
  },
  'Forbidden.NoPermission': {
    status: 403,
    message: 'This operation is forbidden by permission system.',
  },
  'Forbidden.KeyNotFound': { status: 404, message: 'The specified Key is not found.' },
  'Forbidden.AliasNotFound': { status: 404, message: 'The specified Alias is not found.' },
  'Forbidden.ResourceNotFound': { status: 404, message: 'The specified resource is not found.' },
  'Rejected.Disabled': { status: 409, message: 'The key is Disabled.' },
  'Rejected.PendingDeletion': { status: 409, message: 'The key is PendingDeletion.' },
  'Rejected.PendingImport': { status: 409, message: 'The key is PendingImport.' },
  'Rejected.UnexpectedState': {
    status: 409,
    message: 'The request was rejected because of an unexpected key state.',
  },
  'Rejected.AlreadyExists': { status: 409, message: 'The specified resource already exists.' },
  'Rejected.Throttling': { status: 429, message: 'Request was denied due to request throttling.' },
  Throttling: { status: 400, message: 'Request was denied due to request throttling.' },
  InternalFailure: { status: 500, message: 'Internal error, please try again later.' },
  ServiceUnavailableTemporary: {
    status: 503,
    message: 'Service is temporarily unavailable, please try again later.',
  },
} as const satisfies Record<string, { status: number; message: string }>;

export type KmsErrorCode = keyof typeof KMS_ERRORS;

/** An error answer of the KMS API (not a bug of the emulator). */
export class KmsApiError extends Error {
  override readonly name = 'KmsApiError';
  readonly code: string;
  readonly httpStatus: number;

  constructor(code: string, message?: string, httpStatus?: number) {
    const known = knownError(code);
    super(message ?? known?.message ?? `Emulated error ${code}.`);
    this.code = code;
    this.httpStatus = httpStatus ?? known?.status ?? 400;
  }
}

export function kmsError(code: KmsErrorCode, message?: string): KmsApiError {
  return new KmsApiError(code, message);
}

/** Status and message of a known code; fault injection may use any code string. */
export function knownError(code: string): { status: number; message: string } | undefined {
  return Object.hasOwn(KMS_ERRORS, code) ? KMS_ERRORS[code as KmsErrorCode] : undefined;
}
