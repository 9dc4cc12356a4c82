/**
 * The one vocabulary for the key: every reason the guard gives for not using the KMS key,
 * and how each is said — as a one-line warning (problem and remedy), as the explanation that
 * `check` and GET /healthz/kms give, and as /validate's denial. Everything a person reads
 * about the key's state is written here, so the texts cannot drift apart. Pure text, no I/O.
 */
import { formatRfc3339 } from './dates.js';
import { displayKeyId } from './key-id.js';
import type { KeySnapshot } from './types.js';

/** Why a key cannot be used for envelope encryption right now. */
export const UNUSABLE_REASONS = [
  'Disabled',
  'PendingDeletion',
  'PendingImport',
  'NotFound',
  'NoPermission',
  'MaterialExpired',
] as const;
export type UnusableReason = (typeof UNUSABLE_REASONS)[number];

/** Why the guard does not know the key's state. */
export const UNKNOWN_REASONS = ['NeverFetched', 'Stale'] as const;
export type UnknownReason = (typeof UNKNOWN_REASONS)[number];

export type KeyReason = UnusableReason | UnknownReason;

/** The API server shows warnings shorter than 120 characters; they stay at or under this. */
export const MAX_WARNING_LENGTH = 119;

/** The dates a denial names when the key has them. */
export interface KeyDates {
  readonly deleteDate?: Date | undefined;
  readonly materialExpireTime?: Date | undefined;
}

interface UnusableWording {
  /** After "KMS key <id>" in a one-line warning: what is wrong. */
  readonly problem: string;
  /** The short remedy of a one-line warning. */
  readonly remedy: string;
  /** KMS's KeyState has this very name (the other reasons are reported as states of their own). */
  readonly isKeyState: boolean;
  /** One sentence for `check` and /healthz/kms: what the reason means and what to do. */
  explanation(keyId: string): string;
  /** /validate's denial after "Secret writes are blocked: ": key id, state, consequence, remedy. */
  denial(keyId: string, dates: KeyDates): string;
}

interface UnknownWording {
  explanation(keyId: string): string;
  /** In parentheses after "state unknown": how long KMS has been silent. */
  detail(ageSeconds: number | undefined): string;
}

const BLOCKED = 'Secret writes are blocked';
const CONSEQUENCE = 'so the API server cannot encrypt this Secret';

/** " <words> <date>" when the date is known, else nothing. */
function on(words: string, date: Date | undefined): string {
  return date === undefined ? '' : ` ${words} ${formatRfc3339(date)}`;
}

export const UNUSABLE_WORDING: Readonly<Record<UnusableReason, UnusableWording>> = {
  Disabled: {
    problem: 'is Disabled',
    remedy: 'run EnableKey',
    isKeyState: true,
    explanation: (keyId) =>
      `KMS key ${keyId} is Disabled: Secrets cannot be encrypted or decrypted; enable the key (EnableKey) in KMS.`,
    denial: (keyId) =>
      `KMS key ${keyId} is Disabled, ${CONSEQUENCE}. Enable the key in KMS (EnableKey) and retry.`,
  },
  PendingDeletion: {
    problem: 'is PendingDeletion',
    remedy: 'run CancelKeyDeletion',
    isKeyState: true,
    explanation: (keyId) =>
      `KMS key ${keyId} is scheduled for deletion: Secrets written now are lost once it is deleted; cancel the deletion (CancelKeyDeletion).`,
    denial: (keyId, { deleteDate }) =>
      `KMS key ${keyId} is PendingDeletion${on('and will be deleted on', deleteDate)}; Secrets encrypted with it are lost for good once it is deleted. Cancel the deletion in KMS (CancelKeyDeletion), enable the key if needed, and retry.`,
  },
  PendingImport: {
    problem: 'is PendingImport',
    remedy: 'import key material',
    isKeyState: true,
    explanation: (keyId) =>
      `KMS key ${keyId} is waiting for imported key material: import the material before using the key.`,
    denial: (keyId) =>
      `KMS key ${keyId} is PendingImport (it has no key material yet), ${CONSEQUENCE}. Import the key material in KMS (GetParametersForImport, ImportKeyMaterial) and retry.`,
  },
  NotFound: {
    problem: 'was not found',
    remedy: 'check the key id and region',
    isKeyState: false,
    explanation: (keyId) =>
      `KMS key ${keyId} was not found: check the key id/alias and the region (--kms-region / --kms-endpoint).`,
    denial: (keyId) =>
      `KMS key ${keyId} was not found, ${CONSEQUENCE}. Check the key id and region the cluster and the guard use (--kms-key-id, --kms-region) and retry.`,
  },
  NoPermission: {
    problem: 'is forbidden',
    remedy: 'grant kms:Encrypt/Decrypt/DescribeKey',
    isKeyState: false,
    explanation: (keyId) =>
      `KMS key ${keyId} is not accessible with these credentials: grant kms:DescribeKey (and Encrypt/Decrypt to the cluster) in RAM.`,
    denial: (keyId) =>
      `permission to use KMS key ${keyId} was denied (Forbidden.NoPermission), ${CONSEQUENCE}. Grant the cluster's RAM role kms:Encrypt, kms:Decrypt and kms:DescribeKey on the key and retry.`,
  },
  MaterialExpired: {
    problem: 'has expired key material',
    remedy: 're-import key material',
    isKeyState: false,
    explanation: (keyId) =>
      `The imported key material of KMS key ${keyId} has expired: import new key material.`,
    denial: (keyId, { materialExpireTime }) =>
      `the imported key material of KMS key ${keyId} expired${on('on', materialExpireTime)}, ${CONSEQUENCE}. Re-import the key material in KMS (ImportKeyMaterial) and retry.`,
  },
};

export const UNKNOWN_WORDING: Readonly<Record<UnknownReason, UnknownWording>> = {
  NeverFetched: {
    explanation: (keyId) =>
      `The state of KMS key ${keyId} is unknown: no lookup has succeeded yet.`,
    detail: () => 'KMS has not answered yet',
  },
  Stale: {
    explanation: (keyId) =>
      `The state of KMS key ${keyId} is unknown: the last successful lookup is older than --max-staleness.`,
    detail: (ageSeconds) =>
      ageSeconds === undefined
        ? 'KMS has not answered yet'
        : `no KMS answer for ${Math.round(ageSeconds)}s`,
  },
};

/** The reasons that are KMS KeyStates of the same name (Disabled, PendingDeletion, PendingImport). */
export const KEY_STATE_REASONS: readonly UnusableReason[] = UNUSABLE_REASONS.filter(
  (reason) => UNUSABLE_WORDING[reason].isKeyState,
);

export function isUnusableReason(reason: KeyReason): reason is UnusableReason {
  return (UNUSABLE_REASONS as readonly string[]).includes(reason);
}

/** One sentence: what the reason means for Secrets and what to do about it. */
export function explainReason(reason: KeyReason, keyId: string): string {
  return isUnusableReason(reason)
    ? UNUSABLE_WORDING[reason].explanation(keyId)
    : UNKNOWN_WORDING[reason].explanation(keyId);
}

/** /validate's denial of a Secret write while the key is unusable. */
export function denialMessage(reason: UnusableReason, keyId: string, dates: KeyDates): string {
  return `${BLOCKED}: ${UNUSABLE_WORDING[reason].denial(keyId, dates)}`;
}

/** The denial for this snapshot: what /validate answers and what kms-plugin's Status says. */
export function unusableMessage(snapshot: KeySnapshot, reason: UnusableReason): string {
  return denialMessage(reason, displayKeyId(snapshot), snapshot.key ?? {});
}

/** /validate's denial while the key's state is unknown and the guard runs with --on-unknown deny. */
export function unknownDenialMessage(keyId: string, detail: string): string {
  return `${BLOCKED}: the state of KMS key ${keyId} is unknown (${detail}) and the guard runs with --on-unknown deny. Check the guard's KMS endpoint, credentials and network (GET /healthz/kms) and retry.`;
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

/** The one-line warnings (each already fitted under MAX_WARNING_LENGTH). */
export const WARNINGS = {
  /** Warn mode: what enforce mode would have denied, and the remedy. */
  wouldDeny: (keyId: string, reason: UnusableReason): string => {
    const { problem, remedy } = UNUSABLE_WORDING[reason];
    return fitWarning(
      keyId,
      (id) => `[warn mode] would deny: KMS key ${id} ${problem}; ${remedy}.`,
    );
  },
  /** The key's state is unknown: the write was let through (or would be denied in enforce mode). */
  stateUnknown: (keyId: string, detail: string, wouldDeny: boolean): string =>
    fitWarning(keyId, (id) =>
      wouldDeny
        ? `[warn mode] would deny: KMS key ${id} state unknown (${detail}).`
        : `KMS key ${id} state unknown (${detail}); Secret write allowed unchecked.`,
    ),
  deletionScheduled: (keyId: string, deleteDate: Date): string => {
    const when = formatRfc3339(deleteDate);
    return fitWarning(
      keyId,
      (id) => `KMS key ${id} is scheduled for deletion at ${when}: cancel it`,
    );
  },
  materialExpiring: (keyId: string, expireTime: Date): string => {
    const when = formatRfc3339(expireTime);
    return fitWarning(
      keyId,
      (id) => `KMS key ${id}: imported key material expires at ${when}; reimport it`,
    );
  },
  lookupsFailing: (keyId: string, sinceLastSuccessMs: number): string => {
    const age = ago(sinceLastSuccessMs);
    return fitWarning(
      keyId,
      (id) => `KMS key ${id}: state last confirmed ${age} ago; KMS lookups are failing`,
    );
  },
  /** A write changed the stamp annotations while the key is not usable (stamps are advisory). */
  stampsChangedWhileUnusable: (keyId: string): string =>
    fitWarning(
      keyId,
      (id) =>
        `Stamp annotations changed while KMS key ${id} is not usable: stamps are advisory only.`,
    ),
};

/** `check`'s one line when KMS gave no answer about the key. */
export const LOOKUP_FAILURE = {
  unreachable: (endpoint: string, detail: string): string =>
    `cannot reach KMS at ${endpoint} (${detail}): check --kms-endpoint / --kms-region and network access to KMS, then retry.`,
  failed: (keyId: string, endpoint: string, detail: string): string =>
    `KMS lookup of ${keyId} at ${endpoint} failed (${detail}).`,
};
