import { Command } from 'commander';
import type { CliContext } from '../context.js';

// Placeholder until the command is implemented.
export function devCommand(ctx: CliContext): Command {
  return new Command('dev').description('(not yet implemented)').action(() => {
    ctx.stderr.write('dev: not implemented yet\n');
    ctx.exitCode = 2;
  });
}
