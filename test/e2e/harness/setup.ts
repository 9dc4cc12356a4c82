import type { Test } from 'tap';
import { startCluster, type Cluster } from './cluster.js';
import { ensureNamespace, startGuard, type Guard } from './guard.js';

/** A cluster with the guard's webhooks registered, shared by every test of one file. */
export interface GuardedCluster {
  readonly cluster: Cluster;
  readonly guard: Guard;
}

/**
 * Starts the cluster, the guard and `namespace` before the file's tests and stops them after,
 * printing the servers' last words when a test failed. Read `cluster` and `guard` inside tests.
 */
export function useGuardedCluster(t: Test, namespace: string): GuardedCluster {
  let cluster: Cluster | undefined;
  let guard: Guard | undefined;
  t.before(async () => {
    const started = await startCluster();
    try {
      guard = await startGuard(started);
      await guard.registerWebhooks();
      await ensureNamespace(started, namespace);
      cluster = started;
    } catch (error) {
      await guard?.stop();
      guard = undefined;
      await started.stop();
      throw error;
    }
  });
  t.teardown(async () => {
    if (!t.passing() && cluster !== undefined) {
      const serveLog = guard?.serveLogTail() ?? '(not started)';
      process.stderr.write(`${cluster.logTail()}\n--- serve\n${serveLog}\n`);
    }
    await guard?.stop();
    await cluster?.stop();
  });
  return {
    get cluster() {
      if (cluster === undefined) throw new Error('the e2e cluster did not start (see before())');
      return cluster;
    },
    get guard() {
      if (guard === undefined) throw new Error('the guard did not start (see before())');
      return guard;
    },
  };
}
