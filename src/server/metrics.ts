import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { keyStateName } from '../kms/key-state.js';
import type { KeySnapshot, KeySnapshotSource } from '../kms/types.js';
import { KEY_STATE_REASONS } from '../kms/vocabulary.js';

/** What the monitor reports per KMS call (matches the monitor's KmsCallObserver). */
export interface KmsCall {
  readonly action: string;
  /** 'ok' or the KMS error code. */
  readonly result: string;
  readonly durationSeconds: number;
}

/** The route that answered: `admit` is the one-call shape (validate + mutate in one webhook). */
export type Webhook = 'validate' | 'mutate' | 'admit';

/** Why a connection was refused: its source's cap, or the listener's (maxConnections). */
export type ConnectionRefusal = 'per_source' | 'listener_full';

export interface ServerMetrics {
  /** Its own registry: several servers (tests) in one process never share metrics. */
  readonly registry: Registry;
  /** Pass to createKeyMonitor({ onKmsCall }). */
  readonly onKmsCall: (call: KmsCall) => void;
  observeAdmission(webhook: Webhook, operation: string, decision: string, seconds: number): void;
  /** A connection the admission listener closed as it arrived. */
  observeRefusedConnection(reason: ConnectionRefusal): void;
  /** Key gauges read this source on every scrape (no state is copied). */
  watchKey(source: KeySnapshotSource): void;
}

const PREFIX = 'kms_secret_guard_';
/** Admissions are in-memory decisions: most take well under a millisecond. */
const ADMISSION_BUCKETS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
];
const KMS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** States always exported (0 or 1); any other state is exported while it is the current one. */
const KNOWN_STATES: readonly string[] = ['Enabled', ...KEY_STATE_REASONS];
const STATUSES = ['usable', 'unusable', 'unknown'] as const;

function seconds(date: Date | undefined): number | undefined {
  return date === undefined ? undefined : date.getTime() / 1000;
}

/** Key gauges: each reads the current snapshot on scrape (no state is copied). */
function registerKeyGauges(registry: Registry, current: () => KeySnapshot | undefined): void {
  new Gauge({
    name: `${PREFIX}key_state`,
    help: 'The KMS key state: 1 for the current state (Enabled, Disabled, PendingDeletion, PendingImport, NotFound, NoPermission, MaterialExpired, Unknown).',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      this.reset();
      const snapshot = current();
      if (snapshot === undefined) return;
      const state = keyStateName(snapshot);
      for (const known of new Set([...KNOWN_STATES, state])) {
        this.set({ state: known }, known === state ? 1 : 0);
      }
    },
  });
  new Gauge({
    name: `${PREFIX}key_status`,
    help: 'What the guard concludes: 1 for the current status (usable, unusable, unknown).',
    labelNames: ['status'] as const,
    registers: [registry],
    collect() {
      this.reset();
      const snapshot = current();
      if (snapshot === undefined) return;
      for (const status of STATUSES) this.set({ status }, snapshot.status === status ? 1 : 0);
    },
  });
  new Gauge({
    name: `${PREFIX}key_usable`,
    help: '1 when the KMS key can encrypt Secrets, 0 when it is unusable or its state is unknown.',
    registers: [registry],
    collect() {
      const snapshot = current();
      this.set(snapshot?.status === 'usable' ? 1 : 0);
    },
  });
  const timestampGauge = (
    name: string,
    help: string,
    read: (snapshot: KeySnapshot) => number | undefined,
  ): void => {
    new Gauge({
      name: `${PREFIX}${name}`,
      help,
      registers: [registry],
      collect() {
        this.reset();
        const snapshot = current();
        const value = snapshot === undefined ? undefined : read(snapshot);
        if (value !== undefined) this.set(value);
      },
    });
  };
  timestampGauge(
    'key_state_age_seconds',
    'Seconds since KMS last answered about the key (absent until it has).',
    (snapshot) => snapshot.ageSeconds,
  );
  timestampGauge(
    'key_last_rotation_timestamp_seconds',
    'When the current primary key version was made (LastRotationDate or CreationDate).',
    (snapshot) => seconds(snapshot.key?.rotationTime),
  );
  timestampGauge(
    'key_next_rotation_timestamp_seconds',
    'When KMS will next rotate the key automatically.',
    (snapshot) => seconds(snapshot.key?.nextRotationDate),
  );
  timestampGauge(
    'key_deletion_timestamp_seconds',
    'When the key will be deleted (only while a deletion is scheduled).',
    (snapshot) => seconds(snapshot.key?.deleteDate),
  );
  timestampGauge(
    'key_material_expiry_timestamp_seconds',
    'When imported key material expires (only for keys with imported material).',
    (snapshot) => seconds(snapshot.key?.materialExpireTime),
  );
}

export function createMetrics(): ServerMetrics {
  const registry = new Registry();
  const sources: KeySnapshotSource[] = [];
  const current = (): KeySnapshot | undefined => sources[0]?.snapshot();

  const admissions = new Counter({
    name: `${PREFIX}admission_requests_total`,
    help: 'Admission requests answered, by webhook, operation and decision.',
    labelNames: ['webhook', 'operation', 'decision'] as const,
    registers: [registry],
  });
  const admissionDuration = new Histogram({
    name: `${PREFIX}admission_duration_seconds`,
    help: 'Time to decide one admission request (parsing excluded).',
    labelNames: ['webhook'] as const,
    buckets: ADMISSION_BUCKETS,
    registers: [registry],
  });
  const kmsCalls = new Counter({
    name: `${PREFIX}kms_calls_total`,
    help: "KMS API calls made by the key monitor, by action and result ('ok' or error code).",
    labelNames: ['action', 'result'] as const,
    registers: [registry],
  });
  const kmsDuration = new Histogram({
    name: `${PREFIX}kms_call_duration_seconds`,
    help: 'Duration of KMS API calls made by the key monitor.',
    labelNames: ['action'] as const,
    buckets: KMS_BUCKETS,
    registers: [registry],
  });
  const refusedConnections = new Counter({
    name: `${PREFIX}admission_connections_refused_total`,
    help: 'Connections the admission listener closed as they arrived, by reason (per_source: the source address held --max-connections-per-source; listener_full: the listener held its cap).',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  registerKeyGauges(registry, current);

  return {
    registry,
    onKmsCall(call) {
      kmsCalls.inc({ action: call.action, result: call.result });
      kmsDuration.observe({ action: call.action }, call.durationSeconds);
    },
    observeAdmission(webhook, operation, decision, durationSeconds) {
      admissions.inc({ webhook, operation, decision });
      admissionDuration.observe({ webhook }, durationSeconds);
    },
    observeRefusedConnection(reason) {
      refusedConnections.inc({ reason });
    },
    watchKey(source) {
      sources.splice(0, sources.length, source);
    },
  };
}
