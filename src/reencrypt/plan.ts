/**
 * Pure planning for `reencrypt`: which Secrets a key rotation left behind, what to stamp on
 * them, and how the sweep tallies what it saw. No I/O.
 */

import {
  KEY_ID_ANNOTATION,
  KEY_VERSION_ANNOTATION,
  ROTATION_TIME_ANNOTATION,
  formatRotationTime,
} from '../admission/annotations.js';

// One definition of the stamp, shared with the mutating webhook.
export { KEY_ID_ANNOTATION, KEY_VERSION_ANNOTATION, ROTATION_TIME_ANNOTATION, formatRotationTime };

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

/** What the sweep decided about one Secret. */
export type SecretState =
  | { readonly kind: 'current' }
  | { readonly kind: 'unstamped' }
  /** Stamped with another version (or by another key): rewrite it. */
  | { readonly kind: 'older'; readonly version: string };

export function stampFor(target: TargetKey): Record<string, string> {
  return {
    [KEY_ID_ANNOTATION]: target.keyId,
    [KEY_VERSION_ANNOTATION]: target.primaryKeyVersion,
    [ROTATION_TIME_ANNOTATION]: formatRotationTime(target.rotationTime),
  };
}

export function classifySecret(
  annotations: Readonly<Record<string, string>>,
  target: TargetKey,
): SecretState {
  const version = annotations[KEY_VERSION_ANNOTATION];
  if (version === undefined || version === '') return { kind: 'unstamped' };
  const keyId = annotations[KEY_ID_ANNOTATION];
  // A stamp from another key (e.g. the cluster moved to a new CMK) is as stale as an old version.
  const otherKey = keyId !== undefined && keyId !== '' && keyId !== target.keyId;
  if (version === target.primaryKeyVersion && !otherKey) return { kind: 'current' };
  return { kind: 'older', version: otherKey ? `${keyId}/${version}` : version };
}

export function isStale(state: SecretState): boolean {
  return state.kind !== 'current';
}

/** Counts Secrets by the key version they are stamped with. */
export interface VersionCounts {
  readonly current: number;
  readonly unstamped: number;
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
  readonly #older = new Map<string, number>();

  add(state: SecretState): void {
    if (state.kind === 'current') this.#current += 1;
    else if (state.kind === 'unstamped') this.#unstamped += 1;
    else this.#older.set(state.version, (this.#older.get(state.version) ?? 0) + 1);
  }

  get stale(): number {
    let older = 0;
    for (const count of this.#older.values()) older += count;
    return this.#unstamped + older;
  }

  counts(): VersionCounts {
    const older: Record<string, number> = {};
    for (const [version, count] of [...this.#older.entries()].sort(([a], [b]) =>
      a.localeCompare(b),
    )) {
      older[version] = count;
    }
    return { current: this.#current, unstamped: this.#unstamped, older };
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
