/**
 * The plugin's own series, next to serve's KMS and key gauges in the same registry
 * (src/server/metrics.ts): calls per gRPC method and code, their latency, the key_id in use,
 * and Decrypts of ciphertexts of other keys.
 */
import { Counter, Gauge, Histogram } from 'prom-client';
import type { ServerMetrics } from '../server/metrics.js';

export interface PluginMetrics {
  observeCall(method: string, code: string, seconds: number): void;
  /** A Decrypt whose ciphertext KMS attributed to another key than the plugin's. */
  otherKeyDecrypt(keyId: string): void;
}

const PREFIX = 'kms_secret_guard_plugin_';
/** Status answers from memory (sub-millisecond); Encrypt/Decrypt wait for KMS. */
const CALL_BUCKETS = [0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** `keyIdInUse` is read on every scrape (what Status reports now; absent when it errors). */
export function createPluginMetrics(
  metrics: ServerMetrics,
  keyIdInUse: () => string | undefined,
): PluginMetrics {
  const registers = [metrics.registry];
  const calls = new Counter({
    name: `${PREFIX}calls_total`,
    help: "KMS v2 gRPC calls answered, by method (Status, Encrypt, Decrypt) and gRPC code ('OK' or the error).",
    labelNames: ['method', 'code'] as const,
    registers,
  });
  const duration = new Histogram({
    name: `${PREFIX}call_duration_seconds`,
    help: 'Time to answer one KMS v2 gRPC call, by method.',
    labelNames: ['method'] as const,
    buckets: CALL_BUCKETS,
    registers,
  });
  const otherKeyDecrypts = new Counter({
    name: `${PREFIX}other_key_decrypts_total`,
    help: "Decrypts whose ciphertext KMS attributed to another key than the plugin's (the alias's previous key, or another plugin's key), by that KeyId.",
    labelNames: ['key_id'] as const,
    registers,
  });
  new Gauge({
    name: `${PREFIX}key_id_info`,
    help: 'The key_id Status reports (<KeyId>/<KeyVersionId>): 1 for the one in use.',
    labelNames: ['key_id'] as const,
    registers,
    collect() {
      this.reset();
      const keyId = keyIdInUse();
      if (keyId !== undefined) this.set({ key_id: keyId }, 1);
    },
  });
  return {
    observeCall(method, code, seconds) {
      calls.inc({ method, code });
      duration.observe({ method }, seconds);
    },
    otherKeyDecrypt(keyId) {
      otherKeyDecrypts.inc({ key_id: keyId });
    },
  };
}
