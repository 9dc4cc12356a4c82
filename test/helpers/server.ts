// Shared helpers of the webhook tests: fixture reviews, key snapshots, certificates, test servers.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type {
  KeyFacts,
  KeySnapshot,
  KeySnapshotSource,
  UnusableReason,
} from '../../src/kms/types.js';
import { generateCertificates, generateClientCertificate } from '../../src/certs/generate.js';
import { keyWarnings } from '../../src/kms/classify.js';
import type { ServeSettings } from '../../src/config/settings.js';
import { createLogger } from '../../src/logging/logger.js';
import {
  startServer,
  type RunningServer,
  type StartServerOptions,
} from '../../src/server/serve.js';
import type { Test } from 'tap';
import { KEY_ID } from './kms.js';
import { toResult, type HttpResult } from './http.js';
import { buildAdmissionApp } from '../../src/server/app.js';

const FIXTURES = new URL('../fixtures/admission/', import.meta.url);

export type FixtureName =
  | 'secret-create-generatename'
  | 'secret-update'
  | 'secret-delete'
  | 'secret-create-dryrun'
  | 'configmap-create';

export const FIXTURE_NAMES: readonly FixtureName[] = [
  'secret-create-generatename',
  'secret-update',
  'secret-delete',
  'secret-create-dryrun',
  'configmap-create',
];

/** A Kubernetes object as the fixtures carry it. */
export interface FixtureObject {
  kind: string;
  apiVersion: string;
  metadata: {
    name?: string;
    generateName?: string;
    namespace?: string;
    annotations?: Record<string, string>;
    [field: string]: unknown;
  };
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  [field: string]: unknown;
}

export interface FixtureReview {
  apiVersion: string;
  kind: string;
  request: {
    uid: string;
    operation: string;
    name?: string;
    namespace?: string;
    object: FixtureObject | null;
    oldObject: FixtureObject | null;
    dryRun: boolean;
    [field: string]: unknown;
  };
}

/** A fresh copy of a fixture AdmissionReview (tests may modify it). */
export function fixture(name: FixtureName): FixtureReview {
  return JSON.parse(readFileSync(new URL(`${name}.json`, FIXTURES), 'utf8')) as FixtureReview;
}

/** What the webhook answers, as tests read it. */
export interface ReviewAnswer {
  apiVersion: string;
  kind: string;
  response: {
    uid: string;
    allowed: boolean;
    status?: { code: number; reason: string; message: string };
    patch?: string;
    patchType?: string;
    warnings?: string[];
    auditAnnotations?: Record<string, string>;
  };
}

export interface PatchOp {
  op: 'add' | 'replace' | 'remove' | 'move' | 'copy' | 'test';
  path: string;
  value?: unknown;
}

/** The JSON Patch of an answer, decoded from base64 (empty when there is none). */
export function decodePatch(answer: ReviewAnswer): PatchOp[] {
  const patch = answer.response.patch;
  if (patch === undefined) return [];
  return JSON.parse(Buffer.from(patch, 'base64').toString('utf8')) as PatchOp[];
}

export const NOW = new Date('2026-11-28T10:00:00Z');

export function keyFacts(overrides: Partial<KeyFacts> = {}): KeyFacts {
  return {
    keyId: KEY_ID,
    arn: `acs:kms:cn-hangzhou:123456789:key/${KEY_ID}`,
    keyState: 'Enabled',
    primaryKeyVersion: 'v-2026-11-28-primary',
    creationDate: new Date('2026-01-01T00:00:00Z'),
    rotationTime: new Date('2026-11-28T09:00:00Z'),
    lastRotationDate: new Date('2026-11-28T09:00:00Z'),
    nextRotationDate: new Date('2027-05-27T09:00:00Z'),
    automaticRotation: 'Enabled',
    rotationInterval: '15552000s',
    deleteDate: undefined,
    deletionProtection: 'Disabled',
    materialExpireTime: undefined,
    origin: 'Aliyun_KMS',
    ...overrides,
  };
}

/** The refresh interval the snapshot helpers' warnings assume (the default 30 s). */
const REFRESH_INTERVAL_MS = 30_000;

/** A snapshot as the monitor would classify it, warnings included (unless given). */
export function usableSnapshot(overrides: Partial<KeySnapshot> = {}): KeySnapshot {
  const snapshot: Omit<KeySnapshot, 'warnings'> = {
    configuredKeyId: 'alias/cluster-secrets',
    status: 'usable',
    reason: undefined,
    key: keyFacts(),
    lastSuccessAt: new Date(NOW.getTime() - 5_000),
    lastFailure: undefined,
    checkedAt: NOW,
    ageSeconds: 5,
    firstLookupDone: true,
    ...overrides,
  };
  return {
    ...snapshot,
    warnings:
      overrides.warnings ??
      keyWarnings(snapshot, REFRESH_INTERVAL_MS, snapshot.checkedAt.getTime()),
  };
}

const KEY_STATE_OF: Record<UnusableReason, string> = {
  Disabled: 'Disabled',
  PendingDeletion: 'PendingDeletion',
  PendingImport: 'PendingImport',
  NotFound: 'Enabled',
  NoPermission: 'Enabled',
  MaterialExpired: 'PendingImport',
};

export function unusableSnapshot(reason: UnusableReason): KeySnapshot {
  const lost = reason === 'NotFound' || reason === 'NoPermission';
  return usableSnapshot({
    status: 'unusable',
    reason,
    key: lost
      ? undefined
      : keyFacts({
          keyState: KEY_STATE_OF[reason],
          deleteDate: reason === 'PendingDeletion' ? new Date('2026-12-05T10:00:00Z') : undefined,
          materialExpireTime:
            reason === 'MaterialExpired' ? new Date('2026-11-27T00:00:00Z') : undefined,
          origin:
            reason === 'MaterialExpired' || reason === 'PendingImport' ? 'EXTERNAL' : 'Aliyun_KMS',
        }),
    configuredKeyId: lost ? KEY_ID : 'alias/cluster-secrets',
  });
}

export function unknownSnapshot(reason: 'NeverFetched' | 'Stale'): KeySnapshot {
  if (reason === 'NeverFetched') {
    return {
      configuredKeyId: KEY_ID,
      status: 'unknown',
      reason,
      key: undefined,
      lastSuccessAt: undefined,
      lastFailure: { code: 'Rejected.Throttling', message: 'throttled', httpStatus: 400, at: NOW },
      checkedAt: NOW,
      ageSeconds: undefined,
      firstLookupDone: true,
      warnings: [],
    };
  }
  return usableSnapshot({
    status: 'unknown',
    reason,
    lastSuccessAt: new Date(NOW.getTime() - 600_000),
    ageSeconds: 600,
  });
}

/** A snapshot source the test controls: admissions read `current`. */
export interface FakeSnapshotSource extends KeySnapshotSource {
  current: KeySnapshot;
}

export function fakeSource(initial: KeySnapshot = usableSnapshot()): FakeSnapshotSource {
  return {
    current: initial,
    snapshot() {
      return this.current;
    },
  };
}

export interface CertDir {
  readonly dir: string;
  readonly caCert: string;
  readonly caKey: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
  cleanup(): Promise<void>;
}

/** A throwaway CA and a serving certificate for 127.0.0.1/localhost, written to a temp dir. */
export async function makeCertDir(): Promise<CertDir> {
  const dir = await mkdtemp(join(tmpdir(), 'ksg-server-test-'));
  const generated = await generateCertificates({
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
  });
  const certFile = join(dir, 'tls.crt');
  const keyFile = join(dir, 'tls.key');
  const caFile = join(dir, 'ca.crt');
  await writeFile(certFile, generated.cert);
  await writeFile(keyFile, generated.key);
  await writeFile(caFile, generated.caCert);
  return {
    dir,
    caCert: generated.caCert,
    caKey: generated.caKey,
    certFile,
    keyFile,
    caFile,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

export async function clientCertificate(
  ca: { caCert: string; caKey: string },
  commonName = 'kube-apiserver',
): Promise<{ cert: string; key: string }> {
  return generateClientCertificate(ca, { commonName });
}

export function serveSettings(
  certs: CertDir,
  overrides: Partial<ServeSettings> = {},
): ServeSettings {
  return {
    kms: { keyId: KEY_ID, regionId: 'cn-hangzhou', endpoint: '127.0.0.1:1', protocol: 'http' },
    monitor: { refreshIntervalMs: 30_000, maxStalenessMs: 300_000 },
    tlsCertFile: certs.certFile,
    tlsKeyFile: certs.keyFile,
    clientCaFile: undefined,
    port: 0,
    healthPort: 0,
    onUnknown: 'allow',
    mode: 'enforce',
    logLevel: 'info',
    ...overrides,
  };
}

/**
 * A webhook on 127.0.0.1 over fresh certificates and a fake key source (usable key), silent
 * logs; both are removed when the test ends. `options` overrides any start option.
 */
export async function startTestServer(
  t: Test,
  options: Partial<StartServerOptions> & { readonly settings?: Partial<ServeSettings> } = {},
): Promise<{ server: RunningServer; certs: CertDir }> {
  const certs = await makeCertDir();
  t.teardown(() => certs.cleanup());
  const server = await startServer({
    logger: createLogger('silent'),
    monitor: fakeSource(),
    host: '127.0.0.1',
    ...options,
    settings: serveSettings(certs, options.settings),
  });
  t.teardown(() => server.close());
  return { server, certs };
}

/** The admission app driven through Fastify's `inject`: route logic without TLS or sockets. */
export interface InjectedAdmission {
  readonly source: FakeSnapshotSource;
  /** POSTs an AdmissionReview to `path` (/validate or /mutate). */
  review(path: string, body: unknown): Promise<HttpResult>;
}

/**
 * Builds the admission app as `serve` does (same policy from the settings), over a fake key
 * source, for `inject`; closed when the test ends. Real TLS stays in the tests whose subject
 * it is (server-tls, security-tls, shutdown).
 */
export async function injectAdmission(
  t: Test,
  overrides: Partial<ServeSettings> = {},
  logger = createLogger('silent'),
): Promise<InjectedAdmission> {
  const settings = { ...serveSettings(INJECT_ONLY_CERTS), ...overrides };
  const source = fakeSource();
  const app = buildAdmissionApp({
    logger,
    source,
    policy: { mode: settings.mode, onUnknown: settings.onUnknown },
    // No listener: inject() never reaches the HTTPS server, so it needs no certificate.
    https: {},
  });
  await app.ready();
  t.teardown(() => app.close());
  return {
    source,
    async review(path, body) {
      const response = await app.inject({
        method: 'POST',
        url: path,
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify(body),
      });
      const headers = Object.fromEntries(
        Object.entries(response.headers).map(([name, value]) => [
          name,
          typeof value === 'number' ? String(value) : value,
        ]),
      );
      return toResult(response.statusCode, headers, response.body);
    },
  };
}

/** Settings need certificate paths; an injected app never reads them. */
const INJECT_ONLY_CERTS = { certFile: '', keyFile: '' } as CertDir;
