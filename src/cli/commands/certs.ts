import { Command } from 'commander';
import type { CliContext } from '../context.js';

// Placeholder until the command is implemented.
export function certsCommand(ctx: CliContext): Command {
  return new Command('certs').description('(not yet implemented)').action(() => {
    ctx.stderr.write('certs: not implemented yet\n');
    ctx.exitCode = 2;
  });
}
