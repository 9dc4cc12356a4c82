import { Command } from 'commander';
import type { CliContext } from '../context.js';

// Placeholder until the command is implemented.
export function serveCommand(ctx: CliContext): Command {
  return new Command('serve').description('(not yet implemented)').action(() => {
    ctx.stderr.write('serve: not implemented yet\n');
    ctx.exitCode = 2;
  });
}
