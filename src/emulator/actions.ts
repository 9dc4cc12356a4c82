import { randomBytes } from 'node:crypto';
import { kmsError } from './errors.js';
import { decryptBlob, encryptBlob, parseBlob } from './crypto.js';
import { primaryVersion, type KeyRecord, type KeyStore, type KeyVersionRecord } from './store.js';

/** The account id the emulator puts into ARNs (Creator, Arn, KeyArn, AliasArn). */
export const EMULATOR_ACCOUNT_ID = '1234567890123456';

export const KMS_ACTIONS = [
  'CreateKey',
  'DescribeKey',
  'ListKeys',
  'EnableKey',
  'DisableKey',
  'ScheduleKeyDeletion',
  'CancelKeyDeletion',
  'CreateKeyVersion',
  'ListKeyVersions',
  'DescribeKeyVersion',
  'UpdateRotationPolicy',
  'CreateAlias',
  'ListAliases',
  'Encrypt',
  'Decrypt',
  'GenerateDataKey',
] as const;
export type KmsAction = (typeof KMS_ACTIONS)[number];

export function isKmsAction(action: string): action is KmsAction {
  return (KMS_ACTIONS as readonly string[]).includes(action);
}

export type Params = Readonly<Record<string, string>>;
export type ResponseBody = Record<string, unknown>;

const MAX_PLAINTEXT_BYTES = 6144;
const DAY_SECONDS = 86_400;

/** The KMS API over a KeyStore: parameter checks, state rules for crypto, response shapes. */
export class EmulatedKms {
  readonly #store: KeyStore;
  readonly #regionId: string;

  constructor(store: KeyStore, regionId: string) {
    this.#store = store;
    this.#regionId = regionId;
  }

  get arnPrefix(): string {
    return `acs:kms:${this.#regionId}:${EMULATOR_ACCOUNT_ID}:`;
  }

  keyArn(keyId: string): string {
    return `${this.arnPrefix}key/${keyId}`;
  }

  handle(action: KmsAction, params: Params): ResponseBody {
    return this.#actions[action](params);
  }

  /** One method per action; a table keeps `handle` flat. */
  readonly #actions: Readonly<Record<KmsAction, (params: Params) => ResponseBody>> = {
    CreateKey: (params) => this.#createKey(params),
    DescribeKey: (params) => ({ KeyMetadata: this.keyMetadata(this.#key(params)) }),
    ListKeys: (params) => this.#listKeys(params),
    EnableKey: (params) => {
      this.#store.enable(this.#key(params));
      return {};
    },
    DisableKey: (params) => {
      this.#store.disable(this.#key(params));
      return {};
    },
    ScheduleKeyDeletion: (params) => {
      const key = this.#key(params);
      this.#store.scheduleDeletion(
        key,
        integer(params, 'PendingWindowInDays', { min: 7, max: 366 }),
      );
      return {};
    },
    CancelKeyDeletion: (params) => {
      this.#store.cancelDeletion(this.#key(params));
      return {};
    },
    CreateKeyVersion: (params) => {
      const key = this.#key(params);
      return { KeyVersion: keyVersion(key, this.#store.rotate(key)) };
    },
    ListKeyVersions: (params) => this.#listKeyVersions(params),
    DescribeKeyVersion: (params) => this.#describeKeyVersion(params),
    UpdateRotationPolicy: (params) => this.#updateRotationPolicy(params),
    CreateAlias: (params) => this.#createAlias(params),
    ListAliases: (params) => this.#listAliases(params),
    Encrypt: (params) => this.#encryptAction(params),
    GenerateDataKey: (params) => this.#generateDataKey(params),
    Decrypt: (params) => this.#decrypt(params),
  };

  #listKeys(params: Params): ResponseBody {
    const page = paginate(params, this.#store.listKeys());
    return {
      ...page.meta,
      Keys: { Key: page.items.map((k) => ({ KeyId: k.keyId, KeyArn: this.keyArn(k.keyId) })) },
    };
  }

  #listKeyVersions(params: Params): ResponseBody {
    const key = this.#key(params);
    const page = paginate(params, key.versions);
    return {
      ...page.meta,
      KeyVersions: { KeyVersion: page.items.map((v) => keyVersion(key, v)) },
    };
  }

  #describeKeyVersion(params: Params): ResponseBody {
    const key = this.#key(params);
    const versionId = required(params, 'KeyVersionId');
    const version = key.versions.find((v) => v.versionId === versionId);
    if (!version) {
      throw kmsError('Forbidden.ResourceNotFound', 'The specified key version is not found.');
    }
    return { KeyVersion: keyVersion(key, version) };
  }

  #updateRotationPolicy(params: Params): ResponseBody {
    const key = this.#key(params);
    const enabled = boolean(params, 'EnableAutomaticRotation');
    const interval = params.RotationInterval;
    if (enabled && interval === undefined && key.rotationIntervalSeconds === null) {
      throw kmsError('MissingParameter', 'RotationInterval is required to enable rotation.');
    }
    this.#store.updateRotationPolicy(
      key,
      enabled,
      interval === undefined ? null : rotationInterval(interval),
    );
    return {};
  }

  #createAlias(params: Params): ResponseBody {
    const aliasName = required(params, 'AliasName');
    if (!/^alias\/[a-zA-Z0-9:/_-]{1,249}$/.test(aliasName) || aliasName.startsWith('alias/acs')) {
      throw kmsError(
        'InvalidParameter',
        'AliasName must look like alias/NAME (letters, digits, _ - / :) and not start with alias/acs.',
      );
    }
    this.#store.createAlias(aliasName, this.#key(params));
    return {};
  }

  #listAliases(params: Params): ResponseBody {
    const page = paginate(params, this.#store.listAliases());
    return {
      ...page.meta,
      Aliases: {
        Alias: page.items.map((a) => ({
          KeyId: a.keyId,
          AliasName: a.aliasName,
          AliasArn: `${this.arnPrefix}${a.aliasName}`,
        })),
      },
    };
  }

  #encryptAction(params: Params): ResponseBody {
    const key = this.#usableKey(params);
    const plaintext = Buffer.from(required(params, 'Plaintext'), 'utf8');
    if (plaintext.length > MAX_PLAINTEXT_BYTES) {
      throw kmsError('InvalidParameter', `Plaintext must be at most ${MAX_PLAINTEXT_BYTES} bytes.`);
    }
    return this.#encrypt(key, plaintext, encryptionContext(params));
  }

  #generateDataKey(params: Params): ResponseBody {
    const key = this.#usableKey(params);
    const spec = params.KeySpec;
    if (spec !== undefined && spec !== 'AES_256' && spec !== 'AES_128') {
      throw kmsError('InvalidParameter', 'KeySpec must be AES_256 or AES_128.');
    }
    const bytes =
      params.NumberOfBytes === undefined
        ? spec === 'AES_128'
          ? 16
          : 32
        : integer(params, 'NumberOfBytes', { min: 1, max: 1024 });
    // Like KMS: the data key travels base64-encoded, and the blob decrypts to that string.
    const dataKey = randomBytes(bytes).toString('base64');
    const result = this.#encrypt(key, Buffer.from(dataKey, 'utf8'), encryptionContext(params));
    return { ...result, Plaintext: dataKey };
  }

  /** DescribeKey's KeyMetadata; like KMS, fields that do not apply are left out. */
  keyMetadata(key: KeyRecord): ResponseBody {
    const next = this.#store.nextRotationDate(key);
    return {
      KeyId: key.keyId,
      Arn: this.keyArn(key.keyId),
      KeyState: key.state,
      KeySpec: key.keySpec,
      KeyUsage: key.keyUsage,
      Origin: key.origin,
      ProtectionLevel: key.protectionLevel,
      Description: key.description,
      Creator: EMULATOR_ACCOUNT_ID,
      CreationDate: isoDate(key.creationDate),
      PrimaryKeyVersion: key.primaryVersionId,
      LastRotationDate: isoDate(this.#store.lastRotationDate(key)),
      AutomaticRotation: key.automaticRotation ? 'Enabled' : 'Disabled',
      DeletionProtection: 'Disabled',
      ...(key.rotationIntervalSeconds === null
        ? {}
        : { RotationInterval: `${key.rotationIntervalSeconds}s` }),
      ...(next === null ? {} : { NextRotationDate: isoDate(next) }),
      ...(key.deleteDate === null ? {} : { DeleteDate: isoDate(key.deleteDate) }),
      ...(key.materialExpireTime === null
        ? {}
        : { MaterialExpireTime: isoDate(key.materialExpireTime) }),
    };
  }

  #createKey(params: Params): ResponseBody {
    oneOf(
      params,
      'KeySpec',
      ['Aliyun_AES_256'],
      'The emulator supports KeySpec Aliyun_AES_256 only.',
    );
    oneOf(
      params,
      'KeyUsage',
      ['ENCRYPT/DECRYPT'],
      'The emulator supports KeyUsage ENCRYPT/DECRYPT only.',
    );
    const origin = oneOf(
      params,
      'Origin',
      ['Aliyun_KMS', 'EXTERNAL'] as const,
      'Origin must be Aliyun_KMS or EXTERNAL.',
    );
    const protectionLevel = oneOf(
      params,
      'ProtectionLevel',
      ['SOFTWARE', 'HSM'],
      'ProtectionLevel must be SOFTWARE or HSM.',
    );
    const automaticRotation =
      params.EnableAutomaticRotation !== undefined && boolean(params, 'EnableAutomaticRotation');
    const interval =
      params.RotationInterval === undefined ? null : rotationInterval(params.RotationInterval);
    if (automaticRotation && interval === null) {
      throw kmsError(
        'MissingParameter',
        'RotationInterval is required with EnableAutomaticRotation.',
      );
    }
    if (automaticRotation && origin === 'EXTERNAL') {
      throw kmsError('InvalidParameter', 'Keys with imported material cannot rotate.');
    }
    const key = this.#store.createKey({
      description: params.Description ?? '',
      origin,
      protectionLevel,
      automaticRotation,
      rotationIntervalSeconds: interval,
    });
    return { KeyMetadata: this.keyMetadata(key) };
  }

  #key(params: Params): KeyRecord {
    return this.#store.resolve(required(params, 'KeyId'), this.arnPrefix);
  }

  #usableKey(params: Params): KeyRecord {
    const key = this.#key(params);
    assertUsable(key);
    return key;
  }

  #encrypt(key: KeyRecord, plaintext: Buffer, aad: Buffer): ResponseBody {
    const version = primaryVersion(key);
    const blob = encryptBlob(
      { keyId: key.keyId, versionId: version.versionId },
      Buffer.from(version.material, 'base64'),
      plaintext,
      aad,
    );
    return { KeyId: key.keyId, KeyVersionId: version.versionId, CiphertextBlob: blob };
  }

  #decrypt(params: Params): ResponseBody {
    const parsed = parseBlob(required(params, 'CiphertextBlob'));
    if (!parsed) throw kmsError('InvalidParameter', 'The CiphertextBlob is not valid.');
    const key = this.#store.get(parsed.keyId);
    if (!key) throw kmsError('Forbidden.KeyNotFound');
    assertUsable(key);
    const version = key.versions.find((v) => v.versionId === parsed.versionId);
    const plaintext =
      version &&
      decryptBlob(parsed, Buffer.from(version.material, 'base64'), encryptionContext(params));
    if (!plaintext) {
      throw kmsError(
        'InvalidParameter',
        'The CiphertextBlob cannot be decrypted: it was altered or the EncryptionContext differs.',
      );
    }
    return {
      KeyId: key.keyId,
      KeyVersionId: parsed.versionId,
      Plaintext: plaintext.toString('utf8'),
    };
  }
}

function assertUsable(key: KeyRecord): void {
  switch (key.state) {
    case 'Enabled':
      return;
    case 'Disabled':
      throw kmsError('Rejected.Disabled', `The key ${key.keyId} is Disabled.`);
    case 'PendingDeletion':
      throw kmsError('Rejected.PendingDeletion', `The key ${key.keyId} is PendingDeletion.`);
    case 'PendingImport':
      throw kmsError('Rejected.PendingImport', `The key ${key.keyId} is PendingImport.`);
  }
}

/** KMS dates: ISO-8601 UTC without milliseconds, e.g. 2026-11-28T09:00:00Z. */
export function isoDate(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function keyVersion(key: KeyRecord, version: KeyVersionRecord): ResponseBody {
  return {
    KeyId: key.keyId,
    KeyVersionId: version.versionId,
    CreationDate: isoDate(version.creationDate),
  };
}

/** An optional parameter limited to a few values; the first is the default. */
function oneOf<const T extends string>(
  params: Params,
  name: string,
  allowed: readonly [T, ...T[]],
  message: string,
): T {
  const value = params[name] ?? allowed[0];
  if (!(allowed as readonly string[]).includes(value)) throw kmsError('InvalidParameter', message);
  return value as T;
}

function required(params: Params, name: string): string {
  const value = params[name];
  if (value === undefined || value === '') {
    throw kmsError(
      'MissingParameter',
      `The input parameter "${name}" that is mandatory for processing this request is not supplied.`,
    );
  }
  return value;
}

function integer(params: Params, name: string, range: { min: number; max: number }): number {
  const raw = required(params, name);
  const value = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(value) || value < range.min || value > range.max) {
    throw kmsError(
      'InvalidParameter',
      `${name} must be an integer from ${range.min} to ${range.max}.`,
    );
  }
  return value;
}

/** Case-insensitive like the gateway: the current Python SDK sends Python's "True"/"False". */
function boolean(params: Params, name: string): boolean {
  const raw = required(params, name).toLowerCase();
  if (raw !== 'true' && raw !== 'false') {
    throw kmsError('InvalidParameter', `${name} must be true or false.`);
  }
  return raw === 'true';
}

/** "2592000s", "30d", "720h": KMS accepts 7 to 365 days. Returns seconds. */
export function rotationInterval(raw: string): number {
  const match = /^(\d+)([smhd])$/.exec(raw);
  const units = { s: 1, m: 60, h: 3600, d: DAY_SECONDS } as const;
  const seconds = match ? Number(match[1]) * units[match[2] as keyof typeof units] : NaN;
  if (!Number.isSafeInteger(seconds) || seconds < 7 * DAY_SECONDS || seconds > 365 * DAY_SECONDS) {
    throw kmsError(
      'InvalidParameter',
      'RotationInterval must be between 7 and 365 days, e.g. 604800s or 30d.',
    );
  }
  return seconds;
}

/**
 * EncryptionContext as JSON (what KMS documents) or flattened `EncryptionContext.k=v` (what
 * the rpc-client SDK sends for a map). Canonical sorted JSON becomes the GCM AAD.
 */
function encryptionContext(params: Params): Buffer {
  const entries: [string, string][] = [];
  const json = params.EncryptionContext;
  if (json !== undefined && json !== '') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(json);
    } catch {
      throw kmsError('InvalidParameter', 'EncryptionContext must be a JSON object of strings.');
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw kmsError('InvalidParameter', 'EncryptionContext must be a JSON object of strings.');
    }
    for (const [k, v] of Object.entries(parsed)) entries.push([k, String(v)]);
  }
  for (const [name, value] of Object.entries(params)) {
    if (name.startsWith('EncryptionContext.')) entries.push([name.slice(18), value]);
  }
  if (entries.length === 0) return Buffer.alloc(0);
  entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return Buffer.from(JSON.stringify(entries), 'utf8');
}

function paginate<T>(params: Params, all: readonly T[]) {
  const pageNumber =
    params.PageNumber === undefined ? 1 : integer(params, 'PageNumber', { min: 1, max: 100_000 });
  const pageSize =
    params.PageSize === undefined ? 10 : integer(params, 'PageSize', { min: 1, max: 100 });
  const start = (pageNumber - 1) * pageSize;
  return {
    meta: { PageNumber: pageNumber, PageSize: pageSize, TotalCount: all.length },
    items: all.slice(start, start + pageSize),
  };
}
