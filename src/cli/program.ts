import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config/errors.js';
import type { CliContext } from './context.js';
import { packageVersion } from './version.js';
import { checkCommand } from './commands/check.js';
import { serveCommand } from './commands/serve.js';
import { reencryptCommand } from './commands/reencrypt.js';
import { certsCommand } from './commands/certs.js';
import { kmsEmulatorCommand } from './commands/kms-emulator.js';
import { devCommand } from './commands/dev.js';
import { kmsPluginCommand } from './commands/kms-plugin.js';

export const EXIT_OK = 0;
export const EXIT_USAGE = 2;

/** Builds the CLI; tests call runCli with their own context instead of spawning a process. */
export function buildProgram(ctx: CliContext): Command {
  const program = new Command('kms-secret-guard')
    .description(
      'Guards Kubernetes Secrets encrypted at rest with an Alibaba Cloud KMS key: admission webhook, key check, re-encryption after rotation.',
    )
    .version(packageVersion(), '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({
      writeOut: (text) => ctx.stdout.write(text),
      writeErr: (text) => ctx.stderr.write(text),
    })
    .exitOverride();
  for (const command of [
    serveCommand(ctx),
    checkCommand(ctx),
    reencryptCommand(ctx),
    certsCommand(ctx),
    kmsEmulatorCommand(ctx),
    devCommand(ctx),
    kmsPluginCommand(ctx),
  ]) {
    command.exitOverride().configureOutput({
      writeOut: (text) => ctx.stdout.write(text),
      writeErr: (text) => ctx.stderr.write(text),
    });
    command.showHelpAfterError('(run with --help for usage)');
    program.addCommand(command);
  }
  return program;
}

/** Runs one command line; returns the exit code. Never calls process.exit. */
export async function runCli(argv: readonly string[], ctx: CliContext): Promise<number> {
  const program = buildProgram(ctx);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return ctx.exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end with exit code 0; everything else is a usage error.
      return error.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    if (error instanceof ConfigError) {
      ctx.stderr.write(`kms-secret-guard: ${error.message}\n`);
      return EXIT_USAGE;
    }
    throw error;
  }
}
