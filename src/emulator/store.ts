import { randomUUID } from 'node:crypto';
import { kmsError } from './errors.js';
import { newKeyMaterial } from './crypto.js';

export type KeyState = 'Enabled' | 'Disabled' | 'PendingDeletion' | 'PendingImport';
export type KeyOrigin = 'Aliyun_KMS' | 'EXTERNAL';

export interface KeyVersionRecord {
  versionId: string;
  creationDate: number;
  /** AES-256 material, base64; empty while an EXTERNAL key waits for its import. */
  material: string;
}

export interface KeyRecord {
  keyId: string;
  description: string;
  keySpec: string;
  keyUsage: string;
  origin: KeyOrigin;
  protectionLevel: string;
  state: KeyState;
  creationDate: number;
  deleteDate: number | null;
  automaticRotation: boolean;
  rotationIntervalSeconds: number | null;
  materialExpireTime: number | null;
  versions: KeyVersionRecord[];
  primaryVersionId: string;
}

export interface AliasRecord {
  aliasName: string;
  keyId: string;
}

export interface StoreSnapshot {
  format: 1;
  keys: KeyRecord[];
  aliases: AliasRecord[];
}

export interface NewKeyOptions {
  keyId?: string;
  description?: string;
  origin?: KeyOrigin;
  protectionLevel?: string;
  automaticRotation?: boolean;
  rotationIntervalSeconds?: number | null;
}

/**
 * Keys, versions and aliases in memory, with KMS's state rules. Time-driven transitions
 * (deletion at DeleteDate, automatic rotation, expiry of imported material) happen lazily
 * whenever a key is looked at, using the injected clock.
 */
export class KeyStore {
  readonly #keys = new Map<string, KeyRecord>();
  readonly #aliases = new Map<string, AliasRecord>();
  readonly #now: () => number;
  #changed = false;

  constructor(now: () => number, snapshot?: StoreSnapshot) {
    this.#now = now;
    for (const key of snapshot?.keys ?? []) this.#keys.set(key.keyId, key);
    for (const alias of snapshot?.aliases ?? []) this.#aliases.set(alias.aliasName, alias);
  }

  snapshot(): StoreSnapshot {
    return {
      format: 1,
      keys: [...this.#keys.values()].map((key) => structuredClone(key)),
      aliases: [...this.#aliases.values()].map((alias) => ({ ...alias })),
    };
  }

  /**
   * True once since the last call if anything changed, including lazy transitions (a due
   * automatic rotation creates new material that must be saved before it encrypts data).
   */
  takeChanges(): boolean {
    const changed = this.#changed;
    this.#changed = false;
    return changed;
  }

  has(keyId: string): boolean {
    return this.#keys.has(keyId);
  }

  createKey(options: NewKeyOptions = {}): KeyRecord {
    const now = this.#now();
    const external = options.origin === 'EXTERNAL';
    const version: KeyVersionRecord = {
      versionId: randomUUID(),
      creationDate: now,
      material: external ? '' : newKeyMaterial().toString('base64'),
    };
    const key: KeyRecord = {
      keyId: options.keyId ?? randomUUID(),
      description: options.description ?? '',
      keySpec: 'Aliyun_AES_256',
      keyUsage: 'ENCRYPT/DECRYPT',
      origin: options.origin ?? 'Aliyun_KMS',
      protectionLevel: options.protectionLevel ?? 'SOFTWARE',
      state: external ? 'PendingImport' : 'Enabled',
      creationDate: now,
      deleteDate: null,
      automaticRotation: options.automaticRotation ?? false,
      rotationIntervalSeconds: options.rotationIntervalSeconds ?? null,
      materialExpireTime: null,
      versions: [version],
      primaryVersionId: version.versionId,
    };
    if (this.#keys.has(key.keyId))
      throw kmsError('Rejected.AlreadyExists', 'The key already exists.');
    this.#keys.set(key.keyId, key);
    this.#changed = true;
    return key;
  }

  /** Every key (after applying due transitions), in creation order. */
  listKeys(): KeyRecord[] {
    return [...this.#keys.keys()]
      .map((keyId) => this.#fresh(keyId))
      .filter((key): key is KeyRecord => key !== undefined);
  }

  listAliases(): AliasRecord[] {
    this.listKeys(); // drops aliases of keys deleted meanwhile
    return [...this.#aliases.values()];
  }

  /** Resolves a key id, alias/NAME, key ARN or alias ARN. */
  resolve(reference: string, arnPrefix: string): KeyRecord {
    let ref = reference;
    if (ref.startsWith('acs:kms:')) {
      if (!ref.startsWith(arnPrefix)) throw kmsError('Forbidden.KeyNotFound');
      ref = ref.slice(arnPrefix.length);
      if (ref.startsWith('key/')) ref = ref.slice('key/'.length);
      else if (!ref.startsWith('alias/')) throw kmsError('Forbidden.KeyNotFound');
    }
    if (ref.startsWith('alias/')) {
      const alias = this.#aliases.get(ref);
      const key = alias && this.#fresh(alias.keyId);
      if (!key) throw kmsError('Forbidden.AliasNotFound');
      return key;
    }
    const key = this.#fresh(ref);
    if (!key) throw kmsError('Forbidden.KeyNotFound');
    return key;
  }

  /** Looks up by id only (Decrypt finds the key through the ciphertext header). */
  get(keyId: string): KeyRecord | undefined {
    return this.#fresh(keyId);
  }

  enable(key: KeyRecord): void {
    if (key.state === 'PendingDeletion' || key.state === 'PendingImport') {
      throw kmsError('Rejected.UnexpectedState', `The key is ${key.state} and cannot be enabled.`);
    }
    key.state = 'Enabled';
    this.#changed = true;
  }

  disable(key: KeyRecord): void {
    if (key.state === 'PendingDeletion' || key.state === 'PendingImport') {
      throw kmsError('Rejected.UnexpectedState', `The key is ${key.state} and cannot be disabled.`);
    }
    key.state = 'Disabled';
    this.#changed = true;
  }

  scheduleDeletion(key: KeyRecord, pendingWindowInDays: number): void {
    if (key.state === 'PendingDeletion') {
      throw kmsError('Rejected.UnexpectedState', 'The key is already PendingDeletion.');
    }
    key.state = 'PendingDeletion';
    key.deleteDate = this.#now() + pendingWindowInDays * 86_400_000;
    this.#changed = true;
  }

  /** Alibaba Cloud KMS returns a key to Enabled (AWS KMS would leave it Disabled). */
  cancelDeletion(key: KeyRecord): void {
    if (key.state !== 'PendingDeletion') {
      throw kmsError('Rejected.UnexpectedState', `The key is ${key.state}, not PendingDeletion.`);
    }
    key.state = this.#awaitsMaterial(key) ? 'PendingImport' : 'Enabled';
    key.deleteDate = null;
    this.#changed = true;
  }

  rotate(key: KeyRecord): KeyVersionRecord {
    if (key.origin === 'EXTERNAL') {
      throw kmsError('Rejected.UnexpectedState', 'Keys with imported material cannot rotate.');
    }
    if (key.state !== 'Enabled') {
      throw kmsError('Rejected.UnexpectedState', `The key is ${key.state} and cannot rotate.`);
    }
    return this.#addVersion(key, this.#now());
  }

  updateRotationPolicy(key: KeyRecord, enabled: boolean, intervalSeconds: number | null): void {
    if (key.origin === 'EXTERNAL' && enabled) {
      throw kmsError('Rejected.UnexpectedState', 'Keys with imported material cannot rotate.');
    }
    key.automaticRotation = enabled;
    if (intervalSeconds !== null) key.rotationIntervalSeconds = intervalSeconds;
    this.#changed = true;
  }

  createAlias(aliasName: string, key: KeyRecord): AliasRecord {
    if (this.#aliases.has(aliasName)) {
      throw kmsError('Rejected.AlreadyExists', `The alias ${aliasName} already exists.`);
    }
    const alias = { aliasName, keyId: key.keyId };
    this.#aliases.set(aliasName, alias);
    this.#changed = true;
    return alias;
  }

  /**
   * Stands in for GetParametersForImport + ImportKeyMaterial (admin route, not the API).
   * Like KMS, a re-import after expiry brings back the same material, so old ciphertext
   * decrypts again.
   */
  importMaterial(key: KeyRecord, expireTime: number | null): void {
    if (key.origin !== 'EXTERNAL') {
      throw kmsError('Rejected.UnexpectedState', 'Only EXTERNAL keys take imported material.');
    }
    for (const version of key.versions) {
      if (version.material === '') version.material = newKeyMaterial().toString('base64');
    }
    key.materialExpireTime = expireTime;
    if (key.state === 'PendingImport') key.state = 'Enabled';
    this.#changed = true;
    this.#fresh(key.keyId);
  }

  lastRotationDate(key: KeyRecord): number {
    return primaryVersion(key).creationDate;
  }

  nextRotationDate(key: KeyRecord): number | null {
    if (!key.automaticRotation || key.rotationIntervalSeconds === null) return null;
    return this.lastRotationDate(key) + key.rotationIntervalSeconds * 1000;
  }

  #addVersion(key: KeyRecord, creationDate: number): KeyVersionRecord {
    const version = {
      versionId: randomUUID(),
      creationDate,
      material: newKeyMaterial().toString('base64'),
    };
    key.versions.push(version);
    key.primaryVersionId = version.versionId;
    this.#changed = true;
    return version;
  }

  #awaitsMaterial(key: KeyRecord): boolean {
    const expired = key.materialExpireTime !== null && key.materialExpireTime <= this.#now();
    return key.origin === 'EXTERNAL' && (expired || !hasMaterial(key));
  }

  /** The key after its due time-driven transitions; undefined once deleted. */
  #fresh(keyId: string): KeyRecord | undefined {
    const key = this.#keys.get(keyId);
    if (!key) return undefined;
    const now = this.#now();
    if (key.state === 'PendingDeletion' && key.deleteDate !== null && key.deleteDate <= now) {
      this.#delete(keyId);
      return undefined;
    }
    if (this.#awaitsMaterial(key) && (key.state === 'Enabled' || key.state === 'Disabled')) {
      // Expired imported material is unusable; the key waits for the material again.
      key.state = 'PendingImport';
      this.#changed = true;
    }
    this.#rotateIfDue(key, now);
    return key;
  }

  #delete(keyId: string): void {
    this.#keys.delete(keyId);
    this.#changed = true;
    for (const [name, alias] of this.#aliases) {
      if (alias.keyId === keyId) this.#aliases.delete(name);
    }
  }

  #rotateIfDue(key: KeyRecord, now: number): void {
    const next = this.nextRotationDate(key);
    if (next === null || next > now || key.state !== 'Enabled' || key.origin === 'EXTERNAL') return;
    // One new version, dated at the latest rotation that fell due (not one per missed interval).
    const intervalMs = (key.rotationIntervalSeconds ?? 1) * 1000;
    this.#addVersion(key, next + Math.floor((now - next) / intervalMs) * intervalMs);
  }
}

export function primaryVersion(key: KeyRecord): KeyVersionRecord {
  const version = key.versions.find((v) => v.versionId === key.primaryVersionId);
  if (!version) throw new Error(`key ${key.keyId} has no primary version record`);
  return version;
}

function hasMaterial(key: KeyRecord): boolean {
  return key.versions.every((version) => version.material !== '');
}
