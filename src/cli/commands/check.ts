import { Command, Option } from 'commander';
import { ConfigError } from '../../config/errors.js';
import {
  parseKmsSettings,
  parsePositiveDuration,
  type KmsSettings,
} from '../../config/settings.js';
import { classifySingleLookup, factsFromMetadata, outcomeFromError } from '../../kms/classify.js';
import { createKmsClient, staticCredentialFromEnv, type KmsClient } from '../../kms/client.js';
import {
  isCredentialProblem,
  LOCAL_ERROR_CODES,
  toKmsError,
  type KmsError,
} from '../../kms/errors.js';
import { requestKeyId } from '../../kms/key-id.js';
import { describeKeyState, type KeyStateView } from '../../kms/key-state.js';
import type { KeyLookupOutcome } from '../../kms/types.js';
import { explainReason, LOOKUP_FAILURE } from '../../kms/vocabulary.js';
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
  return error.transient
    ? LOOKUP_FAILURE.unreachable(endpointUrl(kms), what)
    : LOOKUP_FAILURE.failed(kms.keyId, endpointUrl(kms), what);
}

function value(text: string | number | null): string {
  return text === null ? '-' : String(text);
}

/** The rotation time the stamp uses, saying where it comes from when KMS sent no LastRotationDate. */
function rotationTimeText(view: KeyStateView): string {
  if (view.rotationTime === null || view.lastRotation !== null) return value(view.rotationTime);
  return `${view.rotationTime} (CreationDate: KMS reports no rotation)`;
}

function factRows(view: KeyStateView): [string, string][] {
  const rotation =
    view.automaticRotation === null
      ? '-'
      : `${view.automaticRotation}${view.rotationInterval === null ? '' : `, every ${view.rotationInterval}`}`;
  return [
    ['ARN', value(view.arn)],
    ['Primary version', value(view.primaryKeyVersion)],
    ['Rotation time', rotationTimeText(view)],
    ['Last rotation', value(view.lastRotation)],
    ['Next rotation', value(view.nextRotation)],
    ['Automatic rotation', rotation],
    ['Deletion date', value(view.deleteDate)],
    ['Material expiry', value(view.materialExpireTime)],
  ];
}

/** The human rendering of `check`: one "Label: value" row per fact. */
function humanKeyState(view: KeyStateView): string {
  const keyLine =
    view.keyId === view.configuredKeyId ? view.keyId : `${view.configuredKeyId} → ${view.keyId}`;
  const usable = view.usable
    ? 'yes'
    : `no — ${explainReason(view.reason ?? 'NeverFetched', view.keyId)}`;
  // Without a successful DescribeKey (not found, no permission) there are no facts to show.
  const known = view.primaryKeyVersion !== null || view.arn !== null;
  const rows: [string, string][] = [
    ['KMS key', keyLine],
    ['State', view.state],
    ['Usable', usable],
    ...(known ? factRows(view) : []),
    ['Checked at', view.checkedAt],
    ...view.warnings.map((warning): [string, string] => ['Warning', warning]),
  ];
  const width = Math.max(...rows.map(([label]) => label.length)) + 2;
  return rows.map(([label, text]) => `${`${label}:`.padEnd(width)}${text}\n`).join('');
}

/** One DescribeKey; credential problems become configuration errors (exit 2). */
async function lookUp(
  client: KmsClient,
  kms: KmsSettings,
  ctx: CliContext,
  clock: () => number,
): Promise<KeyLookupOutcome> {
  try {
    const metadata = await client.describeKey(requestKeyId(kms.keyId));
    return { kind: 'found', facts: factsFromMetadata(metadata), at: new Date(clock()) };
  } catch (thrown) {
    const error = toKmsError(thrown);
    if (isCredentialProblem(error)) throw credentialError(error);
    const outcome = outcomeFromError(error, new Date(clock()));
    if (outcome.kind === 'failed') {
      ctx.stderr.write(`kms-secret-guard: ${failureLine(error, kms)}\n`);
    }
    return outcome;
  }
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
    .option('--json', 'print the key state as JSON (the fields of GET /healthz/kms)')
    .action(async (flags: CheckFlags) => {
      const kms = parseKmsSettings(rawSettings(command, KMS_SETTINGS, ctx.env));
      const timeoutMs = parsePositiveDuration('--timeout', flags.timeout);
      // Access key variables come from ctx.env; without them the default credential chain
      // (STS, RRSA/OIDC, ECS RAM role …) looks at the process environment itself.
      const credential = staticCredentialFromEnv(ctx.env);
      const client = createKmsClient(kms, {
        ...(credential ? { credential } : {}),
        connectTimeoutMs: timeoutMs,
        readTimeoutMs: timeoutMs,
      });
      const outcome = await lookUp(client, kms, ctx, clock);
      const view = describeKeyState(classifySingleLookup(kms.keyId, outcome, clock()));
      if (flags.json === true) {
        ctx.stdout.write(`${JSON.stringify(view, null, 2)}\n`);
      } else if (outcome.kind !== 'failed') {
        ctx.stdout.write(humanKeyState(view));
      }
      ctx.exitCode = view.usable ? 0 : 1;
    });
  return command;
}
