import { Command } from 'commander';
import type { CliContext } from '../context.js';

// Placeholder until the command is implemented.
export function checkCommand(ctx: CliContext): Command {
  return new Command('check').description('(not yet implemented)').action(() => {
    ctx.stderr.write('check: not implemented yet\n');
    ctx.exitCode = 2;
  });
}
