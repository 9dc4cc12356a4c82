/** `kms-secret-guard reencrypt` (the built CLI, a child process) against an encrypting cluster. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Cluster } from './cluster.js';
import { cliPath } from './paths.js';
import { emulatorKmsFlags } from '../../helpers/emulator.js';

const exec = promisify(execFile);

/** The fields of the `--json` summary the e2e scenarios read. */
export interface ReencryptSummary {
  scanned: number;
  stale: number;
  rewritten: number;
  failed: number;
  wouldRewrite: number;
  settledAt: string;
  byVersion: { current: number; beforeSettle: number; unstamped: number };
}

/** Runs reencrypt with the cluster's key and kubeconfig, `--rotation-settle settle`, `--json`. */
export async function runReencrypt(
  cluster: Cluster,
  settle: string,
  args: string[] = [],
): Promise<{ summary: ReencryptSummary; stderr: string }> {
  const kms = cluster.kms;
  if (kms === undefined) throw new Error('the e2e cluster does not encrypt through a KMS plugin');
  const { emulator, keyId } = kms;
  const { stdout, stderr } = await exec(
    process.execPath,
    [
      cliPath(),
      'reencrypt',
      ...emulatorKmsFlags(emulator, keyId),
      '--rotation-settle',
      settle,
      '--progress-interval',
      '10s',
      '--json',
      ...args,
    ],
    {
      env: {
        PATH: process.env.PATH ?? '',
        HOME: cluster.workDir,
        KUBECONFIG: cluster.kubeconfigPath,
        ALIBABA_CLOUD_ACCESS_KEY_ID: emulator.accessKeyId,
        ALIBABA_CLOUD_ACCESS_KEY_SECRET: emulator.accessKeySecret,
      },
      timeout: 300_000,
    },
  );
  return { summary: JSON.parse(stdout) as ReencryptSummary, stderr };
}
