import { Command, Option } from 'commander';
import { certificateFiles, writeCertificateFiles } from '../../certs/files.js';
import { DEFAULT_CA_VALIDITY_DAYS, DEFAULT_VALIDITY_DAYS } from '../../certs/defaults.js';
import { ConfigError } from '../../config/errors.js';
import type { CliContext } from '../context.js';

const DEFAULT_NAME = 'kms-secret-guard';

interface CertsOptions {
  service: string;
  namespace: string;
  dnsName: string[];
  ip: string[];
  days: string;
  caDays: string;
  out: string;
  force: boolean;
}

/** `certs`: a CA and a serving certificate for the webhook Service, written to a folder. */
export function certsCommand(ctx: CliContext): Command {
  return new Command('certs')
    .description(
      'Make a CA and a serving certificate (ECDSA P-256) for the webhook Service; writes ca.crt, tls.crt and tls.key and prints the caBundle.',
    )
    .addOption(new Option('--service <NAME>', 'Service name').default(DEFAULT_NAME))
    .addOption(new Option('--namespace <NAMESPACE>', 'Service namespace').default(DEFAULT_NAME))
    .addOption(
      new Option('--dns-name <NAME>', 'extra DNS name for the certificate (repeatable)')
        .argParser(collect)
        .default([]),
    )
    .addOption(
      new Option('--ip <ADDRESS>', 'IP address for the certificate (repeatable)')
        .argParser(collect)
        .default([]),
    )
    .addOption(
      new Option('--days <DAYS>', 'serving certificate validity in days').default(
        String(DEFAULT_VALIDITY_DAYS),
      ),
    )
    .addOption(
      new Option('--ca-days <DAYS>', 'CA validity in days').default(
        String(DEFAULT_CA_VALIDITY_DAYS),
      ),
    )
    .addOption(new Option('--out <DIR>', 'folder to write the files into').default('./certs'))
    .addOption(new Option('--force', 'replace existing files').default(false))
    .action(async (options: CertsOptions) => {
      // Loaded here, not at start-up: see src/certs/defaults.ts.
      const { generateCertificates, serviceDnsNames } = await import('../../certs/generate.js');
      const files = certificateFiles(options.out);
      const service = options.service.trim();
      const namespace = options.namespace.trim();
      const dnsNames = unique([...serviceDnsNames(service, namespace), ...options.dnsName]);
      const generated = await generateCertificates({
        dnsNames,
        ipAddresses: unique(options.ip),
        commonName: commonNameFor(service, namespace),
        validityDays: wholeDays(options.days, '--days'),
        caValidityDays: wholeDays(options.caDays, '--ca-days'),
      });
      await writeCertificateFiles(files, generated, { force: options.force });

      const caBundle = Buffer.from(generated.caCert).toString('base64');
      ctx.stdout.write(
        [
          `Wrote a new CA and a serving certificate for ${service}.${namespace}.svc:`,
          `  ${files.caCert}`,
          `  ${files.cert}`,
          `  ${files.key} (mode 0600)`,
          `DNS names: ${dnsNames.join(', ')}`,
          ...(options.ip.length > 0 ? [`IP addresses: ${unique(options.ip).join(', ')}`] : []),
          `Valid for ${options.days} days (CA: ${options.caDays} days).`,
          '',
          'caBundle (base64 of ca.crt) for clientConfig.caBundle of both webhook configurations:',
          caBundle,
          '',
        ].join('\n'),
      );
      ctx.exitCode = 0;
    });
}

/** name.ns.svc, unless that exceeds the 64 characters X.509 allows a CN (the SANs carry all names anyway). */
function commonNameFor(service: string, namespace: string): string {
  const full = `${service}.${namespace}.svc`;
  return full.length <= 64 ? full : service.slice(0, 64);
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function unique(values: readonly string[]): string[] {
  return [...new Set(values.map((value) => value.trim().toLowerCase()))];
}

function wholeDays(given: string, flag: string): number {
  const days = Number(given);
  if (!/^\d+$/.test(given.trim()) || days < 1 || days > 36500) {
    throw new ConfigError(
      `${flag} must be a whole number of days from 1 to 36500 (got "${given}").`,
    );
  }
  return days;
}
