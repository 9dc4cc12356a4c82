import { Command, Option } from 'commander';
import { ConfigError } from '../../config/errors.js';
import {
  parseKmsSettings,
  parsePositiveDuration,
  type KmsSettings,
} from '../../config/settings.js';
import {
  classifyKey,
  factsFromMetadata,
  initialObservations,
  keyWarnings,
  outcomeFromError,
  recordOutcome,
  requestKeyId,
} from '../../kms/classify.js';
import { createKmsClient, staticCredentialFromEnv } from '../../kms/client.js';
import {
  isCredentialProblem,
  LOCAL_ERROR_CODES,
  toKmsError,
  type KmsError,
} from '../../kms/errors.js';
import { explainReason, keyReport, type KeyReport } from '../../kms/report.js';
import type { KeyLookupOutcome } from '../../kms/types.js';
import { systemClock } from '../../time/clock.js';
import { addSettingOptions, rawSettings, type CliContext } from '../context.js';

const KMS_SETTINGS = ['kmsKeyId', 'kmsRegion', 'kmsEndpoint', 'kmsProtocol'] as const;
const DEFAULT_TIMEOUT = '5s';

interface CheckFlags {
  timeout: string;
  json?: boolean;
}

function endpointUrl(kms: KmsSettings): string {
  return `${kms.protocol}://${kms.endpoint}`;
}

/** Credential problems are configuration: one line naming what to set, exit code 2. */
function credentialError(error: KmsError): ConfigError {
  if (error.code === LOCAL_ERROR_CODES.credentialsMissing) return new ConfigError(error.message);
  return new ConfigError(
    `KMS rejected the access key (${error.code}: ${error.message}): check ALIBABA_CLOUD_ACCESS_KEY_ID / ALIBABA_CLOUD_ACCESS_KEY_SECRET (and ALIBABA_CLOUD_SECURITY_TOKEN for STS).`,
  );
}

/** One line for a lookup that got no answer about the key. */
function failureLine(error: KmsError, kms: KmsSettings): string {
  const what = `${error.code}: ${error.message}`;
  if (error.transient) {
    return `cannot reach KMS at ${endpointUrl(kms)} (${what}): check --kms-endpoint / --kms-region and network access to KMS, then retry.`;
  }
  return `KMS lookup of ${kms.keyId} at ${endpointUrl(kms)} failed (${what}).`;
}

function value(text: string | number | null): string {
  return text === null ? '-' : String(text);
}

function humanReport(report: KeyReport): string {
  const keyLine =
    report.keyId === report.configuredKeyId
      ? report.keyId
      : `${report.configuredKeyId} → ${report.keyId}`;
  const usable = report.usable
    ? 'yes'
    : `no — ${explainReason(report.reason ?? 'NeverFetched', report.keyId)}`;
  const rotation =
    report.automaticRotation === null
      ? '-'
      : `${report.automaticRotation}${report.rotationInterval === null ? '' : `, every ${report.rotationInterval}`}`;
  const facts: [string, string][] = [
    ['ARN', value(report.arn)],
    ['Primary version', value(report.primaryKeyVersion)],
    ['Rotation time', value(report.rotationTime)],
    ['Last rotation', value(report.lastRotation)],
    ['Next rotation', value(report.nextRotation)],
    ['Automatic rotation', rotation],
    ['Deletion date', value(report.deleteDate)],
    ['Material expiry', value(report.materialExpireTime)],
  ];
  // Without a successful DescribeKey (not found, no permission) there are no facts to show.
  const known = report.primaryKeyVersion !== null || report.arn !== null;
  const rows: [string, string][] = [
    ['KMS key', keyLine],
    ['State', report.state],
    ['Usable', usable],
    ...(known ? facts : []),
    ['Checked at', report.checkedAt],
    ...report.warnings.map((warning): [string, string] => ['Warning', warning]),
  ];
  const width = Math.max(...rows.map(([label]) => label.length)) + 2;
  return rows.map(([label, text]) => `${`${label}:`.padEnd(width)}${text}\n`).join('');
}

export function checkCommand(ctx: CliContext): Command {
  const clock = (): number => (ctx.clock ?? systemClock).now();
  const command = new Command('check').description(
    'Look up the KMS key once and report whether Secrets can be encrypted with it (exit 0 usable, 1 unusable or unknown, 2 configuration error).',
  );
  addSettingOptions(command, KMS_SETTINGS);
  command
    .addOption(
      new Option('--timeout <duration>', 'connect and read time limit of the KMS call').default(
        DEFAULT_TIMEOUT,
      ),
    )
    .option('--json', 'print the report as JSON (the fields of GET /healthz/kms)')
    .action(async (flags: CheckFlags) => {
      const kms = parseKmsSettings(rawSettings(command, KMS_SETTINGS, ctx.env));
      const timeoutMs = parsePositiveDuration('--timeout', flags.timeout);
      // Access key variables come from ctx.env; without them the default credential chain
      // (STS, RRSA/OIDC, ECS RAM role …) looks at the process environment itself.
      const credential = staticCredentialFromEnv(ctx.env);
      const api = createKmsClient(kms, {
        ...(credential ? { credential } : {}),
        connectTimeoutMs: timeoutMs,
        readTimeoutMs: timeoutMs,
      });

      let outcome: KeyLookupOutcome;
      try {
        const metadata = await api.describeKey(requestKeyId(kms.keyId));
        outcome = { kind: 'found', facts: factsFromMetadata(metadata), at: new Date(clock()) };
      } catch (thrown) {
        const error = toKmsError(thrown);
        if (isCredentialProblem(error)) throw credentialError(error);
        outcome = outcomeFromError(error, new Date(clock()));
        if (outcome.kind === 'failed') {
          ctx.stderr.write(`kms-secret-guard: ${failureLine(error, kms)}\n`);
        }
      }

      const now = clock();
      const snapshot = classifyKey(recordOutcome(initialObservations(kms.keyId), outcome), now, {
        maxStalenessMs: Number.POSITIVE_INFINITY,
      });
      const report = keyReport(snapshot, keyWarnings(snapshot, Number.POSITIVE_INFINITY, now));
      if (flags.json === true) {
        ctx.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      } else if (outcome.kind !== 'failed') {
        ctx.stdout.write(humanReport(report));
      }
      ctx.exitCode = report.usable ? 0 : 1;
    });
  return command;
}
