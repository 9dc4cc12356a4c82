/**
 * KMS test helpers: the demo key id, a scriptable fake KmsClient for unit tests (the real
 * SDK against the emulator is in the integration tests) and key metadata builders.
 */
import type { KmsClient, KmsKeyMetadata } from '../../src/kms/client.js';
import { KmsError } from '../../src/kms/errors.js';
import type { KmsSettings, MonitorSettings } from '../../src/config/settings.js';

/** The one demo key id of the tests (an id as KMS writes them). */
export const KEY_ID = 'key-hzz6f3a1b2c3d4e5f6a7b8c9';

export function metadata(overrides: Partial<KmsKeyMetadata> = {}): KmsKeyMetadata {
  return {
    requestId: 'req-1',
    keyId: KEY_ID,
    arn: `acs:kms:cn-hangzhou:123456789:key/${KEY_ID}`,
    keyState: 'Enabled',
    keySpec: 'Aliyun_AES_256',
    keyUsage: 'ENCRYPT/DECRYPT',
    origin: 'Aliyun_KMS',
    protectionLevel: 'SOFTWARE',
    creationDate: '2026-01-01T00:00:00Z',
    primaryKeyVersion: 'v-1',
    lastRotationDate: undefined,
    nextRotationDate: undefined,
    automaticRotation: 'Disabled',
    rotationInterval: undefined,
    deleteDate: undefined,
    deletionProtection: 'Disabled',
    materialExpireTime: undefined,
    ...overrides,
  };
}

export function apiError(code: string, httpStatus?: number): KmsError {
  return new KmsError({ code, message: `fake ${code}`, httpStatus, requestId: 'req-fake' });
}

interface PendingCall {
  readonly resolve: (value: KmsKeyMetadata) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * DescribeKey answers come from `answer` (metadata or a thrown error), or, in held mode,
 * wait until the test releases them — to model slow calls and concurrency.
 */
export class FakeKmsClient implements KmsClient {
  answer: KmsKeyMetadata | Error = metadata();
  /** Errors to throw before falling back to `answer`, one per call. */
  readonly queuedErrors: Error[] = [];
  hold = false;
  describeCalls = 0;
  readonly requestedKeyIds: string[] = [];
  readonly #pending: PendingCall[] = [];

  describeKey(keyId: string): Promise<KmsKeyMetadata> {
    this.describeCalls += 1;
    this.requestedKeyIds.push(keyId);
    if (this.hold) {
      return new Promise((resolve, reject) => this.#pending.push({ resolve, reject }));
    }
    const queued = this.queuedErrors.shift();
    if (queued) return Promise.reject(queued);
    const answer = this.answer;
    return answer instanceof Error ? Promise.reject(answer) : Promise.resolve(answer);
  }

  get heldCalls(): number {
    return this.#pending.length;
  }

  /** Answers every held call with the current `answer`. */
  release(): void {
    for (const call of this.#pending.splice(0)) {
      const answer = this.answer;
      if (answer instanceof Error) call.reject(answer);
      else call.resolve(answer);
    }
  }
}

export function kmsSettings(overrides: Partial<KmsSettings> = {}): KmsSettings {
  return {
    keyId: KEY_ID,
    regionId: 'cn-hangzhou',
    endpoint: '127.0.0.1:1',
    protocol: 'http',
    ...overrides,
  };
}

export function monitorSettings(overrides: Partial<MonitorSettings> = {}): MonitorSettings {
  return { refreshIntervalMs: 30_000, maxStalenessMs: 300_000, ...overrides };
}

/** KmsSettings pointing at a running emulator. */
export function emulatorKmsSettings(
  emulator: { endpoint: string; protocol: 'http' | 'https'; regionId: string },
  keyId: string,
): KmsSettings {
  return {
    keyId,
    regionId: emulator.regionId,
    endpoint: emulator.endpoint,
    protocol: emulator.protocol,
  };
}

/** Wraps a KmsClient so a test can wait until every call started so far has settled. */
export function trackCalls(api: KmsClient): KmsClient & { idle(): Promise<void>; started: number } {
  const inFlight = new Set<Promise<unknown>>();
  let started = 0;
  function track<T>(call: Promise<T>): Promise<T> {
    started += 1;
    const settled = call.then(
      () => undefined,
      () => undefined,
    );
    inFlight.add(settled);
    void settled.then(() => inFlight.delete(settled));
    return call;
  }
  return {
    describeKey: (keyId) => track(api.describeKey(keyId)),
    async idle() {
      while (inFlight.size > 0) await Promise.all([...inFlight]);
      // Let the monitor apply the outcome.
      for (let round = 0; round < 5; round += 1) await new Promise((r) => setImmediate(r));
    },
    get started() {
      return started;
    },
  };
}
