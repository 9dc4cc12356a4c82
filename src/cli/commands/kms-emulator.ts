import { Command } from 'commander';
import type { CliContext } from '../context.js';

// Placeholder until the command is implemented.
export function kmsEmulatorCommand(ctx: CliContext): Command {
  return new Command('kms-emulator').description('(not yet implemented)').action(() => {
    ctx.stderr.write('kms-emulator: not implemented yet\n');
    ctx.exitCode = 2;
  });
}
