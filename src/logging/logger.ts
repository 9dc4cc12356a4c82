import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import type { LogLevel } from '../config/settings.js';

/**
 * Paths that could hold Secret data. Admission handlers never log objects, but redaction
 * is the second fence: a Secret (or AdmissionReview) logged by mistake loses its payload.
 */
export const REDACTED_PATHS = [
  'data',
  'stringData',
  '*.data',
  '*.stringData',
  '*.*.data',
  '*.*.stringData',
  'object',
  'oldObject',
  '*.object',
  '*.oldObject',
  '*.*.object',
  '*.*.oldObject',
  'req.body',
  'request.body',
  'body',
  'accessKeySecret',
  '*.accessKeySecret',
  'headers.authorization',
  'req.headers.authorization',
];

/**
 * pino's isoTime, formatted once per clock millisecond: under load many lines share a
 * millisecond, and toISOString was a visible part of each admission line's cost.
 */
export function isoTimePerMillisecond(now: () => number = Date.now): () => string {
  let formattedAt = Number.NaN;
  let formatted = '';
  return () => {
    const time = now();
    if (time !== formattedAt) {
      formattedAt = time;
      formatted = `,"time":"${new Date(time).toISOString()}"`;
    }
    return formatted;
  };
}

/**
 * Errors are logged as type, code and message only, at every level. Node's HTTP client
 * errors carry `rawPacket` (the request's bytes, Authorization header included) and others
 * carry headers or bodies: none of that may reach a log line. Non-errors pass unchanged.
 */
export function errorSummary(value: unknown): unknown {
  if (!(value instanceof Error)) return value;
  const code = (value as { code?: unknown }).code;
  return {
    type: value.name,
    ...(typeof code === 'string' || typeof code === 'number' ? { code } : {}),
    message: value.message,
  };
}

export function loggerOptions(level: LogLevel): LoggerOptions {
  return {
    level,
    base: { service: 'kms-secret-guard' },
    timestamp: isoTimePerMillisecond(),
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    serializers: { err: errorSummary, error: errorSummary },
    formatters: { level: (label) => ({ level: label }) },
  };
}

/** A JSON logger; tests pass their own destination stream to inspect every byte. */
export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return destination ? pino(loggerOptions(level), destination) : pino(loggerOptions(level));
}

export type { Logger };
