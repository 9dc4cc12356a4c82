/**
 * Pure key classification: what the monitor observed + the time → a KeySnapshot, with the
 * short warnings for a usable key computed once. No I/O, no clocks: `now` is always passed in.
 */
import type { KmsKeyMetadata } from './client.js';
import { parseKmsDate } from './dates.js';
import { keyVerdictOf, type KmsError } from './errors.js';
import { displayKeyId } from './key-id.js';
import type {
  KeyFacts,
  KeyLookupOutcome,
  KeyObservations,
  KeySnapshot,
  LookupFailure,
  UnusableReason,
} from './types.js';
import { KEY_STATE_REASONS, WARNINGS } from './vocabulary.js';

export interface ClassifySettings {
  readonly maxStalenessMs: number;
  /** Facts older than two refresh intervals are worth a warning (lookups are failing). */
  readonly refreshIntervalMs: number;
}

/** One answer just received (`check`, `reencrypt`): it can be neither stale nor overdue. */
export const SINGLE_LOOKUP: ClassifySettings = {
  maxStalenessMs: Number.POSITIVE_INFINITY,
  refreshIntervalMs: Number.POSITIVE_INFINITY,
};

/** Imported key material that expires within this window is worth a warning. */
export const MATERIAL_EXPIRY_WARNING_MS = 7 * 24 * 3_600_000;

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
  return KEY_STATE_REASONS.find((reason) => reason === facts.keyState) ?? 'Disabled';
}

type Unwarned = Omit<KeySnapshot, 'warnings'>;

function classifyStatus(
  observations: KeyObservations,
  now: number,
  settings: ClassifySettings,
): Unwarned {
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

export function classifyKey(
  observations: KeyObservations,
  now: number,
  settings: ClassifySettings,
): KeySnapshot {
  const snapshot = classifyStatus(observations, now, settings);
  return { ...snapshot, warnings: keyWarnings(snapshot, settings.refreshIntervalMs, now) };
}

/** The snapshot of one lookup just made (`check`, `reencrypt`). */
export function classifySingleLookup(
  configuredKeyId: string,
  outcome: KeyLookupOutcome,
  now: number,
): KeySnapshot {
  return classifyKey(
    recordOutcome(initialObservations(configuredKeyId), outcome),
    now,
    SINGLE_LOOKUP,
  );
}

/** Short (< 120 characters) warnings for a usable key; empty for any other status. */
export function keyWarnings(snapshot: Unwarned, refreshIntervalMs: number, now: number): string[] {
  if (snapshot.status !== 'usable') return [];
  const facts = snapshot.key;
  const keyId = displayKeyId(snapshot);
  const warnings: string[] = [];
  if (facts?.deleteDate !== undefined) {
    warnings.push(WARNINGS.deletionScheduled(keyId, facts.deleteDate));
  }
  const expiry = facts?.materialExpireTime;
  if (expiry !== undefined && expiry.getTime() - now <= MATERIAL_EXPIRY_WARNING_MS) {
    warnings.push(WARNINGS.materialExpiring(keyId, expiry));
  }
  const lastSuccess = snapshot.lastSuccessAt;
  if (lastSuccess !== undefined && now - lastSuccess.getTime() > 2 * refreshIntervalMs) {
    warnings.push(WARNINGS.lookupsFailing(keyId, now - lastSuccess.getTime()));
  }
  return warnings;
}
