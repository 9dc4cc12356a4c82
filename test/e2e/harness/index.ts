export {
  startCluster,
  DEFAULT_AUDIT_POLICY,
  type Cluster,
  type ClusterOptions,
  type ClusterUser,
  type Kubectl,
  type KubectlOptions,
  type KubectlResult,
} from './cluster.js';
export {
  startGuard,
  ensureNamespace,
  PROBE_NAMESPACE,
  type Guard,
  type ServeOptions,
} from './guard.js';
export { useGuardedCluster, type GuardedCluster } from './setup.js';
export { createKmsAdmin, type KmsAdmin } from '../../../src/emulator/admin.js';
export { controlPlaneBinaries, pinnedVersions, cliPath, REPO_ROOT } from './paths.js';
export { waitFor } from '../../helpers/eventually.js';
export { freePort, freePorts } from '../../helpers/processes.js';
export {
  shippedWebhookConfigurations,
  componentWebhookConfigurations,
  forLocalWebhook,
  type WebhookConfiguration,
  type WebhookVariant,
} from './webhooks.js';
export {
  KMS_PROVIDER_NAME,
  type ClusterKms,
  type EncryptionMode,
  type KmsPluginProcess,
} from './encryption.js';
export {
  decodeEncryptedObject,
  decodeKmsV2Value,
  etcdGet,
  etcdRange,
  secretKey,
  type EncryptedObject,
  type KmsV2Envelope,
} from './etcd.js';
