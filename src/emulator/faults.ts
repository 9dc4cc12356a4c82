/** Injected misbehaviour, kept apart from the KMS API so the API code stays honest. */
export interface EmulatorFaults {
  /** Added delay before every KMS API answer. */
  setLatency(ms: number): void;
  /** A share (0–1) of calls fails with this KMS error code, optionally only these actions. */
  failShare(share: number, code: string, actions?: string[]): void;
  /** A share (0–1) of calls gets its socket destroyed without any answer. */
  dropConnections(share: number): void;
  /** Calls signed with this access key get Forbidden.NoPermission (a lost RAM permission). */
  denyAccessKey(accessKeyId: string, denied?: boolean): void;
  reset(): void;
}

/** The JSON of POST /_emulator/faults (every field optional; given fields replace). */
export interface FaultSettings {
  latencyMs?: number;
  failShare?: number;
  failCode?: string;
  failActions?: string[];
  dropShare?: number;
  deniedAccessKeys?: string[];
}

export class FaultState implements EmulatorFaults {
  latencyMs = 0;
  #failShare = 0;
  #failCode = 'InternalFailure';
  #failActions: ReadonlySet<string> | undefined;
  #dropShare = 0;
  readonly #denied = new Set<string>();
  readonly #random: () => number;

  constructor(random: () => number = Math.random) {
    this.#random = random;
  }

  setLatency(ms: number): void {
    this.latencyMs = nonNegative(ms, 'latency');
  }

  failShare(share: number, code: string, actions?: string[]): void {
    if (code === '') throw new TypeError('failShare needs an error code, e.g. Rejected.Throttling');
    this.#failShare = shareOf(share);
    this.#failCode = code;
    this.#failActions = actions && actions.length > 0 ? new Set(actions) : undefined;
  }

  dropConnections(share: number): void {
    this.#dropShare = shareOf(share);
  }

  denyAccessKey(accessKeyId: string, denied = true): void {
    if (denied) this.#denied.add(accessKeyId);
    else this.#denied.delete(accessKeyId);
  }

  reset(): void {
    this.latencyMs = 0;
    this.#failShare = 0;
    this.#failCode = 'InternalFailure';
    this.#failActions = undefined;
    this.#dropShare = 0;
    this.#denied.clear();
  }

  apply(settings: FaultSettings): void {
    if (settings.latencyMs !== undefined) this.setLatency(settings.latencyMs);
    if (settings.failShare !== undefined || settings.failCode !== undefined) {
      this.failShare(
        settings.failShare ?? this.#failShare,
        settings.failCode ?? this.#failCode,
        settings.failActions,
      );
    }
    if (settings.dropShare !== undefined) this.dropConnections(settings.dropShare);
    if (settings.deniedAccessKeys !== undefined) {
      this.#denied.clear();
      for (const id of settings.deniedAccessKeys) this.#denied.add(id);
    }
  }

  describe(): Required<FaultSettings> {
    return {
      latencyMs: this.latencyMs,
      failShare: this.#failShare,
      failCode: this.#failCode,
      failActions: this.#failActions ? [...this.#failActions] : [],
      dropShare: this.#dropShare,
      deniedAccessKeys: [...this.#denied],
    };
  }

  shouldDrop(): boolean {
    return this.#dropShare > 0 && this.#random() < this.#dropShare;
  }

  isDenied(accessKeyId: string): boolean {
    return this.#denied.has(accessKeyId);
  }

  /** The error code this call fails with, if it is picked. */
  failureFor(action: string): string | undefined {
    if (this.#failShare <= 0) return undefined;
    if (this.#failActions && !this.#failActions.has(action)) return undefined;
    return this.#random() < this.#failShare ? this.#failCode : undefined;
  }
}

/** Parses untrusted admin JSON into FaultSettings; throws TypeError naming the bad field. */
export function parseFaultSettings(body: unknown): FaultSettings {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new TypeError('expected a JSON object');
  }
  const input = body as Record<string, unknown>;
  const settings: FaultSettings = {};
  const num = (name: string): number | undefined => {
    const value = input[name];
    if (value === undefined) return undefined;
    if (typeof value !== 'number') throw new TypeError(`${name} must be a number`);
    return value;
  };
  const strings = (name: string): string[] | undefined => {
    const value = input[name];
    if (value === undefined) return undefined;
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
      throw new TypeError(`${name} must be an array of strings`);
    }
    return value;
  };
  const latencyMs = num('latencyMs');
  const failShare = num('failShare');
  const dropShare = num('dropShare');
  const failActions = strings('failActions');
  const deniedAccessKeys = strings('deniedAccessKeys');
  if (input.failCode !== undefined && typeof input.failCode !== 'string') {
    throw new TypeError('failCode must be a string');
  }
  if (latencyMs !== undefined) settings.latencyMs = latencyMs;
  if (failShare !== undefined) settings.failShare = failShare;
  if (typeof input.failCode === 'string') settings.failCode = input.failCode;
  if (failActions !== undefined) settings.failActions = failActions;
  if (dropShare !== undefined) settings.dropShare = dropShare;
  if (deniedAccessKeys !== undefined) settings.deniedAccessKeys = deniedAccessKeys;
  return settings;
}

function shareOf(share: number): number {
  if (!Number.isFinite(share) || share < 0 || share > 1) {
    throw new RangeError(`share must be between 0 and 1, got ${share}`);
  }
  return share;
}

function nonNegative(ms: number, what: string): number {
  if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`${what} must be >= 0 ms, got ${ms}`);
  return ms;
}
