/**
 * Helpers for the hardening regression tests: the Deployment's NODE_OPTIONS, peak RSS, and
 * AdmissionReview bodies shaped like the attacks and bursts of issue "no single request or
 * client can knock the guard over".
 */
import { readFileSync } from 'node:fs';
import { connect, type TLSSocket } from 'node:tls';
import { parseAllDocuments } from 'yaml';
import { fixture } from './server.js';

const DEPLOYMENT = new URL('../../manifests/base/deployment.yaml', import.meta.url);

/** NODE_OPTIONS exactly as manifests/base/deployment.yaml sets them for the guard container. */
export function deploymentNodeOptions(): string {
  for (const document of parseAllDocuments(readFileSync(DEPLOYMENT, 'utf8'))) {
    const value = JSON.stringify(document.toJS());
    const match = /"name":"NODE_OPTIONS","value":"([^"]+)"/.exec(value);
    if (match?.[1] !== undefined) return match[1];
  }
  throw new Error('manifests/base/deployment.yaml sets no NODE_OPTIONS');
}

/** Peak resident set (VmHWM) of a process, in bytes. */
export function peakRssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmHWM:\s+(\d+)\s+kB/m.exec(status);
  if (match?.[1] === undefined) throw new Error(`no VmHWM for ${pid}`);
  return Number(match[1]) * 1024;
}

/** base64 text of `bytes` pseudo-random bytes (like a Secret value, not compressible). */
function base64Of(bytes: number, seed: number): string {
  const raw = Buffer.alloc(bytes);
  let state = seed >>> 0 || 1;
  for (let index = 0; index < bytes; index += 1) {
    state = (state * 1_103_515_245 + 12_345) >>> 0;
    raw[index] = state >>> 24;
  }
  return raw.toString('base64');
}

const MANAGED_FIELDS = [
  {
    manager: 'helm',
    operation: 'Update',
    apiVersion: 'v1',
    time: '2026-11-28T09:30:00Z',
    fieldsType: 'FieldsV1',
    fieldsV1: { 'f:data': { '.': {}, 'f:release': {} }, 'f:type': {} },
  },
];

/**
 * A Secret UPDATE review the way the API server sends it for a Helm release Secret of
 * `dataBytes` bytes: object and oldObject both carry the data (≈ 2.7 MiB for 1 MiB).
 */
export function bigUpdateReview(uid: string, dataBytes = 1024 * 1024): string {
  const review = fixture('secret-update');
  review.request.uid = uid;
  for (const [index, object] of [review.request.object, review.request.oldObject].entries()) {
    if (object === null) continue;
    object.data = { release: base64Of(dataBytes, index + 1) };
    object.metadata.managedFields = MANAGED_FIELDS;
  }
  return JSON.stringify(review);
}

/** A Secret CREATE review whose object carries `count` annotations (about 24 bytes each). */
export function manyAnnotationsReview(uid: string, count: number): string {
  const review = fixture('secret-create-generatename');
  review.request.uid = uid;
  const annotations: Record<string, string> = {};
  for (let index = 0; index < count; index += 1) annotations[`a.io/k${index}`] = 'v';
  if (review.request.object !== null) review.request.object.metadata.annotations = annotations;
  return JSON.stringify(review);
}

/**
 * A TLS connection to `url`'s host and port that has finished its handshake, from
 * `localAddress` when given (any 127.x.y.z is a distinct loopback source on Linux).
 */
export function handshake(url: string, ca: string, localAddress?: string): Promise<TLSSocket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: hostname,
      port: Number(port),
      ca,
      servername: 'localhost',
      ...(localAddress === undefined ? {} : { localAddress }),
    });
    socket.once('secureConnect', () => {
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** Resolves with how long (ms) until the server closed `socket`, or undefined after `maxMs`. */
export function closedWithin(socket: TLSSocket, maxMs: number): Promise<number | undefined> {
  const started = Date.now();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      resolve(undefined);
    }, maxMs);
    socket.on('error', () => undefined);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - started);
    });
    socket.resume();
  });
}
