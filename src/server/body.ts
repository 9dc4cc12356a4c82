import type { IncomingMessage } from 'node:http';
import { createReviewReader, type ParseResult } from '../admission/index.js';

/** kube-apiserver caps request bodies at 3 MiB objects; object + oldObject + envelope fit in 7. */
export const ADMISSION_BODY_LIMIT = 7 * 1024 * 1024;

/**
 * Bytes the admission listener's requests in flight may hold at once, all counted: each
 * request's own objects (REQUEST_BASE_CHARGE) plus what its parser holds (buffers, nesting
 * stack and the kept values; see SelectingJsonParser#heldBytes). Bodies are streamed, so a
 * request from the API server holds ~11 KiB whatever the Secret's size (1 500 of them fit,
 * more than the connection cap lets in); a body built to keep the most (10 000 levels, every
 * kept string at its bound) holds ~33 KiB, so ~500 such requests at once meet this and are
 * answered 503 instead of growing the heap.
 */
export const ADMISSION_HELD_BYTES_BUDGET = 16 * 1024 * 1024;

/**
 * What one request is charged before its first byte: Node's and Fastify's request and reply
 * objects, measured at ~6 KiB of heap per request in flight (400 stalled requests).
 */
export const REQUEST_BASE_CHARGE = 8 * 1024;

/** Seconds a client is told to wait when the webhook is saturated. */
export const RETRY_AFTER_SECONDS = 1;

/** A body answered with its own status (413, 503, 400) before or instead of a decision. */
export class AdmissionBodyError extends Error {
  override readonly name = 'AdmissionBodyError';
  readonly code: string;
  readonly statusCode: number;
  readonly headers: Readonly<Record<string, string>>;
  constructor(
    code: string,
    statusCode: number,
    message: string,
    headers: Record<string, string> = {},
  ) {
    super(message);
    this.code = code;
    this.statusCode = statusCode;
    this.headers = headers;
  }
}

/** Shared by the requests of one listener: the bytes they hold for parsing right now. */
export class HeldBytes {
  #held = 0;
  /** `onReceived` hears of every body chunk (the app reclaims socket buffers with it). */
  constructor(
    readonly budget: number = ADMISSION_HELD_BYTES_BUDGET,
    readonly received: (bytes: number) => void = () => undefined,
  ) {}
  get held(): number {
    return this.#held;
  }
  /** Adds `bytes` (negative to release); false when that would pass the budget (not added). */
  charge(bytes: number): boolean {
    if (bytes > 0 && this.#held + bytes > this.budget) return false;
    this.#held += bytes;
    return true;
  }
}

function tooLarge(): AdmissionBodyError {
  return new AdmissionBodyError(
    'KSG_BODY_TOO_LARGE',
    413,
    `The request body is larger than ${ADMISSION_BODY_LIMIT} bytes (7 MiB): an AdmissionReview never is; check what is calling the webhook.`,
    { connection: 'close' },
  );
}

function sizeText(bytes: number): string {
  const mib = bytes / (1024 * 1024);
  return mib >= 1 ? `${Math.round(mib)} MiB` : `${Math.round(bytes / 1024)} KiB`;
}

function saturated(budget: number): AdmissionBodyError {
  return new AdmissionBodyError(
    'KSG_BODY_BUDGET',
    503,
    `The webhook's requests in flight hold ${sizeText(budget)}, its budget for request bodies: too many large or slow requests at once; retry in ${RETRY_AFTER_SECONDS} s.`,
    { 'retry-after': String(RETRY_AFTER_SECONDS), connection: 'close' },
  );
}

type Done = (error: Error | null, body?: ParseResult) => void;

/**
 * Streams one admission body through the selective parser: nothing but what the parser
 * keeps is held, so memory per request does not depend on the body's size. A malformed body
 * is read to its end (answered 400 then, like a well-formed one, without a reset); a body
 * over the limit or past the budget is answered at once and its connection closed.
 */
export function readAdmissionBody(payload: IncomingMessage, held: HeldBytes, done: Done): void {
  const declared = Number(payload.headers['content-length'] ?? Number.NaN);
  if (declared > ADMISSION_BODY_LIMIT) {
    done(tooLarge());
    return;
  }
  if (!held.charge(REQUEST_BASE_CHARGE)) {
    done(saturated(held.budget));
    return;
  }
  const reader = createReviewReader();
  let charged = REQUEST_BASE_CHARGE;
  let received = 0;
  let finished = false;
  const finish = (error: Error | null, body?: ParseResult): void => {
    if (finished) return;
    finished = true;
    held.charge(-charged);
    charged = 0;
    payload.removeListener('data', onData);
    if (error === null) done(null, body);
    else done(error);
  };
  const onData = (chunk: Buffer): void => {
    received += chunk.length;
    held.received(chunk.length);
    if (received > ADMISSION_BODY_LIMIT) {
      finish(tooLarge());
      return;
    }
    reader.write(chunk);
    const delta = REQUEST_BASE_CHARGE + reader.heldBytes - charged;
    if (!held.charge(delta)) {
      finish(saturated(held.budget));
      return;
    }
    charged += delta;
  };
  payload.on('data', onData);
  payload.once('end', () => {
    finish(null, reader.end());
  });
  payload.once('error', (error) => {
    finish(error);
  });
  payload.once('close', () => {
    // The client went away mid-body: release its share; Fastify sees the aborted request.
    if (!payload.complete) finish(new AdmissionBodyError('KSG_BODY_ABORTED', 400, 'aborted'));
  });
}
