import { Command, Option } from 'commander';
import { ConfigError } from '../../config/errors.js';
import {
  parseKmsSettings,
  parsePositiveDuration,
  parseRotationSettle,
} from '../../config/settings.js';
import { addSettingOptions, rawSettings, type CliContext } from '../context.js';
import {
  DEFAULT_MAX_RESPONSE_BYTES,
  DEFAULT_PAGE_SIZE,
  DEFAULT_REQUEST_DEADLINE_MS,
} from '../../reencrypt/limits.js';
import { packageVersion } from '../version.js';

const KMS_SETTINGS = ['kmsKeyId', 'kmsRegion', 'kmsEndpoint', 'kmsProtocol'] as const;
const REENCRYPT_SETTINGS = [...KMS_SETTINGS, 'rotationSettle'] as const;

interface ReencryptFlags {
  kubeconfig?: string;
  context?: string;
  namespace?: string;
  selector?: string;
  fieldSelector?: string;
  dryRun?: boolean;
  concurrency: string;
  qps: string;
  pageSize: string;
  requestTimeout: string;
  progressInterval: string;
  json?: boolean;
}

export function reencryptCommand(ctx: CliContext): Command {
  const command = new Command('reencrypt')
    .description(
      'After a KMS key rotation, rewrite every Secret still stamped with an older key version or last written before the rotation settled (metadata only: Secret data is never read).',
    )
    .option(
      '--kubeconfig <path>',
      'kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)',
    )
    .option('--context <name>', 'kubeconfig context to use (default: its current-context)')
    .option('-n, --namespace <namespace>', 'only this namespace (default: all namespaces)')
    .option('-l, --selector <labels>', 'only Secrets matching this label selector, e.g. app=web')
    .option(
      '--field-selector <fields>',
      'only Secrets matching this field selector, e.g. type=Opaque',
    )
    .option(
      '--dry-run',
      'change nothing and do not wait for the settle time; report Secrets per key version, how many were last written before the rotation settled, and how many would be rewritten',
    )
    .addOption(new Option('--concurrency <n>', 'patches in flight at once').default('4'))
    .addOption(
      new Option('--qps <n>', 'API requests per second (lists, reads and patches)').default('20'),
    )
    .addOption(
      new Option(
        '--page-size <n>',
        `Secrets per list page; one page's answer may be at most ${DEFAULT_MAX_RESPONSE_BYTES / 1024 / 1024} MiB (lower it if a page is refused as too large)`,
      ).default(String(DEFAULT_PAGE_SIZE)),
    )
    .addOption(
      new Option(
        '--request-timeout <duration>',
        'wall-clock deadline of each Kubernetes request, from sending it to the last byte of the answer (retried like other network failures)',
      ).default(`${DEFAULT_REQUEST_DEADLINE_MS / 1000}s`),
    )
    .addOption(
      new Option(
        '--progress-interval <duration>',
        'without a TTY: how often a JSON progress line goes to stderr',
      ).default('10s'),
    )
    .option('--json', 'print the final summary as JSON on stdout');
  addSettingOptions(command, REENCRYPT_SETTINGS);
  command.action(async (flags: ReencryptFlags, self: Command) => {
    ctx.exitCode = await reencrypt(ctx, flags, self);
  });
  return command;
}

async function reencrypt(ctx: CliContext, flags: ReencryptFlags, self: Command): Promise<number> {
  const concurrency = integerFlag('--concurrency', flags.concurrency, 1, 64);
  const qps = numberFlag('--qps', flags.qps);
  const pageSize = integerFlag('--page-size', flags.pageSize, 1, 5000);
  const requestTimeoutMs = parsePositiveDuration('--request-timeout', flags.requestTimeout);
  const progressIntervalMs = parsePositiveDuration('--progress-interval', flags.progressInterval);
  const raw = rawSettings(self, REENCRYPT_SETTINGS, ctx.env);
  const kms = parseKmsSettings(raw);
  const settleMs = parseRotationSettle(raw);
  // Loaded on demand: the run pulls in @kubernetes/client-node, which other commands don't need.
  const { runReencrypt } = await import('../../reencrypt/run.js');
  return runReencrypt(ctx, {
    kms,
    kubeconfigPath: flags.kubeconfig,
    context: flags.context,
    scope: {
      namespace: flags.namespace,
      labelSelector: flags.selector,
      fieldSelector: flags.fieldSelector,
    },
    dryRun: flags.dryRun === true,
    settleMs,
    concurrency,
    qps,
    pageSize,
    requestTimeoutMs,
    progressIntervalMs,
    json: flags.json === true,
    userAgent: `kms-secret-guard-reencrypt/${packageVersion()}`,
  });
}

function integerFlag(flag: string, given: string, min: number, max: number): number {
  const parsed = Number(given);
  if (!/^\d+$/.test(given.trim()) || parsed < min || parsed > max) {
    throw new ConfigError(`${flag} must be a whole number from ${min} to ${max} (got "${given}").`);
  }
  return parsed;
}

function numberFlag(flag: string, given: string): number {
  const parsed = Number(given);
  if (given.trim() === '' || !Number.isFinite(parsed) || parsed <= 0 || parsed > 10_000) {
    throw new ConfigError(`${flag} must be a positive number up to 10000 (got "${given}").`);
  }
  return parsed;
}
