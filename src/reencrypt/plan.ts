/**
 * Pure planning for `reencrypt`: which Secrets a key rotation left behind, what to stamp on
 * them, and how the sweep tallies what it saw. No I/O.
 */

import {
  KEY_ID_ANNOTATION,
  KEY_VERSION_ANNOTATION,
  REENCRYPTED_AT_ANNOTATION,
  ROTATION_TIME_ANNOTATION,
  formatRotationTime,
} from '../admission/annotations.js';

// One definition of the stamp, shared with the mutating webhook.
export {
  KEY_ID_ANNOTATION,
  KEY_VERSION_ANNOTATION,
  REENCRYPTED_AT_ANNOTATION,
  ROTATION_TIME_ANNOTATION,
  formatRotationTime,
};

/**
 * How long after a rotation kube-apiserver may still encrypt new writes under the previous
 * key version: the plugin's refresh interval (30 s) + the API server's Status poll (about
 * 60 s) + its fallback to the previous seed for 3 minutes when a re-seed fails = 4.5 min,
 * rounded up.
 */
export const DEFAULT_ROTATION_SETTLE_MS = 5 * 60_000;

/** The only annotations the sweep keeps from a Secret's metadata (others may be large or sensitive). */
export const STAMP_ANNOTATIONS = [
  KEY_ID_ANNOTATION,
  KEY_VERSION_ANNOTATION,
  ROTATION_TIME_ANNOTATION,
] as const;

/** The key every Secret should end up encrypted under: KMS's answer at the start of the run. */
export interface TargetKey {
  /** The resolved KeyId (never an alias). */
  readonly keyId: string;
  readonly primaryKeyVersion: string;
  /** LastRotationDate, or CreationDate if the key never rotated. */
  readonly rotationTime: Date;
}

/** The key to end up under, and how long after its rotation old-version writes may happen. */
export interface StalenessRule {
  readonly target: TargetKey;
  readonly settleMs: number;
}

/** What the sweep decided about one Secret. */
export type SecretState =
  | { readonly kind: 'current' }
  | { readonly kind: 'unstamped' }
  /** Stamped with another version (or by another key): rewrite it. */
  | { readonly kind: 'older'; readonly version: string }
  /**
   * Stamped with the target version, but last written before the rotation settled (or at an
   * unknown time): its envelope may still be under the previous version. Rewrite it.
   */
  | { readonly kind: 'beforeSettle' };

/** What the sweep knows of one Secret: its stamp and when it was last written. */
export interface WrittenSecret {
  readonly annotations: Readonly<Record<string, string>>;
  /** Latest managedFields time, else creationTimestamp (ms, whole seconds); undefined: unknown. */
  readonly lastWrittenAt?: number | undefined;
}

export function stampFor(target: TargetKey): Record<string, string> {
  return {
    [KEY_ID_ANNOTATION]: target.keyId,
    [KEY_VERSION_ANNOTATION]: target.primaryKeyVersion,
    [ROTATION_TIME_ANNOTATION]: formatRotationTime(target.rotationTime),
  };
}

/** The stamp plus the time of this rewrite: the patch always changes the stored object. */
export function rewritePatchFor(
  stamp: Readonly<Record<string, string>>,
  now: number,
): Record<string, string> {
  return { ...stamp, [REENCRYPTED_AT_ANNOTATION]: new Date(now).toISOString() };
}

/**
 * From this instant (ms) every write is under the target version: the rotation time (whole
 * seconds, as KMS and managedFields report times) plus the settle time.
 */
export function settledAt(rule: StalenessRule): number {
  return Math.floor(rule.target.rotationTime.getTime() / 1000) * 1000 + rule.settleMs;
}

/**
 * Stale: no stamp, another version or key, or written at or before `settledAt` (times are
 * whole seconds, so a write in the boundary second counts as before it). Over-rewriting is
 * harmless; under-rewriting would leave a Secret under a version about to be retired.
 */
export function classifySecret(secret: WrittenSecret, rule: StalenessRule): SecretState {
  const { annotations, lastWrittenAt } = secret;
  const version = annotations[KEY_VERSION_ANNOTATION];
  if (version === undefined || version === '') return { kind: 'unstamped' };
  const keyId = annotations[KEY_ID_ANNOTATION];
  // A stamp from another key (e.g. the cluster moved to a new CMK) is as stale as an old version.
  const otherKey = keyId !== undefined && keyId !== '' && keyId !== rule.target.keyId;
  if (version !== rule.target.primaryKeyVersion || otherKey) {
    return { kind: 'older', version: otherKey ? `${keyId}/${version}` : version };
  }
  if (lastWrittenAt === undefined || lastWrittenAt <= settledAt(rule)) {
    return { kind: 'beforeSettle' };
  }
  return { kind: 'current' };
}

/**
 * How long a run that rewrites must wait before its first patch (0: not at all): until the
 * first whole second after `settledAt`, so its own writes count as settled. Never longer than
 * the settle time, whatever the clocks say.
 */
export function settleWaitMs(rule: StalenessRule, now: number): number {
  // The second after the boundary: managedFields times are whole seconds, and a rewrite
  // recorded in the boundary second itself counts as before it.
  const wait = settledAt(rule) + 1000 - now;
  return Math.max(0, Math.min(wait, rule.settleMs + 1000));
}

export function isStale(state: SecretState): boolean {
  return state.kind !== 'current';
}

/** Counts Secrets by the key version they are stamped with. */
export interface VersionCounts {
  readonly current: number;
  readonly unstamped: number;
  /** Stamped current but last written before the rotation settled. */
  readonly beforeSettle: number;
  /** Older version → number of Secrets stamped with it. */
  readonly older: Readonly<Record<string, number>>;
}

/**
 * Tallies states without keeping Secrets: memory grows with the number of distinct versions
 * (a handful), not with the number of Secrets.
 */
export class VersionTally {
  #current = 0;
  #unstamped = 0;
  #beforeSettle = 0;
  readonly #older = new Map<string, number>();

  add(state: SecretState): void {
    if (state.kind === 'current') this.#current += 1;
    else if (state.kind === 'unstamped') this.#unstamped += 1;
    else if (state.kind === 'beforeSettle') this.#beforeSettle += 1;
    else this.#older.set(state.version, (this.#older.get(state.version) ?? 0) + 1);
  }

  get stale(): number {
    let older = 0;
    for (const count of this.#older.values()) older += count;
    return this.#unstamped + this.#beforeSettle + older;
  }

  counts(): VersionCounts {
    const older: Record<string, number> = {};
    for (const [version, count] of [...this.#older.entries()].sort(([a], [b]) =>
      a.localeCompare(b),
    )) {
      older[version] = count;
    }
    return {
      current: this.#current,
      unstamped: this.#unstamped,
      beforeSettle: this.#beforeSettle,
      older,
    };
  }
}

/**
 * The API server lists objects in etcd key order (`<namespace>/<name>`). After a restarted
 * list (expired continue token) the sweep skips what it already handled, so nothing is
 * counted twice.
 */
export function listKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

export function isAfter(key: string, lastHandled: string | undefined): boolean {
  return lastHandled === undefined || key > lastHandled;
}
