import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { generateCertificates, generateClientCertificate } from '../../../src/certs/generate.js';
import { etcdGet } from './etcd.js';
import { prepareEncryption, type ClusterKms, type EncryptionMode } from './encryption.js';
import { controlPlaneBinaries } from './paths.js';
import {
  freePorts,
  ProcessReaper,
  startProcess,
  type ManagedProcess,
} from '../../helpers/processes.js';
import { waitFor } from '../../helpers/eventually.js';
import { httpCall, httpGet } from '../../helpers/http.js';

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface KubectlOptions {
  input?: string;
  env?: Record<string, string>;
}

/** A kubectl bound to one kubeconfig (one user). */
export type Kubectl = (args: string[], opts?: KubectlOptions) => Promise<KubectlResult>;

/** Credentials for another user of the cluster (client certificate signed by the cluster CA). */
export interface ClusterUser {
  readonly name: string;
  readonly kubeconfigPath: string;
  kubectl: Kubectl;
  kubeConfig(): KubeConfig;
}

export interface Cluster {
  kubeconfigPath: string;
  /** https://127.0.0.1:PORT */
  server: string;
  /** JSON lines, one audit event each; set when started with { audit: true }. */
  auditLogPath: string | undefined;
  kubectl: Kubectl;
  kubeConfig(): KubeConfig;
  stop(): Promise<void>;
  /** A kubeconfig for user `name` (no permissions until RBAC grants some). */
  addUser(name: string, group?: string): Promise<ClusterUser>;
  /** Folder holding certificates, kubeconfigs and the etcd, kube-apiserver and audit logs. */
  readonly workDir: string;
  /** The last lines of the etcd and kube-apiserver logs, for failure messages. */
  logTail(lines?: number): string;
  /** How Secrets are stored: through kms-plugin (default), the in-tree aesgcm, or in clear. */
  readonly encryption: EncryptionMode;
  /** The emulator, key and kms-plugin behind the cluster's encryption (mode kms-plugin). */
  readonly kms: ClusterKms | undefined;
  /** http://127.0.0.1:PORT of etcd (plain HTTP on loopback). */
  readonly etcdUrl: string;
  /** What kube-apiserver stored under an etcd key (raw bytes), read from etcd itself. */
  etcdGet(key: string): Promise<Buffer | undefined>;
  /** Stops kube-apiserver and starts it again with the same flags; waits for /readyz. */
  restartApiServer(): Promise<void>;
  /**
   * Encryption static-key-id only: starts kms-plugin, points the EncryptionConfiguration at it
   * under the same provider name, restarts kube-apiserver and stops the ack-kms-plugin double.
   */
  switchToKmsPlugin(): Promise<void>;
}

export interface ClusterOptions {
  /** Write an audit log (auditLogPath); default policy: Secrets at RequestResponse, nothing else. */
  audit?: boolean;
  /** Replaces the default audit policy (YAML of audit.k8s.io/v1 Policy). */
  auditPolicy?: string;
  extraApiServerFlags?: string[];
  /** Default kms-plugin: Secrets are encrypted at rest through `kms-secret-guard kms-plugin`. */
  encryption?: EncryptionMode;
}

/**
 * Logs every request on Secrets with request and response bodies, so a test can prove which
 * requests read Secret data; everything else is left out to keep the log small. The log
 * lives in the cluster's temporary folder and holds only test Secrets.
 */
export const DEFAULT_AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: RequestResponse
    resources:
      - group: ''
        resources: [secrets]
  - level: None
`;

const KUBECTL_TIMEOUT_MS = 60_000;

/** Starts etcd and kube-apiserver on 127.0.0.1 (free ports) and waits until /readyz is ok. */
export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const binaries = controlPlaneBinaries();
  const workDir = mkdtempSync(join(tmpdir(), 'ksg-e2e-'));
  const reaper = new ProcessReaper();
  const removeWorkDir = (): void => {
    if (process.env.KSG_E2E_KEEP === undefined) rmSync(workDir, { recursive: true, force: true });
  };
  reaper.atExit(removeWorkDir);
  const processes: ManagedProcess[] = [];
  let stopped = false;
  let stopEncryption = async (): Promise<void> => undefined;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    // API server first: it would otherwise spend its grace period retrying etcd.
    for (const child of [...processes].reverse()) await child.stop();
    // The plugin last: kube-apiserver needs it until it has stopped.
    await stopEncryption();
    reaper.killAll();
    reaper.dispose();
    removeWorkDir();
  };
  let pluginTail = (): string => '';
  const logTail = (lines = 30): string =>
    processes
      .map((child) => `--- ${child.name} (${child.logPath})\n${child.logTail(lines)}`)
      .join('\n') + pluginTail();
  const encryption = options.encryption ?? 'kms-plugin';

  try {
    const file = (name: string, content: string): string => {
      const path = join(workDir, name);
      writeFileSync(path, content, { mode: 0o600 });
      return path;
    };

    // etcd: plain HTTP on loopback; nothing but this API server talks to it.
    const [etcdClientPort, etcdPeerPort, apiPort] = (await freePorts(3)) as [
      number,
      number,
      number,
    ];
    const etcdUrl = `http://127.0.0.1:${etcdClientPort}`;
    const etcdPeerUrl = `http://127.0.0.1:${etcdPeerPort}`;
    const etcd = startProcess(
      reaper,
      'etcd',
      binaries.etcd,
      [
        '--name=e2e',
        `--data-dir=${join(workDir, 'etcd-data')}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${etcdPeerUrl}`,
        `--initial-advertise-peer-urls=${etcdPeerUrl}`,
        `--initial-cluster=e2e=${etcdPeerUrl}`,
        '--unsafe-no-fsync',
        '--log-level=warn',
      ],
      { logPath: join(workDir, 'etcd.log') },
    );
    processes.push(etcd);

    const pki = await generateCertificates({
      dnsNames: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc'],
      ipAddresses: ['127.0.0.1', '10.0.0.1'],
      commonName: 'kube-apiserver',
    });
    const admin = await generateClientCertificate(pki, {
      commonName: 'e2e-admin',
      organization: 'system:masters',
    });
    const serviceAccountKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const caPath = file('ca.crt', pki.caCert);
    const serverCertPath = file('apiserver.crt', pki.cert);
    const serverKeyPath = file('apiserver.key', pki.key);
    const saKeyPath = file(
      'sa.key',
      serviceAccountKey.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    );
    const saPubPath = file(
      'sa.pub',
      serviceAccountKey.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    );
    const server = `https://127.0.0.1:${apiPort}`;
    const kubeconfigPath = file(
      'admin.kubeconfig',
      kubeconfigYaml(server, pki.caCert, 'e2e-admin', admin),
    );

    const auditLogPath =
      options.audit === true || options.auditPolicy !== undefined
        ? join(workDir, 'audit.log')
        : undefined;
    const auditFlags =
      auditLogPath === undefined
        ? []
        : [
            `--audit-log-path=${auditLogPath}`,
            `--audit-policy-file=${file('audit-policy.yaml', options.auditPolicy ?? DEFAULT_AUDIT_POLICY)}`,
            '--audit-log-format=json',
            '--audit-log-mode=blocking',
          ];

    // The KMS plugin must answer before kube-apiserver starts (it calls Status at start-up).
    const prepared = await prepareEncryption(encryption, reaper, workDir);
    stopEncryption = () => prepared.stop();
    const kms = prepared.kms;
    if (kms !== undefined) pluginTail = () => `\n--- kms-plugin\n${kms.plugin.logTail(20)}`;

    await waitFor(
      'etcd to report healthy',
      async () =>
        (await httpGet(`${etcdUrl}/health`, { timeoutMs: 2000 })).body.includes('"true"')
          ? true
          : undefined,
      { timeoutMs: 30_000, abortIf: () => exitedMessage(etcd) },
    );

    const apiServerArgs = [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      `--cert-dir=${join(workDir, 'apiserver-certs')}`,
      `--tls-cert-file=${serverCertPath}`,
      `--tls-private-key-file=${serverKeyPath}`,
      `--client-ca-file=${caPath}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${saPubPath}`,
      `--service-account-signing-key-file=${saKeyPath}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      '--authorization-mode=Node,RBAC',
      '--enable-admission-plugins=NamespaceLifecycle,MutatingAdmissionWebhook,ValidatingAdmissionWebhook',
      '--endpoint-reconciler-type=none',
      '--profiling=false',
      '--v=1',
      ...auditFlags,
      ...prepared.flags,
      ...(options.extraApiServerFlags ?? []),
    ];
    const clientTls = { ca: pki.caCert, cert: admin.cert, key: admin.key };
    let apiServerStarts = 0;
    const startApiServer = async (): Promise<ManagedProcess> => {
      apiServerStarts += 1;
      const apiserver = startProcess(
        reaper,
        'kube-apiserver',
        binaries.kubeApiserver,
        apiServerArgs,
        {
          logPath: join(
            workDir,
            apiServerStarts === 1 ? 'kube-apiserver.log' : `kube-apiserver-${apiServerStarts}.log`,
          ),
        },
      );
      processes.push(apiserver);
      await waitFor(
        'kube-apiserver /readyz',
        async () =>
          (await httpCall(`${server}/readyz`, { ...clientTls, timeoutMs: 5000 })).status === 200
            ? true
            : undefined,
        { timeoutMs: 90_000, intervalMs: 500, abortIf: () => exitedMessage(apiserver, etcd) },
      );
      return apiserver;
    };
    let apiserver = await startApiServer();
    // The bootstrap controller creates the default namespaces just after /readyz.
    await waitFor(
      'the default namespace',
      async () =>
        (await httpCall(`${server}/api/v1/namespaces/default`, { ...clientTls, timeoutMs: 5000 }))
          .status === 200
          ? true
          : undefined,
      { timeoutMs: 30_000, abortIf: () => exitedMessage(apiserver, etcd) },
    );
    const restartApiServer = async (): Promise<void> => {
      await apiserver.stop();
      processes.splice(processes.indexOf(apiserver), 1);
      apiserver = await startApiServer();
    };

    const kubectl = kubectlFor(kubeconfigPath);
    const kubeConfig = kubeConfigFor(kubeconfigPath);
    return {
      kubeconfigPath,
      server,
      auditLogPath,
      workDir,
      kubectl,
      kubeConfig,
      stop,
      logTail,
      encryption,
      kms,
      etcdUrl,
      etcdGet: (key) => etcdGet(etcdUrl, key),
      restartApiServer,
      async switchToKmsPlugin() {
        if (prepared.switchToKmsPlugin === undefined || kms?.staticKeyIdPlugin === undefined) {
          throw new Error(
            'switchToKmsPlugin needs a cluster started with encryption static-key-id',
          );
        }
        await prepared.switchToKmsPlugin();
        await restartApiServer();
        await kms.staticKeyIdPlugin.stop();
      },
      async addUser(name, group) {
        const user = await generateClientCertificate(pki, {
          commonName: name,
          ...(group === undefined ? {} : { organization: group }),
        });
        const path = file(
          `user-${name.replace(/[^a-z0-9-]/gi, '_')}.kubeconfig`,
          kubeconfigYaml(server, pki.caCert, name, user),
        );
        return {
          name,
          kubeconfigPath: path,
          kubectl: kubectlFor(path),
          kubeConfig: kubeConfigFor(path),
        };
      },
    };
  } catch (error) {
    const tail = logTail();
    await stop();
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(`could not start the test cluster: ${message}\n${tail}`, { cause: error });
  }
}

function exitedMessage(...children: ManagedProcess[]): string | undefined {
  const gone = children.find((child) => child.hasExited());
  return gone === undefined ? undefined : `${gone.name} exited:\n${gone.logTail(20)}`;
}

function kubeconfigYaml(
  server: string,
  caCert: string,
  user: string,
  credentials: { cert: string; key: string },
): string {
  const b64 = (text: string): string => Buffer.from(text).toString('base64');
  // JSON is valid YAML; kubectl and client-node read it either way.
  return JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'e2e', cluster: { server, 'certificate-authority-data': b64(caCert) } }],
      users: [
        {
          name: user,
          user: {
            'client-certificate-data': b64(credentials.cert),
            'client-key-data': b64(credentials.key),
          },
        },
      ],
      contexts: [{ name: 'e2e', context: { cluster: 'e2e', user, namespace: 'default' } }],
      'current-context': 'e2e',
    },
    null,
    2,
  );
}

function kubectlFor(kubeconfigPath: string): Kubectl {
  return (args, opts = {}) =>
    new Promise<KubectlResult>((resolve, reject) => {
      const child = spawn('kubectl', [`--kubeconfig=${kubeconfigPath}`, ...args], {
        env: { ...process.env, ...opts.env },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
      const timer = setTimeout(() => child.kill('SIGKILL'), KUBECTL_TIMEOUT_MS);
      child.once('error', (error) => {
        clearTimeout(timer);
        reject(new Error(`could not run kubectl (is it on PATH?): ${error.message}`));
      });
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code: code ?? (signal === null ? -1 : 128), stdout, stderr });
      });
      child.stdin.end(opts.input ?? '');
    });
}

function kubeConfigFor(kubeconfigPath: string): () => KubeConfig {
  return () => {
    const config = new KubeConfig();
    config.loadFromFile(kubeconfigPath);
    return config;
  };
}
