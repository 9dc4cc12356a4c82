/**
 * Pure key classification: what the monitor observed + the time → a KeySnapshot, and the
 * short warnings for a usable key. No I/O, no clocks: `now` is always passed in.
 */
import type { KmsKeyMetadata } from './client.js';
import { keyVerdictOf, type KmsError } from './errors.js';
import type {
  KeyFacts,
  KeyLookupOutcome,
  KeyObservations,
  KeySnapshot,
  LookupFailure,
  UnusableReason,
} from './types.js';

export interface ClassifySettings {
  readonly maxStalenessMs: number;
}

/** Imported key material that expires within this window is worth a warning. */
export const MATERIAL_EXPIRY_WARNING_MS = 7 * 24 * 3_600_000;
/** Warnings are shorter than this many characters (kubectl prints each on one line). */
export const MAX_WARNING_LENGTH = 119;

const KEY_STATE_REASONS: Readonly<Record<string, UnusableReason>> = {
  Disabled: 'Disabled',
  PendingDeletion: 'PendingDeletion',
  PendingImport: 'PendingImport',
};

/** KMS dates are ISO 8601 (`2026-11-28T09:00:00Z`); anything unparsable counts as absent. */
export function parseKmsDate(text: string | undefined): Date | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  const parsed = new Date(text.trim());
  return Number.isNaN(parsed.getTime()) ? undefined : parsed;
}

/** RFC 3339 UTC without milliseconds, as the rotation-time annotation uses. */
export function formatRfc3339(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * DescribeKey accepts a key id or `alias/…`; an ARN (`acs:kms:<region>:<uid>:key/<id>` or
 * `…:alias/<name>`) is reduced to that so every KMS flavour (and the emulator) takes it.
 */
export function requestKeyId(configured: string): string {
  const arn = /^acs:kms:[^:]*:[^:]*:(key\/(.+)|alias\/.+)$/.exec(configured.trim());
  if (!arn) return configured.trim();
  return arn[2] ?? arn[1] ?? configured.trim();
}

export function factsFromMetadata(meta: KmsKeyMetadata): KeyFacts {
  const creationDate = parseKmsDate(meta.creationDate);
  const lastRotationDate = parseKmsDate(meta.lastRotationDate);
  return {
    keyId: meta.keyId,
    arn: meta.arn,
    keyState: meta.keyState,
    primaryKeyVersion: meta.primaryKeyVersion,
    creationDate,
    rotationTime: lastRotationDate ?? creationDate,
    lastRotationDate,
    nextRotationDate: parseKmsDate(meta.nextRotationDate),
    automaticRotation: meta.automaticRotation,
    rotationInterval: meta.rotationInterval,
    deleteDate: parseKmsDate(meta.deleteDate),
    deletionProtection: meta.deletionProtection,
    materialExpireTime: parseKmsDate(meta.materialExpireTime),
    origin: meta.origin,
  };
}

export function failureFromError(error: KmsError, at: Date): LookupFailure {
  return {
    code: error.code,
    message: error.message,
    httpStatus: error.httpStatus,
    at,
    requestId: error.requestId,
    transient: error.transient,
  };
}

/** A failed DescribeKey: a verdict about the key (NotFound, NoPermission) or just a failure. */
export function outcomeFromError(error: KmsError, at: Date): KeyLookupOutcome {
  const failure = failureFromError(error, at);
  const verdict = keyVerdictOf(error);
  return verdict ? { kind: 'verdict', verdict, failure } : { kind: 'failed', failure };
}

export function initialObservations(configuredKeyId: string): KeyObservations {
  return {
    configuredKeyId,
    facts: undefined,
    verdict: undefined,
    lastSuccessAt: undefined,
    lastFailure: undefined,
    firstLookupDone: false,
  };
}

/** Folds one lookup into what is known. Failures never erase the last authoritative answer. */
export function recordOutcome(
  observations: KeyObservations,
  outcome: KeyLookupOutcome,
): KeyObservations {
  switch (outcome.kind) {
    case 'found':
      return {
        ...observations,
        facts: outcome.facts,
        verdict: undefined,
        lastSuccessAt: outcome.at,
        lastFailure: undefined,
        firstLookupDone: true,
      };
    case 'verdict':
      return {
        ...observations,
        verdict: outcome.verdict,
        lastSuccessAt: outcome.failure.at,
        lastFailure: outcome.failure,
        firstLookupDone: true,
      };
    case 'failed':
      return { ...observations, lastFailure: outcome.failure, firstLookupDone: true };
  }
}

function reasonFromFacts(facts: KeyFacts, now: number): UnusableReason | undefined {
  if (facts.keyState === 'Enabled') {
    const expiry = facts.materialExpireTime;
    return expiry !== undefined && expiry.getTime() <= now ? 'MaterialExpired' : undefined;
  }
  // KMS has no other states today; an unknown one is treated as not usable, like Disabled.
  return KEY_STATE_REASONS[facts.keyState] ?? 'Disabled';
}

export function classifyKey(
  observations: KeyObservations,
  now: number,
  settings: ClassifySettings,
): KeySnapshot {
  const { lastSuccessAt } = observations;
  const ageMs =
    lastSuccessAt === undefined ? undefined : Math.max(0, now - lastSuccessAt.getTime());
  const base = {
    configuredKeyId: observations.configuredKeyId,
    key: observations.facts,
    lastSuccessAt,
    lastFailure: observations.lastFailure,
    checkedAt: new Date(now),
    ageSeconds: ageMs === undefined ? undefined : Math.round(ageMs) / 1000,
    firstLookupDone: observations.firstLookupDone,
  };
  if (ageMs === undefined) return { ...base, status: 'unknown', reason: 'NeverFetched' };
  if (ageMs > settings.maxStalenessMs) return { ...base, status: 'unknown', reason: 'Stale' };
  if (observations.verdict !== undefined) {
    return { ...base, status: 'unusable', reason: observations.verdict };
  }
  const facts = observations.facts;
  // A success always records facts; this branch only guards the type.
  if (facts === undefined) return { ...base, status: 'unknown', reason: 'NeverFetched' };
  const reason = reasonFromFacts(facts, now);
  return reason === undefined
    ? { ...base, status: 'usable', reason: undefined }
    : { ...base, status: 'unusable', reason };
}

function shorten(keyId: string, room: number): string {
  if (keyId.length <= room) return keyId;
  const keep = Math.max(4, room - 1);
  return `${keyId.slice(0, Math.ceil(keep / 2))}…${keyId.slice(keyId.length - Math.floor(keep / 2))}`;
}

/** Fits a warning under the limit by shortening the key id, never the advice. */
export function fitWarning(keyId: string, build: (id: string) => string): string {
  const full = build(keyId);
  if (full.length <= MAX_WARNING_LENGTH) return full;
  const room = keyId.length - (full.length - MAX_WARNING_LENGTH);
  return build(shorten(keyId, room)).slice(0, MAX_WARNING_LENGTH);
}

function ago(ms: number): string {
  const seconds = Math.round(ms / 1000);
  return seconds < 120 ? `${seconds}s` : `${Math.round(seconds / 60)}m`;
}

/** Short (< 120 characters) warnings for a usable key; empty for any other status. */
export function keyWarnings(
  snapshot: KeySnapshot,
  refreshIntervalMs: number,
  now: number,
): string[] {
  if (snapshot.status !== 'usable') return [];
  const facts = snapshot.key;
  const keyId = facts?.keyId ?? snapshot.configuredKeyId;
  const warnings: string[] = [];
  if (facts?.deleteDate !== undefined) {
    const when = formatRfc3339(facts.deleteDate);
    warnings.push(
      fitWarning(keyId, (id) => `KMS key ${id} is scheduled for deletion at ${when}: cancel it`),
    );
  }
  const expiry = facts?.materialExpireTime;
  if (expiry !== undefined && expiry.getTime() - now <= MATERIAL_EXPIRY_WARNING_MS) {
    const when = formatRfc3339(expiry);
    warnings.push(
      fitWarning(
        keyId,
        (id) => `KMS key ${id}: imported key material expires at ${when}; reimport it`,
      ),
    );
  }
  const lastSuccess = snapshot.lastSuccessAt;
  if (lastSuccess !== undefined && now - lastSuccess.getTime() > 2 * refreshIntervalMs) {
    const age = ago(now - lastSuccess.getTime());
    warnings.push(
      fitWarning(
        keyId,
        (id) => `KMS key ${id}: state last confirmed ${age} ago; KMS lookups are failing`,
      ),
    );
  }
  return warnings;
}
