/**
 * The key-state model shared by the monitor (which produces snapshots) and the
 * admission, health and CLI layers (which only read them). Pure types, no I/O.
 */
import type { KeyReason, UnusableReason } from './vocabulary.js';

export type { KeyReason, UnknownReason, UnusableReason } from './vocabulary.js';

export type KeyStatus = 'usable' | 'unusable' | 'unknown';

/** What KMS told us about the key on the last successful DescribeKey. */
export interface KeyFacts {
  /** The resolved KeyId (never an alias or ARN). */
  readonly keyId: string;
  readonly arn: string | undefined;
  /** KMS's KeyState verbatim, e.g. `Enabled`, `Disabled`, `PendingDeletion`, `PendingImport`. */
  readonly keyState: string;
  readonly primaryKeyVersion: string | undefined;
  readonly creationDate: Date | undefined;
  /** LastRotationDate, or CreationDate if the key never rotated: the stamp's rotation time. */
  readonly rotationTime: Date | undefined;
  /** KMS's LastRotationDate verbatim; undefined when KMS did not send one. */
  readonly lastRotationDate: Date | undefined;
  readonly nextRotationDate: Date | undefined;
  readonly automaticRotation: string | undefined;
  readonly rotationInterval: string | undefined;
  readonly deleteDate: Date | undefined;
  readonly deletionProtection: string | undefined;
  readonly materialExpireTime: Date | undefined;
  readonly origin: string | undefined;
}

/** A failed lookup, normalized from the SDK's error shapes. */
export interface LookupFailure {
  readonly code: string;
  readonly message: string;
  readonly httpStatus: number | undefined;
  readonly at: Date;
  /** KMS's RequestId, for support tickets. */
  readonly requestId?: string | undefined;
  /** Throttling, 5xx, network trouble or a timeout: retried with backoff. */
  readonly transient?: boolean;
}

/** A definitive KMS answer that the key cannot be used (as opposed to trouble reaching KMS). */
export type KeyVerdict = Extract<UnusableReason, 'NotFound' | 'NoPermission'>;

/** What one lookup produced; the monitor folds these into KeyObservations. */
export type KeyLookupOutcome =
  | { readonly kind: 'found'; readonly facts: KeyFacts; readonly at: Date }
  | { readonly kind: 'verdict'; readonly verdict: KeyVerdict; readonly failure: LookupFailure }
  | { readonly kind: 'failed'; readonly failure: LookupFailure };

/** Everything the monitor remembers between lookups; classification turns it into a KeySnapshot. */
export interface KeyObservations {
  readonly configuredKeyId: string;
  /** Facts from the last successful DescribeKey (kept after a later verdict, for context). */
  readonly facts: KeyFacts | undefined;
  /** Set when the last authoritative answer was NotFound / NoPermission rather than facts. */
  readonly verdict: KeyVerdict | undefined;
  /** When KMS last answered authoritatively (facts or a verdict). */
  readonly lastSuccessAt: Date | undefined;
  /** The last failure since lastSuccessAt (a verdict counts as one), if any. */
  readonly lastFailure: LookupFailure | undefined;
  readonly firstLookupDone: boolean;
}

/**
 * One read of the guard's knowledge about the key. Producing it never does I/O:
 * the admission hot path reads only this.
 */
export interface KeySnapshot {
  /** The key id, ARN or alias as configured. */
  readonly configuredKeyId: string;
  readonly status: KeyStatus;
  /** Set when status is `unusable` or `unknown`. */
  readonly reason: KeyReason | undefined;
  /** Facts from the last successful lookup, if any. */
  readonly key: KeyFacts | undefined;
  /** When KMS last answered authoritatively (success or a definitive error such as NotFound). */
  readonly lastSuccessAt: Date | undefined;
  readonly lastFailure: LookupFailure | undefined;
  /** When this snapshot was taken. */
  readonly checkedAt: Date;
  /** Seconds since lastSuccessAt, or undefined when never fetched. */
  readonly ageSeconds: number | undefined;
  /** True once the first lookup has finished, successfully or not. */
  readonly firstLookupDone: boolean;
  /**
   * Short (< 120 characters) warnings about a usable key: deletion scheduled, imported
   * material expiring, lookups failing. Computed once by classification; empty otherwise.
   */
  readonly warnings: readonly string[];
}

/** What the admission and health layers need from the monitor. */
export interface KeySnapshotSource {
  snapshot(): KeySnapshot;
}
